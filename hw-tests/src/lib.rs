//! Hardware-level test support (see README.md): **lossyfs**, a FUSE filesystem that behaves
//! like a disk with a volatile write cache, and can lose that cache on
//! command (a simulated power cut).
//!
//! What is durable when (the whole model, see `model.rs` and README.md):
//!
//! * file data and size: after `fsync`/`fdatasync` on that file;
//! * directory entries (create, mkdir, unlink, rmdir, rename, link, symlink):
//!   after `fsync` on the directory that holds them (per directory: a rename
//!   between two directories needs both synced);
//! * nothing else: not `close`, not `sync_file_range`, not `sync(2)`.
//!
//! A test mounts it in-process, runs a workload (usually a child process),
//! kills the workload with SIGKILL, calls [`LossyMount::power_cut`], and then
//! checks that whatever the workload acknowledged is still there:
//!
//! ```no_run
//! use hw_tests::LossyMount;
//! let fs = LossyMount::mount_temp("example")?;
//! std::fs::write(fs.path().join("lost"), b"never synced")?;
//! let cut = fs.power_cut();
//! assert!(!fs.path().join("lost").exists());
//! assert_eq!(cut.inodes_lost, 1);
//! # Ok::<(), std::io::Error>(())
//! ```

pub mod fuse;
pub mod model;
pub mod qemu;

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fuser::{BackgroundSession, Config, MountOption, Session, SessionACL};

pub use model::{CutReport, Stats};

const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;

/// A mounted lossyfs, served by a thread of this process. Unmounts on drop.
pub struct LossyMount {
    path: PathBuf,
    model: Arc<Mutex<model::Model>>,
    session: Option<BackgroundSession>,
    /// The mountpoint was created by [`LossyMount::mount_temp`]: remove it
    /// after unmounting.
    remove_dir: bool,
}

impl std::fmt::Debug for LossyMount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LossyMount")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(io::Error::other)
}

impl LossyMount {
    /// Mounts an empty lossyfs on the existing directory `mountpoint` and
    /// returns once the kernel answers requests on it. Needs root (or
    /// CAP_SYS_ADMIN) and /dev/fuse. The root directory of the new
    /// filesystem is durable and empty.
    pub fn mount(mountpoint: &Path) -> io::Result<LossyMount> {
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let model = Arc::new(Mutex::new(model::Model::new(uid, gid)));
        let path = mountpoint.canonicalize()?;
        let session = start(&path, model.clone())?;
        Ok(LossyMount {
            path,
            model,
            session: Some(session),
            remove_dir: false,
        })
    }

    /// Creates a fresh directory under the system temp dir (named after
    /// `label`) and mounts a lossyfs there; the directory is removed again
    /// after unmounting.
    pub fn mount_temp(label: &str) -> io::Result<LossyMount> {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "lossyfs-{label}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        match LossyMount::mount(&dir) {
            Ok(mut m) => {
                m.remove_dir = true;
                Ok(m)
            }
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                Err(e)
            }
        }
    }

    /// Where the filesystem is mounted (canonical path).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn model(&self) -> MutexGuard<'_, model::Model> {
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Simulated power loss: discards every unsynced write and directory
    /// change; afterwards the visible tree is exactly the durable state.
    /// File handles opened before the cut fail with EIO from then on, so
    /// SIGKILL (and reap) the workload first. The filesystem stays mounted
    /// and usable: this is also the "reboot".
    pub fn power_cut(&self) -> CutReport {
        self.model().power_cut(None)
    }

    /// SIGKILLs `workload`, reaps it (so none of its requests is still on
    /// its way to the filesystem), then cuts power. The usual crash step of
    /// an end-to-end test.
    pub fn kill_and_cut(&self, workload: &mut std::process::Child) -> io::Result<CutReport> {
        match workload.kill() {
            Ok(()) => {}
            // Already exited: still reap it below.
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {}
            Err(e) => return Err(e),
        }
        workload.wait()?;
        Ok(self.power_cut())
    }

    /// Like [`power_cut`](Self::power_cut), but each file keeps a random
    /// prefix (chosen by `seed`) of its unsynced writes and truncates, the
    /// last kept write possibly torn at a 512-byte sector boundary.
    /// Directory changes are still lost whole.
    pub fn power_cut_partial(&self, seed: u64) -> CutReport {
        self.model().power_cut(Some(seed))
    }

    /// Makes everything durable, as `sync(1)` would on a real disk (on
    /// lossyfs `sync(2)`/`syncfs(2)` do nothing). Handy to set up fixtures.
    pub fn sync_all(&self) {
        self.model().sync_all();
    }

    /// Counters since mount (fsync/fdatasync/fsyncdir calls, writes, cuts,
    /// and what the last cut dropped).
    pub fn stats(&self) -> Stats {
        self.model().stats()
    }

    /// Everything a power cut would discard right now, one line per path
    /// (for diagnosing which file or directory a program forgot to sync).
    pub fn unsynced(&self) -> Vec<String> {
        self.model().unsynced()
    }

    /// Unmounts and mounts the same state again, which also drops every
    /// kernel cache for the mount. Fails if processes still use the mount.
    pub fn remount(&mut self) -> io::Result<()> {
        self.stop(false)?;
        self.session = Some(start(&self.path, self.model.clone())?);
        Ok(())
    }

    /// Unmounts (lazily if the mount is still busy).
    pub fn unmount(mut self) -> io::Result<()> {
        self.stop(true)
    }

    fn stop(&mut self, lazy: bool) -> io::Result<()> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        let c = cstr(&self.path)?;
        // SAFETY: c is a valid NUL-terminated path.
        let mut rc = unsafe { libc::umount2(c.as_ptr(), 0) };
        if rc != 0 {
            let err = io::Error::last_os_error();
            if !lazy || err.raw_os_error() != Some(libc::EBUSY) {
                self.session = Some(session);
                return Err(err);
            }
            // SAFETY: as above.
            rc = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            if rc != 0 {
                let err = io::Error::last_os_error();
                self.session = Some(session);
                return Err(err);
            }
        }
        let guard = session.guard;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !guard.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if guard.is_finished() {
            let _ = guard.join();
        }
        Ok(())
    }
}

impl Drop for LossyMount {
    fn drop(&mut self) {
        if let Err(e) = self.stop(true) {
            eprintln!("lossyfs: unmounting {} failed: {e}", self.path.display());
            return;
        }
        if self.remove_dir {
            let _ = std::fs::remove_dir(&self.path);
        }
    }
}

fn start(path: &Path, model: Arc<Mutex<model::Model>>) -> io::Result<BackgroundSession> {
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("lossyfs".into()),
        MountOption::Subtype("lossyfs".into()),
        MountOption::DefaultPermissions,
        MountOption::NoAtime,
    ];
    config.acl = SessionACL::All;
    config.n_threads = Some(1);
    let session = Session::new(fuse::LossyFs::new(model), path, &config)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "lossyfs: cannot mount {} ({e}); it needs root or CAP_SYS_ADMIN \
                     and /dev/fuse (modprobe fuse)",
                    path.display()
                ),
            )
        })?
        .spawn()?;
    // statfs goes through the FUSE INIT handshake: once it answers with the
    // FUSE magic, the mount serves requests.
    let c = cstr(path)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // SAFETY: statfs fills a plain C struct.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: c is a valid path, st a valid out-pointer.
        let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
        if rc == 0 && st.f_type as i64 == FUSE_SUPER_MAGIC {
            return Ok(session);
        }
        if Instant::now() > deadline {
            return Err(io::Error::other(format!(
                "lossyfs did not come up at {}",
                path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
