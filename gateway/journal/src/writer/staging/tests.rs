//! Staging against a real (temporary) sled tree plus the ops the group
//! already staged: what each request stages, and that a refused or failed
//! request stages nothing.

use super::fixture::Fixture;
use crate::counter::Counter;
use crate::record::{self as rec, DeadLetterRec, OutboxRec};
use crate::test_support::{dedup_key, msg};
use crate::{dlq_notify_key, Appended, JournalError, Policy, Quarantined};

#[test]
fn append_stages_message_dedup_entry_one_outbox_entry_per_destination_and_counters() {
    let mut f = Fixture::new();
    let m = msg(
        "C1",
        "x",
        &[("cloud", "fhir"), ("lab2", "none"), ("cloud", "none")],
    );
    assert_eq!(f.append(&m).unwrap(), Appended::Stored { id: 1 });

    let (head, raw) =
        rec::decode_message(f.staged.staged(&rec::message_key(1)).unwrap().unwrap()).unwrap();
    assert_eq!(raw, m.raw.as_slice());
    assert_eq!(head.ack, m.ack);
    let d = f.staged.staged(&dedup_key(&m)).unwrap().unwrap();
    assert_eq!(rec::open_u64(d), Ok(1));
    let cloud = f
        .staged
        .staged(&rec::outbox_key("cloud", 1))
        .unwrap()
        .unwrap();
    // The first route's transform wins.
    assert_eq!(
        rec::decode_outbox(cloud).unwrap(),
        OutboxRec {
            received_at_ms: 1_000_000_000_000,
            patient_lane: 7,
            transform: "fhir".into()
        }
    );
    assert!(f.staged.staged(&rec::outbox_key("lab2", 1)).is_some());
    assert_eq!(f.staged.staged_sets(&[rec::P_OUTBOX]).count(), 2);

    for (c, n) in [
        (Counter::Messages, 1),
        (Counter::Pending("cloud".into()), 1),
        (Counter::Pending("lab2".into()), 1),
    ] {
        assert_eq!(f.count(c.clone()), n, "{c:?} in memory");
        assert_eq!(f.staged_count(&c), Some(n), "{c:?} staged");
    }
    assert_eq!(f.state.next_id, 2);
    assert_eq!(
        f.wake.iter().map(String::as_str).collect::<Vec<_>>(),
        ["cloud", "lab2"]
    );
    assert!(f.staged_audits().is_empty());
    // Staged only: sled sees it once the group is logged and applied.
    assert_eq!(f.db.get(rec::message_key(1)).unwrap(), None);
}

#[test]
fn a_retransmission_is_a_duplicate_within_the_group_and_against_the_tree() {
    let mut f = Fixture::new();
    let m = msg("C1", "x", &[("cloud", "none")]);
    assert_eq!(f.append(&m).unwrap(), Appended::Stored { id: 1 });
    let ops = f.ops();
    let first_ack = m.ack.clone();
    assert_eq!(
        f.append(&m).unwrap(),
        Appended::Duplicate {
            id: 1,
            first_ack: first_ack.clone()
        }
    );
    // Only the counter changed: no second message, no second outbox entry.
    assert_eq!(f.ops(), ops + 1);
    assert_eq!(f.staged_count(&Counter::Duplicates), Some(1));
    assert_eq!(f.count(Counter::Messages), 1);
    assert_eq!(f.count(Counter::Pending("cloud".into())), 1);
    assert_eq!(f.state.next_id, 2);

    f.commit();
    assert_eq!(
        f.append(&m).unwrap(),
        Appended::Duplicate { id: 1, first_ack }
    );
    assert_eq!(f.count(Counter::Duplicates), 2);
    assert!(f.wake.is_empty(), "a duplicate wakes no outbox");
}

#[test]
fn control_id_reuse_stores_a_new_message_audits_it_and_repoints_the_dedup_entry() {
    let mut f = Fixture::new();
    let first = msg("C1", "first", &[("cloud", "none")]);
    let reuse = msg("C1", "other bytes", &[("cloud", "none")]);
    assert_eq!(f.append(&first).unwrap(), Appended::Stored { id: 1 });
    f.commit();
    assert_eq!(f.append(&reuse).unwrap(), Appended::Stored { id: 2 });
    assert_eq!(f.count(Counter::ControlIdReuses), 1);
    assert_eq!(f.count(Counter::Messages), 2);
    assert_eq!(f.count(Counter::Pending("cloud".into())), 2);
    let audits = f.staged_audits();
    assert_eq!(audits.len(), 1);
    assert_eq!(audits[0].kind, "control_id_reuse");
    assert_eq!(
        audits[0].detail,
        "listener=lab control_id=C1 first_id=1 new_id=2"
    );
    assert_eq!(f.state.audit.head.seq, 1);
    let d = f.staged.staged(&dedup_key(&first)).unwrap().unwrap();
    assert_eq!(rec::open_u64(d), Ok(2), "the entry points at the newest");
    // In the same group: the newest's retransmission is a duplicate of 2;
    // the first's is a reuse again.
    assert!(matches!(
        f.append(&reuse).unwrap(),
        Appended::Duplicate { id: 2, .. }
    ));
    assert_eq!(f.append(&first).unwrap(), Appended::Stored { id: 3 });
    assert_eq!(f.count(Counter::ControlIdReuses), 2);
}

