//! The systemd watchdog, gated on liveness: `WATCHDOG=1` is sent only while
//! every critical loop (each accept loop, each deliverer, the journal
//! writer) has come round recently. A plain timer would keep pinging through
//! a deadlock and defeat the watchdog; this one goes quiet, so systemd
//! restarts the service.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::clock;
use journal::Journal;

/// How often a critical loop should beat when it has nothing else to do.
pub const BEAT_EVERY: Duration = Duration::from_secs(1);

/// One critical loop's liveness.
#[derive(Clone)]
pub struct Heartbeat(Arc<AtomicU64>);

impl Heartbeat {
    pub fn beat(&self) {
        self.0.store(clock::unix_ms(), Ordering::Relaxed);
    }
    fn age(&self, now_ms: u64) -> Duration {
        Duration::from_millis(now_ms.saturating_sub(self.0.load(Ordering::Relaxed)))
    }
}

/// Every registered loop, by name.
#[derive(Default)]
pub struct Heartbeats(Mutex<Vec<(String, Heartbeat)>>);

impl Heartbeats {
    pub fn register(&self, name: impl Into<String>) -> Heartbeat {
        let hb = Heartbeat(Arc::new(AtomicU64::new(clock::unix_ms())));
        if let Ok(mut v) = self.0.lock() {
            v.push((name.into(), hb.clone()));
        }
        hb
    }

    /// Names of loops that have not beaten within `max_age`.
    pub fn stale(&self, max_age: Duration) -> Vec<String> {
        let now = clock::unix_ms();
        self.0
            .lock()
            .map(|v| {
                v.iter()
                    .filter(|(_, hb)| hb.age(now) > max_age)
                    .map(|(n, _)| n.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The watchdog interval systemd asked for (`WATCHDOG_USEC`), if any. As
/// in libsystemd's `sd_watchdog_enabled`, a `WATCHDOG_PID` that names
/// another process disables it, and an unset one means this process.
pub fn interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Ping every `interval / 4` while all loops (and the journal writer) beat
/// within `interval / 2`; otherwise log once which loop is stuck and stay quiet.
pub async fn run(
    interval: Duration,
    beats: Arc<Heartbeats>,
    journal: Journal,
    mut shutdown: watch::Receiver<bool>,
) {
    let max_age = (interval / 2).max(BEAT_EVERY * 3);
    let mut tick = tokio::time::interval(interval / 4);
    let mut was_stale = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let mut stale = beats.stale(max_age);
        if journal.writer_heartbeat_age() > max_age {
            stale.push("journal writer".to_string());
        }
        if stale.is_empty() {
            if was_stale {
                log::info!(target: "gateway::watchdog", "all critical loops are alive again; watchdog pings resume");
            }
            was_stale = false;
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
        } else if !was_stale {
            was_stale = true;
            log::error!(
                target: "gateway::watchdog",
                "critical loop(s) stuck for over {} s: {}; withholding watchdog pings so systemd restarts the service",
                max_age.as_secs(),
                stale.join(", ")
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_names_only_loops_that_stopped_beating() {
        let beats = Heartbeats::default();
        let a = beats.register("accept ehr");
        let _b = beats.register("deliver outbox");
        a.beat();
        assert!(beats.stale(Duration::from_secs(60)).is_empty());
        // Age one of them artificially.
        a.0.store(clock::unix_ms() - 120_000, Ordering::Relaxed);
        assert_eq!(
            beats.stale(Duration::from_secs(60)),
            vec!["accept ehr".to_string()]
        );
    }
}
