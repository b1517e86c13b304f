//! The journal's persisted counters: typed names ([`Counter`]), their
//! in-memory copy ([`Counters`], with the next ids) and one request's
//! changes to them ([`CounterChanges`]).
//!
//! Each counter is stored under `c` + its name, in the same WAL record as
//! the change it counts. [`Counter::key`] and [`Counter::from_key`] are the
//! only place that knows those names; they are the on-disk format (journals
//! written before this type existed use the same bytes), so a name here
//! never changes.

use std::collections::BTreeMap;

use crate::record::{self as rec, P_COUNTER};
use crate::wal::OpBatch;

/// One persisted counter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Counter {
    /// Messages stored, ever (`messages`).
    Messages,
    /// Retransmissions answered with the first ACK (`duplicates`).
    Duplicates,
    /// Same de-dup key, different bytes: stored as new (`control_id_reuses`).
    ControlIdReuses,
    /// Same de-dup key, different bytes, refused by the message's policy
    /// (`key_reuses_refused`).
    KeyReusesRefused,
    /// Messages removed on delivery by their retention policy, ever (`released`).
    Released,
    /// Inputs quarantined, ever (`quarantined`).
    Quarantined,
    /// Quarantine entries held now (`q_entries`).
    QuarantineEntries,
    /// Bytes of the quarantine entries held now (`q_bytes`).
    QuarantineBytes,
    /// Delivered messages removed by retention, ever (`pruned`).
    Pruned,
    /// Highest message id retention removed, or released on delivery
    /// (`pruned_through_id`): keeps ids from being reused when the newest
    /// messages are removed (ids come from the largest stored key at open).
    PrunedThroughId,
    /// Highest audit seq retention removed (`pruned_through_audit`).
    PrunedThroughAudit,
    /// Entries on the destination's outbox now (`pending/<dest>`).
    Pending(String),
    /// Messages delivered to the destination, ever (`delivered/<dest>`).
    Delivered(String),
    /// Messages in the destination's dead-letter queue now (`dead/<dest>`).
    Dead(String),
    /// Messages ever dead-lettered on the destination; replays do not
    /// decrement it (`dead_total/<dest>`).
    DeadTotal(String),
}

/// The per-destination counters' name prefixes.
const PENDING: &str = "pending/";
const DELIVERED: &str = "delivered/";
const DEAD: &str = "dead/";
const DEAD_TOTAL: &str = "dead_total/";

/// Every counter that is not per destination.
const FIXED: [Counter; 11] = [
    Counter::Messages,
    Counter::Duplicates,
    Counter::ControlIdReuses,
    Counter::KeyReusesRefused,
    Counter::Released,
    Counter::Quarantined,
    Counter::QuarantineEntries,
    Counter::QuarantineBytes,
    Counter::Pruned,
    Counter::PrunedThroughId,
    Counter::PrunedThroughAudit,
];

/// Makes a per-destination counter from the destination's name.
type PerDestination = fn(String) -> Counter;

impl Counter {
    /// The name part of the key: a fixed name, or a prefix and the destination.
    fn name(&self) -> (&'static str, &str) {
        match self {
            Counter::Messages => ("messages", ""),
            Counter::Duplicates => ("duplicates", ""),
            Counter::ControlIdReuses => ("control_id_reuses", ""),
            Counter::KeyReusesRefused => ("key_reuses_refused", ""),
            Counter::Released => ("released", ""),
            Counter::Quarantined => ("quarantined", ""),
            Counter::QuarantineEntries => ("q_entries", ""),
            Counter::QuarantineBytes => ("q_bytes", ""),
            Counter::Pruned => ("pruned", ""),
            Counter::PrunedThroughId => ("pruned_through_id", ""),
            Counter::PrunedThroughAudit => ("pruned_through_audit", ""),
            Counter::Pending(d) => (PENDING, d),
            Counter::Delivered(d) => (DELIVERED, d),
            Counter::Dead(d) => (DEAD, d),
            Counter::DeadTotal(d) => (DEAD_TOTAL, d),
        }
    }

    /// The sled key: `c` + name.
    pub(crate) fn key(&self) -> Vec<u8> {
        let (fixed, dest) = self.name();
        let mut k = Vec::with_capacity(1 + fixed.len() + dest.len());
        k.push(P_COUNTER);
        k.extend_from_slice(fixed.as_bytes());
        k.extend_from_slice(dest.as_bytes());
        k
    }

    /// The counter a sled key names; `None` for a name this version does
    /// not know (or a key that is not a counter's).
    pub(crate) fn from_key(k: &[u8]) -> Option<Counter> {
        let name = std::str::from_utf8(k.strip_prefix(&[P_COUNTER])?).ok()?;
        let per_destination: [(&str, PerDestination); 4] = [
            (PENDING, Counter::Pending),
            (DELIVERED, Counter::Delivered),
            (DEAD, Counter::Dead),
            (DEAD_TOTAL, Counter::DeadTotal),
        ];
        for (prefix, make) in per_destination {
            if let Some(d) = name.strip_prefix(prefix) {
                return Some(make(d.to_string()));
            }
        }
        FIXED.iter().find(|c| c.name().0 == name).cloned()
    }
}

