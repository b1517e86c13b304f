//! The status source: one function that builds a fresh [`StatusReport`]
//! from the journal, the listeners' counters, the deliverers' monitors, the
//! pollers, the alert board and the certificates. The admin socket, the
//! health endpoint, the status page, alerts and the fleet heartbeat all
//! read it.

use std::sync::{Arc, Mutex};

use crate::config::Config;
use crate::deliver::Monitor;
use crate::ops::admin::{
    DestinationStatus, JournalStatus, ListenerStatus, StatusReport, StatusSource, UnmappedCode,
};
use crate::ops::alerts::Board;
use crate::ops::certs::CertInfo;
use crate::ops::clock;
use crate::ops::stats::Registry;
use crate::source::pickup::PickupState;
use crate::source::poller::PollerState;
use journal::Journal;

/// What the status source adds from the operations side.
pub(super) struct StatusExtras {
    pub board: Arc<Board>,
    pub certs: Arc<Mutex<Vec<CertInfo>>>,
    pub box_id: String,
    pub pickups: Vec<Arc<Mutex<PickupState>>>,
    pub exports: crate::source::export::runner::ExportControl,
    pub feeds: Arc<crate::ops::feeds::FeedWatch>,
}

/// The status source over the running pipeline's parts.
pub(super) fn status_source(
    cfg: &Config,
    journal: Journal,
    registry: Arc<Registry>,
    monitors: Vec<(String, Arc<Monitor>)>,
    pollers: Vec<Arc<Mutex<PollerState>>>,
    started_ms: u64,
    extras: StatusExtras,
) -> StatusSource {
    let cfg = cfg.clone();
    Arc::new(move || {
        let now = clock::unix_ms();
        let js = journal.stats();
        let counts = registry.snapshot();
        StatusReport {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            config: cfg.source.display().to_string(),
            data_dir: cfg.data_dir.display().to_string(),
            started_at: clock::iso8601(started_ms),
            uptime_secs: now.saturating_sub(started_ms) / 1000,
            listeners: cfg
                .listeners
                .iter()
                .map(|l| ListenerStatus {
                    name: l.name.clone(),
                    bind: l.bind.to_string(),
                    tls: l.tls.is_some(),
                    mutual_tls: l.tls.as_ref().is_some_and(|t| t.client_ca.is_some()),
                    counts: counts
                        .get(&l.name)
                        .cloned()
                        .unwrap_or_else(|| registry.listener(&l.name).snapshot()),
                })
                .collect(),
            destinations: cfg
                .destinations
                .iter()
                .map(|d| {
                    let o = js.per_destination.get(&d.name).cloned().unwrap_or_default();
                    let monitor = monitors.iter().find(|(n, _)| n == &d.name).map(|(_, m)| m);
                    let live = monitor.map(|m| m.snapshot()).unwrap_or_default();
                    let unmapped = monitor
                        .and_then(|m| m.unmapped_codes())
                        .map(|u| u.snapshot())
                        .unwrap_or_default();
                    let mut top: Vec<UnmappedCode> = unmapped
                        .iter()
                        .map(|((system, code), count)| UnmappedCode {
                            system: system.clone(),
                            code: code.clone(),
                            count: *count,
                        })
                        .collect();
                    top.sort_by_key(|u| std::cmp::Reverse(u.count));
                    top.truncate(20);
                    DestinationStatus {
                        name: d.name.clone(),
                        kind: d.kind.label().to_string(),
                        pending: o.pending,
                        delivered: o.delivered,
                        oldest_pending_age_secs: o
                            .oldest_pending_received_at_ms
                            .map(|t| now.saturating_sub(t) / 1000),
                        dead_letters: o.dead,
                        dead_lettered_total: o.dead_total,
                        live,
                        unmapped_codes: top,
                        unmapped_distinct: unmapped.len() as u64,
                        unmapped_occurrences: unmapped.values().sum(),
                    }
                })
                .collect(),
            pollers: pollers
                .iter()
                .map(|p| match p.lock() {
                    Ok(g) => g.clone(),
                    Err(e) => e.into_inner().clone(),
                })
                .collect(),
            pickups: extras
                .pickups
                .iter()
                .map(|p| p.lock().unwrap_or_else(|e| e.into_inner()).clone())
                .collect(),
            journal: JournalStatus {
                messages: js.messages,
                duplicates: js.duplicates,
                control_id_reuses: js.control_id_reuses,
                quarantined: js.quarantined,
                bytes_on_disk: js.bytes_on_disk,
                disk_percent_used: js.disk_percent_used,
                pruned: js.pruned,
                format: js.format,
                audit: crate::ops::audit::status(&journal, cfg.audit.max_bytes),
            },
            box_id: extras.box_id.clone(),
            alerts: extras.board.active(),
            feeds: extras.feeds.snapshot(),
            certificates: extras
                .certs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            exports: extras.exports.statuses(),
            remote_write: crate::ops::remote_write::status(),
        }
    })
}
