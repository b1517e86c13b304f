//! The daemon's side of `gateway dlq list|show|replay|purge`: dead-letter
//! queue requests from the admin socket, answered from the journal. Every
//! replay and purge is a journal write with an audit event naming the
//! operator.

use super::admin::{MessageSummary, Reply, Request};
use crate::ops::clock;
use journal::{DeadLetter, Journal, JournalError, Replayed};

/// Dead letters moved per bulk request page.
const PAGE: usize = 512;
/// Most entries one list reply carries.
const MAX_LIST: usize = 1000;

pub async fn answer(journal: &Journal, req: Request) -> Result<Reply, JournalError> {
    match req {
        Request::Status
        | Request::ExportRun { .. }
        | Request::ExportStatus { .. }
        | Request::ExportCancel { .. }
        | Request::AuditVerify { .. }
        | Request::AuditExport { .. }
        | Request::MessagesSearch(_)
        | Request::MessagesShow { .. } => Ok(Reply::Error {
            message: "status, exports, audit and messages are answered by the admin server".into(),
        }),
        Request::DlqList {
            destination,
            after,
            limit,
        } => {
            let limit = limit.clamp(1, MAX_LIST);
            let mut items = journal.dead_letters(destination.as_deref(), after, limit + 1)?;
            let more = items.len() > limit;
            items.truncate(limit);
            Ok(Reply::DeadLetters { items, more })
        }
        Request::DlqShow { seq, raw } => {
            let item = journal
                .dead_letter_by_seq(seq)?
                .ok_or_else(|| JournalError::NotFound {
                    what: format!("dead letter {seq} (see `gateway dlq list`)"),
                })?;
            let message = journal.get(item.message_id)?.map(|m| MessageSummary {
                message_type: m.meta.message_type.clone(),
                control_id: m.meta.control_id.clone(),
                listener: m.source.clone(),
                received_at: clock::iso8601(m.received_at_ms),
                bytes: m.raw.len(),
                raw: raw.then(|| String::from_utf8_lossy(&m.raw).replace('\r', "\n")),
            });
            Ok(Reply::DeadLetterDetail {
                item: Box::new(item),
                message,
            })
        }
        Request::DlqReplay {
            seq,
            destination,
            operator,
        } => {
            let targets = select(journal, seq, destination.as_deref(), |_| true)?;
            let mut items = Vec::with_capacity(targets.len());
            for d in targets {
                items.push(journal.replay_dead_letter(d.seq, &operator).await?);
            }
            log_moved("replayed", &items, &operator);
            Ok(Reply::Moved { items })
        }
        Request::DlqPurge {
            seq,
            older_than_ms,
            destination,
            operator,
        } => {
            let cutoff = older_than_ms.map(|age| clock::unix_ms().saturating_sub(age));
            let targets = select(journal, seq, destination.as_deref(), |d| {
                cutoff.is_none_or(|c| d.dead_at_ms < c)
            })?;
            let mut items = Vec::with_capacity(targets.len());
            for d in targets {
                items.push(journal.purge_dead_letter(d.seq, &operator).await?);
            }
            log_moved("purged", &items, &operator);
            Ok(Reply::Moved { items })
        }
    }
}

/// One dead letter by seq, or every one (of `destination`) that `keep`
/// accepts, ordered by message id so replays keep received order.
fn select(
    journal: &Journal,
    seq: Option<u64>,
    destination: Option<&str>,
    keep: impl Fn(&DeadLetter) -> bool,
) -> Result<Vec<DeadLetter>, JournalError> {
    if let Some(seq) = seq {
        let d = journal
            .dead_letter_by_seq(seq)?
            .ok_or_else(|| JournalError::NotFound {
                what: format!("dead letter {seq} (see `gateway dlq list`)"),
            })?;
        return Ok(vec![d]);
    }
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = journal.dead_letters(destination, after, PAGE)?;
        let Some(last) = page.last().map(|d| d.seq) else {
            break;
        };
        out.extend(page.into_iter().filter(|d| keep(d)));
        after = Some(last);
    }
    out.sort_by_key(|d| (d.message_id, d.seq));
    Ok(out)
}

fn log_moved(what: &str, items: &[Replayed], operator: &str) {
    if !items.is_empty() {
        log::info!(target: "gateway::dlq", "{what} {} dead letter(s) at the request of {operator}", items.len());
    }
}
