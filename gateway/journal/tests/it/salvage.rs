//! `verify` and `salvage` on a populated journal with corrupted bytes: 50
//! cases, each a copy of one crash image (sled behind, the WAL holding the
//! tail: the journal was never closed) with 1-8 bytes XOR-ed at a seeded
//! random offset of one file (a WAL segment, sled's `db` log, a snapshot
//! or a blob, if any), within the file's written extent (up to its last non-zero
//! byte: a WAL segment's preallocated zeros are not data).
//!
//! Each case: verify reports a problem, or the corruption is slack,
//! proven so (and counted; with sled's stale node versions and blobs it is
//! most of the sled cases): every key and value the snapshot reads back is byte for byte
//! what the undamaged image gives. Salvage never invents or duplicates a
//! message (every id it recovers has the original bytes, source and
//! received time), its report lists exactly what the new journal holds,
//! a WAL case loses at most the one message of the damaged record, every
//! id not recovered is reported (lost, or possibly lost where sled could
//! not be read), and
//! the new journal opens and passes verify. Seed: `SALVAGE_SEED` or fixed;
//! it is printed, with the figures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use journal::{GiveUp, Journal, JournalConfig, OutboxRec};

use crate::support::{message, raw, stored};

const BASE: u64 = 300;
const TAIL: u64 = 40;
const CASES: u64 = 50;

fn original(i: u64) -> journal::NewMessage {
    let mut bytes = raw(&format!("V{i}"), &format!("result {i}"));
    if i % 50 == 0 {
        // Over 6 KiB: stored as chunks (journal format 2, `chunk.rs`), so
        // damage to sled's log can hit a chunk of a message.
        bytes.extend(std::iter::repeat_n(b'x', 150 * 1024));
    }
    let dests: &[&str] = if i % 5 == 0 {
        &["cloud", "archive"]
    } else {
        &["cloud"]
    };
    message("lab", &format!("V{i}"), bytes, dests)
}

/// A crash image in `root/image`: BASE messages checkpointed (a third
/// delivered, some dead-lettered, state, audit), then TAIL more only in
/// the WAL.
async fn populate(root: &Path) -> PathBuf {
    let live = root.join("live");
    let j = Journal::open(JournalConfig::new(live.clone())).unwrap();
    for i in 1..=BASE {
        assert_eq!(stored(&j, original(i)).await, i);
    }
    for i in (3..=BASE).step_by(3) {
        j.mark_delivered("cloud", i).await.unwrap();
    }
    for i in (17..=BASE).step_by(17).filter(|i| i % 3 != 0) {
        let entry = OutboxRec {
            received_at_ms: 1_700_000_000_000,
            patient_lane: 0,
            transform: "none".into(),
        };
        let why = GiveUp {
            attempts: 5,
            first_attempt_ms: 1,
            last_attempt_ms: 2,
            last_error: "HTTP 422".into(),
        };
        j.dead_letter("cloud", i, entry, why).await.unwrap();
    }
    for k in 0..5u8 {
        j.put_state("poller", &[k], b"cursor value").await.unwrap();
        j.audit("test_event", &format!("event {k}")).unwrap();
    }
    j.close().await.unwrap();
    let j = Journal::open(JournalConfig::new(live.clone())).unwrap();
    for i in BASE + 1..=BASE + TAIL {
        assert_eq!(stored(&j, original(i)).await, i);
    }
    j.mark_delivered("cloud", BASE + 1).await.unwrap();
    // Let the deferred audit events reach the WAL, then copy the files as a
    // crash would leave them: the journal is never closed (no checkpoint).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let image = root.join("image");
    copy_tree(&live, &image);
    std::mem::forget(j);
    image
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            copy_tree(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// Every key and value of a journal's sled (as salvage wrote it), minus
/// the open/salvage audit events and counters that differ run to run.
fn dump(dir: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let db = sled::open(dir).unwrap();
    let all = db
        .iter()
        .map(|kv| kv.unwrap())
        .filter(|(k, _)| k[0] != b'a' && k.as_ref() != b"w")
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
    drop(db);
    wait_unlocked(dir);
    all
}

/// Wait (at most 10 s) until sled's threads have let go of `dir`'s lock:
/// they release it a moment after the last handle is dropped, and the test
/// opens the same journal next.
fn wait_unlocked(dir: &Path) {
    use nix::fcntl::{Flock, FlockArg};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let f = std::fs::File::open(dir.join("db")).unwrap();
        match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
            Ok(_) => return,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            Err((_, e)) => panic!("{} still locked after 10 s: {e}", dir.display()),
        }
    }
}

