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

use ring::digest::{Context, SHA256};

/// Hex digits kept from the digest: 128 bits, collision-free in practice.
const ID_HEX_LEN: usize = 32;

/// The FHIR id of a `resource_type` with business key `key` for `tenant`.
pub fn resource_id(tenant: &str, resource_type: &str, key: &[&str]) -> String {
    // Fed part by part: the digest of the joined input, without joining.
    let mut hasher = Context::new(&SHA256);
    hasher.update(tenant.as_bytes());
    hasher.update(&[0x1F]);
    hasher.update(resource_type.as_bytes());
    for part in key {
        hasher.update(&[0x1F]);
        hasher.update(part.as_bytes());
    }
    let hash = hasher.finish();
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
    // The first 32 hex digits of `id`, padded with zeros.
    let mut hex = [b'0'; 32];
    for (slot, digit) in hex.iter_mut().zip(id.bytes().filter(u8::is_ascii_hexdigit)) {
        *slot = digit;
    }
    hex[12] = b'5';
    // 8, 9, a or b: the two top bits are 10.
    let nibble = match hex[16] {
        d @ b'0'..=b'9' => d - b'0',
        d => (d.to_ascii_lowercase() - b'a') + 10,
    };
    hex[16] = b"89ab"[usize::from(nibble & 0x3)];
    let mut out = String::with_capacity(UUID_URN_LEN);
    out.push_str("urn:uuid:");
    for (i, group) in [0..8, 8..12, 12..16, 16..20, 20..32]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            out.push('-');
        }
        // ASCII hex digits: always valid UTF-8.
        out.push_str(std::str::from_utf8(&hex[group]).unwrap_or_default());
    }
    out
}

/// `urn:uuid:` and 36 characters.
const UUID_URN_LEN: usize = 45;

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
    fn uuid_digits_and_padding() {
        let u = uuid_urn("0123456789abcdef0123456789ABCDEF");
        assert_eq!(u, "urn:uuid:01234567-89ab-5def-8123-456789ABCDEF");
        // Fewer than 32 hex digits (non-hex skipped): padded with zeros.
        assert_eq!(
            uuid_urn("ab-c"),
            "urn:uuid:abc00000-0000-5000-8000-000000000000"
        );
        assert_eq!(
            uuid_urn("0000000000000000f"),
            "urn:uuid:00000000-0000-5000-b000-000000000000"
        );
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
