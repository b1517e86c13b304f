//! The writer thread's loop: wait for requests, drain a group, commit it,
//! checkpoint when due, and reopen sled after a storage failure.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::group::{Deferred, Group};
use super::recovery::{recover, Recovered};
use super::store::Store;
use super::{Reply, Req, Shared, AUDIT_DEFER};
use crate::counter::Counters;
use crate::error::unavailable;
use crate::quota::SpaceGuard;
use crate::{JournalConfig, JournalError};

/// How often an idle writer wakes to record that it is alive.
const IDLE_BEAT: Duration = Duration::from_secs(1);

/// Checkpoint when the WAL is this big (or a fraction of the quota or of
/// the filesystem, if smaller: see [`checkpoint_bytes`]) ...
pub(crate) const WAL_CHECKPOINT_BYTES: u64 = 64 * 1024 * 1024;
/// ... or when its oldest record is this old (checked after each commit).
pub(crate) const WAL_CHECKPOINT_AGE: Duration = Duration::from_secs(30);

pub(crate) struct Writer {
    shared: Arc<Shared>,
    rx: mpsc::UnboundedReceiver<Req>,
    /// `None` after a storage failure until a reopen succeeds.
    store: Option<Store>,
    /// Audit events waiting to ride with the next group.
    deferred: Option<Deferred>,
    /// Whether audit-only groups may be deferred (a timer is available).
    can_defer: bool,
    /// Checkpoint when the WAL holds this many bytes.
    checkpoint_bytes: u64,
    /// Counters and next ids as of the last staged request.
    state: Counters,
    space: SpaceGuard,
    /// Why the store is set aside (see [`Writer::set_aside`]), until a
    /// reopen succeeds.
    aside: Option<String>,
}

/// The WAL size that triggers a checkpoint: 64 MiB, but at most 1/16 of the
/// quota and of the filesystem, so the WAL's second copy of recent data
/// stays small relative to the space the journal may use.
fn checkpoint_bytes(cfg: &JournalConfig) -> u64 {
    let mut n = WAL_CHECKPOINT_BYTES;
    if let Some(q) = cfg.quota_bytes {
        n = n.min(q / 16);
    }
    if let Ok(s) = nix::sys::statvfs::statvfs(&cfg.dir) {
        let total = (s.blocks() as u128 * s.fragment_size() as u128).min(u64::MAX as u128) as u64;
        n = n.min(total / 16);
    }
    n.max(64 * 1024)
}

impl Writer {
    pub(crate) fn new(
        shared: Arc<Shared>,
        rx: mpsc::UnboundedReceiver<Req>,
        store: Store,
        state: Counters,
    ) -> Writer {
        let cfg = &shared.cfg;
        let mut space = SpaceGuard::new(
            &cfg.dir,
            cfg.quota_bytes,
            cfg.refuse_at_percent,
            cfg.warn_at_percent,
            cfg.reserve_bytes,
        );
        // Publish disk use from the start, not from the first append: until
        // then it read 0 %, so after a restart on a full disk with no
        // traffic yet the disk alert was told "resolved".
        if let Err(why) = space.refresh(&store.db, &shared.usage) {
            log::warn!("journal: {why}");
        }
        let checkpoint_bytes = checkpoint_bytes(cfg);
        Writer {
            shared,
            rx,
            store: Some(store),
            deferred: None,
            can_defer: false,
            checkpoint_bytes,
            state,
            space,
            aside: None,
        }
    }

