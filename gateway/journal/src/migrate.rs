//! `gateway journal migrate [--to 1|2]`: convert a journal between format
//! 1 (every value whole, what binaries before format 2 read) and format 2
//! (large values chunked, so sled never writes a blob file: `chunk.rs`).
//!
//! Offline, like verify and salvage (the daemon holds sled's lock). It
//! opens the journal as the daemon does (WAL replayed), then rewrites
//! through the WAL, as ordinary commits: the first commit sets or removes
//! the format key `F`, the next ones set every value that changes layout
//! again (whole values are the WAL's ops, so the layout of the moment
//! decides how sled stores them), and a checkpoint ends it. A crash in
//! the middle leaves a journal that opens (readers take both layouts) and
//! a rerun finishes the conversion: every run rescans all values.
//!
//! Why `--to 1` exists: the image rollback rule (image/README.md, "Journal
//! format and rollback"). A previous binary reads a chunk head as an
//! unknown record version; after `--to 1` it finds only whole values and
//! ignores nothing it needs (no `F` key, no `~` chunks).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::chunk::{self, Layout};
use crate::quota::{fs_percent_used, HEADROOM};
use crate::record as rec;
use crate::wal::{Op, OpBatch};
use crate::writer::{self, Recovered};
use crate::{JournalConfig, JournalError};

pub use crate::chunk::{FORMAT_CHUNKED, FORMAT_WHOLE};

/// Values rewritten per commit (bytes): bounds the WAL record.
const GROUP_BYTES: usize = 8 * 1024 * 1024;

/// What a migration did.
#[derive(Debug, Clone, Serialize)]
pub struct MigrateReport {
    pub dir: PathBuf,
    pub from_format: u64,
    pub to_format: u64,
    /// Values rewritten in the other layout, and their bytes.
    pub values: u64,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("journal format {0} does not exist: pass --to 1 (every value whole, for a gateway older than format 2) or --to 2 (large values chunked)")]
    UnknownFormat(u64),
    #[error("{0} is not a journal directory (no sled `db` file): pass the data directory (--data-dir) or the config (--config)")]
    NotAJournal(PathBuf),
    #[error("the journal in {0} is in use (its lock is held): stop the daemon first (systemctl stop gateway)")]
    Locked(PathBuf),
    #[error("data directory {dir} has {free} bytes free, {need} needed to rewrite {bytes} bytes: free disk space, then run the migration again")]
    NoRoom {
        dir: PathBuf,
        free: u64,
        need: u64,
        bytes: u64,
    },
    #[error("this gateway reads and writes journal formats up to {max} (GATEWAY_JOURNAL_MAX_FORMAT): it cannot convert to format {to}")]
    OverMax { to: u64, max: u64 },
    #[error("{what} {path}: {source}: check the data directory's permissions and free space, then run it again")]
    Request {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// The file `gateway journal migrate --at-next-start` leaves in the
/// journal directory: the format to convert to, as text. The daemon
/// converts before it opens the journal ([`run_requested`]) and removes it.
pub const REQUEST_FILE: &str = "migrate-to";

/// What [`request`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    /// The request file was written (durably).
    Written(PathBuf),
    /// There is no journal yet: the gateway creates it in its newest format.
    NoJournal,
}

/// Ask the daemon to convert the journal in `dir` to format `to` at its
/// next start. For the image's `after_commit` step: it works while the
/// daemon runs (and holds the journal's lock), and the conversion is then
/// done by the daemon itself, as the user that owns the journal's files.
pub fn request(dir: &Path, to: u64) -> Result<Requested, MigrateError> {
    if !matches!(to, FORMAT_WHOLE | FORMAT_CHUNKED) {
        return Err(MigrateError::UnknownFormat(to));
    }
    if !dir.join("db").is_file() {
        return Ok(Requested::NoJournal);
    }
    // Written by root (the updater's after-commit step) for the daemon's
    // (dynamic) user to read and remove.
    let body = format!("{to}\n");
    crate::durable_fs::write_atomically_for_dir_owner(dir, REQUEST_FILE, body.as_bytes()).map_err(
        |source| MigrateError::Request {
            what: "write",
            path: dir.join(REQUEST_FILE),
            source,
        },
    )?;
    Ok(Requested::Written(dir.join(REQUEST_FILE)))
}

/// The format a [`request`] left in `dir`, if any (unreadable or unknown
/// content is an error naming the file).
pub fn requested(dir: &Path) -> Result<Option<u64>, MigrateError> {
    let path = dir.join(REQUEST_FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) => match s.trim().parse::<u64>() {
            Ok(n @ (FORMAT_WHOLE | FORMAT_CHUNKED)) => Ok(Some(n)),
            _ => Err(MigrateError::Request {
                what: "read",
                path,
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("holds {:?}, not a journal format (1 or 2)", s.trim()),
                ),
            }),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(MigrateError::Request {
            what: "read",
            path,
            source,
        }),
    }
}

