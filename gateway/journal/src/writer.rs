//! The single writer thread, group commit, the WAL protocol and recovery.
//!
//! Every mutation goes through one OS thread. It blocks for the first
//! request, drains up to `max_batch - 1` more that are already queued,
//! stages each request's ops (message + dedup entry + outbox entries +
//! counters + audit events; all or nothing per request), appends ONE WAL
//! record for the group and `fdatasync`s it, applies the ops to sled, syncs
//! what sled created (see [`Writer::log_group`]), and only then replies to
//! every request of the group. Serialising all writers here is also what
//! makes the de-dup decision and id allocation atomic.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Notify};

use super::durability::{create_dir_durable, CommitSync, Durability};
use super::quota::{is_enospc, SpaceGuard, Usage};
use super::record::DeadLetterRec;
use super::record::{self as rec, AuditRec, QuarantineRec};
use super::wal::{self, Op, OpBatch, Wal};
use super::{
    Appended, JournalConfig, JournalError, NewMessage, PruneReport, Quarantined, Replayed,
};

mod dlq_and_retention;

/// Largest raw prefix kept for a quarantined input.
pub const QUARANTINE_RAW_MAX: usize = 64 * 1024;

pub(crate) type Reply<T> = oneshot::Sender<Result<T, JournalError>>;

pub(crate) enum Req {
    Append(Box<NewMessage>, Reply<Appended>),
    Quarantine(Box<Quarantined>, Reply<()>),
    Delivered(String, u64, Reply<()>),
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
    /// Test hook: write a raw value under a raw key (to inject corruption).
    RawPut(Vec<u8>, Vec<u8>, Reply<()>),
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
/// How often an idle writer wakes to record that it is alive.
const IDLE_BEAT: Duration = Duration::from_secs(1);

pub(crate) struct Shared {
    pub cfg: JournalConfig,
    /// `None` while closed or while the writer is reopening sled.
    pub db: RwLock<Option<sled::Db>>,
    pub closed: AtomicBool,
    /// Counters as of the last successful commit (see `Counters`).
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

/// Persisted counters (`c` + name), mirrored in memory. Names: `messages`,
/// `duplicates`, `control_id_reuses`, `quarantined` (ever), `q_entries`,
/// `q_bytes` (currently held), `pending/<dest>`, `delivered/<dest>`.
/// Plus the next ids, derived from the largest stored keys at open.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counters {
    pub named: BTreeMap<String, u64>,
    pub next_id: u64,
    pub next_audit: u64,
    pub next_q: u64,
    pub next_dead: u64,
}

impl Counters {
    pub(crate) fn get(&self, name: &str) -> u64 {
        self.named.get(name).copied().unwrap_or(0)
    }
}

pub(crate) fn map_sled(context: String, e: sled::Error) -> JournalError {
    match e {
        sled::Error::Io(source) => {
            if is_enospc(&source) {
                JournalError::Full {
                    reason: format!("no space left on device ({context}): free disk space"),
                }
            } else {
                JournalError::Io { context, source }
            }
        }
        sled::Error::Corruption { .. } => JournalError::Corrupt {
            context: format!("{context}: sled reported corruption"),
        },
        other => JournalError::Io {
            context,
            source: std::io::Error::other(other.to_string()),
        },
    }
}

pub(crate) fn map_io(dir: &Path, (context, source): (String, std::io::Error)) -> JournalError {
    if is_enospc(&source) {
        JournalError::Full {
            reason: format!(
                "no space left on device ({context}) in data directory {}: free disk space",
                dir.display()
            ),
        }
    } else {
        JournalError::Io { context, source }
    }
}

fn corrupt(what: String, why: &str) -> JournalError {
    JournalError::Corrupt {
        context: format!("{what}: {why}"),
    }
}

/// Open sled and close its durability gaps at open. Retries briefly: after
/// an in-process close or a reopen, sled's file lock can outlive the last
/// handle by a few milliseconds (its thread pool).
pub(crate) fn open_db(cfg: &JournalConfig) -> Result<(sled::Db, Durability), JournalError> {
    let dir = &cfg.dir;
    create_dir_durable(dir).map_err(|e| map_io(dir, e))?;
    let mut attempt = 0;
    let db = loop {
        let r = sled::Config::new()
            .path(dir)
            .cache_capacity(SLED_CACHE_BYTES)
            // Commits are made durable by the WAL and sled is flushed (and
            // really synced) at checkpoints; sled's background flusher
            // would only add unsynced, unaccounted I/O.
            .flush_every_ms(None)
            .open();
        match r {
            Ok(db) => break db,
            Err(e) if attempt < 40 && matches!(e, sled::Error::Io(_)) => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(50));
                let _ = e;
            }
            Err(e) => {
                return Err(map_sled(
                    format!("open sled database in {}", dir.display()),
                    e,
                ))
            }
        }
    };
    let dur = Durability::open(dir).map_err(|e| map_io(dir, e))?;
    Ok((db, dur))
}

/// sled's page cache. Small and bounded (DESIGN.md contract 7): reads
/// are mostly of recent messages, and the OS page cache sits under it.
pub(crate) const SLED_CACHE_BYTES: u64 = 4 * 1024 * 1024;

