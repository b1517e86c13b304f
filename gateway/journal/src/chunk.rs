//! Journal format 2: large values split into chunks inside sled, so that
//! sled never writes a blob file.
//!
//! Why: sled 0.34.7 writes any log item over `segment_size / 4` (128 KiB)
//! to its own new file under `blobs/`, at a moment only sled chooses
//! (an insert, or a node merge or consolidation triggered by a mere
//! `get`). When that write meets ENOSPC, sled returns the error with a
//! writer slot of its I/O buffer still claimed (`reserve_inner` returns on
//! `encapsulate` before the reservation exists); after 127 such failures
//! every later reservation spins for ever in `reserve_inner`
//! (`n_writers == MAX_WRITERS`), on our writer thread (seen with gdb in
//! `disk_full.rs`'s racing-filler test). No free-space check can close
//! that: another process can take the space between the check and sled's
//! write. So in format 2 no log item is ever big enough to be a blob:
//!
//! - a value over [`CHUNK_BYTES`] under a [chunkable](chunkable) prefix
//!   (messages, quarantine, state, dead letters: the only values that can
//!   be large) is stored as a *head* at its own key (a sealed record of
//!   version [`HEAD_VERSION`]: total length, number of chunks) and its
//!   bytes in chunks of at most [`CHUNK_BYTES`] under
//!   `~ ‖ len(key):u32be ‖ key ‖ index:u32be`;
//! - so every value sled holds is at most 6 KiB, and a leaf node (sled
//!   splits a leaf above 16 items: at most 17 × (6 KiB + key) ≈ 105 KiB)
//!   stays under the blob threshold too. Keys are short (ids, names,
//!   HL7 header fields).
//!
//! The chunks and the head are written by [`Layout::apply`] from one WAL op
//! (the WAL keeps the whole value, so its format does not change): chunks
//! first, head last, old chunks removed first. sled recovers a prefix of
//! these inserts and WAL replay (idempotent) completes the op, so a value
//! is never seen half written after recovery. Readers go through
//! [`resolve`], which returns the reassembled value (the record inside has
//! its own CRC, checked by its decoder).
//!
//! Rollback: a previous binary reads a head as "unknown record version".
//! So a journal is in format 2 only when its `F` key says so: a fresh
//! journal starts in format 2, an existing one stays in format 1 (values
//! written whole, as before) until `gateway journal migrate` (`migrate.rs`)
//! converts it, and `gateway journal migrate --to 1` converts it back.

use std::borrow::Cow;

use crate::record as rec;
use crate::wal::Op;

/// `~` ‖ lp(owner key) ‖ index:u32be -> a chunk of the owner's value.
pub(crate) const P_CHUNK: u8 = b'~';
/// `F` -> the journal format (sealed u64): [`FORMAT_CHUNKED`]; absent: 1.
pub(crate) const FORMAT_KEY: &[u8] = b"F";
/// Format 1: every value whole. Format 2: large values chunked.
pub const FORMAT_WHOLE: u64 = 1;
pub const FORMAT_CHUNKED: u64 = 2;
/// The largest chunk, and the largest value stored whole in format 2.
pub(crate) const CHUNK_BYTES: usize = 6 * 1024;
/// Version byte of a head record: above every record version (so a
/// binary that does not know heads reports it as unknown, never misreads
/// it) and never a version of its own.
pub(crate) const HEAD_VERSION: u8 = 0xC4;

/// Whether values under `key` may be chunked (the kinds that can be large).
pub(crate) fn chunkable(key: &[u8]) -> bool {
    matches!(
        key.first().copied(),
        Some(rec::P_MESSAGE | rec::P_QUARANTINE | rec::P_STATE | rec::P_DEAD)
    )
}

fn chunk_prefix(key: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(1 + 4 + key.len() + 4);
    p.push(P_CHUNK);
    p.extend_from_slice(&(key.len() as u32).to_be_bytes());
    p.extend_from_slice(key);
    p
}

pub(crate) fn chunk_key(key: &[u8], index: u32) -> Vec<u8> {
    let mut p = chunk_prefix(key);
    p.extend_from_slice(&index.to_be_bytes());
    p
}

/// The owner key and index of a chunk key.
pub(crate) fn parse_chunk_key(k: &[u8]) -> Option<(&[u8], u32)> {
    if k.first() != Some(&P_CHUNK) || k.len() < 9 {
        return None;
    }
    let len = u32::from_be_bytes([k[1], k[2], k[3], k[4]]) as usize;
    if k.len() != 5 + len + 4 {
        return None;
    }
    let i = &k[5 + len..];
    Some((&k[5..5 + len], u32::from_be_bytes([i[0], i[1], i[2], i[3]])))
}