/// The counters as of the last staged request (the writer's) or the last
/// commit (the copy readers see), plus the next ids, which are derived from
/// the largest stored keys at open, not stored.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counters {
    values: BTreeMap<Counter, u64>,
    pub next_id: u64,
    /// The audit chain: its anchor and head (the next seq is the head's + 1).
    pub audit: crate::audit::Chain,
    pub next_q: u64,
    pub next_dead: u64,
}

impl Counters {
    pub(crate) fn get(&self, c: &Counter) -> u64 {
        self.values.get(c).copied().unwrap_or(0)
    }

    /// Set a counter read from disk.
    pub(crate) fn load(&mut self, c: Counter, n: u64) {
        self.values.insert(c, n);
    }

    /// Adopt one request's changes (after it was staged).
    pub(crate) fn apply(&mut self, changes: CounterChanges) {
        self.values.extend(changes.new);
    }

    /// Every counter, in key order of the enum.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Counter, u64)> {
        self.values.iter().map(|(c, n)| (c, *n))
    }

    /// Entries on every outbox.
    pub(crate) fn pending_total(&self) -> u64 {
        self.iter()
            .filter(|(c, _)| matches!(c, Counter::Pending(_)))
            .map(|(_, n)| n)
            .sum()
    }

    /// Every destination the journal has held messages for (pending,
    /// delivered or dead), including ones no longer in the config.
    pub(crate) fn destinations(&self) -> std::collections::BTreeSet<&str> {
        self.values
            .keys()
            .filter_map(|c| match c {
                Counter::Pending(d) | Counter::Delivered(d) | Counter::Dead(d) => Some(d.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// One request's counter changes: new absolute values, written to the
/// request's ops and adopted by [`Counters::apply`] only once the request
/// is staged.
#[derive(Debug, Default)]
pub(crate) struct CounterChanges {
    new: BTreeMap<Counter, u64>,
}

impl CounterChanges {
    /// The value as changed so far (else `base`'s).
    pub(crate) fn get(&self, base: &Counters, c: &Counter) -> u64 {
        self.new.get(c).copied().unwrap_or_else(|| base.get(c))
    }

    pub(crate) fn set(&mut self, c: Counter, n: u64) {
        self.new.insert(c, n);
    }

    pub(crate) fn add(&mut self, base: &Counters, c: Counter, n: u64) {
        let v = self.get(base, &c).saturating_add(n);
        self.set(c, v);
    }

    pub(crate) fn sub(&mut self, base: &Counters, c: Counter, n: u64) {
        let v = self.get(base, &c).saturating_sub(n);
        self.set(c, v);
    }

    /// Set every changed counter in `b`.
    pub(crate) fn write(&self, b: &mut OpBatch) {
        for (c, n) in &self.new {
            b.insert(c.key(), rec::seal_u64(*n));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind() -> Vec<Counter> {
        let d = || "cloud/fhir".to_string();
        let mut all = FIXED.to_vec();
        all.extend([
            Counter::Pending(d()),
            Counter::Delivered(d()),
            Counter::Dead(d()),
            Counter::DeadTotal(d()),
        ]);
        all
    }

    /// The on-disk names, byte for byte: journals written before the enum
    /// existed must open with the same counters.
    #[test]
    fn keys_are_the_on_disk_names() {
        let want: [&[u8]; 15] = [
            b"cmessages",
            b"cduplicates",
            b"ccontrol_id_reuses",
            b"ckey_reuses_refused",
            b"creleased",
            b"cquarantined",
            b"cq_entries",
            b"cq_bytes",
            b"cpruned",
            b"cpruned_through_id",
            b"cpruned_through_audit",
            b"cpending/cloud/fhir",
            b"cdelivered/cloud/fhir",
            b"cdead/cloud/fhir",
            b"cdead_total/cloud/fhir",
        ];
        for (c, k) in every_kind().iter().zip(want) {
            assert_eq!(c.key(), k, "{c:?}");
        }
    }

    #[test]
    fn from_key_inverts_key() {
        for c in every_kind() {
            assert_eq!(Counter::from_key(&c.key()), Some(c.clone()), "{c:?}");
        }
        // `dead_total/x` is not `dead/` + "_total/x"... and vice versa.
        assert_eq!(
            Counter::from_key(b"cdead/_total/x"),
            Some(Counter::Dead("_total/x".into()))
        );
        assert_eq!(Counter::from_key(b"cmessagesx"), None);
        assert_eq!(Counter::from_key(b"mmessages"), None);
        assert_eq!(Counter::from_key(b"c\xff"), None);
    }

    #[test]
    fn changes_saturate_and_apply_only_when_adopted() {
        let mut base = Counters::default();
        base.load(Counter::Pending("a".into()), 2);
        let mut ch = CounterChanges::default();
        ch.sub(&base, Counter::Pending("a".into()), 5);
        ch.add(&base, Counter::Messages, 1);
        ch.add(&base, Counter::Messages, 1);
        assert_eq!(base.get(&Counter::Pending("a".into())), 2);
        assert_eq!(ch.get(&base, &Counter::Pending("a".into())), 0);
        let mut b = OpBatch::default();
        ch.write(&mut b);
        assert_eq!(b.ops.len(), 2);
        base.apply(ch);
        assert_eq!(base.get(&Counter::Messages), 2);
        assert_eq!(base.pending_total(), 0);
        assert_eq!(
            base.destinations().into_iter().collect::<Vec<_>>(),
            vec!["a"]
        );
    }
}
