//! Slots: the two root-filesystem partitions (or files) an image is written
//! to. The updater only ever writes the slot it is not running from.
//!
//! An image occupies the first `length` bytes of its slot; the rest of the
//! slot is left alone. A slot device may be a regular file (tests, the qemu
//! harness) or a block device (`/dev/disk/by-partlabel/gateway-b`, a loop
//! device partition): both go through [`FileSlot`], with positioned reads and
//! writes and `fsync` (which on a block device also flushes its cache).

mod faulty;

pub use faulty::FaultyDisk;

use crate::hash::{Hasher, Sha256};
use crate::target::UpdateTarget;
use crate::{Error, Result};
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Positioned I/O on one slot.
pub trait SlotDevice: Send {
    /// Size of the slot in bytes.
    fn size(&self) -> u64;
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()>;
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()>;
    /// Makes every write so far durable.
    fn sync(&mut self) -> Result<()>;
    /// The path, for messages.
    fn describe(&self) -> String;
}

/// A slot backed by a file or a block device.
#[derive(Debug)]
pub struct FileSlot {
    file: File,
    path: PathBuf,
    size: u64,
}

impl FileSlot {
    /// Opens for reading and writing.
    pub fn open(path: &Path) -> Result<FileSlot> {
        Self::open_with(path, true)
    }

    /// Opens read-only (the active slot).
    pub fn open_read_only(path: &Path) -> Result<FileSlot> {
        Self::open_with(path, false)
    }

    fn open_with(path: &Path, write: bool) -> Result<FileSlot> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(write)
            .open(path)
            .map_err(|e| Error::io(path, "open slot device", e))?;
        // A block device's metadata length is 0: seek to the end instead.
        let size = file
            .seek(SeekFrom::End(0))
            .map_err(|e| Error::io(path, "measure slot size", e))?;
        Ok(FileSlot {
            file,
            path: path.to_path_buf(),
            size,
        })
    }
}

impl SlotDevice for FileSlot {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| Error::io(&self.path, "read slot", e))
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        if offset + data.len() as u64 > self.size {
            return Err(Error::State(format!(
                "{}: write of {} bytes at {offset} goes past the end of the slot ({} bytes)",
                self.path.display(),
                data.len(),
                self.size
            )));
        }
        self.file
            .write_all_at(data, offset)
            .map_err(|e| Error::io(&self.path, "write slot", e))
    }
    fn sync(&mut self) -> Result<()> {
        self.file
            .sync_all()
            .map_err(|e| Error::io(&self.path, "fsync slot", e))
    }
    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

/// Hashes the first `len` bytes of a slot.
pub fn hash_prefix(dev: &mut dyn SlotDevice, len: u64) -> Result<Sha256> {
    let mut h = Hasher::default();
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    while off < len {
        let n = (len - off).min(buf.len() as u64) as usize;
        dev.read_at(off, &mut buf[..n])?;
        h.update(&buf[..n]);
        off += n as u64;
    }
    Ok(h.finish())
}

/// True if chunk `i` of `target` is already on `dev`, byte for byte.
pub fn chunk_matches(dev: &mut dyn SlotDevice, target: &UpdateTarget, i: usize) -> Result<bool> {
    let (off, len) = target.chunk_range(i);
    if off + len > dev.size() {
        return Ok(false);
    }
    let mut buf = vec![0u8; len as usize];
    dev.read_at(off, &mut buf)?;
    Ok(crate::hash::sha256(&buf) == target.chunks[i])
}

/// Reads the whole image back and checks its length-prefix hash and every
/// chunk hash (step 4 of an install).
/// A mismatch is [`crate::Error::ReadBack`].
pub fn verify_image(dev: &mut dyn SlotDevice, target: &UpdateTarget) -> Result<()> {
    use crate::Error::ReadBack;
    if target.length > dev.size() {
        return Err(ReadBack(format!(
            "image is {} bytes but the slot holds only {}",
            target.length,
            dev.size()
        )));
    }
    let mut whole = Hasher::default();
    let mut buf = vec![0u8; target.chunk_size as usize];
    for i in 0..target.chunks.len() {
        let (off, len) = target.chunk_range(i);
        let b = &mut buf[..len as usize];
        dev.read_at(off, b)?;
        if crate::hash::sha256(b) != target.chunks[i] {
            return Err(ReadBack(format!(
                "chunk {i} (offset {off}) reads back wrong"
            )));
        }
        whole.update(b);
    }
    if whole.finish() != target.sha256 {
        return Err(ReadBack(
            "the image's SHA-256 does not match the signed target".into(),
        ));
    }
    Ok(())
}
