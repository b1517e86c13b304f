//! A clock that a dead RTC cannot turn back.
//!
//! `now()` is the latest of: the system clock, the build time of this binary,
//! and a persisted floor (`STATE_DIR/clock.json`). The floor is raised
//! (durably) at:
//! - every successful verification ("last verified metadata time"): to the
//!   latest signed `published` time of the targets, and to the current time
//!   capped at the earliest expiry of the metadata just verified;
//! - every commit of a slot ("last saved good time"): to the current time,
//!   capped at the earliest expiry of the metadata that install verified.
//!
//! So a box whose RTC resets to 1970 still sees expired metadata as expired
//! (no freeze attack), and a box whose RTC once jumps years ahead carries at
//! most "until the metadata it verified expires" forward, which the next
//! signed timestamp moves past anyway.

use crate::durable::{read_json, write_json, Files};
use crate::Result;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ClockFile {
    floor: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct TrustedClock {
    path: PathBuf,
    build_time: Timestamp,
    floor: Timestamp,
    /// Tests pin the "system clock".
    system_override: Option<Timestamp>,
}

/// When this binary was built (SOURCE_DATE_EPOCH, or the build's wall clock).
pub fn build_time() -> Timestamp {
    env!("UPDATER_BUILD_TIME")
        .parse::<i64>()
        .ok()
        .and_then(|s| Timestamp::from_second(s).ok())
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

impl TrustedClock {
    pub fn load(files: &dyn Files, state_dir: &Path) -> Result<Self> {
        let path = state_dir.join("clock.json");
        let f: ClockFile = read_json(files, &path)?.unwrap_or_default();
        Ok(TrustedClock {
            path,
            build_time: build_time(),
            floor: f.floor.unwrap_or(Timestamp::UNIX_EPOCH),
            system_override: None,
        })
    }

    /// Tests: pretend the RTC says `t`.
    pub fn with_system_time(mut self, t: Timestamp) -> Self {
        self.system_override = Some(t);
        self
    }

    pub fn system_now(&self) -> Timestamp {
        self.system_override.unwrap_or_else(Timestamp::now)
    }

    pub fn floor(&self) -> Timestamp {
        self.floor.max(self.build_time)
    }

    pub fn now(&self) -> Timestamp {
        self.system_now().max(self.floor())
    }

    /// Raises the floor to `t` (durably) if `t` is later.
    pub fn observe(&mut self, files: &dyn Files, t: Timestamp) -> Result<()> {
        if t > self.floor {
            self.floor = t;
            write_json(files, &self.path, &ClockFile { floor: Some(t) })?;
        }
        Ok(())
    }
}