    pub(crate) fn run(mut self) {
        let max_batch = self.shared.cfg.max_batch.max(1);
        let mut batch: Vec<Req> = Vec::with_capacity(max_batch);
        // Only for the audit deferral timeout (see `Group::may_wait`).
        let timer = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| {
                log::warn!("journal: no timer for audit deferral ({e}); audits commit at once")
            })
            .ok();
        self.can_defer = timer.is_some();
        loop {
            self.shared
                .alive_ms
                .store(self.shared.now_ms(), Ordering::Relaxed);
            let deferred_since = self.deferred.as_ref().map(Deferred::since);
            let next = match (deferred_since, &timer) {
                (Some(t), Some(rt)) => {
                    let left = AUDIT_DEFER.saturating_sub(t.elapsed());
                    let rx = &mut self.rx;
                    match rt.block_on(async { tokio::time::timeout(left, rx.recv()).await }) {
                        Ok(r) => r,
                        Err(_) => {
                            // Deferred audit events waited long enough.
                            self.commit(&mut batch, true);
                            continue;
                        }
                    }
                }
                (None, Some(rt)) => {
                    // Idle: wake every second to show the loop is alive.
                    let rx = &mut self.rx;
                    match rt.block_on(async { tokio::time::timeout(IDLE_BEAT, rx.recv()).await }) {
                        Ok(r) => r,
                        Err(_) => continue,
                    }
                }
                _ => self.rx.blocking_recv(),
            };
            match next {
                Some(r) => batch.push(r),
                None => {
                    // Every handle dropped: commit deferred audit events,
                    // final checkpoint, then stop.
                    self.commit(&mut batch, true);
                    self.shutdown();
                    return;
                }
            }
            while batch.len() < max_batch {
                match self.rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            if let Some(close) = self.commit(&mut batch, false) {
                self.shutdown();
                let _ = close.send(Ok(()));
                // Anything queued after close gets Closed (by drop of its reply).
                self.rx.close();
                return;
            }
        }
    }

    fn shutdown(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        if let Ok(mut g) = self.shared.db.write() {
            *g = None;
        }
        if self.store.is_some() && self.space.room_for_commit(0).is_ok() {
            // Final checkpoint: sled durable, WAL emptied. If it fails the
            // WAL still holds every acknowledged group: the next open replays it.
            if let Err(e) = self.checkpoint() {
                log::error!("journal: final checkpoint failed: {e}");
            }
        }
        self.store = None;
        log::info!("journal: writer stopped");
    }

    /// Stage, log and answer one group (with any deferred audit events).
    /// `force`: log even a group of audit events only. Returns the Close
    /// reply if the group contained a close request.
    fn commit(&mut self, batch: &mut Vec<Req>, force: bool) -> Option<Reply<()>> {
        if self.store.is_none() && self.room_to_reopen() {
            self.reopen_or_log("journal: reopen failed");
        }
        let fs_pct = self.measure_space(batch);
        let mut group = Group::new(self.deferred.take(), batch.len(), fs_pct);
        if let (None, Some(why), false) = (&self.store, &self.aside, batch.is_empty()) {
            group.fail(JournalError::Full {
                reason: why.clone(),
            });
        }
        for req in batch.drain(..) {
            group.take(
                req,
                self.store.as_ref().map(|s| &s.db),
                &mut self.state,
                &mut self.space,
                &self.shared.cfg,
            );
        }
        if group.may_wait(force, self.can_defer) {
            self.deferred = group.defer();
            return None;
        }
        group.log(self.store.as_mut(), &self.shared, &mut self.space);
        let done = group.finish(&self.shared, &self.state);
        if done.failed {
            if self.room_to_reopen() {
                self.reopen_or_log("journal: reopen after failure failed");
            } else {
                self.set_aside();
            }
        } else if done.refused {
            // Nothing was written: the ids and counters it staged are void.
            if let Ok(g) = self.shared.counters.lock() {
                self.state = g.clone();
            }
        } else if done.close.is_none()
            && self.checkpoint_due()
            && self.space.room_for_commit(0).is_ok()
        {
            if let Err(e) = self.checkpoint() {
                // Nothing is lost (the WAL still holds every acknowledged
                // group); start over from disk as after any I/O failure.
                log::error!("journal: checkpoint failed: {e}");
                self.reopen_or_log("journal: reopen after failed checkpoint failed");
            }
        }
        done.close
    }

    /// The filesystem use appends and quarantines of `batch` are admitted
    /// against (measured only if the batch has any).
    fn measure_space(&mut self, batch: &[Req]) -> Result<u8, String> {
        let needs_space = batch
            .iter()
            .any(|r| matches!(r, Req::Append(..) | Req::Batch(..) | Req::Quarantine(..)));
        match &self.store {
            Some(s) if needs_space => self.space.refresh(&s.db, &self.shared.usage),
            _ => Ok(0),
        }
    }

