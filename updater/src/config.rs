//! `/etc/updater/updater.toml`. Relative paths are relative to the file.
//!
//! ```toml
//! state_dir = "/var/lib/updater"
//! trusted_root = "/usr/share/updater/root.json"
//! metadata_url = "https://updates.example.net/gateway/metadata/"
//! targets_url = "https://updates.example.net/gateway/targets/"
//! # ca_file = "/etc/updater/ca.pem"        # extra CA for a private server
//! running_image = "/usr/share/updater/image.json"  # {"version": "1.4.2", "epoch": 3}, shipped in each image
//!
//! [slots]
//! a = "/dev/disk/by-partlabel/gateway-a"
//! b = "/dev/disk/by-partlabel/gateway-b"
//!
//! [boot]
//! kind = "grub"                  # grub | uboot | systemd-boot | sim
//! grubenv = "/boot/grub/grubenv" # grub
//! # entries_dir = "/efi/loader/entries"   # systemd-boot
//! # fw_config = "/etc/fw_env.config"      # uboot
//! # sim_env = "/var/lib/updater/sim-firmware.json"  # sim
//!
//! [download]
//! connect_timeout_secs = 10
//! stall_timeout_secs = 30        # no byte for this long: retry
//! chunk_timeout_secs = 1800      # one chunk, start to end
//! max_attempts = 8
//! backoff_base_ms = 2000
//! backoff_cap_ms = 300000
//! bandwidth_limit_kib = 0        # 0: unlimited
//! maintenance_window = "02:00-05:00"   # local time; reboots only inside it
//!
//! [health]
//! deadline_secs = 300
//! units = ["gateway.service"]               # active = READY=1 sent
//! gateway_config = "/etc/gateway/gateway.toml"  # `gateway status` answers; every listener accepts
//! gateway_bin = "/usr/bin/gateway"
//! commands = []                             # more commands that must exit 0
//! tcp = []                                  # more addresses that must accept
//! reboot_command = ["systemctl", "reboot"]
//! ```

