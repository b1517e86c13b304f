//! systemd-boot backend (UEFI), using systemd's Automatic Boot Assessment:
//! each slot has one entry in `$ESP/loader/entries/`, named `gateway-a.conf`
//! when committed and `gateway-a+LEFT-DONE.conf` while counted. systemd-boot
//! decrements LEFT (renaming the file) before each boot of a counted entry and
//! sorts entries with LEFT = 0 last, so they still boot when nothing else is
//! left (rauc#683).
//!
//! **No default entry is ever configured** (no `bootctl set-default`, no
//! `LoaderEntryDefault`, no `default` in loader.conf): systemd-boot 252 keeps
//! booting an entry with 0 tries left when a configured default matches it
//! (systemd#15256), so a trial whose kernel never reaches userspace would
//! never fall back. Which slot boots is decided by sort order alone: every
//! entry carries `sort-key clinic-gateway` and a `version` line holding a
//! generation number, and among entries with tries left systemd-boot boots
//! the highest version first. `set_trial` gives the trial slot the other
//! slot's generation + 1, so it boots first while it has tries, and after
//! `mark_good` (which only drops the counter) it stays first. A slot marked
//! bad or out of tries sorts last, behind the committed slot.
//!
//! Each change is one rename, or (`set_trial`) a content replacement by
//! rename over the same name followed by one rename to the counted name:
//! at any power cut exactly one entry file exists per slot.
//!
//! `set_trial` also puts the slot's kernel and initramfs on the ESP
//! (`EFI/PREFIX/SLOT/vmlinuz`, `initrd.img`), copied out of the slot image
//! that was just verified (see [`BootFiles`]), before the entry may be tried:
//! the slot's entry has 0 tries while they are written, so a power cut
//! during the copy leaves the committed slot booting.

use super::{slot_from_cmdline, BootControl, BootState, SlotId};
use crate::durable::{create_dir_all, rename_synced, sync_dir};
use crate::{Error, Result};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub struct SystemdBoot {
    /// `$ESP/loader/entries`.
    pub entries_dir: PathBuf,
    /// Entry name prefix: `gateway` gives `gateway-a.conf`.
    pub prefix: String,
    /// Unused since boot order no longer goes through EFI variables (kept so
    /// `[boot] bootctl =` in existing configurations still parses).
    pub bootctl: PathBuf,
    pub cmdline: PathBuf,
}

fn err(msg: String) -> Error {
    Error::Boot {
        backend: "systemd-boot",
        msg,
    }
}

/// Splits `gateway-a+2-1.conf` into (`gateway-a`, Some((2, 1))).
pub fn parse_entry_name(file: &str) -> Option<(String, Option<(u8, u8)>)> {
    let stem = file.strip_suffix(".conf")?;
    match stem.rsplit_once('+') {
        None => Some((stem.to_string(), None)),
        Some((id, counter)) => {
            let (left, done) = match counter.split_once('-') {
                Some((l, d)) => (l.parse().ok()?, d.parse().ok()?),
                None => (counter.parse().ok()?, 0),
            };
            Some((id.to_string(), Some((left, done))))
        }
    }
}

/// The generation in an entry's `version` line (0 when there is none).
pub fn entry_generation(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("version"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// `text` with its `version` line set to `generation` (added if missing) and
/// any `sort-key` line replaced by `clinic-gateway`.
pub fn with_generation(text: &str, generation: u64) -> String {
    let mut out: Vec<String> = text
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            !(t.starts_with("version") || t.starts_with("sort-key"))
        })
        .map(str::to_string)
        .collect();
    let at = out
        .iter()
        .position(|l| l.starts_with("title"))
        .map_or(0, |i| i + 1);
    out.insert(at, format!("version {generation}"));
    out.insert(at, "sort-key clinic-gateway".to_string());
    let mut s = out.join("\n");
    s.push('\n');
    s
}

/// True when an entry names something to boot (`linux`, or a UKI as `efi`).
/// An empty or cut entry does not, and systemd-boot skips it.
pub fn entry_bootable(text: &str) -> bool {
    text.lines().any(|l| {
        let t = l.trim_start();
        t.starts_with("linux ") || t.starts_with("efi ")
    })
}

