//! Keys and record encoding. Pure: no I/O.
//!
//! Every value in the tree is a *sealed record*:
//!
//! ```text
//! +---------+-------------------+---------------------------+
//! | ver: u8 | crc32: u32 LE     | payload (ver-specific)    |
//! +---------+-------------------+---------------------------+
//!             crc32 (crc32fast/IEEE) covers ver + payload
//! ```
//!
//! A record whose version is unknown or whose checksum does not match is
//! reported as corrupt by the caller, naming the key.
//!
//! Versions: every record is version 1 except
//!
//! - message records: version 2 since the journal stopped storing the HL7
//!   header summary ([`crate::MessageMeta`] replaced it), version 3 for a
//!   message kept only until delivered ([`crate::Retention::UntilDelivered`]:
//!   the version 2 head plus `keep_dedup`). Version 1 message records
//!   (journals written before) are still read: their HL7 header is decoded
//!   with its old layout and turned into the same `MessageMeta` the accept
//!   path makes for HL7 today (see [`decode_message`]);
//! - audit events: version 2 since the hash chain (`audit/chain.rs`: the
//!   version 1 fields, then seq and the previous event's chain hash);
//!   version 1 events are the chain's genesis prefix;
//! - outbox entries: version 2 (postcard of the entry plus its `release`
//!   flag). Version 1 held either a bare `received_at_ms` (8 bytes, big
//!   endian: its first byte is 0 for any time before the year 2^56 ms) or
//!   the postcard entry (whose first byte, a varint of `received_at_ms`, is
//!   not 0 for any real time); both are still read (see [`decode_outbox`]).

use serde::{Deserialize, Serialize};

use crate::{MessageMeta, Retention};

/// Version of every record but the message record and the outbox entry.
pub(crate) const VERSION: u8 = 1;
/// Version of the message record (2: journal-owned [`MessageMeta`]).
pub(crate) const MESSAGE_VERSION: u8 = 2;
/// Version of the record of a message kept only until delivered.
pub(crate) const MESSAGE_VERSION_RELEASED: u8 = 3;
/// Version of the outbox entry (2: tagged, with its `release` flag).
pub(crate) const OUTBOX_VERSION: u8 = 2;
/// The highest record version this binary reads.
const MAX_VERSION: u8 = MESSAGE_VERSION_RELEASED;
const HEADER_LEN: usize = 5;

// ---- key prefixes (one sled tree; the first byte says what the key is) ----

/// `m` + id (u64 BE) -> message record.
pub(crate) const P_MESSAGE: u8 = b'm';
/// `d` + lp(source) + lp(part) for each of the message's de-dup parts
/// (HL7: MSH-3, MSH-4, MSH-10) -> dedup record (id).
pub(crate) const P_DEDUP: u8 = b'd';
/// `o` + lp(destination) + id (u64 BE) -> outbox record (received_at_ms).
pub(crate) const P_OUTBOX: u8 = b'o';
/// `q` + seq (u64 BE) -> quarantine record.
pub(crate) const P_QUARANTINE: u8 = b'q';
/// `a` + seq (u64 BE) -> audit record.
pub(crate) const P_AUDIT: u8 = b'a';
/// `A` -> the audit chain's anchor (`audit/chain.rs`): seq and chain hash
/// of the last event before the oldest one kept.
pub(crate) const P_AUDIT_ANCHOR: u8 = b'A';
/// `c` + counter name -> counter record (u64); names in `counter.rs`.
pub(crate) const P_COUNTER: u8 = b'c';
/// `x` + seq (u64 BE) -> dead-letter record ([`DeadLetterRec`]).
pub(crate) const P_DEAD: u8 = b'x';
/// `X` + lp(destination) + id (u64 BE) -> seq of its dead-letter record
/// (finds a message's dead letter without scanning; pruning checks it).
pub(crate) const P_DEAD_INDEX: u8 = b'X';
/// `s` + lp(namespace) + key -> a source's state value (sealed bytes).
pub(crate) const P_STATE: u8 = b's';
/// `t` + id (u64 BE) -> what a released message left for de-dup
/// ([`ReleasedRec`]): its `d` entry still points at the id.
pub(crate) const P_RELEASED: u8 = b't';

