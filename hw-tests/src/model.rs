//! The in-memory model behind lossyfs: every inode has a *live* state (what
//! processes see: the volatile disk cache) and an optional *durable* state
//! (what is on the platter). Only `fsync`/`fdatasync` (file data and size)
//! and `fsyncdir` (directory entries) copy live into durable. A power cut
//! replaces the live state of every inode by its durable state and forgets
//! everything that is not reachable from the root through durable entries.
//!
//! This module does no I/O and knows nothing about the FUSE session; errors
//! are plain `errno` values. `crate::fuse` adapts it to the kernel protocol.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use fuser::{FileAttr, FileType, INodeNo};

/// Inode number of the root directory.
pub const ROOT: u64 = 1;
/// Page size of the copy-on-write file store. `fsync` shares pages between
/// the live and the durable copy, so syncing a large file is cheap.
pub const PAGE: usize = 4096;
/// Unsynced writes kept per file for `power_cut_partial` (torn writes). Past
/// this a file's unsynced writes are dropped whole at a partial cut.
const PENDING_CAP: u64 = 64 << 20;
/// Sector size used when a partial cut tears a write.
const SECTOR: usize = 512;

type Page = Arc<[u8; PAGE]>;
/// `Err` carries an `errno` value.
pub type Res<T> = Result<T, i32>;

/// Sparse, copy-on-write file contents. `pages.len() == ceil(size / PAGE)`;
/// `None` is a hole that reads as zeros.
#[derive(Clone, Debug, Default)]
pub struct FileData {
    size: u64,
    pages: Vec<Option<Page>>,
}

fn page_count(size: u64) -> usize {
    size.div_ceil(PAGE as u64) as usize
}

impl FileData {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.size
    }

    /// True for an empty file.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    fn allocated_pages(&self) -> u64 {
        self.pages.iter().filter(|p| p.is_some()).count() as u64
    }

    /// Reads up to `len` bytes at `off` (short at end of file).
    pub fn read(&self, off: u64, len: usize) -> Vec<u8> {
        if off >= self.size {
            return Vec::new();
        }
        let end = self.size.min(off.saturating_add(len as u64));
        let mut out = Vec::with_capacity((end - off) as usize);
        let mut pos = off;
        while pos < end {
            let pi = (pos / PAGE as u64) as usize;
            let po = (pos % PAGE as u64) as usize;
            let n = (PAGE - po).min((end - pos) as usize);
            match &self.pages[pi] {
                Some(p) => out.extend_from_slice(&p[po..po + n]),
                None => out.resize(out.len() + n, 0),
            }
            pos += n as u64;
        }
        out
    }

    /// Writes `data` at `off`, extending the file (with a hole) if needed.
    pub fn write(&mut self, off: u64, data: &[u8]) {
        let end = off + data.len() as u64;
        if end > self.size {
            self.size = end;
            self.pages.resize(page_count(end), None);
        }
        let mut pos = off;
        let mut src = data;
        while !src.is_empty() {
            let pi = (pos / PAGE as u64) as usize;
            let po = (pos % PAGE as u64) as usize;
            let n = (PAGE - po).min(src.len());
            let page = self.pages[pi].get_or_insert_with(|| Arc::new([0; PAGE]));
            Arc::make_mut(page)[po..po + n].copy_from_slice(&src[..n]);
            src = &src[n..];
            pos += n as u64;
        }
    }

    /// Truncates or extends (with a hole) to `len` bytes.
    pub fn set_len(&mut self, len: u64) {
        if len < self.size {
            self.pages.truncate(page_count(len));
            let tail = (len % PAGE as u64) as usize;
            if tail != 0 {
                if let Some(Some(p)) = self.pages.last_mut() {
                    Arc::make_mut(p)[tail..].fill(0);
                }
            }
        }
        self.size = len;
        self.pages.resize(page_count(len), None);
    }

    /// Zeroes `[off, off + len)` within the current size (hole punching).
    fn zero_range(&mut self, off: u64, len: u64) {
        let end = self.size.min(off.saturating_add(len));
        let mut pos = off;
        while pos < end {
            let pi = (pos / PAGE as u64) as usize;
            let po = (pos % PAGE as u64) as usize;
            let n = (PAGE - po).min((end - pos) as usize);
            if n == PAGE {
                self.pages[pi] = None;
            } else if let Some(p) = &mut self.pages[pi] {
                Arc::make_mut(p)[po..po + n].fill(0);
            }
            pos += n as u64;
        }
    }
}

