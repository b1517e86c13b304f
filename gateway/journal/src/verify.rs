//! Offline journal verification (`gateway journal verify`): every WAL
//! record (framing, CRC, sequence), every sled record (its sealed CRC and
//! decoding), and the indexes against the messages, reported with where
//! each problem is (WAL file + offset, sled key, message id).
//!
//! It never writes to the journal: sled's own recovery truncates a damaged
//! log at open, which would destroy the evidence (and make a second run
//! look clean), so sled is opened on a copy (`Snapshot`) in a temporary
//! directory, and the WAL records sled lacks are replayed into the copy,
//! as `Journal::open` would. The same snapshot is what `salvage.rs` reads.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::chunk::{self, Layout, ResolveError};
use crate::counter::Counter;
use crate::record as rec;
use crate::wal;

/// One problem: where it is and what is wrong.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    /// `WAL <file> offset N`, `sled key m/42`, `sled database`.
    pub place: String,
    pub problem: String,
}

/// What verify read, and every problem found.
#[derive(Debug, Default, Clone, Serialize)]
pub struct VerifyReport {
    pub dir: PathBuf,
    pub wal_segments: u64,
    pub wal_records: u64,
    /// WAL records replayed into the snapshot (the ones sled lacked).
    pub wal_replayed: u64,
    /// Records read per kind (`messages`, `outbox`, `dead_letters`, ...).
    pub records: BTreeMap<String, u64>,
    pub findings: Vec<Finding>,
    /// sled did not open with its snapshot files but did from its log
    /// alone: what it holds was read that way.
    pub sled_rebuilt: bool,
    /// sled did not open at all: only the WAL's records were read.
    pub sled_unreadable: bool,
    /// WAL records are missing and no later record shows which message
    /// ids they held: ids above this one may be lost without a trace.
    pub ids_unknown_above: Option<u64>,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
    fn find(&mut self, place: impl Into<String>, problem: impl Into<String>) {
        self.findings.push(Finding {
            place: place.into(),
            problem: problem.into(),
        });
    }
    fn count(&mut self, kind: &str) {
        *self.records.entry(kind.to_string()).or_default() += 1;
    }
}

/// Why verify could not read the journal at all (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{0} is not a journal directory (no sled `db` file): pass the data directory (--data-dir) or the config (--config)")]
    NotAJournal(PathBuf),
    #[error("the journal in {0} is in use (its lock is held): stop the daemon first (systemctl stop gateway)")]
    Locked(PathBuf),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> VerifyError {
    move |source| VerifyError::Io { context, source }
}

/// A verified copy of a journal: sled (copied, WAL replayed into it) and
/// what it holds. The temporary directories are removed on drop.
pub(crate) struct Snapshot {
    pub db: sled::Db,
    pub index: Index,
    tmp: Vec<PathBuf>,
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        for t in &self.tmp {
            let _ = std::fs::remove_dir_all(t);
        }
    }
}

/// The ids and references found in the snapshot.
#[derive(Default)]
pub(crate) struct Index {
    /// Message ids whose record is intact.
    pub messages: BTreeSet<u64>,
    /// Message ids whose key was readable but whose record was not.
    pub corrupt_messages: BTreeSet<u64>,
    /// Ids referenced by an outbox entry, de-dup entry or dead letter.
    pub referenced: BTreeSet<u64>,
    pub released: BTreeSet<u64>,
    /// Dead-letter seq -> (destination, message id), intact ones.
    pub dead: BTreeMap<u64, (String, u64)>,
    /// Keys whose record failed its CRC or did not decode.
    pub bad_keys: BTreeSet<Vec<u8>>,
    /// Message ids appended by WAL records that cannot be read (between
    /// the ids of the readable records around them: ids are given in
    /// order, one per message).
    pub wal_lost: BTreeSet<u64>,
    /// A read error ended the scan of the messages after this id (0: at
    /// the start): ids above it may exist that nothing names.
    pub messages_cut_after: Option<u64>,
}

/// Verify the journal in `dir`.
pub fn verify(dir: &Path) -> Result<VerifyReport, VerifyError> {
    let mut report = VerifyReport::default();
    snapshot(dir, &mut report)?;
    Ok(report)
}

