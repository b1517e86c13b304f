//! The daemon's side of `gateway messages search|show` (admin socket):
//! find messages and tell each one's journey, from the journal alone.
//!
//! - **Search** answers a page at a time (newest first; the CLI asks for
//!   the next page with `before` = the last id and prints as pages come,
//!   so output streams). A control id or a patient is looked up in the
//!   journal's trace index (`journal::trace_index`: one sled range scan);
//!   other filters scan messages downwards from `before`, at most
//!   [`SCAN_BUDGET`] per page, and stop at [`SINCE_SLACK_MS`] before
//!   `since`. Rows carry ids, times, source, type, control id and the
//!   per-destination state: never message content.
//! - **`--patient MRN`** (or `MRN^^^AUTHORITY`): the daemon computes the
//!   keyed tag (`messages_key.rs`) for that authority, or for each one seen,
//!   and audits the lookup as `phi_lookup` (who, how many found; never the
//!   MRN, never the tag). No hash is ever returned.
//! - **Show** is the journey: received (source, peer, ACK), each
//!   destination's state, failures so far, dead letter (attempts, last
//!   error), and the audit events that name the message (delivered, dead
//!   letter, replay and purge with their operator). `raw` adds the HL7
//!   and is audited as `phi_view`.

use serde::{Deserialize, Serialize};

use super::admin::Reply;
use super::messages_key::PatientKey;
use crate::deliver::attempt_record;
use crate::ops::clock;
use journal::{DestinationState, IdPage, Journal, JournalError, StoredMessage};

/// Most rows one page carries.
pub const PAGE_MAX: usize = 500;
/// Most messages one page of a filter-only search examines.
pub const SCAN_BUDGET: usize = 50_000;
/// Ids are given in commit order and times at receipt: a scan for `since`
/// goes on this far past it before it stops.
pub const SINCE_SLACK_MS: u64 = 10 * 60 * 1000;
/// Most audit events `show` reads after the message's receipt.
pub const AUDIT_SCAN_MAX: usize = 200_000;

/// What `gateway messages search` asks for. All filters must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchQuery {
    pub control_id: Option<String>,
    pub message_type: Option<String>,
    pub source: Option<String>,
    pub destination: Option<String>,
    /// `pending`, `delivered`, `dead`, `filtered` (or `purged`).
    pub state: Option<String>,
    pub since_ms: Option<u64>,
    pub until_ms: Option<u64>,
    /// PHI: an MRN, or `MRN^^^AUTHORITY`. Never logged or audited.
    pub patient: Option<String>,
    /// Continue below this id (the previous page's `next_before`).
    pub before: Option<u64>,
    pub limit: usize,
}

/// One search result: no PHI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRow {
    pub id: u64,
    pub received_at: String,
    pub received_at_ms: u64,
    pub source: String,
    pub message_type: String,
    pub control_id: String,
    /// Each destination it was routed to and where it stands there; empty
    /// when filtered (no route took it).
    pub destinations: Vec<DestinationRow>,
    /// No route took it.
    pub filtered: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationRow {
    pub destination: String,
    /// `pending`, `delivered`, `dead`, `purged`, or `unknown` (a message
    /// received before the trace index existed).
    pub state: String,
}

/// `gateway messages show ID`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journey {
    pub id: u64,
    pub received_at: String,
    pub received_at_ms: u64,
    pub source: String,
    pub peer: String,
    pub kind: String,
    pub message_type: String,
    pub control_id: String,
    pub bytes: usize,
    /// The reply stored for the sender, by its code (HL7 MSA-1: "AA");
    /// `None` when none was asked for.
    pub ack: Option<String>,
    pub filtered: bool,
    pub destinations: Vec<DestinationJourney>,
    /// Audit events naming the message, oldest first.
    pub events: Vec<JourneyEvent>,
    /// The audit trail was read only this far after the receipt.
    pub events_truncated: bool,
    /// The message (segments on lines), only when asked for (audited).
    pub raw: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DestinationJourney {
    pub destination: String,
    pub state: String,
    /// Failed attempts so far (pending), or in all (dead).
    pub failures: u32,
    pub first_attempt_at: Option<String>,
    pub last_attempt_at: Option<String>,
    /// The last error's text (no PHI: status codes, error kinds).
    pub last_error: Option<String>,
    pub dead_letter: Option<u64>,
    pub dead_at: Option<String>,
    /// Each failed attempt, oldest first: the first and the last 20
    /// (`attempts_elided` counts those between). Empty for a message that
    /// never failed here (nothing is written for it).
    #[serde(default)]
    pub attempts: Vec<AttemptView>,
    #[serde(default)]
    pub attempts_elided: u32,
    /// When it was delivered (the successful attempt), from the audit trail.
    #[serde(default)]
    pub delivered_at: Option<String>,
}

