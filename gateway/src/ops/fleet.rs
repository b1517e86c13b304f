//! `[fleet]`: a periodic HTTPS POST to the MSP's endpoint saying this box
//! is alive and how it is doing. The body ([`heartbeat`]) is built from the
//! status report and carries no PHI: names, counts, states, alert titles;
//! never a last-error text (it may quote a message) nor any message data.
//! Auth and TLS options are those of destinations, through the poster the
//! alerts webhook uses too ([`super::webhook`]).

use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use super::admin::{StatusReport, StatusSource};
use super::clock;
use super::webhook::{PostError, Poster};
use crate::config::FleetConfig;

/// The longest one heartbeat POST may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// The updater's report for the heartbeat: its JSON, or why it is missing.
/// It holds slots, versions, epochs and download state: no PHI.
pub fn updater_report(path: &std::path::Path) -> serde_json::Value {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .unwrap_or_else(|e| json!({"error": format!("{}: not JSON: {e}", path.display())})),
        Err(e) => json!({"error": format!("{}: {e}", path.display())}),
    }
}

/// The heartbeat body for `r`. Pure.
pub fn heartbeat(box_id: &str, r: &StatusReport, now_ms: u64) -> serde_json::Value {
    json!({
        "box_id": box_id,
        "at": clock::iso8601(now_ms),
        "versions": {
            "gateway": r.version,
            "os": os_release(),
        },
        "uptime_secs": r.uptime_secs,
        "started_at": r.started_at,
        "disk_percent_used": r.journal.disk_percent_used,
        "journal_bytes": r.journal.bytes_on_disk,
        // The audit chain's head, kept off the box: a cut tail of the
        // trail then shows (`gateway audit verify --head SEQ:HASH`).
        "audit_head": r.journal.audit.head,
        "listeners": r.listeners.iter().map(|l| json!({
            "name": l.name,
            "connections_open": l.counts.connections_open,
            "received": l.counts.received,
            "acked": l.counts.acked,
            "rejected": l.counts.rejected,
            "errored": l.counts.errored,
        })).collect::<Vec<_>>(),
        "destinations": r.destinations.iter().map(|d| json!({
            "name": d.name,
            "kind": d.kind,
            "up": d.live.circuit == "closed" || d.live.circuit.is_empty(),
            "circuit": d.live.circuit,
            "down_since": d.live.down_since_ms.map(clock::iso8601),
            "pending": d.pending,
            "oldest_pending_age_secs": d.oldest_pending_age_secs,
            "delivered": d.delivered,
            "failed_attempts": d.live.failed_attempts,
            "dead_letters": d.dead_letters,
            "held_lanes": d.live.held_lanes,
        })).collect::<Vec<_>>(),
        "alerts": r.alerts,
    })
}

fn os_release() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
}

/// Send a heartbeat now and every `interval` until shutdown.
pub async fn run(cfg: FleetConfig, status: StatusSource, mut shutdown: watch::Receiver<bool>) {
    let poster = match Poster::new(&cfg.url, &cfg.tls, cfg.auth.as_ref()) {
        Ok(p) => p,
        Err(e) => {
            log::error!(target: "gateway::fleet", event = "fleet_failed"; "fleet.url: cannot set up the HTTPS client: {e}; no heartbeats will be sent");
            return;
        }
    };
    let mut tick = tokio::time::interval(cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let mut body = heartbeat(&cfg.box_id, &status(), clock::unix_ms());
        if let (Some(path), Some(obj)) = (&cfg.updater_report, body.as_object_mut()) {
            obj.insert("updater".into(), updater_report(path));
        }
        // A heartbeat in flight does not hold up the shutdown.
        let sent = tokio::select! {
            r = tokio::time::timeout(SEND_TIMEOUT, poster.post_json(&body)) => r.unwrap_or(Err(PostError::TimedOut)),
            _ = shutdown.changed() => return,
        };
        match sent {
            Ok(()) if failing => {
                failing = false;
                log::info!(target: "gateway::fleet", event = "fleet_ok"; "fleet heartbeat delivered again");
            }
            Ok(()) => {}
            Err(e) if !failing => {
                failing = true;
                log::warn!(target: "gateway::fleet", event = "fleet_failed"; "fleet heartbeat to {} failed: {e}; will keep trying every {} s", cfg.url, cfg.interval.as_secs());
            }
            Err(_) => {}
        }
    }
}