/// Copy, replay and check the journal in `dir`, adding to `report`.
pub(crate) fn snapshot(dir: &Path, report: &mut VerifyReport) -> Result<Snapshot, VerifyError> {
    report.dir = dir.to_path_buf();
    let db_file = dir.join("db");
    if !db_file.is_file() {
        return Err(VerifyError::NotAJournal(dir.to_path_buf()));
    }
    // A journal closed a moment ago (the daemon just stopped, or a sled
    // handle in this process just dropped) keeps its lock a few ms longer.
    wait_unlocked(&db_file, std::time::Duration::from_secs(2));
    check_unlocked(&db_file)?;
    // Process, clock and a counter: two verifies in one process (salvage
    // and verify, or tests in parallel) never share a scratch directory.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let tmp = std::env::temp_dir().join(format!(
        "gateway-journal-verify-{}-{}-{}",
        std::process::id(),
        crate::system_clock_ms(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    copy_sled_files(dir, &tmp, true)?;
    let mut dirs = vec![tmp.clone()];
    let db = open_first_readable(dir, &tmp, &mut dirs, report)?;
    let mut snap = Snapshot {
        db,
        index: Index::default(),
        tmp: dirs,
    };
    let wal_lost = replay_wal(dir, &snap.db, report)?;
    snap.index = check_tree(&snap.db, report);
    snap.index.wal_lost = wal_lost;
    Ok(snap)
}

/// Wait (at most `limit`) until no one holds sled's lock on `db_file`:
/// sled's threads release it a moment after its last handle is dropped.
/// Whether it is free.
pub(crate) fn wait_unlocked(db_file: &Path, limit: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if !is_locked(db_file) {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Whether a process (a running daemon) holds sled's lock on `db_file`.
pub(crate) fn is_locked(db_file: &Path) -> bool {
    matches!(check_unlocked(db_file), Err(VerifyError::Locked(_)))
}

/// sled takes an exclusive `flock` on `db` while open: a running daemon
/// holds it.
pub(crate) fn check_unlocked(db_file: &Path) -> Result<(), VerifyError> {
    use nix::fcntl::{Flock, FlockArg};
    let f = File::open(db_file).map_err(io(format!("open {}", db_file.display())))?;
    match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(_unlocked_on_drop) => Ok(()),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(VerifyError::Locked(
            db_file.parent().unwrap_or(db_file).into(),
        )),
        Err((_, e)) => Err(VerifyError::Io {
            context: format!("lock {}", db_file.display()),
            source: e.into(),
        }),
    }
}

/// sled on the copy in `tmp`; failing that, on a copy without its snapshot
/// files; failing that, an empty sled (the WAL's records are then all
/// there is). Each scratch directory is added to `dirs`.
fn open_first_readable(
    dir: &Path,
    tmp: &Path,
    dirs: &mut Vec<PathBuf>,
    report: &mut VerifyReport,
) -> Result<sled::Db, VerifyError> {
    let why = match open_copy(tmp) {
        Ok(db) => return Ok(db),
        Err(why) => why,
    };
    let why_log = match open_without_snapshots(dir, tmp, dirs)? {
        Ok(db) => {
            report.find(
                "sled database",
                format!("cannot be opened ({why}); read again from sled's log alone, without its snapshot files"),
            );
            report.sled_rebuilt = true;
            return Ok(db);
        }
        Err(why_log) => why_log,
    };
    report.sled_unreadable = true;
    report.find(
        "sled database",
        format!("cannot be opened ({why}; from its log alone: {why_log}): only the WAL's records can be read"),
    );
    // Start from nothing, in a directory of its own. The failed copies are
    // removed on drop, not now: a sled open that failed may leave threads
    // still writing in them, and removing them under them fails with
    // "directory not empty".
    let empty = tmp.with_extension("empty");
    dirs.push(empty.clone());
    open_copy(&empty).map_err(|why| VerifyError::Io {
        context: format!("create an empty sled in {}", empty.display()),
        source: std::io::Error::other(why),
    })
}

/// sled's snapshot files (`snap.*`) only index its log: without them sled
/// 0.34 reads the whole log at open and rebuilds the index, so a damaged
/// snapshot need not cost the data. A copy without them in a directory of
/// its own (added to `dirs`, removed with the snapshot); the outer error is
/// the copy failing, the inner one sled still not opening.
fn open_without_snapshots(
    from: &Path,
    tmp: &Path,
    dirs: &mut Vec<PathBuf>,
) -> Result<Result<sled::Db, String>, VerifyError> {
    let has_snapshot = std::fs::read_dir(from)
        .map_err(io(format!("list {}", from.display())))?
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().starts_with("snap."));
    if !has_snapshot {
        return Ok(Err("there is no snapshot file to leave out".into()));
    }
    let rebuilt = tmp.with_extension("log-only");
    dirs.push(rebuilt.clone());
    copy_sled_files(from, &rebuilt, false)?;
    Ok(open_copy(&rebuilt))
}

/// Copy sled's files (`conf`, `db`, `snap.*` if `snapshots`, `blobs/`),
/// not the WAL.
fn copy_sled_files(from: &Path, to: &Path, snapshots: bool) -> Result<(), VerifyError> {
    std::fs::create_dir_all(to.join("blobs")).map_err(io(format!("create {}", to.display())))?;
    for sub in ["", "blobs"] {
        let src = from.join(sub);
        if !src.is_dir() {
            continue;
        }
        for ent in std::fs::read_dir(&src).map_err(io(format!("list {}", src.display())))? {
            let ent = ent.map_err(io(format!("list {}", src.display())))?;
            let p = ent.path();
            // The space reserve is no part of the data (and may be large).
            let name = ent.file_name();
            let skip = sub.is_empty()
                && (name == crate::RESERVE_FILE
                    || (!snapshots && name.to_string_lossy().starts_with("snap.")));
            if p.is_file() && !skip {
                std::fs::copy(&p, to.join(sub).join(ent.file_name()))
                    .map_err(io(format!("copy {}", p.display())))?;
            }
        }
    }
    Ok(())
}

/// Open sled on the copy; sled panics on some damage, so a panic is a
/// failure to open, with its message.
fn open_copy(dir: &Path) -> Result<sled::Db, String> {
    let dir = dir.to_path_buf();
    let r = std::panic::catch_unwind(move || {
        sled::Config::new()
            .path(dir)
            .cache_capacity(crate::writer::SLED_CACHE_BYTES)
            .flush_every_ms(None)
            .open()
    });
    match r {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(e)) => Err(e.to_string()),
        Err(p) => Err(p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .map_or("sled panicked".into(), |m| format!("sled panicked: {m}"))),
    }
}

