//! lossyfs semantics through a real mount: what survives a power cut and
//! what does not. Needs root and /dev/fuse.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use hw_tests::LossyMount;

fn fsync_dir(dir: &Path) {
    File::open(dir).unwrap().sync_all().unwrap();
}

fn write_synced(path: &Path, data: &[u8]) {
    let mut f = File::create(path).unwrap();
    f.write_all(data).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn unsynced_write_is_lost() {
    let fs = LossyMount::mount_temp("unsynced").unwrap();
    let p = fs.path().join("a");
    write_synced(&p, b"old");
    fsync_dir(fs.path());
    // Overwrite without fsync: the old contents come back.
    fs::write(&p, b"new contents").unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"new contents");
    let cut = fs.power_cut();
    assert_eq!(cut.bytes_dropped, 12);
    assert_eq!(fs::read(&p).unwrap(), b"old");
    assert_eq!(fs::metadata(&p).unwrap().len(), 3);
    assert!(fs.unsynced().is_empty(), "{:?}", fs.unsynced());
}

#[test]
fn new_file_without_dir_fsync_disappears() {
    let fs = LossyMount::mount_temp("nodirsync").unwrap();
    let p = fs.path().join("data");
    write_synced(&p, b"synced data, entry never synced");
    assert!(fs
        .unsynced()
        .iter()
        .any(|l| l.contains("/data: directory entry not durable")));
    let cut = fs.power_cut();
    assert_eq!(cut.inodes_lost, 1);
    assert!(!p.exists());
    assert_eq!(fs::read_dir(fs.path()).unwrap().count(), 0);
}

#[test]
fn dir_entry_synced_but_data_not_leaves_empty_file() {
    let fs = LossyMount::mount_temp("emptyfile").unwrap();
    let p = fs.path().join("f");
    fs::write(&p, b"data never synced").unwrap();
    fsync_dir(fs.path());
    fs.power_cut();
    assert!(p.exists());
    assert_eq!(fs::metadata(&p).unwrap().len(), 0);
}

#[test]
fn file_and_dir_synced_survive_exactly() {
    let fs = LossyMount::mount_temp("survive").unwrap();
    let sub = fs.path().join("sub");
    fs::create_dir(&sub).unwrap();
    fsync_dir(fs.path());
    let p = sub.join("f");
    let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    write_synced(&p, &data);
    fsync_dir(&sub);
    let ino = fs::metadata(&p).unwrap().ino();
    // Volatile noise after the sync point.
    OpenOptions::new()
        .append(true)
        .open(&p)
        .unwrap()
        .write_all(b"tail")
        .unwrap();
    fs::write(sub.join("other"), b"x").unwrap();
    fs.power_cut();
    assert_eq!(fs::read(&p).unwrap(), data);
    let md = fs::metadata(&p).unwrap();
    assert_eq!(md.len(), 10_000);
    assert_eq!(md.ino(), ino, "inode numbers are stable across a cut");
    assert!(!sub.join("other").exists());
}

#[test]
fn fdatasync_persists_size() {
    let fs = LossyMount::mount_temp("fdatasync").unwrap();
    let p = fs.path().join("log");
    File::create(&p).unwrap();
    fsync_dir(fs.path());
    let f = OpenOptions::new().write(true).open(&p).unwrap();
    f.write_all_at(b"record-1", 0).unwrap();
    f.write_all_at(b"record-2", 8).unwrap();
    f.sync_data().unwrap();
    f.write_all_at(b"record-3", 16).unwrap();
    drop(f);
    let stats = fs.stats();
    assert_eq!(stats.fdatasync, 1);
    assert_eq!(stats.fsyncdir, 1);
    fs.power_cut();
    assert_eq!(fs::read(&p).unwrap(), b"record-1record-2");
}

#[test]
fn rename_over_then_dir_fsync_is_atomic_replace() {
    let fs = LossyMount::mount_temp("rename").unwrap();
    let target = fs.path().join("config");
    write_synced(&target, b"version 1");
    fsync_dir(fs.path());
    let tmp = fs.path().join("config.tmp");
    write_synced(&tmp, b"version 2");
    fs::rename(&tmp, &target).unwrap();
    // Before the directory is synced, a cut brings version 1 back.
    fs.power_cut();
    assert_eq!(fs::read(&target).unwrap(), b"version 1");
    assert!(!tmp.exists());

    write_synced(&tmp, b"version 2");
    fs::rename(&tmp, &target).unwrap();
    fsync_dir(fs.path());
    fs.power_cut();
    assert_eq!(fs::read(&target).unwrap(), b"version 2");
    assert!(!tmp.exists());
    assert_eq!(fs::metadata(&target).unwrap().nlink(), 1);
}

