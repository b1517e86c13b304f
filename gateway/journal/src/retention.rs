//! Retention: delivered messages older than the configured retention are
//! pruned in bounded batches by a background task, so the journal's size
//! tracks traffic × retention instead of growing for ever. Pending and
//! dead-lettered messages are never pruned (see `Journal::prune`). Audit
//! events have their own, much longer retention ([`AuditRetention`]: six
//! years by default, HIPAA 164.316) and a size cap, pruned oldest first by
//! the same task (`Journal::prune_audit`).

use std::time::Duration;

use tokio::sync::watch;

use super::Journal;

/// Messages removed per writer request: small enough that ingest never
/// waits long behind a prune group.
const BATCH: usize = 500;
/// Pause between batches of one pass.
const BATCH_PAUSE: Duration = Duration::from_millis(20);
/// Longest time between passes.
const MAX_INTERVAL: Duration = Duration::from_secs(600);

/// How often to run a pass for a given retention: a quarter of it, at most
/// every 10 minutes, at least every second.
pub fn pass_interval(retention: Duration) -> Duration {
    (retention / 4).clamp(Duration::from_secs(1), MAX_INTERVAL)
}

/// The audit trail's retention: events older than `max_age` go, and the
/// oldest go once the trail is over `max_bytes` (estimated).
#[derive(Debug, Clone, Copy)]
pub struct AuditRetention {
    pub max_age: Duration,
    pub max_bytes: Option<u64>,
}

impl AuditRetention {
    /// How many events to keep at most, given the current usage.
    pub fn keep_newest(&self, usage: &crate::AuditUsage) -> Option<u64> {
        self.max_bytes
            .filter(|cap| usage.approx_bytes > *cap)
            .map(|cap| cap / usage.avg_event_bytes.max(1))
    }
}

pub async fn run(
    journal: Journal,
    retention: Duration,
    audit: AuditRetention,
    mut shutdown: watch::Receiver<bool>,
) {
    let every = pass_interval(retention.min(audit.max_age));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        let cutoff = journal
            .now_ms()
            .saturating_sub(retention.as_millis() as u64);
        let mut after = 0u64;
        let (mut messages, mut bytes) = (0u64, 0u64);
        loop {
            if *shutdown.borrow() {
                return;
            }
            match journal.prune(cutoff, after, BATCH).await {
                Ok(r) => {
                    messages += r.messages;
                    bytes += r.bytes;
                    after = r.next_after;
                    if r.reached_end {
                        break;
                    }
                }
                Err(e) => {
                    log::warn!(target: "gateway::journal", "retention: pruning stopped for this pass: {e}");
                    break;
                }
            }
            tokio::time::sleep(BATCH_PAUSE).await;
        }
        if messages > 0 {
            log::info!(
                target: "gateway::journal",
                "retention: pruned {messages} delivered message(s) ({} KiB) older than {} day(s)",
                bytes / 1024,
                retention.as_secs_f64() / 86400.0
            );
        }
        audit_pass(&journal, audit, &shutdown).await;
    }
}

/// One pass of the audit trail's retention.
async fn audit_pass(journal: &Journal, audit: AuditRetention, shutdown: &watch::Receiver<bool>) {
    let cutoff = journal
        .now_ms()
        .saturating_sub(audit.max_age.as_millis() as u64);
    let mut pruned = 0u64;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let keep = match journal.audit_usage() {
            Ok(u) => audit.keep_newest(&u),
            Err(e) => {
                log::warn!(target: "gateway::journal", "audit retention: stopped for this pass: {e}");
                return;
            }
        };
        if keep.is_some() && pruned == 0 {
            log::error!(target: "gateway::journal", "audit retention: the audit trail is over its size cap ([audit] max_mb): its oldest events are pruned before their retention_days; raise max_mb or export them (gateway audit export) first");
        }
        match journal.prune_audit(cutoff, keep, BATCH).await {
            Ok(r) => {
                pruned += r.audit_events;
                if r.reached_end || r.audit_events == 0 {
                    break;
                }
            }
            Err(e) => {
                log::warn!(target: "gateway::journal", "audit retention: stopped for this pass: {e}");
                break;
            }
        }
        tokio::time::sleep(BATCH_PAUSE).await;
    }
    if pruned > 0 {
        log::info!(
            target: "gateway::journal",
            "audit retention: pruned {pruned} audit event(s); the chain's anchor moved to the last one (gateway audit verify still checks the rest)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_bounds() {
        assert_eq!(pass_interval(Duration::from_secs(30 * 86400)), MAX_INTERVAL);
        assert_eq!(
            pass_interval(Duration::from_secs(2)),
            Duration::from_secs(1)
        );
        assert_eq!(
            pass_interval(Duration::from_secs(100)),
            Duration::from_secs(25)
        );
    }
}