/// Read every WAL segment, resynchronising after a bad record, check the
/// seqs, and apply the records sled lacks (seq above its `w`) to the copy.
/// Returns the message ids that records missing from the WAL appended:
/// ids are given one per message in WAL order, so those between the
/// highest id before a gap and the next one after it.
fn replay_wal(
    dir: &Path,
    db: &sled::Db,
    report: &mut VerifyReport,
) -> Result<BTreeSet<u64>, VerifyError> {
    let applied = match db.get(wal::APPLIED_KEY) {
        Ok(Some(v)) => rec::open_u64(&v).unwrap_or_else(|why| {
            report.find("sled key w", format!("WAL position record: {why}"));
            0
        }),
        Ok(None) => 0,
        Err(e) => {
            report.find("sled key w", format!("cannot be read: {e}"));
            0
        }
    };
    let wdir = wal::Wal::dir_of(dir);
    let mut lost = BTreeSet::new();
    if !wdir.is_dir() {
        return Ok(lost);
    }
    // The highest message id so far, and while records are missing, the
    // highest before them (and where the gap was found).
    let mut high = highest_stored_id(db);
    let mut gap: Option<(u64, String)> = None;
    // Replayed as the journal's open would: in the copy's format.
    let mut layout = Layout::of(db).unwrap_or_else(|why| {
        report.find("sled key F", why);
        Layout { chunked: false }
    });
    let segs = wal::list_segments(&wdir).map_err(io(format!("list {}", wdir.display())))?;
    let mut prev: Option<u64> = None;
    for (i, (_, path)) in segs.iter().enumerate() {
        report.wal_segments += 1;
        let buf = std::fs::read(path).map_err(io(format!("read {}", path.display())))?;
        let (recs, bad) = wal::scan_all(&buf);
        for (off, last) in bad {
            let place = format!("WAL {} offset {off}", path.display());
            if last && i + 1 == segs.len() {
                report.find(
                    place,
                    "bytes after the last record that are not a record: a torn tail (never acknowledged; open discards it) or damage",
                );
            } else {
                report.find(place, "bad record (length, checksum or framing)");
            }
        }
        for (off, r) in recs {
            report.wal_records += 1;
            let jumped = match prev {
                Some(p) => r.seq != p + 1,
                None => r.seq > applied + 1,
            };
            if jumped && gap.is_none() {
                gap = Some((high, format!("WAL {} offset {off}", path.display())));
            }
            for id in appended_ids(&r.ops) {
                if let Some((below, _)) = gap.take_if(|(below, _)| id > *below) {
                    lost.extend(below + 1..id);
                }
                high = high.max(id);
            }
            if let Some(p) = prev.filter(|p| r.seq != p + 1) {
                report.find(
                    format!("WAL {} offset {off}", path.display()),
                    format!(
                        "record seq {} where {} was expected: records are missing",
                        r.seq,
                        p + 1
                    ),
                );
            } else if prev.is_none() && r.seq > applied + 1 {
                report.find(
                    format!("WAL {} offset {off}", path.display()),
                    format!(
                        "first record seq {} but sled holds up to {applied}: records are missing",
                        r.seq
                    ),
                );
            }
            prev = Some(r.seq);
            if r.seq <= applied {
                continue;
            }
            report.wal_replayed += 1;
            for op in r.ops {
                if let Err(e) = layout.apply(db, op) {
                    report.find(
                        format!("WAL {} offset {off}", path.display()),
                        format!(
                            "record {} cannot be applied to sled ({e}): sled is damaged",
                            r.seq
                        ),
                    );
                }
            }
        }
    }
    if let Some((below, place)) = gap {
        report.find(
            place,
            format!("the missing records may have held messages above id {below}, and no later record tells which: those ids cannot be named"),
        );
        report.ids_unknown_above = Some(below);
    }
    if let (Some(first), Some(last)) = (lost.first(), lost.last()) {
        report.find(
            "WAL",
            format!("the missing records held message ids {first}..={last} (those not in sled are lost)"),
        );
    }
    Ok(lost)
}