/// A head record: total length and number of chunks.
fn head(total: usize, chunks: u32) -> Vec<u8> {
    let mut body = Vec::with_capacity(12);
    body.extend_from_slice(&(total as u64).to_le_bytes());
    body.extend_from_slice(&chunks.to_le_bytes());
    rec::seal(head_unsealed(body))
}

fn head_unsealed(body: Vec<u8>) -> Vec<u8> {
    let mut v = vec![HEAD_VERSION, 0, 0, 0, 0];
    v.extend_from_slice(&body);
    v
}

/// `(total length, chunks)` if `v` (the value at `key`) is a head.
pub(crate) fn parse_head(key: &[u8], v: &[u8]) -> Option<Result<(u64, u32), &'static str>> {
    if !chunkable(key) || v.first() != Some(&HEAD_VERSION) {
        return None;
    }
    Some(open_head(v))
}

fn open_head(v: &[u8]) -> Result<(u64, u32), &'static str> {
    if v.len() != 5 + 12 {
        return Err("chunk head of the wrong length");
    }
    let mut h = crc32fast::Hasher::new();
    h.update(&v[..1]);
    h.update(&v[5..]);
    if h.finalize().to_le_bytes() != v[1..5] {
        return Err("chunk head checksum mismatch");
    }
    let mut t = [0u8; 8];
    t.copy_from_slice(&v[5..13]);
    let mut n = [0u8; 4];
    n.copy_from_slice(&v[13..17]);
    Ok((u64::from_le_bytes(t), u32::from_le_bytes(n)))
}

/// The length of the value at `key` as readers see it (a head's total).
pub(crate) fn value_len(key: &[u8], v: &[u8]) -> usize {
    match parse_head(key, v) {
        Some(Ok((total, _))) => total as usize,
        _ => v.len(),
    }
}

/// Why a stored value could not be reassembled.
#[derive(Debug)]
pub(crate) enum ResolveError {
    Sled(sled::Error),
    /// A bad head, a missing chunk or a length mismatch.
    Bad(String),
    /// The value was removed while it was read (readers do not go through
    /// the writer, and a head and its chunks are several sled keys).
    Gone,
}

/// The value at `key` as written: `v` itself, or, if it is a head, its
/// chunks put back together (checked against the head's length; the record
/// inside carries its own CRC, checked by whoever decodes it). Readers run
/// beside the writer: if the chunks do not add up, the head is read again,
/// and a value replaced or removed meanwhile is read again or [`Gone`];
/// only a head that stays while its chunks stay wrong is damage.
///
/// [`Gone`]: ResolveError::Gone
pub(crate) fn resolve<'a>(
    db: &sled::Db,
    key: &[u8],
    v: &'a [u8],
) -> Result<Cow<'a, [u8]>, ResolveError> {
    let mut current: Cow<'a, [u8]> = Cow::Borrowed(v);
    for _ in 0..3 {
        let why = match reassemble(db, key, &current)? {
            Ok(Some(whole)) => return Ok(Cow::Owned(whole)),
            Ok(None) => return Ok(current),
            Err(why) => why,
        };
        match db.get(key).map_err(ResolveError::Sled)? {
            None => return Err(ResolveError::Gone),
            Some(now) if *now == *current => return Err(ResolveError::Bad(why)),
            Some(now) => current = Cow::Owned(now.to_vec()),
        }
    }
    Err(ResolveError::Bad(
        "its head changed on every read (3 times)".into(),
    ))
}

/// The chunks of head `v` put together: `Ok(None)` if `v` is not a head,
/// `Ok(Err(why))` if they do not add up.
#[allow(clippy::type_complexity)]
fn reassemble(
    db: &sled::Db,
    key: &[u8],
    v: &[u8],
) -> Result<Result<Option<Vec<u8>>, String>, ResolveError> {
    let (total, n) = match parse_head(key, v) {
        None => return Ok(Ok(None)),
        Some(Err(why)) => return Ok(Err(why.to_string())),
        Some(Ok(h)) => h,
    };
    let mut out = Vec::with_capacity(total.min(64 * 1024 * 1024) as usize);
    for i in 0..n {
        match db.get(chunk_key(key, i)).map_err(ResolveError::Sled)? {
            Some(c) => out.extend_from_slice(&c),
            None => return Ok(Err(format!("chunk {i} of {n} is missing"))),
        }
    }
    if out.len() as u64 != total {
        return Ok(Err(format!(
            "chunks hold {} bytes, the head says {total}",
            out.len()
        )));
    }
    Ok(Ok(Some(out)))
}

