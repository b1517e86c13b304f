//! GRUB backend: the state lives in a GRUB environment block (`grubenv`,
//! exactly 1024 bytes: a header line, `KEY=value` lines, `#` padding), which
//! `updater/boot/grub.cfg` reads at boot:
//!
//! | variable | meaning |
//! | --- | --- |
//! | `ORDER` | `A B` or `B A`: the slot tried first |
//! | `A_OK`, `B_OK` | `1` bootable, `0` not (invalidated or bad) |
//! | `A_GOOD`, `B_GOOD` | `1` committed |
//! | `A_TRY`, `B_TRY` | trial boots left (grub.cfg decrements before booting) |
//! | `LAST_GOOD` | booted when no slot is left (rauc#683) |
//!
//! The updater replaces the whole file atomically (temp file, fsync, rename,
//! fsync of the directory); GRUB's `save_env` rewrites the blocks of the
//! file it finds at boot, so a rename between boots is safe. The running slot
//! comes from `updater.slot=` on the kernel command line.

use super::{slot_from_cmdline, BootControl, BootState, SlotId};
use crate::durable::Files;
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const HEADER: &str = "# GRUB Environment Block\n";
const SIZE: usize = 1024;

pub struct Grub {
    env_path: PathBuf,
    cmdline: PathBuf,
    files: Arc<dyn Files>,
}

/// Parses a grubenv block into its variables.
pub fn parse_env(bytes: &[u8], path: &Path) -> Result<BTreeMap<String, String>> {
    let bad = |msg: String| Error::Boot {
        backend: "grub",
        msg: format!("{}: {msg}", path.display()),
    };
    let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8".into()))?;
    let body = text
        .strip_prefix(HEADER)
        .ok_or_else(|| bad("missing the '# GRUB Environment Block' header".into()))?;
    let mut vars = BTreeMap::new();
    for line in body.split('\n') {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| bad(format!("line {line:?} is not KEY=value")))?;
        vars.insert(k.to_string(), v.to_string());
    }
    Ok(vars)
}

/// Renders variables as a 1024-byte grubenv block.
pub fn render_env(vars: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let mut out = String::from(HEADER);
    for (k, v) in vars {
        if v.contains(['\n', '\\']) || k.contains(['=', '\n']) {
            return Err(Error::Boot {
                backend: "grub",
                msg: format!("variable {k} has characters grubenv cannot hold"),
            });
        }
        out.push_str(&format!("{k}={v}\n"));
    }
    if out.len() > SIZE {
        return Err(Error::Boot {
            backend: "grub",
            msg: "environment does not fit in 1024 bytes".into(),
        });
    }
    let mut bytes = out.into_bytes();
    bytes.resize(SIZE, b'#');
    Ok(bytes)
}

impl Grub {
    pub fn new(env_path: &Path, cmdline: &Path, files: Arc<dyn Files>) -> Self {
        Grub {
            env_path: env_path.to_path_buf(),
            cmdline: cmdline.to_path_buf(),
            files,
        }
    }

    /// Writes the initial environment for a box whose committed slot is `good`.
    pub fn provision(&self, good: SlotId) -> Result<()> {
        let mut v = BTreeMap::new();
        v.insert("ORDER".into(), format!("{} {}", good, good.other()));
        for s in [SlotId::A, SlotId::B] {
            let g = if s == good { "1" } else { "0" };
            v.insert(format!("{s}_OK"), g.into());
            v.insert(format!("{s}_GOOD"), g.into());
            v.insert(format!("{s}_TRY"), "0".into());
        }
        v.insert("LAST_GOOD".into(), good.to_string());
        self.files.write_atomic(&self.env_path, &render_env(&v)?)
    }

    pub fn vars(&self) -> Result<BTreeMap<String, String>> {
        let bytes = self
            .files
            .read(&self.env_path)?
            .ok_or_else(|| Error::Boot {
                backend: "grub",
                msg: format!(
                    "{}: no GRUB environment; provision the disk image with one",
                    self.env_path.display()
                ),
            })?;
        parse_env(&bytes, &self.env_path)
    }

