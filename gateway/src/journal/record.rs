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

use serde::{Deserialize, Serialize};

use hl7::HeaderSummary;

pub(crate) const VERSION: u8 = 1;
const HEADER_LEN: usize = 5;

// ---- key prefixes (one sled tree; the first byte says what the key is) ----

/// `m` + id (u64 BE) -> message record.
pub(crate) const P_MESSAGE: u8 = b'm';
/// `d` + lp(listener) lp(MSH-3) lp(MSH-4) lp(MSH-10) -> dedup record (id).
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

pub(crate) fn dedup_key(listener: &str, msh3: &str, msh4: &str, msh10: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + 16 + listener.len() + msh3.len() + msh4.len() + msh10.len());
    k.push(P_DEDUP);
    push_lp(&mut k, listener.as_bytes());
    push_lp(&mut k, msh3.as_bytes());
    push_lp(&mut k, msh4.as_bytes());
    push_lp(&mut k, msh10.as_bytes());
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
    let mut v = Vec::with_capacity(HEADER_LEN + capacity);
    v.extend_from_slice(&[VERSION, 0, 0, 0, 0]);
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
    if v.len() < HEADER_LEN {
        return Err("record shorter than its header");
    }
    if v[0] != VERSION {
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
    Ok(&v[HEADER_LEN..])
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
// payload = meta_len: u32 LE | postcard(MessageMeta) | raw bytes
// raw is appended after the postcard part so it is copied exactly once on
// write (into the record buffer) and sliced, not decoded, on read.

#[derive(Serialize)]
struct MessageMetaRef<'a> {
    received_at_ms: u64,
    listener: &'a str,
    peer: &'a str,
    header: &'a HeaderSummary,
    ack: &'a [u8],
}

#[derive(Deserialize)]
pub(crate) struct MessageMeta {
    pub received_at_ms: u64,
    pub listener: String,
    pub peer: String,
    pub header: HeaderSummary,
    pub ack: Vec<u8>,
}

pub(crate) fn encode_message(
    received_at_ms: u64,
    listener: &str,
    peer: &str,
    header: &HeaderSummary,
    ack: &[u8],
    raw: &[u8],
) -> Result<Vec<u8>, postcard::Error> {
    let meta = postcard::to_stdvec(&MessageMetaRef {
        received_at_ms,
        listener,
        peer,
        header,
        ack,
    })?;
    let mut v = new_record(4 + meta.len() + raw.len());
    v.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    v.extend_from_slice(&meta);
    v.extend_from_slice(raw);
    Ok(seal(v))
}

/// Decoded meta and the raw bytes (borrowed from the record).
pub(crate) fn decode_message(v: &[u8]) -> Result<(MessageMeta, &[u8]), &'static str> {
    let p = open(v)?;
    if p.len() < 4 {
        return Err("message payload too short");
    }
    let mut l = [0u8; 4];
    l.copy_from_slice(&p[..4]);
    let meta_len = u32::from_le_bytes(l) as usize;
    let rest = &p[4..];
    if meta_len > rest.len() {
        return Err("message meta length out of range");
    }
    let meta: MessageMeta =
        postcard::from_bytes(&rest[..meta_len]).map_err(|_| "message meta does not decode")?;
    Ok((meta, &rest[meta_len..]))
}

// ---- quarantine and audit records (postcard payloads) ----

#[derive(Serialize, Deserialize)]
pub(crate) struct QuarantineRec {
    pub listener: String,
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

    #[test]
    fn message_round_trip() {
        let h = HeaderSummary {
            control_id: "X1".into(),
            ..Default::default()
        };
        let v = encode_message(7, "lab", "1.2.3.4:5", &h, b"ACK", b"MSH|raw").unwrap();
        let (m, raw) = decode_message(&v).unwrap();
        assert_eq!(m.received_at_ms, 7);
        assert_eq!(m.listener, "lab");
        assert_eq!(m.peer, "1.2.3.4:5");
        assert_eq!(m.header, h);
        assert_eq!(m.ack, b"ACK");
        assert_eq!(raw, b"MSH|raw");
    }

    #[test]
    fn keys_do_not_collide_across_field_boundaries() {
        assert_ne!(dedup_key("a", "bc", "", "x"), dedup_key("ab", "c", "", "x"));
        assert!(outbox_key("a", 1) < outbox_key("a", 2));
        assert!(!outbox_key("ab", 1).starts_with(&outbox_prefix("a")));
        assert_eq!(outbox_id(&outbox_key("dest", 42)), Some(42));
    }
}
