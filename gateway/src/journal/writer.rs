//! The single writer thread and group commit.
//!
//! Every mutation goes through one OS thread. It blocks for the first
//! request, drains up to `max_batch - 1` more that are already queued,
//! applies each request as ONE atomic `sled::Batch` (message + dedup entry +
//! outbox entries + counters + audit events), then makes the whole group
//! durable with one `flush()` + [`Durability::after_flush`], and only then
//! replies to every request of the group. Serialising all writers here is
//! also what makes the de-dup decision and id allocation atomic.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Notify};

use super::durability::{create_dir_durable, CommitSync, Durability};
use super::quota::{is_enospc, SpaceGuard, Usage};
use super::record::{self as rec, AuditRec, QuarantineRec};
use super::{Appended, JournalConfig, JournalError, NewMessage, Quarantined};

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
    /// Test hook: write a raw value under a raw key (to inject corruption).
    RawPut(Vec<u8>, Vec<u8>, Reply<()>),
    Close(Reply<()>),
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// State shared between the writer and the reader-side handles.
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
    pub last_sync: Mutex<CommitSync>,
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
            .cache_capacity(64 * 1024 * 1024)
            // Our writer flushes (and really syncs) every commit; sled's
            // background flusher would only add unsynced, unaccounted I/O.
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
    c.next_id = last(rec::P_MESSAGE)? + 1;
    c.next_audit = last(rec::P_AUDIT)? + 1;
    c.next_q = last(rec::P_QUARANTINE)? + 1;
    Ok(c)
}

enum Outcome {
    Append(Reply<Appended>, Result<Appended, JournalError>),
    Unit(Reply<()>, Result<(), JournalError>),
}