/// `slot`'s entry made from the `other` slot's (the running slot's, which
/// booted): every `PREFIX-OTHER` (partition label), `/PREFIX/OTHER/` (kernel
/// and initramfs directory), `updater.slot=OTHER` and `(slot OTHER)` become
/// the slot's own. For a damaged entry, so that the next trial can boot.
pub fn entry_from_other(other_text: &str, prefix: &str, other: SlotId, slot: SlotId) -> String {
    let (o, n) = (other.lower(), slot.lower());
    other_text
        .replace(&format!("{prefix}-{o}"), &format!("{prefix}-{n}"))
        .replace(&format!("/{prefix}/{o}/"), &format!("/{prefix}/{n}/"))
        .replace(&format!("updater.slot={o}"), &format!("updater.slot={n}"))
        .replace(
            &format!("(slot {})", o.to_ascii_uppercase()),
            &format!("(slot {})", n.to_ascii_uppercase()),
        )
}

/// Where a slot image keeps its kernel and initramfs (written by
/// `image/build`): the root filesystem (erofs) comes first, padded to 1 MiB;
/// then a 4 KiB header `CGWBOOT1\n{json}` with the absolute offset, length
/// and SHA-256 of `kernel` and `initrd`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct BootFiles {
    pub kernel: BootFile,
    pub initrd: BootFile,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct BootFile {
    pub offset: u64,
    pub length: u64,
    pub sha256: String,
}

const EROFS_MAGIC: u32 = 0xE0F5_E1E2;
const BOOT_MAGIC: &[u8] = b"CGWBOOT1\n";

impl BootFiles {
    /// Finds the header after the erofs filesystem at the start of `dev`.
    /// `Ok(None)`: not an image with boot files (e.g. a plain filesystem).
    pub fn locate(dev: &mut (impl Read + Seek)) -> std::io::Result<Option<BootFiles>> {
        let mut sb = [0u8; 128];
        dev.seek(SeekFrom::Start(1024))?;
        dev.read_exact(&mut sb)?;
        if u32::from_le_bytes([sb[0], sb[1], sb[2], sb[3]]) != EROFS_MAGIC {
            return Ok(None);
        }
        let blkszbits = u32::from(sb[12]);
        let blocks = u64::from(u32::from_le_bytes([sb[36], sb[37], sb[38], sb[39]]));
        if !(9..=16).contains(&blkszbits) {
            return Ok(None);
        }
        let fs_len = blocks << blkszbits;
        let header_at = fs_len.div_ceil(1 << 20) * (1 << 20);
        let mut header = [0u8; 4096];
        dev.seek(SeekFrom::Start(header_at))?;
        dev.read_exact(&mut header)?;
        let Some(json) = header.strip_prefix(BOOT_MAGIC) else {
            return Ok(None);
        };
        let end = json
            .iter()
            .position(|&b| b == b'\n' || b == 0)
            .unwrap_or(json.len());
        serde_json::from_slice(&json[..end])
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}

impl SystemdBoot {
    fn id(&self, slot: SlotId) -> String {
        format!("{}-{}", self.prefix, slot.lower())
    }

    /// The ESP's root (`entries_dir` is `$ESP/loader/entries`).
    fn esp(&self) -> Option<&Path> {
        self.entries_dir.parent()?.parent()
    }

    /// The slot's partition, by the label the image gives it.
    fn slot_device(&self, slot: SlotId) -> PathBuf {
        PathBuf::from(format!("/dev/disk/by-partlabel/{}", self.id(slot)))
    }

    /// The current file of `slot`'s entry and its counter.
    fn entry(&self, slot: SlotId) -> Result<(PathBuf, Option<(u8, u8)>)> {
        let want = self.id(slot);
        let rd = std::fs::read_dir(&self.entries_dir)
            .map_err(|e| Error::io(&self.entries_dir, "list boot entries", e))?;
        for e in rd {
            let e = e.map_err(|e| Error::io(&self.entries_dir, "list boot entries", e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some((id, counter)) = parse_entry_name(&name) {
                if id == want {
                    return Ok((e.path(), counter));
                }
            }
        }
        Err(err(format!(
            "{}: no entry {want}.conf (or {want}+N-M.conf); the image must install one per slot",
            self.entries_dir.display()
        )))
    }

    fn generation(&self, slot: SlotId) -> Result<u64> {
        let (p, _) = self.entry(slot)?;
        let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, "read boot entry", e))?;
        Ok(entry_generation(&text))
    }

