//! Writer-side handlers for a message's life after it is enqueued: dead
//! letter, replay, purge, and retention pruning. Each stages its ops (and
//! counter changes and an audit event) atomically in the current group, like
//! `append` and `delivered`.

use std::collections::BTreeSet;

use super::super::record::{self as rec, DeadLetterRec, OutboxRec};
use super::super::wal::OpBatch;
use super::super::{JournalError, PruneReport, Replayed};
use super::{corrupt, map_sled, push_audit, Delta, Writer};

/// Counter that keeps ids from being reused after the newest messages are
/// pruned (ids come from the largest stored key at open).
pub(crate) const PRUNED_THROUGH_ID: &str = "pruned_through_id";
pub(crate) const PRUNED_THROUGH_AUDIT: &str = "pruned_through_audit";

impl Writer {
    /// Move `d.message_id` from `d.destination`'s outbox to the dead-letter
    /// queue. Returns the dead letter's seq. Idempotent per (destination,
    /// message): a message already dead there returns the existing seq.
    pub(super) fn dead_letter(
        &mut self,
        db: &sled::Db,
        d: DeadLetterRec,
        notify: &mut BTreeSet<String>,
    ) -> Result<u64, JournalError> {
        let dest = d.destination.clone();
        let id = d.message_id;
        let index_key = rec::dead_index_key(&dest, id);
        if let Some(v) =
            self.staged
                .get(db, &index_key, &format!("dead-letter index {dest}/{id}"))?
        {
            return rec::open_u64(&v)
                .map_err(|why| corrupt(format!("dead-letter index {dest}/{id}"), why));
        }
        let okey = rec::outbox_key(&dest, id);
        let was_pending = self
            .staged
            .get(db, &okey, &format!("outbox {dest} entry {id}"))?
            .is_some();
        let seq = self.state.next_dead;
        let value =
            rec::encode_postcard(&d).map_err(|e| encode_err(&format!("dead letter {seq}"), e))?;
        let mut delta = Delta::new(&self.state);
        let mut b = OpBatch::default();
        if was_pending {
            b.remove(okey);
            delta.add(&rec::pending_counter(&dest), -1);
        }
        b.insert(&rec::seq_key(rec::P_DEAD, seq)[..], value);
        b.insert(index_key, rec::seal_u64(seq));
        delta.add(&rec::dead_counter(&dest), 1);
        delta.add(&rec::dead_total_counter(&dest), 1);
        let mut next_audit = self.state.next_audit;
        push_audit(
            &mut b,
            &mut next_audit,
            self.shared.now_ms(),
            "dead_letter",
            &format!(
                "destination={dest} id={id} dead_letter={seq} attempts={}",
                d.attempts
            ),
        )?;
        let counters = delta.finish(&mut b);
        self.stage_request(b, counters, next_audit);
        self.state.next_dead = seq + 1;
        notify.insert(dest);
        Ok(seq)
    }

    fn load_dead(&self, db: &sled::Db, seq: u64) -> Result<DeadLetterRec, JournalError> {
        let v = self
            .staged
            .get(
                db,
                &rec::seq_key(rec::P_DEAD, seq),
                &format!("dead letter {seq}"),
            )?
            .ok_or_else(|| JournalError::NotFound {
                what: format!("dead letter {seq}"),
            })?;
        rec::decode_postcard(&v).map_err(|why| corrupt(format!("dead letter {seq}"), why))
    }

    /// Put dead letter `seq` back on its outbox (at its original position:
    /// outbox keys are message ids, so replays keep received order).
    pub(super) fn replay(
        &mut self,
        db: &sled::Db,
        seq: u64,
        operator: &str,
        notify: &mut BTreeSet<String>,
    ) -> Result<Replayed, JournalError> {
        self.take_dead(db, seq, operator, true, notify)
    }

    /// Drop dead letter `seq` for good (the message itself is then pruned
    /// with the delivered ones once nothing else holds it).
    pub(super) fn purge(
        &mut self,
        db: &sled::Db,
        seq: u64,
        operator: &str,
        notify: &mut BTreeSet<String>,
    ) -> Result<Replayed, JournalError> {
        self.take_dead(db, seq, operator, false, notify)
    }

    /// Remove dead letter `seq`; with `requeue`, put its message back on
    /// the outbox (replay), else drop it (purge). Audited with the operator.
    fn take_dead(
        &mut self,
        db: &sled::Db,
        seq: u64,
        operator: &str,
        requeue: bool,
        notify: &mut BTreeSet<String>,
    ) -> Result<Replayed, JournalError> {
        let d = self.load_dead(db, seq)?;
        let dest = d.destination.clone();
        let id = d.message_id;
        let mut delta = Delta::new(&self.state);
        let mut b = OpBatch::default();
        b.remove(rec::seq_key(rec::P_DEAD, seq));
        b.remove(rec::dead_index_key(&dest, id));
        delta.add(&rec::dead_counter(&dest), -1);
        if requeue {
            if self
                .staged
                .get(db, &rec::message_key(id), &format!("message {id}"))?
                .is_none()
            {
                return Err(corrupt(
                    format!("dead letter {seq}"),
                    "its message is missing from the journal",
                ));
            }
            let entry = rec::encode_postcard(&d.entry)
                .map_err(|e| encode_err(&format!("outbox entry {id}"), e))?;
            b.insert(rec::outbox_key(&dest, id), entry);
            delta.add(&rec::pending_counter(&dest), 1);
        }
        let kind = if requeue { "dlq_replay" } else { "dlq_purge" };
        let mut next_audit = self.state.next_audit;
        push_audit(
            &mut b,
            &mut next_audit,
            self.shared.now_ms(),
            kind,
            &format!("destination={dest} id={id} dead_letter={seq} by={operator}"),
        )?;
        let counters = delta.finish(&mut b);
        self.stage_request(b, counters, next_audit);
        notify.insert(dest.clone());
        notify.insert(super::super::dlq_notify_key(&dest));
        Ok(Replayed {
            seq,
            destination: dest,
            message_id: id,
        })
    }

