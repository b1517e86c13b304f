//! What a table of the config file is ([`Table`]), and `tables!`, which
//! turns the list of tables (in `tables/mod.rs`) into the raw document
//! serde reads, the [`Config`](super::Config) struct, and the calls of each
//! table's steps. Adding a table is one file in `tables/` (its raw form, its
//! validation, its facts for the cross-table checks, its resolution) and
//! one line in that list.

use serde::de::DeserializeOwned;

use super::check::Check;
use super::cross::FactSheet;
use super::resolve::Resolver;

pub(crate) trait Table {
    /// The table as written, spans kept: `Vec<_>` for `[[x]]`,
    /// `Option<_>` for `[x]` (`Default` when the file has none).
    type Raw: DeserializeOwned + Default;
    /// Validated from the text alone.
    type Checked;
    /// With its files followed.
    type Resolved;

    /// Names, references and binds for the checks across tables (and
    /// anything another table's validation needs). Runs before any validation.
    fn facts(_raw: &Self::Raw, _sheet: &mut FactSheet<'_>) {}

    /// Pure. Reports every problem found through `cx`; `None` if there was one.
    fn validate(raw: Self::Raw, cx: &mut Check<'_>) -> Option<Self::Checked>;

    /// Follows the files. Reports every problem through `rx`; `None` if there was one.
    fn resolve(checked: Self::Checked, rx: &mut Resolver<'_>) -> Option<Self::Resolved>;
}

/// `tables! { pub struct Config<S> { field: Type<S> = "toml key" via TableType, ... } }`
macro_rules! tables {
    (
        $(#[$meta:meta])*
        pub struct Config<$s:ident> {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty = $key:literal via $table:ty, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        pub struct Config<$s: Stage = Resolved> {
            /// The file this was loaded from (for messages and for finding the daemon).
            pub source: PathBuf,
            pub data_dir: PathBuf,
            /// Unix socket the CLI uses to reach the daemon; default `<data_dir>/admin.sock`.
            pub admin_socket: Option<PathBuf>,
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        /// The config file as serde reads it: the top-level keys, then one
        /// field per table.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct RawDocument {
            data_dir: Spanned<String>,
            admin_socket: Option<Spanned<String>>,
            $( #[serde(default, rename = $key)] $field: <$table as Table>::Raw, )*
        }

        impl RawDocument {
            pub(crate) fn facts(&self, sheet: &mut FactSheet<'_>) {
                $( <$table as Table>::facts(&self.$field, sheet); )*
            }

            pub(crate) fn validate(self, cx: &mut Check<'_>) -> Option<Config<Checked>> {
                let top = top_level(&self.data_dir, self.admin_socket.as_ref(), cx);
                $( let $field = <$table as Table>::validate(self.$field, cx); )*
                let (data_dir, admin_socket) = top?;
                Some(Config {
                    source: cx.file().to_path_buf(),
                    data_dir,
                    admin_socket,
                    $( $field: $field?, )*
                })
            }
        }

        impl Config<Checked> {
            pub(crate) fn resolve_tables(self, rx: &mut Resolver<'_>) -> Option<Config<Resolved>> {
                $( let $field = <$table as Table>::resolve(self.$field, rx); )*
                Some(Config {
                    source: self.source,
                    data_dir: self.data_dir,
                    admin_socket: self.admin_socket,
                    $( $field: $field?, )*
                })
            }
        }
    };
}
pub(crate) use tables;
