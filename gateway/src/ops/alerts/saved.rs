//! The alert board kept in the journal's state store, so that a restart
//! does not announce every active alert again (and still resolves those
//! that cleared while the box was down). Namespace `alerts`, key the alert
//! id, value the [`Tracked`] entry as JSON; written only when an
//! evaluation announced something.

use journal::{Journal, JournalError, StateOp};

use super::alert::Alert;
use super::board::{Board, Event, Tracked};

const NAMESPACE: &str = "alerts";

/// The alerts active before the restart. An entry that cannot be read (a
/// later version's) is skipped: at worst that alert is announced again.
pub fn load(journal: &Journal) -> Result<Vec<Tracked>, JournalError> {
    let mut out = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = journal.list_state(NAMESPACE, &[], after.as_deref(), 256)?;
        let Some(last) = page.last().map(|e| e.key.clone()) else {
            break;
        };
        out.extend(
            page.iter()
                .filter_map(|e| serde_json::from_slice::<Tracked>(&e.value).ok()),
        );
        after = Some(last);
    }
    Ok(out)
}

/// Record what `events` changed on `board`, in one journal commit.
pub async fn save(
    journal: &Journal,
    events: &[(Event, Alert)],
    board: &Board,
) -> Result<(), JournalError> {
    let mut ops = Vec::with_capacity(events.len());
    for (event, a) in events {
        let key = a.id.as_bytes();
        match (event, board.tracked(&a.id)) {
            (Event::Resolved, _) | (_, None) => ops.push(StateOp::delete(NAMESPACE, key)),
            (_, Some(t)) => match serde_json::to_vec(&t) {
                Ok(value) => ops.push(StateOp::put(NAMESPACE, key, &value)),
                Err(_) => ops.push(StateOp::delete(NAMESPACE, key)),
            },
        }
    }
    if ops.is_empty() {
        return Ok(());
    }
    journal.append_batch(Vec::new(), ops).await.map(|_| ())
}
