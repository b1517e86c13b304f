//! Functional tests of the durable journal (no special privileges needed).

use std::collections::BTreeSet;

use journal::{Appended, Journal, JournalError, Quarantined};

use crate::support::{cfg, message as msg, raw, stored};

#[tokio::test]
async fn round_trip_and_ids_monotonic_across_reopen() {
    let t = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    {
        let j = Journal::open(cfg(t.path())).unwrap();
        for i in 0..5 {
            let m = msg(
                "lab",
                &format!("C{i}"),
                raw(&format!("C{i}"), "x"),
                &["cloud"],
            );
            ids.push(stored(&j, m.clone()).await);
            let got = j.get(*ids.last().unwrap()).unwrap().unwrap();
            assert_eq!(got.raw, m.raw);
            assert_eq!(got.ack, m.ack);
            assert_eq!(got.meta, m.meta);
            assert_eq!(got.source, "lab");
            assert_eq!(got.peer, m.peer);
            assert_eq!(got.received_at_ms, m.received_at_ms);
        }
        assert!(j.get(999).unwrap().is_none());
        j.close().await.unwrap();
        assert!(matches!(j.get(ids[0]), Err(JournalError::Closed)));
        assert!(matches!(
            j.append(msg("lab", "Z", raw("Z", "z"), &[])).await,
            Err(JournalError::Closed)
        ));
    }
    let j = Journal::open(cfg(t.path())).unwrap();
    let next = stored(&j, msg("lab", "N", raw("N", "n"), &["cloud"])).await;
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert!(
        next > *ids.last().unwrap(),
        "id after reopen {next} not above {ids:?}"
    );
    assert_eq!(j.get(ids[2]).unwrap().unwrap().raw, raw("C2", "x"));
    let s = j.stats();
    assert_eq!(s.messages, 6);
    assert_eq!(s.per_destination["cloud"].pending, 6);
    let opens: Vec<_> = j
        .audit_events(None, 100)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "journal_open")
        .collect();
    assert_eq!(opens.len(), 2, "{opens:?}");
    assert!(
        opens[1].detail.starts_with("recovered messages=5"),
        "{}",
        opens[1].detail
    );
}

#[tokio::test]
async fn dedup_identical_is_duplicate_and_different_bytes_is_reuse() {
    let t = tempfile::tempdir().unwrap();
    let j = Journal::open(cfg(t.path())).unwrap();
    let first = msg("lab", "C1", raw("C1", "glucose 5.4"), &["cloud"]);
    let id = stored(&j, first.clone()).await;
    let mut again = first.clone();
    again.ack = b"a different ack we must not see".to_vec();
    assert_eq!(
        j.append(again).await.unwrap(),
        Appended::Duplicate {
            id,
            first_ack: first.ack.clone()
        }
    );
    // Same control id on another listener is not a duplicate.
    let other = stored(&j, msg("adt", "C1", raw("C1", "glucose 5.4"), &["cloud"])).await;
    assert_ne!(other, id);
    // Same key, different bytes: stored + audited.
    let changed = stored(&j, msg("lab", "C1", raw("C1", "glucose 9.9"), &["cloud"])).await;
    assert!(changed > other);
    let s = j.stats();
    assert_eq!(s.duplicates, 1);
    assert_eq!(s.control_id_reuses, 1);
    assert_eq!(s.messages, 3);
    assert_eq!(
        s.per_destination["cloud"].pending, 3,
        "duplicate must not be enqueued"
    );
    let ev: Vec<_> = j
        .audit_events(None, 100)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "control_id_reuse")
        .collect();
    assert_eq!(ev.len(), 1);
    assert_eq!(
        ev[0].detail,
        format!("listener=lab control_id=C1 first_id={id} new_id={changed}")
    );
    assert!(!ev[0].detail.contains("glucose"));
    // Counters survive reopen.
    j.close().await.unwrap();
    let j = Journal::open(cfg(t.path())).unwrap();
    assert_eq!(j.stats().duplicates, 1);
    assert_eq!(j.stats().control_id_reuses, 1);
    // Retransmission of the newest still dedups after reopen.
    assert!(matches!(
        j.append(msg("lab", "C1", raw("C1", "glucose 9.9"), &["cloud"])).await.unwrap(),
        Appended::Duplicate { id: x, .. } if x == changed
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_get_distinct_ids_and_share_syncs() {
    let t = tempfile::tempdir().unwrap();
    let j = Journal::open(cfg(t.path())).unwrap();
    let before = j.commit_stats();
    let mut tasks = Vec::new();
    for task in 0..32 {
        let j = j.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..20 {
                let cid = format!("T{task}-{i}");
                match j
                    .append(msg("lab", &cid, raw(&cid, "v"), &["cloud"]))
                    .await
                    .unwrap()
                {
                    Appended::Stored { id } => ids.push(id),
                    d => panic!("unexpected {d:?}"),
                }
            }
            ids
        }));
    }
    let mut all = BTreeSet::new();
    for t in tasks {
        for id in t.await.unwrap() {
            assert!(all.insert(id), "id {id} handed out twice");
        }
    }
    assert_eq!(all.len(), 640);
    let after = j.commit_stats();
    let commits = after.commits - before.commits;
    let reqs = after.requests - before.requests;
    eprintln!(
        "640 appends from 32 tasks: {commits} commits, {reqs} requests, largest batch {}",
        after.largest_batch
    );
    assert!(after.largest_batch > 1, "no group commit happened");
    assert!(commits < 640, "every append had its own sync: {commits}");
    assert_eq!(j.stats().per_destination["cloud"].pending, 640);
}

