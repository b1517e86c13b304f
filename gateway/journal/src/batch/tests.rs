//! Batches and policies through the journal's API (a real journal in a
//! temporary directory), and a batch's atomicity across a real crash: the
//! parent test re-runs this test binary's `crash_child`, which dies in the
//! middle of committing a batch (the writer's crash hook, `store::crash`),
//! then reopens the journal and finds all of the batch or none of it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::record as rec;
use crate::test_support::{msg, open, runtime};
use crate::writer::crash;
use crate::{
    Appended, JournalError, KeyReuse, NewMessage, Policy, Retention, StateOp, BATCH_MAX_BYTES,
    BATCH_MAX_MESSAGES,
};

fn plain(m: NewMessage) -> (NewMessage, Policy) {
    (m, Policy::default())
}

fn until_delivered() -> Policy {
    Policy {
        retention: Retention::UntilDelivered { keep_dedup: false },
        key_reuse: KeyReuse::StoreNew,
    }
}

#[test]
fn a_batch_is_one_commit_and_everything_in_it_is_readable_after() {
    let t = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let j = open(t.path());
        let before = j.commit_stats();
        let out = j
            .append_batch(
                (1..=3)
                    .map(|i| plain(msg(&format!("B{i}"), "r", &[("cloud", "fhir")])))
                    .collect(),
                vec![StateOp::put("export", b"Patient.ndjson", b"3")],
            )
            .await
            .unwrap();
        let ids: Vec<u64> = (1..=3).collect();
        assert_eq!(
            out,
            ids.iter()
                .map(|&id| Appended::Stored { id })
                .collect::<Vec<_>>()
        );
        let after = j.commit_stats();
        assert_eq!(after.commits, before.commits + 1);
        assert_eq!(after.requests, before.requests + 1);
        assert_eq!(j.commit_latency().count, 1, "one WAL append + fdatasync");
        assert!(j.last_commit_sync().synced[0].starts_with(t.path().join("j/wal")));
        assert_eq!(j.pending("cloud", None, 10).unwrap(), ids);
        assert_eq!(j.get(2).unwrap().unwrap().meta.control_id, "B2");
        assert_eq!(
            j.get_state("export", b"Patient.ndjson").unwrap(),
            Some(b"3".to_vec())
        );
        assert_eq!(j.stats().messages, 3);
        assert!(j
            .append_batch(Vec::new(), Vec::new())
            .await
            .unwrap()
            .is_empty());
        assert_eq!(j.commit_latency().count, 1);
        j.close().await.unwrap();
    });
}

#[test]
fn a_batch_over_its_bounds_is_refused_before_anything_is_stored() {
    let t = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let j = open(t.path());
        let too_many: Vec<_> = (0..=BATCH_MAX_MESSAGES)
            .map(|i| plain(msg(&format!("M{i}"), "", &[])))
            .collect();
        let mut big = msg("BIG", "", &[]);
        big.raw = vec![b'x'; BATCH_MAX_BYTES];
        let bad_state = StateOp::put("ns", b"k", &vec![0; crate::STATE_VALUE_MAX + 1]);
        for (messages, state) in [
            (too_many, Vec::new()),
            (vec![plain(big)], Vec::new()),
            (vec![plain(msg("OK", "", &[]))], vec![bad_state]),
        ] {
            match j.append_batch(messages, state).await {
                Err(JournalError::Invalid { reason }) => assert!(
                    reason.contains("at most") || reason.contains("more than"),
                    "{reason}"
                ),
                other => panic!("expected Invalid, got {other:?}"),
            }
        }
        assert_eq!(j.next_message_id(), 1);
        assert_eq!(j.stats().messages, 0);
        j.close().await.unwrap();
    });
}

#[test]
fn policies_through_the_api_release_on_delivery_refuse_reuse_and_ids_are_never_reused() {
    let t = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let j = open(t.path());
        let m = msg("X1", "file", &[("clearinghouse", "x12-json")]);
        assert_eq!(
            j.append_with(m.clone(), until_delivered()).await.unwrap(),
            Appended::Stored { id: 1 }
        );
        let entry = &j.pending_entries("clearinghouse", None, 1).unwrap()[0].entry;
        assert_eq!(entry.transform, "x12-json");
        let refuse = Policy {
            key_reuse: KeyReuse::Refuse,
            ..Policy::default()
        };
        let other = msg("X1", "other file", &[("clearinghouse", "x12-json")]);
        assert_eq!(
            j.append_with(other, refuse).await.unwrap(),
            Appended::KeyReused { id: 1 }
        );
        j.mark_delivered("clearinghouse", 1).await.unwrap();
        assert!(j.get(1).unwrap().is_none(), "released with its delivery");
        let s = j.stats();
        assert_eq!((s.released, s.key_reuses_refused, s.messages), (1, 1, 1));
        let kinds: Vec<String> = j
            .audit_events(None, 100)
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert!(
            kinds.ends_with(&["delivered".into(), "released".into()]),
            "{kinds:?}"
        );
        j.close().await.unwrap();

        // Message 1 was the largest id and is gone: the next is still 2.
        let j = open(t.path());
        assert_eq!(j.next_message_id(), 2);
        assert_eq!(
            j.append(msg("X2", "next", &[])).await.unwrap(),
            Appended::Stored { id: 2 }
        );
        j.close().await.unwrap();
    });
}

