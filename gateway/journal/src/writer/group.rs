//! One group commit: the requests the writer drained, their staged ops (the
//! WAL record to be), the replies waiting on the commit, the outboxes to
//! wake after it, and whether it failed. Audit events nobody waits for may
//! be carried into the next group ([`Deferred`]).

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::staging::{Staged, Stager};
use super::store::Store;
use super::{Answer, Reply, Req, Shared, AUDIT_DEFER};
use crate::counter::Counters;
use crate::error::unavailable;
use crate::quota::SpaceGuard;
use crate::wal::Op;
use crate::{Appended, JournalConfig, JournalError};

/// A request's reply, held until the group is durable (or failed).
enum Outcome {
    Append(Reply<Appended>, Result<Appended, JournalError>),
    Batch(Reply<Vec<Appended>>, Result<Vec<Appended>, JournalError>),
    Unit(Reply<()>, Result<(), JournalError>),
    Any(Reply<Answer>, Result<Answer, JournalError>),
}

impl Outcome {
    fn is_ok(&self) -> bool {
        match self {
            Outcome::Append(_, r) => r.is_ok(),
            Outcome::Batch(_, r) => r.is_ok(),
            Outcome::Unit(_, r) => r.is_ok(),
            Outcome::Any(_, r) => r.is_ok(),
        }
    }

    /// The storage failure that fails the whole group. Only inbound and
    /// delivery requests (append, batch, quarantine, delivered) count: a
    /// failed dead-letter or retention request answers only its own caller.
    fn storage_failure(&self) -> Option<&JournalError> {
        match self {
            Outcome::Append(_, Err(e)) | Outcome::Batch(_, Err(e)) | Outcome::Unit(_, Err(e)) => {
                Some(e).filter(|e| e.is_storage_failure())
            }
            _ => None,
        }
    }

    /// A success becomes `e`: nothing of a failed group is acknowledged.
    fn fail(self, e: &JournalError) -> Outcome {
        match self {
            Outcome::Append(tx, Ok(_)) => Outcome::Append(tx, Err(e.duplicate())),
            Outcome::Batch(tx, Ok(_)) => Outcome::Batch(tx, Err(e.duplicate())),
            Outcome::Unit(tx, Ok(())) => Outcome::Unit(tx, Err(e.duplicate())),
            Outcome::Any(tx, Ok(_)) => Outcome::Any(tx, Err(e.duplicate())),
            o => o,
        }
    }

    fn send(self) {
        // A dropped receiver (caller gave up) is not an error here.
        match self {
            Outcome::Append(tx, r) => {
                let _ = tx.send(r);
            }
            Outcome::Batch(tx, r) => {
                let _ = tx.send(r);
            }
            Outcome::Unit(tx, r) => {
                let _ = tx.send(r);
            }
            Outcome::Any(tx, r) => {
                let _ = tx.send(r);
            }
        }
    }
}

/// Audit-only ops staged while no request waited, and when the first was.
pub(super) struct Deferred {
    staged: Staged,
    since: Instant,
}

impl Deferred {
    pub(super) fn since(&self) -> Instant {
        self.since
    }
}

pub(super) struct Group {
    staged: Staged,
    /// Set when the group started with deferred audit events.
    deferred_since: Option<Instant>,
    /// Filesystem use measured for this group (or why it could not be):
    /// appends and quarantines are admitted against it.
    fs_pct: Result<u8, String>,
    replies: Vec<Outcome>,
    close: Option<Reply<()>>,
    wake: BTreeSet<String>,
    /// The first storage failure: every later request is refused with it,
    /// and no request of the group is acknowledged.
    failed: Option<JournalError>,
    /// Requests drained for this group (audit events included).
    requests: u64,
    /// Whether any request staged something.
    wrote: bool,
}

/// What the writer does after a group: reply to a close, reopen sled
/// (after a storage failure), or forget what the group staged (refused
/// for want of space before anything was written).
pub(super) struct Finished {
    pub close: Option<Reply<()>>,
    pub failed: bool,
    pub refused: bool,
}

impl Group {
    pub(super) fn new(
        carried: Option<Deferred>,
        requests: usize,
        fs_pct: Result<u8, String>,
    ) -> Group {
        let (staged, deferred_since) = match carried {
            Some(d) => (d.staged, Some(d.since)),
            None => (Staged::default(), None),
        };
        Group {
            staged,
            deferred_since,
            fs_pct,
            replies: Vec::with_capacity(requests),
            close: None,
            wake: BTreeSet::new(),
            failed: None,
            requests: requests as u64,
            wrote: false,
        }
    }