/// Message ids a WAL record stores a message under.
fn appended_ids(ops: &[wal::Op]) -> impl Iterator<Item = u64> + '_ {
    ops.iter().filter_map(|op| match op {
        wal::Op::Set(k, _) if k.first() == Some(&rec::P_MESSAGE) => rec::seq_of_key(k),
        _ => None,
    })
}

/// The highest message id sled knows was given: its last message key, or
/// the one recorded as pruned or released, if higher.
fn highest_stored_id(db: &sled::Db) -> u64 {
    let last = db
        .scan_prefix([rec::P_MESSAGE])
        .keys()
        .next_back()
        .and_then(|k| k.ok())
        .and_then(|k| rec::seq_of_key(&k))
        .unwrap_or(0);
    let pruned = db
        .get(Counter::PrunedThroughId.key())
        .ok()
        .flatten()
        .and_then(|v| rec::open_u64(&v).ok())
        .unwrap_or(0);
    last.max(pruned)
}

/// `m/42`, `o/<dest>/42`, or the key in hex.
pub(crate) fn key_name(k: &[u8]) -> String {
    let Some(&p) = k.first() else {
        return "(empty)".into();
    };
    if let Some(n) = rec::seq_of_key(k) {
        return format!("{}/{n}", p as char);
    }
    if matches!(p, rec::P_OUTBOX | rec::P_DEAD_INDEX) && k.len() >= 13 {
        let dest = String::from_utf8_lossy(&k[5..k.len() - 8]);
        return format!("{}/{dest}/{}", p as char, rec::outbox_id(k).unwrap_or(0));
    }
    let printable: String = k
        .iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '.' })
        .collect();
    printable
}

