//! The X12 read step of the accept path. A file is checked as a whole
//! (`x12::check`: every envelope, ISA15 against the source's `usage`).
//!
//! - **Clean**: journaled as one message of its original bytes (never
//!   re-serialized), kind `x12`; sender `ISA05:ISA06`, control id ISA13,
//!   type the first set's guide ("837P"); routed on type, sender ISA06 and
//!   receiver ISA08. Its de-dup key is the first interchange's sender,
//!   receiver and ISA13 with [`KeyReuse::Refuse`]: the same file again is a
//!   `Duplicate`, another file reusing the ISA13 of that sender/receiver
//!   pair is refused with a TA1 (TA105 025).
//! - **Envelope errors**: not journaled as a message; quarantined with the
//!   errors (each at its segment) and answered with the TA1/999 that
//!   report them ([`Answer::acks`]), for the source to write where the
//!   sender reads responses.
//!
//! The acknowledgments' ISA13/GS06 come from a durable counter in the
//! journal's state store (namespace `x12.ack`), so they never repeat.

use std::collections::HashSet;

use ::x12::{AckHeader, CheckOptions, Document, InterchangeKey, Stamp, Usage};
use journal::{KeyReuse, MessageMeta, Policy};

use super::{Accept, Answer, Disposition, Inbound, Read};
use crate::ops::clock;
use crate::route::RouteKey;

/// The journal's `MessageMeta::kind` of an X12 file.
pub const KIND_X12: &str = "x12";

/// The state store's namespace and key of the acknowledgment counter.
const ACK_NAMESPACE: &str = "x12.ack";
const ACK_COUNTER: &[u8] = b"control";

/// Most envelope errors named in a refusal's reason (all are in the acks).
const REASON_ERRORS: usize = 5;

