//! The journal API for delivery: reading outbox entries with their lanes,
//! the dead-letter queue (dead letter, list, show, replay, purge), and
//! retention pruning. Mutations go through the writer thread (durable on
//! return, audited in the same group); reads are streamed pages.

use crate::error::{corrupt, map_sled};
use crate::record::{self, DeadLetterRec, OutboxRec};
use crate::writer::{self, Answer, Req};
use crate::{Journal, JournalError, PruneReport, Replayed};

/// The [`Journal::outbox_notify`] key woken when an operator replays or
/// purges one of `destination`'s dead letters (its deliverer then releases
/// held lanes and re-reads its outbox).
pub fn dlq_notify_key(destination: &str) -> String {
    format!("\u{0}dlq/{destination}")
}

/// A pending outbox entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEntry {
    pub id: u64,
    pub entry: OutboxRec,
}

/// A dead letter as shown to operators.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeadLetter {
    /// The dead letter's own id (`gateway dlq show SEQ`).
    pub seq: u64,
    pub destination: String,
    pub message_id: u64,
    pub received_at_ms: u64,
    pub transform: String,
    /// Never serialized: the lane is an unkeyed hash of the MRN, so it
    /// stays out of every reply and output (`dlq list --json`).
    #[serde(skip)]
    pub patient_lane: u64,
    pub attempts: u32,
    pub first_attempt_ms: u64,
    pub last_attempt_ms: u64,
    pub dead_at_ms: u64,
    pub last_error: String,
}

impl DeadLetter {
    fn from_rec(seq: u64, r: DeadLetterRec) -> Self {
        DeadLetter {
            seq,
            destination: r.destination,
            message_id: r.message_id,
            received_at_ms: r.entry.received_at_ms,
            transform: r.entry.transform,
            patient_lane: r.entry.patient_lane,
            attempts: r.attempts,
            first_attempt_ms: r.first_attempt_ms,
            last_attempt_ms: r.last_attempt_ms,
            dead_at_ms: r.dead_at_ms,
            last_error: r.last_error,
        }
    }
}

/// What the deliverer knows when it gives up on a message.
#[derive(Debug, Clone)]
pub struct GiveUp {
    pub attempts: u32,
    pub first_attempt_ms: u64,
    pub last_attempt_ms: u64,
    pub last_error: String,
}

pub(crate) fn unexpected(what: &str) -> JournalError {
    JournalError::Corrupt {
        context: format!("journal writer answered {what} with the wrong reply kind"),
    }
}