/// One failed delivery attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttemptView {
    pub at: String,
    pub at_ms: u64,
    /// `retry` or `rejected`.
    pub outcome: String,
    /// The error's class ("HTTP 503", "cannot connect"), never a server's text.
    pub error: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JourneyEvent {
    pub at: String,
    pub at_ms: u64,
    pub kind: String,
    pub destination: Option<String>,
    /// Who did it (replays, purges), as the admin socket named them.
    pub operator: Option<String>,
    pub detail: String,
}

fn err(message: String) -> Reply {
    Reply::Error { message }
}

/// `gateway messages search`.
pub fn search(journal: &Journal, key: &PatientKey, q: &SearchQuery, who: &str) -> Reply {
    match run_search(journal, key, q) {
        Ok((items, next_before)) => {
            if q.patient.is_some() {
                let _ = journal.audit(
                    "phi_lookup",
                    &format!(
                        "what=messages_search_patient found={} by={who}",
                        items.len()
                    ),
                );
            }
            Reply::Messages { items, next_before }
        }
        Err(e) => err(e),
    }
}

fn run_search(
    journal: &Journal,
    key: &PatientKey,
    q: &SearchQuery,
) -> Result<(Vec<MessageRow>, Option<u64>), String> {
    if let Some(s) = &q.state {
        if !["pending", "delivered", "dead", "filtered", "purged"].contains(&s.as_str()) {
            return Err(format!(
                "--state {s:?} is not one of pending, delivered, dead, filtered, purged"
            ));
        }
    }
    let limit = q.limit.clamp(1, PAGE_MAX);
    let je = |e: JournalError| e.to_string();
    // Candidates, newest first, and whether more lie below them.
    // The patient first: with a control id too, its rows are filtered by it.
    let (candidates, more) = if let Some(p) = &q.patient {
        let p = patient_ids(journal, key, p, q.before, limit * 4)?;
        (p.ids, p.more)
    } else if let Some(cid) = &q.control_id {
        let p = journal
            .trace_by_control_id(cid, q.before, limit * 4)
            .map_err(je)?;
        (p.ids, p.more)
    } else {
        let ids = journal
            .message_ids_before(q.before, SCAN_BUDGET)
            .map_err(je)?;
        let more = ids.len() == SCAN_BUDGET;
        (ids, more)
    };
    let mut items = Vec::new();
    let mut last_seen = None;
    let mut stopped = false;
    for id in candidates {
        last_seen = Some(id);
        let Some(m) = journal.get(id).map_err(je)? else {
            continue; // indexed, then lost (salvage): nothing to show
        };
        if let Some(since) = q.since_ms {
            if m.received_at_ms.saturating_add(SINCE_SLACK_MS) < since {
                stopped = true;
                break;
            }
        }
        let Some(row) = row_if(journal, &m, q).map_err(je)? else {
            continue;
        };
        items.push(row);
        if items.len() == limit {
            break;
        }
    }
    let exhausted = last_seen.is_none() || (!more && items.len() < limit);
    let next_before = if stopped || exhausted {
        None
    } else {
        last_seen
    };
    Ok((items, next_before))
}

/// Ids of the patient `spec` names (`MRN` or `MRN^^^AUTHORITY`), newest
/// first, merged over the authorities tried.
fn patient_ids(
    journal: &Journal,
    key: &PatientKey,
    spec: &str,
    before: Option<u64>,
    limit: usize,
) -> Result<IdPage, String> {
    let (mrn, authority) = parse_patient(spec);
    let authorities = match authority {
        Some(a) => vec![a],
        None => {
            let mut all = journal.trace_authorities().map_err(|e| e.to_string())?;
            all.push(String::new());
            all
        }
    };
    let mut ids = Vec::new();
    let mut more = false;
    for a in authorities {
        let Some(tag) = key.tag(&mrn, &a) else {
            return Err("--patient: the MRN is empty".into());
        };
        let p = journal
            .trace_by_patient(&tag, before, limit)
            .map_err(|e| e.to_string())?;
        more |= p.more;
        ids.extend(p.ids);
    }
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids.dedup();
    if ids.len() > limit {
        ids.truncate(limit);
        more = true;
    }
    Ok(IdPage { ids, more })
}

/// `MRN` or a CX: `MRN^^^AUTHORITY` (CX.4's namespace id, else its
/// universal id, as the header keys PID-3).
fn parse_patient(spec: &str) -> (String, Option<String>) {
    let mut parts = spec.split('^');
    let id = parts.next().unwrap_or_default().trim().to_string();
    let authority = parts.nth(2).map(|hd| {
        let mut sub = hd.split('&');
        let ns = sub.next().unwrap_or_default();
        if ns.is_empty() {
            sub.next().unwrap_or_default().to_string()
        } else {
            ns.to_string()
        }
    });
    (id, authority.filter(|a| !a.trim().is_empty()))
}

