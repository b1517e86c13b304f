//! The second step of loading a config: follow what the validated config
//! names on the disk. TLS files must exist, CA files must hold usable
//! certificates, secrets and keys are read (file modes checked), code maps
//! are loaded, the box id defaults to the host name. Errors still name the
//! config file's line of the field that pointed at the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::{At, ConfigError, ConfigErrors, Pos};
use super::model::TlsServerConfig;
use super::secrets::{self, FileRef, Secret, SecretSource};
use super::stage::{Checked, Resolved};
use super::Config;
use crate::auth::{AuthConfig, AuthSpec};
use crate::net::https_client::{self, HttpsClientConfig};
use crate::net::known_hosts::KnownHosts;
use crate::net::ssh_client::ClientKey;

/// What `resolve` takes from the process rather than the config.
#[derive(Debug, Clone, Default)]
pub struct Host {
    /// `$CREDENTIALS_DIRECTORY`: where `credential:NAME` files are.
    pub credentials: Option<PathBuf>,
}

impl Host {
    pub fn from_env() -> Host {
        Host {
            credentials: secrets::credentials_directory(),
        }
    }
}

/// Follows every file reference of `checked`, reporting every problem.
pub fn resolve(checked: Config<Checked>, host: &Host) -> Result<Config<Resolved>, ConfigErrors> {
    let file = checked.source.clone();
    let mut rx = Resolver {
        file: &file,
        host,
        errors: Vec::new(),
    };
    let resolved = checked.resolve_tables(&mut rx);
    match (resolved, ConfigErrors::from_vec(rx.errors)) {
        (Some(c), None) => Ok(c),
        (_, Some(errors)) => Err(errors),
        // A table gave up without saying why: a bug, but still no silent success.
        (None, None) => Err(ConfigError::new(
            &file,
            Pos::default(),
            "the configuration could not be resolved",
        )
        .into()),
    }
}

/// The context of the resolve step: the process's [`Host`] and the errors so far.
pub(crate) struct Resolver<'a> {
    file: &'a Path,
    host: &'a Host,
    errors: Vec<ConfigError>,
}

impl Resolver<'_> {
    pub fn error(&mut self, pos: Pos, reason: impl Into<String>) {
        self.errors.push(ConfigError::new(self.file, pos, reason));
    }

    fn fail<T>(&mut self, pos: Pos, reason: impl Into<String>) -> Option<T> {
        self.error(pos, reason);
        None
    }

    /// A file that must exist (a TLS certificate, key or CA).
    pub fn file(&mut self, f: At<FileRef>) -> Option<PathBuf> {
        let p = match f.value.locate(&f.what, self.host.credentials.as_deref()) {
            Ok(p) => p,
            Err(e) => return self.fail(f.pos, e),
        };
        if !p.is_file() {
            return self.fail(
                f.pos,
                format!(
                    "{} '{}' does not exist or is not a file",
                    f.what,
                    p.display()
                ),
            );
        }
        Some(p)
    }

    pub fn tls_server(&mut self, t: TlsServerConfig<Checked>) -> Option<TlsServerConfig<Resolved>> {
        let cert = self.file(t.cert);
        let key = self.file(t.key);
        let client_ca = super::check::maybe(t.client_ca, |c| self.file(c));
        Some(TlsServerConfig {
            cert: cert?,
            key: key?,
            client_ca: client_ca?,
            handshake_timeout: t.handshake_timeout,
        })
    }

    /// Outbound HTTPS settings: the CA file must hold usable certificates.
    pub fn client(&mut self, c: At<HttpsClientConfig>) -> Option<HttpsClientConfig> {
        match https_client::check_files(&c.value) {
            Ok(()) => Some(c.value),
            Err(e) => self.fail(c.pos, format!("{}: {e}", c.what)),
        }
    }

    pub fn auth(&mut self, a: At<AuthSpec>) -> Option<AuthConfig> {
        match a.value.resolve(self.host.credentials.as_deref()) {
            Ok(c) => Some(c),
            Err(e) => self.fail(a.pos, format!("{}: {e}", a.what)),
        }
    }

    /// A secret; its messages name their own field.
    pub fn secret(&mut self, s: At<SecretSource>) -> Option<Secret> {
        match s.value.read(self.host.credentials.as_deref()) {
            Ok(v) => Some(v),
            Err(e) => self.fail(s.pos, e),
        }
    }

    /// An SSH private key: read like any secret file (mode checked), then parsed.
    pub fn ssh_key(&mut self, k: At<FileRef>) -> Option<ClientKey> {
        let credentials = self.host.credentials.as_deref();
        let read = k
            .value
            .locate(&k.what, credentials)
            .and_then(|p| secrets::read_secret_file(&p, &k.what, credentials).map(|b| (p, b)));
        let parsed = read.and_then(|(p, bytes)| {
            let text = String::from_utf8(bytes)
                .map_err(|_| format!("{}: {} is not a text key file", k.what, p.display()))?;
            ClientKey::parse(&text, &format!("{}: {}", k.what, p.display()))
        });
        match parsed {
            Ok(key) => Some(key),
            Err(e) => self.fail(k.pos, e),
        }
    }

    /// A known_hosts file (not secret: any mode), parsed; it must pin at
    /// least one key for `host:port`.
    pub fn known_hosts(
        &mut self,
        f: At<FileRef>,
        host: &str,
        port: u16,
    ) -> Option<Arc<KnownHosts>> {
        let path = self.file(f.clone())?;
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                return self.fail(
                    f.pos,
                    format!("{}: cannot read {}: {e}", f.what, path.display()),
                )
            }
        };
        let what = format!("{}: {}", f.what, path.display());
        let kh = match KnownHosts::parse(&text, &what) {
            Ok(kh) => kh,
            Err(e) => return self.fail(f.pos, e),
        };
        if kh.pinned_for(host, port) == 0 {
            let name = if port == 22 {
                host.to_string()
            } else {
                format!("[{host}]:{port}")
            };
            return self.fail(
                f.pos,
                format!(
                    "{what} pins no key for {name}: add the server's key (`ssh-keyscan -p {port} {host} >> {}`) \
                     and check its fingerprint with the provider: host keys are never trusted on first use",
                    path.display()
                ),
            );
        }
        Some(Arc::new(kh))
    }

    /// A code-map directory: every map in it must load.
    pub fn code_maps(&mut self, d: At<PathBuf>) -> Option<PathBuf> {
        match crate::deliver::fhir_context::load_code_maps(&d.value) {
            Ok(_) => Some(d.value),
            Err(e) => self.fail(d.pos, format!("{}: {e}", d.what)),
        }
    }
}
