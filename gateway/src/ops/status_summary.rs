//! The one-line verdict at the top of the status page, from the same
//! snapshot as `gateway status`. Pure.
//!
//! Why not just "any alert fired": alerts wait out their grace period
//! (`destination_down_max`, ...), and a page that says "All good" above a
//! destination shown as down is a lie to the practice manager. So the
//! verdict looks at the destinations too:
//!
//! - **problem**: an alert has fired, or a dead letter waits for an
//!   operator (even with the dead-letter alert turned off);
//! - **retrying**: a destination is down or failing, or its queue is backing
//!   up, but no alert has fired yet: a calm line that says what the gateway
//!   is doing and when it will raise an alert;
//! - **good**: nothing of the above.

use super::admin::{DestinationStatus, StatusReport};
use super::clock;
use crate::config::AlertsConfig;

/// Failures older than this no longer count as "retrying" (the
/// destination has been quiet since, or delivered).
const RECENT_ERROR_MS: u64 = 2 * 60 * 1000;
/// A queue whose oldest message waits this long is "backing up".
const BACKING_UP_SECS: u64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Good,
    Retrying,
    Problem,
}

impl Level {
    /// The CSS class (and test hook) of the banner.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Good => "ok",
            Level::Retrying => "retrying",
            Level::Problem => "bad",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub level: Level,
    pub headline: String,
    /// One plain sentence per destination that is not well.
    pub details: Vec<String>,
}

pub fn summarize(r: &StatusReport, alerts: &AlertsConfig, now_ms: u64) -> Summary {
    let mut details = Vec::new();
    let mut dead_letters = 0;
    let mut retrying = false;
    for d in &r.destinations {
        if d.dead_letters > 0 {
            dead_letters += d.dead_letters;
            details.push(format!(
                "{} message(s) for {} could not be delivered and wait for an operator (gateway dlq list).",
                d.dead_letters, d.name
            ));
        }
        if let Some(line) = retrying_line(d, alerts, now_ms) {
            retrying = true;
            details.push(line);
        }
    }
    let fired = r.alerts.len();
    let (level, headline) = if fired > 0 || dead_letters > 0 {
        let n = if fired > 0 { fired } else { 1 };
        (
            Level::Problem,
            format!("{n} problem(s) need attention. Messages are kept safely on this box until they can be delivered."),
        )
    } else if retrying {
        (
            Level::Retrying,
            "Retrying: a connection is not working right now. Messages are kept safely on this box and sent as soon as it answers; nothing needs doing yet.".to_string(),
        )
    } else {
        (
            Level::Good,
            "All good: every connection is working and nothing needs attention.".to_string(),
        )
    };
    Summary {
        level,
        headline,
        details,
    }
}

/// What the gateway is doing about `d`, and when it will alert, if `d` is
/// down, failing or backing up.
fn retrying_line(d: &DestinationStatus, alerts: &AlertsConfig, now_ms: u64) -> Option<String> {
    let down = !matches!(d.live.circuit.as_str(), "closed" | "");
    if down {
        let since = d.live.down_since_ms.unwrap_or(now_ms);
        let alert_at = since.saturating_add(alerts.destination_down_max.as_millis() as u64);
        let when = if alert_at > now_ms {
            format!("at {} UTC", clock::iso8601(alert_at))
        } else {
            "at the next check".to_string()
        };
        return Some(format!(
            "{} is not answering (for {}). The gateway tries it again regularly; an alert is raised {when} if it is still down. {} message(s) waiting.",
            d.name,
            human_secs(now_ms.saturating_sub(since) / 1000),
            d.pending
        ));
    }
    let failing = d.pending > 0
        && d.live
            .last_error_at_ms
            .is_some_and(|t| now_ms.saturating_sub(t) <= RECENT_ERROR_MS);
    let backing_up = d
        .oldest_pending_age_secs
        .is_some_and(|s| s >= BACKING_UP_SECS);
    if !(failing || backing_up) {
        return None;
    }
    let oldest = d.oldest_pending_age_secs.unwrap_or(0);
    let what = if failing {
        "some deliveries failed and are being retried"
    } else {
        "messages are waiting longer than usual"
    };
    Some(format!(
        "{}: {what}; {} message(s) waiting, the oldest for {}. An alert is raised at {} waiting or when the oldest has waited {}.",
        d.name,
        d.pending,
        human_secs(oldest),
        alerts.pending_max,
        human_secs(alerts.oldest_pending_max.as_secs())
    ))
}

