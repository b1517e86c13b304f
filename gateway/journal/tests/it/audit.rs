//! The audit hash chain on a real journal on disk: tampering through the
//! test-only raw access (edit, remove, reorder, cut tail) is found by
//! `audit_verify` at the right seq after a close and reopen; concurrent
//! writers and retention keep the chain verifiable.

use std::path::Path;

use journal::{ChainHead, Journal, ProblemKind};

use crate::support::{cfg, message as msg, raw, stored};

/// A journal with a few messages delivered and extra audit events: returns
/// the newest seq.
async fn populated(dir: &Path) -> u64 {
    let j = Journal::open(cfg(dir)).unwrap();
    for i in 0..4 {
        let id = stored(
            &j,
            msg(
                "lab",
                &format!("C{i}"),
                raw(&format!("C{i}"), "x"),
                &["cloud"],
            ),
        )
        .await;
        j.mark_delivered("cloud", id).await.unwrap();
        j.audit("operator_view", &format!("message={id} by=uid 0 (root)"))
            .unwrap();
    }
    // The fire-and-forget events ride on the next commit.
    stored(&j, msg("lab", "LAST", raw("LAST", "x"), &["cloud"])).await;
    let head = j.audit_head();
    assert!(j.audit_verify(None).unwrap().ok());
    j.close().await.unwrap();
    head.seq
}

async fn reopened_verify(dir: &Path, head: Option<ChainHead>) -> journal::AuditVerify {
    let j = Journal::open(cfg(dir)).unwrap();
    let r = j.audit_verify(head).unwrap();
    j.close().await.unwrap();
    r
}

async fn tamper(dir: &Path, edits: Vec<(u64, Option<Vec<u8>>)>) {
    let j = Journal::open(cfg(dir)).unwrap();
    for (seq, v) in edits {
        j.debug_put_audit_record(seq, v).await.unwrap();
    }
    j.close().await.unwrap();
}

fn record(dir: &Path, seq: u64) -> Vec<u8> {
    // Read with the journal closed again at once (one handle at a time).
    let j = Journal::open(cfg(dir)).unwrap();
    let v = j.debug_audit_record(seq).unwrap().unwrap();
    drop(j);
    v
}

#[tokio::test]
async fn the_chain_links_every_event_and_survives_reopen() {
    let t = tempfile::tempdir().unwrap();
    let newest = populated(t.path()).await;
    let j = Journal::open(cfg(t.path())).unwrap();
    let events = j.audit_events(None, 1000).unwrap();
    assert_eq!(events.first().unwrap().seq, 1);
    assert!(events.len() as u64 > newest, "reopen adds journal_open");
    for w in events.windows(2) {
        assert_eq!(w[1].seq, w[0].seq + 1);
        assert_eq!(
            w[1].prev, w[0].hash,
            "event {} links to {}",
            w[1].seq, w[0].seq
        );
    }
    assert_eq!(events[0].prev.as_deref(), Some(&"0".repeat(64)[..]));
    let r = j.audit_verify(None).unwrap();
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.checked, events.len() as u64);
    assert_eq!(r.genesis, 0);
    let head = j.audit_head();
    assert_eq!(r.head, head.to_text());
    assert_eq!(
        Some(head.to_text().split_once(':').unwrap().1),
        events.last().unwrap().hash.as_deref()
    );
    // A head seen earlier is still in the chain.
    let old = ChainHead::parse(&format!(
        "{}:{}",
        events[2].seq,
        events[2].hash.clone().unwrap()
    ))
    .unwrap();
    assert!(j.audit_verify(Some(old)).unwrap().ok());
    j.close().await.unwrap();
}