    /// Whether the disk has room to reopen: recovery replays the WAL into
    /// sled and checkpoints, which sled must not meet ENOSPC doing.
    fn room_to_reopen(&mut self) -> bool {
        let wal_bytes = std::fs::read_dir(self.shared.cfg.dir.join("wal"))
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.metadata().ok())
                    .map(|m| m.len())
                    .sum::<u64>()
            })
            .unwrap_or(0);
        match self.space.room_for_commit(wal_bytes) {
            Ok(()) => true,
            Err(why) => {
                log::warn!("journal: not reopening yet: {why}");
                false
            }
        }
    }

    fn checkpoint_due(&self) -> bool {
        self.store
            .as_ref()
            .is_some_and(|s| s.checkpoint_due(self.checkpoint_bytes, WAL_CHECKPOINT_AGE))
    }

    fn checkpoint(&mut self) -> Result<(), JournalError> {
        let dir = &self.shared.cfg.dir;
        let Some(store) = self.store.as_mut() else {
            return Err(unavailable(dir));
        };
        store.checkpoint(dir)?;
        self.shared.checkpoints.fetch_add(1, Ordering::Relaxed);
        self.space.invalidate();
        Ok(())
    }

    fn reopen_or_log(&mut self, what: &str) {
        if let Err(e) = self.reopen() {
            log::error!("{what}: {e}");
        }
    }

    /// After a storage failure with no room to reopen: drop the failed
    /// sled instance now instead of staging later requests against it
    /// (its reads can write: sled merges nodes on `get`, and each such
    /// write would meet the full disk again). Until a reopen succeeds every
    /// request is refused with `Full` (AE, ERR 207); each later commit
    /// retries the reopen once there is room (`commit`).
    fn set_aside(&mut self) {
        if let Ok(mut g) = self.shared.db.write() {
            *g = None;
        }
        self.space.invalidate();
        if let Some(Store { db, dur, wal, .. }) = self.store.take() {
            drop(dur);
            drop(wal);
            reap(db);
            log::warn!(
                "journal: {} set aside after a storage failure on a full disk; reopened (WAL \
                 replayed) as soon as there is room",
                self.shared.cfg.dir.display()
            );
        }
        // Starts like ENOSPC's own `Full`: a storage failure, told as full.
        self.aside = Some(format!(
            "no space left on device: journal {} is set aside after a storage failure until \
             there is room to reopen it: free disk space",
            self.shared.cfg.dir.display()
        ));
    }

    /// Drop sled and open it again; reload counters from disk (the in-memory
    /// ones may include writes that were applied but never made durable).
    fn reopen(&mut self) -> Result<(), JournalError> {
        self.shared.reopens.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut g) = self.shared.db.write() {
            *g = None;
        }
        let old = self.store.take();
        self.space.invalidate();
        if let Some(Store { db, dur, wal, .. }) = old {
            drop(dur);
            drop(wal);
            reap(db);
        }
        let Recovered { store, state, .. } = recover(&self.shared.cfg)?;
        self.state = state;
        if let Ok(mut g) = self.shared.counters.lock() {
            *g = self.state.clone();
        }
        if let Ok(mut g) = self.shared.db.write() {
            *g = Some(store.db.clone());
        }
        self.store = Some(store);
        self.aside = None;
        log::warn!(
            "journal: reopened {} after an I/O error (next id {})",
            self.shared.cfg.dir.display(),
            self.state.next_id
        );
        Ok(())
    }
}

/// Drop a failed sled instance. sled flushes in Drop, and after some I/O
/// errors (ENOSPC while writing a blob) that flush blocks forever: drop it
/// on another thread and wait a bounded time, so the writer stays responsive.
fn reap(db: sled::Db) {
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("journal-reaper".into())
        .spawn(move || {
            drop(db);
            let _ = done_tx.send(());
        });
    match spawned {
        Ok(_) => {
            if done_rx.recv_timeout(Duration::from_secs(2)).is_err() {
                log::error!(
                    "journal: the failed sled instance did not shut down (sled 0.34 wedges after \
                     ENOSPC on a blob write); if reopening fails, restart the gateway"
                );
            }
        }
        Err(e) => log::error!("journal: cannot spawn reaper thread: {e}"),
    }
}