fn push_lp(k: &mut Vec<u8>, s: &[u8]) {
    // Length-prefixed so that no field value can forge a boundary.
    k.extend_from_slice(&(s.len() as u32).to_be_bytes());
    k.extend_from_slice(s);
}

pub(crate) fn message_key(id: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = P_MESSAGE;
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

pub(crate) fn seq_key(prefix: u8, seq: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = prefix;
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The u64 after a one-byte prefix (message, audit, quarantine keys).
pub(crate) fn seq_of_key(k: &[u8]) -> Option<u64> {
    if k.len() != 9 {
        return None;
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&k[1..]);
    Some(u64::from_be_bytes(b))
}

/// The de-dup key of a message from `source` with de-dup `parts`. For HL7
/// (parts MSH-3 raw, MSH-4 raw, MSH-10) these are the same bytes as version
/// 1 wrote, so retransmissions of messages journaled before still match.
pub(crate) fn dedup_key(source: &str, parts: &[String]) -> Vec<u8> {
    let len: usize = parts.iter().map(|p| 4 + p.len()).sum();
    let mut k = Vec::with_capacity(1 + 4 + source.len() + len);
    k.push(P_DEDUP);
    push_lp(&mut k, source.as_bytes());
    for p in parts {
        push_lp(&mut k, p.as_bytes());
    }
    k
}

pub(crate) fn outbox_prefix(dest: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + 4 + dest.len() + 8);
    k.push(P_OUTBOX);
    push_lp(&mut k, dest.as_bytes());
    k
}

pub(crate) fn outbox_key(dest: &str, id: u64) -> Vec<u8> {
    let mut k = outbox_prefix(dest);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// Id at the end of an outbox key.
pub(crate) fn outbox_id(k: &[u8]) -> Option<u64> {
    if k.len() < 8 {
        return None;
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&k[k.len() - 8..]);
    Some(u64::from_be_bytes(b))
}

pub(crate) fn dead_index_key(dest: &str, id: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + 4 + dest.len() + 8);
    k.push(P_DEAD_INDEX);
    push_lp(&mut k, dest.as_bytes());
    k.extend_from_slice(&id.to_be_bytes());
    k
}

pub(crate) fn state_prefix(namespace: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + 4 + namespace.len());
    k.push(P_STATE);
    push_lp(&mut k, namespace.as_bytes());
    k
}

pub(crate) fn state_key(namespace: &str, key: &[u8]) -> Vec<u8> {
    let mut k = state_prefix(namespace);
    k.extend_from_slice(key);
    k
}

// ---- sealing ----

/// A buffer with room for the record header; append the payload, then `seal`.
pub(crate) fn new_record(capacity: usize) -> Vec<u8> {
    new_record_version(VERSION, capacity)
}

fn new_record_version(version: u8, capacity: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_LEN + capacity);
    v.extend_from_slice(&[version, 0, 0, 0, 0]);
    v
}

/// A sealed record of version `version` holding `body`.
pub(crate) fn seal_version(version: u8, body: &[u8]) -> Vec<u8> {
    let mut v = new_record_version(version, body.len());
    v.extend_from_slice(body);
    seal(v)
}

pub(crate) fn seal(mut v: Vec<u8>) -> Vec<u8> {
    let mut h = crc32fast::Hasher::new();
    h.update(&v[..1]);
    h.update(&v[HEADER_LEN..]);
    let crc = h.finalize();
    v[1..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    v
}

/// The payload of a sealed record, or a description of why it is not valid.
pub(crate) fn open(v: &[u8]) -> Result<&[u8], &'static str> {
    open_versioned(v).map(|(_, p)| p)
}

