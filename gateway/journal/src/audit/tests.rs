//! The upgrade: a journal written before the chain (version 1 audit
//! records, no anchor) opens with its events as the genesis prefix.

use crate::record::{self as rec, AuditRec};
use crate::{Journal, JournalConfig, ProblemKind};

fn legacy(at_ms: u64, detail: &str) -> Vec<u8> {
    rec::encode_postcard(&AuditRec {
        at_ms,
        kind: "delivered".into(),
        detail: detail.into(),
    })
    .unwrap()
}

/// A sled tree as a binary from before the chain left it: events 3..=5
/// (1 and 2 pruned), no anchor.
fn write_legacy(dir: &std::path::Path) {
    let db = sled::open(dir).unwrap();
    for seq in 3..=5u64 {
        db.insert(
            rec::seq_key(rec::P_AUDIT, seq),
            legacy(seq * 10, &format!("destination=a id={seq}")),
        )
        .unwrap();
    }
    db.insert(b"cpruned_through_audit", rec::seal_u64(2))
        .unwrap();
    db.flush().unwrap();
}

#[tokio::test]
async fn old_events_become_the_genesis_prefix() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("journal");
    write_legacy(&dir);
    let j = Journal::open(JournalConfig::new(dir.clone())).unwrap();
    let r = j.audit_verify(None).unwrap();
    assert!(r.ok(), "{r:?}");
    assert_eq!((r.checked, r.genesis), (4, 3), "{r:?}");
    assert_eq!(r.anchor, format!("2:{}", "0".repeat(64)));
    let events = j.audit_events(None, 10).unwrap();
    assert_eq!(events[0].hash, None, "a genesis event has no stored link");
    assert_eq!(events[3].kind, "journal_open");
    assert_eq!(events[3].seq, 6);
    j.close().await.unwrap();
    // Still true after another open (the anchor is stored now).
    let j = Journal::open(JournalConfig::new(dir.clone())).unwrap();
    assert!(j.audit_verify(None).unwrap().ok());
    // Editing a prefix event breaks the first chained event's link.
    j.debug_put_audit_record(4, Some(legacy(40, "destination=b id=4")))
        .await
        .unwrap();
    let p = j.audit_verify(None).unwrap().problem.unwrap();
    assert_eq!((p.seq, p.kind), (3, ProblemKind::Edited), "{}", p.detail);
    assert!(p.detail.contains("genesis prefix"), "{}", p.detail);
    j.close().await.unwrap();
}