fn human_secs(s: u64) -> String {
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        _ => format!("{} h", s / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StorageConfig;
    use crate::ops::alerts::{Rule, Severity};

    const NOW: u64 = 1_764_633_600_000;

    fn dest(name: &str) -> DestinationStatus {
        serde_json::from_value(serde_json::json!({
            "name": name, "kind": "fhir", "pending": 0, "delivered": 10,
            "oldest_pending_age_secs": null, "dead_letters": 0,
            "in_flight": 0, "attempts": 0, "delivered_since_start": 0, "failed_attempts": 0,
            "dead_lettered_since_start": 0, "circuit": "closed", "down_since_ms": null,
            "probes": 0, "held_lanes": 0, "last_error": null, "last_error_at_ms": null,
            "token_refreshes": 0
        }))
        .unwrap()
    }

    fn report(destinations: Vec<DestinationStatus>) -> StatusReport {
        let mut r: StatusReport = serde_json::from_value(serde_json::json!({
            "version": "1", "pid": 1, "config": "", "data_dir": "", "started_at": "",
            "uptime_secs": 1, "listeners": [], "destinations": [],
            "journal": { "messages": 0, "duplicates": 0, "control_id_reuses": 0,
                         "quarantined": 0, "bytes_on_disk": 0, "disk_percent_used": 10 },
        }))
        .unwrap();
        r.destinations = destinations;
        r
    }

    fn cfg() -> AlertsConfig {
        AlertsConfig::defaults(&StorageConfig::default())
    }

    #[test]
    fn good_only_when_every_destination_is_well() {
        let s = summarize(&report(vec![dest("cloud")]), &cfg(), NOW);
        assert_eq!(s.level, Level::Good);
        assert!(s.details.is_empty());
    }

    #[test]
    fn down_before_its_alert_is_retrying_and_says_when_it_alerts() {
        let mut d = dest("cloud-fhir");
        d.live.circuit = "open".into();
        d.live.down_since_ms = Some(NOW - 22_000);
        d.pending = 3;
        let s = summarize(&report(vec![d]), &cfg(), NOW);
        assert_eq!(s.level, Level::Retrying);
        assert!(!s.headline.contains("All good"));
        let line = &s.details[0];
        assert!(
            line.contains("cloud-fhir is not answering (for 22 s)"),
            "{line}"
        );
        // destination_down_max is 5 min by default.
        assert!(
            line.contains(&clock::iso8601(NOW - 22_000 + 300_000)),
            "{line}"
        );
        assert!(line.contains("3 message(s) waiting"), "{line}");
    }

    #[test]
    fn failing_or_backing_up_is_retrying() {
        let mut failing = dest("a");
        failing.pending = 2;
        failing.live.last_error = Some("HTTP 503".into());
        failing.live.last_error_at_ms = Some(NOW - 5_000);
        assert_eq!(
            summarize(&report(vec![failing.clone()]), &cfg(), NOW).level,
            Level::Retrying
        );
        // An old error with nothing pending is history, not a problem.
        failing.pending = 0;
        failing.live.last_error_at_ms = Some(NOW - 600_000);
        assert_eq!(
            summarize(&report(vec![failing]), &cfg(), NOW).level,
            Level::Good
        );
        let mut slow = dest("b");
        slow.pending = 40;
        slow.oldest_pending_age_secs = Some(90);
        let s = summarize(&report(vec![slow]), &cfg(), NOW);
        assert_eq!(s.level, Level::Retrying);
        assert!(s.details[0].contains("at 1000 waiting"), "{:?}", s.details);
    }

    #[test]
    fn a_dead_letter_or_a_fired_alert_is_a_problem() {
        let mut d = dest("lab");
        d.dead_letters = 2;
        let s = summarize(&report(vec![d]), &cfg(), NOW);
        assert_eq!(s.level, Level::Problem);
        assert!(
            s.details[0].contains("2 message(s) for lab"),
            "{:?}",
            s.details
        );
        let mut r = report(vec![dest("cloud")]);
        r.alerts.push(Rule::Disk.alert(crate::ops::alerts::Finding {
            key: "data".into(),
            severity: Severity::Critical,
            title: "disk".into(),
            affected: "disk".into(),
            since_ms: NOW,
            action: "free space".into(),
        }));
        assert_eq!(summarize(&r, &cfg(), NOW).level, Level::Problem);
    }
}