/// The version and payload of a sealed record.
pub(crate) fn open_versioned(v: &[u8]) -> Result<(u8, &[u8]), &'static str> {
    if v.len() < HEADER_LEN {
        return Err("record shorter than its header");
    }
    if v[0] == 0 || v[0] > MAX_VERSION {
        return Err("unknown record version");
    }
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&v[1..HEADER_LEN]);
    let mut h = crc32fast::Hasher::new();
    h.update(&v[..1]);
    h.update(&v[HEADER_LEN..]);
    if h.finalize() != u32::from_le_bytes(crc) {
        return Err("checksum mismatch");
    }
    Ok((v[0], &v[HEADER_LEN..]))
}

pub(crate) fn seal_u64(n: u64) -> Vec<u8> {
    let mut v = new_record(8);
    v.extend_from_slice(&n.to_be_bytes());
    seal(v)
}

/// A sealed record of `bytes` as they are (state values).
pub(crate) fn seal_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut v = new_record(bytes.len());
    v.extend_from_slice(bytes);
    seal(v)
}

pub(crate) fn open_u64(v: &[u8]) -> Result<u64, &'static str> {
    let p = open(v)?;
    if p.len() != 8 {
        return Err("wrong payload length");
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(p);
    Ok(u64::from_be_bytes(b))
}

// ---- message record ----
//
// payload = meta_len: u32 LE | postcard(head) | raw bytes
// raw is appended after the postcard part so it is copied exactly once on
// write (into the record buffer) and sliced, not decoded, on read.
// Version 3 head: the version 2 head, then keep_dedup (a message released
// when delivered: Retention::UntilDelivered).
// Version 2 head: received_at_ms, source, peer, MessageMeta, ack.
// Version 1 head: received_at_ms, listener, peer, HL7 header summary, ack.

#[derive(Serialize)]
struct MessageHeadRef<'a> {
    received_at_ms: u64,
    source: &'a str,
    peer: &'a str,
    meta: &'a MessageMeta,
    ack: &'a [u8],
}

/// The version 3 head (postcard writes the nested head's fields inline).
#[derive(Serialize)]
struct ReleasedHeadRef<'a> {
    head: MessageHeadRef<'a>,
    keep_dedup: bool,
}

/// The decoded head of a message record (everything but the raw bytes).
pub(crate) struct MessageHead {
    pub received_at_ms: u64,
    pub source: String,
    pub peer: String,
    pub meta: MessageMeta,
    pub ack: Vec<u8>,
    /// `Default` for version 1 and 2 records.
    pub retention: Retention,
}

#[derive(Deserialize)]
struct HeadV2 {
    received_at_ms: u64,
    source: String,
    peer: String,
    meta: MessageMeta,
    ack: Vec<u8>,
}

#[derive(Deserialize)]
struct HeadV3 {
    head: HeadV2,
    keep_dedup: bool,
}

impl HeadV2 {
    fn with(self, retention: Retention) -> MessageHead {
        MessageHead {
            received_at_ms: self.received_at_ms,
            source: self.source,
            peer: self.peer,
            meta: self.meta,
            ack: self.ack,
            retention,
        }
    }
}

/// The message record: version 2, or version 3 for a message kept only
/// until delivered (so records of `Retention::Default` messages are byte
/// for byte what the journal wrote before retention policies existed).
#[allow(clippy::too_many_arguments)]
pub(crate) fn encode_message(
    received_at_ms: u64,
    source: &str,
    peer: &str,
    meta: &MessageMeta,
    ack: &[u8],
    raw: &[u8],
    retention: Retention,
) -> Result<Vec<u8>, postcard::Error> {
    let head = MessageHeadRef {
        received_at_ms,
        source,
        peer,
        meta,
        ack,
    };
    let (version, head) = match retention {
        Retention::Default => (MESSAGE_VERSION, postcard::to_stdvec(&head)?),
        Retention::UntilDelivered { keep_dedup } => (
            MESSAGE_VERSION_RELEASED,
            postcard::to_stdvec(&ReleasedHeadRef { head, keep_dedup })?,
        ),
    };
    let mut v = new_record_version(version, 4 + head.len() + raw.len());
    v.extend_from_slice(&(head.len() as u32).to_le_bytes());
    v.extend_from_slice(&head);
    v.extend_from_slice(raw);
    Ok(seal(v))
}