/// Before the daemon opens the journal: carry out a [`request`] left in
/// `dir` (`None`: there was none). The request file is removed, durably,
/// only after the conversion is complete, so a crash or power cut in it
/// leaves the request for the next start (the conversion is restartable).
/// A failure leaves the journal readable in its old format, and the
/// request in place: the caller logs it and opens the journal as it is.
pub fn run_requested(dir: &Path, max_format: u64) -> Option<Result<MigrateReport, MigrateError>> {
    let to = match requested(dir) {
        Ok(Some(to)) => to,
        Ok(None) => return None,
        Err(e) => return Some(Err(e)),
    };
    if to > max_format {
        return Some(Err(MigrateError::OverMax {
            to,
            max: max_format,
        }));
    }
    Some(migrate(dir, to).and_then(|r| {
        let path = dir.join(REQUEST_FILE);
        std::fs::remove_file(&path)
            .and_then(|()| crate::durable_fs::sync_dir(dir))
            .map_err(|source| MigrateError::Request {
                what: "remove",
                path,
                source,
            })?;
        Ok(r)
    }))
}

/// Convert the journal in `dir` to format `to` ([`FORMAT_WHOLE`] or
/// [`FORMAT_CHUNKED`]). Idempotent.
pub fn migrate(dir: &Path, to: u64) -> Result<MigrateReport, MigrateError> {
    let target = match to {
        FORMAT_WHOLE => Layout { chunked: false },
        FORMAT_CHUNKED => Layout { chunked: true },
        n => return Err(MigrateError::UnknownFormat(n)),
    };
    let db_file = dir.join("db");
    if !db_file.is_file() {
        return Err(MigrateError::NotAJournal(dir.to_path_buf()));
    }
    // sled's lock can outlive a just-closed journal by a few milliseconds
    // (its thread pool): a running daemon holds it for good.
    if !crate::verify::wait_unlocked(&db_file, std::time::Duration::from_secs(2)) {
        return Err(MigrateError::Locked(dir.to_path_buf()));
    }
    let cfg = JournalConfig::new(dir.to_path_buf());
    let Recovered {
        mut store,
        mut state,
        ..
    } = writer::recover(&cfg)?;
    let from_format = store.layout.format();
    let keys = to_rewrite(&store.db, target)?;
    let bytes: u64 = keys.iter().map(|(_, n)| *n as u64).sum();
    // The rewrite goes to the WAL and to sled: room for both, as a commit.
    let need = bytes.saturating_mul(3).saturating_add(HEADROOM);
    let free = fs_percent_used(dir).map(|(_, a)| a).unwrap_or(0);
    if free < need {
        return Err(MigrateError::NoRoom {
            dir: dir.to_path_buf(),
            free,
            need,
            bytes,
        });
    }
    let mut group = OpBatch::default();
    group.ops.push(match target.chunked {
        true => target.format_op(),
        false => Op::Remove(chunk::FORMAT_KEY.to_vec()),
    });
    let mut group_bytes = 0usize;
    for (k, _) in &keys {
        let what = format!("value {}", crate::verify::key_name(k));
        let Some(v) = chunk::get(&store.db, k, &what)? else {
            continue;
        };
        group_bytes += v.len();
        group.ops.push(Op::Set(k.clone(), v));
        if group_bytes >= GROUP_BYTES {
            commit(&mut store, dir, std::mem::take(&mut group))?;
            group_bytes = 0;
        }
    }
    let detail = format!(
        "format {from_format} -> {to}: {} value(s), {bytes} bytes rewritten",
        keys.len()
    );
    writer::push_audit(
        &mut group,
        &mut state.audit.head,
        crate::system_clock_ms(),
        "journal_migrate",
        &detail,
    )?;
    commit(&mut store, dir, group)?;
    store.checkpoint(dir)?;
    log::info!("journal: migrated {}: {detail}", dir.display());
    Ok(MigrateReport {
        dir: dir.to_path_buf(),
        from_format,
        to_format: to,
        values: keys.len() as u64,
        bytes,
    })
}

/// Keys whose stored layout differs from `target`'s, with their lengths:
/// whole values over the chunk size (to format 2) or heads (to format 1).
fn to_rewrite(db: &sled::Db, target: Layout) -> Result<Vec<(Vec<u8>, usize)>, JournalError> {
    let mut out = Vec::new();
    for p in [rec::P_MESSAGE, rec::P_QUARANTINE, rec::P_STATE, rec::P_DEAD] {
        for item in db.scan_prefix([p]) {
            let (k, v) =
                item.map_err(|e| crate::error::map_sled(format!("scan {} records", p as char), e))?;
            let head = chunk::parse_head(&k, &v).is_some();
            let len = chunk::value_len(&k, &v);
            let differs = if target.chunked {
                !head && len > chunk::CHUNK_BYTES
            } else {
                head
            };
            if differs {
                out.push((k.to_vec(), len));
            }
        }
    }
    Ok(out)
}

/// One commit through the WAL (append + fdatasync, then sled).
fn commit(store: &mut writer::Store, dir: &Path, ops: OpBatch) -> Result<(), JournalError> {
    let mut staged = writer::Staged::default();
    staged.stage(ops);
    store.log(dir, &mut staged, || Ok(()))?;
    Ok(())
}