    /// Fail the group before anything is staged: every request gets `e`.
    pub(super) fn fail(&mut self, e: JournalError) {
        self.failed = Some(e);
    }

    /// Stage `req` against `db`, or refuse it if sled is unavailable or the
    /// group has already failed.
    pub(super) fn take(
        &mut self,
        req: Req,
        db: Option<&sled::Db>,
        state: &mut Counters,
        space: &mut SpaceGuard,
        cfg: &JournalConfig,
    ) {
        let db = match (db, &self.failed) {
            (Some(db), None) => db,
            (_, failed) => {
                let e = failed
                    .as_ref()
                    .map_or_else(|| unavailable(&cfg.dir), JournalError::duplicate);
                return self.refuse(req, e);
            }
        };
        let fs_pct = &self.fs_pct;
        let admitted = || match fs_pct {
            Ok(p) => Ok(*p),
            Err(reason) => Err(JournalError::Full {
                reason: reason.clone(),
            }),
        };
        let mut st = Stager {
            db,
            staged: &mut self.staged,
            wake: &mut self.wake,
            state,
            space,
            cfg,
        };
        let out = match req {
            Req::Append(m, tx) => {
                let (m, policy, patient) = &*m;
                Outcome::Append(
                    tx,
                    admitted().and_then(|p| st.append(m, *policy, patient.as_ref(), p)),
                )
            }
            Req::Batch(b, tx) => {
                // A batch of state deletions only needs no space.
                let p = if b.needs_space() { admitted() } else { Ok(0) };
                Outcome::Batch(tx, p.and_then(|p| st.batch(*b, p)))
            }
            Req::Quarantine(q, tx) => {
                Outcome::Unit(tx, admitted().and_then(|p| st.quarantine(*q, p)))
            }
            Req::Delivered(d, ids, tx) => {
                Outcome::Unit(tx, ids.iter().try_for_each(|&id| st.delivered(&d, id)))
            }
            Req::DeadLetter(d, tx) => Outcome::Any(tx, st.dead_letter(*d).map(Answer::Seq)),
            Req::Replay(seq, who, tx) => {
                Outcome::Any(tx, st.replay(seq, &who).map(Answer::Replayed))
            }
            Req::Purge(seq, who, tx) => Outcome::Any(tx, st.purge(seq, &who).map(Answer::Replayed)),
            Req::Prune(cutoff, after, max, tx) => {
                Outcome::Any(tx, st.prune(cutoff, after, max).map(Answer::Pruned))
            }
            Req::PruneAudit(cutoff, keep, max, tx) => {
                Outcome::Any(tx, st.prune_audit(cutoff, keep, max).map(Answer::Pruned))
            }
            Req::RawPut(k, v, tx) => {
                st.raw_put(k, v);
                Outcome::Unit(tx, Ok(()))
            }
            Req::Audit {
                at_ms,
                kind,
                detail,
            } => {
                match st.audit_event(at_ms, &kind, &detail) {
                    Ok(()) => self.wrote = true,
                    Err(e) => {
                        log::error!("journal: audit event {kind} not stored: {e}");
                        if e.is_storage_failure() {
                            self.failed = Some(e);
                        }
                    }
                }
                return;
            }
            Req::Close(tx) => {
                self.close = Some(tx);
                return;
            }
        };
        if let Some(e) = out.storage_failure() {
            self.failed = Some(e.duplicate());
        }
        self.wrote |= out.is_ok();
        self.replies.push(out);
    }

    /// Answer `req` with `e` (an audit event is logged as lost).
    fn refuse(&mut self, req: Req, e: JournalError) {
        let out = match req {
            Req::Append(_, tx) => Outcome::Append(tx, Err(e)),
            Req::Batch(_, tx) => Outcome::Batch(tx, Err(e)),
            Req::Quarantine(_, tx) | Req::Delivered(_, _, tx) | Req::RawPut(_, _, tx) => {
                Outcome::Unit(tx, Err(e))
            }
            Req::DeadLetter(_, tx)
            | Req::Replay(_, _, tx)
            | Req::Purge(_, _, tx)
            | Req::Prune(_, _, _, tx)
            | Req::PruneAudit(_, _, _, tx) => Outcome::Any(tx, Err(e)),
            Req::Audit { kind, .. } => {
                log::error!("journal: audit event {kind} lost: {e}");
                return;
            }
            Req::Close(tx) => {
                self.close = Some(tx);
                return;
            }
        };
        self.replies.push(out);
    }