    /// Remove up to `max` messages received before `cutoff_ms` that no
    /// outbox and no dead letter holds, with their de-dup entries, and audit
    /// events older than the cutoff. Scans from `after` (exclusive) in id
    /// order; stops at the first message at or after the cutoff
    /// (`reached_end`: the caller starts its next pass from the beginning, so
    /// held messages are looked at again once per pass).
    pub(super) fn prune(
        &mut self,
        db: &sled::Db,
        cutoff_ms: u64,
        after: u64,
        max: usize,
    ) -> Result<PruneReport, JournalError> {
        let destinations = self.known_destinations();
        let mut report = PruneReport {
            next_after: after,
            ..Default::default()
        };
        let mut b = OpBatch::default();
        let start = rec::message_key(after.saturating_add(1));
        // Unless a batch limit stops the scan first, it reaches the end.
        report.reached_end = true;
        for (examined, item) in db.range(start..).enumerate() {
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
            let (head, _) = match rec::decode_message(&v) {
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
            let mut held = false;
            for d in &destinations {
                if self
                    .staged
                    .get(db, &rec::outbox_key(d, id), "outbox entry")?
                    .is_some()
                    || self
                        .staged
                        .get(db, &rec::dead_index_key(d, id), "dead-letter index")?
                        .is_some()
                {
                    held = true;
                    break;
                }
            }
            report.next_after = id;
            if held {
                // Pending or dead: never pruned; the next pass looks again.
                report.kept_held += 1;
                continue;
            }
            b.remove(&k);
            let dkey = rec::dedup_key(&head.source, &head.meta.dedup);
            if let Some(dv) = self.staged.get(db, &dkey, "dedup entry")? {
                if rec::open_u64(&dv).ok() == Some(id) {
                    b.remove(dkey);
                }
            }
            report.messages += 1;
            report.bytes += v.len() as u64;
            report.highest_pruned = report.highest_pruned.max(id);
        }
        // Audit events older than the cutoff (their keys are time-ordered).
        for item in db.scan_prefix([rec::P_AUDIT]) {
            if report.audit_events >= max as u64 {
                break;
            }
            let (k, v) = item.map_err(|e| map_sled("scan audit trail to prune".into(), e))?;
            let at = rec::decode_postcard::<rec::AuditRec>(&v)
                .map(|a| a.at_ms)
                .unwrap_or(u64::MAX);
            if at >= cutoff_ms {
                break;
            }
            report.highest_audit = report.highest_audit.max(rec::seq_of_key(&k).unwrap_or(0));
            b.remove(&k);
            report.audit_events += 1;
        }

        if report.messages == 0 && report.audit_events == 0 {
            return Ok(report);
        }
        let mut delta = Delta::new(&self.state);
        if report.highest_pruned > delta.get(PRUNED_THROUGH_ID) {
            delta.set(PRUNED_THROUGH_ID, report.highest_pruned);
        }
        if report.highest_audit > delta.get(PRUNED_THROUGH_AUDIT) {
            delta.set(PRUNED_THROUGH_AUDIT, report.highest_audit);
        }
        delta.add("pruned", report.messages as i64);
        let mut next_audit = self.state.next_audit;
        push_audit(
            &mut b,
            &mut next_audit,
            self.shared.now_ms(),
            "retention_prune",
            &format!(
                "messages={} bytes={} audit_events={} cutoff_ms={cutoff_ms}",
                report.messages, report.bytes, report.audit_events
            ),
        )?;
        let counters = delta.finish(&mut b);
        self.stage_request(b, counters, next_audit);
        Ok(report)
    }

    /// Every destination the journal has held messages for (from counters),
    /// including ones no longer in the config: their entries still pin messages.
    fn known_destinations(&self) -> Vec<String> {
        let mut out = BTreeSet::new();
        for k in self.state.named.keys() {
            for p in ["pending/", "dead/", "delivered/"] {
                if let Some(d) = k.strip_prefix(p) {
                    out.insert(d.to_string());
                }
            }
        }
        out.into_iter().collect()
    }
}

fn encode_err(what: &str, e: postcard::Error) -> JournalError {
    JournalError::Io {
        context: format!("encode {what}"),
        source: std::io::Error::other(e.to_string()),
    }
}

/// The outbox entry to store for a new message.
pub(crate) fn outbox_entry(received_at_ms: u64, patient_lane: u64, transform: &str) -> OutboxRec {
    OutboxRec {
        received_at_ms,
        patient_lane,
        transform: transform.to_string(),
    }
}