    fn update(&self, f: impl FnOnce(&mut BTreeMap<String, String>)) -> Result<()> {
        let mut v = self.vars()?;
        f(&mut v);
        self.files.write_atomic(&self.env_path, &render_env(&v)?)
    }
}

impl BootControl for Grub {
    fn backend(&self) -> &'static str {
        "grub"
    }
    fn booted_slot(&self) -> Result<SlotId> {
        slot_from_cmdline(&self.cmdline)
    }
    fn slot_state(&self, slot: SlotId) -> Result<BootState> {
        let v = self.vars()?;
        let get = |k: &str| v.get(&format!("{slot}_{k}")).map(String::as_str);
        Ok(match (get("OK"), get("GOOD"), get("TRY")) {
            (Some("1"), Some("1"), _) => BootState::Good,
            (Some("1"), _, Some(t)) => match t.parse::<u8>() {
                Ok(n) if n > 0 => BootState::Trial { tries_left: n },
                _ => BootState::Bad,
            },
            _ => BootState::Bad,
        })
    }
    fn mark_invalid(&self, slot: SlotId) -> Result<()> {
        self.update(|v| {
            v.insert(format!("{slot}_OK"), "0".into());
            v.insert(format!("{slot}_GOOD"), "0".into());
            v.insert(format!("{slot}_TRY"), "0".into());
            v.insert("ORDER".into(), format!("{} {}", slot.other(), slot));
        })
    }
    fn set_trial(&self, slot: SlotId, tries: u8) -> Result<()> {
        self.update(|v| {
            v.insert(format!("{slot}_OK"), "1".into());
            v.insert(format!("{slot}_GOOD"), "0".into());
            v.insert(format!("{slot}_TRY"), tries.to_string());
            v.insert("ORDER".into(), format!("{} {}", slot, slot.other()));
        })
    }
    fn mark_good(&self, slot: SlotId) -> Result<()> {
        self.update(|v| {
            v.insert(format!("{slot}_OK"), "1".into());
            v.insert(format!("{slot}_GOOD"), "1".into());
            v.insert(format!("{slot}_TRY"), "0".into());
            v.insert("ORDER".into(), format!("{} {}", slot, slot.other()));
            v.insert("LAST_GOOD".into(), slot.to_string());
        })
    }
    fn mark_bad(&self, slot: SlotId) -> Result<()> {
        self.update(|v| {
            v.insert(format!("{slot}_OK"), "0".into());
            v.insert(format!("{slot}_GOOD"), "0".into());
            v.insert(format!("{slot}_TRY"), "0".into());
            v.insert("ORDER".into(), format!("{} {}", slot.other(), slot));
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::durable::RealFiles;

    #[test]
    fn env_block_is_1024_bytes_and_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let env = d.path().join("grubenv");
        let cmd = d.path().join("cmdline");
        std::fs::write(&cmd, "root=/dev/sda2 updater.slot=a quiet\n").unwrap();
        let g = Grub::new(&env, &cmd, Arc::new(RealFiles));
        g.provision(SlotId::A).unwrap();
        assert_eq!(std::fs::read(&env).unwrap().len(), 1024);
        assert_eq!(g.booted_slot().unwrap(), SlotId::A);
        assert_eq!(g.slot_state(SlotId::A).unwrap(), BootState::Good);
        assert_eq!(g.slot_state(SlotId::B).unwrap(), BootState::Bad);
        g.mark_invalid(SlotId::B).unwrap();
        g.set_trial(SlotId::B, 3).unwrap();
        assert_eq!(
            g.slot_state(SlotId::B).unwrap(),
            BootState::Trial { tries_left: 3 }
        );
        let v = g.vars().unwrap();
        assert_eq!(v["ORDER"], "B A");
        assert_eq!(v["LAST_GOOD"], "A");
        g.mark_good(SlotId::B).unwrap();
        assert_eq!(g.vars().unwrap()["LAST_GOOD"], "B");
        g.mark_bad(SlotId::B).unwrap();
        assert_eq!(g.vars().unwrap()["ORDER"], "A B");
        assert_eq!(std::fs::read(&env).unwrap().len(), 1024);
    }
}
