//! Staging the release of messages kept only until delivered, against a
//! real (temporary) sled tree plus the group's staged ops.

use crate::counter::Counter;
use crate::record::{self as rec, DeadLetterRec, ReleasedRec};
use crate::test_support::{dedup_key, msg};
use crate::writer::staging::fixture::Fixture;
use crate::{Appended, KeyReuse, Policy, Retention};

fn until_delivered(keep_dedup: bool) -> Policy {
    Policy {
        retention: Retention::UntilDelivered { keep_dedup },
        key_reuse: KeyReuse::StoreNew,
    }
}

fn release_flag(f: &Fixture, dest: &str, id: u64) -> bool {
    let v = f.value(&rec::outbox_key(dest, id)).unwrap();
    rec::decode_outbox_entry(&v).unwrap().1
}

fn audit_kinds(f: &Fixture) -> Vec<String> {
    f.staged_audits().into_iter().map(|a| a.kind).collect()
}

#[test]
fn a_message_is_released_with_its_last_outbox_entry_and_its_key_goes_with_it() {
    let mut f = Fixture::new();
    let m = msg("R1", "resource", &[("cloud", "none"), ("lab", "none")]);
    f.append_with(&m, until_delivered(false)).unwrap();
    assert!(release_flag(&f, "cloud", 1));
    f.commit();
    f.st().delivered("cloud", 1).unwrap();
    assert!(
        f.value(&rec::message_key(1)).is_some(),
        "still on lab's outbox"
    );
    assert_eq!(f.count(Counter::Released), 0);
    f.st().delivered("lab", 1).unwrap();
    assert_eq!(f.value(&rec::message_key(1)), None);
    assert_eq!(f.value(&dedup_key(&m)), None);
    assert_eq!(f.value(&rec::seq_key(rec::P_RELEASED, 1)), None);
    assert_eq!(f.count(Counter::Released), 1);
    assert_eq!(f.count(Counter::PrunedThroughId), 1);
    assert_eq!(f.count(Counter::Delivered("lab".into())), 1);
    assert_eq!(audit_kinds(&f), ["delivered", "delivered", "released"]);
    assert_eq!(f.staged_audits()[2].detail, "id=1 source=lab dedup=removed");
    // Forgotten: the same bytes again are a new message.
    f.commit();
    assert_eq!(
        f.append_with(&m, until_delivered(false)).unwrap(),
        Appended::Stored { id: 2 }
    );
}

#[test]
fn with_keep_dedup_a_released_message_still_answers_retransmissions_and_reuses() {
    let mut f = Fixture::new();
    let m = msg("R1", "file bytes", &[("cloud", "none")]);
    f.append_with(&m, until_delivered(true)).unwrap();
    f.st().delivered("cloud", 1).unwrap();
    assert_eq!(f.value(&rec::message_key(1)), None);
    let d = f.value(&dedup_key(&m)).unwrap();
    assert_eq!(rec::open_u64(&d), Ok(1), "the key still names message 1");
    let gone: ReleasedRec =
        rec::decode_postcard(&f.value(&rec::seq_key(rec::P_RELEASED, 1)).unwrap()).unwrap();
    assert_eq!(gone.raw_len, m.raw.len() as u64);
    assert_eq!(gone.raw_sha256, rec::raw_digest(&m.raw));
    assert_eq!(gone.dedup_key, dedup_key(&m));
    assert_eq!(
        f.staged_audits().last().unwrap().detail,
        "id=1 source=lab dedup=kept"
    );
    f.commit();
    // Same bytes: a duplicate with the first ACK, in sled and in the group.
    for _ in 0..2 {
        assert_eq!(
            f.append_with(&m, until_delivered(true)).unwrap(),
            Appended::Duplicate {
                id: 1,
                first_ack: m.ack.clone()
            }
        );
    }
    // Other bytes under the key: refused, or stored as a reuse.
    let other = msg("R1", "other bytes", &[("cloud", "none")]);
    let refuse = Policy {
        key_reuse: KeyReuse::Refuse,
        ..until_delivered(true)
    };
    assert_eq!(
        f.append_with(&other, refuse).unwrap(),
        Appended::KeyReused { id: 1 }
    );
    assert_eq!(f.append(&other).unwrap(), Appended::Stored { id: 2 });
    assert_eq!(f.count(Counter::ControlIdReuses), 1);
    assert_eq!(f.count(Counter::Duplicates), 2);
}

