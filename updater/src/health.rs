//! `updater health`: install steps 8–11, run once per boot before
//! `boot-complete.target`.
//!
//! It checks local signs only, never the internet (a clinic that is offline
//! after an update must not roll back): the gateway unit is active (for a
//! `Type=notify` unit that means it sent READY=1, which the gateway sends
//! only after its journal opened and every listener is bound), its admin
//! socket answers `gateway status` (the daemon serves, not just exists), and
//! each listener accepts a TCP connection. Checks are retried until they all pass or the
//! deadline passes.
//!
//! On the trial slot: pass → mark good (9), raise the epoch floor (10),
//! record the result (11); fail → mark bad and ask for a reboot (the
//! firmware then boots the known-good slot). On the old slot after a trial
//! that never came up (its tries are used up): mark it bad and record the
//! rollback.

use crate::boot::{BootState, SlotId};
use crate::install::Context;
use crate::state::{Phase, Record};
use crate::trust::clock::TrustedClock;
use crate::{Error, Result};
use jiff::Timestamp;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// One local health sign.
pub trait Check {
    fn name(&self) -> String;
    fn run(&self) -> Result<()>;
}

/// `systemctl is-active --quiet UNIT`.
pub struct UnitActive(pub String);
impl Check for UnitActive {
    fn name(&self) -> String {
        format!("unit {} active (READY=1 sent)", self.0)
    }
    fn run(&self) -> Result<()> {
        run_command(&[
            "systemctl".into(),
            "is-active".into(),
            "--quiet".into(),
            self.0.clone(),
        ])
    }
}

/// A command that must exit 0 (e.g. `gateway status --config ...`).
pub struct CommandOk(pub Vec<String>);
impl Check for CommandOk {
    fn name(&self) -> String {
        format!("`{}` succeeds", self.0.join(" "))
    }
    fn run(&self) -> Result<()> {
        run_command(&self.0)
    }
}

fn run_command(argv: &[String]) -> Result<()> {
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| Error::Unhealthy("empty command".into()))?;
    let out = Command::new(prog)
        .args(args)
        .output()
        .map_err(|source| Error::Spawn {
            program: prog.clone(),
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(Error::Command {
            command: argv.join(" "),
            status: out.status,
            detail: format!(": {}", err.lines().last().unwrap_or("").trim()),
        })
    }
}

/// A check that cannot even be set up (its configuration is unreadable).
pub struct Failing(pub String);
impl Check for Failing {
    fn name(&self) -> String {
        "health check setup".into()
    }
    fn run(&self) -> Result<()> {
        Err(Error::Unhealthy(self.0.clone()))
    }
}

/// A listener that must accept a TCP connection.
pub struct TcpListening(pub SocketAddr);
impl Check for TcpListening {
    fn name(&self) -> String {
        format!("listener {} bound", self.0)
    }
    fn run(&self) -> Result<()> {
        TcpStream::connect_timeout(&self.0, Duration::from_secs(2))
            .map(drop)
            .map_err(|source| Error::Connect {
                addr: self.0,
                source,
            })
    }
}

/// The checks implied by the gateway's own configuration: `gateway status
/// --config FILE` answers over the admin socket, and every `[[listener]]
/// bind` accepts a TCP connection (a wildcard address is checked on
/// loopback). The journal is covered by the unit check: the gateway sends
/// READY=1 only after its journal opened.
pub fn gateway_checks(
    gateway_bin: &Path,
    gateway_config: &Path,
) -> crate::Result<Vec<Box<dyn Check>>> {
    let text = std::fs::read_to_string(gateway_config)
        .map_err(|e| crate::Error::io(gateway_config, "read the gateway configuration", e))?;
    let v: toml::Value = toml::from_str(&text).map_err(|e| crate::Error::Config {
        file: gateway_config.to_path_buf(),
        msg: e.to_string(),
    })?;
    let mut out: Vec<Box<dyn Check>> = vec![Box::new(CommandOk(vec![
        gateway_bin.display().to_string(),
        "status".into(),
        "--config".into(),
        gateway_config.display().to_string(),
    ]))];
    let listeners = v
        .get("listener")
        .and_then(|l| l.as_array())
        .cloned()
        .unwrap_or_default();
    for (i, l) in listeners.iter().enumerate() {
        let bind = l
            .get("bind")
            .and_then(|b| b.as_str())
            .ok_or_else(|| crate::Error::Config {
                file: gateway_config.to_path_buf(),
                msg: format!("listener[{i}] has no bind address"),
            })?;
        let mut addr: SocketAddr = bind.parse().map_err(|e| crate::Error::Config {
            file: gateway_config.to_path_buf(),
            msg: format!("listener[{i}].bind {bind:?}: {e}"),
        })?;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        out.push(Box::new(TcpListening(addr)));
    }
    Ok(out)
}