/// Decoded head and the raw bytes (borrowed from the record). Reads
/// versions 3, 2 and 1.
pub(crate) fn decode_message(v: &[u8]) -> Result<(MessageHead, &[u8]), &'static str> {
    let (version, p) = open_versioned(v)?;
    if p.len() < 4 {
        return Err("message payload too short");
    }
    let mut l = [0u8; 4];
    l.copy_from_slice(&p[..4]);
    let head_len = u32::from_le_bytes(l) as usize;
    let rest = &p[4..];
    if head_len > rest.len() {
        return Err("message meta length out of range");
    }
    let head_bytes = &rest[..head_len];
    let head = match version {
        MESSAGE_VERSION_RELEASED => {
            let h: HeadV3 =
                postcard::from_bytes(head_bytes).map_err(|_| "message meta does not decode")?;
            h.head.with(Retention::UntilDelivered {
                keep_dedup: h.keep_dedup,
            })
        }
        MESSAGE_VERSION => postcard::from_bytes::<HeadV2>(head_bytes)
            .map_err(|_| "message meta does not decode")?
            .with(Retention::Default),
        _ => postcard::from_bytes::<v1::MessageHead>(head_bytes)
            .map_err(|_| "message meta (version 1) does not decode")?
            .upgrade(),
    };
    Ok((head, &rest[head_len..]))
}

/// The version 1 message head: its HL7 header summary, field for field in
/// the order it was written (postcard is positional). Only read.
mod v1 {
    use serde::Deserialize;

    use crate::MessageMeta;

    #[derive(Deserialize)]
    pub(super) struct MessageHead {
        received_at_ms: u64,
        listener: String,
        peer: String,
        header: HeaderSummary,
        ack: Vec<u8>,
    }

    /// `hl7::HeaderSummary` as of record version 1. Fields the upgrade does
    /// not need are still decoded: postcard cannot skip them.
    #[allow(dead_code)]
    #[derive(Deserialize)]
    struct HeaderSummary {
        encoding: EncodingChars,
        sending_application_raw: String,
        sending_facility_raw: String,
        receiving_application_raw: String,
        receiving_facility_raw: String,
        timestamp: String,
        message_code: String,
        trigger_event: String,
        message_structure: String,
        control_id: String,
        processing_id: String,
        version: String,
        accept_ack_type: String,
        application_ack_type: String,
        charset: String,
        patient_id: Option<PatientId>,
    }

    #[allow(dead_code)]
    #[derive(Deserialize)]
    struct EncodingChars {
        field: u8,
        component: u8,
        repetition: u8,
        escape: u8,
        subcomponent: u8,
        truncation: Option<u8>,
    }

    #[allow(dead_code)]
    #[derive(Deserialize)]
    struct PatientId {
        id: String,
        assigning_authority: String,
    }

    impl MessageHead {
        /// The version 2 head the accept path would write for this HL7
        /// message today (`accept::hl7_meta` in the gateway).
        pub(super) fn upgrade(self) -> super::MessageHead {
            let h = self.header;
            let message_type = if h.trigger_event.is_empty() {
                h.message_code
            } else {
                format!("{}^{}", h.message_code, h.trigger_event)
            };
            let sep = char::from(h.encoding.field);
            super::MessageHead {
                received_at_ms: self.received_at_ms,
                source: self.listener,
                peer: self.peer,
                meta: MessageMeta {
                    kind: crate::KIND_HL7V2.to_string(),
                    sender: format!(
                        "{}{sep}{}",
                        h.sending_application_raw, h.sending_facility_raw
                    ),
                    control_id: h.control_id.clone(),
                    message_type,
                    dedup: vec![
                        h.sending_application_raw,
                        h.sending_facility_raw,
                        h.control_id,
                    ],
                },
                ack: self.ack,
                retention: crate::Retention::Default,
            }
        }
    }
}

