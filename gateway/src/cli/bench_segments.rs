//! The disk's raw append + `fdatasync` rate, three ways a log file can be
//! laid out (the question behind pre-allocating WAL segments):
//! - `append`: each record grows the file, so every `fdatasync` also
//!   commits the new size and extent (a filesystem journal write);
//! - `fallocate`: space reserved up front, but as unwritten extents, so the
//!   first write to each block still changes metadata;
//! - `prezeroed`: the file was written with zeros and synced first (the
//!   PostgreSQL `wal_init_zero` way): each `fdatasync` writes data blocks only.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Layout {
    Append,
    Fallocate,
    Prezeroed,
}

impl Layout {
    pub fn label(self) -> &'static str {
        match self {
            Layout::Append => "append",
            Layout::Fallocate => "fallocate",
            Layout::Prezeroed => "prezeroed",
        }
    }
}

/// Size reserved by `fallocate`/`prezeroed`; the run stops when it is full.
const RESERVED: u64 = 64 << 20;
const MIN_RECORDS: u64 = 50;
const MAX_TIME: Duration = Duration::from_secs(30);

fn prepare(path: &Path, layout: Layout) -> std::io::Result<File> {
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)?;
    match layout {
        Layout::Append => {}
        Layout::Fallocate => {
            nix::fcntl::fallocate(
                f.as_raw_fd(),
                nix::fcntl::FallocateFlags::empty(),
                0,
                RESERVED as i64,
            )
            .map_err(std::io::Error::from)?;
            f.sync_all()?;
        }
        Layout::Prezeroed => {
            let zeros = vec![0u8; 1 << 20];
            for _ in 0..(RESERVED >> 20) {
                f.write_all(&zeros)?;
            }
            f.sync_all()?;
            f.seek(SeekFrom::Start(0))?;
        }
    }
    Ok(f)
}

/// Writes of `size`-byte records, each followed by `fdatasync`, per second.
pub fn fdatasync_rate(
    dir: &Path,
    layout: Layout,
    size: usize,
    duration: Duration,
) -> std::io::Result<f64> {
    let path = dir.join(format!("fdatasync-{}.dat", layout.label()));
    let mut f = prepare(&path, layout)?;
    let record = vec![b'x'; size];
    let start = Instant::now();
    let mut n = 0u64;
    // At least MIN_RECORDS even on a disk too busy to finish them within
    // `duration` (a rate from one or two syncs says nothing), but bounded.
    while (start.elapsed() < duration || n < MIN_RECORDS)
        && start.elapsed() < MAX_TIME
        && (layout == Layout::Append || (n + 1) * size as u64 <= RESERVED)
    {
        f.write_all(&record)?;
        f.sync_data()?;
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path)?;
    Ok(rate)
}