use crate::{Error, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub state_dir: PathBuf,
    pub trusted_root: PathBuf,
    pub metadata_url: String,
    pub targets_url: String,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The running image's own version and epoch (see `install::ImageInfo`).
    #[serde(default)]
    pub running_image: Option<PathBuf>,
    pub slots: Slots,
    pub boot: Boot,
    #[serde(default)]
    pub download: Download,
    #[serde(default)]
    pub health: Health,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slots {
    pub a: PathBuf,
    pub b: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Boot {
    pub kind: String,
    #[serde(default = "default_cmdline")]
    pub cmdline: PathBuf,
    pub grubenv: Option<PathBuf>,
    pub entries_dir: Option<PathBuf>,
    #[serde(default = "default_prefix")]
    pub entry_prefix: String,
    #[serde(default = "default_bootctl")]
    pub bootctl: PathBuf,
    pub fw_config: Option<PathBuf>,
    #[serde(default = "default_fw_printenv")]
    pub fw_printenv: PathBuf,
    #[serde(default = "default_fw_setenv")]
    pub fw_setenv: PathBuf,
    pub sim_env: Option<PathBuf>,
}

fn default_cmdline() -> PathBuf {
    "/proc/cmdline".into()
}
fn default_prefix() -> String {
    "gateway".into()
}
fn default_bootctl() -> PathBuf {
    "bootctl".into()
}
fn default_fw_printenv() -> PathBuf {
    "fw_printenv".into()
}
fn default_fw_setenv() -> PathBuf {
    "fw_setenv".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Download {
    pub connect_timeout_secs: u64,
    pub stall_timeout_secs: u64,
    pub chunk_timeout_secs: u64,
    pub max_attempts: u32,
    pub backoff_base_ms: u64,
    pub backoff_cap_ms: u64,
    pub bandwidth_limit_kib: u64,
    pub maintenance_window: Option<String>,
}

impl Default for Download {
    fn default() -> Self {
        Download {
            connect_timeout_secs: 10,
            stall_timeout_secs: 30,
            chunk_timeout_secs: 1800,
            max_attempts: 8,
            backoff_base_ms: 2000,
            backoff_cap_ms: 300_000,
            bandwidth_limit_kib: 0,
            maintenance_window: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Health {
    pub deadline_secs: u64,
    pub interval_secs: u64,
    pub units: Vec<String>,
    pub gateway_config: Option<PathBuf>,
    pub gateway_bin: PathBuf,
    pub commands: Vec<Vec<String>>,
    pub tcp: Vec<String>,
    pub reboot_command: Vec<String>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            deadline_secs: 300,
            interval_secs: 5,
            units: vec!["gateway.service".into()],
            gateway_config: None,
            gateway_bin: "/usr/bin/gateway".into(),
            commands: vec![],
            tcp: vec![],
            reboot_command: vec!["systemctl".into(), "reboot".into()],
        }
    }
}

/// A daily window `HH:MM-HH:MM` (may wrap past midnight), in minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: u16,
    pub end: u16,
}

impl Window {
    pub fn parse(s: &str) -> Option<Window> {
        let (a, b) = s.split_once('-')?;
        let m = |t: &str| -> Option<u16> {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60).then_some(h * 60 + m)
        };
        Some(Window {
            start: m(a)?,
            end: m(b)?,
        })
    }
    pub fn contains(&self, minute_of_day: u16) -> bool {
        if self.start <= self.end {
            (self.start..self.end).contains(&minute_of_day)
        } else {
            minute_of_day >= self.start || minute_of_day < self.end
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            file: path.to_path_buf(),
            msg: format!("cannot read: {e}"),
        })?;
        let mut c: Config = toml::from_str(&text).map_err(|e| Error::Config {
            file: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let abs = |p: &mut PathBuf| {
            if p.is_relative() && !p.as_os_str().is_empty() {
                *p = base.join(&*p);
            }
        };
        abs(&mut c.state_dir);
        abs(&mut c.trusted_root);
        abs(&mut c.slots.a);
        abs(&mut c.slots.b);
        for p in [
            &mut c.ca_file,
            &mut c.running_image,
            &mut c.boot.grubenv,
            &mut c.boot.entries_dir,
            &mut c.boot.fw_config,
            &mut c.boot.sim_env,
            &mut c.health.gateway_config,
        ]
        .into_iter()
        .flatten()
        {
            abs(p);
        }
        let bad = |msg: String| Error::Config {
            file: path.to_path_buf(),
            msg,
        };
        for (field, u) in [
            ("metadata_url", &c.metadata_url),
            ("targets_url", &c.targets_url),
        ] {
            url::Url::parse(u).map_err(|e| bad(format!("{field} {u:?}: {e}")))?;
        }
        match c.boot.kind.as_str() {
            "grub" if c.boot.grubenv.is_none() => {
                return Err(bad("[boot] kind = \"grub\" needs grubenv = PATH".into()))
            }
            "systemd-boot" if c.boot.entries_dir.is_none() => {
                return Err(bad(
                    "[boot] kind = \"systemd-boot\" needs entries_dir = PATH".into(),
                ))
            }
            "sim" if c.boot.sim_env.is_none() => {
                return Err(bad("[boot] kind = \"sim\" needs sim_env = PATH".into()))
            }
            "grub" | "systemd-boot" | "sim" | "uboot" => {}
            k => {
                return Err(bad(format!(
                    "[boot] kind {k:?}: expected grub, uboot, systemd-boot or sim"
                )))
            }
        }
        if let Some(w) = &c.download.maintenance_window {
            Window::parse(w).ok_or_else(|| {
                bad(format!(
                    "[download] maintenance_window {w:?}: expected HH:MM-HH:MM"
                ))
            })?;
        }
        for t in &c.health.tcp {
            t.parse::<std::net::SocketAddr>()
                .map_err(|e| bad(format!("[health] tcp {t:?}: {e}")))?;
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_wrap_midnight() {
        let w = Window::parse("22:30-02:00").unwrap();
        assert!(w.contains(23 * 60));
        assert!(w.contains(60));
        assert!(!w.contains(12 * 60));
        assert!(Window::parse("25:00-01:00").is_none());
    }

    #[test]
    fn errors_name_the_file_and_field() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("u.toml");
        std::fs::write(
            &p,
            "state_dir='s'\ntrusted_root='r'\nmetadata_url='nope'\ntargets_url='https://x/'\n[slots]\na='a'\nb='b'\n[boot]\nkind='sim'\nsim_env='e'\n",
        )
        .unwrap();
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(e.contains("u.toml") && e.contains("metadata_url"), "{e}");
    }
}

#[cfg(test)]
mod example {
    #[test]
    fn the_shipped_example_config_loads() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/updater.toml");
        let c = super::Config::load(&p).unwrap();
        assert_eq!(c.boot.kind, "grub");
        assert_eq!(
            c.health.gateway_config.as_deref(),
            Some(std::path::Path::new("/etc/gateway/gateway.toml"))
        );
    }
}