// ---- quarantine and audit records (postcard payloads) ----

#[derive(Serialize, Deserialize)]
pub(crate) struct QuarantineRec {
    pub source: String,
    pub peer: String,
    pub received_at_ms: u64,
    pub reason: String,
    pub original_len: u64,
    pub raw: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct AuditRec {
    pub at_ms: u64,
    pub kind: String,
    pub detail: String,
}

/// An outbox entry: what the deliverer needs to schedule a message without
/// loading it. (Journals written before lanes existed hold a bare u64,
/// `received_at_ms`; `decode_outbox` reads both.)
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct OutboxRec {
    pub received_at_ms: u64,
    /// Hash of the patient (first PID-3 + authority), 0 when none: the lane.
    pub patient_lane: u64,
    /// Transform name from the route ("none", "fhir", ...).
    pub transform: String,
}

/// The version 2 outbox entry: the entry, then whether its message is
/// released when nothing holds it any more (a copy of the message record's
/// `Retention::UntilDelivered`, so that delivering a `Default` message
/// never reads the message record).
#[derive(Deserialize)]
struct OutboxV2 {
    entry: OutboxRec,
    release: bool,
}

#[derive(Serialize)]
struct OutboxV2Ref<'a> {
    entry: &'a OutboxRec,
    release: bool,
}

pub(crate) fn encode_outbox(entry: &OutboxRec, release: bool) -> Result<Vec<u8>, postcard::Error> {
    let body = postcard::to_stdvec(&OutboxV2Ref { entry, release })?;
    let mut v = new_record_version(OUTBOX_VERSION, body.len());
    v.extend_from_slice(&body);
    Ok(seal(v))
}

pub(crate) fn decode_outbox(v: &[u8]) -> Result<OutboxRec, &'static str> {
    decode_outbox_entry(v).map(|(entry, _)| entry)
}

/// The entry and its `release` flag (false in version 1 entries).
pub(crate) fn decode_outbox_entry(v: &[u8]) -> Result<(OutboxRec, bool), &'static str> {
    let (version, p) = open_versioned(v)?;
    if version == OUTBOX_VERSION {
        let e: OutboxV2 = postcard::from_bytes(p).map_err(|_| "outbox entry does not decode")?;
        return Ok((e.entry, e.release));
    }
    if version != VERSION {
        return Err("unknown outbox entry version");
    }
    // Version 1: a bare big-endian received_at_ms starts with a 0 byte; a
    // postcard entry starts with the varint of received_at_ms, which is 0
    // only for a message received at 0 ms (never written by a source).
    if p.len() == 8 && p[0] == 0 {
        let mut b = [0u8; 8];
        b.copy_from_slice(p);
        return Ok((
            OutboxRec {
                received_at_ms: u64::from_be_bytes(b),
                patient_lane: 0,
                transform: "none".into(),
            },
            false,
        ));
    }
    postcard::from_bytes(p)
        .map(|e| (e, false))
        .map_err(|_| "outbox entry does not decode")
}

/// What a message released with `keep_dedup` leaves under `t` + id, so a
/// retransmission is still answered: identical bytes (same length and
/// SHA-256) → `Duplicate` with the first ACK; other bytes → key reuse.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReleasedRec {
    pub received_at_ms: u64,
    pub released_at_ms: u64,
    /// The message's `d` key (removed with this record by retention).
    pub dedup_key: Vec<u8>,
    pub raw_len: u64,
    pub raw_sha256: [u8; 32],
    pub ack: Vec<u8>,
}

/// SHA-256 of a message's raw bytes (for [`ReleasedRec`]).
pub(crate) fn raw_digest(raw: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, raw);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// A dead letter: the message stays in `m`; this says why it left its outbox.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterRec {
    pub destination: String,
    pub message_id: u64,
    pub entry: OutboxRec,
    pub attempts: u32,
    pub first_attempt_ms: u64,
    pub last_attempt_ms: u64,
    pub dead_at_ms: u64,
    /// HTTP status + OperationOutcome text, NAK text, or I/O error. No PHI
    /// is put here by the gateway; a server's diagnostics are kept verbatim.
    pub last_error: String,
}