#[test]
fn rename_across_dirs_needs_both_synced() {
    let fs = LossyMount::mount_temp("rename2").unwrap();
    let (a, b) = (fs.path().join("a"), fs.path().join("b"));
    fs::create_dir(&a).unwrap();
    fs::create_dir(&b).unwrap();
    write_synced(&a.join("f"), b"payload");
    fs.sync_all();
    fs::rename(a.join("f"), b.join("g")).unwrap();
    fsync_dir(&b);
    fs.power_cut();
    // Strict per-directory model: only b was synced, so the old name is
    // still on disk too (two links to one inode).
    assert_eq!(fs::read(a.join("f")).unwrap(), b"payload");
    assert_eq!(fs::read(b.join("g")).unwrap(), b"payload");
    assert_eq!(fs::metadata(b.join("g")).unwrap().nlink(), 2);
    fs::remove_file(a.join("f")).unwrap();
    fsync_dir(&a);
    fs.power_cut();
    assert!(!a.join("f").exists());
    assert_eq!(fs::metadata(b.join("g")).unwrap().nlink(), 1);
}

#[test]
fn unsynced_truncate_and_unlink_are_reverted() {
    let fs = LossyMount::mount_temp("truncate").unwrap();
    let p = fs.path().join("t");
    write_synced(&p, &[7u8; 5000]);
    fsync_dir(fs.path());
    OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(10)
        .unwrap();
    assert_eq!(fs::metadata(&p).unwrap().len(), 10);
    fs.power_cut();
    assert_eq!(fs::read(&p).unwrap(), vec![7u8; 5000]);

    fs::remove_file(&p).unwrap();
    assert!(!p.exists());
    fs.power_cut();
    assert_eq!(fs::metadata(&p).unwrap().len(), 5000);

    fs::remove_file(&p).unwrap();
    fsync_dir(fs.path());
    fs.power_cut();
    assert!(!p.exists());
}

#[test]
fn many_files_only_synced_ones_survive() {
    let fs = LossyMount::mount_temp("many").unwrap();
    for i in 0..40 {
        let p = fs.path().join(format!("f{i:02}"));
        if i % 2 == 0 {
            write_synced(&p, format!("file {i}").as_bytes());
        } else {
            fs::write(&p, format!("file {i}")).unwrap();
        }
    }
    fsync_dir(fs.path());
    fs.power_cut();
    let mut names: Vec<String> = fs::read_dir(fs.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 40, "all entries were made durable");
    for i in 0..40 {
        let got = fs::read(fs.path().join(format!("f{i:02}"))).unwrap();
        if i % 2 == 0 {
            assert_eq!(got, format!("file {i}").as_bytes());
        } else {
            assert!(got.is_empty(), "f{i:02} data was never synced");
        }
    }
}

#[test]
fn large_file_sparse_and_offsets() {
    let fs = LossyMount::mount_temp("large").unwrap();
    let p = fs.path().join("big");
    let data: Vec<u8> = (0..4u32 << 20).map(|i| (i ^ (i >> 11)) as u8).collect();
    write_synced(&p, &data);
    fsync_dir(fs.path());
    // Unsynced pwrite in the middle and a sparse write past the end.
    let f = OpenOptions::new().write(true).open(&p).unwrap();
    f.write_all_at(&[0xAA; 100_000], 1_000_000).unwrap();
    f.write_all_at(b"far", 10 << 20).unwrap();
    assert_eq!(f.metadata().unwrap().len(), (10 << 20) + 3);
    let mut hole = [1u8; 16];
    f.read_exact_at(&mut hole, 6 << 20).unwrap_or(());
    drop(f);
    let mut r = File::open(&p).unwrap();
    let mut hole = [1u8; 16];
    r.seek(SeekFrom::Start(6 << 20)).unwrap();
    r.read_exact(&mut hole).unwrap();
    assert_eq!(hole, [0u8; 16], "a hole reads as zeros");
    drop(r);
    let cut = fs.power_cut();
    assert_eq!(cut.bytes_dropped, 100_003);
    let got = fs::read(&p).unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "4 MiB file differs after the cut");
}

