//! Retention: delivered messages (and audit events) older than the
//! configured retention are pruned in bounded batches by a background task,
//! so the journal's size tracks traffic × retention instead of growing for
//! ever. Pending and dead-lettered messages are never pruned (see
//! `Journal::prune`).

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

pub async fn run(journal: Journal, retention: Duration, mut shutdown: watch::Receiver<bool>) {
    let every = pass_interval(retention);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        let cutoff = journal
            .now_ms()
            .saturating_sub(retention.as_millis() as u64);
        let mut after = 0u64;
        let (mut messages, mut bytes, mut audit) = (0u64, 0u64, 0u64);
        loop {
            if *shutdown.borrow() {
                return;
            }
            match journal.prune(cutoff, after, BATCH).await {
                Ok(r) => {
                    messages += r.messages;
                    bytes += r.bytes;
                    audit += r.audit_events;
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
        if messages > 0 || audit > 0 {
            log::info!(
                target: "gateway::journal",
                "retention: pruned {messages} delivered message(s) ({} KiB) and {audit} audit event(s) older than {} day(s)",
                bytes / 1024,
                retention.as_secs_f64() / 86400.0
            );
        }
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