/// `m`'s row if it passes `q`'s filters.
fn row_if(
    journal: &Journal,
    m: &StoredMessage,
    q: &SearchQuery,
) -> Result<Option<MessageRow>, JournalError> {
    let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
    if !eq(&q.control_id, &m.meta.control_id)
        || !eq(&q.message_type, &m.meta.message_type)
        || !eq(&q.source, &m.source)
        || q.until_ms.is_some_and(|u| m.received_at_ms > u)
        || q.since_ms.is_some_and(|s| m.received_at_ms < s)
    {
        return Ok(None);
    }
    let row = row_of(journal, m)?;
    if let Some(d) = &q.destination {
        if !row.destinations.iter().any(|r| &r.destination == d) {
            return Ok(None);
        }
    }
    if let Some(s) = &q.state {
        let hit = if s == "filtered" {
            row.filtered
        } else {
            row.destinations.iter().any(|r| {
                &r.state == s && q.destination.as_ref().is_none_or(|d| d == &r.destination)
            })
        };
        if !hit {
            return Ok(None);
        }
    }
    Ok(Some(row))
}

fn row_of(journal: &Journal, m: &StoredMessage) -> Result<MessageRow, JournalError> {
    let states = journal.trace_states(m.id, &m.meta.control_id)?;
    let (destinations, filtered) = match states {
        Some(s) => {
            let filtered = s.is_empty();
            let rows = s
                .into_iter()
                .map(|(destination, st)| DestinationRow {
                    destination,
                    state: st.as_str().into(),
                })
                .collect();
            (rows, filtered)
        }
        None => (Vec::new(), false),
    };
    Ok(MessageRow {
        id: m.id,
        received_at: clock::iso8601(m.received_at_ms),
        received_at_ms: m.received_at_ms,
        source: m.source.clone(),
        message_type: m.meta.message_type.clone(),
        control_id: m.meta.control_id.clone(),
        destinations,
        filtered,
    })
}

/// `gateway messages show ID [--raw]`.
pub fn show(journal: &Journal, id: u64, raw: bool, who: &str) -> Reply {
    match journey(journal, id, raw) {
        Ok(Some(j)) => {
            if j.raw.is_some() {
                let _ = journal.audit(
                    "phi_view",
                    &format!(
                        "what=messages_show_raw message={id} control_id={} by={who}",
                        j.control_id
                    ),
                );
            }
            Reply::MessageJourney(Box::new(j))
        }
        Ok(None) => err(format!(
            "message {id} is not in the journal (never received, or removed by retention); find ids with `gateway messages search`"
        )),
        Err(e) => err(e.to_string()),
    }
}

pub fn journey(journal: &Journal, id: u64, raw: bool) -> Result<Option<Journey>, JournalError> {
    let Some(m) = journal.get(id)? else {
        return Ok(None);
    };
    let row = row_of(journal, &m)?;
    let mut destinations = Vec::with_capacity(row.destinations.len());
    for d in &row.destinations {
        destinations.push(destination_journey(journal, id, d)?);
    }
    let (events, events_truncated) = events_of(journal, &m)?;
    for d in &mut destinations {
        d.delivered_at = events
            .iter()
            .rev()
            .find(|e| e.kind == "delivered" && e.destination.as_deref() == Some(&*d.destination))
            .map(|e| e.at.clone());
    }
    Ok(Some(Journey {
        id,
        received_at: row.received_at,
        received_at_ms: m.received_at_ms,
        source: m.source.clone(),
        peer: m.peer.clone(),
        kind: m.meta.kind.clone(),
        message_type: m.meta.message_type.clone(),
        control_id: m.meta.control_id.clone(),
        bytes: m.raw.len(),
        ack: ack_code(&m.ack),
        filtered: row.filtered,
        destinations,
        events,
        events_truncated,
        raw: raw.then(|| String::from_utf8_lossy(&m.raw).replace('\r', "\n")),
    }))
}

/// The code of a stored reply: HL7 MSA-1, else "sent".
fn ack_code(ack: &[u8]) -> Option<String> {
    if ack.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(ack);
    let code = text
        .split(['\r', '\n'])
        .find(|s| s.starts_with("MSA"))
        .and_then(|msa| msa.get(4..6))
        .unwrap_or("sent");
    Some(code.to_string())
}

