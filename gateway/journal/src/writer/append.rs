//! Staging the inbound requests: a new message (de-dup, control id reuse
//! stored or refused by its policy, outbox entries) and a quarantined input
//! (bounded, oldest evicted). Both are admitted by the space guard first.

use std::collections::{BTreeMap, BTreeSet};

use super::release::Released;
use super::staging::{RequestOps, Stager};
use crate::counter::Counter;
use crate::error::{corrupt, encode_failed, map_sled};
use crate::record::{self as rec, OutboxRec, QuarantineRec};
use crate::trace_index::{self, PatientRef};
use crate::{Appended, JournalError, KeyReuse, NewMessage, Policy, Quarantined, Retention};

/// Largest raw prefix kept for a quarantined input.
pub const QUARANTINE_RAW_MAX: usize = 64 * 1024;

/// What the de-dup index says of a new message.
enum Seen {
    /// No message with its key (or that message was pruned).
    New,
    /// Same key and the same bytes: a retransmission of `id`.
    Duplicate { id: u64, first_ack: Vec<u8> },
    /// Same key, different bytes: the sender reused the control id of `first`.
    Reuse { first: u64 },
}

impl Stager<'_> {
    /// Stage message `m` under `policy` (or count it as a duplicate or a
    /// refused key reuse). `fs_pct`: the filesystem use the group measured.
    pub(super) fn append(
        &mut self,
        m: &NewMessage,
        policy: Policy,
        patient: Option<&PatientRef>,
        fs_pct: u8,
    ) -> Result<Appended, JournalError> {
        let dkey = rec::dedup_key(&m.source, &m.meta.dedup);
        let reuse_of = match self.seen(&dkey, m)? {
            Seen::New => None,
            Seen::Reuse { first } if policy.key_reuse == KeyReuse::Refuse => {
                self.count_alone(Counter::KeyReusesRefused);
                log::warn!(
                    "journal: refused a reused key on source {} (control id {}, held by message {first}): nothing stored",
                    m.source,
                    m.meta.control_id
                );
                return Ok(Appended::KeyReused { id: first });
            }
            Seen::Reuse { first } => Some(first),
            Seen::Duplicate { id, first_ack } => {
                self.count_alone(Counter::Duplicates);
                log::info!(
                    "journal: duplicate of message {id} on listener {} (control id {})",
                    m.source,
                    m.meta.control_id
                );
                return Ok(Appended::Duplicate { id, first_ack });
            }
        };

        let incoming = (m.raw.len() + m.ack.len() + 256) as u64;
        self.space
            .admit(fs_pct, incoming)
            .map_err(|reason| JournalError::Full { reason })?;

        let id = self.state.next_id;
        let h = &m.meta;
        // Kept only until delivered and going nowhere: released in its own
        // append, so its bytes are never written.
        let released_now = match policy.retention {
            Retention::UntilDelivered { keep_dedup } if m.destinations.is_empty() => {
                Some(keep_dedup)
            }
            _ => None,
        };
        let release = matches!(policy.retention, Retention::UntilDelivered { .. });
        let mut r = self.begin();
        let mut rec_len = 0;
        if released_now.is_none() {
            let record = rec::encode_message(
                m.received_at_ms,
                &m.source,
                &m.peer,
                h,
                &m.ack,
                &m.raw,
                policy.retention,
            )
            .map_err(|e| encode_failed(&format!("message {id}"), e))?;
            rec_len = record.len() as u64;
            r.ops.insert(&rec::message_key(id)[..], record);
            r.ops.insert(&dkey, rec::seal_u64(id));
        }
        let dests = self.enqueue(&mut r, m, id, release)?;
        if released_now.is_none() {
            self.trace(&mut r, id, &h.control_id, patient, &dests)?;
        }
        self.count(&mut r, Counter::Messages, 1);
        if let Some(first) = reuse_of {
            self.count(&mut r, Counter::ControlIdReuses, 1);
            let detail = format!(
                "listener={} control_id={} first_id={first} new_id={id}",
                m.source, h.control_id
            );
            r.audit(self.now_ms(), "control_id_reuse", &detail)?;
            log::warn!(
                "journal: control id reuse on listener {} (control id {}, first message {first}, new message {id})",
                m.source,
                h.control_id
            );
        }
        if let Some(keep_dedup) = released_now {
            let gone = Released {
                id,
                received_at_ms: m.received_at_ms,
                source: &m.source,
                dedup_key: dkey,
                control_id: &h.control_id,
                raw: &m.raw,
                ack: &m.ack,
            };
            rec_len = self.release_message(&mut r, gone, keep_dedup, true)?;
        }
        self.adopt(r);
        self.state.next_id = id + 1;
        self.space.add(rec_len);
        self.wake.extend(dests);
        Ok(Appended::Stored { id })
    }

    /// Index message `id` for `gateway messages` (`trace_index.rs`).
    fn trace(
        &self,
        r: &mut RequestOps,
        id: u64,
        control_id: &str,
        patient: Option<&PatientRef>,
        dests: &BTreeSet<String>,
    ) -> Result<(), JournalError> {
        let fresh = match patient {
            Some(p) => self
                .get_in(r, &trace_index::authority_key(&p.authority), "trace index")?
                .is_none(),
            None => false,
        };
        let dests = dests.iter().cloned().collect();
        trace_index::index_ops(&mut r.ops, id, control_id, patient, fresh, dests)
            .map_err(|e| encode_failed(&format!("trace index of message {id}"), e))
    }

    /// A request that only counts one more `c`.
    fn count_alone(&mut self, c: Counter) {
        let mut r = self.begin();
        self.count(&mut r, c, 1);
        self.adopt(r);
    }

    /// Look `m`'s de-dup key up (staged first, then sled; a released
    /// message is looked up by what it left, [`rec::ReleasedRec`]).
    fn seen(&self, dkey: &[u8], m: &NewMessage) -> Result<Seen, JournalError> {
        let Some(v) = self.get(dkey, "dedup index")? else {
            return Ok(Seen::New);
        };
        let first = rec::open_u64(&v).map_err(|why| {
            corrupt(
                format!(
                    "dedup entry for source {} control id {}",
                    m.source, m.meta.control_id
                ),
                why,
            )
        })?;
        let Some(mv) = self.get(&rec::message_key(first), &format!("message {first}"))? else {
            return self.seen_released(first, m);
        };
        let (head, raw) =
            rec::decode_message(&mv).map_err(|why| corrupt(format!("message {first}"), why))?;
        Ok(if raw == m.raw.as_slice() {
            Seen::Duplicate {
                id: first,
                first_ack: head.ack,
            }
        } else {
            Seen::Reuse { first }
        })
    }

    /// `m` against released message `first`: its length and SHA-256. No
    /// released record: the message was pruned, the key is free.
    fn seen_released(&self, first: u64, m: &NewMessage) -> Result<Seen, JournalError> {
        let what = format!("released message {first}");
        let Some(v) = self.get(&rec::seq_key(rec::P_RELEASED, first), &what)? else {
            return Ok(Seen::New);
        };
        let gone: rec::ReleasedRec = rec::decode_postcard(&v).map_err(|why| corrupt(what, why))?;
        Ok(
            if gone.raw_len == m.raw.len() as u64 && gone.raw_sha256 == rec::raw_digest(&m.raw) {
                Seen::Duplicate {
                    id: first,
                    first_ack: gone.ack,
                }
            } else {
                Seen::Reuse { first }
            },
        )
    }

    /// One outbox entry per destination of `m` (the first route's transform
    /// wins), counted as pending; `release` marks them as holding a message
    /// kept only until delivered. Returns the destinations to wake.
    fn enqueue(
        &self,
        r: &mut RequestOps,
        m: &NewMessage,
        id: u64,
        release: bool,
    ) -> Result<BTreeSet<String>, JournalError> {
        let mut dests: BTreeMap<&str, &str> = BTreeMap::new();
        for e in &m.destinations {
            dests
                .entry(e.destination.as_str())
                .or_insert(e.transform.as_str());
        }
        for (d, transform) in &dests {
            let entry = OutboxRec {
                received_at_ms: m.received_at_ms,
                patient_lane: m.patient_lane,
                transform: transform.to_string(),
            };
            let v = rec::encode_outbox(&entry, release)
                .map_err(|e| encode_failed(&format!("outbox entry {id}"), e))?;
            r.ops.insert(rec::outbox_key(d, id), v);
            self.count(r, Counter::Pending(d.to_string()), 1);
        }
        Ok(dests.into_keys().map(str::to_string).collect())
    }

    /// Keep rejected input `q` (raw truncated), evicting the oldest entries
    /// past the bounds; audited.
    pub(super) fn quarantine(&mut self, q: Quarantined, fs_pct: u8) -> Result<(), JournalError> {
        let cfg = self.cfg;
        let original_len = q.raw.len() as u64;
        let keep = QUARANTINE_RAW_MAX.min(cfg.quarantine_max_bytes.min(usize::MAX as u64) as usize);
        self.space
            .admit(fs_pct, keep.min(q.raw.len()) as u64 + 256)
            .map_err(|reason| JournalError::Full { reason })?;
        let mut raw = q.raw;
        raw.truncate(keep);
        let seq = self.state.next_q;
        let record = rec::encode_postcard(&QuarantineRec {
            source: q.source.clone(),
            peer: q.peer,
            received_at_ms: q.received_at_ms,
            reason: q.reason.clone(),
            original_len,
            raw,
        })
        .map_err(|e| encode_failed(&format!("quarantine entry {seq}"), e))?;
        let mut r = self.begin();
        let mut held = Held {
            entries: self.counted(&r, &Counter::QuarantineEntries),
            bytes: self.counted(&r, &Counter::QuarantineBytes),
        };
        let store = cfg.quarantine_max_entries > 0;
        if store {
            held.entries += 1;
            held.bytes += record.len() as u64;
        }
        let evicted = self.evict_quarantined(&mut r, &mut held)?;
        let rec_len = record.len() as u64;
        if store {
            r.ops
                .insert(&rec::seq_key(rec::P_QUARANTINE, seq)[..], record);
        }
        r.counters.set(Counter::QuarantineEntries, held.entries);
        r.counters.set(Counter::QuarantineBytes, held.bytes);
        self.count(&mut r, Counter::Quarantined, 1);
        let detail = format!(
            "listener={} seq={seq} original_bytes={original_len} evicted={evicted} reason={}",
            q.source, q.reason
        );
        r.audit(self.now_ms(), "quarantine", &detail)?;
        self.adopt(r);
        self.state.next_q = seq + 1;
        self.space.add(rec_len);
        log::warn!(
            "journal: quarantined input {seq} from listener {} ({original_len} bytes, evicted {evicted})",
            q.source
        );
        Ok(())
    }

    /// Remove the oldest quarantine entries (streamed) until `held` is
    /// within both bounds. Returns how many were evicted.
    fn evict_quarantined(&self, r: &mut RequestOps, held: &mut Held) -> Result<u64, JournalError> {
        let (max_entries, max_bytes) = (
            self.cfg.quarantine_max_entries as u64,
            self.cfg.quarantine_max_bytes,
        );
        let within = |h: &Held| h.entries <= max_entries && h.bytes <= max_bytes;
        let mut evicted = 0u64;
        if within(held) {
            return Ok(0);
        }
        // Stored entries (as this group left them), then entries staged
        // by this group (newer seqs, so this is oldest first).
        let mut seen_in_sled: BTreeSet<Vec<u8>> = BTreeSet::new();
        for item in self.db.scan_prefix([rec::P_QUARANTINE]) {
            if within(held) {
                break;
            }
            let (k, v) = item.map_err(|e| map_sled("scan quarantine".into(), e))?;
            let len = match self.staged.staged(&k) {
                Some(None) => continue, // evicted earlier in this group
                Some(Some(sv)) => sv.len(),
                // A chunked entry (`chunk.rs`) counts as what was written.
                None => crate::chunk::value_len(&k, &v),
            };
            seen_in_sled.insert(k.to_vec());
            r.ops.remove(&k);
            held.forget(len);
            evicted += 1;
        }
        for (k, v) in self.staged.staged_sets(&[rec::P_QUARANTINE]) {
            if within(held) {
                break;
            }
            if seen_in_sled.contains(k) {
                continue;
            }
            r.ops.remove(k);
            held.forget(v.len());
            evicted += 1;
        }
        Ok(evicted)
    }
}

/// Quarantine entries held and their bytes, as a request changes them.
struct Held {
    entries: u64,
    bytes: u64,
}

impl Held {
    fn forget(&mut self, len: usize) {
        self.entries = self.entries.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(len as u64);
    }
}
