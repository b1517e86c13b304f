//! One inbound frame's life, from bytes to ACK: parse the header, decide the
//! outboxes, append to the journal (durable), and only then build the AA.
//! Unreadable input is quarantined and answered with AR naming the reason;
//! a journal that cannot take the message answers AE/CE with ERR 207.

use std::sync::Arc;

use crate::ops::clock;
use crate::ops::stats::{inc, ListenerStats};
use crate::route::Router;
use hl7::{HeaderSummary, Outcome};
use journal::{Appended, Journal, JournalError, MessageMeta, NewMessage, Quarantined, KIND_HL7V2};

/// HL7 table 0357 codes we answer with.
pub mod err_code {
    pub const SEGMENT_SEQUENCE: u16 = 100;
    pub const UNSUPPORTED_VERSION: u16 = 203;
    pub const INTERNAL: u16 = 207;
}

/// What the journal keeps about an HL7 v2 message. The de-dup parts are
/// MSH-3 and MSH-4 as sent and MSH-10 (the key journals have always used).
pub fn hl7_meta(h: &HeaderSummary) -> MessageMeta {
    MessageMeta {
        kind: KIND_HL7V2.to_string(),
        sender: format!(
            "{}{}{}",
            h.sending_application_raw,
            char::from(h.encoding.field),
            h.sending_facility_raw
        ),
        control_id: h.control_id.clone(),
        message_type: h.message_type(),
        dedup: vec![
            h.sending_application_raw.clone(),
            h.sending_facility_raw.clone(),
            h.control_id.clone(),
        ],
    }
}

#[derive(Clone)]
pub struct Ingest {
    pub journal: Journal,
    pub router: Arc<Router>,
}

/// Who sent a frame.
pub struct Origin<'a> {
    pub listener: &'a str,
    pub peer: String,
    pub stats: &'a ListenerStats,
}

impl Ingest {
    /// Handle one complete frame; returns the ACK payload to send (None when
    /// the sender's MSH-15 asked for no ACK).
    pub async fn frame(&self, origin: &Origin<'_>, payload: Vec<u8>) -> Option<Vec<u8>> {
        inc(&origin.stats.received);
        let received_at_ms = clock::unix_ms();
        let header = match hl7::Message::parse(&payload) {
            Ok(msg) => msg.header(),
            Err(e) => {
                let salvaged = hl7::salvage_header(&payload);
                let control = salvaged
                    .as_ref()
                    .map(|h| h.control_id.as_str())
                    .unwrap_or("");
                log::warn!(
                    target: "gateway::ingest",
                    "rejected unreadable message on listener {} from {} (control id '{}'): {}",
                    origin.listener, origin.peer, control, e.location
                );
                let reason = format!("{e}");
                self.quarantine(origin, received_at_ms, reason.clone(), payload)
                    .await;
                return self.nak(
                    origin,
                    salvaged.as_ref(),
                    Outcome::Rejected {
                        code: e.err_code,
                        text: reason,
                    },
                );
            }
        };
        if !header.version.starts_with('2') {
            let text = format!(
                "MSH-12: version '{}' is not HL7 v2 (this gateway takes 2.3 to 2.5.1)",
                header.version
            );
            self.quarantine(origin, received_at_ms, text.clone(), payload)
                .await;
            return self.nak(
                origin,
                Some(&header),
                Outcome::Rejected {
                    code: err_code::UNSUPPORTED_VERSION,
                    text,
                },
            );
        }

        let destinations = self.router.destinations_for(origin.listener, &header);
        let ack = hl7::build_ack(
            Some(&header),
            &Outcome::Accepted,
            &clock::next_control_id(),
            &clock::hl7_timestamp(received_at_ms),
        );
        let message_type = header.message_type();
        let control_id = header.control_id.clone();
        let unrouted = destinations.is_empty();
        let result = self
            .journal
            .append(NewMessage {
                source: origin.listener.to_string(),
                peer: origin.peer.clone(),
                received_at_ms,
                meta: hl7_meta(&header),
                raw: payload,
                ack: ack.clone().unwrap_or_default(),
                destinations,
                patient_lane: crate::route::lane::patient_lane(&header),
            })
            .await;
        match result {
            Ok(Appended::Stored { id }) => {
                inc(&origin.stats.acked);
                log::debug!(target: "gateway::ingest", listener = origin.listener, control_id = &*control_id, outcome = "stored"; "stored message {id} {message_type} control id '{control_id}' from listener {}", origin.listener);
                if unrouted {
                    log::debug!(target: "gateway::ingest", "message {id} {message_type} matched no route: journaled as filtered");
                    let _ = self.journal.audit(
                        "filtered",
                        &format!(
                            "message {id} {message_type} from listener {}: no route takes it",
                            origin.listener
                        ),
                    );
                }
                ack
            }
            Ok(Appended::Duplicate { id, first_ack }) => {
                inc(&origin.stats.duplicates);
                inc(&origin.stats.acked);
                log::info!(target: "gateway::ingest", listener = origin.listener, control_id = &*control_id, outcome = "duplicate"; "retransmission of message {id} ({message_type} control id '{control_id}') on listener {}: answered with the first ACK", origin.listener);
                if first_ack.is_empty() {
                    None
                } else {
                    Some(first_ack)
                }
            }
            Err(e) => {
                let text = match &e {
                    JournalError::Full { reason } => {
                        format!("message not stored, try again later: {reason}")
                    }
                    other => format!("message not stored, try again later: {other}"),
                };
                log::error!(target: "gateway::ingest", listener = origin.listener, control_id = &*control_id, outcome = "not_stored"; "could not journal {message_type} control id '{control_id}' on listener {}: {e}", origin.listener);
                self.nak(
                    origin,
                    Some(&header),
                    Outcome::Error {
                        code: err_code::INTERNAL,
                        text,
                    },
                )
            }
        }
    }

