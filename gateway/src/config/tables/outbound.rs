//! What every outbound HTTPS client in the config shares (destinations,
//! pollers, the alert webhook, the fleet heartbeat): URLs, `auth` checked by
//! `auth::check`, and TLS settings checked by `https_client::check`; their
//! files are followed by `resolve`.

use toml::Spanned;

use crate::auth::{AuthSpec, RawAuth};
use crate::config::check::Check;
use crate::config::error::{At, Pos};
use crate::net::https_client::{self, HttpsClientConfig, RawHttpsClient};

/// `localhost` or a loopback address: the only hosts plain `http://` may
/// carry credentials to (test servers).
pub(crate) fn is_loopback(url: &reqwest::Url) -> bool {
    url.host_str().is_some_and(|h| {
        h.eq_ignore_ascii_case("localhost")
            || h.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|a| a.is_loopback())
    })
}

/// `[...auth]`: `what` prefixes its messages (e.g. "destination 'cloud': auth").
pub(crate) fn auth(cx: &mut Check<'_>, what: String, a: &Spanned<RawAuth>) -> Option<At<AuthSpec>> {
    match crate::auth::check(a.get_ref().clone(), cx.base()) {
        Ok(spec) => Some(cx.at(a, spec, what)),
        Err(e) => cx.fail(a, format!("{what}: {e}")),
    }
}

/// TLS settings (extra CA, pins, timeouts, client certificate) placed at `pos`; `what`
/// prefixes their messages. No table: the defaults.
pub(crate) fn client(
    cx: &mut Check<'_>,
    what: String,
    raw: Option<RawHttpsClient>,
    pos: Pos,
) -> Option<At<HttpsClientConfig>> {
    let value = match raw {
        None => HttpsClientConfig::default(),
        Some(mut raw) => {
            let path = |p: Option<std::path::PathBuf>| p.map(|p| cx.path(&p.to_string_lossy()));
            raw.ca_file = path(raw.ca_file);
            raw.client_cert = path(raw.client_cert);
            raw.client_key = path(raw.client_key);
            match https_client::check(raw, cx.base()) {
                Ok(c) => c,
                Err(e) => {
                    cx.error_at(pos, format!("{what}: {e}"));
                    return None;
                }
            }
        }
    };
    Some(At { value, pos, what })
}

/// An alert or heartbeat URL: https, or http on loopback (tests), without
/// credentials in it.
pub(crate) fn ops_url(cx: &mut Check<'_>, field: &str, v: &Spanned<String>) -> Option<String> {
    let url = match reqwest::Url::parse(v.get_ref()) {
        Ok(u) => u,
        Err(e) => return cx.fail(v, format!("{field}: '{}' is not a URL: {e}", v.get_ref())),
    };
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        _ => {
            return cx.fail(
                v,
                format!(
                    "{field}: '{}' must be https:// (http:// is accepted only for a loopback test server)",
                    v.get_ref()
                ),
            )
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return cx.fail(
            v,
            format!("{field}: put credentials in the auth table, not in the URL"),
        );
    }
    Some(url.to_string())
}
