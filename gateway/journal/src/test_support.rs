//! What the unit tests of several modules share: a test message.

use crate::record as rec;
use crate::{Enqueue, MessageMeta, NewMessage};

/// An ORU^R01-like message from source "lab" with control id (and de-dup
/// key) `control_id`, on `dests` as (destination, transform).
pub(crate) fn msg(control_id: &str, body: &str, dests: &[(&str, &str)]) -> NewMessage {
    NewMessage {
        source: "lab".into(),
        peer: "10.0.0.5:40000".into(),
        received_at_ms: 1_000_000_000_000,
        meta: MessageMeta {
            kind: crate::KIND_HL7V2.into(),
            sender: "ECW|CLINIC".into(),
            control_id: control_id.into(),
            message_type: "ORU^R01".into(),
            dedup: vec!["ECW".into(), "CLINIC".into(), control_id.into()],
        },
        raw: format!("MSH|^~\\&|ECW|CLINIC|||1||ORU^R01|{control_id}|P|2.5.1\rOBX|1|TX|||{body}\r")
            .into_bytes(),
        ack: format!("MSA|AA|{control_id}").into_bytes(),
        destinations: dests
            .iter()
            .map(|(d, t)| Enqueue {
                destination: d.to_string(),
                transform: t.to_string(),
            })
            .collect(),
        patient_lane: 7,
    }
}

pub(crate) fn dedup_key(m: &NewMessage) -> Vec<u8> {
    rec::dedup_key(&m.source, &m.meta.dedup)
}

/// A runtime for the async journal API (the writer is its own thread).
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A journal in `<dir>/j` with the default config.
pub(crate) fn open(dir: &std::path::Path) -> crate::Journal {
    crate::Journal::open(crate::JournalConfig::new(dir.join("j"))).unwrap()
}