#[tokio::test]
async fn outbox_paging_mark_delivered_and_notify() {
    let t = tempfile::tempdir().unwrap();
    let j = Journal::open(cfg(t.path())).unwrap();
    let notify = j.outbox_notify("lis");
    let mut ids = Vec::new();
    for i in 0..25 {
        let d: &[&str] = if i % 5 == 0 {
            &["lis", "billing"]
        } else {
            &["lis"]
        };
        ids.push(
            stored(
                &j,
                msg("lab", &format!("P{i}"), raw(&format!("P{i}"), "x"), d),
            )
            .await,
        );
    }
    // A permit was left for the deliverer.
    tokio::time::timeout(std::time::Duration::from_secs(1), notify.notified())
        .await
        .expect("outbox notify not woken");
    // Page through 10 at a time.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = j.pending("lis", after, 10).unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 10);
        after = page.last().copied();
        seen.extend(page);
    }
    assert_eq!(seen, ids);
    assert_eq!(j.pending("billing", None, 100).unwrap().len(), 5);
    assert!(j.pending("nobody", None, 100).unwrap().is_empty());
    // "lis" must not leak into a destination whose name extends it.
    assert!(j.pending("li", None, 100).unwrap().is_empty());

    let s = j.stats();
    assert_eq!(
        s.per_destination["lis"].oldest_pending_received_at_ms,
        Some(1_700_000_000_000)
    );
    for id in &ids[..7] {
        j.mark_delivered("lis", *id).await.unwrap();
    }
    j.mark_delivered("lis", ids[0]).await.unwrap(); // idempotent
    assert_eq!(j.pending("lis", None, 3).unwrap(), ids[7..10].to_vec());
    let s = j.stats();
    assert_eq!(s.per_destination["lis"].pending, 18);
    assert_eq!(s.per_destination["lis"].delivered, 7);
    assert_eq!(s.per_destination["billing"].pending, 5);
    let delivered = j
        .audit_events(None, 1000)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "delivered")
        .count();
    assert_eq!(delivered, 7);
    // Durable across reopen.
    j.close().await.unwrap();
    let j = Journal::open(cfg(t.path())).unwrap();
    assert_eq!(j.pending("lis", None, 100).unwrap(), ids[7..].to_vec());
    assert_eq!(j.stats().per_destination["lis"].delivered, 7);
}

