//! `[admin]`: who besides root and the `gateway-admin` group may use the
//! admin socket (docs/audit.md).

use serde::Deserialize;
use toml::Spanned;

use crate::config::check::Check;
use crate::config::model::AdminConfig;
use crate::config::resolve::Resolver;
use crate::config::table::Table;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    #[serde(default)]
    allow_users: Vec<Spanned<String>>,
    #[serde(default)]
    allow_groups: Vec<Spanned<String>>,
}

pub(crate) struct Admin;

impl Table for Admin {
    type Raw = Option<RawAdmin>;
    type Checked = AdminConfig;
    type Resolved = AdminConfig;

    fn validate(raw: Self::Raw, cx: &mut Check<'_>) -> Option<AdminConfig> {
        let Some(raw) = raw else {
            return Some(AdminConfig::default());
        };
        let mark = cx.mark();
        let mut names = |list: Vec<Spanned<String>>, key: &str| -> Vec<String> {
            let mut out = Vec::new();
            for n in list {
                let s = n.get_ref().trim();
                if s.is_empty() || s.contains(char::is_whitespace) || s.contains(':') {
                    cx.error(
                        &n,
                        format!("admin.{key}: {s:?} is not a user or group name"),
                    );
                } else {
                    out.push(s.to_string());
                }
            }
            out
        };
        let a = AdminConfig {
            allow_users: names(raw.allow_users, "allow_users"),
            allow_groups: names(raw.allow_groups, "allow_groups"),
        };
        cx.clean_since(mark).then_some(a)
    }

    fn resolve(c: AdminConfig, _: &mut Resolver<'_>) -> Option<AdminConfig> {
        Some(c)
    }
}
