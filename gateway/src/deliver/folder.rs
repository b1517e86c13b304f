//! The `folder` destination: each message becomes `<path>/<id>.hl7`, written
//! atomically (temp file, fsync, rename, fsync the directory) and only then
//! marked delivered. Re-delivering after a crash rewrites the same file name,
//! so the folder holds every message exactly once.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;

use crate::durable_fs;
use crate::journal::Journal;
use crate::ops::watchdog::{Heartbeat, BEAT_EVERY};

pub struct FolderDeliverer {
    pub destination: String,
    pub path: PathBuf,
    pub journal: Journal,
    pub heartbeat: Heartbeat,
}

/// Test hook for the watchdog test: `GATEWAY_TEST_STALL_DELIVERER=<destination>`
/// with `GATEWAY_TEST_STALL_AFTER_MS=<n>` makes that deliverer hang (as if
/// deadlocked) n ms after start. Never set in production.
fn stall_after(destination: &str) -> Option<Duration> {
    let name = std::env::var("GATEWAY_TEST_STALL_DELIVERER").ok()?;
    let ms = std::env::var("GATEWAY_TEST_STALL_AFTER_MS")
        .ok()?
        .parse()
        .ok()?;
    (name == destination).then(|| Duration::from_millis(ms))
}

/// Sleep up to `d`, beating every second; false if shutdown came first.
async fn sleep_beating(d: Duration, hb: &Heartbeat, shutdown: &mut watch::Receiver<bool>) -> bool {
    let until = tokio::time::Instant::now() + d;
    loop {
        hb.beat();
        let now = tokio::time::Instant::now();
        if now >= until {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep((until - now).min(BEAT_EVERY)) => {}
            _ = shutdown.changed() => return false,
        }
    }
}

impl FolderDeliverer {
    /// Drain the outbox until shutdown. Failures (disk full, permissions) are
    /// retried with capped backoff; the message stays pending meanwhile.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let notify = self.journal.outbox_notify(&self.destination);
        let mut backoff = Duration::from_millis(200);
        let mut failures: u64 = 0;
        let stall_at = stall_after(&self.destination).map(|d| tokio::time::Instant::now() + d);
        loop {
            if *shutdown.borrow() {
                return;
            }
            if stall_at.is_some_and(|t| tokio::time::Instant::now() >= t) {
                log::warn!(target: "gateway::deliver", "destination {}: test hook: stalling", self.destination);
                std::future::pending::<()>().await;
            }
            self.heartbeat.beat();
            // Register interest before looking, so an enqueue between the look and the wait is not missed.
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.drain_some().await {
                Ok(0) => {
                    tokio::select! {
                        _ = &mut notified => {}
                        _ = tokio::time::sleep(BEAT_EVERY) => {}
                        _ = shutdown.changed() => return,
                    }
                }
                Ok(_) => {
                    if failures > 0 {
                        log::info!(target: "gateway::deliver", "destination {}: delivering again after {failures} failed attempt(s)", self.destination);
                    }
                    failures = 0;
                    backoff = Duration::from_millis(200);
                }
                Err(e) => {
                    failures += 1;
                    // One line per failure streak step, not per message: the delay doubles up to 30 s.
                    log::warn!(target: "gateway::deliver", "destination {}: {e}; retrying in {} ms (attempt {failures})", self.destination, backoff.as_millis());
                    if !sleep_beating(backoff, &self.heartbeat, &mut shutdown).await {
                        return;
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// Deliver up to one page of pending messages, in id order. Returns how many were delivered.
    async fn drain_some(&self) -> Result<usize, String> {
        let ids = self
            .journal
            .pending(&self.destination, None, 256)
            .map_err(|e| e.to_string())?;
        let mut done = 0;
        for id in ids {
            let msg = match self.journal.get(id).map_err(|e| e.to_string())? {
                Some(m) => m,
                None => {
                    return Err(format!(
                        "message {id} is pending but missing from the journal"
                    ))
                }
            };
            let dir = self.path.clone();
            let name = format!("{id}.hl7");
            tokio::task::spawn_blocking(move || {
                durable_fs::create_dir_all(&dir)?;
                durable_fs::write_atomically(&dir, &name, &msg.raw)
            })
            .await
            .map_err(|e| format!("writer task failed: {e}"))?
            .map_err(|e| format!("cannot write message {id} to {}: {e}", self.path.display()))?;
            self.journal
                .mark_delivered(&self.destination, id)
                .await
                .map_err(|e| e.to_string())?;
            log::debug!(target: "gateway::deliver", "destination {}: delivered message {id}", self.destination);
            done += 1;
        }
        Ok(done)
    }
}
