//! Staging the audit trail's own retention: the oldest events go when they
//! are older than the audit cutoff or when more than `keep_newest` are
//! kept (the size cap), oldest first, at most `max` per request. The
//! chain's new anchor (the last pruned event's seq and chain hash) is
//! written in the same request and named in its `audit_prune` event, so
//! the kept trail still verifies.

use super::staging::Stager;
use crate::audit::{chain, ChainHead};
use crate::counter::Counter;
use crate::error::map_sled;
use crate::record as rec;
use crate::{JournalError, PruneReport};

impl Stager<'_> {
    pub(super) fn prune_audit(
        &mut self,
        cutoff_ms: u64,
        keep_newest: Option<u64>,
        max: usize,
    ) -> Result<PruneReport, JournalError> {
        let mut report = PruneReport {
            reached_end: true,
            ..Default::default()
        };
        let mut r = self.begin();
        let mut anchor = self.state.audit.anchor;
        // Kept events: the seqs between the anchor and the head.
        let mut kept = self.state.audit.head.seq.saturating_sub(anchor.seq);
        let mut by_size = 0u64;
        for item in self.db.scan_prefix([rec::P_AUDIT]) {
            if report.audit_events >= max as u64 {
                report.reached_end = false;
                break;
            }
            let (k, v) = item.map_err(|e| map_sled("scan audit trail to prune".into(), e))?;
            let seq = rec::seq_of_key(&k).unwrap_or(0);
            // A record that does not decode is never pruned: verify names it.
            let Ok(a) = chain::decode(&v) else { break };
            let old = a.at_ms < cutoff_ms;
            let over = keep_newest.is_some_and(|n| kept > n);
            if !old && !over {
                break;
            }
            by_size += u64::from(!old);
            anchor = ChainHead {
                seq,
                hash: a.hash(seq, &anchor.hash),
            };
            r.ops.remove(&k);
            report.audit_events += 1;
            report.highest_audit = seq;
            kept = kept.saturating_sub(1);
        }
        if report.audit_events == 0 {
            return Ok(report);
        }
        r.ops
            .insert(vec![rec::P_AUDIT_ANCHOR], chain::encode_anchor(&anchor));
        if report.highest_audit > self.counted(&r, &Counter::PrunedThroughAudit) {
            r.counters
                .set(Counter::PrunedThroughAudit, report.highest_audit);
        }
        r.audit(
            self.now_ms(),
            "audit_prune",
            &format!(
                "events={} over_size_cap={by_size} anchor={} cutoff_ms={cutoff_ms}",
                report.audit_events,
                anchor.to_text()
            ),
        )?;
        self.adopt(r);
        self.state.audit.anchor = anchor;
        Ok(report)
    }
}
