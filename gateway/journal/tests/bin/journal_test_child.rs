//! The re-exec child of the journal's integration tests: a process the
//! tests can SIGKILL or trace, started through
//! `CARGO_BIN_EXE_journal-test-child`. A `[[bin]]` (built with the tests,
//! never shipped: the image builds `-p gateway`) rather than a `#[test]`
//! that does nothing when run alone, so it is never counted as a test.
//!
//! - `journal-test-child crash DIR N`: opens a fresh journal in `DIR/j`,
//!   appends messages 1..=N one at a time (one WAL record each), marks
//!   message 1 delivered and quarantines one input, then writes `DIR/acked`
//!   and sleeps until killed: the journal is never closed, so no
//!   checkpoint runs and only the WAL holds the tail (`tests/it/wal.rs`).
//! - `journal-test-child strace DIR`: the workload `tests/it/strace.rs`
//!   runs under strace: appends (small, 2 MiB, 300 KiB, 16 concurrent
//!   40 KiB), a delivery, a quarantine and a close, each followed by a
//!   marker syscall (`openat("/JOURNAL-STRACE-MARK-n")`).

#[path = "../it/support/messages.rs"]
mod messages;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use journal::{Appended, Journal, JournalConfig, Quarantined};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["crash", dir, n] => rt.block_on(crash(Path::new(dir), n.parse().unwrap())),
        ["strace", dir] => rt.block_on(traced(Path::new(dir))),
        _ => {
            eprintln!(
                "usage: journal-test-child crash DIR N | strace DIR (run by the journal's tests)"
            );
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

fn quarantined(raw: Vec<u8>) -> Quarantined {
    Quarantined {
        source: "lab".into(),
        peer: "10.0.0.5:1".into(),
        received_at_ms: 1,
        reason: "test".into(),
        raw,
    }
}

async fn crash(dir: &Path, n: u64) {
    let j = Journal::open(JournalConfig::new(dir.join("j"))).unwrap();
    for i in 1..=n {
        assert_eq!(
            j.append(messages::nth(i)).await.unwrap(),
            Appended::Stored { id: i },
            "fresh journal ids start at 1"
        );
    }
    j.mark_delivered("cloud", 1).await.unwrap();
    j.quarantine(quarantined(b"not hl7".to_vec()))
        .await
        .unwrap();
    // Every call above was acknowledged: tell the parent, wait to be killed.
    std::fs::write(dir.join("acked"), b"1").unwrap();
    std::thread::sleep(Duration::from_secs(120));
    panic!("not killed");
}

fn mark(n: u32) {
    let _ = std::fs::File::open(format!("/JOURNAL-STRACE-MARK-{n}"));
}

async fn traced(dir: &Path) {
    let j = Journal::open(JournalConfig::new(PathBuf::from(dir).join("j"))).unwrap();
    j.append(messages::sized("S1", 100)).await.unwrap();
    mark(1);
    j.append(messages::sized("S2", 2 * 1024 * 1024))
        .await
        .unwrap();
    mark(2);
    j.append(messages::sized("S3", 300 * 1024)).await.unwrap();
    mark(3);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let j = j.clone();
        tasks.push(tokio::spawn(async move {
            j.append(messages::sized(&format!("C{i}"), 40 * 1024)).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    mark(4);
    j.mark_delivered("cloud", 1).await.unwrap();
    mark(5);
    j.quarantine(quarantined(vec![b'Q'; 200_000]))
        .await
        .unwrap();
    mark(6);
    j.close().await.unwrap();
    // After close (final checkpoint) everything, the sled log included,
    // must be durable: the WAL deletion at close is checked as well.
    mark(7);
}
