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
//! settle_secs = 0                           # passing checks must keep passing this long
//! max_restarts = 2                          # a unit restarted this often in a boot: give up
//! units = ["gateway.service"]               # active = READY=1 sent
//! gateway_config = "/etc/gateway/gateway.toml"  # `gateway status` answers; every listener accepts
//! gateway_bin = "/usr/bin/gateway"
//! commands = []                             # more commands that must exit 0
//! tcp = []                                  # more addresses that must accept
//! reboot_command = ["systemctl", "reboot"]
//! # after a slot is committed, in order, each until it exits 0 (retried at
//! # every boot until it does): e.g. a journal format migration
//! after_commit = ["/usr/bin/gateway journal migrate --config /etc/gateway/gateway.toml"]
//!
//! [config]                                  # signed config targets (absent: ignored)
//! box_id_file = "/var/lib/appliance/box-id"
//! group_file = "/var/lib/appliance/box-group"   # optional
//! gateway_toml = "/etc/gateway/gateway.toml"    # where the target's gateway.toml goes
//! credentials_dir = "/etc/gateway/private"      # and its credentials (mode 600)
//! check_command = ["/usr/bin/gateway", "check-config", "--config", "{config}"]
//! restart_command = ["systemctl", "restart", "gateway.service"]
//! ```

use crate::{Error, Result};
use serde::{Deserialize, Deserializer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;
use url::Url;

/// The configuration, parsed and checked once by [`Config::load`]: URLs,
/// the boot-loader kind, the maintenance window, addresses and durations
/// are typed, so no verb parses a value again.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub state_dir: PathBuf,
    pub trusted_root: PathBuf,
    #[serde(deserialize_with = "parsed")]
    pub metadata_url: Url,
    #[serde(deserialize_with = "parsed")]
    pub targets_url: Url,
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
    /// `[config]`: signed config targets; none: they are not applied.
    #[serde(default, rename = "config")]
    pub config_targets: Option<ConfigTargets>,
}

/// `[config]`. `check_command` gets `{config}` (the staged gateway.toml) and
/// `{credentials}` (the staged credentials directory, also passed as
/// `$CREDENTIALS_DIRECTORY`) substituted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigTargets {
    pub box_id_file: PathBuf,
    #[serde(default)]
    pub group_file: Option<PathBuf>,
    pub gateway_toml: PathBuf,
    pub credentials_dir: PathBuf,
    #[serde(default = "default_check_command")]
    pub check_command: Vec<String>,
    #[serde(default = "default_restart_command")]
    pub restart_command: Vec<String>,
}

fn default_check_command() -> Vec<String> {
    ["/usr/bin/gateway", "check-config", "--config", "{config}"]
        .map(String::from)
        .to_vec()
}
fn default_restart_command() -> Vec<String> {
    ["systemctl", "restart", "gateway.service"]
        .map(String::from)
        .to_vec()
}

