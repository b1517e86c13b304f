//! The one accept path. Every source (the MLLP listeners, the results
//! poller, and later the pickup folder, SFTP poller and bulk export) hands
//! what it received to [`Accept::accept`] as an [`Inbound`] and gets back
//! an [`Answer`]: what became of it, and the reply (if any) to give its
//! sender. Nothing else parses, routes or appends inbound messages.
//!
//! One message's way through:
//!
//! 1. **Read** it by its [`Kind`]: HL7 v2 is parsed (`hl7::Message::parse`)
//!    and must be version 2.x. Unreadable input is refused: its bytes go to
//!    the journal's quarantine (bounded) with the reason, and the sender
//!    gets AR naming it. The read step yields the journal's
//!    [`MessageMeta`], the patient lane and the route key.
//! 2. **Route**: `route::Router` picks the outboxes.
//! 3. **Append** to the journal, with the positive reply built beforehand
//!    and stored with the message (a retransmission is answered with the
//!    very same one). `append` returns only when it is durable; only then
//!    is the reply handed back. A message no route takes is journaled as
//!    filtered and audited. A journal that cannot take the message makes a
//!    refusal to retry (HL7: AE/CE with ERR 207).
//!
//! Steps 2 and 3 are kind-independent ([`Accept::append`],
//! [`Accept::refuse`]); a new kind adds its read step and its replies (an
//! X12 file: the ISA/GS header; a FHIR NDJSON resource: its id and type),
//! and builds HL7 ACKs only for HL7.
//!
//! Counting and the per-message log lines are the source's (a listener
//! counts ACKs per connection, a poller counts fetched reports); this
//! module logs only refusals.

pub mod x12;

use std::fmt;
use std::sync::Arc;

use hl7::{HeaderSummary, Outcome};
use journal::{
    Appended, Enqueue, Journal, JournalError, MessageMeta, NewMessage, Policy, Quarantined,
    KIND_HL7V2,
};

use crate::ops::clock;
use crate::route::Router;

/// HL7 table 0357 codes we answer with.
pub mod err_code {
    pub const SEGMENT_SEQUENCE: u16 = 100;
    pub const UNSUPPORTED_VERSION: u16 = 203;
    pub const INTERNAL: u16 = 207;
}

/// The accept path: the journal and the routes. Cheap to clone.
#[derive(Clone)]
pub struct Accept {
    pub journal: Journal,
    pub router: Arc<Router>,
    /// The feeds `[[alerts.silence]]` watches.
    pub feeds: Arc<crate::ops::feeds::FeedWatch>,
    /// Keys the journal's patient index (`ops::messages_key`).
    pub patients: Arc<crate::ops::messages_key::PatientKey>,
}

/// What kind of source a message came from; part of how it is named in
/// logs and audit events ("listener lab", "poller results").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Listener,
    Poller,
    Pickup,
}

/// A whole file a source fetched (an sftp poller's download), taken as it
/// is: its bytes are journaled unchanged and its identity is its name,
/// size and modification time (what makes a re-listed file a duplicate).
#[derive(Debug, Clone)]
pub struct FetchedFile {
    pub name: String,
    pub size: u64,
    pub mtime: u32,
}

/// The journal's `kind` for a file taken as it is.
pub const KIND_FILE: &str = "file";

/// A file's type for routing (`types`) and status: its extension in upper
/// case ("x.835" → "835", "resp.277CA" → "277CA"), or "FILE".
pub fn file_type(name: &str) -> String {
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && !ext.is_empty() => ext.to_ascii_uppercase(),
        _ => "FILE".into(),
    }
}

/// Which source, and which peer of it, sent a message.
#[derive(Debug, Clone)]
pub struct Origin<'a> {
    pub role: Role,
    /// The source's configured name (routes match it in `from`).
    pub name: &'a str,
    /// "10.0.0.5:40000", "poller results".
    pub peer: String,
}

impl fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let role = match self.role {
            Role::Listener => "listener",
            Role::Poller => "poller",
            Role::Pickup => "pickup",
        };
        write!(f, "{role} {}", self.name)
    }
}

/// What the bytes of an [`Inbound`] are, and so how they are read and
/// answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An HL7 v2 message (ER7).
    Hl7v2,
    /// An X12 file, checked (`x12::check`, ISA15 against `usage`) and,
    /// when clean, journaled and sent as it is; its key is the first
    /// interchange's sender, receiver and ISA13, refused when reused.
    X12 { usage: Option<::x12::Usage> },
}

/// One message a source received.
pub struct Inbound<'a> {
    pub origin: &'a Origin<'a>,
    pub kind: Kind,
    pub bytes: Vec<u8>,
    /// The sender waits for a reply on its connection (MLLP: an ACK). A
    /// poller has nobody to answer.
    pub wants_reply: bool,
}

