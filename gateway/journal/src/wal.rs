//! The write-ahead log in front of sled. See the module doc of `journal`
//! for where it sits in the durability protocol; this file is the format
//! and the mechanism.
//!
//! Layout: `<dir>/wal/<n:020>.wal` segments, `n` increasing. All segments
//! present hold records not yet known to be checkpointed into sled; a
//! segment is deleted only after a checkpoint made sled durable up to (at
//! least) its last record, and old segments are deleted *before* the next
//! one is created, so only the newest segment can end in a torn record.
//!
//! Record (one per group commit), little endian:
//!
//! ```text
//! +-----------+-------------+---------------------------------------------+
//! | len: u32  | crc32: u32  | payload (len bytes)                         |
//! +-----------+-------------+---------------------------------------------+
//! crc32 (crc32fast) covers the 4 len bytes and the payload.
//! payload = seq: u64 ‖ n_ops: u32 ‖ n × op
//! op      = 0 ‖ klen: u32 ‖ key                      (remove)
//!         | 1 ‖ klen: u32 ‖ key ‖ vlen: u32 ‖ value  (set)
//! ```
//!
//! Every op is an absolute set or remove, so applying a record twice, or
//! over a sled state that already contains a prefix of it, gives the same
//! result. `seq` increases by one per record across segments; every record
//! also sets the sled key [`APPLIED_KEY`] to its `seq`, so at recovery only
//! records after the one sled already holds are applied (sled recovers a
//! prefix of its `apply_batch`es in order).
//!
//! A segment is extended with written zeros 1 MiB at a time and records
//! overwrite them, so a segment normally ends in zeros; a zero header is
//! never a valid record (the CRC of a zero length is not zero).
//!
//! Reading a segment stops at the first record that is incomplete or whose
//! CRC fails. If that is the end of the last segment it is a torn tail (its
//! `fdatasync` never completed, so it was never acknowledged): it is cut
//! off. Anywhere else — a bad record with a valid record after it, or a bad
//! record in a segment that is not the last — the WAL is corrupt and open
//! fails with [`JournalError::Corrupt`] naming the file and offset: an
//! acknowledged message could be behind it, and silently skipping it would
//! break contract 1.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::durability::{create_dir_durable, ctx, fsync_path};

/// sled key holding the `seq` of the last WAL record applied (sealed u64).
pub(crate) const APPLIED_KEY: &[u8] = b"w";

const HEADER: usize = 8;
/// Segments grow by this many written zeros at a time (see [`Wal::append`]).
const PREALLOC_CHUNK: u64 = 1024 * 1024;
/// Records larger than this are not believed (a corrupt length).
const MAX_RECORD: u32 = 1 << 30;

/// One absolute operation on the sled tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    Set(Vec<u8>, Vec<u8>),
    Remove(Vec<u8>),
}

/// A list of ops that is applied to sled as one atomic batch and logged.
#[derive(Debug, Default, Clone)]
pub(crate) struct OpBatch {
    pub ops: Vec<Op>,
}

impl OpBatch {
    pub(crate) fn insert(&mut self, k: impl AsRef<[u8]>, v: impl Into<Vec<u8>>) {
        self.ops.push(Op::Set(k.as_ref().to_vec(), v.into()));
    }
    pub(crate) fn remove(&mut self, k: impl AsRef<[u8]>) {
        self.ops.push(Op::Remove(k.as_ref().to_vec()));
    }
    pub(crate) fn to_sled(&self) -> sled::Batch {
        let mut b = sled::Batch::default();
        for op in &self.ops {
            match op {
                Op::Set(k, v) => b.insert(k.as_slice(), v.as_slice()),
                Op::Remove(k) => b.remove(k.as_slice()),
            }
        }
        b
    }
}

