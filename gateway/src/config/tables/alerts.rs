//! `[alerts]`: thresholds of the alert rules and where they are sent (a
//! webhook, Alertmanager). The rules run with their defaults when the table is absent.

use serde::Deserialize;
use toml::Spanned;

use super::alert_contacts::{self, RawEmail, RawOfficeHours};
use super::outbound;
use crate::auth::RawAuth;
use crate::config::check::{maybe, Check};
use crate::config::cross::{FactSheet, Namespace};
use crate::config::model::{AlertsConfig, SilenceRule, StorageConfig, WebhookConfig};
use crate::config::resolve::Resolver;
use crate::config::stage::{Checked, Resolved};
use crate::config::table::Table;
use crate::net::https_client::RawHttpsClient;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAlerts {
    evaluate_every: Option<Spanned<String>>,
    pending_max: Option<Spanned<u64>>,
    oldest_pending_max: Option<Spanned<String>>,
    destination_down_max: Option<Spanned<String>>,
    dead_letters: Option<bool>,
    disk_warn_percent: Option<Spanned<u8>>,
    cert_warn_days: Option<Spanned<Vec<u32>>>,
    restart_alert_for: Option<Spanned<String>>,
    webhook_url: Option<Spanned<String>>,
    reminder: Option<Spanned<String>>,
    webhook_auth: Option<Spanned<RawAuth>>,
    webhook_tls: Option<Spanned<RawHttpsClient>>,
    alertmanager_url: Option<Spanned<String>>,
    alertmanager_auth: Option<Spanned<RawAuth>>,
    alertmanager_tls: Option<Spanned<RawHttpsClient>>,
    /// The `site` label on Alertmanager alerts.
    site: Option<Spanned<String>>,
    /// `[[alerts.silence]]`: a feed that goes quiet.
    #[serde(default)]
    silence: Vec<RawSilence>,
    /// `[alerts.email]` and `[alerts.office_hours]` (`super::alert_contacts`).
    email: Option<RawEmail>,
    office_hours: Option<RawOfficeHours>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSilence {
    name: Option<Spanned<String>>,
    source: Spanned<String>,
    #[serde(rename = "type")]
    message_type: Spanned<String>,
    max: Spanned<String>,
    severity: Option<Spanned<String>>,
    /// `"always"` (default) or `"office"`.
    hours: Option<Spanned<String>>,
}

pub(crate) struct Alerts;

impl Table for Alerts {
    // Not `Spanned`: `[[alerts.silence]]` alone defines the table
    // implicitly, and toml gives an implicit table no span.
    type Raw = Option<RawAlerts>;
    type Checked = AlertsConfig<Checked>;
    type Resolved = AlertsConfig<Resolved>;

    fn facts(raw: &Self::Raw, sheet: &mut FactSheet<'_>) {
        for s in raw.iter().flat_map(|a| &a.silence) {
            let owner = format!("alerts.silence '{}'", silence_name(s));
            sheet.reference(Namespace::Source, owner, "source", &s.source);
        }
    }

    fn validate(raw: Self::Raw, cx: &mut Check<'_>) -> Option<Self::Checked> {
        let mut c = AlertsConfig::defaults(&StorageConfig::default());
        c.disk_warn_percent = cx.facts().storage_warn_at_percent;
        match raw {
            None => Some(c),
            Some(a) => alerts(a, c, cx),
        }
    }

    fn resolve(c: Self::Checked, rx: &mut Resolver<'_>) -> Option<Self::Resolved> {
        let webhook = maybe(c.webhook, |w| resolve_endpoint(w, rx));
        let alertmanager = maybe(c.alertmanager, |w| resolve_endpoint(w, rx));
        let email = maybe(c.email, |e| alert_contacts::resolve_email(e, rx));
        Some(AlertsConfig {
            webhook: webhook?,
            alertmanager: alertmanager?,
            email: email?,
            office_hours: c.office_hours,
            site: c.site,
            silence: c.silence,
            evaluate_every: c.evaluate_every,
            pending_max: c.pending_max,
            oldest_pending_max: c.oldest_pending_max,
            destination_down_max: c.destination_down_max,
            dead_letters: c.dead_letters,
            disk_warn_percent: c.disk_warn_percent,
            cert_warn_days: c.cert_warn_days,
            restart_alert_for: c.restart_alert_for,
            reminder: c.reminder,
        })
    }
}

fn resolve_endpoint(
    w: WebhookConfig<Checked>,
    rx: &mut Resolver<'_>,
) -> Option<WebhookConfig<Resolved>> {
    let auth = maybe(w.auth, |a| rx.auth(a));
    let tls = rx.client(w.tls);
    Some(WebhookConfig {
        url: w.url,
        auth: auth?,
        tls: tls?,
    })
}

/// `alerts.<name>_url` with its `_auth` and `_tls`: checked like the
/// webhook's (https, or http on loopback).
fn endpoint(
    cx: &mut Check<'_>,
    name: &str,
    url: Option<&Spanned<String>>,
    auth: Option<&Spanned<RawAuth>>,
    tls: Option<Spanned<RawHttpsClient>>,
) -> Option<WebhookConfig<Checked>> {
    let Some(u) = url else {
        if let Some(x) = auth {
            cx.error(x, format!("alerts.{name}_auth needs alerts.{name}_url"));
        }
        return None;
    };
    let url = outbound::ops_url(cx, &format!("alerts.{name}_url"), u);
    let auth = maybe(auth, |x| {
        outbound::auth(cx, format!("alerts.{name} auth"), x)
    });
    let tls = match tls {
        None => outbound::client(cx, format!("alerts.{name} tls"), None, Default::default()),
        Some(t) => {
            let pos = cx.pos(&t);
            outbound::client(cx, format!("alerts.{name} tls"), Some(t.into_inner()), pos)
        }
    };
    Some(WebhookConfig {
        url: url?,
        auth: auth?,
        tls: tls?,
    })
}

/// A silence rule's name: as given, else "SOURCE TYPE".
fn silence_name(s: &RawSilence) -> String {
    match &s.name {
        Some(n) => n.get_ref().trim().to_string(),
        None => format!("{} {}", s.source.get_ref(), s.message_type.get_ref()),
    }
}

fn silence(cx: &mut Check<'_>, s: &RawSilence, has_office_hours: bool) -> Option<SilenceRule> {
    let name = silence_name(s);
    let field = format!("alerts.silence '{name}'");
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        let at = s.name.as_ref().unwrap_or(&s.source);
        return cx.fail(
            at,
            format!("{field}: name must be 1 to 64 printable characters"),
        );
    }
    let t = s.message_type.get_ref();
    let type_ok = t.len() <= 32
        && !t.is_empty()
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || "^_*?".contains(c));
    if !type_ok {
        return cx.fail(
            &s.message_type,
            format!(
                "{field}: type must be a message type or a glob such as \"ORU^R01\" or \"ADT^*\""
            ),
        );
    }
    let max = positive(cx, &format!("{field} max"), &s.max)?;
    let critical = match s.severity.as_ref().map(|v| v.get_ref().as_str()) {
        None | Some("warning") => false,
        Some("critical") => true,
        Some(other) => {
            let at = s.severity.as_ref().unwrap_or(&s.max);
            return cx.fail(
                at,
                format!("{field}: severity is \"warning\" or \"critical\", not {other:?}"),
            );
        }
    };
    let office_hours = match &s.hours {
        None => false,
        Some(v) => match v.get_ref().as_str() {
            "always" => false,
            "office" if has_office_hours => true,
            "office" => {
                return cx.fail(
                    v,
                    format!("{field} hours = \"office\" needs [alerts.office_hours] (the site's time zone and weekly hours): add it, or use hours = \"always\""),
                )
            }
            other => {
                return cx.fail(
                    v,
                    format!("{field}: hours is \"always\" or \"office\", not {other:?}"),
                )
            }
        },
    };
    Some(SilenceRule {
        name,
        source: s.source.get_ref().clone(),
        message_type: t.clone(),
        max,
        critical,
        office_hours,
    })
}

