//! Disk-space policy: the quota on the journal directory and the
//! filesystem watermark. Mechanism (statvfs, sizes) is here; the writer
//! calls [`SpaceGuard::admit`] before applying each append or quarantine,
//! and [`SpaceGuard::room_for_commit`] right before each commit's writes
//! (which may release the space reserve, `reserve.rs`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use crate::reserve::Reserve;

/// Percent of the filesystem holding `path` that is in use, as `df` computes
/// it: used / (used + available to unprivileged users), rounded up.
/// Also returns the bytes available to unprivileged writers.
pub(crate) fn fs_percent_used(path: &Path) -> Result<(u8, u64), nix::Error> {
    let s = nix::sys::statvfs::statvfs(path)?;
    let avail_bytes =
        (s.blocks_available() as u128 * s.fragment_size() as u128).min(u64::MAX as u128) as u64;
    let blocks = s.blocks() as u128;
    let free = s.blocks_free() as u128;
    let avail = s.blocks_available() as u128;
    let used = blocks.saturating_sub(free);
    let denom = used + avail;
    if denom == 0 {
        return Ok((100, avail_bytes));
    }
    Ok((((used * 100).div_ceil(denom)).min(100) as u8, avail_bytes))
}

pub(crate) fn is_enospc(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(c) if c == nix::libc::ENOSPC || c == nix::libc::EDQUOT)
}

/// Shared, cheaply readable usage numbers (published by the writer).
#[derive(Default)]
pub(crate) struct Usage {
    pub bytes_on_disk: AtomicU64,
    pub percent_used: AtomicU8,
}

pub(crate) struct SpaceGuard {
    dir: PathBuf,
    quota_bytes: Option<u64>,
    refuse_at: u8,
    warn_at: u8,
    warned: bool,
    /// Last measured size of the journal directory, plus bytes appended since.
    measured_at: Option<Instant>,
    bytes: u64,
    /// Bytes free on the filesystem at the last refresh, minus bytes
    /// admitted since.
    avail: u64,
    reserve: Reserve,
}

/// Free space always kept in hand beyond a write's own size: sled may grow
/// the log by a segment or two and rewrite nodes as blobs. This matters:
/// sled 0.34.7 wedges (every later flush, and its Drop, block forever) when
/// writing a blob file fails with ENOSPC (`reserve_inner` returns early on
/// `encapsulate` with a writer slot claimed), so we refuse *before* sled
/// can hit ENOSPC from our own writes.
pub(crate) const HEADROOM: u64 = 2 * 1024 * 1024;

/// How often the (readdir-based) directory size is re-measured; in between,
/// bytes appended are added to the last measurement (an overestimate).
const REMEASURE: Duration = Duration::from_millis(500);

impl SpaceGuard {
    pub(crate) fn new(
        dir: &Path,
        quota_bytes: Option<u64>,
        refuse_at: u8,
        warn_at: u8,
        reserve_bytes: u64,
    ) -> SpaceGuard {
        // Allocated at open, so it is in place before the first message.
        let mut reserve = Reserve::new(dir, reserve_bytes);
        if let Ok((_, avail)) = fs_percent_used(dir) {
            reserve.ensure(avail, reserve.size().max(HEADROOM));
        }
        SpaceGuard {
            reserve,
            dir: dir.to_path_buf(),
            quota_bytes,
            refuse_at,
            warn_at,
            warned: false,
            measured_at: None,
            bytes: 0,
            avail: u64::MAX,
        }
    }

    pub(crate) fn invalidate(&mut self) {
        self.measured_at = None;
    }

    /// The bytes counted so far, to [`SpaceGuard::restore`] if a batch is undone.
    pub(crate) fn mark(&self) -> (u64, u64) {
        (self.bytes, self.avail)
    }

    pub(crate) fn restore(&mut self, (bytes, avail): (u64, u64)) {
        self.bytes = bytes;
        self.avail = avail;
    }

    /// Record bytes written since the last measurement.
    pub(crate) fn add(&mut self, n: u64) {
        self.bytes = self.bytes.saturating_add(n);
        self.avail = self.avail.saturating_sub(n);
    }