/// Every original id is recovered, reported lost, or (sled unreadable
/// past some point) possibly lost, exactly once; nothing else is named
/// (no pruning here to blur the two).
fn assert_accounted(s: &journal::salvage::SalvageReport, all: &[u64], what: &str) {
    let mut accounted: Vec<u64> = (s.recovered.iter())
        .chain(&s.lost)
        .chain(&s.possibly_lost)
        .copied()
        .collect();
    accounted.sort_unstable();
    assert_eq!(
        accounted, all,
        "{what}: recovered, lost ({:?}) and possibly lost ({:?}) must be every id once",
        s.lost, s.possibly_lost
    );
}

struct Rng(u64);
impl Rng {
    // splitmix64
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn files(image: &Path, kind: u64) -> Vec<PathBuf> {
    let list = |d: PathBuf, f: &dyn Fn(&str) -> bool| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d)
            .map(|r| r.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        v.retain(|p| p.is_file() && f(&p.file_name().unwrap().to_string_lossy()));
        v.sort();
        v
    };
    match kind {
        0 => list(image.join("wal"), &|n| n.ends_with(".wal")),
        1 => list(image.to_path_buf(), &|n| n == "db"),
        _ => {
            let mut v = list(image.join("blobs"), &|_| true);
            v.extend(list(image.to_path_buf(), &|n| n.starts_with("snap.")));
            v
        }
    }
}