impl ConfigTargets {
    /// This box's id and group, as the files say now (trimmed; missing or
    /// empty: none).
    pub fn identity(&self) -> (Option<String>, Option<String>) {
        let read = |p: &Path| {
            std::fs::read_to_string(p)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        (
            read(&self.box_id_file),
            self.group_file.as_deref().and_then(read),
        )
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slots {
    pub a: PathBuf,
    pub b: PathBuf,
}

/// `[boot] kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum BootKind {
    #[serde(rename = "grub")]
    Grub,
    #[serde(rename = "systemd-boot")]
    SystemdBoot,
    #[serde(rename = "uboot")]
    UBoot,
    #[serde(rename = "sim")]
    Sim,
}

/// `[boot]`. The path the kind needs (`grubenv`, `entries_dir`, `sim_env`)
/// is checked to be present at load.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Boot {
    pub kind: BootKind,
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

/// `[download]`. The file says seconds (`*_secs`) and milliseconds (`*_ms`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Download {
    #[serde(rename = "connect_timeout_secs", deserialize_with = "secs")]
    pub connect_timeout: Duration,
    /// No byte for this long: retry.
    #[serde(rename = "stall_timeout_secs", deserialize_with = "secs")]
    pub stall_timeout: Duration,
    /// One chunk, start to end.
    #[serde(rename = "chunk_timeout_secs", deserialize_with = "secs")]
    pub chunk_timeout: Duration,
    pub max_attempts: u32,
    #[serde(rename = "backoff_base_ms", deserialize_with = "millis")]
    pub backoff_base: Duration,
    #[serde(rename = "backoff_cap_ms", deserialize_with = "millis")]
    pub backoff_cap: Duration,
    /// 0: unlimited.
    pub bandwidth_limit_kib: u64,
    /// Reboots only inside it; none: any time.
    pub maintenance_window: Option<Window>,
}

impl Default for Download {
    fn default() -> Self {
        Download {
            connect_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(30),
            chunk_timeout: Duration::from_secs(1800),
            max_attempts: 8,
            backoff_base: Duration::from_millis(2000),
            backoff_cap: Duration::from_millis(300_000),
            bandwidth_limit_kib: 0,
            maintenance_window: None,
        }
    }
}

/// `[health]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Health {
    #[serde(rename = "deadline_secs", deserialize_with = "secs")]
    pub deadline: Duration,
    /// Between rounds of checks; at least one second (raised at load).
    #[serde(rename = "interval_secs", deserialize_with = "secs")]
    pub interval: Duration,
    /// Once all checks pass they must keep passing this long before a
    /// trial slot is committed.
    #[serde(rename = "settle_secs", deserialize_with = "secs")]
    pub settle: Duration,
    /// A unit systemd restarted this many times in this boot will not come
    /// up: the check gives up at once (0: never).
    pub max_restarts: u32,
    pub units: Vec<String>,
    pub gateway_config: Option<PathBuf>,
    pub gateway_bin: PathBuf,
    pub commands: Vec<Vec<String>>,
    #[serde(deserialize_with = "parsed_list")]
    pub tcp: Vec<SocketAddr>,
    pub reboot_command: Vec<String>,
    /// Run after a trial slot is committed (see `health::after_commit`).
    #[serde(deserialize_with = "command_lines")]
    pub after_commit: Vec<Vec<String>>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            deadline: Duration::from_secs(300),
            interval: Duration::from_secs(5),
            settle: Duration::ZERO,
            max_restarts: 2,
            units: vec!["gateway.service".into()],
            gateway_config: None,
            gateway_bin: "/usr/bin/gateway".into(),
            commands: vec![],
            tcp: vec![],
            reboot_command: vec!["systemctl".into(), "reboot".into()],
            after_commit: vec![],
        }
    }
}

/// A daily window `HH:MM-HH:MM` (may wrap past midnight), in minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
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

impl TryFrom<String> for Window {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Window, String> {
        Window::parse(&s).ok_or_else(|| format!("{s:?}: expected HH:MM-HH:MM"))
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

/// A string field parsed with `FromStr`; the error quotes the value.
fn parsed<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: std::fmt::Display,
{
    let s = String::deserialize(d)?;
    s.parse()
        .map_err(|e| serde::de::Error::custom(format!("{s:?}: {e}")))
}

fn parsed_list<'de, D, T>(d: D) -> std::result::Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: std::fmt::Display,
{
    Vec::<String>::deserialize(d)?
        .into_iter()
        .map(|s| {
            s.parse()
                .map_err(|e| serde::de::Error::custom(format!("{s:?}: {e}")))
        })
        .collect()
}

/// Commands written as one string each (split on whitespace, no shell) or
/// as an argument list: `["gateway journal migrate", ["/bin/x", "a b"]]`.
fn command_lines<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Line {
        Text(String),
        Argv(Vec<String>),
    }
    Vec::<Line>::deserialize(d)?
        .into_iter()
        .map(|l| {
            let argv = match l {
                Line::Text(t) => t.split_whitespace().map(str::to_string).collect(),
                Line::Argv(a) => a,
            };
            if argv.is_empty() {
                Err(serde::de::Error::custom("an empty command"))
            } else {
                Ok(argv)
            }
        })
        .collect()
}

fn secs<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_secs)
}

