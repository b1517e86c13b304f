//! The audit trail's hash chain: where its head and anchor come from at
//! open, and the reader side (`audit_head`, `audit_verify`). The chain
//! itself (what is hashed, the records) is in `audit/chain.rs`; events are
//! chained by the writer (`writer::push_audit`), the one place a seq is
//! assigned, so concurrent callers cannot fork the chain.

pub mod chain;
mod verify;

#[cfg(test)]
mod tests;

pub use chain::{hex, ChainHead};
pub use verify::{AuditProblem, AuditVerify, ProblemKind};

use crate::error::{corrupt, map_sled};
use crate::record as rec;
use crate::{Journal, JournalError};

/// The chain: its anchor, whether that is stored (not yet in a journal
/// never opened by a chaining binary: `Journal::open` writes it), and its
/// head.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Chain {
    pub anchor: ChainHead,
    pub anchor_stored: bool,
    pub head: ChainHead,
}

/// The stored anchor, if any.
pub(crate) fn stored_anchor(db: &sled::Db) -> Result<Option<ChainHead>, JournalError> {
    match db
        .get([rec::P_AUDIT_ANCHOR])
        .map_err(|e| map_sled("read the audit chain anchor".into(), e))?
    {
        None => Ok(None),
        Some(v) => chain::decode_anchor(&v)
            .map(Some)
            .map_err(|why| corrupt("audit chain anchor".into(), why)),
    }
}

/// The anchor a journal without an `A` key gets: just before its oldest
/// kept event (or after the last seq ever used), with the zero hash.
fn implicit_anchor(db: &sled::Db, pruned_through: u64) -> Result<ChainHead, JournalError> {
    let first = db.scan_prefix([rec::P_AUDIT]).next();
    let seq = match first {
        Some(Ok((k, _))) => rec::seq_of_key(&k).unwrap_or(1).saturating_sub(1),
        Some(Err(e)) => return Err(map_sled("find the oldest audit event".into(), e)),
        None => pruned_through,
    };
    Ok(ChainHead { seq, hash: [0; 32] })
}

/// Load the chain at open: the anchor, and the head (the newest event's
/// seq and chain hash). A journal whose newest event is from before the
/// chain (the first open after the upgrade) is hashed once from its anchor.
pub(crate) fn load(db: &sled::Db, pruned_through: u64) -> Result<Chain, JournalError> {
    let stored = stored_anchor(db)?;
    let anchor = match stored {
        Some(a) => a,
        None => implicit_anchor(db, pruned_through)?,
    };
    let last = db.scan_prefix([rec::P_AUDIT]).next_back();
    let head = match last {
        None => {
            let seq = anchor.seq.max(pruned_through);
            ChainHead {
                seq,
                hash: if seq == anchor.seq {
                    anchor.hash
                } else {
                    [0; 32]
                },
            }
        }
        Some(Err(e)) => return Err(map_sled("find the newest audit event".into(), e)),
        Some(Ok((k, v))) => {
            let seq = rec::seq_of_key(&k).unwrap_or(0);
            match chain::decode(&v) {
                Ok(r) if r.prev.is_some() => ChainHead {
                    seq,
                    hash: r.hash(seq, &[0; 32]),
                },
                Ok(_) => hash_from(db, anchor)?,
                Err(why) => {
                    // Never refuse to open over the trail: verify names it.
                    log::error!("journal: audit event {seq} is corrupt ({why}); the chain continues from a zero hash and `gateway audit verify` reports the break");
                    ChainHead { seq, hash: [0; 32] }
                }
            }
        }
    };
    Ok(Chain {
        anchor,
        anchor_stored: stored.is_some(),
        head,
    })
}

/// The head computed by hashing every kept event from `anchor` (once, at
/// the upgrade: the genesis prefix has no stored links).
fn hash_from(db: &sled::Db, anchor: ChainHead) -> Result<ChainHead, JournalError> {
    let mut head = anchor;
    for item in db.scan_prefix([rec::P_AUDIT]) {
        let (k, v) = item.map_err(|e| map_sled("scan audit trail".into(), e))?;
        let seq = rec::seq_of_key(&k).unwrap_or(0);
        head.hash = match chain::decode(&v) {
            Ok(r) => r.hash(seq, &head.hash),
            Err(_) => [0; 32],
        };
        head.seq = seq;
    }
    Ok(head)
}

/// How much audit trail is kept (for the size cap and its alert).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct AuditUsage {
    /// Events kept (between the anchor and the head).
    pub events: u64,
    /// Their size, estimated from the newest events' average record size.
    pub approx_bytes: u64,
    /// That average (key + record), at least 1.
    pub avg_event_bytes: u64,
}

