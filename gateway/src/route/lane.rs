//! Delivery lanes. A lane is a FIFO within an outbox: messages of one lane
//! are delivered strictly in the order received; lanes run concurrently.
//! The patient lane key is a stable hash of the first PID-3 value and its
//! assigning authority, stored with each outbox entry, so the deliverer can
//! schedule without loading messages and no identifier is stored twice in
//! clear. Pure.

use hl7::HeaderSummary;

/// FNV-1a 64: tiny, stable across builds and platforms (the value is
/// persisted), and good enough here: a collision only merges two patients'
/// lanes (order is still kept; they just share a queue).
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Separator so ("ab","c") and ("a","bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The patient lane of a message: 0 when it names no patient (all such
/// messages share one lane, so their relative order is kept too).
pub fn patient_lane(header: &HeaderSummary) -> u64 {
    match &header.patient_id {
        Some(p) if !p.id.trim().is_empty() => {
            let h = fnv1a(&[
                p.id.trim().as_bytes(),
                p.assigning_authority.trim().as_bytes(),
            ]);
            // 0 is reserved for "no patient".
            h.max(1)
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hl7::header::PatientId;

    fn h(id: &str, auth: &str) -> HeaderSummary {
        HeaderSummary {
            patient_id: Some(PatientId {
                id: id.into(),
                assigning_authority: auth.into(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn same_patient_same_lane_and_stable() {
        assert_eq!(
            patient_lane(&h("123", "MRN")),
            patient_lane(&h("123", "MRN"))
        );
        assert_ne!(
            patient_lane(&h("123", "MRN")),
            patient_lane(&h("123", "OTHER"))
        );
        assert_ne!(
            patient_lane(&h("12", "3MRN")),
            patient_lane(&h("123", "MRN"))
        );
        assert_eq!(patient_lane(&HeaderSummary::default()), 0);
        assert_eq!(patient_lane(&h("  ", "MRN")), 0);
    }
}
