//! Evidence for contract 1 (DESIGN.md): sled 0.34's `flush()` alone does not
//! make a write survive power loss; `flush()` followed by `fdatasync` of
//! `<dir>/db` (plus fsync of new blob files, `blobs/`, `conf`, the db
//! directory and its parent) does.
//!
//! sled runs in a child process (`tests/bin/sled_evidence_child.rs`, a
//! `[[bin]]`), so that it can be SIGKILLed at an arbitrary moment like a
//! machine losing power. The child
//! prints `ACK <key>` only once the record is durable by its rules; the
//! parent cuts power on the lossyfs mount and re-opens the database in a
//! fresh child to see what survived.
//!
//! Set `LOSSYFS_SEED` to replay a particular run of the random cut points.

#[path = "support/sled_records.rs"]
mod sled_records;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hw_tests::model::Rng;
use hw_tests::LossyMount;

use sled_records::{fnv, fsync_path, value, MARK};

// ----------------------------------------------------------- parent side

struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: std::thread::JoinHandle<String>,
}

fn spawn(role: &str, dir: &Path, start: u64, count: u64) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sled-evidence-child"));
    if role == "dump" {
        cmd.arg("dump").arg(dir);
    } else {
        cmd.arg(role)
            .arg(dir)
            .args([start.to_string(), count.to_string()]);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    // Keep the panic message of a crashed child, not its backtrace.
    let stderr = std::thread::spawn(move || {
        let mut kept = String::new();
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if line.contains("panicked at") || (kept.ends_with(":\n") && kept.len() < 2000) {
                kept.push_str(line.trim());
                kept.push('\n');
            }
        }
        kept
    });
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let Some(at) = line.find(MARK) else { continue };
            if tx.send(line[at + MARK.len()..].to_string()).is_err() {
                break;
            }
        }
    });
    Proc {
        child,
        lines,
        stderr,
    }
}

impl Proc {
    /// SIGKILL and reap: after `wait` returns, no request of the process
    /// is still on its way to the filesystem.
    fn kill(mut self) -> Vec<String> {
        let _ = self.child.kill();
        self.child.wait().unwrap();
        self.lines.iter().collect()
    }
}

impl Proc {
    /// Kills the process and describes how it ended.
    fn failure(mut self) -> String {
        let _ = self.child.kill();
        let status = self.child.wait().unwrap();
        let err = self.stderr.join().unwrap_or_default();
        format!("reopen did not finish ({status}): {}", err.trim())
    }
}

fn acks(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("ACK "))
        .map(|k| k.parse().unwrap())
        .collect()
}

/// Re-opens the database in a fresh process: key -> (len, hash).
fn dump(dir: &Path) -> Result<BTreeMap<u64, (usize, u64)>, String> {
    let p = spawn("dump", dir, 0, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut keys = BTreeMap::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = p.lines.recv_timeout(left) else {
            return Err(p.failure());
        };
        let mut w = line.split_whitespace();
        match w.next() {
            Some("NODB") | Some("END") => break,
            Some("ERROR") => {
                p.kill();
                return Err(line);
            }
            Some("KEY") => {
                let k = w.next().unwrap().parse().unwrap();
                let len = w.next().unwrap().parse().unwrap();
                let h = w.next().unwrap().parse().unwrap();
                keys.insert(k, (len, h));
            }
            _ => {}
        }
    }
    let mut child = p.child;
    child.wait().unwrap();
    Ok(keys)
}

