//! `[[listener]]`: MLLP(S) sources. Limits, the peer allowlist, and TLS
//! (certificate files followed by `resolve`).

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config::check::{each, maybe, Check};
use crate::config::cross::{FactSheet, Namespace};
use crate::config::model::{ListenerConfig, TlsServerConfig, DEFAULT_MAX_FRAME_BYTES};
use crate::config::resolve::Resolver;
use crate::config::stage::{Checked, Resolved};
use crate::config::table::Table;
use crate::config::Cidr;

/// Largest `max_frame_bytes`.
const MAX_FRAME_CEILING: u64 = 256 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListener {
    name: Spanned<String>,
    bind: Spanned<String>,
    max_frame_bytes: Option<Spanned<u64>>,
    idle_timeout_secs: Option<Spanned<u64>>,
    frame_timeout_secs: Option<Spanned<u64>>,
    max_connections: Option<Spanned<u64>>,
    max_connections_per_peer: Option<Spanned<u64>>,
    #[serde(default)]
    allow: Vec<Spanned<String>>,
    tls: Option<RawTls>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Spanned<String>,
    key: Spanned<String>,
    client_ca: Option<Spanned<String>>,
    handshake_timeout_secs: Option<u64>,
}

pub(crate) struct Listeners;

impl Table for Listeners {
    type Raw = Vec<RawListener>;
    type Checked = Vec<ListenerConfig<Checked>>;
    type Resolved = Vec<ListenerConfig<Resolved>>;

    fn facts(raw: &Self::Raw, sheet: &mut FactSheet<'_>) {
        for l in raw {
            sheet.name(Namespace::Source, "listener", &l.name);
            let pos = sheet.pos(&l.bind);
            sheet.bind(
                format!("listener '{}'", l.name.get_ref()),
                l.bind.get_ref(),
                pos,
            );
        }
    }

    fn validate(raw: Self::Raw, cx: &mut Check<'_>) -> Option<Self::Checked> {
        each(raw, |l| listener(l, cx))
    }

    fn resolve(checked: Self::Checked, rx: &mut Resolver<'_>) -> Option<Self::Resolved> {
        each(checked, |l| {
            Some(ListenerConfig {
                tls: maybe(l.tls, |t| rx.tls_server(t))?,
                name: l.name,
                bind: l.bind,
                max_frame_bytes: l.max_frame_bytes,
                idle_timeout: l.idle_timeout,
                frame_timeout: l.frame_timeout,
                max_connections: l.max_connections,
                max_connections_per_peer: l.max_connections_per_peer,
                allow: l.allow,
            })
        })
    }
}

fn listener(l: RawListener, cx: &mut Check<'_>) -> Option<ListenerConfig<Checked>> {
    let name = l.name.get_ref().clone();
    let bind = cx.bind(
        &format!("listener '{name}': bind"),
        &l.bind,
        "0.0.0.0:2575 or 127.0.0.1:2575",
    );
    let mut positive = |v: &Option<Spanned<u64>>, field: &str, default: u64| match v {
        None => Some(default),
        Some(s) if *s.get_ref() == 0 => cx.fail(
            s,
            format!("listener '{name}': {field} must be greater than 0"),
        ),
        Some(s) => Some(*s.get_ref()),
    };
    let max_frame_bytes = positive(
        &l.max_frame_bytes,
        "max_frame_bytes",
        DEFAULT_MAX_FRAME_BYTES as u64,
    );
    let idle = positive(&l.idle_timeout_secs, "idle_timeout_secs", 300);
    let frame = positive(&l.frame_timeout_secs, "frame_timeout_secs", 60);
    let max_conn = positive(&l.max_connections, "max_connections", 64);
    let per_peer = positive(&l.max_connections_per_peer, "max_connections_per_peer", 16);
    let max_frame_bytes = match (max_frame_bytes, &l.max_frame_bytes) {
        (Some(n), Some(at)) if n > MAX_FRAME_CEILING => cx.fail(
            at,
            format!("listener '{name}': max_frame_bytes {n} is above the 256 MiB ceiling"),
        ),
        (n, _) => n,
    };
    let allow = each(&l.allow, |a| match a.get_ref().parse::<Cidr>() {
        Ok(c) => Some(c),
        Err(e) => cx.fail(a, format!("listener '{name}': allow entry {e}")),
    });
    let tls = maybe(l.tls, |t| {
        let cert = cx.file_ref(format!("listener '{name}': tls.cert"), &t.cert);
        let key = cx.file_ref(format!("listener '{name}': tls.key"), &t.key);
        let client_ca = maybe(t.client_ca.as_ref(), |ca| {
            cx.file_ref(format!("listener '{name}': tls.client_ca"), ca)
        });
        Some(TlsServerConfig {
            cert: cert?,
            key: key?,
            client_ca: client_ca?,
            handshake_timeout: Duration::from_secs(t.handshake_timeout_secs.unwrap_or(10).max(1)),
        })
    });
    Some(ListenerConfig {
        name,
        bind: bind?,
        max_frame_bytes: max_frame_bytes? as usize,
        idle_timeout: Duration::from_secs(idle?),
        frame_timeout: Duration::from_secs(frame?),
        max_connections: max_conn? as usize,
        max_connections_per_peer: per_peer? as usize,
        allow: allow?,
        tls: tls?,
    })
}
