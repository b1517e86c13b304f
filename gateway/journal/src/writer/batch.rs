//! Staging a batch: its messages (each staged as an append, so later ones
//! see earlier ones) and its state changes, kept or undone as a whole. The
//! undo covers everything a request changes in the writer: the group's
//! ops, the counters and next ids, the bytes counted against the quota and
//! the outboxes to wake.

use super::staging::Stager;
use crate::batch::BatchReq;
use crate::record as rec;
use crate::state::StateOp;
use crate::{Appended, JournalError};

#[cfg(test)]
mod tests;

impl Stager<'_> {
    /// Stage batch `b`: all of it, or (on any error) nothing.
    pub(super) fn batch(&mut self, b: BatchReq, fs_pct: u8) -> Result<Vec<Appended>, JournalError> {
        let mark = self.staged.mark();
        let state = self.state.clone();
        let space = self.space.mark();
        let wake = self.wake.clone();
        match self.batch_parts(&b, fs_pct) {
            Ok(out) => {
                self.staged.keep(mark);
                Ok(out)
            }
            Err(e) => {
                self.staged.undo(mark);
                *self.state = state;
                self.space.restore(space);
                *self.wake = wake;
                Err(e)
            }
        }
    }

    fn batch_parts(&mut self, b: &BatchReq, fs_pct: u8) -> Result<Vec<Appended>, JournalError> {
        let mut out = Vec::with_capacity(b.messages.len());
        for (i, (m, policy)) in b.messages.iter().enumerate() {
            let patient = b.patients.get(i).and_then(Option::as_ref);
            out.push(self.append(m, *policy, patient, fs_pct)?);
        }
        self.state_ops(&b.state, fs_pct)?;
        Ok(out)
    }

    /// Stage state changes as one request (puts admitted by the space
    /// guard; a delete of a missing key stages nothing).
    fn state_ops(&mut self, ops: &[StateOp], fs_pct: u8) -> Result<(), JournalError> {
        let mut r = self.begin();
        let mut bytes = 0u64;
        for op in ops {
            let k = rec::state_key(op.namespace(), op.key());
            match op {
                StateOp::Put { value, .. } => {
                    let v = rec::seal_bytes(value);
                    bytes += (k.len() + v.len()) as u64;
                    r.ops.insert(k, v);
                }
                StateOp::Delete { namespace, .. } => {
                    let what = format!("state {namespace:?}");
                    if self.get_in(&r, &k, &what)?.is_some() {
                        r.ops.remove(k);
                    }
                }
            }
        }
        if r.ops.ops.is_empty() {
            return Ok(());
        }
        if bytes > 0 {
            self.space
                .admit(fs_pct, bytes)
                .map_err(|reason| JournalError::Full { reason })?;
        }
        self.adopt(r);
        self.space.add(bytes);
        Ok(())
    }
}
