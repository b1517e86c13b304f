//! The write-ahead log: a crash without a checkpoint, a torn tail and a
//! corrupt record in the middle.
//!
//! The crash is real: the test runs the re-exec child's `crash` role
//! (`support::child`) and `kill -9`s it once its appends have been
//! acknowledged. The child
//! never closes the journal, so no checkpoint runs: sled's buffered log is
//! lost with the process and only the WAL (synced at every commit) holds
//! the tail. The page cache survives `kill -9`, so this tests replay, not
//! power loss (the gateway's `power_loss` test does that).

use std::path::{Path, PathBuf};

use journal::{Appended, Journal, JournalConfig, JournalError};

use crate::support::{child, nth, sized as msg};

fn segments(root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root.join("j/wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    v.sort();
    v
}

/// Offsets of the records of one segment (format: `len u32le, crc u32le,
/// payload`, then zeros up to the preallocated size).
fn record_offsets(seg: &Path) -> Vec<(usize, usize)> {
    let b = std::fs::read(seg).unwrap();
    let mut out = Vec::new();
    let mut off = 0;
    while off + 8 <= b.len() {
        let len = u32::from_le_bytes(b[off..off + 4].try_into().unwrap()) as usize;
        if len == 0 {
            break; // the preallocated zeros after the last record
        }
        out.push((off, 8 + len));
        off += 8 + len;
    }
    assert!(
        b[off..].iter().all(|&x| x == 0),
        "segment does not end on a record boundary followed by zeros"
    );
    out
}

fn open_detail(j: &Journal) -> String {
    j.audit_events(None, 100_000)
        .unwrap()
        .into_iter()
        .rfind(|e| e.kind == "journal_open")
        .unwrap()
        .detail
}

#[tokio::test]
async fn crash_without_checkpoint_is_replayed_from_the_wal() {
    let n = 40;
    // sled holds the tail too when it happened to write its log in the
    // last group (its buffers fill at moments of their own; a 300 KiB
    // message is chunks in its log since format 2): such a crash image
    // proves nothing about replay, so crash again (verify replays on a
    // copy and counts what sled lacked).
    let mut attempts = 0;
    let t = loop {
        let t = tempfile::tempdir().unwrap();
        child::crash(t.path(), n);
        let lacked = journal::verify::verify(&t.path().join("j"))
            .unwrap()
            .wal_replayed;
        attempts += 1;
        if lacked > 0 || attempts == 5 {
            break t;
        }
    };
    let root = t.path();
    // The WAL holds the run (no checkpoint happened).
    let segs = segments(root);
    assert_eq!(segs.len(), 1, "{segs:?}");
    let recs = record_offsets(&segs[0]);
    assert_eq!(recs.len() as u64, n + 2, "one record per acknowledged call");

    let cfg = JournalConfig::new(root.join("j"));
    let j = Journal::open(cfg.clone()).unwrap();
    let detail = open_detail(&j);
    assert!(detail.contains("wal_replayed="), "{detail}");
    assert!(
        !detail.contains("wal_replayed=0 "),
        "nothing replayed: {detail}"
    );
    for i in 1..=n {
        let m = j
            .get(i)
            .unwrap()
            .unwrap_or_else(|| panic!("acked message {i} lost"));
        assert_eq!(m.meta.control_id, format!("W{i}"));
        assert_eq!(m.raw, nth(i).raw);
    }
    let s = j.stats();
    assert_eq!(s.messages, n);
    assert_eq!(s.quarantined, 1);
    assert_eq!(s.per_destination["cloud"].pending, n - 1);
    assert_eq!(s.per_destination["cloud"].delivered, 1);
    assert_eq!(j.pending("cloud", None, 1000).unwrap().len() as u64, n - 1);
    assert_eq!(j.quarantined(None, 10).unwrap().len(), 1);
    // Ids continue; de-dup survived.
    assert_eq!(
        j.append(msg("NEXT", 10)).await.unwrap(),
        Appended::Stored { id: n + 1 }
    );
    assert!(matches!(
        j.append(nth(5)).await.unwrap(),
        Appended::Duplicate { id: 5, .. }
    ));
    // Replay was checkpointed: the old segment is gone, and a clean
    // reopen replays nothing and still sees everything.
    j.close().await.unwrap();
    assert!(!segs[0].exists());
    let j = Journal::open(cfg).unwrap();
    assert!(open_detail(&j).contains("wal_replayed=0 "));
    assert_eq!(j.stats().messages, n + 1);
    assert_eq!(j.get(n + 1).unwrap().unwrap().meta.control_id, "NEXT");
    j.close().await.unwrap();
}

#[tokio::test]
async fn torn_tail_is_cut_without_error() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let n = 10;
    child::crash(root, n);
    let segs = segments(root);
    let recs = record_offsets(&segs[0]);
    // Records: appends 1..=n, then the delivery, then the quarantine. Cut
    // the last append's record in half and drop what follows: as if the
    // power failed during that append's write (it was never acknowledged).
    let (off, len) = recs[n as usize - 1];
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&segs[0])
        .unwrap();
    f.set_len((off + len / 2) as u64).unwrap();
    drop(f);

    let j = Journal::open(JournalConfig::new(root.join("j"))).unwrap();
    let detail = open_detail(&j);
    assert!(
        !detail.contains("wal_torn_tail=none"),
        "torn tail not reported: {detail}"
    );
    for i in 1..n {
        let m = j
            .get(i)
            .unwrap()
            .unwrap_or_else(|| panic!("message {i} lost"));
        assert_eq!(m.raw, nth(i).raw);
    }
    // Message n may or may not be in sled (sled may have written its log
    // buffer before the kill; that is an unacknowledged-but-kept message,
    // fine for at-least-once). Either way ids continue after it and the
    // counters agree with what is stored.
    let has_last = j.get(n).unwrap().is_some();
    let expect_next = if has_last { n + 1 } else { n };
    assert_eq!(j.stats().messages, expect_next - 1);
    assert_eq!(
        j.append(msg("NEXT", 10)).await.unwrap(),
        Appended::Stored { id: expect_next }
    );
    j.close().await.unwrap();
}

#[tokio::test]
async fn corrupt_record_before_valid_ones_fails_open_loudly() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    child::crash(root, 10);
    let segs = segments(root);
    let recs = record_offsets(&segs[0]);
    let (off, len) = recs[4];
    let mut b = std::fs::read(&segs[0]).unwrap();
    b[off + len - 3] ^= 0x55;
    std::fs::write(&segs[0], &b).unwrap();

    match Journal::open(JournalConfig::new(root.join("j"))) {
        Err(JournalError::Corrupt { context }) => {
            assert!(
                context.contains(&segs[0].display().to_string()),
                "{context}"
            );
            assert!(context.contains(&format!("offset {off}")), "{context}");
        }
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(_) => panic!("opened a journal whose WAL is corrupt in the middle"),
    }
    // The WAL is kept for analysis.
    assert!(segs[0].exists());
}