const DIR_ENV: &str = "JOURNAL_BATCH_CRASH_DIR";
const MODE_ENV: &str = "JOURNAL_BATCH_CRASH_MODE";
/// Messages journaled (and acknowledged) before the batch.
const BEFORE: u64 = 3;
/// Messages in the batch that the crash interrupts.
const IN_BATCH: u64 = 10;

fn batch() -> (Vec<(NewMessage, Policy)>, Vec<StateOp>) {
    let messages = (1..=IN_BATCH)
        .map(|i| plain(msg(&format!("IN{i}"), "resource", &[("cloud", "fhir")])))
        .collect();
    (messages, vec![StateOp::put("export", b"file", b"10")])
}

/// The crashing workload. Run directly (no environment) it returns at once.
#[test]
fn crash_child() {
    let (Ok(dir), Ok(mode)) = (std::env::var(DIR_ENV), std::env::var(MODE_ENV)) else {
        return;
    };
    runtime().block_on(async {
        let j = open(Path::new(&dir));
        for i in 1..=BEFORE {
            j.append(msg(&format!("PRE{i}"), "acked", &[("cloud", "fhir")]))
                .await
                .unwrap();
        }
        j.put_state("export", b"file", b"0").await.unwrap();
        let mode: u8 = mode.parse().unwrap();
        // Half of the batch's ops (5 per message: record, de-dup entry,
        // outbox entry, two counters) reach sled before the crash.
        crash::APPLIED_OPS.store(25, std::sync::atomic::Ordering::SeqCst);
        crash::MODE.store(mode, std::sync::atomic::Ordering::SeqCst);
        let (messages, state) = batch();
        let r = j.append_batch(messages, state).await;
        panic!("the crash hook did not fire: {r:?}");
    });
}

/// Run `crash_child` in `mode` and wait for the hook's exit status.
fn crash_in(root: &Path, mode: u8) {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "batch::tests::crash_child",
            "--exact",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(DIR_ENV, root)
        .env(MODE_ENV, mode.to_string())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("crash child hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(crash::EXIT_CODE), "{status}");
}

/// Which of the batch's messages the journal holds.
fn batch_ids_present(j: &crate::Journal) -> Vec<u64> {
    (BEFORE + 1..=BEFORE + IN_BATCH)
        .filter(|&id| j.get(id).unwrap().is_some())
        .collect()
}

#[test]
fn a_crash_after_the_wal_record_but_half_way_into_sled_leaves_all_of_the_batch() {
    let t = tempfile::tempdir().unwrap();
    crash_in(t.path(), crash::MID_APPLY);
    {
        // sled on its own holds a prefix of the batch (the hook made it
        // durable half way), not yet the record's "applied" mark.
        let db = sled::open(t.path().join("j")).unwrap();
        let has = |id: u64| db.get(rec::message_key(id)).unwrap().is_some();
        assert!(has(BEFORE + 1), "the first batch message reached sled");
        assert!(
            !has(BEFORE + IN_BATCH),
            "the last batch message had not reached sled"
        );
    }
    runtime().block_on(async {
        let j = open(t.path());
        assert_eq!(
            batch_ids_present(&j),
            (BEFORE + 1..=BEFORE + IN_BATCH).collect::<Vec<_>>()
        );
        assert_eq!(
            j.get_state("export", b"file").unwrap(),
            Some(b"10".to_vec())
        );
        let s = j.stats();
        assert_eq!(s.messages, BEFORE + IN_BATCH);
        assert_eq!(s.per_destination["cloud"].pending, BEFORE + IN_BATCH);
        // Retransmitting the batch finds every message already journaled.
        let (messages, state) = batch();
        let out = j.append_batch(messages, state).await.unwrap();
        assert!(out.iter().all(|a| matches!(a, Appended::Duplicate { .. })));
        j.close().await.unwrap();
    });
}

#[test]
fn a_crash_while_writing_the_wal_record_leaves_none_of_the_batch() {
    let t = tempfile::tempdir().unwrap();
    crash_in(t.path(), crash::TORN_WAL);
    runtime().block_on(async {
        let j = open(t.path());
        assert!(batch_ids_present(&j).is_empty());
        assert_eq!(j.get_state("export", b"file").unwrap(), Some(b"0".to_vec()));
        let s = j.stats();
        assert_eq!(s.messages, BEFORE);
        assert_eq!(s.per_destination["cloud"].pending, BEFORE);
        let open_event = j
            .audit_events(None, 100)
            .unwrap()
            .into_iter()
            .rfind(|e| e.kind == "journal_open")
            .unwrap();
        assert!(
            !open_event.detail.contains("wal_torn_tail=none"),
            "the torn record was found and cut: {}",
            open_event.detail
        );
        // The batch, sent again, is stored whole with the next ids.
        let (messages, state) = batch();
        let out = j.append_batch(messages, state).await.unwrap();
        assert_eq!(out[0], Appended::Stored { id: BEFORE + 1 });
        assert_eq!(
            j.get_state("export", b"file").unwrap(),
            Some(b"10".to_vec())
        );
        j.close().await.unwrap();
    });
}