    fn rename(&self, slot: SlotId, counter: Option<(u8, u8)>) -> Result<()> {
        let (from, _) = self.entry(slot)?;
        let name = match counter {
            None => format!("{}.conf", self.id(slot)),
            Some((l, d)) => format!("{}+{l}-{d}.conf", self.id(slot)),
        };
        let to = self.entries_dir.join(name);
        if from == to {
            return sync_dir(&self.entries_dir);
        }
        rename_synced(&from, &to)
    }

    /// Replaces the content of `slot`'s entry (same name) by write + fsync +
    /// rename over it.
    fn rewrite(&self, slot: SlotId, text: &str) -> Result<()> {
        let (path, _) = self.entry(slot)?;
        let tmp = self.entries_dir.join(format!(".{}.tmp", self.id(slot)));
        write_synced(&tmp, text.as_bytes())?;
        rename_synced(&tmp, &path)
    }

    /// Copies the slot's kernel and initramfs from its partition to
    /// `$ESP/EFI/PREFIX/SLOT/`, each verified against the image's header.
    /// Nothing to do when the partition is not there (tests) or carries no
    /// boot files (an image that boots some other way).
    fn stage_boot_files(&self, slot: SlotId) -> Result<()> {
        let dev_path = self.slot_device(slot);
        let Some(esp) = self.esp() else {
            return Ok(());
        };
        let Ok(mut dev) = std::fs::File::open(&dev_path) else {
            return Ok(());
        };
        let files = BootFiles::locate(&mut dev)
            .map_err(|e| Error::io(&dev_path, "read the boot files header", e))?;
        let Some(files) = files else {
            return Ok(());
        };
        let dir = esp.join("EFI").join(&self.prefix).join(slot.lower());
        create_dir_all(&dir)?;
        for (name, f) in [("vmlinuz", &files.kernel), ("initrd.img", &files.initrd)] {
            if f.length > 512 << 20 {
                return Err(err(format!(
                    "{}: {name} of {} bytes is implausible",
                    dev_path.display(),
                    f.length
                )));
            }
            let mut buf = vec![0u8; f.length as usize];
            dev.seek(SeekFrom::Start(f.offset))
                .and_then(|_| dev.read_exact(&mut buf))
                .map_err(|e| Error::io(&dev_path, "read boot file", e))?;
            if crate::hash::to_hex(&crate::hash::sha256(&buf)) != f.sha256 {
                return Err(err(format!(
                    "{}: {name} does not match its SHA-256 in the image header; the slot stays untried",
                    dev_path.display()
                )));
            }
            let tmp = dir.join(format!("{name}.new"));
            write_synced(&tmp, &buf)?;
            rename_synced(&tmp, &dir.join(name))?;
        }
        Ok(())
    }
}

fn write_synced(path: &Path, data: &[u8]) -> Result<()> {
    let mut f = std::fs::File::create(path).map_err(|e| Error::io(path, "create", e))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(path, "write", e))
}