/// Encode one record (header + payload) for `seq` from the groups' ops.
pub(crate) fn encode_record<'a>(seq: u64, groups: impl Iterator<Item = &'a Op> + Clone) -> Vec<u8> {
    let mut n = 0u32;
    let mut size = HEADER + 12;
    for op in groups.clone() {
        n += 1;
        size += match op {
            Op::Set(k, v) => 9 + k.len() + v.len(),
            Op::Remove(k) => 5 + k.len(),
        };
    }
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&[0u8; HEADER]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    for op in groups {
        match op {
            Op::Set(k, v) => {
                out.push(1);
                out.extend_from_slice(&(k.len() as u32).to_le_bytes());
                out.extend_from_slice(k);
                out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                out.extend_from_slice(v);
            }
            Op::Remove(k) => {
                out.push(0);
                out.extend_from_slice(&(k.len() as u32).to_le_bytes());
                out.extend_from_slice(k);
            }
        }
    }
    let len = (out.len() - HEADER) as u32;
    out[0..4].copy_from_slice(&len.to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&out[0..4]);
    h.update(&out[HEADER..]);
    let crc = h.finalize();
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    out
}

/// A decoded record.
#[derive(Debug)]
pub(crate) struct Record {
    pub seq: u64,
    pub ops: Vec<Op>,
}

fn take<'a>(p: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if p.len() < n {
        return None;
    }
    let (a, b) = p.split_at(n);
    *p = b;
    Some(a)
}