/// A duration above zero.
fn positive(cx: &mut Check<'_>, field: &str, v: &Spanned<String>) -> Option<std::time::Duration> {
    let d = cx.duration(field, v)?;
    if d.is_zero() {
        return cx.fail(v, format!("{field} must be above zero"));
    }
    Some(d)
}

fn alerts(
    a: RawAlerts,
    mut c: AlertsConfig<Checked>,
    cx: &mut Check<'_>,
) -> Option<AlertsConfig<Checked>> {
    let mark = cx.mark();
    if let Some(v) = &a.evaluate_every {
        c.evaluate_every = positive(cx, "alerts.evaluate_every", v).unwrap_or(c.evaluate_every);
    }
    if let Some(v) = &a.pending_max {
        if *v.get_ref() == 0 {
            cx.error(v, "alerts.pending_max must be at least 1");
        }
        c.pending_max = *v.get_ref();
    }
    if let Some(v) = &a.oldest_pending_max {
        c.oldest_pending_max =
            positive(cx, "alerts.oldest_pending_max", v).unwrap_or(c.oldest_pending_max);
    }
    if let Some(v) = &a.destination_down_max {
        // Zero is allowed here: alert as soon as a destination is down.
        c.destination_down_max = cx
            .duration("alerts.destination_down_max", v)
            .unwrap_or(c.destination_down_max);
    }
    if let Some(v) = a.dead_letters {
        c.dead_letters = v;
    }
    if let Some(v) = &a.disk_warn_percent {
        let p = *v.get_ref();
        if p == 0 || p > 100 {
            cx.error(
                v,
                format!("alerts.disk_warn_percent must be 1..=100 (got {p})"),
            );
        }
        c.disk_warn_percent = p;
    }
    if let Some(v) = &a.cert_warn_days {
        let mut days = v.get_ref().clone();
        if days.is_empty() || days.iter().any(|d| *d == 0 || *d > 3650) {
            cx.error(
                v,
                "alerts.cert_warn_days must list days between 1 and 3650, e.g. [90, 60, 30, 7, 1]",
            );
        }
        days.sort_unstable_by(|a, b| b.cmp(a));
        days.dedup();
        c.cert_warn_days = days;
    }
    if let Some(v) = &a.restart_alert_for {
        c.restart_alert_for =
            positive(cx, "alerts.restart_alert_for", v).unwrap_or(c.restart_alert_for);
    }
    if let Some(v) = &a.reminder {
        c.reminder = positive(cx, "alerts.reminder", v).unwrap_or(c.reminder);
    }
    c.webhook = endpoint(
        cx,
        "webhook",
        a.webhook_url.as_ref(),
        a.webhook_auth.as_ref(),
        a.webhook_tls,
    );
    c.alertmanager = endpoint(
        cx,
        "alertmanager",
        a.alertmanager_url.as_ref(),
        a.alertmanager_auth.as_ref(),
        a.alertmanager_tls,
    );
    let mut names = std::collections::BTreeSet::new();
    let has_office_hours = a.office_hours.is_some();
    for s in &a.silence {
        if let Some(rule) = silence(cx, s, has_office_hours) {
            if !names.insert(rule.name.clone()) {
                let at = s.name.as_ref().unwrap_or(&s.source);
                cx.error(
                    at,
                    format!(
                        "alerts.silence '{}' is named twice: give each rule its own name",
                        rule.name
                    ),
                );
            }
            c.silence.push(rule);
        }
    }
    c.email = a.email.and_then(|e| alert_contacts::email(cx, e));
    c.office_hours = a
        .office_hours
        .and_then(|h| alert_contacts::office_hours(cx, h));
    if let Some(site) = &a.site {
        let text = site.get_ref().trim();
        if text.is_empty() || text.len() > 128 || text.chars().any(char::is_control) {
            cx.error(site, "alerts.site must be 1 to 128 printable characters (the site label on Alertmanager alerts)");
        }
        c.site = text.to_string();
    }
    cx.clean_since(mark).then_some(c)
}