#[test]
fn a_message_that_goes_nowhere_is_released_in_its_own_append_and_its_bytes_never_stored() {
    let mut f = Fixture::new();
    let kept = msg("N1", "unrouted", &[]);
    let forgotten = msg("N2", "unrouted too", &[]);
    assert_eq!(
        f.append_with(&kept, until_delivered(true)).unwrap(),
        Appended::Stored { id: 1 }
    );
    assert_eq!(
        f.append_with(&forgotten, until_delivered(false)).unwrap(),
        Appended::Stored { id: 2 }
    );
    let raw_staged = f.staged.ops().any(|op| match op {
        crate::wal::Op::Set(_, v) => v.windows(8).any(|w| w == b"unrouted"),
        crate::wal::Op::Remove(_) => false,
    });
    assert!(!raw_staged, "the raw bytes are not in the WAL record");
    for id in [1, 2] {
        assert_eq!(f.value(&rec::message_key(id)), None);
    }
    assert!(f.value(&rec::seq_key(rec::P_RELEASED, 1)).is_some());
    assert_eq!(rec::open_u64(&f.value(&dedup_key(&kept)).unwrap()), Ok(1));
    assert_eq!(f.value(&dedup_key(&forgotten)), None);
    assert_eq!(f.value(&rec::seq_key(rec::P_RELEASED, 2)), None);
    assert_eq!(f.count(Counter::Messages), 2);
    assert_eq!(f.count(Counter::Released), 2);
    // Ids are not reused although no message record holds them.
    assert_eq!(f.count(Counter::PrunedThroughId), 2);
    assert_eq!(f.state.next_id, 3);
    assert!(matches!(
        f.append_with(&kept, until_delivered(true)).unwrap(),
        Appended::Duplicate { id: 1, .. }
    ));
}

fn dead(id: u64, entry: rec::OutboxRec) -> DeadLetterRec {
    DeadLetterRec {
        destination: "cloud".into(),
        message_id: id,
        entry,
        attempts: 5,
        first_attempt_ms: 1,
        last_attempt_ms: 2,
        dead_at_ms: 3,
        last_error: "HTTP 422".into(),
    }
}

#[test]
fn a_dead_letter_holds_the_message_until_replayed_and_delivered_or_purged() {
    let mut f = Fixture::new();
    let a = msg("D1", "a", &[("cloud", "none")]);
    let b = msg("D2", "b", &[("cloud", "none")]);
    f.append_with(&a, until_delivered(false)).unwrap();
    f.append_with(&b, until_delivered(false)).unwrap();
    f.commit();
    for id in [1, 2] {
        let entry = rec::decode_outbox(&f.value(&rec::outbox_key("cloud", id)).unwrap()).unwrap();
        f.st().dead_letter(dead(id, entry)).unwrap();
        assert!(
            f.value(&rec::message_key(id)).is_some(),
            "held by its dead letter"
        );
    }
    // Replayed: back on the outbox with its release flag, released once delivered.
    f.st().replay(1, "alice").unwrap();
    assert!(release_flag(&f, "cloud", 1));
    assert!(f.value(&rec::message_key(1)).is_some());
    f.st().delivered("cloud", 1).unwrap();
    assert_eq!(f.value(&rec::message_key(1)), None);
    // Purged: released at once.
    f.st().purge(2, "alice").unwrap();
    assert_eq!(f.value(&rec::message_key(2)), None);
    assert_eq!(f.value(&dedup_key(&b)), None);
    assert_eq!(f.count(Counter::Released), 2);
    assert_eq!(f.count(Counter::Dead("cloud".into())), 0);
    assert_eq!(
        audit_kinds(&f),
        [
            "dead_letter",
            "dead_letter",
            "dlq_replay",
            "delivered",
            "released",
            "dlq_purge",
            "released"
        ]
    );
}