#[test]
fn over_the_quota_nothing_is_staged_but_duplicates_are_still_answered() {
    let mut f = Fixture::with(|c| c.quota_bytes = Some(2_000));
    let big = "x".repeat(800);
    let m1 = msg("C1", &big, &[("cloud", "none")]);
    let m2 = msg("C2", &big, &[("cloud", "none")]);
    assert_eq!(f.append(&m1).unwrap(), Appended::Stored { id: 1 });
    let ops = f.ops();
    let before = f.state.clone();
    f.wake.clear();
    match f.append(&m2) {
        Err(JournalError::Full { reason }) => {
            assert!(reason.contains("quota"), "{reason}");
        }
        other => panic!("expected Full, got {other:?}"),
    }
    assert_eq!(f.ops(), ops, "a refused request stages nothing");
    assert_eq!(f.state.next_id, before.next_id);
    assert_eq!(f.count(Counter::Messages), 1);
    assert_eq!(f.count(Counter::Pending("cloud".into())), 1);
    assert!(f.wake.is_empty());
    assert!(matches!(
        f.append(&m1).unwrap(),
        Appended::Duplicate { id: 1, .. }
    ));
    // The filesystem watermark refuses too.
    let m3 = msg("C3", "small", &[]);
    assert!(matches!(
        f.st().append(&m3, Policy::default(), None, 95),
        Err(JournalError::Full { .. })
    ));
}

