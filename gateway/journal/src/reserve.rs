//! The space reserve: a file of allocated blocks in the journal directory
//! (`<dir>/reserve`, so on the same filesystem) that holds back room for the
//! journal to finish a commit when something else has filled the disk.
//!
//! Why: sled 0.34.7 wedges for good if a write of its own hits ENOSPC
//! (see `quota.rs`), and another process (a runaway log, a backup) can
//! fill the disk between our free-space check and sled's write. The
//! writer checks free space right before each commit's WAL append; when
//! the space is gone it truncates the reserve (freeing its blocks) so that
//! commit can finish, and from then on refuses new messages ("the reserve
//! is in use") until the reserve can be allocated again, which it retries
//! on every later admission, so service resumes by itself.
//!
//! Size: a commit writes its WAL record (its ops, `B` bytes) and then sled
//! writes at most `2 × B + HEADROOM` (each value once into its log or as a
//! blob file, plus node rewrites and a segment of log growth: the bound
//! the space guard already admits against). So the reserve covers any
//! commit of up to `(size - HEADROOM) / 3` bytes, and a group whose bytes
//! are not covered by free space and reserve together is refused with
//! `Full` before anything is written. The default (34 MiB: one 16 MiB
//! frame in full, the listener default) is capped to 1/16 of the
//! filesystem so a small data partition is not eaten by it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The reserve's name in the journal directory (sled ignores it; verify's
/// copy skips it).
pub const RESERVE_FILE: &str = "reserve";

/// Default reserve: one default-size (16 MiB) frame committed in full.
pub const DEFAULT_RESERVE_BYTES: u64 = 34 * 1024 * 1024;

pub(crate) struct Reserve {
    path: PathBuf,
    size: u64,
    /// Whether the file currently holds `size` allocated bytes.
    held: bool,
    /// Whether it has been released since the journal opened.
    released: bool,
}

impl Reserve {
    /// The reserve of the journal in `dir`, `size` bytes at most (capped to
    /// 1/16 of the filesystem). Allocated by the first [`Reserve::ensure`].
    pub(crate) fn new(dir: &Path, size: u64) -> Reserve {
        let path = dir.join(RESERVE_FILE);
        let size = match nix::sys::statvfs::statvfs(dir) {
            Ok(s) => {
                let total =
                    (s.blocks() as u128 * s.fragment_size() as u128).min(u64::MAX as u128) as u64;
                size.min(total / 16)
            }
            Err(_) => size,
        };
        Reserve {
            path,
            size,
            held: false,
            released: false,
        }
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn is_held(&self) -> bool {
        self.held || self.size == 0
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Allocate the reserve if it is not held and `avail` bytes are free
    /// beyond it plus `margin` (so re-creating it never itself fills the
    /// disk). Returns whether it is held now.
    pub(crate) fn ensure(&mut self, avail: u64, margin: u64) -> bool {
        if self.is_held() {
            return true;
        }
        if avail < self.size.saturating_add(margin) {
            return false;
        }
        match allocate(&self.path, self.size) {
            Ok(()) => {
                self.held = true;
                if self.released {
                    // Warn level: the operator saw the release (only
                    // warnings of the journal crate reach the log).
                    log::warn!(
                        "journal: space reserve {} ({} bytes) allocated again: accepting new \
                         messages again",
                        self.path.display(),
                        self.size
                    );
                } else {
                    log::info!(
                        "journal: space reserve {} ({} bytes) allocated",
                        self.path.display(),
                        self.size
                    );
                }
                true
            }
            Err(e) => {
                // A filler took the space first: try again later.
                log::warn!(
                    "journal: cannot allocate space reserve {} ({} bytes): {e}; new messages are \
                     refused until there is room",
                    self.path.display(),
                    self.size
                );
                false
            }
        }
    }

    /// Free the reserve's blocks (truncate to 0). Returns whether there was
    /// anything to free.
    pub(crate) fn release(&mut self) -> bool {
        if !self.held {
            return false;
        }
        self.held = false;
        self.released = true;
        match OpenOptions::new().write(true).open(&self.path) {
            Ok(f) => match f.set_len(0) {
                Ok(()) => {
                    log::warn!(
                        "journal: disk full: released the {}-byte space reserve {} to finish a \
                         commit; new messages are refused until free space returns",
                        self.size,
                        self.path.display()
                    );
                    true
                }
                Err(e) => {
                    log::error!("journal: truncating {} failed: {e}", self.path.display());
                    false
                }
            },
            Err(e) => {
                log::error!("journal: opening {} failed: {e}", self.path.display());
                false
            }
        }
    }
}

/// Give `path` `size` allocated bytes: `fallocate` (real blocks, no data
/// written), or zeros where the filesystem cannot preallocate. A short
/// allocation is undone (truncated) so a failed attempt holds nothing.
fn allocate(path: &Path, size: u64) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    let res = match nix::fcntl::fallocate(
        std::os::fd::AsRawFd::as_raw_fd(&f),
        nix::fcntl::FallocateFlags::empty(),
        0,
        size.min(i64::MAX as u64) as i64,
    ) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EOPNOTSUPP) => write_zeros(&mut f, size),
        Err(e) => Err(io::Error::from(e)),
    };
    if res.is_err() {
        let _ = f.set_len(0);
    }
    res
}

fn write_zeros(f: &mut File, size: u64) -> io::Result<()> {
    let chunk = vec![0u8; 1024 * 1024];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    f.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_releases_and_reallocates() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("journal");
        std::fs::create_dir(&dir).unwrap();
        let mut r = Reserve::new(&dir, 1024 * 1024);
        assert_eq!(r.path(), dir.join("reserve"));
        assert!(!r.is_held());
        assert!(!r.ensure(0, 0), "no room: not allocated");
        assert!(r.ensure(u64::MAX, 0));
        assert_eq!(std::fs::metadata(r.path()).unwrap().len(), 1024 * 1024);
        assert!(r.release());
        assert_eq!(std::fs::metadata(r.path()).unwrap().len(), 0);
        assert!(!r.release(), "released once");
        assert!(r.ensure(u64::MAX, 0));
        assert!(r.is_held());
    }

    #[test]
    fn zero_size_is_always_held() {
        let d = tempfile::tempdir().unwrap();
        let mut r = Reserve::new(d.path(), 0);
        assert!(r.is_held());
        assert!(r.ensure(0, 0));
        assert!(!r.release());
    }
}