pub(crate) fn encode_postcard<T: Serialize>(t: &T) -> Result<Vec<u8>, postcard::Error> {
    let body = postcard::to_stdvec(t)?;
    let mut v = new_record(body.len());
    v.extend_from_slice(&body);
    Ok(seal(v))
}

pub(crate) fn decode_postcard<'a, T: Deserialize<'a>>(v: &'a [u8]) -> Result<T, &'static str> {
    let p = open(v)?;
    postcard::from_bytes(p).map_err(|_| "payload does not decode")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_detects_flips() {
        let mut v = new_record(3);
        v.extend_from_slice(b"abc");
        let v = seal(v);
        assert_eq!(open(&v), Ok(&b"abc"[..]));
        for i in 0..v.len() {
            let mut w = v.clone();
            w[i] ^= 0x40;
            assert!(open(&w).is_err(), "flip at {i} not detected");
        }
        assert!(open(&v[..4]).is_err());
    }

    fn parts(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn message_round_trip() {
        let meta = MessageMeta {
            kind: "x12".into(),
            sender: "ZZ:SENDER".into(),
            control_id: "000000905".into(),
            message_type: "837P".into(),
            dedup: parts(&["ZZ:SENDER", "000000905"]),
        };
        let v = encode_message(
            7,
            "lab",
            "1.2.3.4:5",
            &meta,
            b"ACK",
            b"ISA*raw",
            Retention::Default,
        )
        .unwrap();
        assert_eq!(v[0], MESSAGE_VERSION);
        let (m, raw) = decode_message(&v).unwrap();
        assert_eq!(m.received_at_ms, 7);
        assert_eq!(m.source, "lab");
        assert_eq!(m.peer, "1.2.3.4:5");
        assert_eq!(m.meta, meta);
        assert_eq!(m.ack, b"ACK");
        assert_eq!(raw, b"ISA*raw");
    }

    /// A version 1 record exactly as the journal wrote it before
    /// `MessageMeta` (postcard of listener, peer and the real
    /// `hl7::HeaderSummary`) still decodes, into the meta accept makes.
    #[test]
    fn version_1_message_records_still_decode() {
        #[derive(Serialize)]
        struct V1Ref<'a> {
            received_at_ms: u64,
            listener: &'a str,
            peer: &'a str,
            header: &'a hl7::HeaderSummary,
            ack: &'a [u8],
        }
        let header = hl7::Message::parse(
            b"MSH|^~\\&|LAB|REF^1.2^ISO|GW|CLINIC|20240101||ORU^R01^ORU_R01|C42|P|2.5.1|||AL|NE||UNICODE UTF-8\r\
              PID|1||123^^^MRN&1.2.3&ISO||Doe^Jane\r",
        )
        .unwrap()
        .header();
        let head = postcard::to_stdvec(&V1Ref {
            received_at_ms: 9,
            listener: "lab",
            peer: "10.0.0.1:5",
            header: &header,
            ack: b"MSA|AA|C42",
        })
        .unwrap();
        let mut v = new_record_version(1, 0);
        v.extend_from_slice(&(head.len() as u32).to_le_bytes());
        v.extend_from_slice(&head);
        v.extend_from_slice(b"MSH|raw");
        let v = seal(v);
        let (m, raw) = decode_message(&v).unwrap();
        assert_eq!(m.received_at_ms, 9);
        assert_eq!(m.source, "lab");
        assert_eq!(m.peer, "10.0.0.1:5");
        assert_eq!(m.ack, b"MSA|AA|C42");
        assert_eq!(raw, b"MSH|raw");
        assert_eq!(
            m.meta,
            MessageMeta {
                kind: "hl7v2".into(),
                sender: "LAB|REF^1.2^ISO".into(),
                control_id: "C42".into(),
                message_type: "ORU^R01".into(),
                dedup: parts(&["LAB", "REF^1.2^ISO", "C42"]),
            }
        );
        // The de-dup key is the one version 1 wrote: d lp(listener) lp(MSH-3) lp(MSH-4) lp(MSH-10).
        let mut old = vec![P_DEDUP];
        for f in ["lab", "LAB", "REF^1.2^ISO", "C42"] {
            push_lp(&mut old, f.as_bytes());
        }
        assert_eq!(dedup_key(&m.source, &m.meta.dedup), old);
    }

    #[test]
    fn a_message_kept_until_delivered_is_version_3_and_default_ones_stay_version_2() {
        let meta = MessageMeta {
            kind: "fhir+ndjson".into(),
            control_id: "Patient/1".into(),
            dedup: parts(&["Patient/1"]),
            ..Default::default()
        };
        let enc = |retention| encode_message(7, "bulk", "", &meta, b"", b"{}", retention).unwrap();
        let v2 = enc(Retention::Default);
        assert_eq!(v2[0], MESSAGE_VERSION);
        assert_eq!(decode_message(&v2).unwrap().0.retention, Retention::Default);
        for keep_dedup in [false, true] {
            let until = Retention::UntilDelivered { keep_dedup };
            let v3 = enc(until);
            assert_eq!(v3[0], MESSAGE_VERSION_RELEASED);
            let (m, raw) = decode_message(&v3).unwrap();
            assert_eq!(
                (m.retention, m.meta, raw),
                (until, meta.clone(), &b"{}"[..])
            );
            // The version 3 head is the version 2 head plus one flag.
            assert_eq!(v3.len(), v2.len() + 1);
        }
    }

    /// Outbox entries: version 2 (tagged) is written; both version 1 forms
    /// (a bare timestamp, a postcard entry) are still read, including a
    /// postcard entry that happens to be exactly 8 bytes.
    #[test]
    fn outbox_entries_of_every_version_decode_unambiguously() {
        let e = OutboxRec {
            received_at_ms: 1_700_000_000_000,
            patient_lane: 0,
            transform: String::new(),
        };
        let v2 = encode_outbox(&e, true).unwrap();
        assert_eq!(v2[0], OUTBOX_VERSION);
        assert_eq!(decode_outbox_entry(&v2), Ok((e.clone(), true)));
        assert_eq!(
            decode_outbox(&encode_outbox(&e, false).unwrap()),
            Ok(e.clone())
        );

        // Version 1 as the journal wrote it: postcard of the entry; this
        // one is 8 bytes (6-byte varint time, lane 0, empty transform).
        let v1 = encode_postcard(&e).unwrap();
        assert_eq!((v1[0], v1.len() - HEADER_LEN), (VERSION, 8));
        assert_eq!(decode_outbox_entry(&v1), Ok((e.clone(), false)));
        let x12 = OutboxRec {
            transform: "x12-json".into(),
            ..e.clone()
        };
        assert_eq!(decode_outbox(&encode_postcard(&x12).unwrap()), Ok(x12));

        // Version 1 from before lanes: a bare big-endian time.
        let bare = seal_u64(1_700_000_000_123);
        assert_eq!(
            decode_outbox(&bare),
            Ok(OutboxRec {
                received_at_ms: 1_700_000_000_123,
                patient_lane: 0,
                transform: "none".into(),
            })
        );
        let mut bad = v2.clone();
        bad[0] = 9;
        assert!(decode_outbox(&bad).is_err());
    }

    #[test]
    fn keys_do_not_collide_across_field_boundaries() {
        assert_ne!(
            dedup_key("a", &parts(&["bc", "", "x"])),
            dedup_key("ab", &parts(&["c", "", "x"]))
        );
        assert!(outbox_key("a", 1) < outbox_key("a", 2));
        assert!(!outbox_key("ab", 1).starts_with(&outbox_prefix("a")));
        assert_eq!(outbox_id(&outbox_key("dest", 42)), Some(42));
    }
}
