//! Staging a message's life after it is enqueued: delivered, dead letter,
//! replay, purge, and retention pruning. Each stages its ops, counter
//! changes and an audit event atomically in the current group, like
//! `append`; delivered and purge release a message kept only until
//! delivered (`release.rs`) in the same request.

use super::staging::Stager;
use crate::counter::Counter;
use crate::error::{corrupt, encode_failed, map_sled};
use crate::record::{self as rec, DeadLetterRec};
use crate::trace_index;
use crate::wal::OpBatch;
use crate::{JournalError, PruneReport, Replayed, Retention};

impl Stager<'_> {
    /// Remove message `id` from `dest`'s outbox. Idempotent: a message
    /// already delivered (or never queued there) changes nothing. A message
    /// kept only until delivered is released with its last entry.
    pub(super) fn delivered(&mut self, dest: &str, id: u64) -> Result<(), JournalError> {
        let k = rec::outbox_key(dest, id);
        let Some(v) = self.get(&k, &format!("outbox {dest} entry {id}"))? else {
            return Ok(());
        };
        // An entry that does not decode holds a message that is kept.
        let release = rec::decode_outbox_entry(&v).is_ok_and(|(_, release)| release);
        let mut r = self.begin();
        r.ops.remove(k);
        self.uncount(&mut r, Counter::Pending(dest.to_string()), 1);
        self.count(&mut r, Counter::Delivered(dest.to_string()), 1);
        r.audit(
            self.now_ms(),
            "delivered",
            &format!("destination={dest} id={id}"),
        )?;
        if release {
            self.release_if_free(&mut r, id)?;
        }
        self.adopt(r);
        Ok(())
    }

    /// Move `d.message_id` from `d.destination`'s outbox to the dead-letter
    /// queue. Returns the dead letter's seq. Idempotent per (destination,
    /// message): a message already dead there returns the existing seq.
    pub(super) fn dead_letter(&mut self, d: DeadLetterRec) -> Result<u64, JournalError> {
        let dest = d.destination.clone();
        let id = d.message_id;
        let index_key = rec::dead_index_key(&dest, id);
        let what = format!("dead-letter index {dest}/{id}");
        if let Some(v) = self.get(&index_key, &what)? {
            return rec::open_u64(&v).map_err(|why| corrupt(what, why));
        }
        let okey = rec::outbox_key(&dest, id);
        let was_pending = self
            .get(&okey, &format!("outbox {dest} entry {id}"))?
            .is_some();
        let seq = self.state.next_dead;
        let value = rec::encode_postcard(&d)
            .map_err(|e| encode_failed(&format!("dead letter {seq}"), e))?;
        let mut r = self.begin();
        if was_pending {
            r.ops.remove(okey);
            self.uncount(&mut r, Counter::Pending(dest.clone()), 1);
        }
        r.ops.insert(&rec::seq_key(rec::P_DEAD, seq)[..], value);
        r.ops.insert(index_key, rec::seal_u64(seq));
        self.count(&mut r, Counter::Dead(dest.clone()), 1);
        self.count(&mut r, Counter::DeadTotal(dest.clone()), 1);
        r.audit(
            self.now_ms(),
            "dead_letter",
            &format!(
                "destination={dest} id={id} dead_letter={seq} attempts={}",
                d.attempts
            ),
        )?;
        self.adopt(r);
        self.state.next_dead = seq + 1;
        self.wake.insert(dest);
        Ok(seq)
    }

    /// Put dead letter `seq` back on its outbox (at its original position:
    /// outbox keys are message ids, so replays keep received order).
    pub(super) fn replay(&mut self, seq: u64, operator: &str) -> Result<Replayed, JournalError> {
        self.take_dead(seq, operator, true)
    }

    /// Drop dead letter `seq` for good (the message itself is then pruned
    /// with the delivered ones once nothing else holds it).
    pub(super) fn purge(&mut self, seq: u64, operator: &str) -> Result<Replayed, JournalError> {
        self.take_dead(seq, operator, false)
    }

    fn load_dead(&self, seq: u64) -> Result<DeadLetterRec, JournalError> {
        let what = format!("dead letter {seq}");
        let v = self
            .get(&rec::seq_key(rec::P_DEAD, seq), &what)?
            .ok_or_else(|| JournalError::NotFound { what: what.clone() })?;
        rec::decode_postcard(&v).map_err(|why| corrupt(what, why))
    }

    /// Remove dead letter `seq`; with `requeue`, put its message back on
    /// the outbox (replay), else drop it (purge). Audited with the operator.
    fn take_dead(
        &mut self,
        seq: u64,
        operator: &str,
        requeue: bool,
    ) -> Result<Replayed, JournalError> {
        let d = self.load_dead(seq)?;
        let dest = d.destination.clone();
        let id = d.message_id;
        let mut r = self.begin();
        r.ops.remove(rec::seq_key(rec::P_DEAD, seq));
        r.ops.remove(rec::dead_index_key(&dest, id));
        self.uncount(&mut r, Counter::Dead(dest.clone()), 1);
        if requeue {
            let Some(m) = self.get(&rec::message_key(id), &format!("message {id}"))? else {
                return Err(corrupt(
                    format!("dead letter {seq}"),
                    "its message is missing from the journal",
                ));
            };
            // Back on its outbox as it was enqueued, release flag included.
            let release = rec::decode_message(&m)
                .is_ok_and(|(head, _)| matches!(head.retention, Retention::UntilDelivered { .. }));
            let entry = rec::encode_outbox(&d.entry, release)
                .map_err(|e| encode_failed(&format!("outbox entry {id}"), e))?;
            r.ops.insert(rec::outbox_key(&dest, id), entry);
            self.count(&mut r, Counter::Pending(dest.clone()), 1);
        }
        let kind = if requeue { "dlq_replay" } else { "dlq_purge" };
        r.audit(
            self.now_ms(),
            kind,
            &format!("destination={dest} id={id} dead_letter={seq} by={operator}"),
        )?;
        if !requeue {
            // So `gateway messages` tells purged from delivered.
            r.ops
                .insert(trace_index::purged_key(id, &dest), rec::seal_bytes(&[]));
            // A message kept only until delivered is not kept for a purge.
            self.release_if_free(&mut r, id)?;
        }
        self.adopt(r);
        self.wake.insert(dest.clone());
        self.wake.insert(crate::dlq_notify_key(&dest));
        Ok(Replayed {
            seq,
            destination: dest,
            message_id: id,
        })
    }

    /// Remove up to `max` messages received before `cutoff_ms` that no
    /// outbox and no dead letter holds, with their de-dup entries and
    /// journey state (`JOURNEY_NAMESPACE_PREFIX`; audit
    /// events have their own retention: `audit_prune.rs`). Scans from
    /// `after` (exclusive) in id
    /// order; stops at the first message at or after the cutoff
    /// (`reached_end`: the caller starts its next pass from the beginning, so
    /// held messages are looked at again once per pass).
    pub(super) fn prune(
        &mut self,
        cutoff_ms: u64,
        after: u64,
        max: usize,
    ) -> Result<PruneReport, JournalError> {
        let mut pass = Pass {
            cutoff_ms,
            max,
            removes: OpBatch::default(),
            report: PruneReport {
                next_after: after,
                ..Default::default()
            },
        };
        self.prune_messages(&mut pass)?;
        self.prune_released(cutoff_ms, max, &mut pass.removes, &mut pass.report)?;
        let Pass {
            removes, report, ..
        } = pass;
        if report.messages == 0 && report.released_keys == 0 {
            return Ok(report);
        }
        let mut r = self.begin();
        r.ops = removes;
        if report.highest_pruned > self.counted(&r, &Counter::PrunedThroughId) {
            r.counters
                .set(Counter::PrunedThroughId, report.highest_pruned);
        }
        self.count(&mut r, Counter::Pruned, report.messages);
        let released = match report.released_keys {
            0 => String::new(),
            n => format!(" released_keys={n}"),
        };
        r.audit(
            self.now_ms(),
            "retention_prune",
            &format!(
                "messages={} bytes={}{released} cutoff_ms={cutoff_ms}",
                report.messages, report.bytes
            ),
        )?;
        self.adopt(r);
        Ok(report)
    }

    /// The message part of [`Stager::prune`].
    fn prune_messages(&self, pass: &mut Pass) -> Result<(), JournalError> {
        let (cutoff_ms, max, b, report) = (
            pass.cutoff_ms,
            pass.max,
            &mut pass.removes,
            &mut pass.report,
        );
        // Every destination the journal has held messages for, including
        // ones no longer in the config: their entries still pin messages.
        let destinations: Vec<String> = self
            .state
            .destinations()
            .into_iter()
            .map(str::to_string)
            .collect();
        let start = rec::message_key(report.next_after.saturating_add(1));
        // Unless a batch limit stops the scan first, it reaches the end.
        report.reached_end = true;
        for (examined, item) in self.db.range(start..).enumerate() {
            if examined >= max.saturating_mul(4) || report.messages >= max as u64 {
                report.reached_end = false;
                break;
            }
            let (k, v) = item.map_err(|e| map_sled("scan messages to prune".into(), e))?;
            if k.first() != Some(&rec::P_MESSAGE) {
                break;
            }
            let id = rec::seq_of_key(&k).unwrap_or(0);
            if self.staged.staged(&k).is_some_and(|s| s.is_none()) {
                report.next_after = id;
                continue;
            }
            let whole = crate::chunk::resolve_or(self.db, &k, &v, &format!("message {id}"))?;
            let (head, _) = match rec::decode_message(&whole) {
                Ok(m) => m,
                Err(_) => {
                    // Never drop what we cannot read: verify_all reports it.
                    report.kept_held += 1;
                    report.next_after = id;
                    continue;
                }
            };
            if head.received_at_ms >= cutoff_ms {
                break;
            }
            let held = self.is_held(&destinations, id)?;
            report.next_after = id;
            if held {
                // Pending or dead: never pruned; the next pass looks again.
                report.kept_held += 1;
                continue;
            }
            b.remove(&k);
            for d in &destinations {
                let jkey = crate::state::journey_key(d, id);
                if self.get(&jkey, "journey state")?.is_some() {
                    b.remove(jkey);
                }
            }
            let cid = &head.meta.control_id;
            let entry = self.get(&trace_index::control_key(cid, id), "trace index")?;
            trace_index::unindex_ops(b, id, cid, entry.as_deref());
            let dkey = rec::dedup_key(&head.source, &head.meta.dedup);
            if let Some(dv) = self.get(&dkey, "dedup entry")? {
                if rec::open_u64(&dv).ok() == Some(id) {
                    b.remove(dkey);
                }
            }
            report.messages += 1;
            report.bytes += v.len() as u64;
            report.highest_pruned = report.highest_pruned.max(id);
        }
        Ok(())
    }

    /// Whether an outbox entry or a dead letter of any destination holds message `id`.
    fn is_held(&self, destinations: &[String], id: u64) -> Result<bool, JournalError> {
        for d in destinations {
            if self.get(&rec::outbox_key(d, id), "outbox entry")?.is_some()
                || self
                    .get(&rec::dead_index_key(d, id), "dead-letter index")?
                    .is_some()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// One retention step being built: its bounds, the removes so far, and
/// what it found.
struct Pass {
    cutoff_ms: u64,
    max: usize,
    removes: OpBatch,
    report: PruneReport,
}
