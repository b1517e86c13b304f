//! The daemon's side of `gateway audit ...`: the audit trail's hash chain
//! checked on request over the admin socket (the chain itself is the
//! journal's: `journal/src/audit/`). See docs/audit.md.

use journal::{ChainHead, Journal};

use super::admin::{AuditStatus, Reply};

/// The audit part of the status report (and so of the fleet heartbeat).
pub fn status(journal: &Journal, max_bytes: u64) -> AuditStatus {
    let u = journal.audit_usage().unwrap_or_default();
    AuditStatus {
        events: u.events,
        bytes: u.approx_bytes,
        max_bytes,
        head: journal.audit_head().to_text(),
    }
}

/// `gateway audit verify [--head SEQ:HASH]`, answered from the journal.
pub fn verify_reply(journal: &Journal, head: Option<&str>) -> Reply {
    let head = match head.map(ChainHead::parse).transpose() {
        Ok(h) => h,
        Err(message) => {
            return Reply::Error {
                message: format!("--head {message}"),
            }
        }
    };
    match journal.audit_verify(head) {
        Ok(r) => Reply::AuditVerify(Box::new(r)),
        Err(e) => Reply::Error {
            message: format!("audit verify: {e}"),
        },
    }
}