fn unavailable(dir: &Path) -> JournalError {
    JournalError::Io {
        context: format!("journal {} unavailable", dir.display()),
        source: std::io::Error::other("sled could not be reopened"),
    }
}

/// sled's full durability protocol: `flush()` (write + `sync_file_range`
/// of the log), then [`Durability::after_flush`] (new files, directories,
/// `fdatasync(db)`). After it, sled alone holds everything applied so far.
pub(crate) fn checkpoint_sled(
    dir: &Path,
    db: &sled::Db,
    dur: &mut Durability,
) -> Result<CommitSync, JournalError> {
    db.flush()
        .map_err(|e| map_sled(format!("flush journal {}", dir.display()), e))?;
    dur.after_flush().map_err(|e| map_io(dir, e))
}

/// A journal opened and recovered: sled durable and holding every WAL
/// record, the WAL empty.
pub(crate) struct Recovered {
    pub db: sled::Db,
    pub dur: Durability,
    pub wal: Wal,
    pub state: Counters,
    /// WAL records applied to sled by this recovery.
    pub replayed: u64,
    /// Torn tail found (and discarded) at the end of the WAL: (file, offset).
    pub torn: Option<(std::path::PathBuf, u64)>,
}

/// Open sled (with its open-time durability), replay the WAL into it,
/// checkpoint, start a fresh WAL, and load the counters.
pub(crate) fn recover(cfg: &JournalConfig) -> Result<Recovered, JournalError> {
    let dir = &cfg.dir;
    let (db, mut dur) = open_db(cfg)?;
    let applied = match db
        .get(wal::APPLIED_KEY)
        .map_err(|e| map_sled("read WAL position".into(), e))?
    {
        Some(v) => rec::open_u64(&v).map_err(|why| corrupt("WAL position record".into(), why))?,
        None => 0,
    };
    let wdir = Wal::dir_of(dir);
    let segs = if wdir.exists() {
        wal::list_segments(&wdir)
            .map_err(|e| map_io(dir, (format!("list {}", wdir.display()), e)))?
    } else {
        Vec::new()
    };
    let mut last = applied;
    let mut prev: Option<u64> = None;
    let mut replayed = 0u64;
    let mut torn = None;
    let nsegs = segs.len();
    for (i, (_, path)) in segs.iter().enumerate() {
        let (recs, tail) = wal::read_segment(path)
            .map_err(|e| map_io(dir, (format!("read WAL {}", path.display()), e)))?;
        for r in recs {
            // Consecutive seqs; the first one applied must follow sled's.
            let expect = prev.map(|p| p + 1);
            if expect.is_some_and(|e| r.seq != e) || (r.seq > applied + 1 && r.seq != last + 1) {
                return Err(corrupt(
                    format!("WAL {}", path.display()),
                    &format!(
                        "record seq {} where {} was expected (sled holds up to {applied}):                          WAL records are missing; acknowledged messages may be lost",
                        r.seq,
                        expect.unwrap_or(last + 1)
                    ),
                ));
            }
            prev = Some(r.seq);
            if r.seq <= applied {
                continue;
            }
            for op in r.ops {
                match op {
                    Op::Set(k, v) => db.insert(k, v).map(|_| ()),
                    Op::Remove(k) => db.remove(k).map(|_| ()),
                }
                .map_err(|e| map_sled(format!("replay WAL record {}", r.seq), e))?;
            }
            last = r.seq;
            replayed += 1;
        }
        match tail {
            wal::Tail::Clean => {}
            wal::Tail::Torn(off) if i + 1 == nsegs => {
                log::warn!(
                    "journal: WAL {} ends in an incomplete record at offset {off} (never acknowledged); discarded",
                    path.display()
                );
                torn = Some((path.clone(), off));
            }
            wal::Tail::Torn(off) | wal::Tail::Corrupt(off) => {
                let why = if matches!(tail, wal::Tail::Corrupt(_)) {
                    "bad record (checksum or framing) followed by valid records"
                } else {
                    "bad record at the end of a WAL segment that is not the newest"
                };
                log::error!(
                    "journal: WAL {} is corrupt at offset {off}: {why}",
                    path.display()
                );
                return Err(corrupt(
                    format!("WAL {} at offset {off}", path.display()),
                    &format!(
                        "{why}: acknowledged messages may be behind it; keep the file for analysis"
                    ),
                ));
            }
        }
    }
    if !segs.is_empty() {
        checkpoint_sled(dir, &db, &mut dur)?;
    }
    let wal = Wal::start(dir, last + 1).map_err(|e| map_io(dir, e))?;
    if replayed > 0 {
        log::info!(
            "journal: replayed {replayed} WAL record(s) into {} (up to seq {last})",
            dir.display()
        );
    }
    let state = load_counters(&db)?;
    Ok(Recovered {
        db,
        dur,
        wal,
        state,
        replayed,
        torn,
    })
}