#[test]
fn a_corrupt_dedup_entry_fails_the_request_and_stages_nothing() {
    let mut f = Fixture::new();
    let m = msg("C1", "x", &[("cloud", "none")]);
    f.db.insert(dedup_key(&m), b"not a sealed record".to_vec())
        .unwrap();
    match f.append(&m) {
        Err(JournalError::Corrupt { context }) => {
            assert!(
                context.contains("dedup entry for source lab control id C1"),
                "{context}"
            )
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(f.staged.is_empty());
    assert_eq!(f.state.next_id, 1);
    assert_eq!(f.count(Counter::Messages), 0);
}

#[test]
fn delivered_removes_the_outbox_entry_once_and_counts_it() {
    let mut f = Fixture::new();
    let m = msg("C1", "x", &[("cloud", "none")]);
    f.append(&m).unwrap();
    // Same group: delivery sees the staged entry.
    f.st().delivered("cloud", 1).unwrap();
    assert_eq!(f.staged.staged(&rec::outbox_key("cloud", 1)), Some(None));
    assert_eq!(f.count(Counter::Pending("cloud".into())), 0);
    assert_eq!(f.count(Counter::Delivered("cloud".into())), 1);
    assert_eq!(f.staged_audits()[0].detail, "destination=cloud id=1");
    let ops = f.ops();
    f.st().delivered("cloud", 1).unwrap();
    f.st().delivered("elsewhere", 1).unwrap();
    assert_eq!(f.ops(), ops, "idempotent");
    assert_eq!(f.count(Counter::Delivered("cloud".into())), 1);
}

#[test]
fn dead_letter_and_replay_move_the_entry_and_its_counts() {
    let mut f = Fixture::new();
    let m = msg("C1", "x", &[("cloud", "none")]);
    f.append(&m).unwrap();
    f.commit();
    let entry =
        rec::decode_outbox(&f.db.get(rec::outbox_key("cloud", 1)).unwrap().unwrap()).unwrap();
    let dead = DeadLetterRec {
        destination: "cloud".into(),
        message_id: 1,
        entry: entry.clone(),
        attempts: 3,
        first_attempt_ms: 10,
        last_attempt_ms: 20,
        dead_at_ms: 30,
        last_error: "HTTP 400".into(),
    };
    assert_eq!(f.st().dead_letter(dead.clone()).unwrap(), 1);
    assert_eq!(f.st().dead_letter(dead).unwrap(), 1, "idempotent");
    assert_eq!(f.staged.staged(&rec::outbox_key("cloud", 1)), Some(None));
    assert_eq!(f.count(Counter::Pending("cloud".into())), 0);
    assert_eq!(f.count(Counter::Dead("cloud".into())), 1);
    assert_eq!(f.count(Counter::DeadTotal("cloud".into())), 1);
    assert_eq!(f.state.next_dead, 2);

    let r = f.st().replay(1, "alice").unwrap();
    assert_eq!((r.seq, r.message_id), (1, 1));
    let back = f
        .staged
        .staged(&rec::outbox_key("cloud", 1))
        .unwrap()
        .unwrap();
    assert_eq!(rec::decode_outbox(back).unwrap(), entry);
    assert_eq!(f.count(Counter::Pending("cloud".into())), 1);
    assert_eq!(f.count(Counter::Dead("cloud".into())), 0);
    assert_eq!(f.count(Counter::DeadTotal("cloud".into())), 1);
    assert!(f.wake.contains(&dlq_notify_key("cloud")));
    assert_eq!(
        f.staged_audits().last().unwrap().detail,
        "destination=cloud id=1 dead_letter=1 by=alice"
    );
    assert!(matches!(
        f.st().purge(1, "alice"),
        Err(JournalError::NotFound { .. })
    ));
}

#[test]
fn quarantine_keeps_the_bounds_evicting_oldest_from_the_tree_then_the_group() {
    let mut f = Fixture::with(|c| c.quarantine_max_entries = 2);
    let q = |n: u8| Quarantined {
        source: "lab".into(),
        peer: "p".into(),
        received_at_ms: 5,
        reason: format!("MSH-9: bad {n}"),
        raw: vec![n; 100],
    };
    f.st().quarantine(q(1), 10).unwrap();
    f.st().quarantine(q(2), 10).unwrap();
    f.commit();
    f.st().quarantine(q(3), 10).unwrap();
    assert_eq!(
        f.staged.staged(&rec::seq_key(rec::P_QUARANTINE, 1)),
        Some(None)
    );
    f.st().quarantine(q(4), 10).unwrap();
    f.st().quarantine(q(5), 10).unwrap();
    // 2 (tree) went for 4; 3 (staged by this group) went for 5.
    let held: Vec<u64> = f
        .staged
        .staged_sets(&[rec::P_QUARANTINE])
        .map(|(k, _)| rec::seq_of_key(k).unwrap())
        .collect();
    assert_eq!(held, [4, 5]);
    assert_eq!(
        f.staged.staged(&rec::seq_key(rec::P_QUARANTINE, 2)),
        Some(None)
    );
    assert_eq!(f.count(Counter::QuarantineEntries), 2);
    assert_eq!(f.count(Counter::Quarantined), 5);
    let bytes = f
        .staged
        .staged_sets(&[rec::P_QUARANTINE])
        .map(|(_, v)| v.len() as u64)
        .sum::<u64>();
    assert_eq!(f.count(Counter::QuarantineBytes), bytes);
    assert_eq!(f.state.next_q, 6);
    let last = f.staged_audits().pop().unwrap();
    assert_eq!(last.kind, "quarantine");
    assert!(last.detail.contains("seq=5 original_bytes=100 evicted=1"));
}

#[test]
fn prune_removes_old_unheld_messages_and_their_dedup_entries_only() {
    let mut f = Fixture::new();
    let done = msg("C1", "x", &[("cloud", "none")]);
    let held = msg("C2", "y", &[("cloud", "none")]);
    f.append(&done).unwrap();
    f.append(&held).unwrap();
    f.st().delivered("cloud", 1).unwrap();
    f.commit();
    let r = f.st().prune(1_000_000_000_001, 0, 100).unwrap();
    assert_eq!((r.messages, r.kept_held, r.highest_pruned), (1, 1, 1));
    assert_eq!(f.staged.staged(&rec::message_key(1)), Some(None));
    assert_eq!(f.staged.staged(&dedup_key(&done)), Some(None));
    assert_eq!(f.staged.staged(&rec::message_key(2)), None);
    assert_eq!(f.count(Counter::Pruned), 1);
    assert_eq!(f.count(Counter::PrunedThroughId), 1);
}

#[test]
fn the_wal_record_holds_each_key_once_with_its_latest_op() {
    let mut f = Fixture::new();
    for i in 1..=3 {
        let m = msg(&format!("C{i}"), "x", &[("cloud", "none")]);
        assert_eq!(f.append(&m).unwrap(), Appended::Stored { id: i });
    }
    f.st().delivered("cloud", 2).unwrap();
    let effective: Vec<_> = f.staged.effective().cloned().collect();
    assert!(
        effective.len() < f.ops(),
        "counters set by every request are logged once: {} of {} ops",
        effective.len(),
        f.ops()
    );
    let pending = Counter::Pending("cloud".into()).key();
    let on_pending: Vec<_> = effective
        .iter()
        .filter(|op| matches!(op, crate::wal::Op::Set(k, _) | crate::wal::Op::Remove(k) if *k == pending))
        .collect();
    assert_eq!(on_pending.len(), 1, "one op on the pending counter");
    // Applying only those leaves the tree the whole group describes.
    f.commit();
    let stored = |k: &[u8]| f.db.get(k).unwrap().map(|v| rec::open_u64(&v).unwrap());
    assert_eq!(stored(&pending), Some(2));
    assert_eq!(stored(&Counter::Messages.key()), Some(3));
    assert_eq!(stored(&Counter::Delivered("cloud".into()).key()), Some(1));
    assert!(f.db.get(rec::outbox_key("cloud", 2)).unwrap().is_none());
    assert!(f.db.get(rec::outbox_key("cloud", 3)).unwrap().is_some());
}
