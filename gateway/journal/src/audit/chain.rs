//! The audit hash chain, pure (no I/O): what an event's chain hash covers,
//! byte by byte, and how an audit record is encoded.
//!
//! The chain hash of event `seq` is SHA-256 over its *canonical encoding*:
//!
//! ```text
//! "CGAUDIT1"                 8 bytes, ASCII (domain tag, version 1)
//! seq                        u64 big endian
//! at_ms                      u64 big endian (ms since the Unix epoch)
//! len(kind)   ‖ kind         u32 big endian ‖ UTF-8 bytes
//! len(detail) ‖ detail       u32 big endian ‖ UTF-8 bytes
//! prev                       32 bytes: the chain hash of event seq - 1
//! ```
//!
//! (the lengths make every boundary unforgeable). A chained record
//! (record version 2) stores `prev`; a record written before the chain
//! (version 1, the *genesis prefix*) does not, and its `prev` is the chain
//! hash computed for the event before it, so the first chained event links
//! to the whole prefix and editing a prefix event breaks that link. The
//! chain starts at the *anchor* (`A` key): the seq and hash of the last
//! event before the oldest one kept (all-zero hash for a journal's first
//! event or an upgraded journal's oldest kept event; the last pruned event's
//! seq and hash after retention).

use serde::{Deserialize, Serialize};

use crate::record;

/// The canonical encoding's domain tag.
const TAG: &[u8; 8] = b"CGAUDIT1";
/// Record version of a chained audit event.
pub(crate) const AUDIT_VERSION: u8 = 2;

/// A point in the chain: an event's seq and chain hash (seq 0 with the
/// zero hash: before the first event).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: u64,
    pub hash: [u8; 32],
}

impl ChainHead {
    /// `SEQ:HEX`, the form `gateway audit verify --head` takes.
    pub fn to_text(&self) -> String {
        format!("{}:{}", self.seq, hex(&self.hash))
    }

    /// Parse `SEQ:HEX` (64 hex digits).
    pub fn parse(s: &str) -> Result<ChainHead, String> {
        let (seq, h) = s
            .trim()
            .split_once(':')
            .ok_or_else(|| format!("{s:?}: expected SEQ:HASH (e.g. 42:9f86d0…, 64 hex digits)"))?;
        let seq = seq
            .parse::<u64>()
            .map_err(|_| format!("{s:?}: SEQ {seq:?} is not a number"))?;
        let hash = unhex(h).ok_or_else(|| format!("{s:?}: HASH must be 64 hex digits"))?;
        Ok(ChainHead { seq, hash })
    }
}

/// Lower-case hex of `b`.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The chain hash of an event (see the module doc for the bytes).
pub(crate) fn chain_hash(
    seq: u64,
    at_ms: u64,
    kind: &str,
    detail: &str,
    prev: &[u8; 32],
) -> [u8; 32] {
    let mut c = ring::digest::Context::new(&ring::digest::SHA256);
    c.update(TAG);
    c.update(&seq.to_be_bytes());
    c.update(&at_ms.to_be_bytes());
    c.update(&(kind.len() as u32).to_be_bytes());
    c.update(kind.as_bytes());
    c.update(&(detail.len() as u32).to_be_bytes());
    c.update(detail.as_bytes());
    c.update(prev);
    let mut out = [0u8; 32];
    out.copy_from_slice(c.finish().as_ref());
    out
}

/// A chained audit record's payload. The version 1 fields come first, so a
/// binary from before the chain still reads it (postcard ignores the rest).
#[derive(Serialize, Deserialize)]
struct AuditRecV2 {
    at_ms: u64,
    kind: String,
    detail: String,
    seq: u64,
    prev: [u8; 32],
}

/// An audit record as stored: `prev` is `None` in the genesis prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredAudit {
    /// The seq the record says it has (`None` in version 1, where only the key holds it).
    pub seq: Option<u64>,
    pub at_ms: u64,
    pub kind: String,
    pub detail: String,
    pub prev: Option<[u8; 32]>,
}

pub(crate) fn encode(
    seq: u64,
    at_ms: u64,
    kind: &str,
    detail: &str,
    prev: &[u8; 32],
) -> Result<Vec<u8>, postcard::Error> {
    let body = postcard::to_stdvec(&AuditRecV2 {
        at_ms,
        kind: kind.to_string(),
        detail: detail.to_string(),
        seq,
        prev: *prev,
    })?;
    Ok(record::seal_version(AUDIT_VERSION, &body))
}

