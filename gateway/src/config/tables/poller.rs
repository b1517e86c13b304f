//! `[[poller]]`: kind "fhir", HTTPS pollers that fetch results from the
//! cloud (a FHIR search by `_lastUpdated`) and journal them as ORU^R01
//! messages; kind "sftp", files fetched from a remote folder (clearinghouse
//! responses). Either way they flow through routes like anything an MLLP
//! listener receives. Pollers are sources: routes name them in `from`.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{outbound, sftp_endpoint};
use crate::auth::RawAuth;
use crate::config::check::{each, maybe, Check};
use crate::config::cross::{FactSheet, Namespace};
use crate::config::model::{
    AfterFetch, FetchFormat, PollerConfig, Pollers as PollerSet, SftpPollerConfig,
};
use crate::config::resolve::Resolver;
use crate::config::stage::{Checked, Resolved};
use crate::config::table::Table;
use crate::net::https_client::RawHttpsClient;
use crate::route::Glob;

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
    // sftp only.
    pattern: Option<Spanned<Patterns>>,
    move_to: Option<Spanned<String>>,
    max_file_bytes: Option<Spanned<u64>>,
    connect_timeout: Option<Spanned<String>>,
    format: Option<Spanned<String>>,
    usage: Option<Spanned<String>>,
    ack_dir: Option<Spanned<String>>,
}

/// `pattern = "*.835"` or `pattern = ["*.999", "*.835"]`.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum Patterns {
    One(String),
    Many(Vec<String>),
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
    type Checked = PollerSet<Checked>;
    type Resolved = PollerSet<Resolved>;

    fn facts(raw: &Self::Raw, sheet: &mut FactSheet<'_>) {
        for p in raw {
            sheet.name(Namespace::Source, "poller", &p.name);
        }
    }

    fn validate(raw: Self::Raw, cx: &mut Check<'_>) -> Option<Self::Checked> {
        let (sftp, fhir): (Vec<_>, Vec<_>) =
            raw.into_iter().partition(|p| p.kind.get_ref() == "sftp");
        let fhir = each(fhir, |p| poller(p, cx));
        let sftp = each(sftp, |p| sftp_poller(p, cx));
        Some(PollerSet {
            fhir: fhir?,
            sftp: sftp?,
        })
    }

    fn resolve(checked: Self::Checked, rx: &mut Resolver<'_>) -> Option<Self::Resolved> {
        let sftp = each(checked.sftp, |p| {
            Some(SftpPollerConfig {
                endpoint: sftp_endpoint::resolve(p.endpoint, rx)?,
                name: p.name,
                patterns: p.patterns,
                interval: p.interval,
                after: p.after,
                format: p.format,
                max_file_bytes: p.max_file_bytes,
                ack_dir: p.ack_dir,
                connect_timeout: p.connect_timeout,
                timeout: p.timeout,
            })
        });
        let fhir = each(checked.fhir, |p| {
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
        });
        Some(PollerSet {
            fhir: fhir?,
            sftp: sftp?,
        })
    }
}

/// The settings that only an sftp poller takes, if set on a fhir one.
fn sftp_only(p: &RawPoller, cx: &mut Check<'_>) {
    let name = p.name.get_ref();
    let say = |f: &str| format!("poller '{name}': {f} applies to kind = \"sftp\" pollers");
    if let Some(v) = &p.pattern {
        cx.error(v, say("pattern"));
    }
    if let Some(v) = &p.move_to {
        cx.error(v, say("move_to"));
    }
    if let Some(v) = &p.max_file_bytes {
        cx.error(v, say("max_file_bytes"));
    }
    if let Some(v) = &p.connect_timeout {
        cx.error(v, say("connect_timeout"));
    }
    if let Some(v) = &p.format {
        cx.error(v, say("format"));
    }
    if let Some(v) = &p.usage {
        cx.error(v, say("usage"));
    }
    if let Some(v) = &p.ack_dir {
        cx.error(v, say("ack_dir"));
    }
}