#[test]
fn metadata_ops_and_locks_work() {
    let fs = LossyMount::mount_temp("meta").unwrap();
    let p = fs.path().join("m");
    write_synced(&p, b"x");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o600);
    let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
        .unwrap();
    assert_eq!(fs::metadata(&p).unwrap().mtime(), 1_000_000);
    // flock, as sled takes it through fs2: exclusive, non-blocking.
    // SAFETY: plain syscalls on a valid fd.
    unsafe {
        use std::os::fd::AsRawFd;
        assert_eq!(libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB), 0);
        let g = File::open(&p).unwrap();
        assert_eq!(
            libc::flock(g.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB),
            -1
        );
        // fallocate extends the file.
        assert_eq!(libc::fallocate(f.as_raw_fd(), 0, 0, 8192), 0);
    }
    assert_eq!(f.metadata().unwrap().len(), 8192);
    // O_APPEND goes to the end.
    let mut a = OpenOptions::new()
        .append(true)
        .custom_flags(0)
        .open(&p)
        .unwrap();
    a.write_all(b"end").unwrap();
    assert_eq!(fs::metadata(&p).unwrap().len(), 8195);
    // statfs reports a plausible disk.
    let c = std::ffi::CString::new(fs.path().as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid path and out-pointer.
    let st = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        assert_eq!(libc::statvfs(c.as_ptr(), &mut st), 0);
        st
    };
    assert!(st.f_blocks * st.f_frsize >= 1 << 30);
    assert!(st.f_bavail > 0);
    // Symlinks, hard links and readdir.
    std::os::unix::fs::symlink("m", fs.path().join("l")).unwrap();
    assert_eq!(fs::read_link(fs.path().join("l")).unwrap(), Path::new("m"));
    fs::hard_link(&p, fs.path().join("h")).unwrap();
    assert_eq!(fs::metadata(&p).unwrap().nlink(), 2);
    assert_eq!(fs::read_dir(fs.path()).unwrap().count(), 3);
    // Handles that lived through a cut are dead.
    fs.power_cut();
    assert!(f.metadata().is_err() || f.write_at(b"y", 0).is_err());
    assert!(!p.exists());
}

#[test]
fn partial_cut_keeps_a_prefix_of_unsynced_writes() {
    let fs = LossyMount::mount_temp("partial").unwrap();
    let p = fs.path().join("wal");
    File::create(&p).unwrap().sync_all().unwrap();
    fsync_dir(fs.path());
    for seed in 0..8u64 {
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(0).unwrap();
        f.sync_all().unwrap();
        for i in 0..16u8 {
            f.write_all_at(&[i + 1; 1000], u64::from(i) * 1000).unwrap();
        }
        drop(f);
        let cut = fs.power_cut_partial(seed);
        let got = fs::read(&p).unwrap();
        assert_eq!(cut.bytes_kept as usize, got.len());
        for (i, b) in got.iter().enumerate() {
            assert_eq!(*b as usize, i / 1000 + 1, "seed {seed}: not a prefix");
        }
    }
}

#[test]
fn remount_keeps_state() {
    let mut fs = LossyMount::mount_temp("remount").unwrap();
    let p = fs.path().join("keep");
    write_synced(&p, b"durable");
    fsync_dir(fs.path());
    fs.remount().unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"durable");
    let path = fs.path().to_path_buf();
    fs.unmount().unwrap();
    assert!(!path.exists(), "mount_temp removes its directory");
}

#[test]
fn kill_and_cut_a_workload_process_sync_does_not_help() {
    let fs = LossyMount::mount_temp("workload").unwrap();
    let f = fs.path().join("out");
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg("printf data > \"$1\" && sync && echo written && exec sleep 60")
        .arg("sh")
        .arg(&f)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "written\n");
    assert_eq!(fs::read(&f).unwrap(), b"data");
    let cut = fs.kill_and_cut(&mut child).unwrap();
    // sync(1) reaches no FUSE request that persists anything.
    assert_eq!(cut.inodes_lost, 1);
    assert!(!f.exists());
}