/// Destination of an outbox or dead-letter index key.
pub(crate) fn key_dest(k: &[u8]) -> Option<String> {
    (k.len() >= 13).then(|| String::from_utf8_lossy(&k[5..k.len() - 8]).into_owned())
}

/// The key kinds, in key order (`F` is the journal format, `w` the WAL
/// position; chunks, `~`, are read through the values they belong to).
const PREFIXES: [u8; 13] = [
    b'F',
    rec::P_DEAD_INDEX,
    rec::P_AUDIT,
    rec::P_COUNTER,
    rec::P_DEDUP,
    crate::trace_index::P_TRACE,
    rec::P_MESSAGE,
    rec::P_OUTBOX,
    rec::P_QUARANTINE,
    rec::P_STATE,
    rec::P_RELEASED,
    b'w',
    rec::P_DEAD,
];

/// Every key and value, one key kind at a time, so that a node sled cannot
/// read ends the scan of its kind only; `on_err` gets where (after which
/// key) and the error, with the key kind. A chunked value (`chunk.rs`) is passed whole, or as
/// `Err(why)` if its chunks do not add up.
pub(crate) fn for_each(
    db: &sled::Db,
    mut f: impl FnMut(sled::IVec, Result<sled::IVec, String>),
    mut on_err: impl FnMut(u8, String, sled::Error),
) {
    for p in PREFIXES {
        let mut last: Option<sled::IVec> = None;
        for item in db.scan_prefix([p]) {
            match item {
                Ok((k, v)) => {
                    last = Some(k.clone());
                    let whole = match chunk::resolve(db, &k, &v) {
                        Ok(std::borrow::Cow::Borrowed(_)) => Ok(v.clone()),
                        Ok(std::borrow::Cow::Owned(w)) => Ok(sled::IVec::from(w)),
                        Err(ResolveError::Bad(why)) => Err(why),
                        Err(ResolveError::Sled(e)) => Err(format!("a chunk cannot be read: {e}")),
                        // Offline: nothing removes it meanwhile.
                        Err(ResolveError::Gone) => Err("removed while read".into()),
                    };
                    f(k, whole);
                }
                Err(e) => {
                    let after = last
                        .as_deref()
                        .map_or(format!("{}/(start)", p as char), key_name);
                    on_err(p, format!("sled, after key {after}"), e);
                    break;
                }
            }
        }
    }
}

