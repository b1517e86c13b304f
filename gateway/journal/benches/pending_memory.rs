//! What a pending message costs in memory, and whose memory it is. Appends
//! `PENDING_MEMORY_MESSAGES` (default 100,000) ORU^R01s of ~1.1 KB, each
//! pending on one outbox and indexed by patient (the daemon's
//! `append_traced`), 64 at a time, and samples glibc's heap in use
//! (`mallinfo2`) and RSS every fifth of the way. The baseline, in the same
//! run: raw sled with the same cache cap, 4 keys per message, once with
//! 1.1 KB values and once with 16-byte ones, so a growth per key is told
//! from a growth per byte. Reports MB per 1,000 messages and the ratios;
//! asserts nothing. Run with `cargo bench -p journal --bench pending_memory`.
//! glibc only (mallinfo2).

use std::path::Path;

use journal::bench_support::{oru, rss_mb};
use journal::{Journal, JournalConfig, PatientRef, Policy};
use nix::libc;

fn heap_mb() -> f64 {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    unsafe { libc::mallinfo2() }.uordblks as f64 / 1e6
}

/// (messages, heap in use MB, RSS MB) at each sample.
type Samples = Vec<(u64, f64, f64)>;

fn sample(out: &mut Samples, n: u64) {
    out.push((n, heap_mb(), rss_mb().0));
}

/// MB per 1,000 messages between the first and the last sample.
fn slope(s: &Samples) -> f64 {
    let (a, b) = (s[0], s[s.len() - 1]);
    (b.1 - a.1) / ((b.0 - a.0) as f64 / 1000.0)
}

fn journal_case(dir: &Path, n: u64) -> Samples {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let j = Journal::open(JournalConfig::new(dir.to_path_buf())).unwrap();
        let mut out = Vec::new();
        let step = (n / 5).max(64) / 64 * 64;
        let mut i = 0u64;
        while i < n {
            let mut set = tokio::task::JoinSet::new();
            for k in i..i + 64 {
                let j = j.clone();
                let patient = k % 500;
                let mut tag = [0u8; 16];
                tag[..8].copy_from_slice(&patient.to_be_bytes());
                let mut m = oru(&format!("C{k}"), 1, 70);
                m.patient_lane = patient + 1;
                let p = PatientRef {
                    tag,
                    authority: "CLINIC".into(),
                };
                set.spawn(async move { j.append_traced(m, Policy::default(), Some(p)).await });
            }
            while let Some(r) = set.join_next().await {
                r.unwrap().unwrap();
            }
            i += 64;
            if i % step == 0 {
                sample(&mut out, i);
            }
        }
        j.close().await.unwrap();
        out
    })
}

fn sled_case(dir: &Path, n: u64, value_len: usize) -> Samples {
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(4 * 1024 * 1024)
        .open()
        .unwrap();
    let body = vec![b'x'; value_len];
    let mut out = Vec::new();
    let step = (n / 5).max(1);
    for i in 0..n {
        let id = i.to_be_bytes();
        let key = |p: u8| {
            let mut k = vec![p];
            k.extend_from_slice(&id);
            k
        };
        db.insert(key(b'm'), &body[..]).unwrap();
        db.insert(format!("o/cloud/{i:016x}").as_bytes(), &[0u8; 40][..])
            .unwrap();
        db.insert(format!("d/lab/A/B/C{i}").as_bytes(), &id[..])
            .unwrap();
        db.insert(key(b'i'), &[1u8; 24][..]).unwrap();
        if (i + 1) % step == 0 {
            sample(&mut out, i + 1);
        }
    }
    out
}

fn main() {
    let n: u64 = std::env::var("PENDING_MEMORY_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let t = tempfile::Builder::new()
        .prefix("jmem")
        .tempdir_in(".")
        .unwrap();
    // Each case in a fresh store; the first sample (a fifth of the way)
    // is the reference, so the fixed start-up costs cancel out.
    let cases = [
        (
            "journal, 5 keys/message",
            journal_case(&t.path().join("j"), n),
        ),
        (
            "sled, 4 keys, 1.1 KB values",
            sled_case(&t.path().join("s1"), n, 1100),
        ),
        (
            "sled, 4 keys, 16 B values",
            sled_case(&t.path().join("s2"), n, 16),
        ),
    ];
    println!("pending_memory: {n} messages; heap in use (mallinfo2) and RSS, MB");
    for (name, s) in &cases {
        let points: Vec<String> = s
            .iter()
            .map(|(k, h, r)| format!("{}k {h:.1}/{r:.1}", k / 1000))
            .collect();
        println!("  {name:<30} {}", points.join("  "));
    }
    let slopes: Vec<f64> = cases.iter().map(|(_, s)| slope(s)).collect();
    println!(
        "heap in use per 1,000 messages: journal {:.3} MB, sled 1.1 KB values {:.3} MB, sled 16 B values {:.3} MB",
        slopes[0], slopes[1], slopes[2]
    );
    println!(
        "ratios: journal / sled (1.1 KB) {:.2}; sled 16 B / sled 1.1 KB {:.2} (1.0 = the growth is per key, not per byte)",
        slopes[0] / slopes[1],
        slopes[2] / slopes[1]
    );
}