/// [`resolve`] as a [`crate::JournalError`] naming `what` (e.g. "message 42").
pub(crate) fn resolve_or<'a>(
    db: &sled::Db,
    key: &[u8],
    v: &'a [u8],
    what: &str,
) -> Result<Cow<'a, [u8]>, crate::JournalError> {
    resolve(db, key, v).map_err(|e| journal_error(e, what))
}

fn journal_error(e: ResolveError, what: &str) -> crate::JournalError {
    match e {
        ResolveError::Sled(e) => crate::error::map_sled(format!("read {what}"), e),
        ResolveError::Bad(why) => crate::error::corrupt(what.to_string(), &why),
        ResolveError::Gone => crate::JournalError::NotFound {
            what: format!("{what} (removed while it was read)"),
        },
    }
}

/// `db.get(key)`, resolved, as a [`crate::JournalError`] naming `what`.
pub(crate) fn get(
    db: &sled::Db,
    key: &[u8],
    what: &str,
) -> Result<Option<Vec<u8>>, crate::JournalError> {
    let Some(v) = db
        .get(key)
        .map_err(|e| crate::error::map_sled(format!("read {what}"), e))?
    else {
        return Ok(None);
    };
    match resolve(db, key, &v) {
        Ok(whole) => Ok(Some(whole.into_owned())),
        Err(ResolveError::Gone) => Ok(None),
        Err(e) => Err(journal_error(e, what)),
    }
}

/// How ops are written to sled: whole (format 1) or chunked (format 2).
/// The format follows the `F` key as ops set or remove it, so replaying a
/// WAL that migrates applies each op in the format it was first applied in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub chunked: bool,
}

impl Layout {
    /// The format `db` is in (its `F` key).
    pub(crate) fn of(db: &sled::Db) -> Result<Layout, String> {
        Layout::of_at_most(db, FORMAT_CHUNKED)
    }

    /// The format `db` is in, refused when it is newer than `max`
    /// ([`crate::JournalConfig::max_format`]).
    pub(crate) fn of_at_most(db: &sled::Db, max: u64) -> Result<Layout, String> {
        let newer = |n: u64| {
            format!(
                "journal format {n} is newer than this gateway reads (up to {max}): run the newer \
                 gateway, or its `gateway journal migrate --to {max}` with the daemon stopped"
            )
        };
        match db.get(FORMAT_KEY) {
            Ok(None) => Ok(Layout { chunked: false }),
            Ok(Some(v)) => match rec::open_u64(&v) {
                Ok(n) if n > max => Err(newer(n)),
                Ok(FORMAT_WHOLE) => Ok(Layout { chunked: false }),
                Ok(FORMAT_CHUNKED) => Ok(Layout { chunked: true }),
                Ok(n) => Err(newer(n)),
                Err(why) => Err(format!("journal format record (key F): {why}")),
            },
            Err(e) => Err(format!("read journal format (key F): {e}")),
        }
    }

    pub(crate) fn format(&self) -> u64 {
        if self.chunked {
            FORMAT_CHUNKED
        } else {
            FORMAT_WHOLE
        }
    }

    /// The op that puts a journal in this layout's format.
    pub(crate) fn format_op(&self) -> Op {
        Op::Set(FORMAT_KEY.to_vec(), rec::seal_u64(self.format()))
    }

    /// Apply one op (no flush). A set or remove of a chunkable key removes
    /// the chunks it had; a set of a large value in format 2 writes chunks,
    /// then the head.
    pub(crate) fn apply(&mut self, db: &sled::Db, op: Op) -> Result<(), sled::Error> {
        match op {
            Op::Set(k, v) => {
                if k == FORMAT_KEY {
                    self.chunked = rec::open_u64(&v) == Ok(FORMAT_CHUNKED);
                }
                if !chunkable(&k) {
                    return db.insert(k, v).map(|_| ());
                }
                remove_chunks(db, &k)?;
                if self.chunked && v.len() > CHUNK_BYTES {
                    let mut n = 0u32;
                    for c in v.chunks(CHUNK_BYTES) {
                        db.insert(chunk_key(&k, n), c)?;
                        n += 1;
                    }
                    db.insert(k, head(v.len(), n))?;
                } else {
                    db.insert(k, v)?;
                }
                Ok(())
            }
            Op::Remove(k) => {
                if k == FORMAT_KEY {
                    self.chunked = false;
                }
                // Head first: a crash in between leaves only orphan chunks,
                // which the WAL replay of this remove then deletes.
                db.remove(&k)?;
                if chunkable(&k) {
                    remove_chunks(db, &k)?;
                }
                Ok(())
            }
        }
    }
}