fn sftp_poller(p: RawPoller, cx: &mut Check<'_>) -> Option<SftpPollerConfig<Checked>> {
    let name = p.name.get_ref().clone();
    let what = format!("poller '{name}'");
    let mark = cx.mark();
    let fhir_only: [(&str, bool); 6] = [
        ("max_pages", p.max_pages.is_some()),
        ("sending_application", p.sending_application.is_some()),
        ("sending_facility", p.sending_facility.is_some()),
        ("receiving_application", p.receiving_application.is_some()),
        ("receiving_facility", p.receiving_facility.is_some()),
        ("[poller.tls]", p.tls.is_some()),
    ];
    for (field, set) in fhir_only {
        if set {
            cx.error(
                &p.kind,
                format!("{what}: {field} applies to kind = \"fhir\" pollers"),
            );
        }
    }
    let endpoint = sftp_endpoint::endpoint(&what, &p.url, p.auth.as_ref(), &p.kind, cx);
    let patterns = match &p.pattern {
        None => cx.fail(
            &p.kind,
            format!("{what}: needs pattern = [\"*.999\", \"*.835\"] (the remote files to take)"),
        ),
        Some(v) => {
            let list = match v.get_ref().clone() {
                Patterns::One(s) => vec![s],
                Patterns::Many(l) => l,
            };
            if list.is_empty() || list.iter().any(|g| g.is_empty() || g.contains('/')) {
                cx.fail(
                    v,
                    format!("{what}: pattern must be one or more file name globs without '/'"),
                )
            } else {
                Some(list.iter().map(|g| Glob::new(g)).collect::<Vec<_>>())
            }
        }
    };
    let after = match &p.move_to {
        None => Some(AfterFetch::Delete),
        Some(m) if m.get_ref().trim().is_empty() => {
            cx.fail(m, format!("{what}: move_to is empty: give a remote folder, or remove it to delete taken files"))
        }
        Some(m) => Some(AfterFetch::MoveTo(m.get_ref().clone())),
    };
    let format = fetch_format(&what, &p, cx);
    let ack_dir = match (&p.ack_dir, format) {
        (Some(a), Some(FetchFormat::File)) => {
            cx.fail(a, format!("{what}: ack_dir is for format = \"x12\" only"))
        }
        (Some(a), _) if a.get_ref().is_empty() => cx.fail(
            a,
            format!("{what}: ack_dir is empty: give the local folder where eCW reads responses, or remove it"),
        ),
        (a, _) => Some(a.as_ref().map(|a| cx.path(a.get_ref()))),
    };
    let mut dur = |v: &Option<Spanned<String>>, field: &str, default: Duration| {
        let Some(s) = v else { return Some(default) };
        let d = cx.duration(&format!("{what}: {field}"), s)?;
        if d < Duration::from_millis(100) {
            return cx.fail(s, format!("{what}: {field} must be at least 100ms"));
        }
        Some(d)
    };
    let interval = dur(&p.interval, "interval", Duration::from_secs(300));
    let timeout = dur(&p.timeout, "timeout", Duration::from_secs(30));
    let connect_timeout = dur(
        &p.connect_timeout,
        "connect_timeout",
        Duration::from_secs(20),
    );
    let max_file_bytes = match &p.max_file_bytes {
        None => Some(64 << 20),
        Some(m) if *m.get_ref() == 0 => cx.fail(m, format!("{what}: max_file_bytes must be > 0")),
        Some(m) => Some(*m.get_ref()),
    };
    if !cx.clean_since(mark) {
        return None;
    }
    Some(SftpPollerConfig {
        name,
        endpoint: endpoint?,
        patterns: patterns?,
        interval: interval?,
        after: after?,
        format: format?,
        max_file_bytes: max_file_bytes?,
        ack_dir: ack_dir?,
        connect_timeout: connect_timeout?,
        timeout: timeout?,
    })
}

/// `format = "x12"` (default) with its `usage`, or `"file"`.
fn fetch_format(what: &str, p: &RawPoller, cx: &mut Check<'_>) -> Option<FetchFormat> {
    let usage = match &p.usage {
        None => None,
        Some(u) => match u.get_ref().as_str() {
            "T" => Some(x12::Usage::Test),
            "P" => Some(x12::Usage::Production),
            other => {
                return cx.fail(
                    u,
                    format!("{what}: usage \"{other}\": use \"T\" (test) or \"P\" (production), as ISA15 says"),
                )
            }
        },
    };
    match p.format.as_ref().map(|f| (f, f.get_ref().as_str())) {
        None | Some((_, "x12")) => Some(FetchFormat::X12 { usage }),
        Some((_, "file")) => match &p.usage {
            Some(u) => cx.fail(u, format!("{what}: usage is for format = \"x12\" only")),
            None => Some(FetchFormat::File),
        },
        Some((f, other)) => cx.fail(
            f,
            format!("{what}: format \"{other}\" is not supported; use \"x12\" (checked X12 files, the default) or \"file\" (any file, journaled as it is)"),
        ),
    }
}

fn poller(p: RawPoller, cx: &mut Check<'_>) -> Option<PollerConfig<Checked>> {
    let name = p.name.get_ref().clone();
    if p.kind.get_ref() != "fhir" {
        return cx.fail(
            &p.kind,
            format!("poller '{name}': kind \"{}\" is not supported; use kind = \"fhir\" (a FHIR search returning DiagnosticReports) or \"sftp\" (files from a remote folder)", p.kind.get_ref()),
        );
    }
    sftp_only(&p, cx);
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
                ..Default::default()
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
