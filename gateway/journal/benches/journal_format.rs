//! What journal format 2 (values over 6 KiB chunked inside sled,
//! `src/chunk.rs`) costs against format 1 (values whole), measured in the
//! same run: the same appends (1 KB, 40 KB and 300 KB messages, one
//! appender) and reads into a fresh journal of each format. Run with
//! `cargo bench -p journal --bench journal_format`; it prints the time
//! ratio format 2 / format 1. For CPU alone (this machine is noisy), run
//! the bench binary with `1` or `2` as its argument (one format) under
//! `valgrind --tool=callgrind` and compare the instruction counts.

use std::time::{Duration, Instant};

use journal::bench_support::oru;
use journal::{Journal, JournalConfig};

/// Messages per size.
const N: usize = 60;
const SIZES: [usize; 3] = [1_000, 40_000, 300_000];

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let only = std::env::args().nth(1).and_then(|a| a.parse::<u64>().ok());
    match only {
        Some(f) => {
            let t = rt.block_on(run(f));
            eprintln!("format {f}: {:.2} s", t.as_secs_f64());
        }
        None => {
            // Interleaved, so a change in the machine's load hits both.
            let (mut one, mut two) = (Duration::ZERO, Duration::ZERO);
            for _ in 0..3 {
                one += rt.block_on(run(1));
                two += rt.block_on(run(2));
            }
            eprintln!(
                "3 runs each: format 1 {:.2} s, format 2 {:.2} s: format 2 / format 1 = {:.2}",
                one.as_secs_f64(),
                two.as_secs_f64(),
                two.as_secs_f64() / one.as_secs_f64()
            );
        }
    }
}

/// Appends and reads back `N` messages of each size in a fresh journal of
/// `format`; the time taken (the journal's creation not counted).
async fn run(format: u64) -> Duration {
    let t = tempfile::Builder::new()
        .prefix("jformat")
        .tempdir_in(".")
        .unwrap();
    let dir = t.path().join("j");
    Journal::open(JournalConfig::new(dir.clone()))
        .unwrap()
        .close()
        .await
        .unwrap();
    journal::migrate::migrate(&dir, format).unwrap();
    let j = Journal::open(JournalConfig::new(dir)).unwrap();
    let start = Instant::now();
    let mut ids = Vec::new();
    for (s, size) in SIZES.into_iter().enumerate() {
        for i in 0..N {
            // Each OBX line is 15 bytes.
            let m = oru(&format!("F{s}-{i}"), 1, size / 15);
            match j.append(m).await.unwrap() {
                journal::Appended::Stored { id } => ids.push(id),
                other => panic!("{other:?}"),
            }
        }
    }
    for id in ids {
        assert!(j.get(id).unwrap().is_some());
    }
    let took = start.elapsed();
    j.close().await.unwrap();
    took
}