fn remove_chunks(db: &sled::Db, key: &[u8]) -> Result<(), sled::Error> {
    for item in db.scan_prefix(chunk_prefix(key)).keys() {
        db.remove(item?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, sled::Db) {
        let d = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(d.path()).open().unwrap();
        (d, db)
    }

    #[test]
    fn large_values_are_chunked_and_read_back_whole() {
        let (_d, db) = db();
        let mut l = Layout { chunked: true };
        let k = rec::message_key(7).to_vec();
        let v: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        l.apply(&db, Op::Set(k.clone(), v.clone())).unwrap();
        let stored = db.get(&k).unwrap().unwrap();
        assert_eq!(stored[0], HEAD_VERSION);
        let n = db.scan_prefix([P_CHUNK]).count();
        assert_eq!(n, 300_000usize.div_ceil(CHUNK_BYTES));
        for item in db.iter() {
            let (_, v) = item.unwrap();
            assert!(v.len() <= CHUNK_BYTES, "every stored value is small");
        }
        assert_eq!(&*resolve(&db, &k, &stored).unwrap(), &v[..]);
        assert_eq!(value_len(&k, &stored), v.len());
        // Overwritten small: the chunks go.
        l.apply(&db, Op::Set(k.clone(), b"small".to_vec())).unwrap();
        assert_eq!(db.scan_prefix([P_CHUNK]).count(), 0);
        l.apply(&db, Op::Set(k.clone(), v.clone())).unwrap();
        l.apply(&db, Op::Remove(k.clone())).unwrap();
        assert!(db.is_empty(), "a remove takes head and chunks");
    }

    #[test]
    fn format_1_writes_whole_and_the_format_key_switches() {
        let (_d, db) = db();
        let mut l = Layout::of(&db).unwrap();
        assert!(!l.chunked);
        let k = rec::message_key(1).to_vec();
        let v = vec![1u8; 20_000];
        l.apply(&db, Op::Set(k.clone(), v.clone())).unwrap();
        assert_eq!(db.get(&k).unwrap().unwrap().len(), v.len());
        l.apply(&db, Layout { chunked: true }.format_op()).unwrap();
        assert!(l.chunked);
        assert!(Layout::of(&db).unwrap().chunked);
        l.apply(&db, Op::Set(k.clone(), v.clone())).unwrap();
        assert_eq!(db.get(&k).unwrap().unwrap()[0], HEAD_VERSION);
        // Not chunkable: written whole whatever its size.
        l.apply(&db, Op::Set(b"c-big".to_vec(), v.clone())).unwrap();
        assert_eq!(db.get(b"c-big").unwrap().unwrap().len(), v.len());
        l.apply(&db, Op::Remove(FORMAT_KEY.to_vec())).unwrap();
        assert!(!l.chunked);
        l.apply(&db, Op::Set(k.clone(), v.clone())).unwrap();
        assert_eq!(db.get(&k).unwrap().unwrap().len(), v.len());
        assert_eq!(db.scan_prefix([P_CHUNK]).count(), 0);
    }

    #[test]
    fn a_missing_chunk_or_a_bad_head_is_reported() {
        let (_d, db) = db();
        let mut l = Layout { chunked: true };
        let k = rec::seq_key(rec::P_QUARANTINE, 3).to_vec();
        l.apply(&db, Op::Set(k.clone(), vec![9u8; 20_000])).unwrap();
        db.remove(chunk_key(&k, 1)).unwrap();
        let head = db.get(&k).unwrap().unwrap();
        match resolve(&db, &k, &head) {
            Err(ResolveError::Bad(why)) => assert!(why.contains("chunk 1 of 4"), "{why}"),
            other => panic!("{other:?}"),
        }
        let mut bad = head.to_vec();
        bad[7] ^= 1;
        assert!(matches!(resolve(&db, &k, &bad), Err(ResolveError::Bad(_))));
        assert_eq!(parse_chunk_key(&chunk_key(&k, 5)), Some((&k[..], 5)));
        // A reader that got the head just before the writer replaced or
        // removed the value: it reads the new value, or finds it gone.
        let stale = db.get(&k).unwrap().unwrap();
        l.apply(&db, Op::Set(k.clone(), b"new".to_vec())).unwrap();
        assert_eq!(&*resolve(&db, &k, &stale).unwrap(), b"new");
        l.apply(&db, Op::Remove(k.clone())).unwrap();
        assert!(matches!(resolve(&db, &k, &stale), Err(ResolveError::Gone)));
        assert_eq!(parse_chunk_key(b"~x"), None);
    }
}