#[tokio::test]
async fn quarantine_is_bounded_and_evicts_oldest() {
    let t = tempfile::tempdir().unwrap();
    let mut c = cfg(t.path());
    c.quarantine_max_entries = 5;
    c.quarantine_max_bytes = 200 * 1024;
    let j = Journal::open(c).unwrap();
    for i in 0..8u8 {
        j.quarantine(Quarantined {
            source: "lab".into(),
            peer: "10.0.0.9:1".into(),
            received_at_ms: i as u64,
            reason: format!("MSH-9: message type is empty (case {i})"),
            raw: vec![i; 100],
        })
        .await
        .unwrap();
    }
    let q = j.quarantined(None, 100).unwrap();
    assert_eq!(q.len(), 5);
    assert_eq!(q[0].item.received_at_ms, 3, "oldest not evicted first");
    assert_eq!(q[4].item.raw, vec![7u8; 100]);
    // Oversized input: truncated to 64 KiB, original length kept; the byte
    // bound evicts older entries.
    for i in 0..4u8 {
        j.quarantine(Quarantined {
            source: "lab".into(),
            peer: "10.0.0.9:1".into(),
            received_at_ms: 100 + i as u64,
            reason: "frame exceeds 16 MiB".into(),
            raw: vec![b'X'; 1_000_000],
        })
        .await
        .unwrap();
    }
    let q = j.quarantined(None, 100).unwrap();
    let bytes: usize = q.iter().map(|e| e.item.raw.len()).sum();
    assert!(bytes <= 200 * 1024, "{bytes}");
    assert!(q.len() <= 5);
    let last = q.last().unwrap();
    assert_eq!(last.item.raw.len(), journal::QUARANTINE_RAW_MAX);
    assert_eq!(last.original_len, 1_000_000);
    assert_eq!(last.item.received_at_ms, 103);
    assert_eq!(q.len(), 3, "three 64 KiB entries fit in 200 KiB, not four");
    assert_eq!(j.stats().quarantined, 12);
    let audits = j.audit_events(None, 1000).unwrap();
    assert_eq!(audits.iter().filter(|e| e.kind == "quarantine").count(), 12);
}

