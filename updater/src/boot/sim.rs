//! Simulated firmware for tests: a JSON environment file, and a
//! [`SimFirmware::power_on`] that does what a boot loader does with it:
//! pick a slot by priority, decrement a trial slot's tries, "boot" it.

use super::{BootControl, BootState, SlotId};
use crate::durable::{read_json, write_json, Files};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimSlot {
    pub bootable: bool,
    pub good: bool,
    pub tries: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimEnv {
    /// Boot priority, first tried first.
    pub order: [SlotId; 2],
    pub a: SimSlot,
    pub b: SimSlot,
    /// The slot most recently committed; booted when nothing else can be.
    pub last_good: SlotId,
    /// The slot the last power-on booted.
    pub booted: SlotId,
    pub boots: u64,
}

impl SimEnv {
    pub fn slot(&self, s: SlotId) -> &SimSlot {
        match s {
            SlotId::A => &self.a,
            SlotId::B => &self.b,
        }
    }
    fn slot_mut(&mut self, s: SlotId) -> &mut SimSlot {
        match s {
            SlotId::A => &mut self.a,
            SlotId::B => &mut self.b,
        }
    }
}

pub struct SimFirmware {
    path: PathBuf,
    files: Arc<dyn Files>,
}

impl SimFirmware {
    pub fn new(path: &Path, files: Arc<dyn Files>) -> Self {
        SimFirmware {
            path: path.to_path_buf(),
            files,
        }
    }

    /// A factory-fresh box: `good` committed and booted, the other slot empty.
    pub fn provision(path: &Path, files: Arc<dyn Files>, good: SlotId) -> Result<Self> {
        let fw = SimFirmware::new(path, files);
        let committed = SimSlot {
            bootable: true,
            good: true,
            tries: 0,
        };
        let empty = SimSlot {
            bootable: false,
            good: false,
            tries: 0,
        };
        let mut env = SimEnv {
            order: [good, good.other()],
            a: empty,
            b: empty,
            last_good: good,
            booted: good,
            boots: 0,
        };
        *env.slot_mut(good) = committed;
        fw.save(&env)?;
        Ok(fw)
    }

    pub fn env(&self) -> Result<SimEnv> {
        read_json(self.files.as_ref(), &self.path)?.ok_or_else(|| Error::Boot {
            backend: "sim",
            msg: format!("{}: no firmware environment", self.path.display()),
        })
    }

    fn save(&self, env: &SimEnv) -> Result<()> {
        write_json(self.files.as_ref(), &self.path, env)
    }

    fn update(&self, f: impl FnOnce(&mut SimEnv)) -> Result<()> {
        let mut env = self.env()?;
        f(&mut env);
        self.save(&env)
    }

    /// The boot loader's choice for the next boot, decrementing a trial
    /// slot's tries. Returns the slot and whether it was the last-resort
    /// fallback.
    fn choose(env: &mut SimEnv) -> (SlotId, bool) {
        for s in env.order {
            let st = env.slot_mut(s);
            if st.bootable && st.good {
                return (s, false);
            }
            if st.bootable && st.tries > 0 {
                st.tries -= 1;
                return (s, false);
            }
        }
        (env.last_good, true)
    }

    /// Powers the box on: the firmware picks a slot and boots it; `works`
    /// says whether that slot gets to userspace. A slot that does not is
    /// reset (watchdog) and the firmware picks again, up to `max_boots`.
    /// Returns the slot that came up.
    pub fn power_on(&self, works: &dyn Fn(SlotId) -> bool, max_boots: u32) -> Result<SlotId> {
        for _ in 0..max_boots {
            let mut env = self.env()?;
            let (slot, _fallback) = Self::choose(&mut env);
            env.booted = slot;
            env.boots += 1;
            self.save(&env)?;
            if works(slot) {
                return Ok(slot);
            }
        }
        Err(Error::Boot {
            backend: "sim",
            msg: format!("no slot came up in {max_boots} boots"),
        })
    }
}

impl BootControl for SimFirmware {
    fn backend(&self) -> &'static str {
        "sim"
    }
    fn booted_slot(&self) -> Result<SlotId> {
        Ok(self.env()?.booted)
    }
    fn slot_state(&self, slot: SlotId) -> Result<BootState> {
        let env = self.env()?;
        let s = env.slot(slot);
        Ok(if !s.bootable {
            BootState::Bad
        } else if s.good {
            BootState::Good
        } else if s.tries > 0 {
            BootState::Trial {
                tries_left: s.tries,
            }
        } else {
            BootState::Bad
        })
    }
    fn mark_invalid(&self, slot: SlotId) -> Result<()> {
        self.update(|env| {
            *env.slot_mut(slot) = SimSlot {
                bootable: false,
                good: false,
                tries: 0,
            };
            if env.order[0] == slot {
                env.order = [slot.other(), slot];
            }
        })
    }
    fn set_trial(&self, slot: SlotId, tries: u8) -> Result<()> {
        self.update(|env| {
            *env.slot_mut(slot) = SimSlot {
                bootable: true,
                good: false,
                tries,
            };
            env.order = [slot, slot.other()];
        })
    }
    fn mark_good(&self, slot: SlotId) -> Result<()> {
        self.update(|env| {
            *env.slot_mut(slot) = SimSlot {
                bootable: true,
                good: true,
                tries: 0,
            };
            env.order = [slot, slot.other()];
            env.last_good = slot;
        })
    }
    fn mark_bad(&self, slot: SlotId) -> Result<()> {
        self.update(|env| {
            *env.slot_mut(slot) = SimSlot {
                bootable: false,
                good: false,
                tries: 0,
            };
            env.order = [slot.other(), slot];
        })
    }
}
