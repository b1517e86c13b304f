//! One run of a verb on this box: the loaded configuration turned into the
//! mechanism the library needs (files, the boot-loader backend, the slots,
//! the install [`Context`]), built in one place, and the steps `check` and
//! `install` share (adopt the running image, verify, plan).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use updater::boot::{self, BootControl};
use updater::config::{BootKind, Config};
use updater::download::{Backoff, DownloadPolicy};
use updater::durable::{create_dir_all, Files, RealFiles, RunLock};
use updater::install::{self, Context, SlotPaths};
use updater::plan::{self, Plan};
use updater::state::{Record, Store};
use updater::trust::{self, clock::TrustedClock, TrustConfig, Verified};
use updater::{waves, Error, Result};

/// Progress lines of an install and of the health check (the step log), on
/// stderr: the journal, and on the appliance the serial console too.
pub fn log(msg: &str) {
    eprintln!("updater: {msg}");
}

pub struct Session<'c> {
    pub config: &'c Config,
    pub files: Arc<dyn Files>,
    pub boot: Box<dyn BootControl>,
    slots: SlotPaths,
    _lock: Option<RunLock>,
}

impl<'c> Session<'c> {
    /// For the verbs that change state: creates the state directory and
    /// holds the run lock until dropped.
    pub fn locked(config: &'c Config) -> Result<Self> {
        create_dir_all(&config.state_dir)?;
        let lock = RunLock::acquire(&config.state_dir)?;
        let mut s = Self::read_only(config)?;
        s._lock = Some(lock);
        Ok(s)
    }

    /// For `status`: reads only, takes no lock.
    pub fn read_only(config: &'c Config) -> Result<Self> {
        let files: Arc<dyn Files> = Arc::new(RealFiles);
        Ok(Session {
            config,
            boot: boot_control(config, files.clone()),
            files,
            slots: SlotPaths {
                a: config.slots.a.clone(),
                b: config.slots.b.clone(),
            },
            _lock: None,
        })
    }

    pub fn store(&self) -> Store<'_> {
        Store::new(&self.config.state_dir, self.files.as_ref())
    }

    pub fn clock(&self) -> Result<TrustedClock> {
        TrustedClock::load(self.files.as_ref(), &self.config.state_dir)
    }

    /// The install context (install steps 1–6, health steps 8–11).
    pub fn context(&self) -> Result<Context<'_>> {
        Ok(Context {
            files: self.files.as_ref(),
            state_dir: self.config.state_dir.clone(),
            boot: self.boot.as_ref(),
            slots: &self.slots,
            policy: policy(self.config),
            boot_id: boot_id()?,
            log: &log,
            after_commit: self.config.health.after_commit.clone(),
        })
    }

    /// Reads `running_image` and records it (see `install::adopt_running_image`).
    fn adopt(&self) -> Result<()> {
        let Some(path) = &self.config.running_image else {
            return Ok(());
        };
        let bytes =
            std::fs::read(path).map_err(|e| Error::io(path, "read the running image's info", e))?;
        let info: install::ImageInfo =
            serde_json::from_slice(&bytes).map_err(|e| Error::Config {
                file: path.clone(),
                msg: format!("expected {{\"version\": \"1.4.2\", \"epoch\": 3}}: {e}"),
            })?;
        install::adopt_running_image(&self.store(), self.boot.as_ref(), &info)
    }

    /// The first steps of `check` and `install`: load the trusted clock,
    /// adopt the running image, verify the metadata.
    pub fn check(&self, from: Option<&Path>) -> Result<(TrustedClock, Verified)> {
        let mut clock = self.clock()?;
        self.adopt()?;
        let v = self.verify(from, &mut clock)?;
        Ok((clock, v))
    }

    /// Fetches and verifies the metadata (from the servers, or from a local
    /// copy `from`), and records the outcome as the last check.
    fn verify(&self, from: Option<&Path>, clock: &mut TrustedClock) -> Result<Verified> {
        let r = trust::load(&self.trust_config(from)?, self.files.as_ref(), clock);
        let store = self.store();
        let mut st = store.load()?;
        st.last_check = Some(Record {
            at: clock.now(),
            ok: r.is_ok(),
            message: match &r {
                Ok(v) => format!(
                    "verified: {} target(s), timestamp v{}, expires {}",
                    v.targets.len(),
                    v.versions.timestamp,
                    v.expires
                ),
                Err(e) => e.to_string(),
            },
        });
        store.save(&st)?;
        r
    }

    /// [`plan::pick`] and, with `use_waves`, [`plan::wave`]; records the
    /// wave this box waits for (or that it waits for none).
    pub fn plan<'v>(
        &self,
        v: &'v Verified,
        clock: &TrustedClock,
        use_waves: bool,
    ) -> Result<Plan<'v>> {
        let store = self.store();
        let mut st = store.load()?;
        let (_, running) = install::running(&store, self.boot.as_ref())?;
        let t = match plan::pick(v, &running, &st) {
            Plan::Install(t) => t,
            other => {
                st.wave_wait = None;
                store.save(&st)?;
                return Ok(other);
            }
        };
        if !use_waves {
            return Ok(Plan::Install(t));
        }
        let seed = waves::device_seed(self.files.as_ref(), &self.config.state_dir)?;
        let (p, wait) = plan::wave(t, &seed, clock.now());
        st.wave_wait = wait;
        store.save(&st)?;
        Ok(p)
    }

    /// `[health] reboot_command`.
    pub fn reboot(&self) -> Result<()> {
        let argv = &self.config.health.reboot_command;
        let Some((prog, args)) = argv.split_first() else {
            return Err(Error::State("[health] reboot_command is empty".into()));
        };
        let status = std::process::Command::new(prog)
            .args(args)
            .status()
            .map_err(|e| Error::io(prog, "run reboot command", e))?;
        if !status.success() {
            return Err(Error::Command {
                command: argv.join(" "),
                status,
                detail: String::new(),
            });
        }
        Ok(())
    }

    fn trust_config(&self, from: Option<&Path>) -> Result<TrustConfig> {
        let c = self.config;
        let (metadata_url, targets_url) = match from {
            Some(d) => {
                let d = std::fs::canonicalize(d).map_err(|e| Error::io(d, "open", e))?;
                let url = |sub: &str| {
                    url::Url::from_directory_path(d.join(sub))
                        .map_err(|_| Error::State(format!("{}: not an absolute path", d.display())))
                };
                (url("metadata")?, url("targets")?)
            }
            None => (c.metadata_url.clone(), c.targets_url.clone()),
        };
        Ok(TrustConfig {
            shipped_root: c.trusted_root.clone(),
            metadata_url,
            targets_url,
            state_dir: c.state_dir.clone(),
            connect_timeout: c.download.connect_timeout,
            timeout: c.download.stall_timeout.max(Duration::from_secs(60)),
            extra_ca: c.ca_file.clone(),
        })
    }
}

