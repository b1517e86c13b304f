//! `[fleet]`: the periodic heartbeat to the MSP. The box id defaults to the
//! host name, read by `resolve`.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::outbound;
use crate::auth::RawAuth;
use crate::config::check::{maybe, Check};
use crate::config::model::FleetConfig;
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
            Some(FleetConfig {
                box_id: f.box_id.unwrap_or_else(default_box_id),
                auth: auth?,
                tls: tls?,
                url: f.url,
                interval: f.interval,
                updater_report: f.updater_report,
            })
        })
    }
}

fn fleet(f: RawFleet, cx: &mut Check<'_>) -> Option<FleetConfig<Checked>> {
    let url = outbound::ops_url(cx, "fleet.url", &f.url);
    let interval = match &f.interval {
        None => Some(Duration::from_secs(300)),
        Some(v) => match cx.duration("fleet.interval", v) {
            Some(d) if d.is_zero() => cx.fail(v, "fleet.interval must be above zero"),
            d => d,
        },
    };
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
    let tls = match f.tls {
        None => outbound::client(cx, "fleet tls".into(), None, Default::default()),
        Some(t) => {
            let pos = cx.pos(&t);
            outbound::client(cx, "fleet tls".into(), Some(t.into_inner()), pos)
        }
    };
    Some(FleetConfig {
        url: url?,
        interval: interval?,
        box_id: box_id?,
        auth: auth?,
        tls: tls?,
        updater_report,
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