impl Outcome {
    fn is_ok(&self) -> bool {
        match self {
            Outcome::Append(_, r) => r.is_ok(),
            Outcome::Unit(_, r) => r.is_ok(),
        }
    }
    fn fail(self, e: &JournalError) -> Outcome {
        match self {
            Outcome::Append(tx, Ok(_)) => Outcome::Append(tx, Err(clone_err(e))),
            Outcome::Unit(tx, Ok(())) => Outcome::Unit(tx, Err(clone_err(e))),
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
    state: Counters,
    space: SpaceGuard,
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
    fn write(&self, b: &mut sled::Batch) {
        for (k, v) in &self.new {
            b.insert(rec::counter_key(k), rec::seal_u64(*v));
        }
    }
}

impl Writer {
    pub(crate) fn new(
        shared: Arc<Shared>,
        rx: mpsc::UnboundedReceiver<Req>,
        db: sled::Db,
        dur: Durability,
        state: Counters,
    ) -> Writer {
        let cfg = &shared.cfg;
        let space = SpaceGuard::new(
            &cfg.dir,
            cfg.quota_bytes,
            cfg.refuse_at_percent,
            cfg.warn_at_percent,
        );
        Writer {
            shared,
            rx,
            db: Some(db),
            dur: Some(dur),
            state,
            space,
        }
    }

    pub(crate) fn run(mut self) {
        let max_batch = self.shared.cfg.max_batch.max(1);
        let mut batch: Vec<Req> = Vec::with_capacity(max_batch);
        loop {
            match self.rx.blocking_recv() {
                Some(r) => batch.push(r),
                None => {
                    // Every handle dropped: final flush, then stop.
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
            if let Some(close) = self.commit(&mut batch) {
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
        if let Some(db) = self.db.take() {
            if let Err(e) = db.flush() {
                log::error!("journal: final flush failed: {e}");
            } else if let Some(d) = self.dur.as_mut() {
                if let Err((ctx, e)) = d.after_flush() {
                    log::error!("journal: final sync failed: {ctx}: {e}");
                }
            }
            drop(db);
        }
        self.dur = None;
        log::info!("journal: writer stopped");
    }

    /// Apply and commit one group. Returns the Close reply if the group
    /// contained a close request.
    fn commit(&mut self, batch: &mut Vec<Req>) -> Option<Reply<()>> {
        if self.db.is_none() {
            if let Err(e) = self.reopen() {
                log::error!("journal: reopen failed: {e}");
            }
        }
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
                        None => JournalError::Io {
                            context: format!(
                                "journal {} unavailable",
                                self.shared.cfg.dir.display()
                            ),
                            source: std::io::Error::other("sled could not be reopened"),
                        },
                    };
                    match req {
                        Req::Append(_, tx) => outcomes.push(Outcome::Append(tx, Err(e))),
                        Req::Quarantine(_, tx)
                        | Req::Delivered(_, _, tx)
                        | Req::RawPut(_, _, tx) => outcomes.push(Outcome::Unit(tx, Err(e))),
                        Req::Audit { kind, .. } => {
                            log::error!("journal: audit event {kind} lost: {e}")
                        }
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
                Req::Audit {
                    at_ms,
                    kind,
                    detail,
                } => {
                    let mut b = sled::Batch::default();
                    let mut next_audit = self.state.next_audit;
                    let r =
                        push_audit(&mut b, &mut next_audit, at_ms, &kind, &detail).and_then(|()| {
                            db.apply_batch(b)
                                .map_err(|e| map_sled("apply audit batch".into(), e))
                        });
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
                Req::RawPut(k, v, tx) => Outcome::Unit(
                    tx,
                    db.insert(k, v)
                        .map(|_| ())
                        .map_err(|e| map_sled("raw insert".into(), e)),
                ),
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

        // One flush + real sync for the whole group.
        if wrote && broken.is_none() {
            if let (Some(db), Some(dur)) = (&self.db, self.dur.as_mut()) {
                let r = db
                    .flush()
                    .map(|_| ())
                    .map_err(|e| {
                        map_sled(
                            format!("flush journal {}", self.shared.cfg.dir.display()),
                            e,
                        )
                    })
                    .and_then(|()| {
                        dur.after_flush()
                            .map_err(|e| map_io(&self.shared.cfg.dir, e))
                    });
                match r {
                    Ok(sync) => {
                        if let Ok(mut g) = self.shared.last_sync.lock() {
                            *g = sync;
                        }
                    }
                    Err(e) => broken = Some(e),
                }
            }
        }

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
                let nt = self.shared.notify(&d);
                // Wake every waiter now, and leave a permit for a deliverer
                // that is between `pending()` and `notified().await`.
                nt.notify_waiters();
                nt.notify_one();
            }
        } else if let Err(e) = self.reopen() {
            log::error!("journal: reopen after failure failed: {e}");
        }
        close
    }

    /// Drop sled and open it again; reload counters from disk (the in-memory
    /// ones may include writes that were applied but never made durable).
    fn reopen(&mut self) -> Result<(), JournalError> {
        self.shared.reopens.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut g) = self.shared.db.write() {
            *g = None;
        }
        self.dur = None;
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
        let (db, dur) = open_db(&self.shared.cfg)?;
        self.state = load_counters(&db)?;
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
        let h = &m.header;
        let dkey = rec::dedup_key(
            &m.listener,
            &h.sending_application_raw,
            &h.sending_facility_raw,
            &h.control_id,
        );
        let mut reuse_of = None;
        let mut delta = Delta::new(&self.state);
        if let Some(v) = db
            .get(&dkey)
            .map_err(|e| map_sled("read dedup index".into(), e))?
        {
            let first = rec::open_u64(&v).map_err(|why| {
                corrupt(
                    format!(
                        "dedup entry for listener {} control id {}",
                        m.listener, h.control_id
                    ),
                    why,
                )
            })?;
            if let Some(mv) = db
                .get(rec::message_key(first))
                .map_err(|e| map_sled(format!("read message {first}"), e))?
            {
                let (meta, raw) = rec::decode_message(&mv)
                    .map_err(|why| corrupt(format!("message {first}"), why))?;
                if raw == m.raw.as_slice() {
                    delta.add("duplicates", 1);
                    let mut b = sled::Batch::default();
                    delta.write(&mut b);
                    db.apply_batch(b)
                        .map_err(|e| map_sled("count duplicate".into(), e))?;
                    let new = delta.new;
                    self.state.named.extend(new);
                    log::info!(
                        "journal: duplicate of message {first} on listener {} (control id {})",
                        m.listener,
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
        let record = rec::encode_message(m.received_at_ms, &m.listener, &m.peer, h, &m.ack, &m.raw)
            .map_err(|e| JournalError::Io {
                context: format!("encode message {id}"),
                source: std::io::Error::other(e.to_string()),
            })?;
        let rec_len = record.len() as u64;
        let mut b = sled::Batch::default();
        b.insert(&rec::message_key(id)[..], record);
        b.insert(dkey, rec::seal_u64(id));
        let dests: BTreeSet<&str> = m.destinations.iter().map(String::as_str).collect();
        for d in &dests {
            b.insert(rec::outbox_key(d, id), rec::seal_u64(m.received_at_ms));
            delta.add(&rec::pending_counter(d), 1);
        }
        delta.add("messages", 1);
        let mut next_audit = self.state.next_audit;
        if let Some(first) = reuse_of {
            delta.add("control_id_reuses", 1);
            let detail = format!(
                "listener={} control_id={} first_id={first} new_id={id}",
                m.listener, h.control_id
            );
            push_audit(
                &mut b,
                &mut next_audit,
                now_ms(),
                "control_id_reuse",
                &detail,
            )?;
            log::warn!(
                "journal: control id reuse on listener {} (control id {}, first message {first}, new message {id})",
                m.listener,
                h.control_id
            );
        }
        delta.write(&mut b);
        db.apply_batch(b)
            .map_err(|e| map_sled(format!("apply batch for message {id}"), e))?;
        let new = delta.new;
        self.state.next_id = id + 1;
        self.state.next_audit = next_audit;
        self.state.named.extend(new);
        self.space.add(rec_len);
        for d in dests {
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
            listener: q.listener.clone(),
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
        let mut b = sled::Batch::default();
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
            for item in db.scan_prefix([rec::P_QUARANTINE]) {
                if entries <= cfg.quarantine_max_entries as u64 && bytes <= cfg.quarantine_max_bytes
                {
                    break;
                }
                let (k, v) = item.map_err(|e| map_sled("scan quarantine".into(), e))?;
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
            q.listener, q.reason
        );
        push_audit(&mut b, &mut next_audit, now_ms(), "quarantine", &detail)?;
        delta.write(&mut b);
        db.apply_batch(b)
            .map_err(|e| map_sled(format!("apply batch for quarantine entry {seq}"), e))?;
        let new = delta.new;
        self.state.next_q = seq + 1;
        self.state.next_audit = next_audit;
        self.state.named.extend(new);
        self.space.add(rec_len);
        log::warn!(
            "journal: quarantined input {seq} from listener {} ({original_len} bytes, evicted {evicted})",
            q.listener
        );
        Ok(())
    }

    fn delivered(&mut self, db: &sled::Db, dest: &str, id: u64) -> Result<(), JournalError> {
        let k = rec::outbox_key(dest, id);
        let present = db
            .get(&k)
            .map_err(|e| map_sled(format!("read outbox {dest} entry {id}"), e))?
            .is_some();
        if !present {
            // Idempotent: already delivered (or never queued there).
            return Ok(());
        }
        let mut delta = Delta::new(&self.state);
        let mut b = sled::Batch::default();
        b.remove(k);
        delta.add(&rec::pending_counter(dest), -1);
        delta.add(&rec::delivered_counter(dest), 1);
        let mut next_audit = self.state.next_audit;
        push_audit(
            &mut b,
            &mut next_audit,
            now_ms(),
            "delivered",
            &format!("destination={dest} id={id}"),
        )?;
        delta.write(&mut b);
        db.apply_batch(b)
            .map_err(|e| map_sled(format!("apply batch for delivery of {id} to {dest}"), e))?;
        let new = delta.new;
        self.state.next_audit = next_audit;
        self.state.named.extend(new);
        Ok(())
    }
}

pub(crate) fn push_audit(
    b: &mut sled::Batch,
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
