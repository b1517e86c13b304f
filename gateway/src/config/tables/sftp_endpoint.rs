//! What sftp destinations and sftp pollers share: the `sftp://` URL and the
//! SSH login in `auth` (type `ssh_key` or `password`, with the required
//! `known_hosts`). Pure here; `resolve` reads the key, the password and the
//! pinned host keys.

use toml::Spanned;

use crate::auth::RawAuth;
use crate::config::check::Check;
use crate::config::model::{SftpEndpoint, SshLogin};
use crate::config::resolve::Resolver;
use crate::config::secrets::SecretSource;
use crate::config::stage::{Checked, Resolved};

/// `url` and `auth` of an sftp destination or poller; `what` names it
/// ("destination 'availity'").
pub(crate) fn endpoint(
    what: &str,
    url: &Spanned<String>,
    auth: Option<&Spanned<RawAuth>>,
    at: &Spanned<String>,
    cx: &mut Check<'_>,
) -> Option<SftpEndpoint<Checked>> {
    let example = "sftp://USER@HOST:22/DIR";
    let parsed = match reqwest::Url::parse(url.get_ref()) {
        Ok(u) if u.scheme() == "sftp" && u.host_str().is_some_and(|h| !h.is_empty()) => u,
        _ => {
            return cx.fail(
                url,
                format!("{what}: url must be {example} (the user the provider gave you, the server, the remote folder)"),
            )
        }
    };
    if parsed.username().is_empty() {
        return cx.fail(url, format!("{what}: the url has no user: write {example}"));
    }
    if parsed.password().is_some() {
        return cx.fail(
            url,
            format!("{what}: the url carries a password: remove it and set [auth] type = \"password\" with password_file"),
        );
    }
    let host = parsed
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let user = percent_decode(parsed.username());
    let path = percent_decode(parsed.path());
    // `/~/DIR` (and an empty path) is relative to the login directory.
    let dir = match path.strip_prefix("/~") {
        Some(rest) => rest.trim_start_matches('/').to_string(),
        None => path,
    };
    let Some(auth) = auth else {
        return cx.fail(
            at,
            format!("{what}: needs [auth] with type = \"ssh_key\" (key_file) or \"password\", and known_hosts (the server's pinned host key)"),
        );
    };
    let (login, known_hosts) = match auth.get_ref() {
        RawAuth::SshKey {
            key_file,
            known_hosts,
        } => {
            let key = cx.file_ref(
                format!("{what}: auth.key_file"),
                &spanned_like(auth, key_file),
            );
            (key.map(SshLogin::Key), known_hosts)
        }
        RawAuth::Password {
            password,
            password_file,
            known_hosts,
        } => {
            let file = password_file
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned());
            let source = SecretSource::choose(
                "auth.password",
                password.clone(),
                "auth.password_file",
                file.as_deref(),
                cx.base(),
            );
            let login = match source {
                Ok(s) => Some(SshLogin::Password(cx.at(auth, s, format!("{what}: auth")))),
                Err(e) => cx.fail(auth, format!("{what}: {e}")),
            };
            (login, known_hosts)
        }
        _ => {
            return cx.fail(
                auth,
                format!("{what}: an sftp server takes [auth] type = \"ssh_key\" or \"password\""),
            )
        }
    };
    let known_hosts = cx.file_ref(
        format!("{what}: auth.known_hosts"),
        &spanned_like(auth, known_hosts),
    );
    Some(SftpEndpoint {
        port: parsed.port().unwrap_or(22),
        host,
        user,
        dir,
        login: login?,
        known_hosts: known_hosts?,
    })
}

/// Follow the key, password and known_hosts files.
pub(crate) fn resolve(
    e: SftpEndpoint<Checked>,
    rx: &mut Resolver<'_>,
) -> Option<SftpEndpoint<Resolved>> {
    let login = match e.login {
        SshLogin::Key(k) => rx.ssh_key(k).map(SshLogin::Key),
        SshLogin::Password(p) => rx.secret(p).map(SshLogin::Password),
    };
    let known_hosts = rx.known_hosts(e.known_hosts, &e.host, e.port);
    Some(SftpEndpoint {
        host: e.host,
        port: e.port,
        user: e.user,
        dir: e.dir,
        login: login?,
        known_hosts: known_hosts?,
    })
}

/// A field inside the auth table, placed at the table (serde gives the
/// inner fields of a tagged enum no spans of their own).
fn spanned_like(at: &Spanned<RawAuth>, v: &str) -> Spanned<String> {
    Spanned::new(at.span(), v.to_string())
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}
