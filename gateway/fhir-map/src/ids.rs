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
    let hex = id
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .chain(std::iter::repeat(b'0'))
        .take(32);
    let mut out = String::with_capacity(UUID_URN_LEN);
    out.push_str("urn:uuid:");
    for (i, digit) in hex.enumerate() {
        if matches!(i, 8 | 12 | 16 | 20) {
            out.push('-');
        }
        let digit = match i {
            12 => b'5',
            // 8, 9, a or b: the two top bits are 10.
            16 => {
                let nibble = match digit {
                    b'0'..=b'9' => digit - b'0',
                    _ => (digit.to_ascii_lowercase() - b'a') + 10,
                };
                b"89ab"[usize::from(nibble & 0x3)]
            }
            _ => digit,
        };
        out.push(char::from(digit));
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
    fn uuid_form() {
        let u = uuid_urn(&resource_id("t", "Patient", &["1"]));
        assert_eq!(u.len(), "urn:uuid:".len() + 36);
        let uuid = &u[9..];
        assert_eq!(&uuid[14..15], "5");
        assert!("89ab".contains(&uuid[19..20]));
    }
}