/// Allocations of acknowledgment control numbers, one at a time.
static ACK_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Accept {
    pub(super) async fn accept_x12(&self, inbound: Inbound<'_>, usage: Option<Usage>) -> Answer {
        let Inbound { origin, bytes, .. } = inbound;
        let received_at_ms = clock::unix_ms();
        let options = CheckOptions {
            expected_usage: usage,
        };
        let doc = ::x12::check(&bytes, &options, &());
        let (meta, route_sender, route_receiver) = meta(&doc);
        if !doc.is_clean() {
            let reason = refusal_reason(&doc);
            log::warn!(target: "gateway::ingest", "refused X12 file on {origin} from {} (ISA13 '{}'): {} envelope error(s)", origin.peer, meta.control_id, doc.errors().count());
            let acks = self.acks(&doc).await;
            return self
                .refuse_x12(origin, received_at_ms, reason, bytes, meta, acks)
                .await;
        }
        let key = RouteKey {
            message_type: &meta.message_type,
            sender: &route_sender,
            receiver: &route_receiver,
            component_sep: b':',
        };
        let destinations = self.router.destinations_for_key(origin.name, &key);
        let read = Read {
            meta: meta.clone(),
            destinations,
            patient_lane: 0,
            reply: None,
            hl7: None,
            policy: Policy {
                key_reuse: KeyReuse::Refuse,
                ..Policy::default()
            },
        };
        // `doc` borrows the bytes the append takes: keep what a refusal needs.
        let first_key = doc
            .interchanges
            .first()
            .map(|ic| InterchangeKey::of(&ic.isa).to_owned_key());
        let copy = bytes.clone();
        drop(doc);
        let answer = self
            .append(origin, received_at_ms, read, bytes, false)
            .await;
        let Disposition::Refused { reason } = &answer.disposition else {
            return answer;
        };
        // The ISA13 of this sender/receiver pair is journaled with other
        // content: refuse the file with a TA1 naming the duplicate.
        let seen: HashSet<_> = first_key.into_iter().collect();
        let doc = ::x12::check(&copy, &options, &seen);
        let acks = self.acks(&doc).await;
        let reason = format!("{reason}: {}", refusal_reason(&doc));
        log::warn!(target: "gateway::ingest", "refused X12 file on {origin} from {}: ISA13 '{}' reused with other content", origin.peer, meta.control_id);
        drop(doc);
        self.refuse_x12(origin, received_at_ms, reason, copy, meta, acks)
            .await
    }

    async fn refuse_x12(
        &self,
        origin: &super::Origin<'_>,
        received_at_ms: u64,
        reason: String,
        bytes: Vec<u8>,
        meta: MessageMeta,
        acks: Vec<::x12::Ack>,
    ) -> Answer {
        self.refuse(origin, received_at_ms, reason.clone(), bytes)
            .await;
        Answer {
            disposition: Disposition::Refused { reason },
            message_type: meta.message_type,
            control_id: meta.control_id,
            reply: None,
            acks,
        }
    }

    /// The TA1/999 for `doc`, numbered from the durable counter. If the
    /// counter cannot be read or written the acks are still built (from the
    /// clock), and the failure is logged.
    async fn acks(&self, doc: &Document<'_>) -> Vec<::x12::Ack> {
        let _one_at_a_time = ACK_LOCK.lock().await;
        let now = clock::unix_ms() / 1000;
        let stamp = Stamp::from_unix(now as i64);
        let start = match self.journal.get_state(ACK_NAMESPACE, ACK_COUNTER) {
            Ok(Some(v)) if v.len() == 4 => u32::from_be_bytes([v[0], v[1], v[2], v[3]]),
            Ok(_) => (now % 1_000_000_000) as u32,
            Err(e) => {
                log::warn!(target: "gateway::ingest", "X12 acknowledgment counter unreadable ({e}); numbering from the clock");
                (now % 1_000_000_000) as u32
            }
        };
        let mut next = start;
        let acks = ::x12::acknowledgments(doc, || {
            next = next % 999_999_999 + 1;
            AckHeader::numbered(next, stamp)
        });
        if next != start {
            let stored = self
                .journal
                .put_state(ACK_NAMESPACE, ACK_COUNTER, &next.to_be_bytes())
                .await;
            if let Err(e) = stored {
                log::warn!(target: "gateway::ingest", "X12 acknowledgment counter not stored: {e}");
            }
        }
        acks
    }
}

/// The journal's view of a checked file, and the sender/receiver routes
/// match (ISA06, ISA08).
fn meta(doc: &Document<'_>) -> (MessageMeta, String, String) {
    let v = |b: &[u8]| ::x12::error::shown(::x12::isa::trim(b));
    let Some(ic) = doc.interchanges.first() else {
        return (
            MessageMeta {
                kind: KIND_X12.into(),
                ..MessageMeta::default()
            },
            String::new(),
            String::new(),
        );
    };
    let isa = &ic.isa;
    let message_type = doc
        .sets()
        .find_map(|(_, _, s)| s.kind)
        .map_or_else(|| "X12".to_string(), |k| k.name().to_string());
    let meta = MessageMeta {
        kind: KIND_X12.into(),
        sender: format!("{}:{}", v(isa.element(5)), v(isa.element(6))),
        control_id: v(isa.element(13)),
        message_type,
        dedup: [5, 6, 7, 8, 13]
            .iter()
            .map(|&n| v(isa.element(n)))
            .collect(),
    };
    (meta, v(isa.element(6)), v(isa.element(8)))
}

/// The first envelope errors, each with its segment position.
fn refusal_reason(doc: &Document<'_>) -> String {
    let errors: Vec<String> = doc.errors().map(|e| e.to_string()).collect();
    let mut reason = errors
        .iter()
        .take(REASON_ERRORS)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if errors.len() > REASON_ERRORS {
        reason.push_str(&format!(
            "; and {} more (run `gateway x12 check` on the file)",
            errors.len() - REASON_ERRORS
        ));
    }
    format!("X12 envelope errors: {reason}")
}
