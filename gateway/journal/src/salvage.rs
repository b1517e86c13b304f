//! `gateway journal salvage --to DIR`: a new journal built from everything
//! intact in a damaged one, with the ids that could not be recovered.
//!
//! It reads the same snapshot as verify (`verify.rs`: sled copied, every
//! readable WAL record replayed into the copy, every record checked), and
//! copies each intact record, key and value byte for byte (a chunked value
//! reassembled, then written in format 2, `chunk.rs`, as the new journal
//! is), so messages keep
//! their ids, received times and sources, and outboxes, dead letters,
//! audit events and the state store keep theirs. Dropped: records that
//! fail their seal, and index entries (outbox, de-dup, dead letter) whose
//! message is gone; the pending and dead counters are recounted from what
//! was copied. Nothing is invented: every value comes from the old journal.
//! The new journal is then opened with [`Journal::open`] (its own checks)
//! and an audit event `journal_salvage` records what was done.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::chunk::{self, Layout};
use crate::counter::Counter;
use crate::record as rec;
use crate::verify::{self, VerifyError, VerifyReport};
use crate::wal::Op;
use crate::{Journal, JournalConfig, JournalError};

/// What salvage did.
#[derive(Debug, Clone, Serialize)]
pub struct SalvageReport {
    pub to: PathBuf,
    /// What verify found in the old journal.
    pub verify: VerifyReport,
    /// Message ids copied to the new journal, ascending.
    pub recovered: Vec<u64>,
    /// Message ids known to the old journal whose record could not be
    /// read: a key, an outbox entry, a de-dup entry or a dead letter names
    /// them, or a damaged WAL record held them (ids are given in order,
    /// so the gap between the readable records' ids). Not in the new
    /// journal.
    pub lost: Vec<u64>,
    /// Ids that nothing readable accounts for because sled could not be
    /// read (at all, or past a point of its messages): each was either
    /// lost or pruned or released before the damage, and the journal no
    /// longer tells which. Treat them as lost: check them against the
    /// sender (`possibly_lost_why` says why they are listed).
    pub possibly_lost: Vec<u64>,
    pub possibly_lost_why: Option<String>,
    /// Records copied per kind.
    pub copied: BTreeMap<String, u64>,
    /// Records or index entries left out, by kind.
    pub skipped: BTreeMap<String, u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum SalvageError {
    #[error(transparent)]
    Read(#[from] VerifyError),
    #[error("{0} already exists and is not empty: salvage writes a new journal; pass an empty or new directory")]
    TargetNotEmpty(PathBuf),
    #[error("writing the new journal in {dir}: {why}")]
    Write { dir: PathBuf, why: String },
    #[error("the new journal in {dir} does not open: {source}")]
    Open {
        dir: PathBuf,
        #[source]
        source: JournalError,
    },
}

/// Build a new journal in `to` from everything intact in `from`.
pub fn salvage(from: &Path, to: &Path) -> Result<SalvageReport, SalvageError> {
    if to.exists()
        && std::fs::read_dir(to)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(SalvageError::TargetNotEmpty(to.to_path_buf()));
    }
    let mut vr = VerifyReport::default();
    let snap = verify::snapshot(from, &mut vr)?;
    let werr = |why: String| SalvageError::Write {
        dir: to.to_path_buf(),
        why,
    };
    let out = sled::Config::new()
        .path(to)
        .open()
        .map_err(|e| werr(e.to_string()))?;
    // A new journal: format 2 (`chunk.rs`), large values chunked.
    let mut layout = Layout { chunked: true };
    layout
        .apply(&out, layout.format_op())
        .map_err(|e| werr(e.to_string()))?;
    let ix = &snap.index;
    let mut copied: BTreeMap<String, u64> = BTreeMap::new();
    let mut skipped: BTreeMap<String, u64> = BTreeMap::new();
    let mut pending: BTreeMap<String, u64> = BTreeMap::new();
    let mut dead: BTreeMap<String, u64> = BTreeMap::new();
    let mut dests: BTreeSet<String> = BTreeSet::new();
    // Read errors end what can be read of a kind (verify reported where).
    let mut write_err = None;
    verify::for_each(
        &snap.db,
        |k, v| {
            if write_err.is_some() {
                return;
            }
            let kind = kind_name(k.first().copied().unwrap_or(0));
            // A value whose chunks do not add up is damage (verify named it).
            let Ok(v) = v else {
                *skipped.entry(kind.into()).or_default() += 1;
                return;
            };
            let keep = !ix.bad_keys.contains(k.as_ref())
                && match k.first().copied() {
                    Some(rec::P_MESSAGE) => {
                        rec::seq_of_key(&k).is_some_and(|id| ix.messages.contains(&id))
                    }
                    Some(rec::P_DEDUP) => rec::open_u64(&v)
                        .is_ok_and(|id| ix.messages.contains(&id) || ix.released.contains(&id)),
                    Some(rec::P_OUTBOX) => {
                        let ok = rec::outbox_id(&k).is_some_and(|id| ix.messages.contains(&id));
                        if ok {
                            *pending.entry(dest_of(&k)).or_default() += 1;
                        }
                        ok
                    }
                    Some(rec::P_DEAD) => {
                        let d = rec::seq_of_key(&k).and_then(|s| ix.dead.get(&s));
                        let ok = d.is_some_and(|(_, id)| ix.messages.contains(id));
                        if let (true, Some((dest, _))) = (ok, d) {
                            *dead.entry(dest.clone()).or_default() += 1;
                        }
                        ok
                    }
                    Some(rec::P_DEAD_INDEX) => rec::open_u64(&v).is_ok_and(|seq| {
                        let id = rec::outbox_id(&k).unwrap_or(0);
                        ix.dead.get(&seq) == Some(&(dest_of(&k), id)) && ix.messages.contains(&id)
                    }),
                    Some(rec::P_COUNTER) => match Counter::from_key(&k) {
                        // Recounted below from what was copied.
                        Some(Counter::Pending(d)) | Some(Counter::Dead(d)) => {
                            dests.insert(d);
                            false
                        }
                        _ => true,
                    },
                    // The new journal has no WAL yet: its position starts at 0.
                    _ if k.as_ref() == crate::wal::APPLIED_KEY => false,
                    // The new journal has its own format (written above).
                    _ if k.as_ref() == chunk::FORMAT_KEY => false,
                    _ => true,
                };
            if keep {
                if let Err(e) = layout.apply(&out, Op::Set(k.to_vec(), v.to_vec())) {
                    write_err = Some(e.to_string());
                    return;
                }
                *copied.entry(kind.into()).or_default() += 1;
            } else if !(k.first() == Some(&rec::P_COUNTER)
                || k.as_ref() == crate::wal::APPLIED_KEY
                || k.as_ref() == chunk::FORMAT_KEY)
            {
                *skipped.entry(kind.into()).or_default() += 1;
            }
        },
        |_, _, _| {},
    );
    if let Some(e) = write_err {
        return Err(werr(e));
    }
    dests.extend(pending.keys().cloned());
    dests.extend(dead.keys().cloned());
    for d in &dests {
        for (c, n) in [
            (Counter::Pending(d.clone()), pending.get(d)),
            (Counter::Dead(d.clone()), dead.get(d)),
        ] {
            out.insert(c.key(), rec::seal_u64(n.copied().unwrap_or(0)))
                .map_err(|e| werr(e.to_string()))?;
        }
    }
    out.flush().map_err(|e| werr(e.to_string()))?;
    drop(out);

    let recovered: Vec<u64> = ix.messages.iter().copied().collect();
    let lost: BTreeSet<u64> = ix
        .corrupt_messages
        .union(&ix.wal_lost)
        // Released later (delivered, its de-dup entry kept): not lost.
        .filter(|id| !ix.messages.contains(id) && !ix.released.contains(id))
        .copied()
        .collect();
    let (possibly_lost, possibly_lost_why) = unaccounted(ix, &vr, &lost);
    let lost: Vec<u64> = lost.into_iter().collect();
    let report = SalvageReport {
        to: to.to_path_buf(),
        verify: vr,
        recovered,
        lost,
        possibly_lost,
        possibly_lost_why,
        copied,
        skipped,
    };
    drop(snap);
    record_in_new_journal(to, &report)?;
    // sled's threads let go of the lock a moment after the journal closes:
    // the operator's next `gateway run`, or a test, must find it free.
    verify::wait_unlocked(&to.join("db"), std::time::Duration::from_secs(10));
    Ok(report)
}

/// The ids up to the highest known that nothing readable accounts for,
/// when sled could not be read from some point on (ids are given densely
/// from 1, so every id at or below the highest was once a message).
fn unaccounted(
    ix: &verify::Index,
    vr: &VerifyReport,
    lost: &BTreeSet<u64>,
) -> (Vec<u64>, Option<String>) {
    let (from, why) = if vr.sled_unreadable {
        (
            1,
            "sled could not be opened: only the WAL's records were read".to_string(),
        )
    } else if let Some(after) = ix.messages_cut_after {
        (
            after + 1,
            format!("a read error in sled ended the scan of its messages after id {after}"),
        )
    } else {
        return (Vec::new(), None);
    };
    let highest = [
        ix.messages.last(),
        ix.corrupt_messages.last(),
        ix.referenced.last(),
        ix.released.last(),
        ix.wal_lost.last(),
    ]
    .into_iter()
    .flatten()
    .max()
    .copied()
    .unwrap_or(0);
    let ids: Vec<u64> = (from..=highest)
        .filter(|id| !ix.messages.contains(id) && !lost.contains(id) && !ix.released.contains(id))
        .collect();
    if ids.is_empty() {
        return (ids, None);
    }
    (
        ids,
        Some(format!(
            "{why}; each id listed was lost, or pruned or released before the damage"
        )),
    )
}

/// Open the new journal (its open-time checks, a durable WAL and
/// checkpoint), audit the salvage, close it.
fn record_in_new_journal(to: &Path, r: &SalvageReport) -> Result<(), SalvageError> {
    let open_err = |source| SalvageError::Open {
        dir: to.to_path_buf(),
        source,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SalvageError::Write {
            dir: to.to_path_buf(),
            why: format!("start a runtime: {e}"),
        })?;
    let j = Journal::open(JournalConfig::new(to.to_path_buf())).map_err(open_err)?;
    let detail = format!(
        "salvaged from {}: recovered={} lost={} possibly_lost={} findings={}",
        r.verify.dir.display(),
        r.recovered.len(),
        r.lost.len(),
        r.possibly_lost.len(),
        r.verify.findings.len()
    );
    j.audit("journal_salvage", &detail).map_err(open_err)?;
    rt.block_on(j.close()).map_err(open_err)
}

fn dest_of(k: &[u8]) -> String {
    verify::key_dest(k).unwrap_or_default()
}

fn kind_name(prefix: u8) -> &'static str {
    match prefix {
        rec::P_MESSAGE => "messages",
        rec::P_DEDUP => "dedup",
        rec::P_OUTBOX => "outbox",
        rec::P_DEAD => "dead_letters",
        rec::P_DEAD_INDEX => "dead_index",
        rec::P_RELEASED => "released",
        rec::P_QUARANTINE => "quarantine",
        rec::P_AUDIT => "audit",
        rec::P_STATE => "state",
        rec::P_COUNTER => "counters",
        _ => "other",
    }
}