impl Journal {
    async fn ask(
        &self,
        make: impl FnOnce(writer::Reply<Answer>) -> Req,
    ) -> Result<Answer, JournalError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(make(tx))?;
        rx.await.unwrap_or(Err(JournalError::Closed))
    }

    /// How many dead-letter replays/purges have been committed since open
    /// (any destination): a deliverer re-reads its held lanes when it changes.
    pub fn dlq_changes(&self) -> u64 {
        self.inner
            .shared
            .dlq_changes
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// The id the next appended message will get (as of the last commit).
    /// A deliverer that saw the same value at its last read knows nothing
    /// was enqueued since, whatever happened to the wake-up notifications.
    pub fn next_message_id(&self) -> u64 {
        match self.inner.shared.counters.lock() {
            Ok(g) => g.next_id,
            Err(p) => p.into_inner().next_id,
        }
    }

    /// Up to `limit` pending entries of `destination` with id > `after`, ascending.
    pub fn pending_entries(
        &self,
        destination: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<PendingEntry>, JournalError> {
        let db = self.inner.shared.db()?;
        let prefix = record::outbox_prefix(destination);
        let start = match after {
            Some(u64::MAX) => return Ok(Vec::new()),
            Some(a) => record::outbox_key(destination, a + 1),
            None => prefix.clone(),
        };
        let mut out = Vec::with_capacity(limit.min(4096));
        for item in db.range(start..) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(|e| map_sled(format!("scan outbox {destination}"), e))?;
            if !k.starts_with(&prefix) {
                break;
            }
            let id = match record::outbox_id(&k) {
                Some(id) if k.len() == prefix.len() + 8 => id,
                _ => {
                    return Err(corrupt(
                        format!("outbox {destination} key"),
                        "malformed key",
                    ))
                }
            };
            let entry = record::decode_outbox(&v)
                .map_err(|why| corrupt(format!("outbox {destination} entry {id}"), why))?;
            out.push(PendingEntry { id, entry });
        }
        Ok(out)
    }

    /// Move message `id` from `destination`'s outbox to the dead-letter
    /// queue (durable on return). Returns the dead letter's seq.
    pub async fn dead_letter(
        &self,
        destination: &str,
        id: u64,
        entry: OutboxRec,
        why: GiveUp,
    ) -> Result<u64, JournalError> {
        let rec = DeadLetterRec {
            destination: destination.to_string(),
            message_id: id,
            entry,
            attempts: why.attempts,
            first_attempt_ms: why.first_attempt_ms,
            last_attempt_ms: why.last_attempt_ms,
            dead_at_ms: self.inner.shared.now_ms(),
            last_error: why.last_error,
        };
        match self.ask(|tx| Req::DeadLetter(Box::new(rec), tx)).await? {
            Answer::Seq(s) => Ok(s),
            _ => Err(unexpected("dead_letter")),
        }
    }

    /// Up to `limit` dead letters with seq > `after`, oldest first,
    /// optionally only `destination`'s.
    pub fn dead_letters(
        &self,
        destination: Option<&str>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, JournalError> {
        let db = self.inner.shared.db()?;
        let page = crate::read::page(
            &db,
            record::P_DEAD,
            after,
            limit,
            "dead letter",
            |r: &DeadLetterRec| destination.is_none_or(|d| d == r.destination),
        )?;
        Ok(page
            .into_iter()
            .map(|(seq, r)| DeadLetter::from_rec(seq, r))
            .collect())
    }

    pub fn dead_letter_by_seq(&self, seq: u64) -> Result<Option<DeadLetter>, JournalError> {
        let db = self.inner.shared.db()?;
        match crate::chunk::get(
            &db,
            &record::seq_key(record::P_DEAD, seq),
            &format!("dead letter {seq}"),
        )? {
            None => Ok(None),
            Some(v) => {
                let r: DeadLetterRec = record::decode_postcard(&v)
                    .map_err(|why| corrupt(format!("dead letter {seq}"), why))?;
                Ok(Some(DeadLetter::from_rec(seq, r)))
            }
        }
    }

    /// Put dead letter `seq` back on its outbox. `operator` is recorded in the audit trail.
    pub async fn replay_dead_letter(
        &self,
        seq: u64,
        operator: &str,
    ) -> Result<Replayed, JournalError> {
        let who = operator.to_string();
        match self.ask(|tx| Req::Replay(seq, who, tx)).await? {
            Answer::Replayed(r) => Ok(r),
            _ => Err(unexpected("replay")),
        }
    }

    /// Delete dead letter `seq` (audited).
    pub async fn purge_dead_letter(
        &self,
        seq: u64,
        operator: &str,
    ) -> Result<Replayed, JournalError> {
        let who = operator.to_string();
        match self.ask(|tx| Req::Purge(seq, who, tx)).await? {
            Answer::Replayed(r) => Ok(r),
            _ => Err(unexpected("purge")),
        }
    }

    /// One bounded retention step: see `PruneReport`.
    pub async fn prune(
        &self,
        cutoff_ms: u64,
        after: u64,
        max: usize,
    ) -> Result<PruneReport, JournalError> {
        match self.ask(|tx| Req::Prune(cutoff_ms, after, max, tx)).await? {
            Answer::Pruned(r) => Ok(r),
            _ => Err(unexpected("prune")),
        }
    }
}