/// Runs all checks until they pass together or `deadline` passes. Returns
/// the failures of the last round ([`Error::Unhealthy`]).
pub fn run_checks(checks: &[Box<dyn Check>], deadline: Duration, interval: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        let failures: Vec<String> = checks
            .iter()
            .filter_map(|c| c.run().err().map(|e| format!("{}: {e}", c.name())))
            .collect();
        if failures.is_empty() {
            return Ok(());
        }
        if start.elapsed() + interval > deadline {
            return Err(Error::Unhealthy(failures.join("; ")));
        }
        std::thread::sleep(interval);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The trial slot passed and is now committed; the floor is `floor`.
    Committed {
        slot: SlotId,
        version: String,
        floor: u64,
    },
    /// The trial slot failed its checks and is marked bad: reboot now.
    RolledBack { slot: SlotId, reason: String },
    /// Running the old slot: the trial slot used its tries and never came up.
    TrialNeverCameUp { slot: SlotId, version: String },
    /// An update is staged and waits for the reboot.
    WaitingForReboot { slot: SlotId },
    /// No update in flight; the running slot passed.
    Healthy,
    /// No update in flight; the running (committed) slot fails its checks.
    /// Nothing is marked bad: there is nothing better to fall back to.
    Unhealthy(String),
}

/// Steps 8–11 for whatever state the last boot left.
pub fn after_boot(
    ctx: &Context<'_>,
    checks: &dyn Fn() -> Result<()>,
    clock: &mut TrustedClock,
) -> Result<Outcome> {
    let store = ctx.store();
    let mut st = store.load()?;
    let booted = ctx.boot.booted_slot()?;
    let Some(p) = st.pending.clone() else {
        return Ok(match checks() {
            Ok(()) => Outcome::Healthy,
            Err(e) => Outcome::Unhealthy(e.to_string()),
        });
    };
    let same_boot = st.staged_boot_id.as_deref() == Some(ctx.boot_id.as_str());
    if p.slot == booted && p.phase != Phase::Writing && !same_boot {
        // 8. Health check of the trial slot.
        match checks() {
            Ok(()) => {
                // 9. Commit.
                ctx.boot.mark_good(booted)?;
                // 10. Raise the floor (only now: the box can no longer need the old slot).
                st.epoch_floor = st.epoch_floor.max(p.epoch);
                st.failed.retain(|s| s != &p.sha256);
                st.pending = None;
                st.staged_boot_id = None;
                let good_time = clock.now().min(p.meta_expires);
                st.last_good_time = Some(good_time);
                // 11. Report.
                st.last_install = Some(Record {
                    at: clock.now(),
                    ok: true,
                    message: format!("{} {} committed in slot {booted}", p.target, p.version),
                });
                store.save(&st)?;
                clock.observe(ctx.files, good_time)?;
                Ok(Outcome::Committed {
                    slot: booted,
                    version: p.version,
                    floor: st.epoch_floor,
                })
            }
            Err(e) => {
                let reason = e.to_string();
                ctx.boot.mark_bad(booted)?;
                st.pending = None;
                st.staged_boot_id = None;
                st.slot_mut(booted).verified = false;
                if !st.failed.contains(&p.sha256) {
                    st.failed.push(p.sha256.clone());
                }
                st.last_install = Some(Record {
                    at: clock.now(),
                    ok: false,
                    message: format!(
                        "{} {} failed its health check in slot {booted} and was rolled back: {reason}",
                        p.target, p.version
                    ),
                });
                store.save(&st)?;
                Ok(Outcome::RolledBack {
                    slot: booted,
                    reason,
                })
            }
        }
    } else if p.slot != booted && p.phase == Phase::Trial && !same_boot {
        match ctx.boot.slot_state(p.slot)? {
            BootState::Trial { .. } => Ok(Outcome::WaitingForReboot { slot: p.slot }),
            _ => {
                ctx.boot.mark_bad(p.slot)?;
                st.pending = None;
                st.staged_boot_id = None;
                st.slot_mut(p.slot).verified = false;
                if !st.failed.contains(&p.sha256) {
                    st.failed.push(p.sha256.clone());
                }
                st.last_install = Some(Record {
                    at: Timestamp::now().max(clock.now()),
                    ok: false,
                    message: format!(
                        "{} {} never came up in slot {}: its tries ran out and slot {booted} booted again",
                        p.target, p.version, p.slot
                    ),
                });
                store.save(&st)?;
                Ok(Outcome::TrialNeverCameUp {
                    slot: p.slot,
                    version: p.version,
                })
            }
        }
    } else if p.phase == Phase::Trial && same_boot {
        Ok(Outcome::WaitingForReboot { slot: p.slot })
    } else {
        // An interrupted download/verify: the next install resumes it.
        Ok(match checks() {
            Ok(()) => Outcome::Healthy,
            Err(e) => Outcome::Unhealthy(e.to_string()),
        })
    }
}
