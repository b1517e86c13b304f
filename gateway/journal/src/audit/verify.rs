//! `audit_verify`: walk the kept trail from its anchor, recompute every
//! chain hash, and name the first event that was edited, removed or
//! reordered. Streamed (one record at a time), read-only.
//!
//! How a change shows (the chain hash covers seq, time, kind, detail and
//! the previous event's hash; `audit/chain.rs`):
//! - a seq missing between the anchor and the newest event: **removed**;
//! - a chained record whose own seq is not its key's: **reordered** (moved);
//! - a record that fails its checksum or does not decode: **corrupt**;
//! - event N's recorded previous hash is not the hash of event N-1 as it
//!   is now: event N-1 was **edited** (or N's record of it was); for the
//!   oldest kept event, the anchor or that event was edited;
//! - a version 1 (unchained) record after chained ones: **edited**
//!   (inserted, or written by a binary from before the chain);
//! - with `--head SEQ:HASH` seen elsewhere: SEQ beyond the newest kept
//!   event is a **cut tail**; event SEQ with another hash is **edited**
//!   (and the chain after it recomputed).

use serde::{Deserialize, Serialize};

use super::chain::{self, ChainHead};
use crate::error::map_sled;
use crate::record as rec;
use crate::JournalError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    Edited,
    Removed,
    Reordered,
    Corrupt,
    TailCut,
}

/// The first thing wrong with the trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditProblem {
    /// The first bad event's seq.
    pub seq: u64,
    pub kind: ProblemKind,
    /// What is wrong, in words (no PHI: seqs and hashes only).
    pub detail: String,
}

/// What [`crate::Journal::audit_verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditVerify {
    /// Events checked.
    pub checked: u64,
    /// Of those, version 1 events from before the chain (the genesis prefix).
    pub genesis: u64,
    /// Where the kept trail starts (`SEQ:HASH`; seq 0: nothing pruned).
    pub anchor: String,
    /// The head recomputed from the trail (`SEQ:HASH`).
    pub head: String,
    /// The head checked against, if one was given.
    pub checked_head: Option<String>,
    /// Set when a given head is older than the anchor (pruned since).
    pub note: Option<String>,
    pub problem: Option<AuditProblem>,
}

impl AuditVerify {
    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }
}

struct Walk {
    running: [u8; 32],
    expected: u64,
    checked: u64,
    genesis: u64,
    chained: bool,
    /// The hash of the event `--head` names, once walked past.
    at_head: Option<[u8; 32]>,
}

pub(super) fn run(
    db: &sled::Db,
    anchor: Option<ChainHead>,
    head: Option<ChainHead>,
) -> Result<AuditVerify, JournalError> {
    let a = anchor.unwrap_or_default();
    let mut w = Walk {
        running: a.hash,
        expected: a.seq + 1,
        checked: 0,
        genesis: 0,
        chained: false,
        at_head: None,
    };
    let mut problem = match anchor {
        None => Some(AuditProblem {
            seq: 1,
            kind: ProblemKind::Removed,
            detail: "the chain's anchor record (key A) is missing: it was removed".into(),
        }),
        Some(_) => None,
    };
    if problem.is_none() {
        for item in db.scan_prefix([rec::P_AUDIT]) {
            let (k, v) = item.map_err(|e| map_sled("scan audit trail".into(), e))?;
            let seq = rec::seq_of_key(&k).unwrap_or(0);
            if let Some(p) = step(&mut w, seq, &v, a.seq, head) {
                problem = Some(p);
                break;
            }
        }
    }
    let newest = ChainHead {
        seq: w.expected - 1,
        hash: w.running,
    };
    let mut note = None;
    if let (None, Some(h)) = (&problem, head) {
        problem = check_head(&w, a, newest, h, &mut note);
    }
    Ok(AuditVerify {
        checked: w.checked,
        genesis: w.genesis,
        anchor: a.to_text(),
        head: newest.to_text(),
        checked_head: head.map(|h| h.to_text()),
        note,
        problem,
    })
}

