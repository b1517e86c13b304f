//! `[status_page]`: the read-only HTML page for the office, behind HTTP
//! Basic auth and/or client certificates (never unprotected). The password
//! and the TLS files are followed by `resolve`.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::auth::config::{check_password, check_username};
use crate::config::check::{maybe, Check};
use crate::config::cross::FactSheet;
use crate::config::error::At;
use crate::config::model::{StatusPageConfig, TlsServerConfig};
use crate::config::resolve::Resolver;
use crate::config::secrets::{Secret, SecretSource};
use crate::config::stage::{Checked, Resolved};
use crate::config::table::Table;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStatusPage {
    bind: Spanned<String>,
    username: Option<Spanned<String>>,
    password: Option<Spanned<Secret>>,
    password_file: Option<Spanned<String>>,
    tls: Option<Spanned<RawStatusTls>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatusTls {
    cert: Spanned<String>,
    key: Spanned<String>,
    client_ca: Option<Spanned<String>>,
}

pub(crate) struct StatusPage;

impl Table for StatusPage {
    type Raw = Option<Spanned<RawStatusPage>>;
    type Checked = Option<StatusPageConfig<Checked>>;
    type Resolved = Option<StatusPageConfig<Resolved>>;

    fn facts(raw: &Self::Raw, sheet: &mut FactSheet<'_>) {
        if let Some(s) = raw {
            let b = &s.get_ref().bind;
            let pos = sheet.pos(b);
            sheet.bind("status_page.bind".into(), b.get_ref(), pos);
        }
    }

    fn validate(raw: Self::Raw, cx: &mut Check<'_>) -> Option<Self::Checked> {
        maybe(raw, |s| status_page(s, cx))
    }

    fn resolve(c: Self::Checked, rx: &mut Resolver<'_>) -> Option<Self::Resolved> {
        maybe(c, |s| {
            let tls = maybe(s.tls, |t| rx.tls_server(t));
            let password = maybe(s.password, |p| {
                let pos = p.pos;
                let secret = rx.secret(p)?;
                match check_password("status_page.password", &secret) {
                    Ok(()) => Some(secret),
                    Err(e) => {
                        rx.error(pos, e);
                        None
                    }
                }
            });
            Some(StatusPageConfig {
                bind: s.bind,
                username: s.username,
                password: password?,
                tls: tls?,
            })
        })
    }
}

fn status_page(s: Spanned<RawStatusPage>, cx: &mut Check<'_>) -> Option<StatusPageConfig<Checked>> {
    let table = cx.pos(&s);
    let s = s.into_inner();
    let bind = cx.bind("status_page.bind", &s.bind, "127.0.0.1:9090");
    let tls = maybe(s.tls.as_ref(), |t| {
        let t = t.get_ref();
        let cert = cx.file_ref("status_page.tls.cert".into(), &t.cert);
        let key = cx.file_ref("status_page.tls.key".into(), &t.key);
        let client_ca = maybe(t.client_ca.as_ref(), |ca| {
            cx.file_ref("status_page.tls.client_ca".into(), ca)
        });
        Some(TlsServerConfig {
            cert: cert?,
            key: key?,
            client_ca: client_ca?,
            handshake_timeout: Duration::from_secs(10),
        })
    });
    let username = match &s.username {
        None => Some("admin".to_string()),
        Some(u) => Some(u.get_ref().clone()),
    };
    let has_password = s.password.is_some() || s.password_file.is_some();
    if let (true, Some(u)) = (has_password, &s.username) {
        if let Err(e) = check_username("status_page.username", u.get_ref()) {
            cx.error(u, e);
        }
    }
    let at = s
        .password
        .as_ref()
        .map(|p| cx.pos(p))
        .or(s.password_file.as_ref().map(|p| cx.pos(p)))
        .unwrap_or(table);
    let password = if has_password {
        match SecretSource::choose(
            "status_page.password",
            s.password.map(Spanned::into_inner),
            "status_page.password_file",
            s.password_file.as_ref().map(|p| p.get_ref().as_str()),
            cx.base(),
        ) {
            Ok(source) => Some(Some(At {
                value: source,
                pos: at,
                what: "status_page".into(),
            })),
            Err(e) => {
                cx.error_at(at, e);
                None
            }
        }
    } else {
        Some(None)
    };
    let client_cert = s
        .tls
        .as_ref()
        .is_some_and(|t| t.get_ref().client_ca.is_some());
    if !has_password && !client_cert {
        cx.error_at(
            table,
            "status_page: set password_file = \"/path\" (mode 600) or \"credential:NAME\", \
             or tls.client_ca for client certificates: the page is never served unprotected",
        );
        return None;
    }
    Some(StatusPageConfig {
        bind: bind?,
        username: username?,
        password: password?,
        tls: tls?,
    })
}
