//! Appends with a [`Policy`], and atomic batches: several messages (each
//! with its de-dup entry, outbox entries, counters) and state changes in
//! ONE WAL record, so after a crash all or none of them exist. This is how
//! a bulk export commits N resources together with "lines committed in
//! file F = n", or a folder pickup a file together with "F was taken".

use crate::state::StateOp;
use crate::trace_index::PatientRef;
use crate::writer::Req;
use crate::{Appended, Journal, JournalError, NewMessage, Policy};

#[cfg(test)]
mod tests;

/// Most messages in one [`Journal::append_batch`].
pub const BATCH_MAX_MESSAGES: usize = 1024;
/// Most state changes in one [`Journal::append_batch`].
pub const BATCH_MAX_STATE_OPS: usize = 1024;
/// Most bytes in one [`Journal::append_batch`]: messages' raw bytes and
/// ACKs plus state keys and values. The writer holds a batch (twice: the
/// request and its encoded records) in memory until it is committed.
pub const BATCH_MAX_BYTES: usize = 32 * 1024 * 1024;

/// What one batch request carries to the writer.
pub(crate) struct BatchReq {
    pub messages: Vec<(NewMessage, Policy)>,
    /// The patient of each message (`trace_index.rs`), by position; empty
    /// when none is indexed.
    pub patients: Vec<Option<PatientRef>>,
    pub state: Vec<StateOp>,
}

impl BatchReq {
    /// Whether it stores anything (so must be admitted by the space guard).
    pub(crate) fn needs_space(&self) -> bool {
        !self.messages.is_empty()
            || self
                .state
                .iter()
                .any(|op| matches!(op, StateOp::Put { .. }))
    }

    /// Within the batch bounds and every state op within its own, or why not.
    fn check(&self) -> Result<(), JournalError> {
        let too_many = |what: &str, n: usize, max: usize| {
            JournalError::Invalid {
            reason: format!(
                "a journal batch holds at most {max} {what}, this one {n}: split it into smaller batches"
            ),
        }
        };
        if self.messages.len() > BATCH_MAX_MESSAGES {
            return Err(too_many(
                "messages",
                self.messages.len(),
                BATCH_MAX_MESSAGES,
            ));
        }
        if self.state.len() > BATCH_MAX_STATE_OPS {
            return Err(too_many(
                "state changes",
                self.state.len(),
                BATCH_MAX_STATE_OPS,
            ));
        }
        for op in &self.state {
            op.check()?;
        }
        let bytes: usize = self
            .messages
            .iter()
            .map(|(m, _)| m.raw.len() + m.ack.len())
            .chain(self.state.iter().map(StateOp::size))
            .fold(0, usize::saturating_add);
        if bytes > BATCH_MAX_BYTES {
            return Err(too_many("bytes", bytes, BATCH_MAX_BYTES));
        }
        Ok(())
    }
}

impl Journal {
    /// [`Journal::append`] with a retention and key-reuse policy (the
    /// defaults are exactly `append`). Returns only once durable.
    pub async fn append_with(
        &self,
        msg: NewMessage,
        policy: Policy,
    ) -> Result<Appended, JournalError> {
        self.call(|tx| Req::Append(Box::new((msg, policy, None)), tx))
            .await
    }

    /// [`Journal::append_with`], indexing the message under its patient
    /// too (`trace_index.rs`: the gateway's keyed tag, never the MRN).
    pub async fn append_traced(
        &self,
        msg: NewMessage,
        policy: Policy,
        patient: Option<PatientRef>,
    ) -> Result<Appended, JournalError> {
        self.call(|tx| Req::Append(Box::new((msg, policy, patient)), tx))
            .await
    }

    /// Append `messages` (each with its policy) and apply `state` in one
    /// commit: durable on return, and after a crash either all of them
    /// exist or none. One answer per message, in order (a message of the
    /// batch may be a `Duplicate` of an earlier one in it, or `KeyReused`:
    /// the others are stored all the same). If any part
    /// fails (journal full, a corrupt record) nothing of the batch is
    /// stored. At most [`BATCH_MAX_MESSAGES`] messages,
    /// [`BATCH_MAX_STATE_OPS`] state changes and [`BATCH_MAX_BYTES`] bytes.
    pub async fn append_batch(
        &self,
        messages: Vec<(NewMessage, Policy)>,
        state: Vec<StateOp>,
    ) -> Result<Vec<Appended>, JournalError> {
        self.batch(BatchReq {
            messages,
            patients: Vec::new(),
            state,
        })
        .await
    }

    /// [`Journal::append_batch`], indexing each message under its patient
    /// too (as [`Journal::append_traced`] does).
    pub async fn append_batch_traced(
        &self,
        messages: Vec<(NewMessage, Policy, Option<PatientRef>)>,
        state: Vec<StateOp>,
    ) -> Result<Vec<Appended>, JournalError> {
        let (messages, patients) = messages
            .into_iter()
            .map(|(m, p, patient)| ((m, p), patient))
            .unzip();
        self.batch(BatchReq {
            messages,
            patients,
            state,
        })
        .await
    }

    async fn batch(&self, b: BatchReq) -> Result<Vec<Appended>, JournalError> {
        b.check()?;
        if b.messages.is_empty() && b.state.is_empty() {
            return Ok(Vec::new());
        }
        self.call(|tx| Req::Batch(Box::new(b), tx)).await
    }
}
