//! The reader side of [`Journal`]: messages, the audit trail, quarantine,
//! verification and stats. Reads go straight to sled (never through the
//! writer) and are streamed or paged; counters come from the copy the
//! writer publishes after each commit.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use crate::audit::chain;
use crate::chunk;
use crate::counter::Counter;
use crate::error::{corrupt, map_sled};
use crate::histogram::HistogramSnapshot;
use crate::record;
use crate::{
    AuditEvent, CommitStats, CommitSync, Journal, JournalError, JournalStats, OutboxStats,
    QuarantineEntry, Quarantined, StoredMessage,
};

impl Journal {
    pub fn get(&self, id: u64) -> Result<Option<StoredMessage>, JournalError> {
        let db = self.inner.shared.db()?;
        let v = match chunk::get(&db, &record::message_key(id), &format!("message {id}"))? {
            Some(v) => v,
            None => return Ok(None),
        };
        let (head, raw) =
            record::decode_message(&v).map_err(|why| corrupt(format!("message {id}"), why))?;
        Ok(Some(StoredMessage {
            id,
            received_at_ms: head.received_at_ms,
            source: head.source,
            peer: head.peer,
            meta: head.meta,
            raw: raw.to_vec(),
            ack: head.ack,
        }))
    }

    /// Up to `limit` audit events with `seq > after`, oldest first.
    pub fn audit_events(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, JournalError> {
        let db = self.inner.shared.db()?;
        let start = record::seq_key(record::P_AUDIT, after.map_or(0, |a| a.saturating_add(1)));
        let mut out = Vec::new();
        for item in db.range(start..).take(limit) {
            let (k, v) = item.map_err(|e| map_sled("scan audit event records".into(), e))?;
            if k.first() != Some(&record::P_AUDIT) {
                break;
            }
            let seq = record::seq_of_key(&k).unwrap_or(0);
            let r = chain::decode(&v).map_err(|why| corrupt(format!("audit event {seq}"), why))?;
            out.push(AuditEvent {
                seq,
                at_ms: r.at_ms,
                hash: r.prev.map(|p| chain::hex(&r.hash(seq, &p))),
                prev: r.prev.map(|p| chain::hex(&p)),
                kind: r.kind,
                detail: r.detail,
            });
        }
        Ok(out)
    }

    /// Up to `limit` held quarantine entries with `seq > after`, oldest first.
    pub fn quarantined(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<QuarantineEntry>, JournalError> {
        let db = self.inner.shared.db()?;
        let page = page(
            &db,
            record::P_QUARANTINE,
            after,
            limit,
            "quarantine entry",
            |_: &record::QuarantineRec| true,
        )?;
        Ok(page
            .into_iter()
            .map(|(seq, r)| QuarantineEntry {
                seq,
                original_len: r.original_len,
                item: Quarantined {
                    source: r.source,
                    peer: r.peer,
                    received_at_ms: r.received_at_ms,
                    reason: r.reason,
                    raw: r.raw,
                },
            })
            .collect())
    }

    /// Verify the CRC of every message (streamed). Returns the number of
    /// messages checked and the ids of corrupt ones.
    pub fn verify_all(&self) -> Result<(u64, Vec<u64>), JournalError> {
        let db = self.inner.shared.db()?;
        let mut n = 0;
        let mut bad = Vec::new();
        for item in db.scan_prefix([record::P_MESSAGE]) {
            let (k, v) = item.map_err(|e| map_sled("scan messages".into(), e))?;
            n += 1;
            let whole = chunk::resolve(&db, &k, &v);
            if whole.map_or(true, |v| record::decode_message(&v).is_err()) {
                bad.push(record::seq_of_key(&k).unwrap_or(0));
            }
        }
        Ok((n, bad))
    }

    /// Cheap: counters from memory, one lookup per destination.
    pub fn stats(&self) -> JournalStats {
        let sh = &self.inner.shared;
        let c = match sh.counters.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        let mut per_destination: BTreeMap<String, OutboxStats> = BTreeMap::new();
        for (counter, n) in c.iter() {
            match counter {
                Counter::Pending(d) => outbox(&mut per_destination, d).pending = n,
                Counter::Delivered(d) => outbox(&mut per_destination, d).delivered = n,
                Counter::Dead(d) => outbox(&mut per_destination, d).dead = n,
                Counter::DeadTotal(d) => outbox(&mut per_destination, d).dead_total = n,
                _ => {}
            }
        }
        if let Ok(db) = sh.db() {
            for (d, s) in per_destination.iter_mut() {
                if s.pending == 0 {
                    continue;
                }
                if let Some(Ok((_, v))) = db.scan_prefix(record::outbox_prefix(d)).next() {
                    s.oldest_pending_received_at_ms =
                        record::decode_outbox(&v).ok().map(|e| e.received_at_ms);
                }
            }
        }
        JournalStats {
            messages: c.get(&Counter::Messages),
            duplicates: c.get(&Counter::Duplicates),
            control_id_reuses: c.get(&Counter::ControlIdReuses),
            key_reuses_refused: c.get(&Counter::KeyReusesRefused),
            released: c.get(&Counter::Released),
            quarantined: c.get(&Counter::Quarantined),
            pruned: c.get(&Counter::Pruned),
            bytes_on_disk: sh.usage.bytes_on_disk.load(Ordering::Relaxed),
            disk_percent_used: sh.usage.percent_used.load(Ordering::Relaxed),
            format: sh.format,
            per_destination,
        }
    }

    /// How long ago the writer thread's loop last came round. It wakes at
    /// least every second when idle, so a large value means it is stuck
    /// (the daemon's watchdog then stops pinging systemd).
    pub fn writer_heartbeat_age(&self) -> std::time::Duration {
        let last = self.inner.shared.alive_ms.load(Ordering::Relaxed);
        std::time::Duration::from_millis(self.inner.shared.now_ms().saturating_sub(last))
    }

    /// Group-commit counters (commits = durable syncs of the log).
    pub fn commit_stats(&self) -> CommitStats {
        let sh = &self.inner.shared;
        CommitStats {
            commits: sh.commits.load(Ordering::Relaxed),
            requests: sh.committed_requests.load(Ordering::Relaxed),
            largest_batch: sh.largest_batch.load(Ordering::Relaxed),
            reopens: sh.reopens.load(Ordering::Relaxed),
            sled_syncs: sh.sled_syncs.load(Ordering::Relaxed),
            checkpoints: sh.checkpoints.load(Ordering::Relaxed),
        }
    }

    /// Durations of group commits (WAL append + fdatasync) since open.
    pub fn commit_latency(&self) -> HistogramSnapshot {
        self.inner.shared.commit_latency.snapshot()
    }

    /// What the last successful commit synced (paths, in order).
    pub fn last_commit_sync(&self) -> CommitSync {
        match self.inner.shared.last_sync.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// TEST HOOK: the stored (sealed) record of message `id`.
    #[doc(hidden)]
    pub fn debug_message_record(&self, id: u64) -> Result<Option<Vec<u8>>, JournalError> {
        let db = self.inner.shared.db()?;
        chunk::get(&db, &record::message_key(id), &format!("message {id}"))
    }
}

fn outbox<'a>(m: &'a mut BTreeMap<String, OutboxStats>, d: &str) -> &'a mut OutboxStats {
    m.entry(d.to_string()).or_default()
}

/// Up to `limit` records under one-byte `prefix` + seq with `seq > after`
/// that `keep` accepts, oldest first, decoded (`what` names one in errors).
pub(crate) fn page<T: serde::de::DeserializeOwned>(
    db: &sled::Db,
    prefix: u8,
    after: Option<u64>,
    limit: usize,
    what: &str,
    mut keep: impl FnMut(&T) -> bool,
) -> Result<Vec<(u64, T)>, JournalError> {
    let start = record::seq_key(prefix, after.map_or(0, |a| a.saturating_add(1)));
    let mut out = Vec::new();
    for item in db.range(start..) {
        if out.len() >= limit {
            break;
        }
        let (k, v) = item.map_err(|e| map_sled(format!("scan {what} records"), e))?;
        if k.first() != Some(&prefix) {
            break;
        }
        let seq = record::seq_of_key(&k).unwrap_or(0);
        let v = chunk::resolve_or(db, &k, &v, &format!("{what} {seq}"))?;
        let r: T =
            record::decode_postcard(&v).map_err(|why| corrupt(format!("{what} {seq}"), why))?;
        if keep(&r) {
            out.push((seq, r));
        }
    }
    Ok(out)
}