impl BootControl for SystemdBoot {
    fn backend(&self) -> &'static str {
        "systemd-boot"
    }
    fn booted_slot(&self) -> Result<SlotId> {
        slot_from_cmdline(&self.cmdline)
    }
    fn slot_state(&self, slot: SlotId) -> Result<BootState> {
        let (path, counter) = self.entry(slot)?;
        Ok(match counter {
            None => BootState::Good,
            Some((0, _)) => BootState::Bad,
            // Tries left, but nothing systemd-boot could boot (an entry a
            // power cut emptied): it will never be tried.
            Some(_) if !std::fs::read_to_string(&path).is_ok_and(|t| entry_bootable(&t)) => {
                BootState::Bad
            }
            Some((l, _)) => BootState::Trial { tries_left: l },
        })
    }
    fn mark_invalid(&self, slot: SlotId) -> Result<()> {
        // Out of tries: sorted last, behind the committed slot.
        self.rename(slot, Some((0, 0)))
    }
    fn set_trial(&self, slot: SlotId, tries: u8) -> Result<()> {
        // The entry still has 0 tries (step 1) while its boot files change.
        self.stage_boot_files(slot)?;
        let (path, _) = self.entry(slot)?;
        let mut text =
            std::fs::read_to_string(&path).map_err(|e| Error::io(&path, "read boot entry", e))?;
        if !entry_bootable(&text) {
            // Damaged (emptied by a power cut on an older updater, or by
            // hand): rebuilt from the running slot's entry, which booted.
            let (other, _) = self.entry(slot.other())?;
            let other_text = std::fs::read_to_string(&other)
                .map_err(|e| Error::io(&other, "read boot entry", e))?;
            if !entry_bootable(&other_text) {
                return Err(err(format!(
                    "{} and {} name no kernel (no `linux` line): the ESP needs repair",
                    path.display(),
                    other.display()
                )));
            }
            text = entry_from_other(&other_text, &self.prefix, slot.other(), slot);
        }
        let generation = self.generation(slot.other()).unwrap_or(0) + 1;
        self.rewrite(slot, &with_generation(&text, generation))?;
        self.rename(slot, Some((tries, 0)))
    }
    fn mark_good(&self, slot: SlotId) -> Result<()> {
        self.rename(slot, None)
    }
    fn mark_bad(&self, slot: SlotId) -> Result<()> {
        self.rename(slot, Some((0, 0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names() {
        assert_eq!(
            parse_entry_name("gateway-b+3-0.conf"),
            Some(("gateway-b".into(), Some((3, 0))))
        );
        assert_eq!(
            parse_entry_name("gateway-a.conf"),
            Some(("gateway-a".into(), None))
        );
        assert_eq!(
            parse_entry_name("gateway-a+2.conf"),
            Some(("gateway-a".into(), Some((2, 0))))
        );
        assert_eq!(parse_entry_name("x.txt"), None);
    }

    #[test]
    fn generations() {
        let t = "title A\nversion 4\nlinux /x\n";
        assert_eq!(entry_generation(t), 4);
        let u = with_generation(t, 9);
        assert_eq!(entry_generation(&u), 9);
        assert!(
            u.starts_with("title A\nsort-key clinic-gateway\nversion 9\n"),
            "{u}"
        );
        assert_eq!(u.matches("version").count(), 1);
        assert_eq!(entry_generation("title B\n"), 0);
    }

    fn boot(d: &Path) -> SystemdBoot {
        let entries = d.join("loader/entries");
        std::fs::create_dir_all(&entries).unwrap();
        std::fs::write(
            entries.join("gateway-a.conf"),
            "title A\nversion 1\nlinux /EFI/gateway/a/vmlinuz\n",
        )
        .unwrap();
        std::fs::write(
            entries.join("gateway-b+0-0.conf"),
            "title B\nversion 0\nlinux /EFI/gateway/b/vmlinuz\n",
        )
        .unwrap();
        std::fs::write(d.join("cmdline"), "ro updater.slot=a quiet\n").unwrap();
        SystemdBoot {
            entries_dir: entries,
            prefix: "gateway".into(),
            bootctl: "bootctl-must-not-run".into(),
            cmdline: d.join("cmdline"),
        }
    }

    fn names(d: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d.join("loader/entries"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// The whole cycle without any EFI variable: the trial gets a higher
    /// generation than the committed slot, keeps it when committed, and the
    /// next trial (the other slot) goes one higher again.
    #[test]
    fn trial_commit_and_next_trial_by_generation_only() {
        let d = tempfile::tempdir().unwrap();
        let sb = boot(d.path());
        assert_eq!(sb.slot_state(SlotId::B).unwrap(), BootState::Bad);
        sb.mark_invalid(SlotId::B).unwrap();
        sb.set_trial(SlotId::B, 3).unwrap();
        assert_eq!(names(d.path()), ["gateway-a.conf", "gateway-b+3-0.conf"]);
        assert_eq!(sb.generation(SlotId::B).unwrap(), 2);
        assert_eq!(
            sb.slot_state(SlotId::B).unwrap(),
            BootState::Trial { tries_left: 3 }
        );
        // systemd-boot counts one attempt by renaming.
        let e = d.path().join("loader/entries");
        std::fs::rename(e.join("gateway-b+3-0.conf"), e.join("gateway-b+2-1.conf")).unwrap();
        sb.mark_good(SlotId::B).unwrap();
        assert_eq!(names(d.path()), ["gateway-a.conf", "gateway-b.conf"]);
        assert_eq!(sb.slot_state(SlotId::B).unwrap(), BootState::Good);
        // Next update goes to A, which must then outrank B.
        sb.mark_invalid(SlotId::A).unwrap();
        assert_eq!(sb.slot_state(SlotId::A).unwrap(), BootState::Bad);
        sb.set_trial(SlotId::A, 3).unwrap();
        assert_eq!(sb.generation(SlotId::A).unwrap(), 3);
        sb.mark_bad(SlotId::A).unwrap();
        assert_eq!(names(d.path()), ["gateway-a+0-0.conf", "gateway-b.conf"]);
        // No temporary file left behind, and no bootctl was needed.
        assert!(std::fs::read_dir(&e).unwrap().all(|f| !f
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with('.')));
    }

    /// An entry a power cut emptied: while counted it is not a trial that
    /// waits (systemd-boot skips it), and the next trial rebuilds it from
    /// the running slot's entry.
    #[test]
    fn an_emptied_entry_is_bad_and_the_next_trial_rebuilds_it() {
        let d = tempfile::tempdir().unwrap();
        let sb = boot(d.path());
        let e = d.path().join("loader/entries");
        std::fs::write(
            e.join("gateway-a.conf"),
            "title Clinic Gateway (slot A)\nversion 1\nlinux /EFI/gateway/a/vmlinuz\n\
             options root=PARTLABEL=gateway-a ro updater.slot=a quiet\n",
        )
        .unwrap();
        std::fs::remove_file(e.join("gateway-b+0-0.conf")).unwrap();
        std::fs::write(e.join("gateway-b+3-0.conf"), "").unwrap();
        assert_eq!(sb.slot_state(SlotId::B).unwrap(), BootState::Bad);
        sb.mark_invalid(SlotId::B).unwrap();
        sb.set_trial(SlotId::B, 3).unwrap();
        let text = std::fs::read_to_string(e.join("gateway-b+3-0.conf")).unwrap();
        assert_eq!(
            text,
            "title Clinic Gateway (slot B)\nsort-key clinic-gateway\nversion 2\n\
             linux /EFI/gateway/b/vmlinuz\noptions root=PARTLABEL=gateway-b ro updater.slot=b quiet\n"
        );
        assert_eq!(
            sb.slot_state(SlotId::B).unwrap(),
            BootState::Trial { tries_left: 3 }
        );
        // Both damaged: refused, naming the ESP.
        std::fs::write(e.join("gateway-a.conf"), "").unwrap();
        std::fs::write(e.join("gateway-b+3-0.conf"), "").unwrap();
        let msg = sb.set_trial(SlotId::B, 3).unwrap_err().to_string();
        assert!(msg.contains("the ESP needs repair"), "{msg}");
    }

    #[test]
    fn boot_files_header_after_the_erofs_filesystem() {
        // A fake erofs superblock: 4 KiB blocks, 300 blocks (1.17 MiB) -> header at 2 MiB.
        let mut img = vec![0u8; 3 << 20];
        img[1024..1028].copy_from_slice(&EROFS_MAGIC.to_le_bytes());
        img[1024 + 12] = 12;
        img[1024 + 36..1024 + 40].copy_from_slice(&300u32.to_le_bytes());
        let h = b"CGWBOOT1\n{\"version\":\"1\",\"kernel\":{\"offset\":2101248,\"length\":3,\"sha256\":\"ab\"},\"initrd\":{\"offset\":2105344,\"length\":4,\"sha256\":\"cd\"}}\n";
        img[2 << 20..(2 << 20) + h.len()].copy_from_slice(h);
        let f = BootFiles::locate(&mut std::io::Cursor::new(&img))
            .unwrap()
            .unwrap();
        assert_eq!(
            f.kernel,
            BootFile {
                offset: 2101248,
                length: 3,
                sha256: "ab".into()
            }
        );
        assert_eq!(f.initrd.length, 4);
        // Not erofs: no boot files.
        assert_eq!(
            BootFiles::locate(&mut std::io::Cursor::new(vec![0u8; 8192])).unwrap(),
            None
        );
    }
}