/// Inode metadata.
#[derive(Clone, Debug)]
pub struct Meta {
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    pub crtime: SystemTime,
}

impl Meta {
    fn new(perm: u16, uid: u32, gid: u32) -> Meta {
        let now = SystemTime::now();
        Meta {
            perm,
            uid,
            gid,
            rdev: 0,
            atime: now,
            mtime: now,
            ctime: now,
            crtime: now,
        }
    }
}

/// What an inode holds.
#[derive(Clone, Debug)]
pub enum Content {
    File(FileData),
    Dir(BTreeMap<OsString, u64>),
    Symlink(PathBuf),
}

impl Content {
    fn kind(&self) -> FileType {
        match self {
            Content::File(_) => FileType::RegularFile,
            Content::Dir(_) => FileType::Directory,
            Content::Symlink(_) => FileType::Symlink,
        }
    }

    /// The state a freshly created inode has on disk once its directory
    /// entry is durable but its own data was never synced: empty.
    fn empty_like(&self) -> Content {
        match self {
            Content::File(_) => Content::File(FileData::default()),
            Content::Dir(_) => Content::Dir(BTreeMap::new()),
            Content::Symlink(t) => Content::Symlink(t.clone()),
        }
    }
}

/// One version (live or durable) of an inode.
#[derive(Clone, Debug)]
pub struct Node {
    pub meta: Meta,
    pub content: Content,
}

#[derive(Clone, Debug)]
enum PendingOp {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

#[derive(Debug)]
struct Inode {
    live: Node,
    durable: Option<Node>,
    /// Live directory entries naming this inode.
    nlink: u32,
    /// Durable directory entries naming this inode.
    durable_nlink: u32,
    /// Open file handles (current epoch).
    open: u32,
    /// Live state differs from durable (data, size or metadata).
    dirty: bool,
    /// Bytes written since the last fsync.
    dirty_bytes: u64,
    /// Unsynced data operations in order, for torn-write cuts.
    pending: Vec<PendingOp>,
    pending_bytes: u64,
    pending_overflow: bool,
}

impl Inode {
    fn new(live: Node) -> Inode {
        Inode {
            live,
            durable: None,
            nlink: 0,
            durable_nlink: 0,
            open: 0,
            dirty: true,
            dirty_bytes: 0,
            pending: Vec::new(),
            pending_bytes: 0,
            pending_overflow: false,
        }
    }

    fn dir(&self) -> Res<&BTreeMap<OsString, u64>> {
        match &self.live.content {
            Content::Dir(d) => Ok(d),
            _ => Err(libc::ENOTDIR),
        }
    }

    fn dir_mut(&mut self) -> Res<&mut BTreeMap<OsString, u64>> {
        match &mut self.live.content {
            Content::Dir(d) => Ok(d),
            _ => Err(libc::ENOTDIR),
        }
    }

    fn file_mut(&mut self) -> Res<&mut FileData> {
        match &mut self.live.content {
            Content::File(f) => Ok(f),
            Content::Dir(_) => Err(libc::EISDIR),
            Content::Symlink(_) => Err(libc::EINVAL),
        }
    }

    fn record(&mut self, op: PendingOp) {
        if self.pending_overflow {
            return;
        }
        let n = match &op {
            PendingOp::Write(_, d) => d.len() as u64,
            PendingOp::SetLen(_) => 0,
        };
        if self.pending_bytes + n > PENDING_CAP {
            self.pending_overflow = true;
            self.pending = Vec::new();
            return;
        }
        self.pending_bytes += n;
        self.pending.push(op);
    }

    fn mark_synced(&mut self) {
        self.dirty = false;
        self.dirty_bytes = 0;
        self.pending = Vec::new();
        self.pending_bytes = 0;
        self.pending_overflow = false;
    }
}

/// Counters since mount.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// `fsync` calls on files (FUSE_FSYNC without the datasync flag).
    pub fsync: u64,
    /// `fdatasync` calls on files.
    pub fdatasync: u64,
    /// `fsync`/`fdatasync` calls on directories (FUSE_FSYNCDIR).
    pub fsyncdir: u64,
    /// `write` requests and bytes.
    pub writes: u64,
    pub bytes_written: u64,
    /// Power cuts so far.
    pub power_cuts: u64,
    /// What the last power cut discarded.
    pub last_cut: CutReport,
}

