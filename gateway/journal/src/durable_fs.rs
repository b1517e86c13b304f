//! Filesystem operations whose effects survive a power cut. A new file or
//! directory is only durable once the directory that holds its name has
//! been fsync'd; `std::fs::create_dir_all` never does that, so a data
//! directory made at first start could vanish on the first power cut,
//! taking every acknowledged message with it (found by the lossyfs test).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// fsync a directory, making the names in it durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Like `create_dir_all`, but each directory it creates is fsync'd along
/// with its parent, so the whole chain is durable when it returns.
pub fn create_dir_all(path: &Path) -> io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_all(parent)?;
    }
    match fs::create_dir(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => return Ok(()),
        Err(e) => return Err(e),
    }
    sync_dir(path)?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Write `bytes` to `dir/name` so that after a crash the file is either
/// absent or complete: temp file, fsync, rename, fsync the directory.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    write_atomically_with(dir, name, bytes, |_| Ok(()))
}

/// [`write_atomically`] for a file written by another user (root) into a
/// directory the journal's owner reads: the file is given the directory's
/// owner when this process may (root with CAP_CHOWN), and is mode 0644
/// whatever the umask, so that the owner can read it either way. A file
/// the daemon cannot open breaks more than its reader: the journal's
/// checkpoint fsyncs every file in its directory.
pub fn write_atomically_for_dir_owner(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let owner = fs::metadata(dir)?;
    write_atomically_with(dir, name, bytes, |f| {
        match std::os::unix::fs::fchown(f, Some(owner.uid()), Some(owner.gid())) {
            Ok(()) => {}
            // Not root, or root without CAP_CHOWN (a sandboxed unit).
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {}
            Err(e) => return Err(e),
        }
        f.set_permissions(fs::Permissions::from_mode(0o644))
    })
}

fn write_atomically_with(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    before_rename: impl FnOnce(&File) -> io::Result<()>,
) -> io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        before_rename(&f)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_nested_dirs_and_is_idempotent() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/b/c");
        create_dir_all(&p).unwrap();
        assert!(p.is_dir());
        create_dir_all(&p).unwrap();
        std::fs::write(d.path().join("file"), b"x").unwrap();
        assert!(create_dir_all(&d.path().join("file")).is_err());
    }

    #[test]
    fn a_file_for_the_dir_owner_is_readable_by_it_whatever_the_umask() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        // As root (CI), the directory belongs to another user, as a
        // DynamicUser state directory does.
        if fs::metadata(dir.path()).unwrap().uid() == 0 {
            std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
        }
        write_atomically_for_dir_owner(dir.path(), "req", b"2\n").unwrap();
        let m = fs::metadata(dir.path().join("req")).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o644);
        let d = fs::metadata(dir.path()).unwrap();
        assert_eq!((m.uid(), m.gid()), (d.uid(), d.gid()));
        assert_eq!(fs::read(dir.path().join("req")).unwrap(), b"2\n");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        write_atomically(dir.path(), "1.hl7", b"one").unwrap();
        write_atomically(dir.path(), "1.hl7", b"uno").unwrap();
        assert_eq!(fs::read(dir.path().join("1.hl7")).unwrap(), b"uno");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
