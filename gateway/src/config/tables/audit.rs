//! `[audit]`: the audit trail's own retention (default six years, HIPAA
//! 45 CFR 164.316), its size cap, and `[audit.syslog]`, live forwarding
//! to a collector (docs/audit.md).

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config::check::Check;
use crate::config::model::{AuditConfig, SyslogConfig};
use crate::config::resolve::Resolver;
use crate::config::table::Table;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAudit {
    retention_days: Option<Spanned<f64>>,
    max_mb: Option<Spanned<u64>>,
    syslog: Option<Spanned<RawSyslog>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSyslog {
    /// `host:port` of the collector's RFC 5425 (syslog over TLS) listener.
    address: Spanned<String>,
    /// PEM CA the collector's certificate must chain to.
    ca: Spanned<String>,
    client_cert: Option<Spanned<String>>,
    client_key: Option<Spanned<String>>,
    /// Name to verify the collector's certificate against (default: the
    /// host of `address`).
    server_name: Option<Spanned<String>>,
    hostname: Option<Spanned<String>>,
    app_name: Option<Spanned<String>>,
}

pub(crate) struct Audit;

/// Longest audit retention accepted (ten years).
const MAX_DAYS: f64 = 3650.0;

impl Table for Audit {
    type Raw = Option<RawAudit>;
    type Checked = AuditConfig;
    type Resolved = AuditConfig;

    fn validate(raw: Self::Raw, cx: &mut Check<'_>) -> Option<AuditConfig> {
        let mut a = AuditConfig::default();
        let Some(raw) = raw else { return Some(a) };
        let mark = cx.mark();
        if let Some(d) = &raw.retention_days {
            let days = *d.get_ref();
            if (1.0..=MAX_DAYS).contains(&days) {
                a.retention = Duration::from_secs_f64(days * 86400.0);
            } else {
                cx.error(
                    d,
                    format!("audit.retention_days must be from 1 to {MAX_DAYS} (got {days}); HIPAA asks for six years: 2190"),
                );
            }
        }
        if let Some(m) = &raw.max_mb {
            if *m.get_ref() == 0 {
                cx.error(
                    m,
                    "audit.max_mb must be at least 1 (the audit trail's size cap, in MiB)",
                );
            }
            a.max_bytes = m.get_ref().saturating_mul(1024 * 1024);
        }
        if let Some(sl) = raw.syslog {
            a.syslog = syslog(sl, cx);
        }
        cx.clean_since(mark).then_some(a)
    }

    fn resolve(c: AuditConfig, _: &mut Resolver<'_>) -> Option<AuditConfig> {
        Some(c)
    }
}

/// RFC 5424 HOSTNAME and APP-NAME: printable US-ASCII, no spaces, at most
/// 255 and 48 characters.
fn header_field(cx: &mut Check<'_>, v: &Spanned<String>, what: &str, max: usize) -> Option<String> {
    let s = v.get_ref();
    if s.is_empty() || s.len() > max || !s.bytes().all(|b| (33..=126).contains(&b)) {
        return cx.fail(
            v,
            format!("audit.syslog.{what} must be 1 to {max} printable ASCII characters without spaces (RFC 5424)"),
        );
    }
    Some(s.clone())
}

fn syslog(raw: Spanned<RawSyslog>, cx: &mut Check<'_>) -> Option<SyslogConfig> {
    let r = raw.into_inner();
    let address = r.address.get_ref().trim().to_string();
    let host =
        match address.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0) => {
                h.trim_start_matches('[').trim_end_matches(']').to_string()
            }
            _ => return cx.fail(
                &r.address,
                "audit.syslog.address must be host:port of the collector (RFC 5425 uses port 6514)",
            ),
        };
    let client = match (&r.client_cert, &r.client_key) {
        (Some(c), Some(k)) => Some((cx.path(c.get_ref()), cx.path(k.get_ref()))),
        (None, None) => None,
        (Some(c), None) | (None, Some(c)) => {
            return cx.fail(
                c,
                "audit.syslog: client_cert and client_key go together (or leave both out)",
            )
        }
    };
    let hostname = match &r.hostname {
        Some(h) => header_field(cx, h, "hostname", 255)?,
        None => crate::config::default_box_id(),
    };
    let app_name = match &r.app_name {
        Some(a) => header_field(cx, a, "app_name", 48)?,
        None => "clinic-gateway".into(),
    };
    Some(SyslogConfig {
        address,
        server_name: r.server_name.map(|s| s.into_inner()).unwrap_or(host),
        ca: cx.path(r.ca.get_ref()),
        client,
        hostname,
        app_name,
    })
}
