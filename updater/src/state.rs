//! The updater's durable state (`STATE_DIR/state.json`), replaced
//! atomically on every change. It records what the boot loader cannot: what
//! each slot holds, the epoch floor, the install in progress and its phase,
//! the last check and the last outcome.

use crate::boot::SlotId;
use crate::durable::{read_json, write_json, Files};
use crate::Result;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What a slot holds, as far as the updater knows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotInfo {
    pub version: Option<String>,
    pub epoch: Option<u64>,
    pub sha256: Option<String>,
    /// Image length in bytes (bounds the delta index of this slot).
    #[serde(default)]
    pub length: Option<u64>,
    /// Read back and verified against signed metadata (install step 4).
    pub verified: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Steps 1–3: the slot is invalidated and being written.
    Writing,
    /// Steps 4–5: read back and verified; not yet bootable.
    Verified,
    /// Step 6: boots next for a trial; waiting for reboot and health.
    Trial,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub slot: SlotId,
    pub target: String,
    pub version: String,
    pub epoch: u64,
    pub sha256: String,
    pub phase: Phase,
    /// Earliest expiry of the metadata this install verified (caps the
    /// clock's "last saved good time").
    pub meta_expires: Timestamp,
    pub chunks_done: u64,
    pub chunks_total: u64,
    pub bytes_downloaded: u64,
    pub bytes_copied: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub at: Timestamp,
    pub ok: bool,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub epoch_floor: u64,
    pub a: SlotInfo,
    pub b: SlotInfo,
    pub pending: Option<Pending>,
    pub last_check: Option<Record>,
    pub last_install: Option<Record>,
    /// Targets (by SHA-256) that failed their trial: not offered again.
    #[serde(default)]
    pub failed: Vec<String>,
    /// When this device may install the offered target, if a wave holds it back.
    pub wave_wait: Option<WaveWait>,
    /// Boot id when the pending slot was set to trial: health checks in the
    /// same boot know no reboot has happened yet.
    #[serde(default)]
    pub staged_boot_id: Option<String>,
    /// "Last saved good time": trusted time of the last commit.
    #[serde(default)]
    pub last_good_time: Option<Timestamp>,
    /// Post-commit commands still to run for a committed slot.
    #[serde(default)]
    pub after_commit: Option<AfterCommit>,
    /// Signed configuration targets (`config_apply`).
    #[serde(default)]
    pub config: ConfigState,
}

/// `[health] after_commit` commands owed to a committed slot: saved with
/// the commit, each removed once it exited 0; what is left runs again at
/// the next boot of that slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AfterCommit {
    pub slot: SlotId,
    pub version: String,
    pub remaining: Vec<Vec<String>>,
    /// How the last attempt failed.
    pub last_error: Option<String>,
    pub attempts: u32,
}

/// The box's configuration as delivered by signed config targets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigState {
    /// The config target running now (none: the provisioned config).
    pub applied: Option<AppliedConfig>,
    /// A config being applied: the files may be swapped in and the gateway
    /// restarted; health decides (a power cut resumes it at the next boot).
    pub pending: Option<PendingConfig>,
    /// Config targets (by SHA-256) that failed here: not applied again.
    #[serde(default)]
    pub failed: Vec<String>,
    /// The last outcome.
    pub last: Option<Record>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedConfig {
    pub version: u64,
    pub scope: crate::config_target::Scope,
    pub sha256: String,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingConfig {
    pub version: u64,
    pub scope: crate::config_target::Scope,
    pub sha256: String,
    pub phase: ConfigPhase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigPhase {
    /// The previous files are backed up; the new ones are being put in place.
    Swapping,
    /// In place; the gateway restarted with them; the health check decides.
    Checking,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveWait {
    pub target: String,
    pub version: String,
    pub until: Option<Timestamp>,
    /// This device's place in the rollout, in hundredths of a percent.
    pub position_bp: u32,
}

impl State {
    pub fn slot(&self, s: SlotId) -> &SlotInfo {
        match s {
            SlotId::A => &self.a,
            SlotId::B => &self.b,
        }
    }
    pub fn slot_mut(&mut self, s: SlotId) -> &mut SlotInfo {
        match s {
            SlotId::A => &mut self.a,
            SlotId::B => &mut self.b,
        }
    }
}

/// Where the state lives, and the file abstraction it is written through.
pub struct Store<'a> {
    pub dir: PathBuf,
    pub files: &'a dyn Files,
}

impl<'a> Store<'a> {
    pub fn new(dir: &Path, files: &'a dyn Files) -> Self {
        Store {
            dir: dir.to_path_buf(),
            files,
        }
    }
    pub fn path(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    pub fn load(&self) -> Result<State> {
        Ok(read_json(self.files, &self.path())?.unwrap_or_default())
    }
    pub fn save(&self, s: &State) -> Result<()> {
        write_json(self.files, &self.path(), s)
    }
}