#[tokio::test]
async fn an_edited_event_is_named() {
    let t = tempfile::tempdir().unwrap();
    populated(t.path()).await;
    // A forged edit that keeps a valid checksum and the event's own link:
    // only the next event's link shows it.
    let j = Journal::open(cfg(t.path())).unwrap();
    let e = j.audit_events(Some(4), 1).unwrap().remove(0);
    assert_eq!(e.seq, 5);
    let prev = ChainHead::parse(&format!("4:{}", e.prev.clone().unwrap()))
        .unwrap()
        .hash;
    let forged =
        Journal::debug_encode_audit(5, e.at_ms, &e.kind, "destination=elsewhere id=1", &prev);
    j.close().await.unwrap();
    tamper(t.path(), vec![(5, Some(forged))]).await;
    let r = reopened_verify(t.path(), None).await;
    let p = r.problem.expect("edit not detected");
    assert_eq!((p.seq, p.kind), (5, ProblemKind::Edited), "{}", p.detail);
    assert_eq!(r.checked, 5, "stops at the first bad event");
}

#[tokio::test]
async fn a_damaged_record_is_named() {
    let t = tempfile::tempdir().unwrap();
    populated(t.path()).await;
    let mut v = record(t.path(), 3);
    let last = v.len() - 1;
    v[last] ^= 1;
    tamper(t.path(), vec![(3, Some(v))]).await;
    let p = reopened_verify(t.path(), None).await.problem.unwrap();
    assert_eq!((p.seq, p.kind), (3, ProblemKind::Corrupt), "{}", p.detail);
}

#[tokio::test]
async fn a_removed_event_is_named() {
    let t = tempfile::tempdir().unwrap();
    populated(t.path()).await;
    tamper(t.path(), vec![(6, None), (7, None)]).await;
    let p = reopened_verify(t.path(), None).await.problem.unwrap();
    assert_eq!((p.seq, p.kind), (6, ProblemKind::Removed), "{}", p.detail);
    assert!(p.detail.contains("6..=7"), "{}", p.detail);
    // The oldest event too: the anchor says where the trail starts.
    let t = tempfile::tempdir().unwrap();
    populated(t.path()).await;
    tamper(t.path(), vec![(1, None)]).await;
    let p = reopened_verify(t.path(), None).await.problem.unwrap();
    assert_eq!((p.seq, p.kind), (1, ProblemKind::Removed), "{}", p.detail);
}

#[tokio::test]
async fn reordered_events_are_named() {
    let t = tempfile::tempdir().unwrap();
    populated(t.path()).await;
    let (a, b) = (record(t.path(), 4), record(t.path(), 5));
    tamper(t.path(), vec![(4, Some(b)), (5, Some(a))]).await;
    let p = reopened_verify(t.path(), None).await.problem.unwrap();
    assert_eq!((p.seq, p.kind), (4, ProblemKind::Reordered), "{}", p.detail);
}

#[tokio::test]
async fn a_cut_tail_shows_only_against_a_head_seen_elsewhere() {
    let t = tempfile::tempdir().unwrap();
    populated(t.path()).await;
    let j = Journal::open(cfg(t.path())).unwrap();
    stored(&j, msg("lab", "T", raw("T", "x"), &["cloud"])).await;
    let seen = j.audit_head();
    // Cut the last two events (as someone with the disk would).
    j.debug_put_audit_record(seen.seq, None).await.unwrap();
    j.debug_put_audit_record(seen.seq - 1, None).await.unwrap();
    let alone = j.audit_verify(None).unwrap();
    assert!(
        alone.ok(),
        "a chain alone cannot show its cut tail: {alone:?}"
    );
    let p = j.audit_verify(Some(seen)).unwrap().problem.unwrap();
    assert_eq!(
        (p.seq, p.kind),
        (seen.seq - 1, ProblemKind::TailCut),
        "{}",
        p.detail
    );
    j.close().await.unwrap();
    // After a reopen the seqs are used again by new events: still caught.
    let r = reopened_verify(t.path(), Some(seen)).await;
    assert!(r.problem.is_some(), "{r:?}");
}