fn destination_journey(
    journal: &Journal,
    id: u64,
    d: &DestinationRow,
) -> Result<DestinationJourney, JournalError> {
    let mut out = DestinationJourney {
        destination: d.destination.clone(),
        state: d.state.clone(),
        failures: 0,
        first_attempt_at: None,
        last_attempt_at: None,
        last_error: None,
        dead_letter: None,
        dead_at: None,
        attempts: Vec::new(),
        attempts_elided: 0,
        delivered_at: None,
    };
    let history = journal
        .get_state(
            &attempt_record::journey_namespace(&d.destination),
            &id.to_be_bytes(),
        )?
        .and_then(|v| attempt_record::History::decode(&v));
    if let Some(h) = history {
        out.attempts_elided = h.elided;
        out.attempts = h
            .attempts
            .into_iter()
            .map(|a| AttemptView {
                at: clock::iso8601(a.at_ms),
                at_ms: a.at_ms,
                outcome: a.outcome,
                error: a.error,
            })
            .collect();
    }
    if d.state == DestinationState::Dead.as_str() {
        if let Some(dl) = journal.dead_letter_of(&d.destination, id)? {
            out.failures = dl.attempts;
            out.first_attempt_at = Some(clock::iso8601(dl.first_attempt_ms));
            out.last_attempt_at = Some(clock::iso8601(dl.last_attempt_ms));
            out.last_error = Some(dl.last_error);
            out.dead_letter = Some(dl.seq);
            out.dead_at = Some(clock::iso8601(dl.dead_at_ms));
        }
    } else if d.state == DestinationState::Pending.as_str() {
        let ns = format!("attempts:{}", d.destination);
        if let Some(a) = journal
            .get_state(&ns, &id.to_be_bytes())?
            .and_then(|v| attempt_record::decode(&v))
        {
            out.failures = a.failures;
            out.first_attempt_at = Some(clock::iso8601(a.first_attempt_ms));
        }
    }
    Ok(out)
}

/// The audit events that name message `m` (`id=N` or `message N`), from
/// its receipt on, at most [`AUDIT_SCAN_MAX`] events read.
fn events_of(
    journal: &Journal,
    m: &StoredMessage,
) -> Result<(Vec<JourneyEvent>, bool), JournalError> {
    let mut after = journal.audit_seq_before(m.received_at_ms.saturating_sub(1000))?;
    let ids = [format!("id={}", m.id), format!("message={}", m.id)];
    let filtered = format!("message {} ", m.id);
    let mut out = Vec::new();
    let mut read = 0;
    loop {
        let page = journal.audit_events(after, 1000)?;
        let Some(last) = page.last().map(|e| e.seq) else {
            return Ok((out, false));
        };
        for e in page {
            let names = e.detail.starts_with(&filtered)
                || e.detail.split(' ').any(|w| ids.iter().any(|i| w == i));
            // Its own admin views (phi_view) are not its journey.
            if names && e.kind != "phi_view" {
                out.push(event(e));
            }
        }
        read += 1000;
        if read >= AUDIT_SCAN_MAX {
            return Ok((out, true));
        }
        after = Some(last);
    }
}

fn event(e: journal::AuditEvent) -> JourneyEvent {
    let field = |name: &str| {
        // `by=` runs to the end (an operator is "user alice pid 42").
        let key = format!("{name}=");
        e.detail
            .split(' ')
            .position(|w| w.starts_with(&key))
            .map(|i| {
                let words: Vec<&str> = e.detail.split(' ').collect();
                let rest = if name == "by" {
                    words[i..].join(" ")
                } else {
                    words[i].to_string()
                };
                rest[key.len()..].to_string()
            })
    };
    JourneyEvent {
        at: clock::iso8601(e.at_ms),
        at_ms: e.at_ms,
        destination: field("destination"),
        operator: field("by"),
        kind: e.kind.clone(),
        detail: e.detail.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patient_spec_forms() {
        assert_eq!(parse_patient("123"), ("123".into(), None));
        assert_eq!(parse_patient(" 123 "), ("123".into(), None));
        assert_eq!(
            parse_patient("123^^^ECW^MR"),
            ("123".into(), Some("ECW".into()))
        );
        assert_eq!(
            parse_patient("123^^^&1.2.3&ISO"),
            ("123".into(), Some("1.2.3".into()))
        );
        assert_eq!(parse_patient("123^^^"), ("123".into(), None));
    }

    #[test]
    fn ack_codes() {
        assert_eq!(ack_code(b""), None);
        assert_eq!(
            ack_code(b"MSH|^~\\&|GW||ECW||1||ACK|9|P|2.5.1\rMSA|AA|C1\r"),
            Some("AA".into())
        );
        assert_eq!(ack_code(b"TA1*x"), Some("sent".into()));
    }

    #[test]
    fn operator_runs_to_the_end() {
        let e = journal::AuditEvent {
            seq: 1,
            at_ms: 0,
            kind: "dlq_replay".into(),
            detail: "destination=cloud id=4 dead_letter=2 by=user alice pid 42".into(),
            hash: None,
            prev: None,
        };
        let j = event(e);
        assert_eq!(j.destination.as_deref(), Some("cloud"));
        assert_eq!(j.operator.as_deref(), Some("user alice pid 42"));
    }
}