#[tokio::test]
async fn corrupt_record_is_reported_not_panicked() {
    let t = tempfile::tempdir().unwrap();
    let j = Journal::open(cfg(t.path())).unwrap();
    let id = stored(&j, msg("lab", "K1", raw("K1", "potassium 4.1"), &["cloud"])).await;
    let ok = stored(&j, msg("lab", "K2", raw("K2", "x"), &["cloud"])).await;
    let mut rec = j.debug_message_record(id).unwrap().unwrap();
    let n = rec.len();
    rec[n - 3] ^= 0x01; // one bit in the raw bytes
    j.debug_overwrite_message_record(id, rec).await.unwrap();
    match j.get(id) {
        Err(JournalError::Corrupt { context }) => {
            assert!(context.contains(&format!("message {id}")), "{context}")
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(j.get(ok).unwrap().is_some());
    assert_eq!(j.verify_all().unwrap(), (2, vec![id]));
    // A retransmission of the corrupt message is an error, not a panic or a silent new copy.
    assert!(matches!(
        j.append(msg("lab", "K1", raw("K1", "potassium 4.1"), &["cloud"]))
            .await,
        Err(JournalError::Corrupt { .. })
    ));
    // Truncated record too.
    j.debug_overwrite_message_record(ok, vec![1, 2])
        .await
        .unwrap();
    assert!(matches!(j.get(ok), Err(JournalError::Corrupt { .. })));
    // Reopen reports it in the open summary.
    j.close().await.unwrap();
    let j = Journal::open(cfg(t.path())).unwrap();
    let open = j
        .audit_events(None, 100)
        .unwrap()
        .into_iter()
        .rev()
        .find(|e| e.kind == "journal_open")
        .unwrap();
    assert!(
        open.detail.contains(&format!("tail_corrupt=[{ok}, {id}]")),
        "{}",
        open.detail
    );
}

#[tokio::test]
async fn large_messages_in_a_format_1_journal_are_synced_blobs_and_survive_reopen() {
    let t = tempfile::tempdir().unwrap();
    // Format 1 (every value whole, as before format 2; `format.rs` tests
    // format 2, where nothing is a blob): sled writes these values as blob
    // files, which the commit must sync.
    Journal::open(cfg(t.path())).unwrap().close().await.unwrap();
    journal::migrate::migrate(&cfg(t.path()).dir, 1).unwrap();
    let mut big = raw("B1", "");
    big.extend((0..2 * 1024 * 1024).map(|i| (i % 251) as u8));
    let mut huge = raw("B2", "");
    huge.extend(std::iter::repeat_n(b'P', 16 * 1024 * 1024 - 100));
    let (a, b);
    {
        let j = Journal::open(cfg(t.path())).unwrap();
        a = stored(&j, msg("doc", "B1", big.clone(), &["cloud"])).await;
        b = stored(&j, msg("doc", "B2", huge.clone(), &["cloud"])).await;
        assert_eq!(j.get(a).unwrap().unwrap().raw, big);
        // The blob really went to a separate file, and the commit synced it.
        let blobs: Vec<_> = std::fs::read_dir(t.path().join("journal/blobs"))
            .unwrap()
            .collect();
        assert!(!blobs.is_empty(), "expected sled blob files");
        let synced = j.last_commit_sync().synced;
        assert!(
            synced
                .iter()
                .any(|p| p.parent() == Some(&t.path().join("journal/blobs"))),
            "{synced:?}"
        );
        // Dropping the last handle (no close) must stop the writer cleanly.
    }
    let j = Journal::open(cfg(t.path())).unwrap();
    assert_eq!(j.get(a).unwrap().unwrap().raw, big);
    assert_eq!(j.get(b).unwrap().unwrap().raw, huge);
    assert!(matches!(
        j.append(msg("doc", "B1", big.clone(), &["cloud"])).await.unwrap(),
        Appended::Duplicate { id, .. } if id == a
    ));
}

#[tokio::test]
async fn quota_refuses_with_actionable_reason_and_keeps_refusing() {
    let t = tempfile::tempdir().unwrap();
    let mut c = cfg(t.path());
    c.quota_bytes = Some(6 * 1024 * 1024);
    let j = Journal::open(c.clone()).unwrap();
    let body = "x".repeat(200 * 1024);
    let mut acked = Vec::new();
    let mut full_at = None;
    for i in 0..200 {
        let cid = format!("Q{i}");
        match j
            .append(msg("lab", &cid, raw(&cid, &body), &["cloud"]))
            .await
        {
            Ok(Appended::Stored { id }) => {
                assert!(full_at.is_none(), "Ok after Full was reported");
                acked.push((id, cid));
            }
            Err(JournalError::Full { reason }) => {
                assert!(reason.contains("quota"), "{reason}");
                assert!(reason.contains(&c.dir.display().to_string()), "{reason}");
                full_at.get_or_insert(i);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(full_at.is_some(), "quota never enforced");
    assert!(!acked.is_empty());
    assert!(
        j.stats().disk_percent_used >= 90,
        "{}",
        j.stats().disk_percent_used
    );
    // A retransmission of an accepted message is still answered while full.
    let (id0, cid0) = &acked[0];
    assert!(matches!(
        j.append(msg("lab", cid0, raw(cid0, &body), &["cloud"])).await.unwrap(),
        Appended::Duplicate { id, .. } if id == *id0
    ));
    j.close().await.unwrap();
    // Raising the quota lets appends through again.
    c.quota_bytes = Some(64 * 1024 * 1024);
    let j = Journal::open(c).unwrap();
    stored(&j, msg("lab", "after", raw("after", "y"), &["cloud"])).await;
    for (id, _) in &acked {
        assert!(j.get(*id).unwrap().is_some());
    }
}
