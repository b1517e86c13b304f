//! `[fleet]`: the periodic heartbeat to the MSP, and `[fleet.remote_write]`,
//! the metrics pushed to a Prometheus-compatible store. The box id
//! defaults to the host name, read by `resolve`.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::outbound;
use crate::auth::RawAuth;
use crate::config::check::{maybe, Check};
use crate::config::model::{FleetConfig, RemoteWriteConfig};
use crate::config::resolve::Resolver;
use crate::config::stage::{Checked, Resolved};
use crate::config::table::Table;
use crate::net::https_client::RawHttpsClient;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFleet {
    url: Spanned<String>,
    interval: Option<Spanned<String>>,
    box_id: Option<Spanned<String>>,
    auth: Option<Spanned<RawAuth>>,
    tls: Option<Spanned<RawHttpsClient>>,
    updater_report: Option<Spanned<String>>,
    remote_write: Option<Spanned<RawRemoteWrite>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRemoteWrite {
    url: Spanned<String>,
    interval: Option<Spanned<String>>,
    max_age: Option<Spanned<String>>,
    max_samples: Option<Spanned<u64>>,
    auth: Option<Spanned<RawAuth>>,
    tls: Option<Spanned<RawHttpsClient>>,
}

pub(crate) struct Fleet;

impl Table for Fleet {
    type Raw = Option<Spanned<RawFleet>>;
    type Checked = Option<FleetConfig<Checked>>;
    type Resolved = Option<FleetConfig<Resolved>>;

    fn validate(raw: Self::Raw, cx: &mut Check<'_>) -> Option<Self::Checked> {
        maybe(raw, |f| fleet(f.into_inner(), cx))
    }

    fn resolve(c: Self::Checked, rx: &mut Resolver<'_>) -> Option<Self::Resolved> {
        maybe(c, |f| {
            let auth = maybe(f.auth, |a| rx.auth(a));
            let tls = rx.client(f.tls);
            let remote_write = maybe(f.remote_write, |w| {
                let auth = maybe(w.auth, |a| rx.auth(a));
                let tls = rx.client(w.tls);
                Some(RemoteWriteConfig {
                    url: w.url,
                    interval: w.interval,
                    max_age: w.max_age,
                    max_samples: w.max_samples,
                    auth: auth?,
                    tls: tls?,
                })
            });
            Some(FleetConfig {
                box_id: f.box_id.unwrap_or_else(default_box_id),
                auth: auth?,
                tls: tls?,
                url: f.url,
                interval: f.interval,
                updater_report: f.updater_report,
                remote_write: remote_write?,
            })
        })
    }
}

fn fleet(f: RawFleet, cx: &mut Check<'_>) -> Option<FleetConfig<Checked>> {
    let url = outbound::ops_url(cx, "fleet.url", &f.url);
    let interval = positive(cx, "fleet.interval", f.interval.as_ref(), 300);
    let box_id = maybe(f.box_id.as_ref(), |b| {
        let id = b.get_ref().trim();
        let ok = !id.is_empty()
            && id.len() <= 128
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
        if ok {
            Some(id.to_string())
        } else {
            cx.fail(
                b,
                "fleet.box_id must be 1-128 letters, digits, '-', '_', '.' or ':'",
            )
        }
    });
    let updater_report = f.updater_report.as_ref().map(|p| cx.path(p.get_ref()));
    let auth = maybe(f.auth.as_ref(), |a| {
        outbound::auth(cx, "fleet auth".into(), a)
    });
    let tls = client(cx, "fleet tls", f.tls);
    let remote_write = match f.remote_write {
        None => Some(None),
        Some(w) => remote_write(w.into_inner(), cx).map(Some),
    };
    Some(FleetConfig {
        url: url?,
        interval: interval?,
        box_id: box_id?,
        auth: auth?,
        tls: tls?,
        updater_report,
        remote_write: remote_write?,
    })
}

fn client(
    cx: &mut Check<'_>,
    what: &str,
    tls: Option<Spanned<RawHttpsClient>>,
) -> Option<<Checked as crate::config::Stage>::Client> {
    match tls {
        None => outbound::client(cx, what.into(), None, Default::default()),
        Some(t) => {
            let pos = cx.pos(&t);
            outbound::client(cx, what.into(), Some(t.into_inner()), pos)
        }
    }
}

/// A duration above zero, `default_secs` when absent.
fn positive(
    cx: &mut Check<'_>,
    field: &str,
    v: Option<&Spanned<String>>,
    default_secs: u64,
) -> Option<Duration> {
    match v {
        None => Some(Duration::from_secs(default_secs)),
        Some(v) => match cx.duration(field, v) {
            Some(d) if d.is_zero() => cx.fail(v, format!("{field} must be above zero")),
            d => d,
        },
    }
}

fn remote_write(w: RawRemoteWrite, cx: &mut Check<'_>) -> Option<RemoteWriteConfig<Checked>> {
    let url = outbound::ops_url(cx, "fleet.remote_write.url", &w.url);
    let interval = positive(cx, "fleet.remote_write.interval", w.interval.as_ref(), 30);
    let max_age = positive(cx, "fleet.remote_write.max_age", w.max_age.as_ref(), 3600);
    if let (Some(i), Some(a), Some(v)) = (interval, max_age, w.max_age.as_ref()) {
        if a < i {
            cx.error(
                v,
                "fleet.remote_write.max_age must be at least the interval (nothing could ever wait)",
            );
        }
    }
    let max_samples = match &w.max_samples {
        None => Some(200_000),
        Some(v) if (1_000..=10_000_000).contains(v.get_ref()) => Some(*v.get_ref() as usize),
        Some(v) => cx.fail(
            v,
            "fleet.remote_write.max_samples must be 1000 to 10000000 (each sample takes about 16 bytes of memory)",
        ),
    };
    let auth = maybe(w.auth.as_ref(), |a| {
        outbound::auth(cx, "fleet.remote_write auth".into(), a)
    });
    let tls = client(cx, "fleet.remote_write tls", w.tls);
    Some(RemoteWriteConfig {
        url: url?,
        interval: interval?,
        max_age: max_age?,
        max_samples: max_samples?,
        auth: auth?,
        tls: tls?,
    })
}

/// The box id when `[fleet] box_id` is not set: the host name.
pub fn default_box_id() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "unnamed-gateway".to_string())
}
