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
//! Versions: every record is version 1 except message records, which are
//! written as version 2 since the journal stopped storing the HL7 header
//! summary ([`crate::MessageMeta`] replaced it). Version 1 message records
//! (journals written before) are still read: their HL7 header is decoded
//! with its old layout and turned into the same `MessageMeta` the accept
//! path makes for HL7 today (see [`decode_message`]).

use serde::{Deserialize, Serialize};

use crate::MessageMeta;

/// Version of every record but the message record.
pub(crate) const VERSION: u8 = 1;
/// Version of the message record (2: journal-owned [`MessageMeta`]).
pub(crate) const MESSAGE_VERSION: u8 = 2;
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
/// `c` + counter name -> counter record (u64).
pub(crate) const P_COUNTER: u8 = b'c';
/// `x` + seq (u64 BE) -> dead-letter record ([`DeadLetterRec`]).
pub(crate) const P_DEAD: u8 = b'x';
/// `X` + lp(destination) + id (u64 BE) -> seq of its dead-letter record
/// (finds a message's dead letter without scanning; pruning checks it).
pub(crate) const P_DEAD_INDEX: u8 = b'X';

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

pub(crate) fn counter_key(name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + name.len());
    k.push(P_COUNTER);
    k.extend_from_slice(name.as_bytes());
    k
}

pub(crate) fn pending_counter(dest: &str) -> String {
    format!("pending/{dest}")
}

pub(crate) fn delivered_counter(dest: &str) -> String {
    format!("delivered/{dest}")
}

/// Messages now in `dest`'s dead-letter queue.
pub(crate) fn dead_counter(dest: &str) -> String {
    format!("dead/{dest}")
}

/// Messages ever dead-lettered on `dest` (replays do not decrement it).
pub(crate) fn dead_total_counter(dest: &str) -> String {
    format!("dead_total/{dest}")
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
fn open_versioned(v: &[u8]) -> Result<(u8, &[u8]), &'static str> {
    if v.len() < HEADER_LEN {
        return Err("record shorter than its header");
    }
    if v[0] != VERSION && v[0] != MESSAGE_VERSION {
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

/// The decoded head of a message record (everything but the raw bytes).
#[derive(Deserialize)]
pub(crate) struct MessageHead {
    pub received_at_ms: u64,
    pub source: String,
    pub peer: String,
    pub meta: MessageMeta,
    pub ack: Vec<u8>,
}

pub(crate) fn encode_message(
    received_at_ms: u64,
    source: &str,
    peer: &str,
    meta: &MessageMeta,
    ack: &[u8],
    raw: &[u8],
) -> Result<Vec<u8>, postcard::Error> {
    let head = postcard::to_stdvec(&MessageHeadRef {
        received_at_ms,
        source,
        peer,
        meta,
        ack,
    })?;
    let mut v = new_record_version(MESSAGE_VERSION, 4 + head.len() + raw.len());
    v.extend_from_slice(&(head.len() as u32).to_le_bytes());
    v.extend_from_slice(&head);
    v.extend_from_slice(raw);
    Ok(seal(v))
}

/// Decoded head and the raw bytes (borrowed from the record). Reads
/// version 2 and version 1 records.
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
    let head = if version == MESSAGE_VERSION {
        postcard::from_bytes(head_bytes).map_err(|_| "message meta does not decode")?
    } else {
        postcard::from_bytes::<v1::MessageHead>(head_bytes)
            .map_err(|_| "message meta (version 1) does not decode")?
            .upgrade()
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
/// `received_at_ms`; [`decode_outbox`] reads both.)
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct OutboxRec {
    pub received_at_ms: u64,
    /// Hash of the patient (first PID-3 + authority), 0 when none: the lane.
    pub patient_lane: u64,
    /// Transform name from the route ("none", "fhir", ...).
    pub transform: String,
}

pub(crate) fn decode_outbox(v: &[u8]) -> Result<OutboxRec, &'static str> {
    let p = open(v)?;
    if p.len() == 8 {
        let mut b = [0u8; 8];
        b.copy_from_slice(p);
        return Ok(OutboxRec {
            received_at_ms: u64::from_be_bytes(b),
            patient_lane: 0,
            transform: "none".into(),
        });
    }
    postcard::from_bytes(p).map_err(|_| "outbox entry does not decode")
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
        let v = encode_message(7, "lab", "1.2.3.4:5", &meta, b"ACK", b"ISA*raw").unwrap();
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