pub(crate) fn load_counters(db: &sled::Db) -> Result<Counters, JournalError> {
    let mut c = Counters::default();
    for item in db.scan_prefix([rec::P_COUNTER]) {
        let (k, v) = item.map_err(|e| map_sled("scan counters".into(), e))?;
        let name = String::from_utf8_lossy(&k[1..]).into_owned();
        let n = rec::open_u64(&v).map_err(|why| corrupt(format!("counter {name}"), why))?;
        c.named.insert(name, n);
    }
    let last = |p: u8| -> Result<u64, JournalError> {
        match db.scan_prefix([p]).next_back() {
            Some(Ok((k, _))) => Ok(rec::seq_of_key(&k).unwrap_or(0)),
            Some(Err(e)) => Err(map_sled("find last key".into(), e)),
            None => Ok(0),
        }
    };
    // Ids start at 1; resume after the largest stored one.
    // Pruning may remove the newest messages or audit events; their
    // high-water marks keep ids from being reused.
    c.next_id = last(rec::P_MESSAGE)?.max(c.get(dlq_and_retention::PRUNED_THROUGH_ID)) + 1;
    c.next_audit = last(rec::P_AUDIT)?.max(c.get(dlq_and_retention::PRUNED_THROUGH_AUDIT)) + 1;
    c.next_q = last(rec::P_QUARANTINE)? + 1;
    c.next_dead = last(rec::P_DEAD)? + 1;
    Ok(c)
}

enum Outcome {
    Append(Reply<Appended>, Result<Appended, JournalError>),
    Unit(Reply<()>, Result<(), JournalError>),
    Any(Reply<Answer>, Result<Answer, JournalError>),
}

