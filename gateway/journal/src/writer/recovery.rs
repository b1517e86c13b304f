//! Opening the journal's storage: sled with its open-time durability, the
//! WAL replayed into it, a checkpoint, a fresh WAL, and the counters and
//! next ids loaded. Used at open and by the writer after an I/O failure.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::store::{checkpoint_sled, Store};
use crate::chunk::{self, Layout};
use crate::counter::{Counter, Counters};
use crate::durability::{create_dir_durable, Durability};
use crate::error::{corrupt, map_io, map_sled};
use crate::record as rec;
use crate::wal::{self, Wal};
use crate::{JournalConfig, JournalError};

/// sled's page cache. Small and bounded (DESIGN.md contract 7): reads
/// are mostly of recent messages, and the OS page cache sits under it.
pub(crate) const SLED_CACHE_BYTES: u64 = 4 * 1024 * 1024;

/// A journal opened and recovered: sled durable and holding every WAL
/// record, the WAL empty.
pub(crate) struct Recovered {
    pub store: Store,
    pub state: Counters,
    /// WAL records applied to sled by this recovery.
    pub replayed: u64,
    /// Torn tail found (and discarded) at the end of the WAL: (file, offset).
    pub torn: Option<(PathBuf, u64)>,
}

/// Open sled (with its open-time durability), replay the WAL into it,
/// checkpoint, start a fresh WAL, and load the counters.
pub(crate) fn recover(cfg: &JournalConfig) -> Result<Recovered, JournalError> {
    let dir = &cfg.dir;
    // A journal this open creates starts in format 2 (`chunk.rs`), or 1
    // when this gateway is limited to it; an existing one keeps its format
    // until `gateway journal migrate`.
    let fresh = !dir.join("db").exists();
    let (db, mut dur) = open_db(cfg)?;
    if fresh && cfg.max_format >= chunk::FORMAT_CHUNKED {
        // Made durable by the checkpoint `Journal::open` ends with, before
        // anything is written in that format.
        db.insert(
            chunk::FORMAT_KEY,
            crate::record::seal_u64(chunk::FORMAT_CHUNKED),
        )
        .map_err(|e| map_sled(format!("write journal format in {}", dir.display()), e))?;
    }
    let mut layout = Layout::of_at_most(&db, cfg.max_format)
        .map_err(|why| corrupt(format!("journal {}", dir.display()), &why))?;
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
    let replay = replay(dir, &db, &mut layout, applied, &segs)?;
    if !segs.is_empty() {
        checkpoint_sled(dir, &db, &mut dur)?;
    }
    let wal = Wal::start(dir, replay.last + 1).map_err(|e| map_io(dir, e))?;
    if replay.replayed > 0 {
        log::info!(
            "journal: replayed {} WAL record(s) into {} (up to seq {})",
            replay.replayed,
            dir.display(),
            replay.last
        );
    }
    let state = load_counters(&db)?;
    Ok(Recovered {
        store: Store {
            db,
            dur,
            wal,
            layout,
        },
        state,
        replayed: replay.replayed,
        torn: replay.torn,
    })
}

/// Open sled and close its durability gaps at open. Retries briefly: after
/// an in-process close or a reopen, sled's file lock can outlive the last
/// handle by a few milliseconds (its thread pool).
fn open_db(cfg: &JournalConfig) -> Result<(sled::Db, Durability), JournalError> {
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
            Err(sled::Error::Io(_)) if attempt < 40 => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(50));
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

/// What replaying the WAL did.
struct Replay {
    /// The seq sled now holds up to.
    last: u64,
    replayed: u64,
    torn: Option<(PathBuf, u64)>,
}

/// Apply every record of `segs` (in order) with a seq above `applied` to
/// sled. A torn tail of the newest segment is discarded; any other bad
/// record or a gap in the seqs fails: acknowledged data may be missing.
fn replay(
    dir: &Path,
    db: &sled::Db,
    layout: &mut Layout,
    applied: u64,
    segs: &[(u64, PathBuf)],
) -> Result<Replay, JournalError> {
    let mut last = applied;
    let mut prev: Option<u64> = None;
    let mut replayed = 0u64;
    let mut torn = None;
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
                        "record seq {} where {} was expected (sled holds up to {applied}): \
                         WAL records are missing; acknowledged messages may be lost",
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
                layout
                    .apply(db, op)
                    .map_err(|e| map_sled(format!("replay WAL record {}", r.seq), e))?;
            }
            last = r.seq;
            replayed += 1;
        }
        match tail {
            wal::Tail::Clean => {}
            wal::Tail::Torn(off) if i + 1 == segs.len() => {
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
    Ok(Replay {
        last,
        replayed,
        torn,
    })
}

/// The counters stored in sled, and the next ids after the largest stored keys.
fn load_counters(db: &sled::Db) -> Result<Counters, JournalError> {
    let mut c = Counters::default();
    for item in db.scan_prefix([rec::P_COUNTER]) {
        let (k, v) = item.map_err(|e| map_sled("scan counters".into(), e))?;
        let name = String::from_utf8_lossy(&k[1..]);
        let n = rec::open_u64(&v).map_err(|why| corrupt(format!("counter {name}"), why))?;
        match Counter::from_key(&k) {
            Some(counter) => c.load(counter, n),
            // Written by a newer version: nothing here reads it.
            None => log::warn!("journal: unknown counter {name} ignored"),
        }
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
    c.next_id = last(rec::P_MESSAGE)?.max(c.get(&Counter::PrunedThroughId)) + 1;
    c.audit = crate::audit::load(db, c.get(&Counter::PrunedThroughAudit))?;
    c.next_q = last(rec::P_QUARANTINE)? + 1;
    c.next_dead = last(rec::P_DEAD)? + 1;
    Ok(c)
}
