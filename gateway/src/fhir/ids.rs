//! Deterministic resource ids.
//!
//! An id is the first 128 bits of SHA-256 over the tenant, the resource type
//! and the resource's business key (for example the PID-3 value and its
//! assigning authority), written as 32 lowercase hex digits: a valid FHIR id
//! (`[A-Za-z0-9\-\.]{1,64}`) that is the same on every replay and on every
//! gateway, and different across tenants. The parts are separated by 0x1F
//! (unit separator) so that `("ab", "c")` and `("a", "bc")` differ.
//!
//! The key is never a whole segment's text: an edit to an unrelated field
//! (a new phone number in PID-13) must update the same resource.

use ring::digest::{digest, SHA256};

/// Hex digits kept from the digest: 128 bits, collision-free in practice.
const ID_HEX_LEN: usize = 32;

/// The FHIR id of a `resource_type` with business key `key` for `tenant`.
pub fn resource_id(tenant: &str, resource_type: &str, key: &[&str]) -> String {
    let mut input = Vec::with_capacity(64 + key.iter().map(|k| k.len() + 1).sum::<usize>());
    input.extend_from_slice(tenant.as_bytes());
    input.push(0x1F);
    input.extend_from_slice(resource_type.as_bytes());
    for part in key {
        input.push(0x1F);
        input.extend_from_slice(part.as_bytes());
    }
    let hash = digest(&SHA256, &input);
    let mut id = String::with_capacity(ID_HEX_LEN);
    for byte in hash.as_ref().iter().take(ID_HEX_LEN / 2) {
        push_hex(&mut id, *byte);
    }
    id
}

fn push_hex(out: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(char::from(HEX[usize::from(byte >> 4)]));
    out.push(char::from(HEX[usize::from(byte & 0x0F)]));
}

/// `urn:uuid:` form of an id made by [`resource_id`] (for `fullUrl` and for
/// references in conditional mode, where the server picks the real id). The
/// version nibble says 5 (name-based) and the variant bits are RFC 4122.
pub fn uuid_urn(id: &str) -> String {
    let mut hex: Vec<u8> = id
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .chain(std::iter::repeat(b'0'))
        .take(32)
        .collect();
    if let Some(v) = hex.get_mut(12) {
        *v = b'5';
    }
    if let Some(v) = hex.get_mut(16) {
        // 8, 9, a or b: the two top bits are 10.
        let nibble = match *v {
            b'0'..=b'9' => *v - b'0',
            _ => (v.to_ascii_lowercase() - b'a') + 10,
        };
        *v = b"89ab"[usize::from(nibble & 0x3)];
    }
    let s = String::from_utf8_lossy(&hex).into_owned();
    let part = |a: usize, b: usize| s.get(a..b).unwrap_or_default();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        part(0, 8),
        part(8, 12),
        part(12, 16),
        part(16, 20),
        part(20, 32)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_separated() {
        let a = resource_id("t1", "Patient", &["MRN", "123"]);
        assert_eq!(a, resource_id("t1", "Patient", &["MRN", "123"]));
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, resource_id("t2", "Patient", &["MRN", "123"]));
        assert_ne!(a, resource_id("t1", "Encounter", &["MRN", "123"]));
        assert_ne!(a, resource_id("t1", "Patient", &["MRN1", "23"]));
    }

    #[test]
    fn uuid_form() {
        let u = uuid_urn(&resource_id("t", "Patient", &["1"]));
        assert_eq!(u.len(), "urn:uuid:".len() + 36);
        let uuid = &u[9..];
        assert_eq!(&uuid[14..15], "5");
        assert!("89ab".contains(&uuid[19..20]));
    }
}