impl Outcome {
    fn is_ok(&self) -> bool {
        match self {
            Outcome::Append(_, r) => r.is_ok(),
            Outcome::Unit(_, r) => r.is_ok(),
            Outcome::Any(_, r) => r.is_ok(),
        }
    }
    fn fail(self, e: &JournalError) -> Outcome {
        match self {
            Outcome::Append(tx, Ok(_)) => Outcome::Append(tx, Err(clone_err(e))),
            Outcome::Unit(tx, Ok(())) => Outcome::Unit(tx, Err(clone_err(e))),
            Outcome::Any(tx, Ok(_)) => Outcome::Any(tx, Err(clone_err(e))),
            o => o,
        }
    }
    fn send(self) {
        // A dropped receiver (caller gave up) is not an error here.
        match self {
            Outcome::Append(tx, r) => {
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

pub(crate) fn clone_err(e: &JournalError) -> JournalError {
    match e {
        JournalError::Full { reason } => JournalError::Full {
            reason: reason.clone(),
        },
        JournalError::Io { context, source } => JournalError::Io {
            context: context.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        JournalError::Corrupt { context } => JournalError::Corrupt {
            context: context.clone(),
        },
        JournalError::Closed => JournalError::Closed,
        JournalError::NotFound { what } => JournalError::NotFound { what: what.clone() },
    }
}

/// Errors that mean sled (or the files under it) may be in an unknown state:
/// the writer drops the Db and reopens it (sled poisons itself after an I/O
/// error; after a failed fsync the page cache may have dropped dirty pages,
/// so only a fresh open reads the truth).
fn is_storage_failure(e: &JournalError) -> bool {
    match e {
        JournalError::Io { .. } => true,
        // Full from admit() is policy, not a failure; ENOSPC is both.
        JournalError::Full { reason } => reason.starts_with("no space left"),
        _ => false,
    }
}

pub(crate) struct Writer {
    shared: Arc<Shared>,
    rx: mpsc::UnboundedReceiver<Req>,
    db: Option<sled::Db>,
    dur: Option<Durability>,
    wal: Option<Wal>,
    /// The current group's ops (applied to sled only once logged).
    staged: Staged,
    /// When the oldest deferred (audit-only) staged op was staged.
    deferred_since: Option<std::time::Instant>,
    /// Whether audit-only groups may be deferred (a timer is available).
    can_defer: bool,
    /// Checkpoint when the WAL holds this many bytes.
    checkpoint_bytes: u64,
    state: Counters,
    space: SpaceGuard,
}

/// Checkpoint when the WAL is this big (or a fraction of the quota or of
/// the filesystem, if smaller: see [`checkpoint_bytes`]) ...
pub(crate) const WAL_CHECKPOINT_BYTES: u64 = 64 * 1024 * 1024;
/// ... or when its oldest record is this old (checked after each commit).
/// Longest an audit event (`Journal::audit`, fire-and-forget) waits to be
/// logged when no other request comes to carry it.
pub(crate) const AUDIT_DEFER: Duration = Duration::from_millis(50);
pub(crate) const WAL_CHECKPOINT_AGE: Duration = Duration::from_secs(30);

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

/// A batch's pending counter updates (new absolute values).
struct Delta<'a> {
    base: &'a Counters,
    new: BTreeMap<String, u64>,
}

impl<'a> Delta<'a> {
    fn new(base: &'a Counters) -> Self {
        Delta {
            base,
            new: BTreeMap::new(),
        }
    }
    fn get(&self, name: &str) -> u64 {
        self.new
            .get(name)
            .copied()
            .unwrap_or_else(|| self.base.get(name))
    }
    fn set(&mut self, name: &str, v: u64) {
        self.new.insert(name.to_string(), v);
    }
    fn add(&mut self, name: &str, d: i64) {
        let v = self.get(name);
        let v = if d >= 0 {
            v.saturating_add(d as u64)
        } else {
            v.saturating_sub(d.unsigned_abs())
        };
        self.set(name, v);
    }
    fn write(&self, b: &mut OpBatch) {
        for (k, v) in &self.new {
            b.insert(rec::counter_key(k), rec::seal_u64(*v));
        }
    }
    /// Write the counters into `b` and hand back the new values.
    fn finish(self, b: &mut OpBatch) -> BTreeMap<String, u64> {
        self.write(b);
        self.new
    }
}

impl Writer {
    pub(crate) fn new(
        shared: Arc<Shared>,
        rx: mpsc::UnboundedReceiver<Req>,
        db: sled::Db,
        dur: Durability,
        wal: Wal,
        state: Counters,
    ) -> Writer {
        let cfg = &shared.cfg;
        let space = SpaceGuard::new(
            &cfg.dir,
            cfg.quota_bytes,
            cfg.refuse_at_percent,
            cfg.warn_at_percent,
        );
        let checkpoint_bytes = checkpoint_bytes(cfg);
        Writer {
            shared,
            rx,
            db: Some(db),
            dur: Some(dur),
            wal: Some(wal),
            staged: Staged::default(),
            deferred_since: None,
            can_defer: false,
            checkpoint_bytes,
            state,
            space,
        }
    }

    pub(crate) fn run(mut self) {
        let max_batch = self.shared.cfg.max_batch.max(1);
        let mut batch: Vec<Req> = Vec::with_capacity(max_batch);
        // Only for the audit deferral timeout (see `commit`).
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
            let next = match (self.deferred_since, &timer) {
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
        if self.db.is_some() {
            // Final checkpoint: sled durable, WAL emptied. If it fails the
            // WAL still holds every acknowledged group: the next open replays it.
            if let Err(e) = self.checkpoint() {
                log::error!("journal: final checkpoint failed: {e}");
            }
        }
        self.db = None;
        self.dur = None;
        self.wal = None;
        log::info!("journal: writer stopped");
    }

    /// Apply and commit one group. Returns the Close reply if the group
    /// contained a close request.
    fn commit(&mut self, batch: &mut Vec<Req>, force: bool) -> Option<Reply<()>> {
        if self.db.is_none() {
            if let Err(e) = self.reopen() {
                log::error!("journal: reopen failed: {e}");
            }
        }
        // `staged` may hold deferred audit events from earlier calls.
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(batch.len());
        let mut close = None;
        let mut wrote = false;
        let mut broken: Option<JournalError> = None;
        let mut notify: BTreeSet<String> = BTreeSet::new();
        let needs_space = batch
            .iter()
            .any(|r| matches!(r, Req::Append(..) | Req::Quarantine(..)));
        let mut fs_pct: Result<u8, String> = Ok(0);
        if needs_space {
            if let Some(db) = &self.db {
                fs_pct = self.space.refresh(db, &self.shared.usage);
            }
        }
        let n = batch.len() as u64;
        for req in batch.drain(..) {
            let db = match (&self.db, &broken) {
                (Some(db), None) => db.clone(),
                (_, b) => {
                    let e = match b {
                        Some(e) => clone_err(e),
                        None => unavailable(&self.shared.cfg.dir),
                    };
                    match req {
                        Req::Append(_, tx) => outcomes.push(Outcome::Append(tx, Err(e))),
                        Req::Quarantine(_, tx)
                        | Req::Delivered(_, _, tx)
                        | Req::RawPut(_, _, tx) => outcomes.push(Outcome::Unit(tx, Err(e))),
                        Req::Audit { kind, .. } => {
                            log::error!("journal: audit event {kind} lost: {e}")
                        }
                        Req::DeadLetter(_, tx)
                        | Req::Replay(_, _, tx)
                        | Req::Purge(_, _, tx)
                        | Req::Prune(_, _, _, tx) => outcomes.push(Outcome::Any(tx, Err(e))),
                        Req::Close(tx) => close = Some(tx),
                    }
                    continue;
                }
            };
            let out = match req {
                Req::Append(m, tx) => {
                    let r = match &fs_pct {
                        Ok(p) => self.append(&db, &m, *p, &mut notify),
                        Err(reason) => Err(JournalError::Full {
                            reason: reason.clone(),
                        }),
                    };
                    Outcome::Append(tx, r)
                }
                Req::Quarantine(q, tx) => {
                    let r = match &fs_pct {
                        Ok(p) => self.quarantine(&db, *q, *p),
                        Err(reason) => Err(JournalError::Full {
                            reason: reason.clone(),
                        }),
                    };
                    Outcome::Unit(tx, r)
                }
                Req::Delivered(d, id, tx) => Outcome::Unit(tx, self.delivered(&db, &d, id)),
                Req::DeadLetter(d, tx) => {
                    Outcome::Any(tx, self.dead_letter(&db, *d, &mut notify).map(Answer::Seq))
                }
                Req::Replay(seq, who, tx) => Outcome::Any(
                    tx,
                    self.replay(&db, seq, &who, &mut notify)
                        .map(Answer::Replayed),
                ),
                Req::Purge(seq, who, tx) => Outcome::Any(
                    tx,
                    self.purge(&db, seq, &who, &mut notify)
                        .map(Answer::Replayed),
                ),
                Req::Prune(cutoff, after, max, tx) => {
                    Outcome::Any(tx, self.prune(&db, cutoff, after, max).map(Answer::Pruned))
                }
                Req::Audit {
                    at_ms,
                    kind,
                    detail,
                } => {
                    let mut b = OpBatch::default();
                    let mut next_audit = self.state.next_audit;
                    let r = push_audit(&mut b, &mut next_audit, at_ms, &kind, &detail)
                        .map(|()| self.staged.stage(b));
                    match r {
                        Ok(()) => {
                            self.state.next_audit = next_audit;
                            wrote = true;
                        }
                        Err(e) => {
                            log::error!("journal: audit event {kind} not stored: {e}");
                            if is_storage_failure(&e) {
                                broken = Some(e);
                            }
                        }
                    }
                    continue;
                }
                Req::RawPut(k, v, tx) => Outcome::Unit(tx, {
                    let mut b = OpBatch::default();
                    b.insert(k, v);
                    {
                        self.staged.stage(b);
                        Ok(())
                    }
                }),
                Req::Close(tx) => {
                    close = Some(tx);
                    continue;
                }
            };
            match &out {
                Outcome::Append(_, Err(e)) | Outcome::Unit(_, Err(e)) if is_storage_failure(e) => {
                    broken = Some(clone_err(e));
                }
                _ => {}
            }
            wrote |= out.is_ok();
            outcomes.push(out);
        }

        // A group of audit events only (no caller waits for them) is not
        // logged at once: it rides with the next group that has a waiting
        // request, or is logged after AUDIT_DEFER. (The daemon audits every
        // unrouted message right after its append: logging that alone
        // would cost a second fdatasync per message.)
        let waiting = !outcomes.is_empty() || close.is_some();
        let overdue = self
            .deferred_since
            .is_some_and(|t| t.elapsed() >= AUDIT_DEFER);
        if broken.is_none() && !waiting && !force && !overdue && self.can_defer {
            if !self.staged.is_empty() {
                self.deferred_since
                    .get_or_insert_with(std::time::Instant::now);
            }
            return None;
        }
        self.deferred_since = None;

        // One WAL append + fdatasync for the whole group.
        if broken.is_none() && !self.staged.is_empty() {
            let started = std::time::Instant::now();
            let logged = self.log_group();
            self.shared.commit_latency.record(started.elapsed());
            match logged {
                Ok(sync) => {
                    if let Ok(mut g) = self.shared.last_sync.lock() {
                        *g = sync;
                    }
                }
                Err(e) => broken = Some(e),
            }
        }
        self.staged.clear();

        if let Some(e) = &broken {
            log::error!("journal: commit of {n} request(s) failed, none acknowledged: {e}");
            outcomes = outcomes.into_iter().map(|o| o.fail(e)).collect();
        } else if wrote {
            self.shared.commits.fetch_add(1, Ordering::Relaxed);
            self.shared
                .committed_requests
                .fetch_add(n, Ordering::Relaxed);
            self.shared.largest_batch.fetch_max(n, Ordering::Relaxed);
            if let Ok(mut g) = self.shared.counters.lock() {
                *g = self.state.clone();
            }
        }
        for o in outcomes {
            o.send();
        }
        if broken.is_none() {
            for d in notify {
                if d.starts_with('\u{0}') {
                    self.shared.dlq_changes.fetch_add(1, Ordering::Release);
                }
                let nt = self.shared.notify(&d);
                // Wake every waiter now, and leave a permit for a deliverer
                // that is between `pending()` and `notified().await`.
                nt.notify_waiters();
                nt.notify_one();
            }
        } else if let Err(e) = self.reopen() {
            log::error!("journal: reopen after failure failed: {e}");
        }
        if broken.is_none() && close.is_none() && self.checkpoint_due() {
            if let Err(e) = self.checkpoint() {
                // Nothing is lost (the WAL still holds every acknowledged
                // group); start over from disk as after any I/O failure.
                log::error!("journal: checkpoint failed: {e}");
                if let Err(e) = self.reopen() {
                    log::error!("journal: reopen after failed checkpoint failed: {e}");
                }
            }
        }
        close
    }

    fn checkpoint_due(&self) -> bool {
        self.wal.as_ref().is_some_and(|w| {
            w.len() >= self.checkpoint_bytes || w.age().is_some_and(|a| a >= WAL_CHECKPOINT_AGE)
        })
    }

    /// Make the group durable and visible. Write-ahead: append ONE WAL
    /// record (the group's ops plus "sled holds up to seq" under
    /// [`wal::APPLIED_KEY`], last) and `fdatasync` it; only then apply the
    /// ops to sled (plain inserts/removes, no flush), `fsync` the blob files
    /// sled created doing so (and their directories), and, if sled wrote
    /// its log meanwhile, run sled's full durability protocol. Only then may
    /// any request of the group be answered.
    fn log_group(&mut self) -> Result<CommitSync, JournalError> {
        let dir = &self.shared.cfg.dir;
        if self.staged.is_empty() {
            // Nothing was written (e.g. an idempotent mark_delivered).
            return Ok(CommitSync::default());
        }
        let (Some(db), Some(dur), Some(wal)) = (&self.db, self.dur.as_mut(), self.wal.as_mut())
        else {
            return Err(unavailable(dir));
        };
        let seq = wal.next_seq;
        let mut b = OpBatch::default();
        b.insert(wal::APPLIED_KEY, rec::seal_u64(seq));
        self.staged.stage(b);
        let record = wal::encode_record(seq, self.staged.ops.iter());
        wal.append(&record).map_err(|e| map_io(dir, e))?;
        drop(record);
        let mut sync = CommitSync {
            synced: vec![wal.path().to_path_buf()],
            ..Default::default()
        };
        // The group is durable. Apply it to sled in order (APPLIED_KEY
        // last); sled recovers a prefix of these, and replay from the WAL
        // completes it. sled's `apply_batch` is not used: every call writes
        // and `sync_file_range`s sled's log (its `pin_log`), a disk round
        // trip per request.
        self.staged.latest.clear();
        for op in self.staged.ops.drain(..) {
            match op {
                Op::Set(k, v) => db.insert(k, v).map(|_| ()),
                Op::Remove(k) => db.remove(k).map(|_| ()),
            }
            .map_err(|e| map_sled(format!("apply WAL record {seq} to sled"), e))?;
        }
        let s = dur.sync_new_files().map_err(|e| map_io(dir, e))?;
        sync.db_written = s.db_written;
        sync.full_rescan = s.full_rescan;
        sync.synced.extend(s.synced);
        if sync.db_written {
            // sled wrote its log during this group (an I/O buffer filled:
            // every few hundred small messages). sled treats a log write as
            // stable once `sync_file_range` returns and may then free and
            // reuse segments, and it writes buffers concurrently; if the
            // disk kept some of those writes and not others, sled's
            // recovery finds pages missing ("cannot find pid", seen on
            // lossyfs when this was left to the next checkpoint). So every
            // group in which sled wrote its log ends with sled's full
            // durability protocol (flush waits for every buffer, then
            // fdatasync): what sled wrote is a durable prefix before any
            // reply, as before the WAL.
            let s = checkpoint_sled(dir, db, dur)?;
            self.shared.sled_syncs.fetch_add(1, Ordering::Relaxed);
            sync.db_synced = true;
            sync.full_rescan |= s.full_rescan;
            sync.synced.extend(s.synced);
        }
        Ok(sync)
    }

    /// Checkpoint: sled's full durability protocol (flush, new files,
    /// `fdatasync(db)`, directories), then delete the WAL and start a new
    /// segment.
    fn checkpoint(&mut self) -> Result<(), JournalError> {
        let dir = &self.shared.cfg.dir;
        let (Some(db), Some(dur), Some(wal)) = (&self.db, self.dur.as_mut(), self.wal.as_mut())
        else {
            return Err(unavailable(dir));
        };
        checkpoint_sled(dir, db, dur)?;
        wal.truncate_after_checkpoint()
            .map_err(|e| map_io(dir, e))?;
        self.shared.checkpoints.fetch_add(1, Ordering::Relaxed);
        self.space.invalidate();
        Ok(())
    }

    /// Drop sled and open it again; reload counters from disk (the in-memory
    /// ones may include writes that were applied but never made durable).
    fn reopen(&mut self) -> Result<(), JournalError> {
        self.shared.reopens.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut g) = self.shared.db.write() {
            *g = None;
        }
        self.dur = None;
        self.wal = None;
        self.space.invalidate();
        if let Some(old) = self.db.take() {
            // sled flushes in Drop, and after some I/O errors (ENOSPC while
            // writing a blob) that flush blocks forever. Drop it on another
            // thread and wait a bounded time, so the writer stays responsive.
            let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
            let spawned = std::thread::Builder::new()
                .name("journal-reaper".into())
                .spawn(move || {
                    drop(old);
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
        let Recovered {
            db,
            dur,
            wal,
            state,
            ..
        } = recover(&self.shared.cfg)?;
        self.state = state;
        self.wal = Some(wal);
        if let Ok(mut g) = self.shared.counters.lock() {
            *g = self.state.clone();
        }
        if let Ok(mut g) = self.shared.db.write() {
            *g = Some(db.clone());
        }
        self.db = Some(db);
        self.dur = Some(dur);
        log::warn!(
            "journal: reopened {} after an I/O error (next id {})",
            self.shared.cfg.dir.display(),
            self.state.next_id
        );
        Ok(())
    }

    fn append(
        &mut self,
        db: &sled::Db,
        m: &NewMessage,
        fs_pct: u8,
        notify: &mut BTreeSet<String>,
    ) -> Result<Appended, JournalError> {
        let h = &m.meta;
        let dkey = rec::dedup_key(&m.source, &h.dedup);
        let mut reuse_of = None;
        let mut delta = Delta::new(&self.state);
        if let Some(v) = self.staged.get(db, &dkey, "dedup index")? {
            let first = rec::open_u64(&v).map_err(|why| {
                corrupt(
                    format!(
                        "dedup entry for source {} control id {}",
                        m.source, h.control_id
                    ),
                    why,
                )
            })?;
            if let Some(mv) =
                self.staged
                    .get(db, &rec::message_key(first), &format!("message {first}"))?
            {
                let (meta, raw) = rec::decode_message(&mv)
                    .map_err(|why| corrupt(format!("message {first}"), why))?;
                if raw == m.raw.as_slice() {
                    delta.add("duplicates", 1);
                    let mut b = OpBatch::default();
                    delta.write(&mut b);
                    self.staged.stage(b);
                    let new = delta.new;
                    self.state.named.extend(new);
                    log::info!(
                        "journal: duplicate of message {first} on listener {} (control id {})",
                        m.source,
                        h.control_id
                    );
                    return Ok(Appended::Duplicate {
                        id: first,
                        first_ack: meta.ack,
                    });
                }
                reuse_of = Some(first);
            }
        }

        let incoming = (m.raw.len() + m.ack.len() + 256) as u64;
        self.space
            .admit(fs_pct, incoming)
            .map_err(|reason| JournalError::Full { reason })?;

        let id = self.state.next_id;
        let record = rec::encode_message(m.received_at_ms, &m.source, &m.peer, h, &m.ack, &m.raw)
            .map_err(|e| JournalError::Io {
            context: format!("encode message {id}"),
            source: std::io::Error::other(e.to_string()),
        })?;
        let rec_len = record.len() as u64;
        let mut b = OpBatch::default();
        b.insert(&rec::message_key(id)[..], record);
        b.insert(dkey, rec::seal_u64(id));
        // One entry per destination; the first route's transform wins.
        let mut dests: BTreeMap<&str, &str> = BTreeMap::new();
        for e in &m.destinations {
            dests
                .entry(e.destination.as_str())
                .or_insert(e.transform.as_str());
        }
        for (d, transform) in &dests {
            let entry =
                dlq_and_retention::outbox_entry(m.received_at_ms, m.patient_lane, transform);
            let v = rec::encode_postcard(&entry).map_err(|e| JournalError::Io {
                context: format!("encode outbox entry {id}"),
                source: std::io::Error::other(e.to_string()),
            })?;
            b.insert(rec::outbox_key(d, id), v);
            delta.add(&rec::pending_counter(d), 1);
        }
        delta.add("messages", 1);
        let mut next_audit = self.state.next_audit;
        if let Some(first) = reuse_of {
            delta.add("control_id_reuses", 1);
            let detail = format!(
                "listener={} control_id={} first_id={first} new_id={id}",
                m.source, h.control_id
            );
            push_audit(
                &mut b,
                &mut next_audit,
                self.shared.now_ms(),
                "control_id_reuse",
                &detail,
            )?;
            log::warn!(
                "journal: control id reuse on listener {} (control id {}, first message {first}, new message {id})",
                m.source,
                h.control_id
            );
        }
        let counters = delta.finish(&mut b);
        self.stage_request(b, counters, next_audit);
        self.state.next_id = id + 1;
        self.space.add(rec_len);
        for d in dests.keys() {
            notify.insert(d.to_string());
        }
        Ok(Appended::Stored { id })
    }

    fn quarantine(
        &mut self,
        db: &sled::Db,
        q: Quarantined,
        fs_pct: u8,
    ) -> Result<(), JournalError> {
        let cfg = &self.shared.cfg;
        let original_len = q.raw.len() as u64;
        let keep = QUARANTINE_RAW_MAX.min(cfg.quarantine_max_bytes.min(usize::MAX as u64) as usize);
        self.space
            .admit(fs_pct, keep.min(q.raw.len()) as u64 + 256)
            .map_err(|reason| JournalError::Full { reason })?;
        let mut raw = q.raw;
        raw.truncate(keep);
        let seq = self.state.next_q;
        let record = rec::encode_postcard(&QuarantineRec {
            source: q.source.clone(),
            peer: q.peer,
            received_at_ms: q.received_at_ms,
            reason: q.reason.clone(),
            original_len,
            raw,
        })
        .map_err(|e| JournalError::Io {
            context: format!("encode quarantine entry {seq}"),
            source: std::io::Error::other(e.to_string()),
        })?;
        let mut delta = Delta::new(&self.state);
        let mut b = OpBatch::default();
        let mut entries = delta.get("q_entries");
        let mut bytes = delta.get("q_bytes");
        let store = cfg.quarantine_max_entries > 0;
        if store {
            entries += 1;
            bytes += record.len() as u64;
        }
        let mut evicted = 0u64;
        // Evict oldest first (streamed) until within both bounds.
        if entries > cfg.quarantine_max_entries as u64 || bytes > cfg.quarantine_max_bytes {
            let within = |entries: u64, bytes: u64| {
                entries <= cfg.quarantine_max_entries as u64 && bytes <= cfg.quarantine_max_bytes
            };
            // Stored entries (as this group left them), then entries staged
            // by this group (newer seqs, so this is oldest first).
            let mut seen_in_sled: BTreeSet<Vec<u8>> = BTreeSet::new();
            for item in db.scan_prefix([rec::P_QUARANTINE]) {
                if within(entries, bytes) {
                    break;
                }
                let (k, v) = item.map_err(|e| map_sled("scan quarantine".into(), e))?;
                let len = match self.staged.staged(&k) {
                    Some(None) => continue, // evicted earlier in this group
                    Some(Some(sv)) => sv.len(),
                    None => v.len(),
                };
                seen_in_sled.insert(k.to_vec());
                b.remove(&k);
                entries = entries.saturating_sub(1);
                bytes = bytes.saturating_sub(len as u64);
                evicted += 1;
            }
            for (k, v) in self.staged.staged_sets(&[rec::P_QUARANTINE]) {
                if within(entries, bytes) {
                    break;
                }
                if seen_in_sled.contains(k) {
                    continue;
                }
                b.remove(k);
                entries = entries.saturating_sub(1);
                bytes = bytes.saturating_sub(v.len() as u64);
                evicted += 1;
            }
        }
        let rec_len = record.len() as u64;
        if store {
            b.insert(&rec::seq_key(rec::P_QUARANTINE, seq)[..], record);
        }
        delta.set("q_entries", entries);
        delta.set("q_bytes", bytes);
        delta.add("quarantined", 1);
        let mut next_audit = self.state.next_audit;
        let detail = format!(
            "listener={} seq={seq} original_bytes={original_len} evicted={evicted} reason={}",
            q.source, q.reason
        );
        push_audit(
            &mut b,
            &mut next_audit,
            self.shared.now_ms(),
            "quarantine",
            &detail,
        )?;
        let counters = delta.finish(&mut b);
        self.stage_request(b, counters, next_audit);
        self.state.next_q = seq + 1;
        self.space.add(rec_len);
        log::warn!(
            "journal: quarantined input {seq} from listener {} ({original_len} bytes, evicted {evicted})",
            q.source
        );
        Ok(())
    }

    /// Stage one request's ops (all of them, or none on an earlier error)
    /// and adopt its counter values and audit sequence.
    fn stage_request(&mut self, b: OpBatch, counters: BTreeMap<String, u64>, next_audit: u64) {
        self.staged.stage(b);
        self.state.next_audit = next_audit;
        self.state.named.extend(counters);
    }

    fn delivered(&mut self, db: &sled::Db, dest: &str, id: u64) -> Result<(), JournalError> {
        let k = rec::outbox_key(dest, id);
        let present = self
            .staged
            .get(db, &k, &format!("outbox {dest} entry {id}"))?
            .is_some();
        if !present {
            // Idempotent: already delivered (or never queued there).
            return Ok(());
        }
        let mut delta = Delta::new(&self.state);
        let mut b = OpBatch::default();
        b.remove(k);
        delta.add(&rec::pending_counter(dest), -1);
        delta.add(&rec::delivered_counter(dest), 1);
        let mut next_audit = self.state.next_audit;
        push_audit(
            &mut b,
            &mut next_audit,
            self.shared.now_ms(),
            "delivered",
            &format!("destination={dest} id={id}"),
        )?;
        let counters = delta.finish(&mut b);
        self.stage_request(b, counters, next_audit);
        Ok(())
    }
}

/// The current group's ops, not yet in sled: its WAL record. Reads made
/// while building the group (de-dup, delivery state, quarantine eviction)
/// go through [`Staged::get`] so that later requests of a group see the
/// earlier ones.
#[derive(Default)]
pub(crate) struct Staged {
    ops: Vec<Op>,
    /// key -> index in `ops` of the latest op on it.
    latest: BTreeMap<Vec<u8>, usize>,
}

impl Staged {
    /// Add one request's ops (all or nothing: called only once the request
    /// succeeded).
    fn stage(&mut self, ops: OpBatch) {
        for op in ops.ops {
            let k = match &op {
                Op::Set(k, _) | Op::Remove(k) => k.clone(),
            };
            self.latest.insert(k, self.ops.len());
            self.ops.push(op);
        }
    }

    fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    fn clear(&mut self) {
        self.ops.clear();
        self.latest.clear();
    }

    /// The staged op on `k`: `Some(Some(v))` set, `Some(None)` removed.
    fn staged(&self, k: &[u8]) -> Option<Option<&[u8]>> {
        self.latest.get(k).map(|&i| match &self.ops[i] {
            Op::Set(_, v) => Some(v.as_slice()),
            Op::Remove(_) => None,
        })
    }

    fn get(&self, db: &sled::Db, k: &[u8], what: &str) -> Result<Option<Vec<u8>>, JournalError> {
        if let Some(v) = self.staged(k) {
            return Ok(v.map(<[u8]>::to_vec));
        }
        db.get(k)
            .map(|o| o.map(|v| v.to_vec()))
            .map_err(|e| map_sled(format!("read {what}"), e))
    }

    /// Staged keys starting with `prefix` that are set, in key order.
    fn staged_sets<'a>(
        &'a self,
        prefix: &'a [u8],
    ) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        self.latest
            .range(prefix.to_vec()..)
            .take_while(move |(k, _)| k.starts_with(prefix))
            .filter_map(|(k, &i)| match &self.ops[i] {
                Op::Set(_, v) => Some((k.as_slice(), v.as_slice())),
                Op::Remove(_) => None,
            })
    }
}

pub(crate) fn push_audit(
    b: &mut OpBatch,
    next: &mut u64,
    at_ms: u64,
    kind: &str,
    detail: &str,
) -> Result<(), JournalError> {
    let seq = *next;
    let v = rec::encode_postcard(&AuditRec {
        at_ms,
        kind: kind.to_string(),
        detail: detail.to_string(),
    })
    .map_err(|e| JournalError::Io {
        context: format!("encode audit event {seq}"),
        source: std::io::Error::other(e.to_string()),
    })?;
    b.insert(&rec::seq_key(rec::P_AUDIT, seq)[..], v);
    *next = seq + 1;
    Ok(())
}
