//! The folder sink: `<output>/<tenant>/<transactionTime>/` holding
//! `<Type>.<n>.ndjson` (tagged resources), `errors/<Type>.<n>.ndjson` (the
//! server's OperationOutcomes), `deleted/<Type>.<n>.ndjson` (tombstones),
//! `manifest.json` (the server's manifest; `manifest.<k>.json` for further
//! pages of a partial one) and, last, `done`. Every file is written to a
//! temporary name, fsync'd, renamed and its directory fsync'd, so a file
//! is there whole or not at all.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::manifest::{FileEntry, FileKind};
use journal::durable_fs;

/// `transactionTime` as a directory name (an instant is already safe on
/// Linux; anything odd a server sends becomes `_`).
pub fn job_dir(output: &Path, tenant: &str, transaction_time: &str) -> PathBuf {
    let safe: String = transaction_time
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | ':' | '.' | '+') {
                c
            } else {
                '_'
            }
        })
        .collect();
    output.join(tenant).join(safe)
}

/// Where file `entry` (the `n`th of its kind and type, from 1) goes, relative to the job dir.
pub fn file_path(entry: &FileEntry, n: u32) -> PathBuf {
    let ty: String = entry
        .resource_type
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let name = format!("{ty}.{n}.ndjson");
    match entry.kind {
        FileKind::Output => PathBuf::from(name),
        FileKind::Error => Path::new("errors").join(name),
        FileKind::Deleted => Path::new("deleted").join(name),
    }
}

/// A file being written: `<name>.part` until [`PartFile::commit`].
pub struct PartFile {
    out: BufWriter<File>,
    part: PathBuf,
    dest: PathBuf,
}

impl PartFile {
    /// Start (or restart: a leftover part is truncated) `dest`.
    pub fn create(dest: PathBuf) -> std::io::Result<PartFile> {
        let dir = dest.parent().map(Path::to_path_buf).unwrap_or_default();
        durable_fs::create_dir_all(&dir)?;
        let mut part = dest.clone().into_os_string();
        part.push(".part");
        let part = PathBuf::from(part);
        let f = File::create(&part)?;
        Ok(PartFile {
            // Big writes: a line costs a copy into the buffer, a syscall costs 1 MiB.
            out: BufWriter::with_capacity(1 << 20, f),
            part,
            dest,
        })
    }

    pub fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        self.out.write_all(line)?;
        self.out.write_all(b"\n")
    }

    /// `line` with `insert` spliced in at byte `at` (the tenant tag),
    /// written without copying the line first.
    pub fn write_spliced(&mut self, line: &[u8], at: usize, insert: &[u8]) -> std::io::Result<()> {
        let (head, tail) = line.split_at(at.min(line.len()));
        self.out.write_all(head)?;
        self.out.write_all(insert)?;
        self.out.write_all(tail)?;
        self.out.write_all(b"\n")
    }

    /// Flush, fsync, rename into place, fsync the directory.
    pub fn commit(self) -> std::io::Result<()> {
        let f = self.out.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&self.part, &self.dest)?;
        match self.dest.parent() {
            Some(d) => durable_fs::sync_dir(d),
            None => Ok(()),
        }
    }

    /// Give up: the part file goes.
    pub fn discard(self) {
        let part = self.part.clone();
        drop(self);
        let _ = std::fs::remove_file(part);
    }
}

/// A small file written atomically (manifest pages, the `done` marker).
pub fn write_small(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    durable_fs::create_dir_all(dir)?;
    durable_fs::write_atomically(dir, name, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let e = |kind, t: &str| FileEntry {
            kind,
            resource_type: t.into(),
            url: String::new(),
            count: None,
        };
        assert_eq!(
            file_path(&e(FileKind::Output, "Patient"), 2),
            PathBuf::from("Patient.2.ndjson")
        );
        assert_eq!(
            file_path(&e(FileKind::Error, "OperationOutcome"), 1),
            PathBuf::from("errors/OperationOutcome.1.ndjson")
        );
        assert_eq!(
            file_path(&e(FileKind::Output, "../x"), 1),
            PathBuf::from("x.1.ndjson")
        );
        assert_eq!(
            job_dir(Path::new("/o"), "acme", "2026-01-01T00:00:00Z/.."),
            PathBuf::from("/o/acme/2026-01-01T00:00:00Z_..")
        );
    }

    #[test]
    fn a_part_file_appears_whole() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("sub/A.1.ndjson");
        let mut p = PartFile::create(dest.clone()).unwrap();
        p.write_line(b"{}").unwrap();
        p.write_spliced(b"{\"a\":1}", 1, b"\"t\":2,").unwrap();
        assert!(!dest.exists());
        p.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"{}\n{\"t\":2,\"a\":1}\n");
        let p = PartFile::create(d.path().join("B.1.ndjson")).unwrap();
        p.discard();
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
