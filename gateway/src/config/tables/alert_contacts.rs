//! `[alerts.email]` and `[alerts.office_hours]`: who hears of an alert,
//! by which relay, and when the clinic is open. Every error names the
//! field (`alerts.email.server`, `alerts.office_hours.tuesday`, …).

use serde::Deserialize;
use toml::Spanned;

use super::outbound;
use crate::auth::{AuthSpec, RawAuth};
use crate::config::check::{maybe, Check};
use crate::config::model::EmailConfig;
use crate::config::resolve::Resolver;
use crate::config::stage::{Checked, Resolved};
use crate::net::https_client::RawHttpsClient;
use crate::ops::alerts::office_hours::{self, OfficeHours, DAYS};
use crate::ops::alerts::Security;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEmail {
    /// `host` or `host:port` (587 for STARTTLS, 465 for TLS by default).
    server: Spanned<String>,
    security: Option<Spanned<String>>,
    from: Spanned<String>,
    #[serde(default)]
    clinic: Vec<Spanned<String>>,
    #[serde(default)]
    msp: Vec<Spanned<String>>,
    auth: Option<Spanned<RawAuth>>,
    tls: Option<Spanned<RawHttpsClient>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOfficeHours {
    time_zone: Spanned<String>,
    monday: Option<Spanned<String>>,
    tuesday: Option<Spanned<String>>,
    wednesday: Option<Spanned<String>>,
    thursday: Option<Spanned<String>>,
    friday: Option<Spanned<String>>,
    saturday: Option<Spanned<String>>,
    sunday: Option<Spanned<String>>,
    #[serde(default)]
    holidays: Vec<Spanned<String>>,
}

pub(crate) fn email(cx: &mut Check<'_>, e: RawEmail) -> Option<EmailConfig<Checked>> {
    let mark = cx.mark();
    let security = match e.security.as_ref().map(|s| s.get_ref().as_str()) {
        None | Some("starttls") => Security::StartTls,
        Some("tls") => Security::Tls,
        Some(other) => {
            let at = e.security.as_ref().unwrap_or(&e.server);
            cx.error(at, format!("alerts.email.security is \"starttls\" (port 587) or \"tls\" (port 465), not {other:?}; mail is never sent in clear"));
            Security::StartTls
        }
    };
    let (host, port) = server(cx, &e.server, security).unwrap_or_default();
    let from = address(cx, "alerts.email.from", &e.from).unwrap_or_default();
    let mut list = |field: &str, v: &[Spanned<String>]| -> Vec<String> {
        v.iter()
            .enumerate()
            .filter_map(|(i, a)| address(cx, &format!("alerts.email.{field}[{i}]"), a))
            .collect()
    };
    let clinic = list("clinic", &e.clinic);
    let msp = list("msp", &e.msp);
    if e.clinic.is_empty() && e.msp.is_empty() {
        cx.error(
            &e.from,
            "alerts.email: list at least one address in clinic = [...] (told inside office hours) or msp = [...] (told outside them)",
        );
    }
    let auth = maybe(e.auth.as_ref(), |a| {
        let spec = outbound::auth(cx, "alerts.email auth".into(), a)?;
        if !matches!(spec.value, AuthSpec::Basic { .. }) {
            return cx.fail(a, "alerts.email auth: SMTP AUTH takes type = \"basic\" with username and password (or password_file)");
        }
        Some(spec)
    });
    let tls = match e.tls {
        None => outbound::client(cx, "alerts.email tls".into(), None, Default::default()),
        Some(t) => {
            let pos = cx.pos(&t);
            outbound::client(cx, "alerts.email tls".into(), Some(t.into_inner()), pos)
        }
    };
    let (auth, tls) = (auth?, tls?);
    cx.clean_since(mark).then_some(EmailConfig {
        host,
        port,
        security,
        from,
        clinic,
        msp,
        auth,
        tls,
    })
}

pub(crate) fn resolve_email(
    e: EmailConfig<Checked>,
    rx: &mut Resolver<'_>,
) -> Option<EmailConfig<Resolved>> {
    let auth = maybe(e.auth, |a| rx.auth(a));
    let tls = rx.client(e.tls);
    Some(EmailConfig {
        host: e.host,
        port: e.port,
        security: e.security,
        from: e.from,
        clinic: e.clinic,
        msp: e.msp,
        auth: auth?,
        tls: tls?,
    })
}

/// `host` or `host:port`; `[v6]:port` for an IPv6 address.
fn server(cx: &mut Check<'_>, v: &Spanned<String>, security: Security) -> Option<(String, u16)> {
    let text = v.get_ref().trim();
    let default = match security {
        Security::StartTls => 587,
        Security::Tls => 465,
    };
    let (host, port) = match text.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.ends_with(']') => match p.parse::<u16>() {
            Ok(p) if p > 0 => (h, p),
            _ => {
                return cx.fail(
                    v,
                    format!("alerts.email.server: '{p}' is not a port (1 to 65535)"),
                )
            }
        },
        _ => (text, default),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c));
    if !ok {
        return cx.fail(
            v,
            format!(
                "alerts.email.server: '{text}' is not a host name such as \"smtp.example.org:587\""
            ),
        );
    }
    Some((host.to_string(), port))
}

