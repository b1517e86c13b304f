//! Small files that survive a power cut: state, bitmap, the simulated
//! firmware's environment, trusted metadata copies.
//!
//! A replacement is: write `.NAME.tmp`, fsync it, rename over `NAME`, fsync
//! it there and the directory ([`rename_synced`]). After a cut at any
//! instant the file holds either the old or the new content, never a mix;
//! a leftover `.tmp` is ignored and overwritten next time.

use crate::fault::{FaultPlan, Point};
use crate::{Error, Result};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub trait Files: Send + Sync {
    /// Replaces `path` atomically and durably with `bytes`.
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<()>;

    /// Reads `path`; `None` if it does not exist.
    fn read(&self, path: &Path) -> Result<Option<Vec<u8>>> {
        match fs::read(path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path, "read", e)),
        }
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Renames `from` to `to` (over it if it exists) and makes the result
/// durable: the renamed file is fsync'd at its new name, then the directory.
///
/// The file's own fsync is for FAT (the ESP): vfat's rename only marks the
/// inode dirty, and the new directory entry's size and first cluster are
/// written with the inode, which an fsync of the directory does not do. A
/// power cut before writeback left the renamed boot entry, kernel and
/// initramfs with size 0 (seen in the qemu power-cut scenario 4). The new
/// entry is written first, then the old name's removal, as the kernel itself
/// orders it on a `dirsync` mount. On ext4 the extra fsync of a clean file
/// costs next to nothing.
pub fn rename_synced(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(|e| Error::io(to, "rename into place", e))?;
    File::open(to)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(to, "fsync after rename", e))?;
    sync_dir(parent(to))
}

/// fsync a directory, so a rename or a new entry in it is durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, "fsync directory", e))
}

/// Creates a directory (and parents) and makes the new entries durable.
pub fn create_dir_all(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, "create directory", e))?;
    sync_dir(parent(dir))
}

/// The production implementation.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFiles;

impl Files for RealFiles {
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let tmp = tmp_path(path);
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| Error::io(&tmp, "create", e))?;
        f.write_all(bytes)
            .map_err(|e| Error::io(&tmp, "write", e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, "fsync", e))?;
        drop(f);
        rename_synced(&tmp, path)
    }
}

/// Test wrapper: three I/O points per replacement (write, fsync, rename +
/// directory fsync). A cut at the write leaves a torn `.tmp`; a cut at the
/// fsync or the rename leaves the old file in place.
#[derive(Debug, Clone)]
pub struct FaultyFiles {
    pub plan: Arc<FaultPlan>,
}

impl Files for FaultyFiles {
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let tmp = tmp_path(path);
        match self.plan.point() {
            Point::Proceed => {
                fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, "write", e))?;
            }
            Point::Tear => {
                let _ = fs::write(&tmp, &bytes[..bytes.len() / 2]);
                return Err(Error::io(&tmp, "write", self.plan.error()));
            }
            Point::Dead => return Err(Error::io(&tmp, "write", self.plan.error())),
        }
        if self.plan.point() != Point::Proceed {
            return Err(Error::io(&tmp, "fsync", self.plan.error()));
        }
        if self.plan.point() != Point::Proceed {
            return Err(Error::io(path, "rename into place", self.plan.error()));
        }
        RealFiles.write_atomic(path, bytes)
    }
}

/// Reads and parses a JSON file; `None` if it does not exist. A file that
/// does not parse is an error naming it (it was written atomically, so this
/// means outside damage, not a torn write).
pub fn read_json<T: serde::de::DeserializeOwned>(
    files: &dyn Files,
    path: &Path,
) -> Result<Option<T>> {
    match files.read(path)? {
        None => Ok(None),
        Some(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            Error::State(format!(
                "{}: not valid JSON ({e}); it was written atomically, so it was damaged from outside: \
                 move it away to start over",
                path.display()
            ))
        }),
    }
}

pub fn write_json<T: serde::Serialize>(files: &dyn Files, path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| Error::State(format!("{}: cannot serialise: {e}", path.display())))?;
    bytes.push(b'\n');
    files.write_atomic(path, &bytes)
}

/// An exclusive lock on `STATE_DIR/lock` for the life of the value: one
/// updater run at a time (the timer's and a technician's must not
/// interleave their writes). Released by the kernel if the process dies.
pub struct RunLock {
    _file: File,
}

impl RunLock {
    pub fn acquire(state_dir: &Path) -> Result<RunLock> {
        use std::os::unix::io::AsRawFd;
        let path = state_dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, "open lock file", e))?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(Error::State(format!(
                    "{}: another updater run holds the lock; try again when it has finished",
                    path.display()
                )));
            }
            return Err(Error::io(&path, "lock", e));
        }
        Ok(RunLock { _file: file })
    }
}

#[cfg(test)]
mod lock_tests {
    #[test]
    fn a_second_run_is_refused_while_the_first_holds_the_lock() {
        let d = tempfile::tempdir().unwrap();
        let first = super::RunLock::acquire(d.path()).unwrap();
        let e = super::RunLock::acquire(d.path()).err().unwrap().to_string();
        assert!(e.contains("another updater run"), "{e}");
        drop(first);
        super::RunLock::acquire(d.path()).unwrap();
    }
}