/// What became of an inbound message.
#[derive(Debug)]
pub enum Disposition {
    /// Journaled now (durable) as message `id`.
    Stored { id: u64 },
    /// A retransmission of message `id`, which is already journaled.
    Duplicate { id: u64 },
    /// Not acceptable as sent (unreadable, wrong version, over a limit):
    /// quarantined. `reason` names where and why, and is what the sender
    /// is told; it is not logged (it may quote a few bytes of the input).
    Refused { reason: String },
    /// The journal could not take it: the sender should send it again later.
    NotStored { error: JournalError },
}

/// The answer for a source: what happened, and what to give the sender.
#[derive(Debug)]
pub struct Answer {
    pub disposition: Disposition,
    /// E.g. "ORU^R01"; empty when the message could not be read.
    pub message_type: String,
    /// The sender's id for the message; empty when it could not be read.
    pub control_id: String,
    /// The reply for the sender (HL7: the ACK/NAK payload, unframed). `None`
    /// when the sender asked for none (MSH-15 NE ...) or wants no reply.
    pub reply: Option<Vec<u8>>,
    /// X12: the TA1/999 of a refused file, for the source to write where
    /// the sender reads responses. Empty otherwise.
    pub acks: Vec<::x12::Ack>,
}

/// A message read by its kind's read step: what is journaled and routed.
struct Read<'h> {
    meta: MessageMeta,
    destinations: Vec<Enqueue>,
    patient_lane: u64,
    /// The positive reply, stored with the message.
    reply: Option<Vec<u8>>,
    /// For HL7, the header the NAK echoes if the append fails.
    hl7: Option<&'h HeaderSummary>,
    /// Retention and what a reused de-dup key does.
    policy: Policy,
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

fn nak(header: Option<&HeaderSummary>, outcome: &Outcome) -> Option<Vec<u8>> {
    hl7::build_ack(
        header,
        outcome,
        &clock::next_control_id(),
        &clock::hl7_timestamp(clock::unix_ms()),
    )
}

impl Accept {
    /// Read, route and journal one inbound message; the answer says what
    /// happened and carries the reply for the sender.
    pub async fn accept(&self, inbound: Inbound<'_>) -> Answer {
        match inbound.kind {
            Kind::Hl7v2 => self.accept_hl7(inbound).await,
            Kind::X12 { usage } => self.accept_x12(inbound, usage).await,
        }
    }

    /// Journal a fetched file as it is (no read step: it is routed by its
    /// type from the name). A file with the same name, size and mtime from
    /// the same source is a duplicate of the first.
    pub async fn accept_file(
        &self,
        origin: &Origin<'_>,
        file: &FetchedFile,
        bytes: Vec<u8>,
    ) -> Answer {
        let message_type = file_type(&file.name);
        let read = Read {
            meta: MessageMeta {
                kind: KIND_FILE.to_string(),
                sender: origin.peer.clone(),
                control_id: file.name.clone(),
                message_type: message_type.clone(),
                dedup: vec![
                    file.name.clone(),
                    file.size.to_string(),
                    file.mtime.to_string(),
                ],
            },
            destinations: self
                .router
                .destinations_for_file(origin.name, &message_type),
            patient_lane: 0,
            reply: None,
            hl7: None,
            policy: Policy::default(),
        };
        self.append(origin, clock::unix_ms(), read, bytes, false)
            .await
    }

    async fn accept_hl7(&self, inbound: Inbound<'_>) -> Answer {
        let Inbound {
            origin,
            bytes,
            wants_reply,
            ..
        } = inbound;
        let received_at_ms = clock::unix_ms();
        let header = match hl7::Message::parse(&bytes) {
            Ok(msg) => msg.header(),
            Err(e) => {
                let salvaged = hl7::salvage_header(&bytes);
                let control = salvaged
                    .as_ref()
                    .map(|h| h.control_id.as_str())
                    .unwrap_or("");
                log::warn!(
                    target: "gateway::ingest",
                    "rejected unreadable message on {origin} from {} (control id '{}'): {}",
                    origin.peer, control, e.location
                );
                let reason = format!("{e}");
                let code = e.err_code;
                return self
                    .refuse_hl7(
                        origin,
                        received_at_ms,
                        reason,
                        bytes,
                        salvaged.as_ref(),
                        code,
                        wants_reply,
                    )
                    .await;
            }
        };
        if !header.version.starts_with('2') {
            let text = format!(
                "MSH-12: version '{}' is not HL7 v2 (this gateway takes 2.3 to 2.5.1)",
                header.version
            );
            return self
                .refuse_hl7(
                    origin,
                    received_at_ms,
                    text,
                    bytes,
                    Some(&header),
                    err_code::UNSUPPORTED_VERSION,
                    wants_reply,
                )
                .await;
        }
        let reply = if wants_reply {
            hl7::build_ack(
                Some(&header),
                &Outcome::Accepted,
                &clock::next_control_id(),
                &clock::hl7_timestamp(received_at_ms),
            )
        } else {
            None
        };
        let read = Read {
            meta: hl7_meta(&header),
            destinations: self.router.destinations_for(origin.name, &header),
            patient_lane: crate::route::lane::patient_lane(&header),
            reply,
            hl7: Some(&header),
            policy: Policy::default(),
        };
        self.append(origin, received_at_ms, read, bytes, wants_reply)
            .await
    }

