//! Staging batches, state changes and the key-reuse policy against a real
//! (temporary) sled tree plus the group's staged ops.

use crate::counter::Counter;
use crate::record as rec;
use crate::test_support::{dedup_key, msg};
use crate::writer::staging::fixture::Fixture;
use crate::{Appended, JournalError, KeyReuse, NewMessage, Policy, StateOp};

fn plain(m: NewMessage) -> (NewMessage, Policy) {
    (m, Policy::default())
}

const REFUSE: Policy = Policy {
    retention: crate::Retention::Default,
    key_reuse: KeyReuse::Refuse,
};

#[test]
fn a_batch_stages_every_message_and_its_state_changes_in_the_group() {
    let mut f = Fixture::new();
    let out = f
        .batch(
            vec![
                plain(msg("B1", "one", &[("cloud", "fhir")])),
                plain(msg("B2", "two", &[("cloud", "fhir")])),
                // A retransmission of the first, inside the same batch.
                plain(msg("B1", "one", &[("cloud", "fhir")])),
            ],
            vec![StateOp::put("export/Patient", b"file-1.ndjson", b"2")],
        )
        .unwrap();
    assert_eq!(
        out,
        [
            Appended::Stored { id: 1 },
            Appended::Stored { id: 2 },
            Appended::Duplicate {
                id: 1,
                first_ack: b"MSA|AA|B1".to_vec()
            },
        ]
    );
    for id in [1, 2] {
        assert!(f.value(&rec::message_key(id)).is_some());
        assert!(f.value(&rec::outbox_key("cloud", id)).is_some());
    }
    let v = f
        .value(&rec::state_key("export/Patient", b"file-1.ndjson"))
        .unwrap();
    assert_eq!(rec::open(&v), Ok(&b"2"[..]));
    assert_eq!(f.count(Counter::Messages), 2);
    assert_eq!(f.count(Counter::Duplicates), 1);
    assert_eq!(f.count(Counter::Pending("cloud".into())), 2);
    assert!(f.wake.contains("cloud"));
    assert_eq!(f.state.next_id, 3);
}

#[test]
fn a_batch_that_fails_part_way_stages_nothing_and_leaves_the_group_as_it_was() {
    let mut f = Fixture::with(|c| c.quota_bytes = Some(4_000));
    // An earlier request of the same group, which must survive.
    f.append(&msg("E1", "earlier", &[("lab", "none")])).unwrap();
    f.st()
        .batch(
            crate::batch::BatchReq {
                messages: Vec::new(),
                patients: Vec::new(),
                state: vec![StateOp::put("ns", b"k", b"before")],
            },
            10,
        )
        .unwrap();
    let ops = f.ops();
    let before = f.state.clone();
    let wake = f.wake.clone();
    let space = f.space.mark();
    let big = "x".repeat(1_200);
    let r = f.batch(
        vec![
            plain(msg("B1", &big, &[("cloud", "none")])),
            plain(msg("B2", &big, &[("cloud", "none")])),
            // Over the quota: the whole batch goes.
            plain(msg("B3", &big, &[("cloud", "none")])),
        ],
        vec![
            StateOp::put("ns", b"k", b"after"),
            StateOp::delete("ns", b"k"),
        ],
    );
    assert!(matches!(r, Err(JournalError::Full { .. })), "{r:?}");
    assert_eq!(f.ops(), ops, "nothing of the batch is staged");
    assert_eq!(f.state.next_id, before.next_id);
    assert_eq!(f.state.audit.head, before.audit.head);
    assert_eq!(f.count(Counter::Messages), 1);
    assert_eq!(f.count(Counter::Pending("cloud".into())), 0);
    assert_eq!(f.wake, wake);
    assert_eq!(f.space.mark(), space);
    for id in [2, 3, 4] {
        assert_eq!(f.value(&rec::message_key(id)), None, "message {id}");
        assert_eq!(f.value(&rec::outbox_key("cloud", id)), None);
    }
    assert_eq!(
        f.value(&dedup_key(&msg("B1", &big, &[]))),
        None,
        "the de-dup entry of an undone message is gone too"
    );
    // What the group held before the batch is intact and still read through.
    let v = f.value(&rec::state_key("ns", b"k")).unwrap();
    assert_eq!(rec::open(&v), Ok(&b"before"[..]));
    assert!(f.value(&rec::message_key(1)).is_some());
    // And the next request of the group takes the next id as if the batch
    // had never been.
    assert_eq!(
        f.append(&msg("E2", "small", &[])).unwrap(),
        Appended::Stored { id: 2 }
    );
}

#[test]
fn state_changes_put_replace_and_delete_and_a_missing_delete_stages_nothing() {
    let mut f = Fixture::new();
    f.batch(
        Vec::new(),
        vec![
            StateOp::put("poller", b"cursor", b"1"),
            StateOp::put("poller", b"cursor", b"2"),
            StateOp::put("poller", b"other", b"x"),
        ],
    )
    .unwrap();
    f.commit();
    let v = f.value(&rec::state_key("poller", b"cursor")).unwrap();
    assert_eq!(rec::open(&v), Ok(&b"2"[..]));
    f.batch(Vec::new(), vec![StateOp::delete("poller", b"other")])
        .unwrap();
    assert_eq!(f.value(&rec::state_key("poller", b"other")), None);
    let ops = f.ops();
    f.batch(
        Vec::new(),
        vec![
            StateOp::delete("poller", b"never"),
            StateOp::delete("elsewhere", b"cursor"),
        ],
    )
    .unwrap();
    assert_eq!(f.ops(), ops, "deleting what is not there stages nothing");
    // State changes count no message and audit nothing.
    assert_eq!(f.count(Counter::Messages), 0);
    assert!(f.staged_audits().is_empty());
}

#[test]
fn a_refused_key_reuse_stores_nothing_but_a_retransmission_is_still_a_duplicate() {
    let mut f = Fixture::new();
    let first = msg(
        "ISA000000905",
        "first file",
        &[("clearinghouse", "x12-json")],
    );
    let other = msg(
        "ISA000000905",
        "other file",
        &[("clearinghouse", "x12-json")],
    );
    assert_eq!(
        f.append_with(&first, REFUSE).unwrap(),
        Appended::Stored { id: 1 }
    );
    f.commit();
    let ops = f.ops();
    assert_eq!(
        f.append_with(&other, REFUSE).unwrap(),
        Appended::KeyReused { id: 1 }
    );
    // Only the counter is staged.
    assert_eq!(f.ops(), ops + 1);
    assert_eq!(f.staged_count(&Counter::KeyReusesRefused), Some(1));
    assert_eq!(f.count(Counter::Messages), 1);
    assert_eq!(f.count(Counter::ControlIdReuses), 0);
    assert_eq!(f.state.next_id, 2);
    assert!(f.wake.is_empty());
    assert!(f.staged_audits().is_empty());
    let d = f.value(&dedup_key(&first)).unwrap();
    assert_eq!(rec::open_u64(&d), Ok(1), "the key still names the first");
    assert!(matches!(
        f.append_with(&first, REFUSE).unwrap(),
        Appended::Duplicate { id: 1, .. }
    ));
    // The default policy still stores a reuse as new.
    assert_eq!(f.append(&other).unwrap(), Appended::Stored { id: 2 });
    assert_eq!(f.count(Counter::ControlIdReuses), 1);
}