/// What one power cut discarded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CutReport {
    /// Bytes written since their file's last fsync that were dropped.
    pub bytes_dropped: u64,
    /// Unsynced bytes that a partial cut let through (torn writes).
    pub bytes_kept: u64,
    /// Surviving files and directories whose live state was rolled back.
    pub inodes_reverted: u64,
    /// Files, directories and symlinks that vanished.
    pub inodes_lost: u64,
}

struct Handle {
    ino: u64,
    /// Directory listing taken at opendir.
    listing: Option<Vec<(u64, FileType, OsString)>>,
}

/// The whole filesystem state. Not thread-safe by itself: wrap in a mutex.
pub struct Model {
    inodes: HashMap<u64, Inode>,
    next_ino: u64,
    handles: HashMap<u64, Handle>,
    next_fh: u64,
    stats: Stats,
}

/// Small deterministic PRNG (splitmix64) for partial cuts.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

fn apply_op(data: &mut FileData, op: &PendingOp) {
    match op {
        PendingOp::Write(off, d) => data.write(*off, d),
        PendingOp::SetLen(len) => data.set_len(*len),
    }
}

impl Model {
    /// An empty, fully durable filesystem whose root belongs to `uid:gid`.
    pub fn new(uid: u32, gid: u32) -> Model {
        let root = Node {
            meta: Meta::new(0o755, uid, gid),
            content: Content::Dir(BTreeMap::new()),
        };
        let mut ino = Inode::new(root.clone());
        ino.durable = Some(root);
        ino.nlink = 1;
        ino.durable_nlink = 1;
        ino.dirty = false;
        let mut inodes = HashMap::new();
        inodes.insert(ROOT, ino);
        Model {
            inodes,
            next_ino: ROOT + 1,
            handles: HashMap::new(),
            next_fh: 1,
            stats: Stats::default(),
        }
    }

    /// Counters since mount.
    pub fn stats(&self) -> Stats {
        self.stats.clone()
    }

    fn get(&self, ino: u64) -> Res<&Inode> {
        self.inodes.get(&ino).ok_or(libc::ENOENT)
    }

    fn get_mut(&mut self, ino: u64) -> Res<&mut Inode> {
        self.inodes.get_mut(&ino).ok_or(libc::ENOENT)
    }

    /// Resolves a file handle; handles from before a power cut are gone, so
    /// anything a killed process still had in flight fails with EIO.
    fn handle(&self, fh: u64, ino: u64) -> Res<()> {
        match self.handles.get(&fh) {
            Some(h) if h.ino == ino => Ok(()),
            _ => Err(libc::EIO),
        }
    }

