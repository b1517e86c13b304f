//! Staging: one request turned into absolute ops (sets and removes) against
//! the tree *as the current group leaves it*, so later requests of a group
//! see the earlier ones (de-dup, delivery state, quarantine eviction).
//!
//! [`Staged`] is the group's ops (its WAL record to be). A request is built
//! in a [`RequestOps`] (its ops, counter changes and audit events) and
//! reaches the group only through [`Stager::adopt`], once every step of it
//! succeeded: all or nothing per request. The request kinds themselves are
//! in `append.rs` (append, quarantine) and `lifecycle.rs` (delivered, dead
//! letter, replay, purge, prune).

use std::collections::{BTreeMap, BTreeSet};

use crate::audit::{chain, ChainHead};
use crate::counter::{Counter, CounterChanges, Counters};
use crate::error::encode_failed;
use crate::quota::SpaceGuard;
use crate::record as rec;
use crate::wal::{Op, OpBatch};
use crate::{JournalConfig, JournalError};

#[cfg(test)]
pub(super) mod fixture;
#[cfg(test)]
mod tests;

/// The current group's ops, not yet in sled: its WAL record.
#[derive(Default)]
pub(crate) struct Staged {
    ops: Vec<Op>,
    /// key -> index in `ops` of the latest op on it.
    latest: BTreeMap<Vec<u8>, usize>,
    /// While a [`Mark`] is set: each key staged since and its previous
    /// `latest` entry, to undo them.
    undo: Option<Vec<(Vec<u8>, Option<usize>)>>,
}

/// Where a batch began staging (see [`Staged::mark`]).
pub(crate) struct Mark {
    ops: usize,
}

impl Staged {
    /// Add ops (one request's, all or nothing: called only once it succeeded).
    pub(crate) fn stage(&mut self, ops: OpBatch) {
        for op in ops.ops {
            let k = match &op {
                Op::Set(k, _) | Op::Remove(k) => k.clone(),
            };
            let prev = self.latest.insert(k.clone(), self.ops.len());
            if let Some(undo) = &mut self.undo {
                undo.push((k, prev));
            }
            self.ops.push(op);
        }
    }

    /// Start a batch of requests that is kept or undone as a whole.
    pub(crate) fn mark(&mut self) -> Mark {
        self.undo = Some(Vec::new());
        Mark {
            ops: self.ops.len(),
        }
    }

    /// Keep everything staged since `mark`.
    pub(crate) fn keep(&mut self, _mark: Mark) {
        self.undo = None;
    }

    /// Undo everything staged since `mark`.
    pub(crate) fn undo(&mut self, mark: Mark) {
        self.ops.truncate(mark.ops);
        for (k, prev) in self.undo.take().unwrap_or_default().into_iter().rev() {
            match prev {
                Some(i) => self.latest.insert(k, i),
                None => self.latest.remove(&k),
            };
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Every op staged, in staging order, superseded ones included.
    #[cfg(test)]
    pub(crate) fn ops(&self) -> std::slice::Iter<'_, Op> {
        self.ops.iter()
    }

    /// Whether `ops[i]` is the latest op on its key.
    fn is_latest(latest: &BTreeMap<Vec<u8>, usize>, i: usize, op: &Op) -> bool {
        let (Op::Set(k, _) | Op::Remove(k)) = op;
        latest.get(k) == Some(&i)
    }

    /// The group's WAL record: the latest op on each key, in staging order.
    /// An op a later one on the same key overrides changes nothing in the
    /// result, so it is neither logged nor applied: a counter, for one, is
    /// written once per group instead of once per request (ops are absolute
    /// sets and removes, so this is the same tree, and the key a group
    /// stages last, `w`, stays last).
    pub(crate) fn effective(&self) -> impl Iterator<Item = &Op> + Clone {
        self.ops
            .iter()
            .enumerate()
            .filter(|(i, op)| Self::is_latest(&self.latest, *i, op))
            .map(|(_, op)| op)
    }

    /// Take [`Staged::effective`]'s ops, in order, leaving the group empty.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Op> + '_ {
        let latest = std::mem::take(&mut self.latest);
        self.undo = None;
        self.ops
            .drain(..)
            .enumerate()
            .filter(move |(i, op)| Self::is_latest(&latest, *i, op))
            .map(|(_, op)| op)
    }

    /// The staged op on `k`: `Some(Some(v))` set, `Some(None)` removed.
    pub(crate) fn staged(&self, k: &[u8]) -> Option<Option<&[u8]>> {
        self.latest.get(k).map(|&i| match &self.ops[i] {
            Op::Set(_, v) => Some(v.as_slice()),
            Op::Remove(_) => None,
        })
    }

    /// The value of `k` as the group leaves it: staged, else in sled.
    pub(crate) fn get(
        &self,
        db: &sled::Db,
        k: &[u8],
        what: &str,
    ) -> Result<Option<Vec<u8>>, JournalError> {
        if let Some(v) = self.staged(k) {
            return Ok(v.map(<[u8]>::to_vec));
        }
        // Resolved: a chunked value (`chunk.rs`) reads as it was written.
        crate::chunk::get(db, k, what)
    }