pub(crate) fn decode(v: &[u8]) -> Result<StoredAudit, &'static str> {
    let (version, p) = record::open_versioned(v)?;
    match version {
        AUDIT_VERSION => {
            let r: AuditRecV2 = postcard::from_bytes(p).map_err(|_| "payload does not decode")?;
            Ok(StoredAudit {
                seq: Some(r.seq),
                at_ms: r.at_ms,
                kind: r.kind,
                detail: r.detail,
                prev: Some(r.prev),
            })
        }
        record::VERSION => {
            let r: record::AuditRec =
                postcard::from_bytes(p).map_err(|_| "payload does not decode")?;
            Ok(StoredAudit {
                seq: None,
                at_ms: r.at_ms,
                kind: r.kind,
                detail: r.detail,
                prev: None,
            })
        }
        _ => Err("unknown audit record version"),
    }
}

impl StoredAudit {
    /// This event's chain hash, given the running hash of the event before
    /// (used only for a genesis-prefix record, which stores no `prev`).
    pub(crate) fn hash(&self, seq: u64, running: &[u8; 32]) -> [u8; 32] {
        let prev = self.prev.as_ref().unwrap_or(running);
        chain_hash(seq, self.at_ms, &self.kind, &self.detail, prev)
    }
}

/// The anchor record: `seq:u64be ‖ hash`.
pub(crate) fn encode_anchor(a: &ChainHead) -> Vec<u8> {
    let mut body = Vec::with_capacity(40);
    body.extend_from_slice(&a.seq.to_be_bytes());
    body.extend_from_slice(&a.hash);
    record::seal_version(record::VERSION, &body)
}

pub(crate) fn decode_anchor(v: &[u8]) -> Result<ChainHead, &'static str> {
    let p = record::open(v)?;
    if p.len() != 40 {
        return Err("wrong payload length");
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&p[..8]);
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&p[8..]);
    Ok(ChainHead {
        seq: u64::from_be_bytes(seq),
        hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_bytes_are_as_documented() {
        let prev = [7u8; 32];
        let mut want = b"CGAUDIT1".to_vec();
        want.extend_from_slice(&5u64.to_be_bytes());
        want.extend_from_slice(&1000u64.to_be_bytes());
        want.extend_from_slice(&[0, 0, 0, 1, b'k']);
        want.extend_from_slice(&[0, 0, 0, 2, b'd', b'e']);
        want.extend_from_slice(&prev);
        let d = ring::digest::digest(&ring::digest::SHA256, &want);
        assert_eq!(&chain_hash(5, 1000, "k", "de", &prev)[..], d.as_ref());
        // A boundary moved between kind and detail changes the hash.
        assert_ne!(
            chain_hash(5, 1000, "kd", "e", &prev),
            chain_hash(5, 1000, "k", "de", &prev)
        );
    }

    #[test]
    fn records_round_trip_and_old_readers_still_read_v2() {
        let v = encode(9, 42, "delivered", "destination=a id=1", &[1; 32]).unwrap();
        let s = decode(&v).unwrap();
        assert_eq!(s.seq, Some(9));
        assert_eq!(s.prev, Some([1; 32]));
        let old: record::AuditRec = record::decode_postcard(&v).unwrap();
        assert_eq!((old.at_ms, old.kind.as_str()), (42, "delivered"));
        let v1 = record::encode_postcard(&record::AuditRec {
            at_ms: 1,
            kind: "k".into(),
            detail: "d".into(),
        })
        .unwrap();
        assert_eq!(decode(&v1).unwrap().prev, None);
    }

    #[test]
    fn head_text_round_trips() {
        let h = ChainHead {
            seq: 12,
            hash: [0xab; 32],
        };
        assert_eq!(ChainHead::parse(&h.to_text()), Ok(h));
        assert!(ChainHead::parse("12").is_err());
        assert!(ChainHead::parse("x:00").is_err());
        assert!(ChainHead::parse("1:zz").is_err());
    }

    #[test]
    fn anchor_round_trips() {
        let a = ChainHead {
            seq: 3,
            hash: [9; 32],
        };
        assert_eq!(decode_anchor(&encode_anchor(&a)), Ok(a));
    }
}