    /// Attributes of the live state.
    pub fn attr(&self, ino: u64) -> Res<FileAttr> {
        let inode = self.get(ino)?;
        let meta = &inode.live.meta;
        let (size, blocks, nlink) = match &inode.live.content {
            Content::File(f) => (
                f.len(),
                f.allocated_pages() * (PAGE as u64 / 512),
                inode.nlink,
            ),
            Content::Dir(d) => {
                let subdirs = d
                    .values()
                    .filter(|c| {
                        self.inodes
                            .get(c)
                            .is_some_and(|i| matches!(i.live.content, Content::Dir(_)))
                    })
                    .count() as u32;
                (4096, 8, 2 + subdirs)
            }
            Content::Symlink(t) => (t.as_os_str().len() as u64, 0, inode.nlink),
        };
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks,
            atime: meta.atime,
            mtime: meta.mtime,
            ctime: meta.ctime,
            crtime: meta.crtime,
            kind: inode.live.content.kind(),
            perm: meta.perm,
            nlink,
            uid: meta.uid,
            gid: meta.gid,
            rdev: meta.rdev,
            blksize: PAGE as u32,
            flags: 0,
        })
    }

    fn child(&self, parent: u64, name: &OsStr) -> Res<u64> {
        self.get(parent)?
            .dir()?
            .get(name)
            .copied()
            .ok_or(libc::ENOENT)
    }

    /// Looks `name` up in the live directory `parent`.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> Res<FileAttr> {
        let ino = self.child(parent, name)?;
        self.attr(ino)
    }

    fn touch_dir(&mut self, dir: u64) {
        if let Some(d) = self.inodes.get_mut(&dir) {
            let now = SystemTime::now();
            d.live.meta.mtime = now;
            d.live.meta.ctime = now;
            d.dirty = true;
        }
    }

    /// Creates a new inode named `name` in `parent` (volatile until fsyncdir).
    pub fn create_node(
        &mut self,
        parent: u64,
        name: &OsStr,
        content: Content,
        perm: u16,
        uid: u32,
        gid: u32,
    ) -> Res<FileAttr> {
        if name.len() > 255 {
            return Err(libc::ENAMETOOLONG);
        }
        if self.get(parent)?.dir()?.contains_key(name) {
            return Err(libc::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let mut inode = Inode::new(Node {
            meta: Meta::new(perm, uid, gid),
            content,
        });
        inode.nlink = 1;
        self.inodes.insert(ino, inode);
        self.get_mut(parent)?
            .dir_mut()?
            .insert(name.to_owned(), ino);
        self.touch_dir(parent);
        self.attr(ino)
    }

    fn is_dir(&self, ino: u64) -> bool {
        self.inodes
            .get(&ino)
            .is_some_and(|i| matches!(i.live.content, Content::Dir(_)))
    }

    /// Drops an inode once nothing can reach it any more.
    fn maybe_gc(&mut self, ino: u64) {
        if ino == ROOT {
            return;
        }
        if let Some(i) = self.inodes.get(&ino) {
            if i.nlink == 0 && i.durable_nlink == 0 && i.open == 0 {
                self.inodes.remove(&ino);
            }
        }
    }

    fn drop_link(&mut self, ino: u64) {
        if let Some(i) = self.inodes.get_mut(&ino) {
            i.nlink = i.nlink.saturating_sub(1);
            i.live.meta.ctime = SystemTime::now();
        }
        self.maybe_gc(ino);
    }

    /// `unlink` (files and symlinks).
    pub fn unlink(&mut self, parent: u64, name: &OsStr) -> Res<()> {
        let ino = self.child(parent, name)?;
        if self.is_dir(ino) {
            return Err(libc::EISDIR);
        }
        self.get_mut(parent)?.dir_mut()?.remove(name);
        self.touch_dir(parent);
        self.drop_link(ino);
        Ok(())
    }

    /// `rmdir`.
    pub fn rmdir(&mut self, parent: u64, name: &OsStr) -> Res<()> {
        let ino = self.child(parent, name)?;
        if !self.get(ino)?.dir()?.is_empty() {
            return Err(libc::ENOTEMPTY);
        }
        self.get_mut(parent)?.dir_mut()?.remove(name);
        self.touch_dir(parent);
        self.drop_link(ino);
        Ok(())
    }

    /// `link`.
    pub fn link(&mut self, ino: u64, newparent: u64, newname: &OsStr) -> Res<FileAttr> {
        if self.is_dir(ino) {
            return Err(libc::EPERM);
        }
        if self.get(newparent)?.dir()?.contains_key(newname) {
            return Err(libc::EEXIST);
        }
        self.get_mut(newparent)?
            .dir_mut()?
            .insert(newname.to_owned(), ino);
        let i = self.get_mut(ino)?;
        i.nlink += 1;
        i.live.meta.ctime = SystemTime::now();
        self.touch_dir(newparent);
        self.attr(ino)
    }

    /// `rename`/`renameat2` (`RENAME_NOREPLACE`, `RENAME_EXCHANGE`).
    pub fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
    ) -> Res<()> {
        let src = self.child(parent, name)?;
        let dst = self.get(newparent)?.dir()?.get(newname).copied();
        if flags & libc::RENAME_EXCHANGE != 0 {
            let dst = dst.ok_or(libc::ENOENT)?;
            self.get_mut(parent)?
                .dir_mut()?
                .insert(name.to_owned(), dst);
            self.get_mut(newparent)?
                .dir_mut()?
                .insert(newname.to_owned(), src);
            self.touch_dir(parent);
            self.touch_dir(newparent);
            return Ok(());
        }
        if let Some(dst) = dst {
            if flags & libc::RENAME_NOREPLACE != 0 {
                return Err(libc::EEXIST);
            }
            if dst == src {
                return Ok(());
            }
            match (self.is_dir(src), self.is_dir(dst)) {
                (true, true) => {
                    if !self.get(dst)?.dir()?.is_empty() {
                        return Err(libc::ENOTEMPTY);
                    }
                }
                (true, false) => return Err(libc::ENOTDIR),
                (false, true) => return Err(libc::EISDIR),
                (false, false) => {}
            }
        }
        self.get_mut(parent)?.dir_mut()?.remove(name);
        self.get_mut(newparent)?
            .dir_mut()?
            .insert(newname.to_owned(), src);
        if let Ok(i) = self.get_mut(src) {
            i.live.meta.ctime = SystemTime::now();
        }
        self.touch_dir(parent);
        self.touch_dir(newparent);
        if let Some(dst) = dst {
            self.drop_link(dst);
        }
        Ok(())
    }

    /// `readlink`.
    pub fn readlink(&self, ino: u64) -> Res<Vec<u8>> {
        match &self.get(ino)?.live.content {
            Content::Symlink(t) => Ok(t.as_os_str().as_encoded_bytes().to_vec()),
            _ => Err(libc::EINVAL),
        }
    }

    /// Opens a file or directory; returns the handle.
    pub fn open(&mut self, ino: u64) -> Res<u64> {
        let listing = match &self.get(ino)?.live.content {
            Content::Dir(d) => {
                let mut l = Vec::with_capacity(d.len() + 2);
                l.push((ino, FileType::Directory, OsString::from(".")));
                l.push((ino, FileType::Directory, OsString::from("..")));
                for (name, c) in d {
                    if let Some(ci) = self.inodes.get(c) {
                        l.push((*c, ci.live.content.kind(), name.clone()));
                    }
                }
                Some(l)
            }
            _ => None,
        };
        self.get_mut(ino)?.open += 1;
        let fh = self.next_fh;
        self.next_fh += 1;
        self.handles.insert(fh, Handle { ino, listing });
        Ok(fh)
    }

    /// Closes a handle (stale handles from before a power cut are ignored).
    pub fn release(&mut self, fh: u64) {
        if let Some(h) = self.handles.remove(&fh) {
            if let Some(i) = self.inodes.get_mut(&h.ino) {
                i.open = i.open.saturating_sub(1);
            }
            self.maybe_gc(h.ino);
        }
    }

    /// Directory entries of an open directory, from index `offset` on.
    pub fn readdir(&self, fh: u64, ino: u64) -> Res<&[(u64, FileType, OsString)]> {
        self.handle(fh, ino)?;
        self.handles[&fh].listing.as_deref().ok_or(libc::ENOTDIR)
    }

    /// `pread`.
    pub fn read(&self, fh: u64, ino: u64, off: u64, len: usize) -> Res<Vec<u8>> {
        self.handle(fh, ino)?;
        match &self.get(ino)?.live.content {
            Content::File(f) => Ok(f.read(off, len)),
            Content::Dir(_) => Err(libc::EISDIR),
            Content::Symlink(_) => Err(libc::EINVAL),
        }
    }

    /// `pwrite`; with `append` the data goes to the current end of file.
    pub fn write(&mut self, fh: u64, ino: u64, off: u64, data: &[u8], append: bool) -> Res<u32> {
        self.handle(fh, ino)?;
        let inode = self.get_mut(ino)?;
        let file = inode.file_mut()?;
        let off = if append { file.len() } else { off };
        file.write(off, data);
        let now = SystemTime::now();
        inode.live.meta.mtime = now;
        inode.live.meta.ctime = now;
        inode.dirty = true;
        inode.dirty_bytes += data.len() as u64;
        inode.record(PendingOp::Write(off, data.to_vec()));
        self.stats.writes += 1;
        self.stats.bytes_written += data.len() as u64;
        Ok(data.len() as u32)
    }

    /// `truncate`/`ftruncate`.
    pub fn set_len(&mut self, ino: u64, fh: Option<u64>, len: u64) -> Res<()> {
        if let Some(fh) = fh {
            self.handle(fh, ino)?;
        }
        let inode = self.get_mut(ino)?;
        inode.file_mut()?.set_len(len);
        let now = SystemTime::now();
        inode.live.meta.mtime = now;
        inode.live.meta.ctime = now;
        inode.dirty = true;
        inode.record(PendingOp::SetLen(len));
        Ok(())
    }

    /// Metadata part of `setattr` (size is `set_len`).
    pub fn set_meta(
        &mut self,
        ino: u64,
        perm: Option<u16>,
        uid: Option<u32>,
        gid: Option<u32>,
        atime: Option<SystemTime>,
        mtime: Option<SystemTime>,
    ) -> Res<()> {
        let inode = self.get_mut(ino)?;
        let m = &mut inode.live.meta;
        if let Some(p) = perm {
            m.perm = p;
        }
        if let Some(u) = uid {
            m.uid = u;
        }
        if let Some(g) = gid {
            m.gid = g;
        }
        if let Some(t) = atime {
            m.atime = t;
        }
        if let Some(t) = mtime {
            m.mtime = t;
        }
        m.ctime = SystemTime::now();
        inode.dirty = true;
        Ok(())
    }

    /// `fallocate`: mode 0 extends the size; `KEEP_SIZE` alone is a no-op;
    /// `PUNCH_HOLE | KEEP_SIZE` and `ZERO_RANGE` zero the range.
    pub fn fallocate(&mut self, fh: u64, ino: u64, off: u64, len: u64, mode: i32) -> Res<()> {
        self.handle(fh, ino)?;
        let end = off.checked_add(len).ok_or(libc::EFBIG)?;
        let inode = self.get_mut(ino)?;
        let file = inode.file_mut()?;
        let keep = mode & libc::FALLOC_FL_KEEP_SIZE != 0;
        let punch = mode & libc::FALLOC_FL_PUNCH_HOLE != 0;
        let zero = mode & libc::FALLOC_FL_ZERO_RANGE != 0;
        if mode
            & !(libc::FALLOC_FL_KEEP_SIZE | libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_ZERO_RANGE)
            != 0
            || (punch && !keep)
        {
            return Err(libc::EOPNOTSUPP);
        }
        let old = file.len();
        if punch || zero {
            file.zero_range(off, len);
        }
        if !keep && end > old {
            file.set_len(end);
        }
        if file.len() != old || punch || zero {
            let new_len = file.len();
            inode.dirty = true;
            if new_len != old {
                inode.record(PendingOp::SetLen(new_len));
            }
            if punch || zero {
                let n = len.min(new_len.saturating_sub(off));
                inode.record(PendingOp::Write(off, vec![0; n as usize]));
            }
        }
        Ok(())
    }

    /// `fsync` (`datasync == false`) or `fdatasync` on a file: its data,
    /// size (and for fsync its metadata) become durable. Its directory
    /// entry does not.
    pub fn fsync(&mut self, fh: u64, ino: u64, datasync: bool) -> Res<()> {
        self.handle(fh, ino)?;
        if self.is_dir(ino) {
            return self.fsyncdir(fh, ino);
        }
        if datasync {
            self.stats.fdatasync += 1;
        } else {
            self.stats.fsync += 1;
        }
        let inode = self.get_mut(ino)?;
        let meta = match (&inode.durable, datasync) {
            (Some(d), true) => d.meta.clone(),
            _ => inode.live.meta.clone(),
        };
        inode.durable = Some(Node {
            meta,
            content: inode.live.content.clone(),
        });
        inode.mark_synced();
        Ok(())
    }

    /// `fsync` on a directory: its current entries become durable. Inodes
    /// that get their first durable entry this way but were never synced
    /// themselves exist after a cut, empty.
    pub fn fsyncdir(&mut self, fh: u64, ino: u64) -> Res<()> {
        self.handle(fh, ino)?;
        self.stats.fsyncdir += 1;
        self.persist_dir(ino)
    }

    fn persist_dir(&mut self, ino: u64) -> Res<()> {
        let dir = self.get(ino)?;
        let new = dir.dir()?.clone();
        let old = match &dir.durable {
            Some(Node {
                content: Content::Dir(d),
                ..
            }) => d.clone(),
            _ => BTreeMap::new(),
        };
        let meta = dir.live.meta.clone();
        let d = self.get_mut(ino)?;
        d.durable = Some(Node {
            meta,
            content: Content::Dir(new.clone()),
        });
        d.dirty = false;
        let mut removed = Vec::new();
        for (name, child) in &old {
            if new.get(name) != Some(child) {
                if let Some(c) = self.inodes.get_mut(child) {
                    c.durable_nlink = c.durable_nlink.saturating_sub(1);
                }
                removed.push(*child);
            }
        }
        for (name, child) in &new {
            if old.get(name) == Some(child) {
                continue;
            }
            let Some(c) = self.inodes.get_mut(child) else {
                continue;
            };
            c.durable_nlink += 1;
            if c.durable.is_none() {
                c.durable = Some(Node {
                    meta: c.live.meta.clone(),
                    content: c.live.content.empty_like(),
                });
            }
            let moved_dir = matches!(c.live.content, Content::Dir(_)) && c.durable_nlink > 1;
            if moved_dir {
                // A directory has one parent: a moved directory's old durable
                // entry goes when its new one becomes durable.
                self.unlink_durable_elsewhere(*child, ino, name);
            }
        }
        for child in removed {
            self.maybe_gc(child);
        }
        Ok(())
    }

    fn unlink_durable_elsewhere(&mut self, child: u64, keep_dir: u64, keep_name: &OsStr) {
        let mut dropped = 0;
        for (dino, inode) in self.inodes.iter_mut() {
            if let Some(Node {
                content: Content::Dir(d),
                ..
            }) = &mut inode.durable
            {
                d.retain(|name, c| {
                    let other =
                        *c == child && !(*dino == keep_dir && name.as_os_str() == keep_name);
                    if other {
                        dropped += 1;
                    }
                    !other
                });
            }
        }
        if let Some(c) = self.inodes.get_mut(&child) {
            c.durable_nlink -= dropped;
        }
    }

    /// What `statfs` reports: (blocks, free blocks, files, free files), in
    /// 4 KiB blocks of a 64 GiB disk.
    pub fn statfs(&self) -> (u64, u64, u64, u64) {
        let total: u64 = 16 << 20;
        let used: u64 = self
            .inodes
            .values()
            .map(|i| match &i.live.content {
                Content::File(f) => f.allocated_pages(),
                _ => 1,
            })
            .sum();
        let files: u64 = 1 << 24;
        (
            total,
            total.saturating_sub(used),
            files,
            files.saturating_sub(self.inodes.len() as u64),
        )
    }

    /// Makes everything durable, like `sync(1)` on a real disk.
    pub fn sync_all(&mut self) {
        for inode in self.inodes.values_mut() {
            inode.durable = Some(inode.live.clone());
            inode.durable_nlink = inode.nlink;
            inode.mark_synced();
        }
    }

    /// Simulated power loss: every inode goes back to its durable state,
    /// everything unreachable through durable entries disappears, and all
    /// open handles die. With `seed`, each file keeps a random prefix of its
    /// unsynced writes, the last one possibly torn at a sector boundary.
    pub fn power_cut(&mut self, seed: Option<u64>) -> CutReport {
        let mut rng = seed.map(Rng::new);
        let mut report = CutReport::default();
        let mut ids: Vec<u64> = self.inodes.keys().copied().collect();
        ids.sort_unstable();
        let mut gone = HashSet::new();
        for id in ids {
            let Some(inode) = self.inodes.get_mut(&id) else {
                continue;
            };
            report.bytes_dropped += inode.dirty_bytes;
            let Some(durable) = &inode.durable else {
                gone.insert(id);
                continue;
            };
            let mut node = durable.clone();
            if let (Some(rng), Content::File(data)) = (&mut rng, &mut node.content) {
                if !inode.pending_overflow && !inode.pending.is_empty() {
                    let n = inode.pending.len();
                    let keep = rng.below(n as u64 + 1) as usize;
                    for op in &inode.pending[..keep] {
                        apply_op(data, op);
                        if let PendingOp::Write(_, d) = op {
                            report.bytes_kept += d.len() as u64;
                        }
                    }
                    if let Some(PendingOp::Write(off, d)) = inode.pending.get(keep) {
                        let sectors = d.len().div_ceil(SECTOR) as u64;
                        let torn = (rng.below(sectors + 1) as usize * SECTOR).min(d.len());
                        if torn > 0 {
                            data.write(*off, &d[..torn]);
                            report.bytes_kept += torn as u64;
                        }
                    }
                }
            }
            if inode.dirty || inode.dirty_bytes > 0 || !inode.pending.is_empty() {
                report.inodes_reverted += 1;
            }
            inode.live = node;
            inode.mark_synced();
            inode.open = 0;
        }
        report.bytes_dropped = report.bytes_dropped.saturating_sub(report.bytes_kept);
        for id in &gone {
            self.inodes.remove(id);
        }
        // Recount links over the durable tree and drop what it cannot reach.
        let mut links: HashMap<u64, u32> = HashMap::new();
        links.insert(ROOT, 1);
        let mut queue = VecDeque::from([ROOT]);
        let mut seen = HashSet::from([ROOT]);
        while let Some(d) = queue.pop_front() {
            let children: Vec<u64> = match self.inodes.get(&d).map(|i| &i.live.content) {
                Some(Content::Dir(e)) => e.values().copied().collect(),
                _ => continue,
            };
            for c in children {
                if !self.inodes.contains_key(&c) {
                    continue;
                }
                *links.entry(c).or_default() += 1;
                if seen.insert(c) {
                    queue.push_back(c);
                }
            }
        }
        let before = self.inodes.len();
        self.inodes.retain(|id, _| seen.contains(id));
        report.inodes_lost = (gone.len() + before - self.inodes.len()) as u64;
        for (id, inode) in self.inodes.iter_mut() {
            let n = links.get(id).copied().unwrap_or(0);
            inode.nlink = n;
            inode.durable_nlink = n;
            if let Content::Dir(e) = &mut inode.live.content {
                e.retain(|_, c| seen.contains(c));
            }
            if let Some(Node {
                content: Content::Dir(e),
                ..
            }) = &mut inode.durable
            {
                e.retain(|_, c| seen.contains(c));
            }
        }
        self.handles.clear();
        self.stats.power_cuts += 1;
        self.stats.last_cut = report.clone();
        report
    }

    /// Human-readable list of everything a power cut would discard now.
    pub fn unsynced(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![(ROOT, PathBuf::from("/"))];
        let mut seen = HashSet::new();
        while let Some((ino, path)) = stack.pop() {
            if !seen.insert(ino) {
                continue;
            }
            let Some(inode) = self.inodes.get(&ino) else {
                continue;
            };
            if inode.durable.is_none() {
                out.push(format!("{}: never synced", path.display()));
            } else if inode.dirty_bytes > 0 || inode.dirty {
                out.push(format!(
                    "{}: {} unsynced bytes written{}",
                    path.display(),
                    inode.dirty_bytes,
                    if inode.dirty {
                        " (state differs from disk)"
                    } else {
                        ""
                    }
                ));
            }
            if let Content::Dir(entries) = &inode.live.content {
                let durable = match &inode.durable {
                    Some(Node {
                        content: Content::Dir(d),
                        ..
                    }) => Some(d),
                    _ => None,
                };
                for (name, c) in entries {
                    let p = path.join(name);
                    if durable.and_then(|d| d.get(name)) != Some(c) {
                        out.push(format!("{}: directory entry not durable", p.display()));
                    }
                    stack.push((*c, p));
                }
                for (name, c) in durable.into_iter().flatten() {
                    if entries.get(name) != Some(c) {
                        out.push(format!(
                            "{}: removed or replaced, but the old entry is still on disk",
                            path.join(name).display()
                        ));
                    }
                }
            }
        }
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    #[test]
    fn file_data_read_write_truncate() {
        let mut f = FileData::default();
        f.write(5000, b"hello");
        assert_eq!(f.len(), 5005);
        assert_eq!(f.read(4998, 10), b"\0\0hello");
        assert_eq!(f.allocated_pages(), 1);
        f.set_len(5002);
        f.set_len(6000);
        assert_eq!(f.read(5000, 5), b"he\0\0\0");
        f.zero_range(0, 100_000);
        assert_eq!(f.read(5000, 2), b"\0\0");
    }

    #[test]
    fn cut_reverts_unsynced_and_keeps_synced() {
        let mut m = Model::new(0, 0);
        let a = m
            .create_node(
                ROOT,
                name("a"),
                Content::File(FileData::default()),
                0o644,
                0,
                0,
            )
            .unwrap()
            .ino
            .0;
        let fh = m.open(a).unwrap();
        m.write(fh, a, 0, b"durable", false).unwrap();
        m.fsync(fh, a, true).unwrap();
        let dfh = m.open(ROOT).unwrap();
        m.fsyncdir(dfh, ROOT).unwrap();
        m.write(fh, a, 7, b" volatile", false).unwrap();
        let r = m.power_cut(None);
        assert_eq!(r.bytes_dropped, 9);
        let fh = m.open(a).unwrap();
        assert_eq!(m.read(fh, a, 0, 100).unwrap(), b"durable");
    }

    #[test]
    fn partial_cut_keeps_a_prefix() {
        let mut m = Model::new(0, 0);
        let a = m
            .create_node(
                ROOT,
                name("a"),
                Content::File(FileData::default()),
                0o644,
                0,
                0,
            )
            .unwrap()
            .ino
            .0;
        let dfh = m.open(ROOT).unwrap();
        m.fsyncdir(dfh, ROOT).unwrap();
        let fh = m.open(a).unwrap();
        for i in 0..10u8 {
            m.write(fh, a, u64::from(i) * 1024, &[i + 1; 1024], false)
                .unwrap();
        }
        m.power_cut(Some(7));
        let fh = m.open(a).unwrap();
        let data = m.read(fh, a, 0, 1 << 20).unwrap();
        // Whatever survived is a prefix of the write sequence.
        let first_missing = data.iter().position(|b| *b == 0).unwrap_or(data.len());
        assert!(data[first_missing..].iter().all(|b| *b == 0));
        for (i, b) in data[..first_missing].iter().enumerate() {
            assert_eq!(*b as usize, i / 1024 + 1);
        }
    }
}