fn millis<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_millis)
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
        if let Some(t) = c.config_targets.as_mut() {
            for p in [
                &mut t.box_id_file,
                &mut t.gateway_toml,
                &mut t.credentials_dir,
            ] {
                abs(p);
            }
            if let Some(g) = t.group_file.as_mut() {
                abs(g);
            }
            for argv in [&t.check_command, &t.restart_command] {
                if argv.is_empty() {
                    return Err(Error::Config {
                        file: path.to_path_buf(),
                        msg: "[config] check_command and restart_command must not be empty".into(),
                    });
                }
            }
        }
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
        let needs = match c.boot.kind {
            BootKind::Grub if c.boot.grubenv.is_none() => Some(("grub", "grubenv")),
            BootKind::SystemdBoot if c.boot.entries_dir.is_none() => {
                Some(("systemd-boot", "entries_dir"))
            }
            BootKind::Sim if c.boot.sim_env.is_none() => Some(("sim", "sim_env")),
            _ => None,
        };
        if let Some((kind, field)) = needs {
            return Err(Error::Config {
                file: path.to_path_buf(),
                msg: format!("[boot] kind = \"{kind}\" needs {field} = PATH"),
            });
        }
        c.health.interval = c.health.interval.max(Duration::from_secs(1));
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

    const GOOD: &str = "state_dir='s'\ntrusted_root='r'\nmetadata_url='https://x/m/'\ntargets_url='https://x/t/'\n[slots]\na='a'\nb='b'\n";

    fn load_err(extra: &str) -> String {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("u.toml");
        std::fs::write(&p, format!("{GOOD}{extra}")).unwrap();
        Config::load(&p).unwrap_err().to_string()
    }

    #[test]
    fn values_are_typed_at_load() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("u.toml");
        std::fs::write(
            &p,
            format!("{GOOD}[boot]\nkind='sim'\nsim_env='e'\n[download]\nmaintenance_window='22:30-02:00'\nbackoff_base_ms=7\n[health]\ninterval_secs=0\ntcp=['127.0.0.1:2575']\n"),
        )
        .unwrap();
        let c = Config::load(&p).unwrap();
        assert_eq!(c.boot.kind, BootKind::Sim);
        assert_eq!(c.boot.sim_env, Some(d.path().join("e")));
        assert_eq!(c.metadata_url.as_str(), "https://x/m/");
        let w = c.download.maintenance_window.unwrap();
        assert_eq!((w.start, w.end), (22 * 60 + 30, 120));
        assert_eq!(w.to_string(), "22:30-02:00");
        assert_eq!(c.download.backoff_base, Duration::from_millis(7));
        assert_eq!(c.download.connect_timeout, Duration::from_secs(10));
        assert_eq!(c.health.interval, Duration::from_secs(1));
        assert_eq!(c.health.tcp, vec!["127.0.0.1:2575".parse().unwrap()]);
        assert_eq!(c.health.settle, Duration::ZERO);
        assert!(c.health.after_commit.is_empty());
    }

    #[test]
    fn after_commit_commands_are_lines_or_argument_lists() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("u.toml");
        std::fs::write(
            &p,
            format!("{GOOD}[boot]\nkind='sim'\nsim_env='e'\n[health]\nsettle_secs=15\nafter_commit=['/usr/bin/gateway journal migrate --config /etc/gateway/gateway.toml', ['/bin/sh', '-c', 'echo a b']]\n"),
        )
        .unwrap();
        let c = Config::load(&p).unwrap();
        assert_eq!(c.health.settle, Duration::from_secs(15));
        assert_eq!(
            c.health.after_commit,
            vec![
                vec![
                    "/usr/bin/gateway",
                    "journal",
                    "migrate",
                    "--config",
                    "/etc/gateway/gateway.toml"
                ],
                vec!["/bin/sh", "-c", "echo a b"],
            ]
        );
        let e = load_err("[boot]\nkind='sim'\nsim_env='e'\n[health]\nafter_commit=['  ']\n");
        assert!(e.contains("u.toml") && e.contains("empty command"), "{e}");
    }

    #[test]
    fn bad_values_name_the_file_and_field() {
        for (extra, want) in [
            ("[boot]\nkind='lilo'\n", "kind"),
            (
                "[boot]\nkind='grub'\n",
                "[boot] kind = \"grub\" needs grubenv = PATH",
            ),
            ("[boot]\nkind='systemd-boot'\n", "needs entries_dir = PATH"),
            ("[boot]\nkind='sim'\n", "needs sim_env = PATH"),
            (
                "[boot]\nkind='uboot'\n[download]\nmaintenance_window='2-5'\n",
                "maintenance_window",
            ),
            ("[boot]\nkind='uboot'\n[health]\ntcp=['nowhere']\n", "tcp"),
        ] {
            let e = load_err(extra);
            assert!(e.contains("u.toml") && e.contains(want), "{extra}: {e}");
        }
    }
}

#[cfg(test)]
mod example {
    #[test]
    fn the_shipped_example_config_loads() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/updater.toml");
        let c = super::Config::load(&p).unwrap();
        assert_eq!(c.boot.kind, super::BootKind::Grub);
        assert_eq!(
            c.health.gateway_config.as_deref(),
            Some(std::path::Path::new("/etc/gateway/gateway.toml"))
        );
    }
}
