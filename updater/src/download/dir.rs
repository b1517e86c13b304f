//! Chunks from a local copy of a published repository (`--from DIR`):
//! `DIR/targets/<sha256>.<name>`.

use super::{ChunkSource, FetchError};
use crate::target::UpdateTarget;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

pub struct DirSource {
    pub targets_dir: PathBuf,
}

impl ChunkSource for DirSource {
    fn fetch(&mut self, t: &UpdateTarget, i: usize) -> Result<Vec<u8>, FetchError> {
        let path = self.targets_dir.join(t.file_name());
        let f = std::fs::File::open(&path)
            .map_err(|e| FetchError::Terminal(format!("{}: {e}", path.display())))?;
        let (off, len) = t.chunk_range(i);
        let mut buf = vec![0u8; len as usize];
        f.read_exact_at(&mut buf, off)
            .map_err(|e| FetchError::Retry(format!("{}: {e}", path.display())))?;
        Ok(buf)
    }
    fn describe(&self) -> String {
        self.targets_dir.display().to_string()
    }
}