    /// Staged keys starting with `prefix` that are set, in key order.
    pub(crate) fn staged_sets<'a>(
        &'a self,
        prefix: &'a [u8],
    ) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        self.latest
            .range(prefix.to_vec()..)
            .take_while(move |(k, _)| k.starts_with(prefix))
            .filter_map(|(k, &i)| match &self.ops[i] {
                Op::Set(_, v) => Some((k.as_slice(), v.as_slice())),
                Op::Remove(_) => None,
            })
    }
}

/// One request being built: its ops, its counter changes and the audit
/// seq it has reached. Nothing of it is in the group until adopted.
pub(super) struct RequestOps {
    pub(super) ops: OpBatch,
    pub(super) counters: CounterChanges,
    /// The audit chain's head as this request leaves it.
    audit_head: ChainHead,
}

impl RequestOps {
    /// The op this request has staged on `k`: `Some(Some(v))` set,
    /// `Some(None)` removed (a request stages a handful of ops).
    pub(super) fn staged(&self, k: &[u8]) -> Option<Option<&[u8]>> {
        self.ops.ops.iter().rev().find_map(|op| match op {
            Op::Set(key, v) if key == k => Some(Some(v.as_slice())),
            Op::Remove(key) if key == k => Some(None),
            _ => None,
        })
    }

    /// Add an audit event (`detail` carries no PHI) at the next audit seq.
    pub(super) fn audit(
        &mut self,
        at_ms: u64,
        kind: &str,
        detail: &str,
    ) -> Result<(), JournalError> {
        push_audit(&mut self.ops, &mut self.audit_head, at_ms, kind, detail)
    }
}

/// What staging a request reads and changes: the tree, the group's ops and
/// the outboxes it will wake, the writer's counters and ids, the space
/// guard, the config (quarantine bounds, clock).
pub(super) struct Stager<'a> {
    pub(super) db: &'a sled::Db,
    pub(super) staged: &'a mut Staged,
    pub(super) wake: &'a mut BTreeSet<String>,
    pub(super) state: &'a mut Counters,
    pub(super) space: &'a mut SpaceGuard,
    pub(super) cfg: &'a JournalConfig,
}

impl Stager<'_> {
    /// The value of `k` as the group leaves it (`what` names it in errors).
    pub(super) fn get(&self, k: &[u8], what: &str) -> Result<Option<Vec<u8>>, JournalError> {
        self.staged.get(self.db, k, what)
    }

    /// The value of `k` as request `r` (not yet adopted) leaves it.
    pub(super) fn get_in(
        &self,
        r: &RequestOps,
        k: &[u8],
        what: &str,
    ) -> Result<Option<Vec<u8>>, JournalError> {
        match r.staged(k) {
            Some(v) => Ok(v.map(<[u8]>::to_vec)),
            None => self.get(k, what),
        }
    }

    pub(super) fn now_ms(&self) -> u64 {
        (self.cfg.clock)()
    }

    /// Start building a request.
    pub(super) fn begin(&self) -> RequestOps {
        RequestOps {
            ops: OpBatch::default(),
            counters: CounterChanges::default(),
            audit_head: self.state.audit.head,
        }
    }

    /// `r`'s value of counter `c`.
    pub(super) fn counted(&self, r: &RequestOps, c: &Counter) -> u64 {
        r.counters.get(self.state, c)
    }

    pub(super) fn count(&self, r: &mut RequestOps, c: Counter, n: u64) {
        r.counters.add(self.state, c, n);
    }

    pub(super) fn uncount(&self, r: &mut RequestOps, c: Counter, n: u64) {
        r.counters.sub(self.state, c, n);
    }

    /// Stage the request (its counters last) and adopt its counter values
    /// and audit seq.
    pub(super) fn adopt(&mut self, mut r: RequestOps) {
        r.counters.write(&mut r.ops);
        self.staged.stage(r.ops);
        self.state.audit.head = r.audit_head;
        self.state.apply(r.counters);
    }

    /// A fire-and-forget audit event (`Journal::audit`).
    pub(super) fn audit_event(
        &mut self,
        at_ms: u64,
        kind: &str,
        detail: &str,
    ) -> Result<(), JournalError> {
        let mut r = self.begin();
        r.audit(at_ms, kind, detail)?;
        self.adopt(r);
        Ok(())
    }

    /// Test hook: a raw value under a raw key, or its removal (to inject
    /// corruption or tampering).
    pub(super) fn raw_put(&mut self, k: Vec<u8>, v: Option<Vec<u8>>) {
        let mut r = self.begin();
        match v {
            Some(v) => r.ops.insert(k, v),
            None => r.ops.remove(k),
        }
        self.adopt(r);
    }
}

/// Add the audit event after `head` to `b`, chained to it, and make it the
/// head. Only the writer calls this (its requests are staged one at a
/// time), so seqs and links cannot fork.
pub(crate) fn push_audit(
    b: &mut OpBatch,
    head: &mut ChainHead,
    at_ms: u64,
    kind: &str,
    detail: &str,
) -> Result<(), JournalError> {
    let seq = head.seq + 1;
    let v = chain::encode(seq, at_ms, kind, detail, &head.hash)
        .map_err(|e| encode_failed(&format!("audit event {seq}"), e))?;
    b.insert(&rec::seq_key(rec::P_AUDIT, seq)[..], v);
    *head = ChainHead {
        seq,
        hash: chain::chain_hash(seq, at_ms, kind, detail, &head.hash),
    };
    Ok(())
}
