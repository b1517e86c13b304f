//! The resume bitmap (`STATE_DIR/bitmap.json`): one bit per chunk that is
//! durably in the target slot. A bit is set only after the slot was fsync'd
//! with that chunk in it, and the file is replaced atomically, so after a
//! power cut every set bit is true (a chunk may be in the slot with its bit
//! unset; it is then found by comparing hashes and not downloaded again).

use crate::boot::SlotId;
use crate::durable::{read_json, write_json, Files};
use crate::target::UpdateTarget;
use crate::Result;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct BitmapFile {
    target_sha256: String,
    slot: SlotId,
    chunks: usize,
    done: String,
}

#[derive(Debug, Clone)]
pub struct Bitmap {
    path: PathBuf,
    file: BitmapFile,
    bits: Vec<u8>,
}

impl Bitmap {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("bitmap.json")
    }

    /// The saved bitmap if it is for this target and slot, else an empty one.
    pub fn load(
        files: &dyn Files,
        state_dir: &Path,
        t: &UpdateTarget,
        slot: SlotId,
    ) -> Result<Self> {
        let path = Self::path(state_dir);
        let n = t.chunks.len();
        let fresh = BitmapFile {
            target_sha256: t.sha256_hex(),
            slot,
            chunks: n,
            done: String::new(),
        };
        let saved: Option<BitmapFile> = read_json(files, &path).unwrap_or(None);
        let file = match saved {
            Some(f)
                if f.target_sha256 == fresh.target_sha256 && f.slot == slot && f.chunks == n =>
            {
                f
            }
            _ => fresh,
        };
        let mut bits = hex::decode(&file.done).unwrap_or_default();
        bits.resize(n.div_ceil(8), 0);
        Ok(Bitmap { path, file, bits })
    }

    /// Progress of a saved bitmap, for `status`: (done, total, target sha256).
    pub fn progress(files: &dyn Files, state_dir: &Path) -> Option<(usize, usize, String)> {
        let f: BitmapFile = read_json(files, &Self::path(state_dir)).ok()??;
        let bits = hex::decode(&f.done).ok()?;
        let done = bits
            .iter()
            .map(|b| b.count_ones() as usize)
            .sum::<usize>()
            .min(f.chunks);
        Some((done, f.chunks, f.target_sha256))
    }

    pub fn get(&self, i: usize) -> bool {
        self.bits
            .get(i / 8)
            .is_some_and(|b| b & (1 << (i % 8)) != 0)
    }
    pub fn set(&mut self, i: usize) {
        if let Some(b) = self.bits.get_mut(i / 8) {
            *b |= 1 << (i % 8);
        }
    }
    pub fn count(&self) -> usize {
        (0..self.file.chunks).filter(|i| self.get(*i)).count()
    }
    pub fn clear(&mut self) {
        self.bits.iter_mut().for_each(|b| *b = 0);
    }
    pub fn save(&mut self, files: &dyn Files) -> Result<()> {
        self.file.done = hex::encode(&self.bits);
        write_json(files, &self.path, &self.file)
    }
}
