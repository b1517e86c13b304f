//! The messages the journal tests append: HL7-looking bytes and the
//! `MessageMeta` the gateway's accept path would give them, built here
//! (the journal knows nothing of HL7, and its tests do not depend on the
//! gateway). Also compiled into the re-exec child
//! (`tests/bin/journal_test_child.rs`), so it uses nothing but `journal`.

use journal::{Enqueue, MessageMeta, NewMessage, KIND_HL7V2};

/// An ORU^R01 from ECW/CLINIC whose OBX-5 is `body`.
pub fn raw(control_id: &str, body: &str) -> Vec<u8> {
    format!("MSH|^~\\&|ECW|CLINIC|GW||20240101||ORU^R01|{control_id}|P|2.5.1\rOBX|1|TX|||{body}\r")
        .into_bytes()
}

/// `raw` received by `source` for `destinations`, with the AA it would
/// be answered with.
pub fn message(source: &str, control_id: &str, raw: Vec<u8>, destinations: &[&str]) -> NewMessage {
    NewMessage {
        source: source.into(),
        peer: "10.0.0.5:40000".into(),
        received_at_ms: 1_700_000_000_000,
        meta: MessageMeta {
            kind: KIND_HL7V2.into(),
            sender: "ECW|CLINIC".into(),
            control_id: control_id.into(),
            message_type: "ORU^R01".into(),
            // MSH-3, MSH-4, MSH-10: what makes a retransmission the same message.
            dedup: vec!["ECW".into(), "CLINIC".into(), control_id.into()],
        },
        ack: format!("MSH|^~\\&|GW||ECW|CLINIC|||ACK|{control_id}|P|2.5.1\rMSA|AA|{control_id}\r")
            .into_bytes(),
        raw,
        destinations: destinations.iter().map(|d| Enqueue::plain(d)).collect(),
        patient_lane: 0,
    }
}

/// A message for "cloud" from "lab" with `size` bytes of payload (above
/// sled's inline limit, about 128 KiB, it goes to a blob file).
pub fn sized(control_id: &str, size: usize) -> NewMessage {
    let mut bytes = raw(control_id, "");
    bytes.extend((0..size).map(|i| b'a' + (i % 26) as u8));
    message("lab", control_id, bytes, &["cloud"])
}

/// Message `i` (1-based) of the crash workload: every 7th is 300 KiB.
pub fn nth(i: u64) -> NewMessage {
    sized(&format!("W{i}"), if i % 7 == 0 { 300 * 1024 } else { 200 })
}
