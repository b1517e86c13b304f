//! The message trace index: find a message by its control id or by its
//! patient without scanning the journal, and know where each message went.
//! Written by the writer in the same request (so the same WAL record) as
//! the message; removed with it (retention prune, release).
//!
//! | key | value |
//! | --- | --- |
//! | `i` `c` lp(control_id) id:u64be | [`TraceEntry`]: the patient tag (if any) and the destinations it was routed to |
//! | `i` `p` tag:16 id:u64be | empty: the message names that patient |
//! | `i` `a` lp(authority) | empty: an assigning authority seen (so a search by MRN alone can try each) |
//! | `i` `u` id:u64be lp(destination) | empty: an operator purged the message's dead letter there (so "not pending, not dead" is not "delivered") |
//!
//! The patient tag is opaque to the journal: the gateway makes it, a keyed
//! HMAC-SHA256 of the MRN and its authority with a per-box secret
//! (`gateway::ops::messages_key`), truncated to 16 bytes. No identifier is
//! stored in clear and the tag cannot be reversed without the key. A
//! lookup by control id or tag is one sled range scan: O(log n + hits).

use serde::{Deserialize, Serialize};

use crate::error::{corrupt, map_sled};
use crate::record as rec;
use crate::wal::OpBatch;
use crate::{Journal, JournalError};

/// The first byte of every trace index key.
pub(crate) const P_TRACE: u8 = b'i';
const SUB_CONTROL: u8 = b'c';
const SUB_PATIENT: u8 = b'p';
const SUB_AUTHORITY: u8 = b'a';
const SUB_PURGED: u8 = b'u';

/// Most authorities a search by MRN alone tries (senders use a handful).
pub const AUTHORITIES_MAX: usize = 256;

/// The patient of a message as the gateway keys it: the opaque tag, and
/// the assigning authority it was computed with (not PHI: a namespace such
/// as "ECW"), kept so a search by MRN alone can try each one seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientRef {
    pub tag: [u8; 16],
    pub authority: String,
}

/// What the index keeps per message, under its control id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TraceEntry {
    pub patient: Option<[u8; 16]>,
    /// The outboxes it was put on when received (empty: filtered).
    pub destinations: Vec<String>,
}

/// Where a message stands on one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DestinationState {
    Pending,
    Delivered,
    Dead,
    /// Its dead letter was purged by an operator: never delivered.
    Purged,
}

impl DestinationState {
    pub fn as_str(self) -> &'static str {
        match self {
            DestinationState::Pending => "pending",
            DestinationState::Delivered => "delivered",
            DestinationState::Dead => "dead",
            DestinationState::Purged => "purged",
        }
    }
}

fn push_lp(k: &mut Vec<u8>, s: &[u8]) {
    k.extend_from_slice(&(s.len() as u32).to_be_bytes());
    k.extend_from_slice(s);
}

fn control_prefix(control_id: &str) -> Vec<u8> {
    let mut k = vec![P_TRACE, SUB_CONTROL];
    push_lp(&mut k, control_id.as_bytes());
    k
}