/// A bare address `local@domain`: printable ASCII, no spaces or angle
/// brackets (it goes into `MAIL FROM:<…>` and the headers as is).
fn address(cx: &mut Check<'_>, field: &str, v: &Spanned<String>) -> Option<String> {
    let a = v.get_ref().trim();
    let ok = a.len() <= 254
        && a.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty() && !d.contains('@'))
        && a.chars()
            .all(|c| c.is_ascii_graphic() && !"<>()[]\\,;:\"".contains(c));
    if !ok {
        return cx.fail(
            v,
            format!("{field}: '{a}' is not an e-mail address such as \"manager@clinic.example\" (no name, no angle brackets)"),
        );
    }
    Some(a.to_string())
}

pub(crate) fn office_hours(cx: &mut Check<'_>, h: RawOfficeHours) -> Option<OfficeHours> {
    let mark = cx.mark();
    let days = [
        &h.monday,
        &h.tuesday,
        &h.wednesday,
        &h.thursday,
        &h.friday,
        &h.saturday,
        &h.sunday,
    ];
    let mut week: [Vec<office_hours::Span>; 7] = Default::default();
    for ((name, _), (slot, raw)) in DAYS.iter().zip(week.iter_mut().zip(days)) {
        if let Some(v) = raw {
            match office_hours::parse_spans(v.get_ref()) {
                Ok(s) => *slot = s,
                Err(e) => cx.error(v, format!("alerts.office_hours.{name}: {e}")),
            }
        }
    }
    let mut holidays = Vec::new();
    let mut at = Vec::new();
    for (i, v) in h.holidays.iter().enumerate() {
        match office_hours::parse_holiday(v.get_ref()) {
            Ok(d) => {
                holidays.push(d);
                at.push((i, v));
            }
            Err(e) => cx.error(v, format!("alerts.office_hours.holidays[{i}]: {e}")),
        }
    }
    if let Some((a, b)) = office_hours::overlapping(&holidays) {
        let ((i, first), (j, second)) = (at[a], at[b]);
        cx.error(
            second,
            format!(
                "alerts.office_hours.holidays[{j}]: '{}' overlaps holidays[{i}] '{}': list each day once",
                second.get_ref(),
                first.get_ref()
            ),
        );
    }
    let hours = match OfficeHours::new(h.time_zone.get_ref().trim(), week, holidays) {
        Ok(hours) => Some(hours),
        Err(e) => cx.fail(&h.time_zone, format!("alerts.office_hours.time_zone: {e}")),
    };
    if cx.clean_since(mark) {
        hours
    } else {
        None
    }
}
