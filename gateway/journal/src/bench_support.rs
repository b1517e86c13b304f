//! Baselines for benchmarks: the raw rate of the disk the journal is on.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// Appends `n` small (128-byte) records to a fresh plain file in `dir`,
/// `fdatasync`ing after each, and returns the rate in records per second.
/// This is the ceiling for a journal that syncs every record without group
/// commit, on the same disk. The file is removed afterwards.
pub fn raw_fdatasync_rate(dir: &Path, n: usize) -> std::io::Result<f64> {
    let path = dir.join(format!(".raw-fdatasync-{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    let rec = [0x5au8; 128];
    let start = Instant::now();
    let mut res = Ok(());
    for _ in 0..n {
        res = f.write_all(&rec).and_then(|()| f.sync_data());
        if res.is_err() {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    drop(f);
    let _ = std::fs::remove_file(&path);
    res?;
    Ok(if secs > 0.0 {
        n as f64 / secs
    } else {
        f64::INFINITY
    })
}
