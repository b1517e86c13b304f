//! Alerts to Prometheus Alertmanager's API (`POST /api/v2/alerts`), so an
//! MSP routes them with what it already runs (PagerDuty, Opsgenie, e-mail,
//! Slack).
//!
//! Alertmanager's contract, as Prometheus keeps it: an active alert is
//! posted again regularly with an `endsAt` a few periods ahead (if the box
//! goes silent, Alertmanager resolves it by itself when that passes); a
//! resolved alert is posted once with `endsAt` = now. Labels: `alertname`
//! (the rule), `rule`, `severity`, `box`, `site` (when set), `destination`
//! (destination rules), `key` (the rest of the alert id) and, with office
//! hours, `audience` (`clinic`, `msp` or `both`: who it is for when it
//! started, so the label never changes while it lasts). Names and counts
//! only: no label or annotation takes text from a message.

use std::time::Duration;

use super::alert::{Alert, Rule};
use super::board::Event;
use super::office_hours::OfficeHours;
use crate::ops::clock;
use crate::ops::webhook::Poster;

/// How often active alerts are posted again.
pub const RESEND: Duration = Duration::from_secs(60);
/// Resolved alerts not yet accepted are kept to at most this many (the
/// oldest dropped, and logged).
const UNSENT_MAX: usize = 256;

/// One alert in Alertmanager's `postableAlerts` shape. Pure.
pub fn postable(a: &Alert, box_id: &str, site: &str, ends_at_ms: u64) -> serde_json::Value {
    let key =
        a.id.strip_prefix(a.rule.as_str())
            .and_then(|k| k.strip_prefix('/'))
            .unwrap_or("");
    let mut labels = serde_json::Map::new();
    labels.insert("alertname".into(), a.rule.as_str().into());
    labels.insert("rule".into(), a.rule.as_str().into());
    labels.insert("severity".into(), a.severity.as_str().into());
    labels.insert("box".into(), box_id.into());
    if !site.is_empty() {
        labels.insert("site".into(), site.into());
    }
    let per_destination = matches!(
        a.rule,
        Rule::DestinationDown | Rule::PendingDepth | Rule::OldestPending | Rule::DeadLetters
    );
    if per_destination {
        labels.insert("destination".into(), key.into());
    } else if !key.is_empty() {
        labels.insert("key".into(), key.into());
    }
    serde_json::json!({
        "labels": labels,
        "annotations": {
            "summary": a.title,
            "description": a.action,
            "affected": a.affected,
        },
        "startsAt": clock::iso8601(a.since_ms),
        "endsAt": clock::iso8601(ends_at_ms),
    })
}

/// The sender: what to post each evaluation, and resolves kept until
/// Alertmanager has taken them.
pub struct Forwarder {
    poster: Poster,
    box_id: String,
    site: String,
    last_sent_ms: Option<u64>,
    unsent_resolved: Vec<Alert>,
    hours: Option<OfficeHours>,
}

impl Forwarder {
    pub fn new(poster: Poster, box_id: String, site: String) -> Forwarder {
        Forwarder {
            poster,
            box_id,
            site,
            last_sent_ms: None,
            unsent_resolved: Vec::new(),
            hours: None,
        }
    }

    /// Label each alert with its `audience` under these office hours.
    pub fn with_office_hours(mut self, hours: Option<OfficeHours>) -> Forwarder {
        self.hours = hours;
        self
    }

    fn postable(&self, a: &Alert, ends_at_ms: u64) -> serde_json::Value {
        let mut v = postable(a, &self.box_id, &self.site, ends_at_ms);
        if let Some(h) = &self.hours {
            v["labels"]["audience"] = h.audience(a, a.since_ms).as_str().into();
        }
        v
    }

