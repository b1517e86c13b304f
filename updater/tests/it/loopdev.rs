//! Real block devices: a disk image with a GPT made by `sfdisk` (partitions
//! `gateway-a`, `gateway-b`), attached with `losetup -P`; the slot backend
//! writes, fsyncs and reads back the partitions' block devices. Where the
//! machine does not allow it (not root, no loop devices, no sfdisk) the test
//! fails under `CI=true` and says SKIPPED elsewhere.

use crate::support::tools::{require_root, require_tool, unavailable};
use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use updater::boot::SlotId;
use updater::install::SlotPaths;
use updater::slot::{FileSlot, SlotDevice};

struct Loop {
    dev: String,
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

/// The partition's block device: the kernel's node if devtmpfs made one,
/// else a node made here from its sysfs major:minor.
fn partition_node(dev: &str, n: u32, scratch: &Path) -> Option<PathBuf> {
    let base = Path::new(dev).file_name()?.to_string_lossy().into_owned();
    let name = format!("{base}p{n}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let sys = PathBuf::from(format!("/sys/block/{base}/{name}/dev"));
    loop {
        let node = PathBuf::from(format!("/dev/{name}"));
        if node.exists() {
            return Some(node);
        }
        if let Ok(mm) = std::fs::read_to_string(&sys) {
            let (ma, mi) = mm.trim().split_once(':')?;
            let node = scratch.join(&name);
            let ok = Command::new("mknod")
                .arg(&node)
                .arg("b")
                .arg(ma)
                .arg(mi)
                .status()
                .is_ok_and(|s| s.success());
            return ok.then_some(node);
        }
        if Instant::now() > deadline {
            return None;
        }
        let _ = Command::new("partx").arg("-u").arg(dev).status();
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn v1() -> Vec<u8> {
    image(&[1, 2, 3, 4, 5], 700)
}
fn v2() -> Vec<u8> {
    image(&[1, 2, 30, 40, 50, 60], 900)
}

#[test]
fn install_onto_gpt_partitions_of_a_loop_device() {
    if !require_root("losetup") {
        return;
    }
    for (tool, package) in [
        ("losetup", "mount"),
        ("sfdisk", "fdisk"),
        ("mknod", "coreutils"),
    ] {
        if !require_tool(tool, package) {
            return;
        }
    }
    let d = tempfile::tempdir().unwrap();
    let disk = d.path().join("disk.img");
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    let mut sf = Command::new("sfdisk")
        .arg("-q")
        .arg(&disk)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    sf.stdin
        .take()
        .unwrap()
        .write_all(b"label: gpt\nsize=2MiB, name=gateway-a\nsize=2MiB, name=gateway-b\n")
        .unwrap();
    assert!(sf.wait().unwrap().success(), "sfdisk failed");
    let out = Command::new("losetup")
        .args(["--find", "--show", "--partscan"])
        .arg(&disk)
        .output()
        .unwrap();
    if !out.status.success() {
        unavailable(
            &format!(
                "losetup could not attach a loop device: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            "load the loop module (modprobe loop) or run where /dev/loop-control exists",
        );
        return;
    }
    let lo = Loop {
        dev: String::from_utf8_lossy(&out.stdout).trim().to_string(),
    };
    let (Some(pa), Some(pb)) = (
        partition_node(&lo.dev, 1, d.path()),
        partition_node(&lo.dev, 2, d.path()),
    ) else {
        unavailable(
            &format!("the kernel showed no partitions for {}", lo.dev),
            "run where loop devices get partition nodes (losetup --partscan)",
        );
        return;
    };
    eprintln!("slots on {}: {} and {}", lo.dev, pa.display(), pb.display());

    // The backend sees a block device of the partition's size.
    let a = FileSlot::open(&pa).unwrap();
    assert_eq!(a.size(), 2 << 20);
    drop(a);

    // Slot A holds v1, as a factory image would.
    let mut a = FileSlot::open(&pa).unwrap();
    a.write_at(0, &v1()).unwrap();
    a.sync().unwrap();
    drop(a);

    let repo = Repo::new(1, 1);
    repo.add("gw-2.0.img", &v2(), "2.0", 1);
    repo.sign_publish();
    let mut dev = Device::new(&repo.root(), &v1(), "1.0", 1, 64 * 1024);
    dev.slots = SlotPaths {
        a: pa.clone(),
        b: pb.clone(),
    };
    let s = install_from_dir(&dev, &repo, "gw-2.0.img", hours(t0(), 1)).unwrap();
    assert_eq!((s.chunks_copied, s.chunks_downloaded), (2, 4), "{s:?}");

    // Read back through a fresh open of the partition, and through the
    // whole loop device at the GPT offset (sector 2048 + 4096 for p2).
    let mut b = FileSlot::open_read_only(&pb).unwrap();
    let mut buf = vec![0u8; v2().len()];
    b.read_at(0, &mut buf).unwrap();
    assert!(buf == v2(), "partition B does not hold v2");
    let mut whole = FileSlot::open_read_only(Path::new(&lo.dev)).unwrap();
    whole.read_at((2048 + 4096) * 512, &mut buf).unwrap();
    assert!(buf == v2(), "v2 is not at partition B's offset on the disk");
    let mut abuf = vec![0u8; v1().len()];
    whole.read_at(2048 * 512, &mut abuf).unwrap();
    assert!(abuf == v1(), "partition A was modified");
    assert_eq!(dev.firmware().env().unwrap().order[0], SlotId::B);
}