    /// A frame over the listener's limit: its bytes are gone; answer AR naming the limit.
    pub async fn oversized(
        &self,
        origin: &Origin<'_>,
        len: usize,
        limit: usize,
        head: &[u8],
    ) -> Option<Vec<u8>> {
        inc(&origin.stats.received);
        inc(&origin.stats.oversized);
        let text = format!(
            "frame of {len} bytes exceeds this listener's max_frame_bytes limit of {limit} bytes"
        );
        log::warn!(target: "gateway::ingest", listener = origin.listener, outcome = "rejected"; "listener {} from {}: {text}", origin.listener, origin.peer);
        self.quarantine(origin, clock::unix_ms(), text.clone(), Vec::new())
            .await;
        let salvaged = hl7::salvage_header(head);
        self.nak(
            origin,
            salvaged.as_ref(),
            Outcome::Rejected {
                code: err_code::SEGMENT_SEQUENCE,
                text,
            },
        )
    }

    fn nak(
        &self,
        origin: &Origin<'_>,
        header: Option<&HeaderSummary>,
        outcome: Outcome,
    ) -> Option<Vec<u8>> {
        match outcome {
            Outcome::Error { .. } => inc(&origin.stats.errored),
            Outcome::Rejected { .. } => inc(&origin.stats.rejected),
            Outcome::Accepted => {}
        }
        hl7::build_ack(
            header,
            &outcome,
            &clock::next_control_id(),
            &clock::hl7_timestamp(clock::unix_ms()),
        )
    }

    async fn quarantine(
        &self,
        origin: &Origin<'_>,
        received_at_ms: u64,
        reason: String,
        raw: Vec<u8>,
    ) {
        let q = Quarantined {
            source: origin.listener.to_string(),
            peer: origin.peer.clone(),
            received_at_ms,
            reason,
            raw,
        };
        if let Err(e) = self.journal.quarantine(q).await {
            log::warn!(target: "gateway::ingest", "could not quarantine rejected input from listener {}: {e}", origin.listener);
        }
    }
}
