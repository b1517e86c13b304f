//! The daemon's side of `gateway audit ...`: the audit trail's hash chain
//! checked on request over the admin socket (the chain itself is the
//! journal's: `journal/src/audit/`), and the audit of admin requests: who
//! asked (`peer.rs`), what, and every view of PHI; and live forwarding to
//! a syslog collector (`syslog.rs`, `syslog_format.rs`). See docs/audit.md.

pub mod peer;
pub mod syslog;
pub mod syslog_format;

use journal::{ChainHead, Journal};

use super::admin::{AuditStatus, Reply, Request};
use crate::config::AdminConfig;
use peer::Peer;

/// Check and record an admin-socket request: `Ok` with the request and
/// who asked (uid, user name, pid, as the kernel says); `Err` with the
/// refusal's text. Both outcomes are audit events.
pub fn admit(
    journal: &Journal,
    peer: std::io::Result<Peer>,
    access: &AdminConfig,
    req: Result<Request, serde_json::Error>,
) -> Result<(Result<Request, serde_json::Error>, String), String> {
    let what = match &req {
        Ok(r) => r.audit_text(),
        Err(_) => "cmd=unreadable".into(),
    };
    let peer = match peer {
        Ok(p) => p,
        Err(e) => {
            let _ = journal.audit(
                "admin_refused",
                &format!("{what} by=unknown (no peer credentials: {e})"),
            );
            return Err(format!(
                "refused: the daemon cannot tell who you are (SO_PEERCRED: {e})"
            ));
        }
    };
    let who = match peer.pid {
        Some(pid) => format!("{} pid {pid}", peer.who()),
        None => peer.who(),
    };
    if let Err(message) = peer::authorise(&peer, access) {
        log::warn!(target: "gateway::admin", "admin request refused: {what} by {who}");
        let _ = journal.audit("admin_refused", &format!("{what} by={who}"));
        return Err(message);
    }
    let _ = journal.audit("admin_request", &format!("{what} by={who}"));
    Ok((req, who))
}

/// Audit what a reply showed: a view of a message's content (PHI) names
/// the message and who saw it, never the content.
pub fn after(journal: &Journal, who: &str, reply: &Reply) {
    if let Reply::DeadLetterDetail {
        item,
        message: Some(m),
    } = reply
    {
        if m.raw.is_some() {
            let _ = journal.audit(
                "phi_view",
                &format!(
                    "what=dlq_show_raw dead_letter={} message={} control_id={} by={who}",
                    item.seq, item.message_id, m.control_id
                ),
            );
        }
    }
}

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

/// Most events one export page carries.
const EXPORT_PAGE: usize = 1000;

/// One page of `gateway audit export`.
pub fn export_reply(
    journal: &Journal,
    after: Option<u64>,
    since_ms: Option<u64>,
    limit: usize,
) -> Reply {
    let limit = limit.clamp(1, EXPORT_PAGE);
    match journal.audit_events(after, limit) {
        Ok(page) => {
            let next_after = (page.len() == limit)
                .then(|| page.last().map(|e| e.seq))
                .flatten();
            let items = page
                .into_iter()
                .filter(|e| since_ms.is_none_or(|s| e.at_ms >= s))
                .collect();
            Reply::AuditEvents { items, next_after }
        }
        Err(e) => Reply::Error {
            message: format!("audit export: {e}"),
        },
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
