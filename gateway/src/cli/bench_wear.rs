//! Flash wear: bytes the block device actually received, from its own
//! `/proc/diskstats` line (sectors written are 512-byte units whatever the
//! device's sector size). Meant for a dedicated device (a loop device with
//! its own filesystem, see docs/benchmarks.md): a shared disk is never quiet.

use std::os::fd::AsRawFd;
use std::path::Path;

pub struct Device {
    name: String,
}

impl Device {
    /// `name` as in /proc/diskstats, e.g. `loop7`; checked now so a typo
    /// fails before any load runs.
    pub fn new(name: &str) -> Result<Device, String> {
        let d = Device {
            name: name.trim_start_matches("/dev/").to_string(),
        };
        d.bytes_written()?;
        Ok(d)
    }

    /// Bytes written to the device since it appeared.
    pub fn bytes_written(&self) -> Result<u64, String> {
        let stats = std::fs::read_to_string("/proc/diskstats")
            .map_err(|e| format!("/proc/diskstats: {e}"))?;
        sectors_written(&stats, &self.name).map(|s| s * 512).ok_or_else(|| format!(
            "/proc/diskstats has no line for block device {:?}: give the name of the device that holds --dir (e.g. loop7; see `losetup -a`)",
            self.name
        ))
    }
}

/// The sectors-written field (the 10th) of `name`'s line.
fn sectors_written(diskstats: &str, name: &str) -> Option<u64> {
    diskstats.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.get(2) == Some(&name))
            .then(|| f.get(9).and_then(|s| s.parse().ok()))
            .flatten()
    })
}

/// Write back everything dirty on the filesystem holding `dir`, so what a
/// case wrote is counted in that case.
pub fn settle(dir: &Path) -> Result<(), String> {
    let f = std::fs::File::open(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    nix::unistd::syncfs(f.as_raw_fd()).map_err(|e| format!("syncfs {}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::sectors_written;

    #[test]
    fn reads_the_sectors_written_of_the_named_device_only() {
        let stats = "   7       7 loop7 120 0 2040 11 3300 120 52800 900 0 800 911 0 0 0 0\n \
                     253       0 vda 9 1 2 3 4 5 999 7 8 9 10\n";
        assert_eq!(sectors_written(stats, "loop7"), Some(52800));
        assert_eq!(sectors_written(stats, "vda"), Some(999));
        assert_eq!(sectors_written(stats, "loop1"), None);
        assert_eq!(sectors_written("   7 7 loop7 1 2\n", "loop7"), None);
    }
}
