//! Closing sled 0.34's durability gaps. See the module doc of `journal` for
//! the why; this file is the how.
//!
//! Two entry points:
//!
//! - [`Durability::sync_new_files`], at every group commit (before the WAL
//!   record is appended and synced, before any reply): drains an inotify
//!   queue watching `<dir>` and `<dir>/blobs/`, `fsync`s every blob (or
//!   other) file closed-after-write since the last call (sled writes blob
//!   files with `create_new` + `write_all` during `apply_batch` and never
//!   syncs them; if sled's log pointer to a blob reaches disk and the blob
//!   does not, sled panics at open), and `fsync`s `blobs/` and/or `<dir>`
//!   when entries were created, renamed or removed there. It does not
//!   touch the sled log: the WAL carries the commit.
//! - [`Durability::after_flush`], at a checkpoint, after `Db::flush()`
//!   (which only `sync_file_range`s the log): the same, then
//!   `fdatasync(<dir>/db)` (persists data *and* the file size, which
//!   `sync_file_range` does not).
//!
//! If the inotify queue overflowed, or inotify is unavailable, it falls back
//! to syncing every file in both directories.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

pub(crate) fn ctx(op: &str, path: &Path) -> String {
    format!("{op} {}", path.display())
}

/// `fsync` a file or directory by path.
pub(crate) fn fsync_path(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// Create `dir` (and missing ancestors), making every newly created entry
/// durable: each created directory and its parent are fsync'd.
pub(crate) fn create_dir_durable(dir: &Path) -> Result<(), (String, io::Error)> {
    crate::durable_fs::create_dir_all(dir).map_err(|e| (ctx("create directory durably", dir), e))
}

/// What one commit made durable (for tests and stats).
#[derive(Debug, Default, Clone)]
pub struct CommitSync {
    /// Paths fsync'd/fdatasync'd by this commit, in order.
    pub synced: Vec<PathBuf>,
    /// True when the inotify queue overflowed and everything was synced.
    pub full_rescan: bool,
    /// True when sled wrote its log (`db`) since the previous call.
    pub db_written: bool,
    /// True when the sled log was fdatasync'd.
    pub db_synced: bool,
}

pub(crate) struct Durability {
    dir: PathBuf,
    blobs: PathBuf,
    db_path: PathBuf,
    db_file: File,
    watch: Option<Watch>,
}

struct Watch {
    ino: Inotify,
    wd_dir: WatchDescriptor,
    wd_blobs: WatchDescriptor,
}

impl Durability {
    /// Called right after `sled::open`: makes the files sled created at open
    /// (which it never syncs: `conf`, `blobs/`, the directory entries)
    /// durable, and starts watching for new files.
    pub(crate) fn open(dir: &Path) -> Result<Durability, (String, io::Error)> {
        let blobs = dir.join("blobs");
        let db_path = dir.join("db");
        let conf = dir.join("conf");
        // Watch first so nothing created from now on is missed.
        let watch = match Watch::new(dir, &blobs) {
            Ok(w) => Some(w),
            Err(e) => {
                log::warn!(
                    "journal: inotify unavailable ({e}); every commit will sync all files in the journal directory"
                );
                None
            }
        };
        let db_file = File::open(&db_path).map_err(|e| (ctx("open", &db_path), e))?;
        db_file
            .sync_all()
            .map_err(|e| (ctx("fsync", &db_path), e))?;
        if conf.exists() {
            fsync_path(&conf).map_err(|e| (ctx("fsync", &conf), e))?;
        }
        // Blob files written before a crash in a previous run may never have
        // been synced; sync them all once at open (cheap relative to open).
        sync_all_files_in(&blobs, &mut Vec::new())?;
        fsync_path(&blobs).map_err(|e| (ctx("fsync directory", &blobs), e))?;
        fsync_path(dir).map_err(|e| (ctx("fsync directory", dir), e))?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fsync_path(parent).map_err(|e| (ctx("fsync directory", parent), e))?;
        }
        Ok(Durability {
            dir: dir.to_path_buf(),
            blobs,
            db_path,
            db_file,
            watch,
        })
    }

    /// Checkpoint half: make everything the just-flushed sled log depends on
    /// durable (new files, directories, then `fdatasync(db)`). Must be
    /// called after `Db::flush()` returned Ok and before the WAL records it
    /// covers are deleted.
    pub(crate) fn after_flush(&mut self) -> Result<CommitSync, (String, io::Error)> {
        let mut out = self.sync_new_files()?;
        self.db_file
            .sync_data()
            .map_err(|e| (ctx("fdatasync", &self.db_path), e))?;
        out.synced.push(self.db_path.clone());
        out.db_synced = true;
        // Entries created before the log sync (e.g. a snapshot rename during
        // flush) are covered by `sync_new_files`; sync the directory again
        // only if something changed since.
        let again = self.sync_new_files()?;
        out.full_rescan |= again.full_rescan;
        out.synced.extend(again.synced);
        Ok(out)
    }

    /// Commit half (every group commit, before the reply): `fsync` every
    /// file sled closed-after-write since the last call (new blob files,
    /// written by sled during `apply_batch` and never synced) and the
    /// directories in which entries were created, renamed or removed. Does
    /// NOT sync the sled log: the WAL carries the commit.
    pub(crate) fn sync_new_files(&mut self) -> Result<CommitSync, (String, io::Error)> {
        let mut out = CommitSync::default();
        let mut files: Vec<PathBuf> = Vec::new();
        let mut blobs_dir_dirty = false;
        let mut dir_dirty = false;
        let mut db_written = false;
        let mut rescan = self.watch.is_none();
        if let Some(w) = &self.watch {
            loop {
                let events = match w.ino.read_events() {
                    Ok(ev) => ev,
                    Err(nix::errno::Errno::EAGAIN) => break,
                    Err(e) => {
                        log::warn!("journal: inotify read failed ({e}); syncing all files");
                        rescan = true;
                        break;
                    }
                };
                if events.is_empty() {
                    break;
                }
                for ev in events {
                    if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                        rescan = true;
                        continue;
                    }
                    let base = if ev.wd == w.wd_blobs {
                        &self.blobs
                    } else if ev.wd == w.wd_dir {
                        &self.dir
                    } else {
                        continue;
                    };
                    let is_blobs = ev.wd == w.wd_blobs;
                    let structural = AddWatchFlags::IN_CREATE
                        | AddWatchFlags::IN_DELETE
                        | AddWatchFlags::IN_MOVED_FROM
                        | AddWatchFlags::IN_MOVED_TO;
                    if ev.mask.intersects(structural) {
                        if is_blobs {
                            blobs_dir_dirty = true;
                        } else {
                            dir_dirty = true;
                        }
                    }
                    let name: Option<OsString> = ev.name;
                    if !is_blobs
                        && ev.mask.contains(AddWatchFlags::IN_MODIFY)
                        && name.as_deref() == self.db_path.file_name()
                    {
                        db_written = true;
                    }
                    if ev
                        .mask
                        .intersects(AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MOVED_TO)
                    {
                        if let Some(n) = name {
                            let p = base.join(n);
                            if p != self.db_path && !files.contains(&p) {
                                files.push(p);
                            }
                        }
                    }
                }
            }
        }
        if rescan {
            out.full_rescan = true;
            sync_all_files_in(&self.blobs, &mut out.synced)?;
            blobs_dir_dirty = true;
            dir_dirty = true;
            db_written = true;
        }
        for f in files {
            match File::open(&f) {
                Ok(h) => {
                    h.sync_all().map_err(|e| (ctx("fsync", &f), e))?;
                    out.synced.push(f);
                }
                // sled removed it again (a blob no longer referenced): nothing to persist.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err((ctx("open for fsync", &f), e)),
            }
        }
        if blobs_dir_dirty {
            fsync_path(&self.blobs).map_err(|e| (ctx("fsync directory", &self.blobs), e))?;
            out.synced.push(self.blobs.clone());
        }
        // sled wrote (part of) its log: the caller must make sled durable
        // (flush + fdatasync) before replying; see `writer::store::Store::log`.
        out.db_written = db_written;
        if dir_dirty {
            fsync_path(&self.dir).map_err(|e| (ctx("fsync directory", &self.dir), e))?;
            out.synced.push(self.dir.clone());
        }
        Ok(out)
    }
}

impl Watch {
    fn new(dir: &Path, blobs: &Path) -> nix::Result<Watch> {
        let ino = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        let mask = AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_DELETE;
        // On `<dir>` also IN_MODIFY: tells us when sled wrote its log (`db`).
        let wd_dir = ino.add_watch(dir, mask | AddWatchFlags::IN_MODIFY)?;
        let wd_blobs = ino.add_watch(blobs, mask)?;
        Ok(Watch {
            ino,
            wd_dir,
            wd_blobs,
        })
    }
}

fn sync_all_files_in(dir: &Path, synced: &mut Vec<PathBuf>) -> Result<(), (String, io::Error)> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err((ctx("read directory", dir), e)),
    };
    for ent in rd {
        let ent = ent.map_err(|e| (ctx("read directory", dir), e))?;
        let p = ent.path();
        match File::open(&p) {
            Ok(h) => {
                if h.metadata().map(|m| m.is_file()).unwrap_or(false) {
                    h.sync_all().map_err(|e| (ctx("fsync", &p), e))?;
                    synced.push(p);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err((ctx("open for fsync", &p), e)),
        }
    }
    Ok(())
}
