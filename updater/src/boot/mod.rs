//! Boot control: which slot the firmware boots next, with how many tries,
//! and which slot is known good. One trait, four backends:
//!
//! | backend | where it applies | state lives in |
//! | --- | --- | --- |
//! | [`sim::SimFirmware`] | tests, and the qemu harness to come | a JSON "firmware environment" file |
//! | [`grub::Grub`] | x86-64 BIOS/UEFI with GRUB | `grubenv` (`ORDER`, `A_OK`, `A_TRY`, `A_GOOD`, ...) read by `updater/boot/grub.cfg` |
//! | [`uboot::UBoot`] | ARM boards | U-Boot env via `fw_setenv --script` (`boot_slot`, `good_slot`, `upgrade_available`, `bootcount`, `bootlimit`, ...) |
//! | [`systemd_boot::SystemdBoot`] | x86-64 UEFI with systemd-boot | boot-counted entry names `gateway-b+3-0.conf`, order by the `version` generation, never a default entry |
//!
//! The rules every backend keeps (the crash tests check them on the
//! simulated firmware):
//! - a slot gets boot priority only through [`BootControl::set_trial`], which
//!   the installer calls only after the image was read back and verified;
//! - a trial slot is tried at most `tries` times, then the known-good slot
//!   boots; if no slot is left with tries, the last known-good boots anyway
//!   (the lesson of rauc#683);
//! - every change is one atomic write of the boot loader's state.

pub mod grub;
pub mod sim;
pub mod systemd_boot;
pub mod uboot;

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// Tries a freshly installed slot gets: a power blip during one boot does not
/// count as the update failing.
pub const TRIAL_TRIES: u8 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum SlotId {
    A,
    B,
}

impl SlotId {
    pub fn other(self) -> SlotId {
        match self {
            SlotId::A => SlotId::B,
            SlotId::B => SlotId::A,
        }
    }
    pub fn upper(self) -> &'static str {
        match self {
            SlotId::A => "A",
            SlotId::B => "B",
        }
    }
    pub fn lower(self) -> &'static str {
        match self {
            SlotId::A => "a",
            SlotId::B => "b",
        }
    }
    pub fn parse(s: &str) -> Option<SlotId> {
        match s.trim() {
            "a" | "A" => Some(SlotId::A),
            "b" | "B" => Some(SlotId::B),
            _ => None,
        }
    }
}

impl fmt::Display for SlotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.upper())
    }
}

/// What the boot loader thinks of a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "state")]
pub enum BootState {
    /// Committed: boots without counting.
    Good,
    /// On trial: will be tried this many more times.
    Trial { tries_left: u8 },
    /// Not bootable: invalidated, marked bad, or out of tries.
    Bad,
}

impl fmt::Display for BootState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootState::Good => f.write_str("good"),
            BootState::Trial { tries_left } => write!(f, "trial ({tries_left} tries left)"),
            BootState::Bad => f.write_str("bad"),
        }
    }
}

pub trait BootControl {
    fn backend(&self) -> &'static str;
    /// The slot this system is running from.
    fn booted_slot(&self) -> Result<SlotId>;
    fn slot_state(&self, slot: SlotId) -> Result<BootState>;
    /// Install step 1: the slot must not boot until `set_trial`.
    fn mark_invalid(&self, slot: SlotId) -> Result<()>;
    /// Install step 6: boot `slot` next, for at most `tries` attempts, then
    /// fall back to the known-good slot. One atomic write.
    fn set_trial(&self, slot: SlotId, tries: u8) -> Result<()>;
    /// Install step 9: commit the running slot.
    fn mark_good(&self, slot: SlotId) -> Result<()>;
    /// Health check failed, or the trial never came up: never boot it again.
    fn mark_bad(&self, slot: SlotId) -> Result<()>;
}

/// Reads `updater.slot=a|b` from a kernel command line (`/proc/cmdline`).
/// Every real backend's boot configuration passes it.
pub fn slot_from_cmdline(path: &Path) -> Result<SlotId> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, "read", e))?;
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("updater.slot="))
        .and_then(SlotId::parse)
        .ok_or_else(|| Error::Boot {
            backend: "cmdline",
            msg: format!(
                "{}: no updater.slot=a|b on the kernel command line; the boot entry must pass it",
                path.display()
            ),
        })
}
