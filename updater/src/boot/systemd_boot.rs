//! systemd-boot backend (x86-64 UEFI), using systemd's Automatic Boot
//! Assessment: each slot has one entry in `$ESP/loader/entries/`, named
//! `gateway-a.conf` when committed and `gateway-a+LEFT-DONE.conf` while
//! counted. systemd-boot decrements LEFT (renaming the file) before each boot
//! of a counted entry and sorts entries with LEFT = 0 last, so they still
//! boot when nothing else is left (rauc#683). After `boot-complete.target`
//! (which `updater-health.service` is ordered before),
//! `systemd-bless-boot.service` would rename the entry to drop the counter;
//! `mark_good` does the same rename itself, so it works whether or not that
//! unit is enabled.
//!
//! Which entry boots first is set with `bootctl set-default ID` (the EFI
//! variable `LoaderEntryDefault`); entry ids carry no counter.

use super::{slot_from_cmdline, BootControl, BootState, SlotId};
use crate::durable::sync_dir;
use crate::{Error, Result};
use std::path::PathBuf;
use std::process::Command;

pub struct SystemdBoot {
    /// `$ESP/loader/entries`.
    pub entries_dir: PathBuf,
    /// Entry name prefix: `gateway` gives `gateway-a.conf`.
    pub prefix: String,
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

impl SystemdBoot {
    fn id(&self, slot: SlotId) -> String {
        format!("{}-{}", self.prefix, slot.lower())
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

    fn rename(&self, slot: SlotId, counter: Option<(u8, u8)>) -> Result<()> {
        let (from, _) = self.entry(slot)?;
        let name = match counter {
            None => format!("{}.conf", self.id(slot)),
            Some((l, d)) => format!("{}+{l}-{d}.conf", self.id(slot)),
        };
        let to = self.entries_dir.join(name);
        if from != to {
            std::fs::rename(&from, &to).map_err(|e| Error::io(&from, "rename boot entry", e))?;
        }
        sync_dir(&self.entries_dir)
    }

    fn set_default(&self, slot: SlotId) -> Result<()> {
        let id = format!("{}.conf", self.id(slot));
        let out = Command::new(&self.bootctl)
            .arg("set-default")
            .arg(&id)
            .output()
            .map_err(|e| Error::io(&self.bootctl, "run", e))?;
        if !out.status.success() {
            return Err(err(format!(
                "{} set-default {id} failed: {}",
                self.bootctl.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }
}

impl BootControl for SystemdBoot {
    fn backend(&self) -> &'static str {
        "systemd-boot"
    }
    fn booted_slot(&self) -> Result<SlotId> {
        slot_from_cmdline(&self.cmdline)
    }
    fn slot_state(&self, slot: SlotId) -> Result<BootState> {
        Ok(match self.entry(slot)?.1 {
            None => BootState::Good,
            Some((0, _)) => BootState::Bad,
            Some((l, _)) => BootState::Trial { tries_left: l },
        })
    }
    fn mark_invalid(&self, slot: SlotId) -> Result<()> {
        // Out of tries: sorted last, never the default.
        self.set_default(slot.other())?;
        self.rename(slot, Some((0, 0)))
    }
    fn set_trial(&self, slot: SlotId, tries: u8) -> Result<()> {
        self.rename(slot, Some((tries, 0)))?;
        self.set_default(slot)
    }
    fn mark_good(&self, slot: SlotId) -> Result<()> {
        self.rename(slot, None)?;
        self.set_default(slot)
    }
    fn mark_bad(&self, slot: SlotId) -> Result<()> {
        self.set_default(slot.other())?;
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
}
