//! The single writer thread: every mutation of the journal goes through it.
//!
//! It blocks for the first request, drains up to `max_batch - 1` more that
//! are already queued, stages each request's ops (message + dedup entry +
//! outbox entries + counters + audit events; all or nothing per request),
//! appends ONE WAL record for the group and `fdatasync`s it, applies the
//! ops to sled, syncs what sled created (see [`store::Store::log`]), and
//! only then replies to every request of the group. Serialising all writers
//! here is also what makes the de-dup decision and id allocation atomic.
//!
//! - `run_loop.rs`: the loop, a commit's steps, checkpoints, reopen after
//!   a storage failure;
//! - `group.rs`: one group commit (its staged ops, waiting replies, the
//!   outboxes to wake, failure) and the deferral of audit-only groups;
//! - `store.rs`: sled + durability bookkeeping + WAL; the write-ahead
//!   protocol of a group and checkpoints;
//! - `recovery.rs`: open, WAL replay, checkpoint at open, counters;
//! - `staging.rs`: the group's staged ops and how a request is staged
//!   against them; `append.rs` (append, quarantine), `batch.rs` (batches
//!   and state changes, all or nothing), `lifecycle.rs` (delivered, dead
//!   letter, replay, purge, prune), `release.rs` (removing a message
//!   kept only until delivered) and `audit_prune.rs` (the audit trail's
//!   own retention) stage each kind.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{oneshot, Notify};

use crate::batch::BatchReq;
use crate::counter::Counters;
use crate::durability::CommitSync;
use crate::quota::Usage;
use crate::record::DeadLetterRec;
use crate::trace_index::PatientRef;
use crate::{
    Appended, JournalConfig, JournalError, NewMessage, Policy, PruneReport, Quarantined, Replayed,
};

mod append;
mod audit_prune;
mod batch;
mod group;
mod lifecycle;
mod recovery;
mod release;
mod run_loop;
mod staging;
mod store;

pub use append::QUARANTINE_RAW_MAX;
pub(crate) use recovery::{recover, Recovered, SLED_CACHE_BYTES};
pub(crate) use run_loop::Writer;
pub(crate) use staging::push_audit;
pub(crate) use staging::Staged;
#[cfg(test)]
pub(crate) use store::crash;
pub(crate) use store::{checkpoint_sled, Store};

/// Longest an audit event (`Journal::audit`, fire-and-forget) waits to be
/// logged when no other request comes to carry it.
pub(crate) const AUDIT_DEFER: Duration = Duration::from_millis(50);

pub(crate) type Reply<T> = oneshot::Sender<Result<T, JournalError>>;

pub(crate) enum Req {
    Append(
        Box<(NewMessage, Policy, Option<PatientRef>)>,
        Reply<Appended>,
    ),
    /// Messages and state changes in one commit, all or nothing.
    Batch(Box<BatchReq>, Reply<Vec<Appended>>),
    Quarantine(Box<Quarantined>, Reply<()>),
    /// Delivered on one destination: every id in one request (idempotent each).
    Delivered(String, Vec<u64>, Reply<()>),
    Audit {
        at_ms: u64,
        kind: String,
        detail: String,
    },
    /// Move a message from its outbox to the dead-letter queue; replies its seq.
    DeadLetter(Box<DeadLetterRec>, Reply<Answer>),
    /// Dead letter seq back onto its outbox; `String` names the operator.
    Replay(u64, String, Reply<Answer>),
    Purge(u64, String, Reply<Answer>),
    /// Retention: (cutoff_ms, after id, max messages).
    Prune(u64, u64, usize, Reply<Answer>),
    /// The audit trail's retention: (cutoff_ms, keep at most this many
    /// events, max events removed).
    PruneAudit(u64, Option<u64>, usize, Reply<Answer>),
    /// Test hook: write (`Some`) or remove (`None`) a raw value under a raw
    /// key (to inject corruption or tampering).
    RawPut(Vec<u8>, Option<Vec<u8>>, Reply<()>),
    Close(Reply<()>),
}

/// Replies of the lifecycle requests.
#[derive(Debug)]
pub(crate) enum Answer {
    Seq(u64),
    Replayed(Replayed),
    Pruned(PruneReport),
}

/// State shared between the writer and the reader-side handles.
pub(crate) struct Shared {
    pub cfg: JournalConfig,
    /// `None` while closed or while the writer is reopening sled.
    pub db: RwLock<Option<sled::Db>>,
    pub closed: AtomicBool,
    /// Counters as of the last successful commit.
    pub counters: Mutex<Counters>,
    pub usage: Usage,
    pub notifies: Mutex<HashMap<String, Arc<Notify>>>,
    pub commits: AtomicU64,
    pub committed_requests: AtomicU64,
    pub largest_batch: AtomicU64,
    pub reopens: AtomicU64,
    pub sled_syncs: AtomicU64,
    pub checkpoints: AtomicU64,
    pub last_sync: Mutex<CommitSync>,
    /// When the writer loop last came round (ms since the epoch): the
    /// daemon's watchdog stops pinging systemd when this goes stale.
    pub alive_ms: AtomicU64,
    /// Bumped after each committed dead-letter replay or purge, so a
    /// deliverer can tell (race-free) that it must re-read held lanes.
    pub dlq_changes: AtomicU64,
    /// Time of each durable group commit (WAL append + fdatasync), for /metrics.
    pub commit_latency: crate::histogram::Histogram,
    /// The on-disk format as opened (only an offline migration changes it).
    pub format: u64,
}

impl Shared {
    pub(crate) fn db(&self) -> Result<sled::Db, JournalError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(JournalError::Closed);
        }
        let g = self.db.read().map_err(|_| JournalError::Closed)?;
        match &*g {
            Some(db) => Ok(db.clone()),
            None => Err(JournalError::Io {
                context: format!(
                    "journal {} is being reopened after an I/O error",
                    self.cfg.dir.display()
                ),
                source: std::io::Error::other("journal temporarily unavailable"),
            }),
        }
    }

    /// Wall-clock ms from the configured clock ([`JournalConfig::clock`]).
    pub(crate) fn now_ms(&self) -> u64 {
        (self.cfg.clock)()
    }

    pub(crate) fn notify(&self, dest: &str) -> Arc<Notify> {
        let mut m = match self.notifies.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        m.entry(dest.to_string())
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone()
    }
}