    /// After an evaluation: post the active alerts (when something changed
    /// or [`RESEND`] has passed) and every resolve not yet taken.
    pub async fn tick(&mut self, events: &[(Event, Alert)], active: &[Alert], now_ms: u64) {
        for (event, a) in events {
            if *event == Event::Resolved {
                self.unsent_resolved.push(a.clone());
            }
        }
        if self.unsent_resolved.len() > UNSENT_MAX {
            let drop = self.unsent_resolved.len() - UNSENT_MAX;
            self.unsent_resolved.drain(..drop);
            log::warn!(target: "gateway::alerts", event = "alert_webhook_failed"; "alertmanager: {drop} resolve notice(s) dropped (Alertmanager unreachable for long; it resolves them itself when their endsAt passes)");
        }
        let changed = events.iter().any(|(e, _)| *e != Event::Reminder);
        let due = self
            .last_sent_ms
            .is_none_or(|t| now_ms.saturating_sub(t) >= RESEND.as_millis() as u64);
        if !(changed || due || !self.unsent_resolved.is_empty()) {
            return;
        }
        if active.is_empty() && self.unsent_resolved.is_empty() {
            self.last_sent_ms = Some(now_ms);
            return;
        }
        // Four resend periods ahead, as Prometheus does.
        let ends = now_ms + 4 * RESEND.as_millis() as u64;
        let mut body: Vec<serde_json::Value> =
            active.iter().map(|a| self.postable(a, ends)).collect();
        body.extend(
            self.unsent_resolved
                .iter()
                .map(|a| self.postable(a, now_ms)),
        );
        match self.poster.post_json(&serde_json::Value::Array(body)).await {
            Ok(()) => {
                self.last_sent_ms = Some(now_ms);
                self.unsent_resolved.clear();
            }
            Err(e) => {
                // Tried again at the next evaluation.
                log::warn!(target: "gateway::alerts", event = "alert_webhook_failed"; "alertmanager: cannot post alerts: {e}; trying again");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::alerts::alert::{Finding, Severity};

    #[test]
    fn labels_name_the_rule_destination_box_and_site() {
        let a = Rule::DestinationDown.alert(Finding {
            key: "cloud-fhir".into(),
            severity: Severity::Critical,
            title: "cloud-fhir cannot be reached".into(),
            affected: "destination cloud-fhir".into(),
            since_ms: 1_000,
            action: "check the network".into(),
        });
        let v = postable(&a, "box-7", "main-street", 61_000);
        assert_eq!(v["labels"]["alertname"], "destination_down");
        assert_eq!(v["labels"]["severity"], "critical");
        assert_eq!(v["labels"]["destination"], "cloud-fhir");
        assert_eq!(v["labels"]["box"], "box-7");
        assert_eq!(v["labels"]["site"], "main-street");
        assert!(v["labels"].get("key").is_none());
        assert_eq!(v["startsAt"], "1970-01-01T00:00:01Z");
        assert_eq!(v["endsAt"], "1970-01-01T00:01:01Z");
        let c = Rule::Certificate.alert(Finding {
            key: "listener/ehr/server".into(),
            severity: Severity::Warning,
            title: "t".into(),
            affected: "a".into(),
            since_ms: 0,
            action: "x".into(),
        });
        let v = postable(&c, "b", "", 0);
        assert_eq!(v["labels"]["key"], "listener/ehr/server");
        assert!(v["labels"].get("site").is_none());
        assert!(v["labels"].get("destination").is_none());
    }

    #[test]
    fn office_hours_add_the_audience_at_the_start() {
        use crate::ops::alerts::office_hours::parse_spans;
        let poster = Poster::new(
            "http://127.0.0.1:9/api/v2/alerts",
            &crate::net::https_client::HttpsClientConfig::default(),
            None,
        )
        .unwrap();
        let mut week: [Vec<_>; 7] = Default::default();
        week[0] = parse_spans("08:00-17:00").unwrap();
        let hours = OfficeHours::new("UTC", week, vec![]).unwrap();
        let f = Forwarder::new(poster, "b".into(), "".into()).with_office_hours(Some(hours));
        // 1970-01-05 was a Monday.
        let monday_9am = (4 * 86_400 + 9 * 3600) * 1000;
        let alert = |rule: Rule, severity| {
            rule.alert(Finding {
                key: "k".into(),
                severity,
                title: "t".into(),
                affected: "a".into(),
                since_ms: monday_9am,
                action: "x".into(),
            })
        };
        let day = f.postable(&alert(Rule::PendingDepth, Severity::Warning), 0);
        assert_eq!(day["labels"]["audience"], "clinic");
        let night = Rule::PendingDepth.alert(Finding {
            key: "k".into(),
            severity: Severity::Warning,
            title: "t".into(),
            affected: "a".into(),
            since_ms: monday_9am + 9 * 3600 * 1000,
            action: "x".into(),
        });
        assert_eq!(f.postable(&night, 0)["labels"]["audience"], "msp");
        let disk = f.postable(&alert(Rule::Disk, Severity::Critical), 0);
        assert_eq!(disk["labels"]["audience"], "both");
    }
}