    /// Refresh measurements (cheap: statvfs; directory size at most every
    /// 500 ms) and publish them.
    pub(crate) fn refresh(&mut self, db: &sled::Db, usage: &Usage) -> Result<u8, String> {
        let stale = match self.measured_at {
            None => true,
            Some(t) => t.elapsed() >= REMEASURE,
        };
        if stale {
            match db.size_on_disk() {
                Ok(n) => {
                    self.bytes = n;
                    self.measured_at = Some(Instant::now());
                }
                Err(e) => log::warn!("journal: measuring journal size failed: {e}"),
            }
        }
        let (fs_pct, avail) = fs_percent_used(&self.dir).map_err(|e| {
            format!(
                "cannot read free space of data directory {} ({e}): check the data partition",
                self.dir.display()
            )
        })?;
        self.avail = avail;
        if !self.reserve.is_held() {
            // Resume only with a reserve's worth of room besides it.
            let margin = self.reserve.size().max(HEADROOM);
            if self.reserve.ensure(avail, margin) {
                self.avail = avail.saturating_sub(self.reserve.size());
            }
        }
        let q_pct = self.quota_pct(self.bytes);
        let pct = fs_pct.max(q_pct);
        usage.bytes_on_disk.store(self.bytes, Ordering::Relaxed);
        usage.percent_used.store(pct, Ordering::Relaxed);
        if pct >= self.warn_at && !self.warned {
            self.warned = true;
            log::warn!(
                "journal: disk use {pct}% reached the warning level {}% (filesystem {fs_pct}%, journal {} bytes)",
                self.warn_at,
                self.bytes
            );
        } else if pct < self.warn_at && self.warned {
            self.warned = false;
            log::info!(
                "journal: disk use {pct}% back below the warning level {}%",
                self.warn_at
            );
        }
        Ok(fs_pct)
    }

    fn quota_pct(&self, bytes: u64) -> u8 {
        match self.quota_bytes {
            Some(0) => 100,
            Some(q) => ((bytes as u128 * 100).div_ceil(q as u128)).min(100) as u8,
            None => 0,
        }
    }

    /// Whether `incoming` more bytes may be accepted. `fs_pct` from `refresh`.
    pub(crate) fn admit(&self, fs_pct: u8, incoming: u64) -> Result<(), String> {
        if !self.reserve.is_held() {
            return Err(format!(
                "data directory {} is full: its space reserve {} is in use, so new messages are \
                 refused until free space returns: free disk space on that filesystem",
                self.dir.display(),
                self.reserve.path().display()
            ));
        }
        if fs_pct >= self.refuse_at {
            return Err(format!(
                "data directory {} is {fs_pct}% full (refuse at {}%): free disk space or raise the quota",
                self.dir.display(),
                self.refuse_at
            ));
        }
        let need = incoming.saturating_mul(2).saturating_add(HEADROOM);
        if self.avail < need {
            return Err(format!(
                "data directory {} has only {} bytes free, {need} needed to store {incoming} bytes safely: \
                 free disk space or raise the quota",
                self.dir.display(),
                self.avail
            ));
        }
        if let Some(q) = self.quota_bytes {
            let after = self.bytes.saturating_add(incoming);
            let limit = (q as u128 * self.refuse_at as u128 / 100) as u64;
            if after > limit {
                return Err(format!(
                    "journal {} would use {after} bytes of its {q}-byte quota (refuse at {}%): \
                     let destinations drain the backlog, free space, or raise quota_bytes",
                    self.dir.display(),
                    self.refuse_at
                ));
            }
        }
        Ok(())
    }

    /// Whether a commit of `bytes` (its WAL record's ops) may be written:
    /// the WAL record plus what sled may write for it (`2 × bytes +
    /// HEADROOM`) must fit in the free space, measured now. If it does not,
    /// the space reserve is released and free space measured again; if it
    /// still does not fit, the commit must be refused before anything is
    /// written (sled must never meet ENOSPC).
    pub(crate) fn room_for_commit(&mut self, bytes: u64) -> Result<(), String> {
        self.room(bytes.saturating_mul(3).saturating_add(HEADROOM), bytes)
    }

    /// The same check for sled's part alone (`2 × bytes + HEADROOM`), made
    /// again after the WAL record is synced, right before sled writes.
    pub(crate) fn room_for_sled(&mut self, bytes: u64) -> Result<(), String> {
        self.room(bytes.saturating_mul(2).saturating_add(HEADROOM), bytes)
    }

    fn room(&mut self, need: u64, bytes: u64) -> Result<(), String> {
        let avail = |dir: &Path| fs_percent_used(dir).map(|(_, a)| a).unwrap_or(0);
        let mut free = avail(&self.dir);
        if free < need && self.reserve.release() {
            free = avail(&self.dir);
        }
        self.avail = free;
        if free >= need {
            return Ok(());
        }
        Err(format!(
            "data directory {} has only {free} bytes free, {need} needed to commit {bytes} bytes \
             safely (space reserve {} already released): free disk space",
            self.dir.display(),
            self.reserve.path().display()
        ))
    }
}