/// Newest events sampled for [`AuditUsage::avg_event_bytes`].
const USAGE_SAMPLE: usize = 64;

impl Journal {
    /// The kept trail's size, estimated cheaply (no scan of the trail).
    pub fn audit_usage(&self) -> Result<AuditUsage, JournalError> {
        let db = self.inner.shared.db()?;
        let (anchor, head) = match self.inner.shared.counters.lock() {
            Ok(g) => (g.audit.anchor, g.audit.head),
            Err(p) => {
                let g = p.into_inner();
                (g.audit.anchor, g.audit.head)
            }
        };
        let (mut n, mut bytes) = (0u64, 0u64);
        for item in db.scan_prefix([rec::P_AUDIT]).rev().take(USAGE_SAMPLE) {
            let (k, v) = item.map_err(|e| map_sled("sample audit trail".into(), e))?;
            n += 1;
            bytes += (k.len() + v.len()) as u64;
        }
        let avg = bytes.checked_div(n).unwrap_or(1).max(1);
        let events = head.seq.saturating_sub(anchor.seq);
        Ok(AuditUsage {
            events,
            approx_bytes: events.saturating_mul(avg),
            avg_event_bytes: avg,
        })
    }

    /// The audit trail's retention step: remove the oldest events that are
    /// older than `cutoff_ms`, or beyond the newest `keep_newest`, at most
    /// `max`; the anchor moves to the last one removed (durable on return).
    pub async fn prune_audit(
        &self,
        cutoff_ms: u64,
        keep_newest: Option<u64>,
        max: usize,
    ) -> Result<crate::PruneReport, JournalError> {
        match self
            .call(|tx| crate::writer::Req::PruneAudit(cutoff_ms, keep_newest, max, tx))
            .await?
        {
            crate::writer::Answer::Pruned(r) => Ok(r),
            _ => Err(crate::delivery::unexpected("prune audit trail")),
        }
    }

    /// The chain head as of the last commit: the newest audit event's seq
    /// and chain hash (what syslog batches and fleet heartbeats carry).
    pub fn audit_head(&self) -> ChainHead {
        match self.inner.shared.counters.lock() {
            Ok(g) => g.audit.head,
            Err(p) => p.into_inner().audit.head,
        }
    }

    /// Check the whole kept trail (streamed) from its anchor; with `head`
    /// (one seen elsewhere: a SIEM, a fleet heartbeat), also that the trail
    /// still holds that event with that hash.
    pub fn audit_verify(&self, head: Option<ChainHead>) -> Result<AuditVerify, JournalError> {
        let db = self.inner.shared.db()?;
        // Retention may move the anchor while we scan: a problem seen with
        // a moved anchor is looked at again.
        let mut tries = 0;
        loop {
            let before = stored_anchor(&db)?;
            let report = verify::run(&db, before, head)?;
            tries += 1;
            if report.problem.is_none() || tries >= 3 || stored_anchor(&db)? == before {
                return Ok(report);
            }
        }
    }

    /// TEST HOOK: the stored (sealed) audit record `seq`.
    #[doc(hidden)]
    pub fn debug_audit_record(&self, seq: u64) -> Result<Option<Vec<u8>>, JournalError> {
        let db = self.inner.shared.db()?;
        db.get(rec::seq_key(rec::P_AUDIT, seq))
            .map(|o| o.map(|v| v.to_vec()))
            .map_err(|e| map_sled(format!("read audit event {seq}"), e))
    }

    /// TEST HOOK: overwrite (`Some`) or remove (`None`) audit record `seq`
    /// through the writer (durable), to test tamper detection.
    #[doc(hidden)]
    pub async fn debug_put_audit_record(
        &self,
        seq: u64,
        value: Option<Vec<u8>>,
    ) -> Result<(), JournalError> {
        let k = rec::seq_key(rec::P_AUDIT, seq).to_vec();
        self.call(|tx| crate::writer::Req::RawPut(k, value, tx))
            .await
    }

    /// TEST HOOK: a sealed chained audit record, as the writer makes it
    /// (to forge a consistent-looking edit).
    #[doc(hidden)]
    pub fn debug_encode_audit(
        seq: u64,
        at_ms: u64,
        kind: &str,
        detail: &str,
        prev: &[u8; 32],
    ) -> Vec<u8> {
        chain::encode(seq, at_ms, kind, detail, prev).unwrap_or_default()
    }
}