/// The backend `[boot] kind` names (its paths were checked at load).
fn boot_control(c: &Config, files: Arc<dyn Files>) -> Box<dyn BootControl> {
    let b = &c.boot;
    match b.kind {
        BootKind::Grub => Box::new(boot::grub::Grub::new(
            b.grubenv
                .as_deref()
                .unwrap_or(Path::new("/boot/grub/grubenv")),
            &b.cmdline,
            files,
        )),
        BootKind::SystemdBoot => Box::new(boot::systemd_boot::SystemdBoot {
            entries_dir: b.entries_dir.clone().unwrap_or_default(),
            prefix: b.entry_prefix.clone(),
            bootctl: b.bootctl.clone(),
            cmdline: b.cmdline.clone(),
        }),
        BootKind::UBoot => Box::new(boot::uboot::UBoot {
            fw_printenv: b.fw_printenv.clone(),
            fw_setenv: b.fw_setenv.clone(),
            fw_config: b.fw_config.clone(),
            cmdline: b.cmdline.clone(),
            script_dir: c.state_dir.clone(),
        }),
        BootKind::Sim => Box::new(boot::sim::SimFirmware::new(
            b.sim_env
                .as_deref()
                .unwrap_or(Path::new("sim-firmware.json")),
            files,
        )),
    }
}

fn policy(c: &Config) -> DownloadPolicy {
    let d = &c.download;
    DownloadPolicy {
        backoff: Backoff {
            base: d.backoff_base,
            cap: d.backoff_cap,
            max_attempts: d.max_attempts,
        },
        bandwidth_limit: (d.bandwidth_limit_kib > 0).then_some(d.bandwidth_limit_kib * 1024),
        sync_every: 8,
    }
}

/// This boot's id; `UPDATER_BOOT_ID` overrides it (tests, the qemu harness).
fn boot_id() -> Result<String> {
    if let Ok(id) = std::env::var("UPDATER_BOOT_ID") {
        return Ok(id);
    }
    let p = "/proc/sys/kernel/random/boot_id";
    let id = std::fs::read_to_string(p).map_err(|e| Error::io(p, "read", e))?;
    let id = id.trim().to_string();
    if id.is_empty() {
        return Err(Error::State(format!("{p} is empty")));
    }
    Ok(id)
}

/// Local minute of the day, for the maintenance window.
pub fn local_minute_of_day() -> u16 {
    let now = jiff::Zoned::now();
    now.hour() as u16 * 60 + now.minute() as u16
}