#[test]
fn default_messages_are_kept_after_delivery_and_their_entries_say_so() {
    let mut f = Fixture::new();
    let m = msg("K1", "kept", &[("cloud", "none")]);
    f.append(&m).unwrap();
    assert!(!release_flag(&f, "cloud", 1));
    f.commit();
    f.st().delivered("cloud", 1).unwrap();
    assert!(f.value(&rec::message_key(1)).is_some());
    let entry =
        rec::decode_outbox(&f.db.get(rec::outbox_key("cloud", 1)).unwrap().unwrap()).unwrap();
    f.st().dead_letter(dead(1, entry)).unwrap();
    assert_eq!(f.count(Counter::Released), 0);
    assert_eq!(audit_kinds(&f), ["delivered", "dead_letter"]);
    let (head, _) = rec::decode_message(&f.value(&rec::message_key(1)).unwrap()).unwrap();
    assert_eq!(head.retention, Retention::Default);
    assert_eq!(
        f.value(&rec::message_key(1)).unwrap()[0],
        rec::MESSAGE_VERSION
    );
}

#[test]
fn a_message_whose_key_was_reused_since_leaves_the_newer_key_alone() {
    let mut f = Fixture::new();
    let first = msg("U1", "first", &[("cloud", "none")]);
    let newer = msg("U1", "newer", &[]);
    f.append_with(&first, until_delivered(true)).unwrap();
    f.append(&newer).unwrap();
    f.st().delivered("cloud", 1).unwrap();
    assert_eq!(f.value(&rec::message_key(1)), None);
    assert_eq!(rec::open_u64(&f.value(&dedup_key(&first)).unwrap()), Ok(2));
    assert_eq!(f.value(&rec::seq_key(rec::P_RELEASED, 1)), None);
    assert_eq!(
        f.staged_audits().last().unwrap().detail,
        "id=1 source=lab dedup=unchanged"
    );
}

#[test]
fn retention_removes_released_keys_older_than_the_cutoff_only() {
    let mut f = Fixture::new();
    let old = msg("P1", "old", &[]);
    let mut new = msg("P2", "new", &[]);
    new.received_at_ms += 10_000;
    f.append_with(&old, until_delivered(true)).unwrap();
    f.append_with(&new, until_delivered(true)).unwrap();
    f.commit();
    let cutoff = old.received_at_ms + 1;
    let r = f.st().prune(cutoff, 0, 100).unwrap();
    assert_eq!((r.released_keys, r.messages), (1, 0));
    assert_eq!(f.value(&rec::seq_key(rec::P_RELEASED, 1)), None);
    assert_eq!(f.value(&dedup_key(&old)), None);
    assert!(f.value(&rec::seq_key(rec::P_RELEASED, 2)).is_some());
    assert!(f.value(&dedup_key(&new)).is_some());
    let last = f.staged_audits().pop().unwrap();
    assert_eq!(last.kind, "retention_prune");
    assert!(last.detail.contains("released_keys=1"), "{}", last.detail);
    // Then the key is free: the same bytes are a new message.
    f.commit();
    assert_eq!(
        f.append_with(&old, until_delivered(true)).unwrap(),
        Appended::Stored { id: 3 }
    );
}

#[test]
fn a_released_message_takes_its_journey_state_with_it() {
    let mut f = Fixture::new();
    let m = msg("R1", "resource", &[("cloud", "none")]);
    f.append_with(&m, until_delivered(false)).unwrap();
    let ns = format!("{}cloud", crate::JOURNEY_NAMESPACE_PREFIX);
    f.batch(
        Vec::new(),
        vec![crate::StateOp::put(&ns, &1u64.to_be_bytes(), b"history")],
    )
    .unwrap();
    f.commit();
    let key = crate::state::journey_key("cloud", 1);
    assert!(f.value(&key).is_some());
    f.st().delivered("cloud", 1).unwrap();
    assert_eq!(f.value(&rec::message_key(1)), None);
    assert_eq!(f.value(&key), None, "released with the message");
}
