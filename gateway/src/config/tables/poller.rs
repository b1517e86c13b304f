//! `[[poller]]`: HTTPS pollers that fetch results from the cloud (a FHIR
//! search by `_lastUpdated`) and journal them as ORU^R01 messages, so they
//! flow through routes like anything an MLLP listener receives. Pollers are
//! sources: routes name them in `from`.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::outbound;
use crate::auth::RawAuth;
use crate::config::check::{each, maybe, Check};
use crate::config::cross::{FactSheet, Namespace};
use crate::config::model::PollerConfig;
use crate::config::resolve::Resolver;
use crate::config::stage::{Checked, Resolved};
use crate::config::table::Table;
use crate::net::https_client::RawHttpsClient;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPoller {
    name: Spanned<String>,
    kind: Spanned<String>,
    url: Spanned<String>,
    interval: Option<Spanned<String>>,
    max_pages: Option<Spanned<u64>>,
    sending_application: Option<String>,
    sending_facility: Option<String>,
    receiving_application: Option<String>,
    receiving_facility: Option<String>,
    auth: Option<Spanned<RawAuth>>,
    tls: Option<RawPollerTls>,
    timeout: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPollerTls {
    ca_file: Option<Spanned<String>>,
    #[serde(default)]
    spki_sha256_pins: Vec<String>,
}

pub(crate) struct Pollers;

impl Table for Pollers {
    type Raw = Vec<RawPoller>;
    type Checked = Vec<PollerConfig<Checked>>;
    type Resolved = Vec<PollerConfig<Resolved>>;

    fn facts(raw: &Self::Raw, sheet: &mut FactSheet<'_>) {
        for p in raw {
            sheet.name(Namespace::Source, "poller", &p.name);
        }
    }

    fn validate(raw: Self::Raw, cx: &mut Check<'_>) -> Option<Self::Checked> {
        each(raw, |p| poller(p, cx))
    }

    fn resolve(checked: Self::Checked, rx: &mut Resolver<'_>) -> Option<Self::Resolved> {
        each(checked, |p| {
            let auth = maybe(p.auth, |a| rx.auth(a));
            let tls = rx.client(p.tls);
            Some(PollerConfig {
                auth: auth?,
                tls: tls?,
                name: p.name,
                url: p.url,
                interval: p.interval,
                max_pages: p.max_pages,
                sending_application: p.sending_application,
                sending_facility: p.sending_facility,
                receiving_application: p.receiving_application,
                receiving_facility: p.receiving_facility,
            })
        })
    }
}

fn poller(p: RawPoller, cx: &mut Check<'_>) -> Option<PollerConfig<Checked>> {
    let name = p.name.get_ref().clone();
    if p.kind.get_ref() != "fhir" {
        return cx.fail(
            &p.kind,
            format!("poller '{name}': kind \"{}\" is not supported; use kind = \"fhir\" (a FHIR search returning DiagnosticReports)", p.kind.get_ref()),
        );
    }
    let url = match reqwest::Url::parse(p.url.get_ref()) {
        Ok(u) if (u.scheme() == "https" || u.scheme() == "http") && u.host().is_some() => Some(u),
        _ => cx.fail(
            &p.url,
            format!("poller '{name}': url must be an http(s) FHIR search URL, e.g. https://cloud.example.com/fhir/DiagnosticReport?_include=DiagnosticReport:result"),
        ),
    };
    let mut dur = |v: &Option<Spanned<String>>, field: &str, default: Duration| {
        let Some(s) = v else { return Some(default) };
        let d = cx.duration(&format!("poller '{name}': {field}"), s)?;
        if d < Duration::from_millis(100) {
            return cx.fail(
                s,
                format!("poller '{name}': {field} must be at least 100ms"),
            );
        }
        Some(d)
    };
    let interval = dur(&p.interval, "interval", Duration::from_secs(60));
    let timeout = dur(&p.timeout, "timeout", Duration::from_secs(30));
    let max_pages = match &p.max_pages {
        None => Some(20),
        Some(m) if *m.get_ref() == 0 || *m.get_ref() > 10_000 => {
            cx.fail(m, format!("poller '{name}': max_pages must be 1..=10000"))
        }
        Some(m) => Some(*m.get_ref() as usize),
    };
    let auth = maybe(p.auth.as_ref(), |a| {
        outbound::auth(cx, format!("poller '{name}': auth"), a)
    });
    let tls = match &p.tls {
        None => outbound::client(cx, format!("poller '{name}'"), None, Default::default()),
        Some(t) => {
            let raw = RawHttpsClient {
                ca_file: t.ca_file.as_ref().map(|c| c.get_ref().into()),
                spki_sha256_pins: t.spki_sha256_pins.clone(),
                connect_timeout_secs: None,
                request_timeout_secs: None,
            };
            let pos = cx.pos(t.ca_file.as_ref().unwrap_or(&p.url));
            outbound::client(cx, format!("poller '{name}'"), Some(raw), pos)
        }
    };
    let url = url?;
    if url.scheme() == "http" && p.auth.is_some() && !outbound::is_loopback(&url) {
        return cx.fail(
            &p.url,
            format!("poller '{name}': credentials over plain http would travel unencrypted: use https://"),
        );
    }
    let mut tls = tls?;
    tls.value.request_timeout = timeout?;
    Some(PollerConfig {
        name,
        url: url.to_string(),
        interval: interval?,
        max_pages: max_pages?,
        sending_application: p.sending_application.unwrap_or_else(|| "CLOUD".into()),
        sending_facility: p.sending_facility.unwrap_or_default(),
        receiving_application: p.receiving_application.unwrap_or_else(|| "ECW".into()),
        receiving_facility: p.receiving_facility.unwrap_or_default(),
        auth: auth?,
        tls,
    })
}