    /// Whether the group may wait for the next one: only audit events, no
    /// caller waiting, not forced (timeout, shutdown), not overdue, and a
    /// timer to come back. (The daemon audits every unrouted message right
    /// after its append: logging that alone would cost a second fdatasync
    /// per message.)
    pub(super) fn may_wait(&self, force: bool, can_defer: bool) -> bool {
        let waiting = !self.replies.is_empty() || self.close.is_some();
        let overdue = self
            .deferred_since
            .is_some_and(|t| t.elapsed() >= AUDIT_DEFER);
        self.failed.is_none() && !waiting && !force && !overdue && can_defer
    }

    /// Carry the group's ops into the next group (none if it staged nothing).
    pub(super) fn defer(self) -> Option<Deferred> {
        if self.staged.is_empty() {
            return None;
        }
        Some(Deferred {
            staged: self.staged,
            since: self.deferred_since.unwrap_or_else(Instant::now),
        })
    }

    /// One WAL append + fdatasync for the whole group ([`Store::log`]),
    /// timed for the commit-latency histogram. First the free space must
    /// hold what the commit may write (the space reserve is released if
    /// need be); if not, the group is refused with `Full` before anything
    /// is written.
    pub(super) fn log(
        &mut self,
        store: Option<&mut Store>,
        shared: &Shared,
        space: &mut SpaceGuard,
    ) {
        if self.failed.is_some() || self.staged.is_empty() {
            return;
        }
        let mut bytes = 0;
        if store.is_some() {
            bytes = self
                .staged
                .effective()
                .map(|op| match op {
                    Op::Set(k, v) => (k.len() + v.len() + 16) as u64,
                    Op::Remove(k) => (k.len() + 16) as u64,
                })
                .sum::<u64>();
            if let Err(reason) = space.room_for_commit(bytes) {
                self.failed = Some(JournalError::Full { reason });
                return;
            }
        }
        let dir = &shared.cfg.dir;
        let started = Instant::now();
        let logged = match store {
            // Measured again after the WAL sync, right before sled
            // writes: failing here is a storage failure (the group is
            // durable in the WAL; the reopen, once there is room, replays it).
            Some(s) => s.log(dir, &mut self.staged, || {
                space
                    .room_for_sled(bytes)
                    .map_err(|reason| crate::error::no_space_for_sled(dir, &reason))
            }),
            None => Err(unavailable(dir)),
        };
        shared.commit_latency.record(started.elapsed());
        match logged {
            Ok(sync) => {
                if sync.db_synced {
                    shared.sled_syncs.fetch_add(1, Ordering::Relaxed);
                }
                if let Ok(mut g) = shared.last_sync.lock() {
                    *g = sync;
                }
            }
            Err(e) => self.failed = Some(e),
        }
    }

    /// Reply to every request: all failed if the group did, else publish
    /// the commit (stats, counters as `state` now has them) and wake the
    /// outboxes it enqueued on.
    pub(super) fn finish(self, shared: &Shared, state: &Counters) -> Finished {
        let n = self.requests;
        let mut replies = self.replies;
        if let Some(e) = &self.failed {
            log::error!("journal: commit of {n} request(s) failed, none acknowledged: {e}");
            replies = replies.into_iter().map(|o| o.fail(e)).collect();
        } else if self.wrote {
            shared.commits.fetch_add(1, Ordering::Relaxed);
            shared.committed_requests.fetch_add(n, Ordering::Relaxed);
            shared.largest_batch.fetch_max(n, Ordering::Relaxed);
            if let Ok(mut g) = shared.counters.lock() {
                *g = state.clone();
            }
        }
        for o in replies {
            o.send();
        }
        if self.failed.is_none() {
            for d in self.wake {
                if d.starts_with('\u{0}') {
                    shared.dlq_changes.fetch_add(1, Ordering::Release);
                }
                let nt = shared.notify(&d);
                // Wake every waiter now, and leave a permit for a deliverer
                // that is between `pending()` and `notified().await`.
                nt.notify_waiters();
                nt.notify_one();
            }
        }
        let storage = self.failed.as_ref().map(JournalError::is_storage_failure);
        Finished {
            close: self.close,
            failed: storage == Some(true),
            refused: storage == Some(false),
        }
    }
}
