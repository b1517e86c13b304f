//! Releasing a message kept only until delivered
//! ([`crate::Retention::UntilDelivered`]): its record goes in the same
//! request as the last thing that held it (its last outbox entry
//! delivered, its last dead letter purged), or in its own append if it goes
//! nowhere. Its de-dup entry goes too, or, with `keep_dedup`, stays with a
//! [`rec::ReleasedRec`] (length, SHA-256, ACK) that the retention pass
//! removes once it is older than the retention.

use super::staging::{RequestOps, Stager};
use crate::counter::Counter;
use crate::error::{encode_failed, map_sled};
use crate::record::{self as rec, ReleasedRec};
use crate::trace_index;
use crate::wal::OpBatch;
use crate::{JournalError, PruneReport, Retention};

#[cfg(test)]
mod tests;

/// A message being released: what its de-dup entry and audit event need.
pub(super) struct Released<'a> {
    pub id: u64,
    pub received_at_ms: u64,
    pub source: &'a str,
    pub dedup_key: Vec<u8>,
    pub control_id: &'a str,
    pub raw: &'a [u8],
    pub ack: &'a [u8],
}

impl Stager<'_> {
    /// After `r` removed one of message `id`'s holds: release the message
    /// if its record says `UntilDelivered` and no outbox entry or dead
    /// letter (as `r` leaves them) holds it any more.
    pub(super) fn release_if_free(&self, r: &mut RequestOps, id: u64) -> Result<(), JournalError> {
        if self.held(r, id)? {
            return Ok(());
        }
        let Some(v) = self.get_in(r, &rec::message_key(id), &format!("message {id}"))? else {
            return Ok(());
        };
        let (head, raw) = match rec::decode_message(&v) {
            Ok(m) => m,
            Err(why) => {
                // Never drop what we cannot read: verify_all reports it.
                log::error!("journal: message {id} not released: its record is corrupt ({why})");
                return Ok(());
            }
        };
        let Retention::UntilDelivered { keep_dedup } = head.retention else {
            return Ok(());
        };
        let gone = Released {
            id,
            received_at_ms: head.received_at_ms,
            source: &head.source,
            dedup_key: rec::dedup_key(&head.source, &head.meta.dedup),
            control_id: &head.meta.control_id,
            raw,
            ack: &head.ack,
        };
        self.release_message(r, gone, keep_dedup, false).map(|_| ())
    }

    /// Whether an outbox entry or a dead letter of any destination holds
    /// message `id`, as request `r` leaves them.
    fn held(&self, r: &RequestOps, id: u64) -> Result<bool, JournalError> {
        for d in self.state.destinations() {
            if self
                .get_in(r, &rec::outbox_key(d, id), "outbox entry")?
                .is_some()
                || self
                    .get_in(r, &rec::dead_index_key(d, id), "dead-letter index")?
                    .is_some()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Stage the release of `gone` in `r`: its record removed (unless
    /// `never_stored`: released in its own append), its de-dup entry removed
    /// or, with `keep_dedup`, answered by a released record; counted and
    /// audited. A de-dup entry that points at a newer message (the key was
    /// reused since) is left alone. Returns the bytes it adds.
    pub(super) fn release_message(
        &self,
        r: &mut RequestOps,
        gone: Released<'_>,
        keep_dedup: bool,
        never_stored: bool,
    ) -> Result<u64, JournalError> {
        let id = gone.id;
        let ours = if never_stored {
            true
        } else {
            r.ops.remove(rec::message_key(id));
            for d in self.state.destinations() {
                let jkey = crate::state::journey_key(d, id);
                if self.get_in(r, &jkey, "journey state")?.is_some() {
                    r.ops.remove(jkey);
                }
            }
            let ckey = trace_index::control_key(gone.control_id, id);
            let entry = self.get_in(r, &ckey, "trace index")?;
            trace_index::unindex_ops(&mut r.ops, id, gone.control_id, entry.as_deref());
            match self.get_in(r, &gone.dedup_key, "dedup entry")? {
                Some(v) => rec::open_u64(&v).ok() == Some(id),
                None => false,
            }
        };
        let mut added = 0;
        let dedup = match (ours, keep_dedup) {
            (false, _) => "unchanged",
            (true, true) => {
                let v = rec::encode_postcard(&ReleasedRec {
                    received_at_ms: gone.received_at_ms,
                    released_at_ms: self.now_ms(),
                    dedup_key: gone.dedup_key.clone(),
                    raw_len: gone.raw.len() as u64,
                    raw_sha256: rec::raw_digest(gone.raw),
                    ack: gone.ack.to_vec(),
                })
                .map_err(|e| encode_failed(&format!("released message {id}"), e))?;
                added = v.len() as u64;
                r.ops.insert(rec::seq_key(rec::P_RELEASED, id), v);
                if never_stored {
                    r.ops.insert(&gone.dedup_key, rec::seal_u64(id));
                }
                "kept"
            }
            (true, false) => {
                if !never_stored {
                    r.ops.remove(&gone.dedup_key);
                }
                "removed"
            }
        };
        self.count(r, Counter::Released, 1);
        // The id may have been the largest stored: keep it from reuse.
        if id > self.counted(r, &Counter::PrunedThroughId) {
            r.counters.set(Counter::PrunedThroughId, id);
        }
        r.audit(
            self.now_ms(),
            "released",
            &format!("id={id} source={} dedup={dedup}", gone.source),
        )?;
        log::debug!("journal: message {id} released (dedup entry {dedup})");
        Ok(added)
    }

    /// The retention part for released messages: up to `max` released
    /// records received before `cutoff_ms` (in id order, so it stops at the
    /// first newer one), with the de-dup entries still pointing at them.
    pub(super) fn prune_released(
        &self,
        cutoff_ms: u64,
        max: usize,
        removes: &mut OpBatch,
        report: &mut PruneReport,
    ) -> Result<(), JournalError> {
        for (examined, item) in self.db.scan_prefix([rec::P_RELEASED]).enumerate() {
            if examined >= max.saturating_mul(4) || report.released_keys >= max as u64 {
                break;
            }
            let (k, v) = item.map_err(|e| map_sled("scan released messages".into(), e))?;
            if self.staged.staged(&k).is_some_and(|s| s.is_none()) {
                continue;
            }
            let id = rec::seq_of_key(&k).unwrap_or(0);
            let Ok(gone) = rec::decode_postcard::<ReleasedRec>(&v) else {
                // Never drop what we cannot read.
                log::error!("journal: released message {id}: its record is corrupt; kept");
                continue;
            };
            if gone.received_at_ms >= cutoff_ms {
                break;
            }
            removes.remove(&k);
            if let Some(dv) = self.get(&gone.dedup_key, "dedup entry")? {
                if rec::open_u64(&dv).ok() == Some(id) {
                    removes.remove(&gone.dedup_key);
                }
            }
            report.released_keys += 1;
        }
        Ok(())
    }
}
