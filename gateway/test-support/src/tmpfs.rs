//! A small real filesystem that fills up: a tmpfs on a temporary directory.

use std::path::Path;
use std::process::Command;

use crate::need::{require_root, require_tool};

/// A mounted tmpfs; unmounted (lazily) and removed when dropped.
pub struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount -o size=`, e.g. "8m"). Needs root:
    /// without it, [`crate::need::unavailable`] and `None`.
    pub fn mount(size: &str) -> Option<Tmpfs> {
        if !require_root("mounting a tmpfs") || !require_tool("mount", "mount") {
            return None;
        }
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap_or_else(|e| panic!("run mount: {e}"));
        assert!(
            status.success(),
            "mount -t tmpfs on {} failed ({status})",
            dir.path().display()
        );
        Some(Tmpfs(dir))
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}