pub(crate) fn control_key(control_id: &str, id: u64) -> Vec<u8> {
    let mut k = control_prefix(control_id);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn patient_prefix(tag: &[u8; 16]) -> Vec<u8> {
    let mut k = vec![P_TRACE, SUB_PATIENT];
    k.extend_from_slice(tag);
    k
}

fn patient_key(tag: &[u8; 16], id: u64) -> Vec<u8> {
    let mut k = patient_prefix(tag);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

pub(crate) fn authority_key(authority: &str) -> Vec<u8> {
    let mut k = vec![P_TRACE, SUB_AUTHORITY];
    push_lp(&mut k, authority.as_bytes());
    k
}

fn purged_prefix(id: u64) -> Vec<u8> {
    let mut k = vec![P_TRACE, SUB_PURGED];
    k.extend_from_slice(&id.to_be_bytes());
    k
}

pub(crate) fn purged_key(id: u64, destination: &str) -> Vec<u8> {
    let mut k = purged_prefix(id);
    push_lp(&mut k, destination.as_bytes());
    k
}

/// The id at the end of a control or patient key.
fn id_of(k: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = k.get(k.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

/// The ops that index message `id` (its control id, patient, and the
/// destinations it goes to). `authority_new`: the patient's authority is
/// not indexed yet (the writer looked).
pub(crate) fn index_ops(
    ops: &mut OpBatch,
    id: u64,
    control_id: &str,
    patient: Option<&PatientRef>,
    authority_new: bool,
    destinations: Vec<String>,
) -> Result<(), postcard::Error> {
    let entry = TraceEntry {
        patient: patient.map(|p| p.tag),
        destinations,
    };
    ops.insert(control_key(control_id, id), rec::encode_postcard(&entry)?);
    if let Some(p) = patient {
        ops.insert(patient_key(&p.tag, id), rec::seal_bytes(&[]));
        if authority_new {
            ops.insert(authority_key(&p.authority), rec::seal_bytes(&[]));
        }
    }
    Ok(())
}

/// The ops that remove message `id`'s index entries, given its control id
/// and the value of its control entry (`None`: a message from before the
/// index; nothing to remove). Purge markers are removed by the caller's
/// scan ([`purged_keys`]).
pub(crate) fn unindex_ops(ops: &mut OpBatch, id: u64, control_id: &str, entry: Option<&[u8]>) {
    let Some(v) = entry else { return };
    ops.remove(control_key(control_id, id));
    if let Ok(e) = rec::decode_postcard::<TraceEntry>(v) {
        if let Some(tag) = e.patient {
            ops.remove(patient_key(&tag, id));
        }
        for d in &e.destinations {
            ops.remove(purged_key(id, d));
        }
    }
}

/// Whether `k` is a well-formed trace key with a valid value (for verify).
pub(crate) fn check(k: &[u8], v: &[u8]) -> Result<(), &'static str> {
    match k.get(1) {
        Some(&SUB_CONTROL) => rec::decode_postcard::<TraceEntry>(v).map(|_| ()),
        Some(&SUB_PATIENT | &SUB_AUTHORITY | &SUB_PURGED) => rec::open(v).map(|_| ()),
        _ => Err("unknown trace index key"),
    }
}

/// One page of ids, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdPage {
    pub ids: Vec<u64>,
    /// More may follow: ask again with `before` = the last id.
    pub more: bool,
}

impl Journal {
    /// Messages with MSH-10 (or the kind's control id) `control_id`, newest
    /// first, with id < `before`; at most `limit`.
    pub fn trace_by_control_id(
        &self,
        control_id: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<IdPage, JournalError> {
        self.trace_ids(control_prefix(control_id), before, limit)
    }

    /// Messages whose patient tag is `tag`, newest first (as above).
    pub fn trace_by_patient(
        &self,
        tag: &[u8; 16],
        before: Option<u64>,
        limit: usize,
    ) -> Result<IdPage, JournalError> {
        self.trace_ids(patient_prefix(tag), before, limit)
    }

    fn trace_ids(
        &self,
        prefix: Vec<u8>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<IdPage, JournalError> {
        let db = self.inner_db()?;
        let mut end = prefix.clone();
        end.extend_from_slice(&before.unwrap_or(u64::MAX).to_be_bytes());
        let mut page = IdPage::default();
        for item in db.range(prefix.clone()..end).rev() {
            let (k, _) = item.map_err(|e| map_sled("read the trace index".into(), e))?;
            if page.ids.len() >= limit {
                page.more = true;
                break;
            }
            if let Some(id) = id_of(&k) {
                page.ids.push(id);
            }
        }
        Ok(page)
    }

    /// The assigning authorities seen with a patient, at most
    /// [`AUTHORITIES_MAX`].
    pub fn trace_authorities(&self) -> Result<Vec<String>, JournalError> {
        let db = self.inner_db()?;
        let mut out = Vec::new();
        for item in db
            .scan_prefix([P_TRACE, SUB_AUTHORITY])
            .take(AUTHORITIES_MAX)
        {
            let (k, _) = item.map_err(|e| map_sled("read the trace index".into(), e))?;
            if let Some(a) = k.get(6..) {
                out.push(String::from_utf8_lossy(a).into_owned());
            }
        }
        Ok(out)
    }

    /// Where message `id` (control id `control_id`) stands on each
    /// destination it was routed to, in name order; `None` when the index
    /// has no entry for it (received before the index existed). Empty:
    /// filtered (no route took it).
    pub fn trace_states(
        &self,
        id: u64,
        control_id: &str,
    ) -> Result<Option<Vec<(String, DestinationState)>>, JournalError> {
        let db = self.inner_db()?;
        let what = format!("trace index entry of message {id}");
        let Some(v) = db
            .get(control_key(control_id, id))
            .map_err(|e| map_sled(what.clone(), e))?
        else {
            return Ok(None);
        };
        let entry: TraceEntry = rec::decode_postcard(&v).map_err(|why| corrupt(what, why))?;
        let mut out = Vec::with_capacity(entry.destinations.len());
        for d in entry.destinations {
            let has = |k: Vec<u8>| {
                db.contains_key(k)
                    .map_err(|e| map_sled(format!("read the state of message {id}"), e))
            };
            let state = if has(rec::outbox_key(&d, id))? {
                DestinationState::Pending
            } else if has(rec::dead_index_key(&d, id))? {
                DestinationState::Dead
            } else if has(purged_key(id, &d))? {
                DestinationState::Purged
            } else {
                DestinationState::Delivered
            };
            out.push((d, state));
        }
        Ok(Some(out))
    }

    /// Message ids from `before` (exclusive; `None`: the newest) down, at
    /// most `limit`, for searches the index does not answer (type, source,
    /// time). The caller filters and pages.
    pub fn message_ids_before(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<u64>, JournalError> {
        let db = self.inner_db()?;
        let end = rec::message_key(before.unwrap_or(u64::MAX));
        let mut out = Vec::with_capacity(limit.min(4096));
        for item in db.range(rec::message_key(0)..end).rev().take(limit) {
            let (k, _) = item.map_err(|e| map_sled("scan messages".into(), e))?;
            if let Some(id) = rec::seq_of_key(&k) {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Message `id`'s dead letter on `destination`, if it is dead there.
    pub fn dead_letter_of(
        &self,
        destination: &str,
        id: u64,
    ) -> Result<Option<crate::DeadLetter>, JournalError> {
        let db = self.inner_db()?;
        let what = format!("dead-letter index {destination}/{id}");
        let Some(v) = db
            .get(rec::dead_index_key(destination, id))
            .map_err(|e| map_sled(what.clone(), e))?
        else {
            return Ok(None);
        };
        let seq = rec::open_u64(&v).map_err(|why| corrupt(what, why))?;
        self.dead_letter_by_seq(seq)
    }

    /// The seq just before the first audit event at or after `at_ms` (for
    /// `audit_events(after, ..)`), by a binary search over the kept events
    /// (their times rise with their seqs); `None`: start at the oldest.
    pub fn audit_seq_before(&self, at_ms: u64) -> Result<Option<u64>, JournalError> {
        let db = self.inner_db()?;
        let read = |k: &[u8]| -> Result<Option<(u64, u64)>, JournalError> {
            let seq = rec::seq_of_key(k).unwrap_or(0);
            match db
                .get(k)
                .map_err(|e| map_sled("read the audit trail".into(), e))?
            {
                Some(v) => crate::audit::chain::decode(&v)
                    .map(|r| Some((seq, r.at_ms)))
                    .map_err(|why| corrupt(format!("audit event {seq}"), why)),
                None => Ok(None),
            }
        };
        let first = db.scan_prefix([rec::P_AUDIT]).keys().next();
        let last = db.scan_prefix([rec::P_AUDIT]).keys().next_back();
        let (Some(Ok(first)), Some(Ok(last))) = (first, last) else {
            return Ok(None);
        };
        let (mut lo, mut hi) = (
            rec::seq_of_key(&first).unwrap_or(0),
            rec::seq_of_key(&last).unwrap_or(0),
        );
        // Invariant: every event before `lo` is older than `at_ms`.
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match read(&rec::seq_key(rec::P_AUDIT, mid))? {
                Some((_, t)) if t < at_ms => lo = mid + 1,
                _ => hi = mid,
            }
        }
        Ok(lo.checked_sub(1))
    }

    fn inner_db(&self) -> Result<sled::Db, JournalError> {
        self.inner.shared.db()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{msg, open, runtime};
    use crate::{Appended, GiveUp, Policy};

    fn patient(tag: u8) -> PatientRef {
        PatientRef {
            tag: [tag; 16],
            authority: "ECW".into(),
        }
    }

    /// Index, look up, follow the states, prune: the whole life of an entry.
    #[test]
    fn index_follows_the_message_from_append_to_prune() {
        let dir = tempfile::tempdir().unwrap();
        runtime().block_on(async {
            let j = open(dir.path());
            let mut ids = Vec::new();
            for (cid, p, dests) in [
                (
                    "C1",
                    Some(patient(1)),
                    vec![("lab", "none"), ("cloud", "fhir")],
                ),
                ("C2", Some(patient(1)), vec![("lab", "none")]),
                ("C1", None, vec![]),
            ] {
                let mut m = msg(cid, &format!("body {}", ids.len()), &dests);
                m.received_at_ms = 1_000 + ids.len() as u64;
                let Appended::Stored { id } =
                    j.append_traced(m, Policy::default(), p).await.unwrap()
                else {
                    panic!("not stored")
                };
                ids.push(id);
            }
            // Control id C1: two messages (a reuse), newest first, paged.
            let page = j.trace_by_control_id("C1", None, 1).unwrap();
            assert_eq!((page.ids.clone(), page.more), (vec![ids[2]], true));
            let page = j.trace_by_control_id("C1", Some(ids[2]), 10).unwrap();
            assert_eq!((page.ids, page.more), (vec![ids[0]], false));
            assert!(j.trace_by_control_id("C", None, 10).unwrap().ids.is_empty());
            let by_patient = j.trace_by_patient(&[1; 16], None, 10).unwrap().ids;
            assert_eq!(by_patient, vec![ids[1], ids[0]]);
            assert_eq!(j.trace_authorities().unwrap(), vec!["ECW".to_string()]);

            // States: pending; delivered on one, dead then purged on the other.
            use DestinationState::*;
            let st = |id| {
                j.trace_states(id, if id == ids[1] { "C2" } else { "C1" })
                    .unwrap()
            };
            assert_eq!(
                st(ids[0]),
                Some(vec![("cloud".into(), Pending), ("lab".into(), Pending)])
            );
            assert_eq!(st(ids[2]), Some(vec![]), "filtered: no destination");
            j.mark_delivered("lab", ids[0]).await.unwrap();
            let entry = j.pending_entries("cloud", None, 10).unwrap()[0]
                .entry
                .clone();
            let why = GiveUp {
                attempts: 3,
                first_attempt_ms: 1,
                last_attempt_ms: 2,
                last_error: "http 500".into(),
            };
            let seq = j.dead_letter("cloud", ids[0], entry, why).await.unwrap();
            assert_eq!(
                st(ids[0]),
                Some(vec![("cloud".into(), Dead), ("lab".into(), Delivered)])
            );
            j.purge_dead_letter(seq, "alice").await.unwrap();
            assert_eq!(
                st(ids[0]),
                Some(vec![("cloud".into(), Purged), ("lab".into(), Delivered)])
            );

            // Journey state goes with its message, and only with it.
            let journey = |d: &str| format!("{}{d}", crate::JOURNEY_NAMESPACE_PREFIX);
            j.put_state(&journey("cloud"), &ids[0].to_be_bytes(), b"h")
                .await
                .unwrap();
            j.put_state(&journey("lab"), &ids[1].to_be_bytes(), b"h")
                .await
                .unwrap();

            // Prune: message 1 and 3 are free and old; message 2 is pending.
            let r = j.prune(u64::MAX, 0, 100).await.unwrap();
            assert_eq!(r.messages, 2);
            let kept = |d: &str, id: u64| j.get_state(&journey(d), &id.to_be_bytes()).unwrap();
            assert_eq!(kept("cloud", ids[0]), None);
            assert_eq!(kept("lab", ids[1]), Some(b"h".to_vec()));
            assert_eq!(j.trace_by_control_id("C1", None, 10).unwrap().ids, vec![]);
            assert_eq!(
                j.trace_by_patient(&[1; 16], None, 10).unwrap().ids,
                vec![ids[1]]
            );
            assert_eq!(st(ids[0]), None);
            j.close().await.unwrap();
        });
        let report = crate::verify::verify(&dir.path().join("j")).unwrap();
        assert!(report.is_clean(), "{:?}", report.findings);
        // Left: message 2's control and patient entries, the authority.
        assert_eq!(report.records.get("trace_index"), Some(&3));
    }

    #[test]
    fn a_traced_batch_indexes_each_message_under_its_patient() {
        let dir = tempfile::tempdir().unwrap();
        runtime().block_on(async {
            let j = open(dir.path());
            let batch = [
                ("B1", Some(patient(7))),
                ("B2", None),
                ("B3", Some(patient(8))),
            ]
            .into_iter()
            .map(|(cid, p)| (msg(cid, cid, &[("lab", "none")]), Policy::default(), p))
            .collect();
            let out = j.append_batch_traced(batch, Vec::new()).await.unwrap();
            let ids: Vec<u64> = out
                .iter()
                .map(|a| match a {
                    Appended::Stored { id } => *id,
                    other => panic!("{other:?}"),
                })
                .collect();
            assert_eq!(
                j.trace_by_patient(&[7; 16], None, 10).unwrap().ids,
                vec![ids[0]]
            );
            assert_eq!(
                j.trace_by_patient(&[8; 16], None, 10).unwrap().ids,
                vec![ids[2]]
            );
            assert_eq!(
                j.trace_by_control_id("B2", None, 10).unwrap().ids,
                vec![ids[1]]
            );
            j.close().await.unwrap();
        });
    }

    #[test]
    fn keys_do_not_collide_and_ids_round_trip() {
        assert_ne!(control_key("a", 1), control_key("a\0", 1));
        assert_eq!(id_of(&control_key("X1", 42)), Some(42));
        let tag = [7u8; 16];
        assert_eq!(id_of(&patient_key(&tag, 9)), Some(9));
        assert!(control_key("X1", 42).starts_with(&control_prefix("X1")));
        assert!(!control_key("X10", 42).starts_with(&control_prefix("X1")));
    }

    #[test]
    fn unindex_removes_what_index_wrote() {
        let p = PatientRef {
            tag: [1; 16],
            authority: "ECW".into(),
        };
        let mut ops = OpBatch::default();
        index_ops(&mut ops, 5, "C5", Some(&p), true, vec!["lab".into()]).unwrap();
        assert_eq!(ops.ops.len(), 3);
        let entry = rec::encode_postcard(&TraceEntry {
            patient: Some([1; 16]),
            destinations: vec!["lab".into()],
        })
        .unwrap();
        let mut gone = OpBatch::default();
        unindex_ops(&mut gone, 5, "C5", Some(&entry));
        assert_eq!(gone.ops.len(), 3, "control, patient, purge marker");
    }
}