    /// Append a read message (any kind): route result, reply and meta are
    /// in `read`. Answers with the stored reply, the first reply of a
    /// retransmission, or a refusal to retry.
    async fn append(
        &self,
        origin: &Origin<'_>,
        received_at_ms: u64,
        read: Read<'_>,
        bytes: Vec<u8>,
        wants_reply: bool,
    ) -> Answer {
        let message_type = read.meta.message_type.clone();
        let control_id = read.meta.control_id.clone();
        let unrouted = read.destinations.is_empty();
        let patient = read.hl7.and_then(|h| self.patients.patient_of(h));
        let result = self
            .journal
            .append_traced(
                NewMessage {
                    source: origin.name.to_string(),
                    peer: origin.peer.clone(),
                    received_at_ms,
                    meta: read.meta,
                    raw: bytes,
                    ack: read.reply.clone().unwrap_or_default(),
                    destinations: read.destinations,
                    patient_lane: read.patient_lane,
                },
                read.policy,
                patient,
            )
            .await;
        let (disposition, reply) = match result {
            Ok(Appended::Stored { id }) => {
                self.feeds.seen(origin.name, &message_type, received_at_ms);
                if unrouted {
                    log::debug!(target: "gateway::ingest", "message {id} {message_type} matched no route: journaled as filtered");
                    let _ = self.journal.audit(
                        "filtered",
                        &format!("message {id} {message_type} from {origin}: no route takes it"),
                    );
                }
                (Disposition::Stored { id }, read.reply)
            }
            Ok(Appended::Duplicate { id, first_ack }) => {
                let first = (!first_ack.is_empty()).then_some(first_ack);
                (Disposition::Duplicate { id }, first)
            }
            // Only an append with `KeyReuse::Refuse` gets this; `append`
            // stores a reused control id as a new message.
            Ok(Appended::KeyReused { id }) => {
                let reason = format!(
                    "control id {control_id} is already journaled as message {id} with other content"
                );
                (Disposition::Refused { reason }, None)
            }
            Err(error) => {
                let reply = match (read.hl7, wants_reply) {
                    (Some(header), true) => {
                        let text = match &error {
                            JournalError::Full { reason } => {
                                format!("message not stored, try again later: {reason}")
                            }
                            other => format!("message not stored, try again later: {other}"),
                        };
                        nak(
                            Some(header),
                            &Outcome::Error {
                                code: err_code::INTERNAL,
                                text,
                            },
                        )
                    }
                    _ => None,
                };
                (Disposition::NotStored { error }, reply)
            }
        };
        Answer {
            disposition,
            message_type,
            control_id,
            reply,
            acks: Vec::new(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn refuse_hl7(
        &self,
        origin: &Origin<'_>,
        received_at_ms: u64,
        reason: String,
        bytes: Vec<u8>,
        header: Option<&HeaderSummary>,
        code: u16,
        wants_reply: bool,
    ) -> Answer {
        self.refuse(origin, received_at_ms, reason.clone(), bytes)
            .await;
        let reply = if wants_reply {
            nak(
                header,
                &Outcome::Rejected {
                    code,
                    text: reason.clone(),
                },
            )
        } else {
            None
        };
        Answer {
            disposition: Disposition::Refused { reason },
            message_type: header.map(HeaderSummary::message_type).unwrap_or_default(),
            control_id: header.map(|h| h.control_id.clone()).unwrap_or_default(),
            reply,
            acks: Vec::new(),
        }
    }

    /// A frame over the listener's limit: its bytes are gone (only `head`
    /// was kept); quarantine the reason and answer AR naming the limit.
    pub async fn oversized(
        &self,
        origin: &Origin<'_>,
        len: usize,
        limit: usize,
        head: &[u8],
    ) -> Answer {
        let text = format!(
            "frame of {len} bytes exceeds this listener's max_frame_bytes limit of {limit} bytes"
        );
        log::warn!(target: "gateway::ingest", listener = origin.name, outcome = "rejected"; "{origin} from {}: {text}", origin.peer);
        let salvaged = hl7::salvage_header(head);
        self.refuse_hl7(
            origin,
            clock::unix_ms(),
            text,
            Vec::new(),
            salvaged.as_ref(),
            err_code::SEGMENT_SEQUENCE,
            true,
        )
        .await
    }

    /// Keep refused input (any kind) in the quarantine, with the reason.
    async fn refuse(&self, origin: &Origin<'_>, received_at_ms: u64, reason: String, raw: Vec<u8>) {
        let q = Quarantined {
            source: origin.name.to_string(),
            peer: origin.peer.clone(),
            received_at_ms,
            reason,
            raw,
        };
        if let Err(e) = self.journal.quarantine(q).await {
            log::warn!(target: "gateway::ingest", "could not quarantine rejected input from {origin}: {e}");
        }
    }
}