/// Check every record's seal and decoding, then the indexes.
fn check_tree(db: &sled::Db, report: &mut VerifyReport) -> Index {
    let mut ix = Index::default();
    let mut outbox: Vec<(String, u64)> = Vec::new();
    let mut dedup: Vec<(Vec<u8>, u64)> = Vec::new();
    let mut dead_index: Vec<(Vec<u8>, u64)> = Vec::new();
    let mut counters: Vec<(Counter, u64)> = Vec::new();
    let mut audit: Vec<u64> = Vec::new();
    let mut errors = Vec::new();
    for_each(
        db,
        |k, v| {
            let bad = |report: &mut VerifyReport, ix: &mut Index, why: &str| {
                report.find(format!("sled key {}", key_name(&k)), why.to_string());
                ix.bad_keys.insert(k.to_vec());
            };
            let v = match v {
                Ok(v) => v,
                Err(why) => {
                    if k.first() == Some(&rec::P_MESSAGE) {
                        report.count("messages");
                        let id = rec::seq_of_key(&k).unwrap_or(0);
                        ix.corrupt_messages.insert(id);
                        bad(report, &mut ix, &format!("message {id}: {why}"));
                    } else {
                        bad(report, &mut ix, &why);
                    }
                    return;
                }
            };
            match k.first().copied() {
                Some(rec::P_MESSAGE) => {
                    report.count("messages");
                    let id = rec::seq_of_key(&k).unwrap_or(0);
                    match rec::decode_message(&v) {
                        Ok(_) => {
                            ix.messages.insert(id);
                        }
                        Err(why) => {
                            ix.corrupt_messages.insert(id);
                            bad(report, &mut ix, &format!("message {id}: {why}"));
                        }
                    }
                }
                Some(rec::P_DEDUP) => {
                    report.count("dedup");
                    match rec::open_u64(&v) {
                        Ok(id) => dedup.push((k.to_vec(), id)),
                        Err(why) => bad(report, &mut ix, why),
                    }
                }
                Some(rec::P_OUTBOX) => {
                    report.count("outbox");
                    match (
                        rec::decode_outbox_entry(&v),
                        key_dest(&k),
                        rec::outbox_id(&k),
                    ) {
                        (Ok(_), Some(d), Some(id)) => outbox.push((d, id)),
                        (Err(why), ..) => bad(report, &mut ix, why),
                        _ => bad(report, &mut ix, "malformed outbox key"),
                    }
                }
                Some(rec::P_DEAD) => {
                    report.count("dead_letters");
                    match rec::decode_postcard::<rec::DeadLetterRec>(&v) {
                        Ok(d) => {
                            ix.dead.insert(
                                rec::seq_of_key(&k).unwrap_or(0),
                                (d.destination, d.message_id),
                            );
                        }
                        Err(why) => bad(report, &mut ix, why),
                    }
                }
                Some(rec::P_DEAD_INDEX) => {
                    report.count("dead_index");
                    match rec::open_u64(&v) {
                        Ok(seq) => dead_index.push((k.to_vec(), seq)),
                        Err(why) => bad(report, &mut ix, why),
                    }
                }
                Some(rec::P_RELEASED) => {
                    report.count("released");
                    match rec::decode_postcard::<rec::ReleasedRec>(&v) {
                        Ok(_) => {
                            ix.released.insert(rec::seq_of_key(&k).unwrap_or(0));
                        }
                        Err(why) => bad(report, &mut ix, why),
                    }
                }
                Some(rec::P_QUARANTINE) => {
                    report.count("quarantine");
                    if let Err(why) = rec::decode_postcard::<rec::QuarantineRec>(&v) {
                        bad(report, &mut ix, why);
                    }
                }
                Some(rec::P_AUDIT) => {
                    report.count("audit");
                    match rec::open(&v) {
                        Ok(_) => audit.push(rec::seq_of_key(&k).unwrap_or(0)),
                        Err(why) => bad(report, &mut ix, why),
                    }
                }
                Some(rec::P_STATE) => {
                    report.count("state");
                    if let Err(why) = rec::open(&v) {
                        bad(report, &mut ix, why);
                    }
                }
                Some(crate::trace_index::P_TRACE) => {
                    report.count("trace_index");
                    if let Err(why) = crate::trace_index::check(&k, &v) {
                        bad(report, &mut ix, why);
                    }
                }
                Some(rec::P_COUNTER) => {
                    report.count("counters");
                    match (rec::open_u64(&v), Counter::from_key(&k)) {
                        (Ok(n), Some(c)) => counters.push((c, n)),
                        (Err(why), _) => bad(report, &mut ix, why),
                        // A newer binary's counter: not ours to judge.
                        (Ok(_), None) => {}
                    }
                }
                _ if k.as_ref() == chunk::FORMAT_KEY => {
                    if let Err(why) = Layout::of(db) {
                        bad(report, &mut ix, &why);
                    }
                }
                _ if k.as_ref() == wal::APPLIED_KEY => {
                    if let Err(why) = rec::open_u64(&v) {
                        bad(report, &mut ix, why);
                    }
                }
                _ => bad(report, &mut ix, "unknown key"),
            }
        },
        |p, place, e| errors.push((p, place, e)),
    );
    for (p, place, e) in errors {
        if p == rec::P_MESSAGE {
            // The scan is in id order: it got as far as the highest id read.
            let read = ix.messages.last().max(ix.corrupt_messages.last());
            ix.messages_cut_after = Some(read.copied().unwrap_or(0));
        }
        report.find(
            place,
            format!("read failed ({e}): the records of this kind after it cannot be read"),
        );
    }
    check_chunks(db, report);
    // The indexes against the messages.
    let mut pending: BTreeMap<String, u64> = BTreeMap::new();
    for (d, id) in &outbox {
        ix.referenced.insert(*id);
        *pending.entry(d.clone()).or_default() += 1;
        if !ix.messages.contains(id) {
            report.find(
                format!("sled key o/{d}/{id}"),
                format!("outbox entry for message {id}, which is missing or corrupt"),
            );
        }
    }
    for (k, id) in &dedup {
        ix.referenced.insert(*id);
        if !ix.messages.contains(id) && !ix.released.contains(id) {
            report.find(
                format!("sled key {}", key_name(k)),
                format!("de-dup entry for message {id}, which is missing or corrupt"),
            );
        }
    }
    let mut dead_count: BTreeMap<String, u64> = BTreeMap::new();
    for (seq, (d, id)) in &ix.dead {
        ix.referenced.insert(*id);
        *dead_count.entry(d.clone()).or_default() += 1;
        if !ix.messages.contains(id) {
            report.find(
                format!("sled key x/{seq}"),
                format!("dead letter of message {id} on {d}, whose message is missing or corrupt"),
            );
        }
    }
    for (k, seq) in &dead_index {
        let (d, id) = (
            key_dest(k).unwrap_or_default(),
            rec::outbox_id(k).unwrap_or(0),
        );
        if ix.dead.get(seq) != Some(&(d.clone(), id)) {
            report.find(
                format!("sled key {}", key_name(k)),
                format!("dead-letter index points at x/{seq}, which is missing or not message {id} on {d}"),
            );
        }
    }
    for (c, n) in &counters {
        let (what, actual) = match c {
            Counter::Pending(d) => ("outbox entries", pending.remove(d).unwrap_or(0)),
            Counter::Dead(d) => ("dead letters", dead_count.remove(d).unwrap_or(0)),
            _ => continue,
        };
        if *n != actual {
            report.find(
                format!("sled key {}", key_name(&c.key())),
                format!("counter says {n} but {actual} {what} were read"),
            );
        }
    }
    for (d, n) in pending.into_iter().chain(dead_count) {
        if n > 0
            && !counters
                .iter()
                .any(|(c, _)| matches!(c, Counter::Pending(x) | Counter::Dead(x) if *x == d))
        {
            report.find(
                format!("destination {d}"),
                format!("{n} entries but no counter"),
            );
        }
    }
    // Audit events are pruned oldest first: what is left is contiguous.
    for w in audit.windows(2) {
        if w[1] != w[0] + 1 {
            report.find(
                format!("sled key a/{}", w[0] + 1),
                format!("audit events {}..{} are missing", w[0] + 1, w[1] - 1),
            );
        }
    }
    for id in &ix.referenced {
        if !ix.messages.contains(id) && !ix.released.contains(id) {
            ix.corrupt_messages.insert(*id);
        }
    }
    ix
}

/// Every chunk (`~` key) belongs to a head that counts it: one that does
/// not is left from damage (a crash mid-write is completed by WAL replay).
fn check_chunks(db: &sled::Db, report: &mut VerifyReport) {
    for item in db.scan_prefix([chunk::P_CHUNK]) {
        let (k, _) = match item {
            Ok(kv) => kv,
            Err(e) => {
                report.find(
                    "sled chunks (~)",
                    format!("read failed ({e}): the chunks after it cannot be read"),
                );
                return;
            }
        };
        let Some((owner, i)) = chunk::parse_chunk_key(&k) else {
            report.find(format!("sled key {}", key_name(&k)), "malformed chunk key");
            continue;
        };
        let counted = match db.get(owner) {
            Ok(Some(v)) => matches!(chunk::parse_head(owner, &v), Some(Ok((_, n))) if i < n),
            _ => false,
        };
        if !counted {
            report.find(
                format!("sled key {}", key_name(&k)),
                format!(
                    "chunk {i} of {}, which has no head counting it",
                    key_name(owner)
                ),
            );
        }
    }
}