/// One record; the problem it shows, if any.
fn step(
    w: &mut Walk,
    seq: u64,
    v: &[u8],
    anchor_seq: u64,
    head: Option<ChainHead>,
) -> Option<AuditProblem> {
    let bad = |kind, detail: String| Some(AuditProblem { seq, kind, detail });
    if seq < w.expected {
        return bad(
            ProblemKind::Edited,
            format!("event {seq} is kept but the anchor says events through {anchor_seq} were pruned: the anchor was edited or the event re-inserted"),
        );
    }
    if seq > w.expected {
        let e = w.expected;
        return Some(AuditProblem {
            seq: e,
            kind: ProblemKind::Removed,
            detail: if seq == e + 1 {
                format!("event {e} is missing (removed); the next kept event is {seq}")
            } else {
                format!(
                    "events {e}..={} are missing (removed); the next kept event is {seq}",
                    seq - 1
                )
            },
        });
    }
    let r = match chain::decode(v) {
        Ok(r) => r,
        Err(why) => {
            return bad(
                ProblemKind::Corrupt,
                format!("event {seq} does not decode ({why}): edited or damaged"),
            )
        }
    };
    if let Some(s) = r.seq.filter(|s| *s != seq) {
        return bad(
            ProblemKind::Reordered,
            format!("the record at position {seq} is event {s}: events were moved"),
        );
    }
    match r.prev {
        Some(p) if p != w.running => {
            return if w.checked > 0 && w.genesis == w.checked {
                // Unchained events carry no links of their own: which one
                // changed cannot be told, only that the prefix did.
                Some(AuditProblem {
                    seq: anchor_seq + 1,
                    kind: ProblemKind::Edited,
                    detail: format!(
                        "the genesis prefix (unchained events {}..={}, from before the chain) no longer hashes to what event {seq} recorded: one of them was edited",
                        anchor_seq + 1,
                        seq - 1
                    ),
                })
            } else if w.checked == 0 {
                bad(
                    ProblemKind::Edited,
                    format!("event {seq} does not link to the anchor ({anchor_seq}:…): the anchor or event {seq} was edited"),
                )
            } else {
                Some(AuditProblem {
                    seq: seq - 1,
                    kind: ProblemKind::Edited,
                    detail: format!(
                        "event {} no longer hashes to the previous-event hash that event {seq} recorded: event {} was edited (or event {seq}'s link was)",
                        seq - 1,
                        seq - 1
                    ),
                })
            };
        }
        Some(_) => w.chained = true,
        None if w.chained => {
            return bad(
                ProblemKind::Edited,
                format!("event {seq} has no chain link but follows chained events: inserted, or written by a binary from before the chain"),
            )
        }
        None => w.genesis += 1,
    }
    w.running = r.hash(seq, &w.running);
    w.expected = seq + 1;
    w.checked += 1;
    if head.is_some_and(|h| h.seq == seq) {
        w.at_head = Some(w.running);
    }
    None
}

/// Compare the trail with a head seen elsewhere.
fn check_head(
    w: &Walk,
    anchor: ChainHead,
    newest: ChainHead,
    h: ChainHead,
    note: &mut Option<String>,
) -> Option<AuditProblem> {
    if h.seq > newest.seq {
        return Some(AuditProblem {
            seq: newest.seq + 1,
            kind: ProblemKind::TailCut,
            detail: format!(
                "a head seen elsewhere is at event {}, but the newest kept event is {}: events {}..={} were cut from the tail",
                h.seq,
                newest.seq,
                newest.seq + 1,
                h.seq
            ),
        });
    }
    let have = if h.seq == anchor.seq {
        Some(anchor.hash)
    } else if h.seq < anchor.seq {
        *note = Some(format!(
            "the given head (event {}) is older than the anchor (event {}): pruned by retention since, not checked",
            h.seq, anchor.seq
        ));
        return None;
    } else {
        w.at_head
    };
    match have {
        Some(x) if x == h.hash => None,
        _ => Some(AuditProblem {
            seq: h.seq,
            kind: ProblemKind::Edited,
            detail: format!(
                "event {} hashes to {} but a head seen elsewhere says {}: it (or an event before it) was edited and the chain recomputed",
                h.seq,
                have.map_or("nothing".into(), |x| chain::hex(&x)),
                chain::hex(&h.hash)
            ),
        }),
    }
}