fn take_u32(p: &mut &[u8]) -> Option<u32> {
    take(p, 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn decode_payload(mut p: &[u8]) -> Option<Record> {
    let seq = u64::from_le_bytes(take(&mut p, 8)?.try_into().ok()?);
    let n = take_u32(&mut p)?;
    let mut ops = Vec::with_capacity((n as usize).min(4096));
    for _ in 0..n {
        let kind = take(&mut p, 1)?[0];
        let kl = take_u32(&mut p)? as usize;
        let k = take(&mut p, kl)?.to_vec();
        match kind {
            0 => ops.push(Op::Remove(k)),
            1 => {
                let vl = take_u32(&mut p)? as usize;
                ops.push(Op::Set(k, take(&mut p, vl)?.to_vec()));
            }
            _ => return None,
        }
    }
    if !p.is_empty() {
        return None;
    }
    Some(Record { seq, ops })
}

/// The record starting at `buf[0..]`, if it is complete and its CRC holds.
/// Returns the record and its total size.
fn parse_at(buf: &[u8]) -> Option<(Record, usize)> {
    if buf.len() < HEADER {
        return None;
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len > MAX_RECORD || buf.len() - HEADER < len as usize {
        return None;
    }
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let end = HEADER + len as usize;
    let mut h = crc32fast::Hasher::new();
    h.update(&buf[0..4]);
    h.update(&buf[HEADER..end]);
    if h.finalize() != crc {
        return None;
    }
    decode_payload(&buf[HEADER..end]).map(|r| (r, end))
}

/// How a segment's scan ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Tail {
    /// Every byte belongs to a valid record.
    Clean,
    /// Bytes from this offset to the end are an incomplete/bad record with
    /// no valid record after it: a torn tail.
    Torn(u64),
    /// A bad record at this offset with a valid record after it.
    Corrupt(u64),
}

/// Read every valid record of one segment (whole file in memory: bounded
/// by the checkpoint size) and classify its end.
pub(crate) fn read_segment(path: &Path) -> io::Result<(Vec<Record>, Tail)> {
    let mut buf = Vec::new();
    File::open(path)?.read_to_end(&mut buf)?;
    let mut recs = Vec::new();
    let mut off = 0usize;
    while off < buf.len() {
        match parse_at(&buf[off..]) {
            Some((r, n)) => {
                recs.push(r);
                off += n;
            }
            None if buf[off..].iter().all(|&b| b == 0) => {
                // The preallocated zeros after the last record.
                return Ok((recs, Tail::Clean));
            }
            None => {
                // Is there any valid record after the bad one? Then this is
                // not a torn tail but damage in the middle.
                let last_seq = recs.last().map(|r: &Record| r.seq);
                let later = (off + 1..buf.len()).any(|o| match (parse_at(&buf[o..]), last_seq) {
                    (Some((r, _)), Some(s)) => r.seq > s,
                    (Some(_), None) => true,
                    (None, _) => false,
                });
                let t = if later {
                    Tail::Corrupt(off as u64)
                } else {
                    Tail::Torn(off as u64)
                };
                return Ok((recs, t));
            }
        }
    }
    Ok((recs, Tail::Clean))
}

/// A stretch of a segment that is not a record: offset, and whether no
/// valid record follows it.
pub(crate) type BadStretch = (u64, bool);

/// Every valid record of a segment's bytes with its offset, resynchronising
/// after a bad one (verify and salvage read past damage; recovery does
/// not), and the offsets of bad stretches: `(offset, true)` when no valid
/// record follows it.
pub(crate) fn scan_all(buf: &[u8]) -> (Vec<(u64, Record)>, Vec<BadStretch>) {
    let mut recs = Vec::new();
    let mut bad = Vec::new();
    let mut off = 0usize;
    while off < buf.len() {
        if let Some((r, n)) = parse_at(&buf[off..]) {
            recs.push((off as u64, r));
            off += n;
        } else if buf[off..].iter().all(|&b| b == 0) {
            break;
        } else {
            match (off + 1..buf.len()).find(|&o| parse_at(&buf[o..]).is_some()) {
                Some(next) => {
                    bad.push((off as u64, false));
                    off = next;
                }
                None => {
                    bad.push((off as u64, true));
                    break;
                }
            }
        }
    }
    (recs, bad)
}

pub(crate) fn segment_name(n: u64) -> String {
    format!("{n:020}.wal")
}

/// Segment numbers present in `wal_dir`, ascending.
pub(crate) fn list_segments(wal_dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for ent in std::fs::read_dir(wal_dir)? {
        let ent = ent?;
        let name = ent.file_name();
        let Some(s) = name.to_str() else { continue };
        if let Some(n) = s.strip_suffix(".wal").and_then(|x| x.parse::<u64>().ok()) {
            out.push((n, ent.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// The open WAL: the current segment, appended to by the writer.
pub(crate) struct Wal {
    dir: PathBuf,
    seg_no: u64,
    path: PathBuf,
    file: File,
    /// Bytes of records in the current segment (the write position).
    len: u64,
    /// Bytes of the file already written (records, then zeros).
    allocated: u64,
    /// `seq` of the next record.
    pub next_seq: u64,
    /// When the first record after the last checkpoint was appended.
    first_append: Option<Instant>,
}

pub(crate) type IoCtx = (String, io::Error);

impl Wal {
    /// Directory of the WAL for a journal directory.
    pub(crate) fn dir_of(journal_dir: &Path) -> PathBuf {
        journal_dir.join("wal")
    }

    /// Delete every existing segment (the caller guarantees sled is durable
    /// up to every record in them), fsync the directory, then start a
    /// fresh, durable, empty segment numbered after them. Deleting first
    /// keeps the invariant that only the newest segment can end in a torn
    /// record.
    pub(crate) fn start(journal_dir: &Path, next_seq: u64) -> Result<Wal, IoCtx> {
        let dir = Wal::dir_of(journal_dir);
        create_dir_durable(&dir)?;
        let old = list_segments(&dir).map_err(|e| (ctx("list", &dir), e))?;
        let seg_no = old.last().map_or(1, |(n, _)| n + 1);
        delete_segments(&dir, &old)?;
        let (path, file) = create_segment(&dir, seg_no)?;
        Ok(Wal {
            dir,
            seg_no,
            path,
            file,
            len: 0,
            allocated: 0,
            next_seq,
            first_append: None,
        })
    }

    /// Append one record and `fdatasync` the segment. Returns bytes written.
    /// On error the segment may hold a partial record at its end: the
    /// caller must not append again before [`Wal::start`]ing a new WAL
    /// (after recovery), or a torn record would sit between valid ones.
    pub(crate) fn append(&mut self, record: &[u8]) -> Result<(), IoCtx> {
        let end = self.len + record.len() as u64;
        if end > self.allocated {
            // Extend the file with written zeros, a chunk at a time, so that
            // most appends overwrite blocks that already exist and their
            // fdatasync is one data write, without a size/extent update
            // (measured here: ~10k vs ~6.5k appends+fdatasync per second).
            // The zeros become durable with the next record's fdatasync.
            let grow = (end - self.allocated).max(PREALLOC_CHUNK);
            let zeros = vec![0u8; grow as usize];
            self.file
                .write_all_at(&zeros, self.allocated)
                .map_err(|e| (ctx("extend", &self.path), e))?;
            self.allocated += grow;
        }
        self.file
            .write_all_at(record, self.len)
            .map_err(|e| (ctx("write", &self.path), e))?;
        self.len = end;
        self.file
            .sync_data()
            .map_err(|e| (ctx("fdatasync", &self.path), e))?;
        self.next_seq += 1;
        self.first_append.get_or_insert_with(Instant::now);
        Ok(())
    }

    /// TEST HOOK: write `part` of a record where the next one goes, without
    /// a sync (what a crash in the middle of [`Wal::append`] leaves).
    #[cfg(test)]
    pub(crate) fn write_torn(&mut self, part: &[u8]) {
        if let Err(e) = self.file.write_all_at(part, self.len) {
            eprintln!("torn WAL write failed: {e}");
        }
    }

    /// Bytes logged since the last checkpoint.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn age(&self) -> Option<std::time::Duration> {
        self.first_append.map(|t| t.elapsed())
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// After sled was made durable up to every logged record: delete the
    /// segment and start a fresh one. No-op when nothing was logged.
    pub(crate) fn truncate_after_checkpoint(&mut self) -> Result<(), IoCtx> {
        if self.len == 0 {
            return Ok(());
        }
        delete_segments(&self.dir, &[(self.seg_no, self.path.clone())])?;
        let (path, file) = create_segment(&self.dir, self.seg_no + 1)?;
        self.seg_no += 1;
        self.path = path;
        self.file = file;
        self.len = 0;
        self.allocated = 0;
        self.first_append = None;
        Ok(())
    }
}

fn delete_segments(dir: &Path, segs: &[(u64, PathBuf)]) -> Result<(), IoCtx> {
    for (_, p) in segs {
        match std::fs::remove_file(p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err((ctx("remove", p), e)),
        }
    }
    if !segs.is_empty() {
        fsync_path(dir).map_err(|e| (ctx("fsync directory", dir), e))?;
    }
    Ok(())
}

fn create_segment(dir: &Path, n: u64) -> Result<(PathBuf, File), IoCtx> {
    let path = dir.join(segment_name(n));
    let file = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&path)
        .map_err(|e| (ctx("create", &path), e))?;
    // The new (empty) file's directory entry must be durable before any
    // record in it is relied on.
    fsync_path(dir).map_err(|e| (ctx("fsync directory", dir), e))?;
    Ok((path, file))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops() -> Vec<Op> {
        vec![
            Op::Set(b"k1".to_vec(), vec![7; 300]),
            Op::Remove(b"k2".to_vec()),
            Op::Set(Vec::new(), Vec::new()),
        ]
    }

    #[test]
    fn round_trip_and_torn_and_corrupt() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("s.wal");
        let a = encode_record(1, ops().iter());
        let b = encode_record(2, ops().iter());
        let c = encode_record(3, ops().iter());
        let all = [a.clone(), b.clone(), c.clone()].concat();
        std::fs::write(&p, &all).unwrap();
        let (r, tail) = read_segment(&p).unwrap();
        assert_eq!(tail, Tail::Clean);
        assert_eq!(r.len(), 3);
        assert_eq!(r[1].seq, 2);
        assert_eq!(r[2].ops, ops());
        // Preallocated zeros after the records are the clean end.
        std::fs::write(&p, [all.clone(), vec![0u8; 5000]].concat()).unwrap();
        let (r, tail) = read_segment(&p).unwrap();
        assert_eq!((r.len(), tail), (3, Tail::Clean));
        // Every cut inside the last record is a torn tail at its start.
        for cut in 1..c.len() {
            std::fs::write(&p, &all[..all.len() - cut]).unwrap();
            let (r, tail) = read_segment(&p).unwrap();
            assert_eq!(r.len(), 2);
            assert_eq!(tail, Tail::Torn((a.len() + b.len()) as u64));
        }
        // A flipped byte in the middle record, with a valid one after it.
        let mut bad = all.clone();
        bad[a.len() + 20] ^= 0x40;
        std::fs::write(&p, &bad).unwrap();
        let (r, tail) = read_segment(&p).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(tail, Tail::Corrupt(a.len() as u64));
    }
}
