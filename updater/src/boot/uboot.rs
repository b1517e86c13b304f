//! U-Boot backend (ARM boards), through libubootenv's `fw_printenv` and
//! `fw_setenv`. Every change is one `fw_setenv --script FILE`, which writes
//! all its variables in one environment write. The script lines are
//! `name=value`: libubootenv silently ignores the `name value` lines of the
//! old u-boot-tools format, so this backend needs libubootenv's tools
//! (`libubootenv-tool` on Debian). With a redundant environment
//! (two copies in `/etc/fw_env.config`) libubootenv writes the inactive copy
//! and flips its flag, so a power cut leaves the old or the new set, whole.
//!
//! | variable | meaning |
//! | --- | --- |
//! | `boot_slot` | `A` or `B`: what `bootcmd` boots |
//! | `good_slot` | the committed slot; `altbootcmd` boots it |
//! | `slot_a_ok`, `slot_b_ok` | `1` bootable |
//! | `upgrade_available` | `1` while `boot_slot` is on trial: U-Boot counts boots |
//! | `bootcount`, `bootlimit` | U-Boot's boot counter; past `bootlimit` it runs `altbootcmd` |
//!
//! The board environment must define
//! `altbootcmd=setenv boot_slot ${good_slot}; setenv upgrade_available 0; setenv bootcount 0; saveenv; run bootcmd`
//! (see `updater/boot/uboot-env.txt`).

use super::{slot_from_cmdline, BootControl, BootState, SlotId};
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct UBoot {
    pub fw_printenv: PathBuf,
    pub fw_setenv: PathBuf,
    /// `-c FILE` for both tools, if not the default `/etc/fw_env.config`.
    pub fw_config: Option<PathBuf>,
    pub cmdline: PathBuf,
    /// Where the `--script` file is written (the updater's state directory).
    pub script_dir: PathBuf,
}

fn kv(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn err(msg: String) -> Error {
    Error::Boot {
        backend: "uboot",
        msg,
    }
}

impl UBoot {
    fn command(&self, tool: &Path) -> Command {
        let mut c = Command::new(tool);
        if let Some(cfg) = &self.fw_config {
            c.arg("-c").arg(cfg);
        }
        c
    }

    pub fn vars(&self) -> Result<BTreeMap<String, String>> {
        let out = self
            .command(&self.fw_printenv)
            .output()
            .map_err(|e| Error::io(&self.fw_printenv, "run", e))?;
        if !out.status.success() {
            return Err(err(format!(
                "{} failed: {}",
                self.fw_printenv.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    /// Sets all `vars` in one environment write.
    fn set(&self, vars: &[(String, String)]) -> Result<()> {
        let mut script = String::new();
        for (k, v) in vars {
            if k.contains(['=', '\n', ' ']) || v.contains('\n') {
                return Err(err(format!(
                    "variable {k:?} cannot go in an fw_setenv script"
                )));
            }
            script.push_str(&format!("{k}={v}\n"));
        }
        let path = self.script_dir.join("fw_setenv.script");
        std::fs::write(&path, script).map_err(|e| Error::io(&path, "write", e))?;
        let out = self
            .command(&self.fw_setenv)
            .arg("--script")
            .arg(&path)
            .output()
            .map_err(|e| Error::io(&self.fw_setenv, "run", e))?;
        if !out.status.success() {
            return Err(err(format!(
                "{} --script failed: {}",
                self.fw_setenv.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    fn ok_var(slot: SlotId) -> String {
        format!("slot_{}_ok", slot.lower())
    }
}

impl BootControl for UBoot {
    fn backend(&self) -> &'static str {
        "uboot"
    }
    fn booted_slot(&self) -> Result<SlotId> {
        slot_from_cmdline(&self.cmdline)
    }
    fn slot_state(&self, slot: SlotId) -> Result<BootState> {
        let v = self.vars()?;
        let get = |k: &str| v.get(k).map(String::as_str).unwrap_or("");
        if get(&Self::ok_var(slot)) != "1" {
            return Ok(BootState::Bad);
        }
        let on_trial =
            SlotId::parse(get("boot_slot")) == Some(slot) && get("upgrade_available") == "1";
        if on_trial {
            let limit: u8 = get("bootlimit").parse().unwrap_or(0);
            let count: u8 = get("bootcount").parse().unwrap_or(0);
            let left = limit.saturating_sub(count);
            return Ok(if left > 0 {
                BootState::Trial { tries_left: left }
            } else {
                BootState::Bad
            });
        }
        Ok(if SlotId::parse(get("good_slot")) == Some(slot) {
            BootState::Good
        } else {
            BootState::Bad
        })
    }
    fn mark_invalid(&self, slot: SlotId) -> Result<()> {
        let mut vars = vec![(Self::ok_var(slot), "0".to_string())];
        let v = self.vars()?;
        if SlotId::parse(v.get("boot_slot").map(String::as_str).unwrap_or("")) == Some(slot) {
            vars.extend(kv(&[
                ("boot_slot", slot.other().to_string()),
                ("upgrade_available", "0".into()),
                ("bootcount", "0".into()),
            ]));
        }
        self.set(&vars)
    }
    fn set_trial(&self, slot: SlotId, tries: u8) -> Result<()> {
        let ok = Self::ok_var(slot);
        self.set(&kv(&[
            (ok.as_str(), "1".into()),
            ("boot_slot", slot.to_string()),
            ("upgrade_available", "1".into()),
            ("bootcount", "0".into()),
            ("bootlimit", tries.to_string()),
        ]))
    }
    fn mark_good(&self, slot: SlotId) -> Result<()> {
        let ok = Self::ok_var(slot);
        self.set(&kv(&[
            (ok.as_str(), "1".into()),
            ("boot_slot", slot.to_string()),
            ("good_slot", slot.to_string()),
            ("upgrade_available", "0".into()),
            ("bootcount", "0".into()),
        ]))
    }
    fn mark_bad(&self, slot: SlotId) -> Result<()> {
        let ok = Self::ok_var(slot);
        self.set(&kv(&[
            (ok.as_str(), "0".into()),
            ("boot_slot", slot.other().to_string()),
            ("upgrade_available", "0".into()),
            ("bootcount", "0".into()),
        ]))
    }
}