#[tokio::test]
async fn concurrent_writers_cannot_fork_the_chain() {
    let t = tempfile::tempdir().unwrap();
    let j = Journal::open(cfg(t.path())).unwrap();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let j = j.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                j.audit("operator_view", &format!("writer={w} n={i}"))
                    .unwrap();
                if i % 5 == 0 {
                    let c = format!("W{w}-{i}");
                    stored(&j, msg("lab", &c, raw(&c, "x"), &["cloud"])).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    stored(&j, msg("lab", "END", raw("END", "x"), &["cloud"])).await;
    let r = j.audit_verify(None).unwrap();
    assert!(r.ok(), "{r:?}");
    assert!(r.checked >= 201, "{r:?}");
    j.close().await.unwrap();
}

#[tokio::test]
async fn pruning_keeps_the_trail_verifiable() {
    let t = tempfile::tempdir().unwrap();
    populated(t.path()).await;
    let j = Journal::open(cfg(t.path())).unwrap();
    let before = j.audit_head();
    let cutoff = journal::system_clock_ms() + 1;
    // Delivered messages go with their own retention, never the trail.
    let m = j.prune(cutoff, 0, 100).await.unwrap();
    assert!(m.messages > 0 && m.audit_events == 0, "{m:?}");
    let r = j.prune_audit(cutoff, None, 3).await.unwrap();
    assert_eq!(r.audit_events, 3);
    let last = j.audit_events(None, 1000).unwrap().pop().unwrap();
    assert_eq!(last.kind, "audit_prune");
    assert!(
        last.detail
            .starts_with("events=3 over_size_cap=0 anchor=3:"),
        "{}",
        last.detail
    );
    let v = j.audit_verify(None).unwrap();
    assert!(v.ok(), "{v:?}");
    assert!(v.anchor.starts_with("3:"), "{v:?}");
    // An old head seen elsewhere is still checked while kept...
    assert!(j.audit_verify(Some(before)).unwrap().ok());
    // ...and one older than the anchor is noted, not failed.
    let gone = ChainHead::parse(&format!("2:{}", "0".repeat(64))).unwrap();
    let n = j.audit_verify(Some(gone)).unwrap();
    assert!(n.ok() && n.note.is_some(), "{n:?}");
    j.close().await.unwrap();
    let v = reopened_verify(t.path(), None).await;
    assert!(v.ok(), "{v:?}");
}

#[tokio::test]
async fn the_size_cap_keeps_the_newest_events_and_the_chain() {
    let t = tempfile::tempdir().unwrap();
    populated(t.path()).await;
    let j = Journal::open(cfg(t.path())).unwrap();
    for i in 0..40 {
        j.audit("operator_view", &format!("message={i} by=uid 0 (root)"))
            .unwrap();
    }
    stored(&j, msg("lab", "CAP", raw("CAP", "x"), &["cloud"])).await;
    let u = j.audit_usage().unwrap();
    assert!(u.events > 40 && u.avg_event_bytes > 20, "{u:?}");
    assert_eq!(u.approx_bytes, u.events * u.avg_event_bytes);
    // A cap of ten events' worth: nothing is old, yet the oldest go.
    let policy = journal::retention::AuditRetention {
        max_age: std::time::Duration::from_secs(2190 * 86400),
        max_bytes: Some(10 * u.avg_event_bytes),
    };
    let keep = policy.keep_newest(&u);
    assert_eq!(keep, Some(10));
    let r = j.prune_audit(0, keep, 1000).await.unwrap();
    assert_eq!(r.audit_events, u.events - 10);
    let v = j.audit_verify(None).unwrap();
    assert!(v.ok(), "{v:?}");
    assert_eq!(v.checked, 11, "ten kept plus the audit_prune event: {v:?}");
    let last = j.audit_events(None, 1000).unwrap().pop().unwrap();
    assert!(
        last.detail
            .contains(&format!("over_size_cap={}", u.events - 10)),
        "{}",
        last.detail
    );
    // At the cap now (plus the audit_prune event itself).
    assert_eq!(j.audit_usage().unwrap().events, 11);
    j.close().await.unwrap();
}