#[test]
fn fifty_corruptions_are_detected_and_salvaged() {
    let seed = std::env::var("SALVAGE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5A17_A6E5u64);
    eprintln!("salvage test seed: {seed} (rerun with SALVAGE_SEED={seed})");
    let t = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let image = rt.block_on(populate(t.path()));
    let all: Vec<u64> = (1..=BASE + TAIL).collect();

    // The undamaged image: clean, and salvage gets everything.
    let v = journal::verify::verify(&image).unwrap();
    assert!(v.is_clean(), "undamaged image: {:?}", v.findings);
    let good_out = t.path().join("good");
    let good = journal::salvage::salvage(&image, &good_out).unwrap();
    assert_eq!(good.recovered, all);
    assert!(good.lost.is_empty() && good.possibly_lost.is_empty());
    let reference = dump(&good_out);

    let mut rng = Rng(seed);
    let (mut detected, mut slack, mut recovered_total, mut missing_total) = (0, 0, 0u64, 0u64);
    for case in 0..CASES {
        let dir = t.path().join(format!("case{case}"));
        copy_tree(&image, &dir);
        let mut targets = files(&dir, case % 3);
        if targets.is_empty() {
            targets = files(&dir, 1);
        }
        let file = targets[rng.below(targets.len() as u64) as usize].clone();
        let mut bytes = std::fs::read(&file).unwrap();
        let extent = bytes.iter().rposition(|&b| b != 0).map_or(1, |p| p + 1) as u64;
        let off = rng.below(extent) as usize;
        let n = (1 + rng.below(8) as usize).min(bytes.len() - off);
        for b in &mut bytes[off..off + n] {
            *b ^= 1 + rng.below(255) as u8;
        }
        std::fs::write(&file, &bytes).unwrap();
        let what = format!("case {case}: {n} byte(s) at {}@{off}", file.display());

        let v = journal::verify::verify(&dir).unwrap();
        let out = dir.with_extension("salvaged");
        let s = journal::salvage::salvage(&dir, &out).unwrap();
        let is_slack = v.is_clean() && s.recovered == all && dump(&out) == reference;
        if v.is_clean() {
            assert!(
                is_slack,
                "{what}: verify found nothing but the content differs"
            );
            slack += 1;
        } else {
            detected += 1;
        }
        // Never invented or duplicated: every recovered id is an original
        // with its original bytes; the report is what the journal holds.
        let j = Journal::open(JournalConfig::new(out.clone())).unwrap();
        let mut held = Vec::new();
        for id in 1..=BASE + TAIL + 5 {
            if let Some(m) = j.get(id).unwrap() {
                let o = original(id);
                assert_eq!(
                    (&m.raw, &m.source, m.received_at_ms),
                    (&o.raw, &o.source, o.received_at_ms),
                    "{what}: message {id} differs from the original"
                );
                held.push(id);
            }
        }
        assert_eq!(held, s.recovered, "{what}: report vs the new journal");
        assert_accounted(&s, &all, &what);
        rt.block_on(j.close()).unwrap();
        let missing = all.len() as u64 - s.recovered.len() as u64;
        if case % 3 == 0 {
            assert!(
                missing <= 1,
                "{what}: a WAL record holds one message, {missing} lost"
            );
        }
        recovered_total += s.recovered.len() as u64;
        missing_total += missing;
        // Clean, but for a gap in the audit events that the damage made
        // (verify of the damaged journal named it): the trail keeps
        // saying what it lost.
        let again = journal::verify::verify(&out).unwrap();
        assert!(
            again
                .findings
                .iter()
                .all(|f| f.problem.starts_with("audit events ")
                    && v.findings
                        .iter()
                        .any(|o| o.place == f.place && o.problem == f.problem)),
            "{what}: salvaged journal: {:?}",
            again.findings
        );
        eprintln!(
            "{what}: findings={} recovered={} missing={missing} reported_lost={} possibly_lost={}",
            v.findings.len(),
            s.recovered.len(),
            s.lost.len(),
            s.possibly_lost.len()
        );
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&out);
    }
    eprintln!(
        "salvage figures (seed {seed}): {CASES} cases, detected {detected}, slack {slack}, \
         recovered {recovered_total} of {} message copies, missing {missing_total}",
        CASES * all.len() as u64
    );
    // Slack is common in sled's files (a log-structured store keeps
    // superseded node versions and blobs until it reuses the segment);
    // every slack case above was proven unused byte for byte.
    assert_eq!(detected + slack, CASES);
    assert!(detected > 0, "no corruption detected at all");
}

/// sled's log and snapshot destroyed outright: salvage has only the WAL,
/// and still names every id it does not recover (lost, from the gap
/// between sled's WAL position and the WAL's first record, or possibly
/// lost): none is silently missing.
#[test]
fn a_destroyed_sled_still_names_every_id_not_recovered() {
    let t = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let image = rt.block_on(populate(t.path()));
    let all: Vec<u64> = (1..=BASE + TAIL).collect();
    let mut rng = Rng(7);
    for f in files(&image, 1).into_iter().chain(files(&image, 2)) {
        let len = std::fs::metadata(&f).unwrap().len() as usize;
        let junk: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        std::fs::write(&f, junk).unwrap();
    }
    let v = journal::verify::verify(&image).unwrap();
    assert!(!v.is_clean());
    let out = t.path().join("salvaged");
    let s = journal::salvage::salvage(&image, &out).unwrap();
    // The WAL's tail (BASE+1..) is intact.
    assert!(
        s.recovered.ends_with(&all[BASE as usize..]),
        "{:?}",
        s.recovered
    );
    assert_accounted(&s, &all, "destroyed sled");
    eprintln!(
        "destroyed sled: recovered={} lost={} possibly_lost={} ({:?})",
        s.recovered.len(),
        s.lost.len(),
        s.possibly_lost.len(),
        s.possibly_lost_why
    );
}
