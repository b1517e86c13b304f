//! Delivery lanes. A lane is a FIFO within an outbox: messages of one lane
//! are delivered strictly in the order received; lanes run concurrently.
//! The patient lane key is a stable hash of the first PID-3 value and its
//! assigning authority, stored with each outbox entry, so the deliverer can
//! schedule without loading messages and no identifier is stored twice in
//! clear. Pure.
//!
//! A merge (ADT A40, A47: MRG-1 merged into PID-3) touches two patients.
//! Its entry sits on the PID-3 lane; [`merged_lanes`] gives the MRG-1
//! lanes, and the deliverer starts the merge only once the earlier
//! messages of those lanes are done too (`deliver::outbox`).

use hl7::{HeaderSummary, Message};

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
        Some(p) => lane_of(&p.id, &p.assigning_authority),
        None => 0,
    }
}

fn lane_of(id: &str, authority: &str) -> u64 {
    if id.trim().is_empty() {
        return 0;
    }
    // 0 is reserved for "no patient".
    fnv1a(&[id.trim().as_bytes(), authority.trim().as_bytes()]).max(1)
}

/// The lanes of the patients `msg` merges away (each MRG-1's first
/// repetition, keyed as the header keys PID-3: CX.1 and CX.4's namespace
/// id, else its universal id), without `own` and without repeats. Empty
/// for a message without MRG.
pub fn merged_lanes(msg: &Message<'_>, own: u64) -> Vec<u64> {
    let mut lanes = Vec::new();
    for mrg in msg.segments_named("MRG") {
        let cx = mrg.field(1).repetition(1);
        let hd = cx.component(4);
        let namespace = hd.subcomponent(1);
        let authority = if namespace.is_empty() {
            hd.subcomponent(2)
        } else {
            namespace
        };
        let lane = lane_of(&cx.component(1).text(), &authority.text());
        if lane != 0 && lane != own && !lanes.contains(&lane) {
            lanes.push(lane);
        }
    }
    lanes
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

    #[test]
    fn a_merge_names_the_lane_of_the_patient_merged_away() {
        let raw = b"MSH|^~\\&|ECW|C|GW|CL|20240101||ADT^A40|9|P|2.5.1\rPID|1||MRN2^^^ECW^MR\rMRG|MRN1^^^ECW^MR~X9^^^OTHER\r";
        let msg = Message::parse(raw).unwrap();
        let own = patient_lane(&msg.header());
        assert_eq!(own, patient_lane(&h("MRN2", "ECW")));
        // The lane MRN1's own messages were on (their PID-3 is MRN1^^^ECW).
        assert_eq!(
            merged_lanes(&msg, own),
            vec![patient_lane(&h("MRN1", "ECW"))]
        );
        // Not the message's own lane, and nothing for a message without MRG.
        assert!(merged_lanes(&msg, patient_lane(&h("MRN1", "ECW"))).is_empty());
        let a08 =
            Message::parse(b"MSH|^~\\&|A|B|C|D|20240101||ADT^A08|1|P|2.5.1\rPID|1||MRN2^^^ECW\r")
                .unwrap();
        assert!(merged_lanes(&a08, 0).is_empty());
    }
}