fn seed() -> u64 {
    std::env::var("LOSSYFS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

/// Writes `n` records with `flush()` after each in `mode`, waits until all
/// are acknowledged, kills the writer, cuts power, and returns
/// (acknowledged, survived).
fn flush_then_cut(mode: &str, n: u64) -> (usize, usize) {
    let fs = LossyMount::mount_temp("sled-a").unwrap();
    let parent = fs.path().join("var");
    std::fs::create_dir(&parent).unwrap();
    fsync_path(&parent);
    fsync_path(fs.path());
    let dir = parent.join("journal");
    let p = spawn(mode, &dir, 0, n);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = Vec::new();
    while lines.last().map(String::as_str) != Some("DONE") {
        let left = deadline.saturating_duration_since(Instant::now());
        lines.push(p.lines.recv_timeout(left).expect("writer finished"));
    }
    lines.extend(p.kill());
    let acked = acks(&lines);
    assert_eq!(acked.len() as u64, n);
    let before = fs.stats();
    let cut = fs.power_cut();
    let keys = match dump(&dir) {
        Ok(k) => k,
        Err(e) => {
            println!("(a) mode={mode}: reopen failed after the cut: {e}");
            BTreeMap::new()
        }
    };
    let survived = acked.iter().filter(|k| keys.contains_key(k)).count();
    println!(
        "(a) mode={mode}: {n} records flushed and acknowledged, {survived} survived, {} lost; \
         fsync={} fdatasync={} fsyncdir={}; cut dropped {} bytes, {} inodes lost",
        acked.len() - survived,
        before.fsync,
        before.fdatasync,
        before.fsyncdir,
        cut.bytes_dropped,
        cut.inodes_lost
    );
    (acked.len(), survived)
}

/// (a) sled's `flush()` is not durable: everything it acknowledged is gone.
#[test]
fn sled_flush_alone_loses_acknowledged_records() {
    // Plain sled: it never fsyncs its directory, so the database vanishes.
    let (acked, survived) = flush_then_cut("sled-only", 40);
    assert!(survived < acked, "plain sled kept all {acked} records");
    // Directory entries made durable by hand, periodic flusher off: only
    // sled's own flush() (pwrite + sync_file_range) stands between the
    // records and the power cut.
    let (acked, survived) = flush_then_cut("flush-only", 40);
    assert!(
        survived < acked,
        "flush() alone kept all {acked} records: lossyfs did not drop them"
    );
}

/// (a') Syncing `db` is not enough when records are large: sled writes
/// each value above its inline limit to a new file under `blobs/`, and if
/// that file (or its entry in `blobs/`) is not durable, the durable log
/// points at a missing blob and the next `sled::Config::open` panics in
/// recovery ("tried to serialize Uninitialized", while it rewrites the
/// snapshot): the whole database is lost, not just the large records.
#[test]
fn sled_fdatasync_without_blob_fsync_loses_the_database() {
    let (acked, survived) = flush_then_cut("db-only", 40);
    assert!(
        survived < acked,
        "all {acked} records survived without blob fsync"
    );
}

/// (b) `flush()` + `fdatasync(db)` + fsync of new blobs and of the
/// directories: no acknowledged record is ever lost, over repeated power
/// cuts at random moments, full and torn.
#[test]
fn sled_flush_plus_fdatasync_loses_nothing() {
    let seed = seed();
    println!("(b) seed {seed} (set LOSSYFS_SEED to replay)");
    let mut rng = Rng::new(seed);
    let fs = LossyMount::mount_temp("sled-b").unwrap();
    let parent = fs.path().join("var");
    std::fs::create_dir(&parent).unwrap();
    fsync_path(&parent);
    fsync_path(fs.path());
    let dir = parent.join("journal");
    let mut acked: BTreeMap<u64, (usize, u64)> = BTreeMap::new();
    let mut next = 0;
    let cycles = 10;
    for cycle in 0..cycles {
        let p = spawn("durable", &dir, next, 1_000_000);
        let mut lines = Vec::new();
        let (when, run) = if cycle % 4 == 3 {
            // Cut while sled opens and recovers from the previous cut.
            ("during startup", Duration::from_millis(rng.below(300)))
        } else {
            let deadline = Instant::now() + Duration::from_secs(60);
            while lines.last().map(String::as_str) != Some("OPENED") {
                let left = deadline.saturating_duration_since(Instant::now());
                lines.push(p.lines.recv_timeout(left).expect("writer opened sled"));
            }
            ("after open", Duration::from_millis(50 + rng.below(700)))
        };
        std::thread::sleep(run);
        lines.extend(p.kill());
        let partial = cycle % 2 == 1;
        let cut = if partial {
            fs.power_cut_partial(rng.next_u64())
        } else {
            fs.power_cut()
        };
        let new = acks(&lines);
        for k in &new {
            let v = value(*k);
            acked.insert(*k, (v.len(), fnv(&v)));
        }
        if let Some(last) = new.last() {
            next = last + 1;
        }
        let keys = dump(&dir).unwrap_or_else(|e| panic!("cycle {cycle}: reopen failed: {e}"));
        let lost: Vec<u64> = acked
            .iter()
            .filter(|(k, want)| keys.get(k) != Some(want))
            .map(|(k, _)| *k)
            .collect();
        println!(
            "(b) cycle {cycle}: cut {when} +{run:?}, {} acked this cycle, {} acked in total, {} lost; \
             {} cut dropped {} bytes (kept {} torn)",
            new.len(),
            acked.len(),
            lost.len(),
            if partial { "partial" } else { "full" },
            cut.bytes_dropped,
            cut.bytes_kept
        );
        assert!(
            lost.is_empty(),
            "cycle {cycle} (seed {seed}): acknowledged records lost: {lost:?}"
        );
    }
    let blobs = acked.keys().filter(|k| *k % 5 == 2).count();
    let stats = fs.stats();
    println!(
        "(b) {cycles} cuts, {} records acknowledged ({blobs} of them >1 MiB blobs), 0 lost; \
         fsync={} fdatasync={} fsyncdir={}",
        acked.len(),
        stats.fsync,
        stats.fdatasync,
        stats.fsyncdir
    );
    assert!(acked.len() >= 20, "too few records to mean anything");
    assert!(blobs >= 2, "too few blob-sized records");
}
