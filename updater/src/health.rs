//! `updater health`: install steps 8–11, run once per boot before
//! `boot-complete.target`.
//!
//! It checks local signs only, never the internet (a clinic that is offline
//! after an update must not roll back): the gateway unit is active (for a
//! `Type=notify` unit that means it sent READY=1, which the gateway sends
//! only after its journal opened and every listener is bound), its admin
//! socket answers `gateway status` (the daemon serves, not just exists), and
//! each listener accepts a TCP connection. Checks are retried until they all
//! pass, then must keep passing for a settle time (a gateway that crashes a
//! few seconds after READY is not committed); they give up at the deadline,
//! or at once when the unit failed or keeps being restarted.
//!
//! On the trial slot: pass → mark good (9), raise the epoch floor (10),
//! record the result (11); fail → mark bad and ask for a reboot (the
//! firmware then boots the known-good slot). On the old slot after a trial
//! that never came up (its tries are used up): mark it bad and record the
//! rollback.

use crate::boot::{BootState, SlotId};
use crate::install::Context;
use crate::state::{AfterCommit, Phase, Record};
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

/// The unit is active (`ActiveState=active`). Hopeless when it failed, or
/// when systemd restarted it `max_restarts` times in this boot: a trial
/// slot whose gateway cannot start is rolled back in seconds, before the
/// unit's own start limit reboots the box.
pub struct UnitActive {
    pub unit: String,
    pub max_restarts: u32,
}
impl Check for UnitActive {
    fn name(&self) -> String {
        format!("unit {} active (READY=1 sent)", self.unit)
    }
    fn run(&self) -> Result<()> {
        let argv = [
            "systemctl",
            "show",
            "--property=ActiveState,SubState,NRestarts,Result",
            &self.unit,
        ];
        let out = Command::new(argv[0])
            .args(&argv[1..])
            .output()
            .map_err(|source| Error::Spawn {
                program: argv[0].into(),
                source,
            })?;
        if !out.status.success() {
            return Err(Error::Command {
                command: argv.join(" "),
                status: out.status,
                detail: format!(": {}", String::from_utf8_lossy(&out.stderr).trim()),
            });
        }
        unit_verdict(&String::from_utf8_lossy(&out.stdout), self.max_restarts)
    }
}

/// Judges `systemctl show` output (`KEY=value` lines) for [`UnitActive`].
pub fn unit_verdict(show: &str, max_restarts: u32) -> Result<()> {
    let get = |k: &str| {
        show.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
            .unwrap_or("")
            .trim()
    };
    let (active, sub, result) = (get("ActiveState"), get("SubState"), get("Result"));
    let restarts: u32 = get("NRestarts").parse().unwrap_or(0);
    if active == "active" {
        return Ok(());
    }
    let what = format!("{active} ({sub}, result {result}, restarted {restarts} times)");
    if active == "failed" || (max_restarts > 0 && restarts >= max_restarts) {
        return Err(Error::Hopeless(format!("gave up: the unit is {what}")));
    }
    Err(Error::Unhealthy(format!("the unit is {what}")))
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
    run_checks_settled(checks, deadline, interval, Duration::ZERO, &|_| {})
}

/// Runs all checks every `interval` until they pass together, then until
/// they have kept passing for `settle` (a failure starts the wait again).
/// Unhealthy ([`Error::Unhealthy`], the failures of the last round) when
/// they do not pass by `deadline` or fail after it, or at once when a check
/// is [`Error::Hopeless`].
pub fn run_checks_settled(
    checks: &[Box<dyn Check>],
    deadline: Duration,
    interval: Duration,
    settle: Duration,
    log: &dyn Fn(&str),
) -> Result<()> {
    let start = Instant::now();
    let mut passing_since: Option<Instant> = None;
    loop {
        let mut hopeless = false;
        let failures: Vec<String> = checks
            .iter()
            .filter_map(|c| {
                let e = c.run().err()?;
                hopeless |= matches!(e, Error::Hopeless(_));
                Some(format!("{}: {e}", c.name()))
            })
            .collect();
        if hopeless {
            return Err(Error::Unhealthy(failures.join("; ")));
        }
        if failures.is_empty() {
            let since = *passing_since.get_or_insert_with(|| {
                if !settle.is_zero() {
                    log(&format!(
                        "health: all checks pass; they must keep passing for {} s",
                        settle.as_secs()
                    ));
                }
                Instant::now()
            });
            if since.elapsed() >= settle {
                return Ok(());
            }
        } else {
            if passing_since.take().is_some() {
                log(&format!(
                    "health: a check failed while settling: {}",
                    failures.join("; ")
                ));
            }
            if start.elapsed() + interval > deadline {
                return Err(Error::Unhealthy(failures.join("; ")));
            }
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
        (ctx.log)(&format!(
            "health: step 8: slot {booted} ({} {}) runs on trial: checking it",
            p.target, p.version
        ));
        match checks() {
            Ok(()) => {
                // 9. Commit.
                (ctx.log)(&format!("health: step 9: committing slot {booted}"));
                ctx.boot.mark_good(booted)?;
                // 10. Raise the floor (only now: the box can no longer need the old slot).
                st.epoch_floor = st.epoch_floor.max(p.epoch);
                st.failed.retain(|s| s != &p.sha256);
                st.pending = None;
                st.staged_boot_id = None;
                let good_time = clock.now().min(p.meta_expires);
                st.last_good_time = Some(good_time);
                // Owed to the new slot, durable with the commit itself.
                if !ctx.after_commit.is_empty() {
                    st.after_commit = Some(AfterCommit {
                        slot: booted,
                        version: p.version.clone(),
                        remaining: ctx.after_commit.clone(),
                        last_error: None,
                        attempts: 0,
                    });
                }
                // 11. Report.
                st.last_install = Some(Record {
                    at: clock.now(),
                    ok: true,
                    message: format!("{} {} committed in slot {booted}", p.target, p.version),
                });
                store.save(&st)?;
                clock.observe(ctx.files, good_time)?;
                (ctx.log)(&format!(
                    "health: step 10-11: slot {booted} committed, epoch floor {}",
                    st.epoch_floor
                ));
                Ok(Outcome::Committed {
                    slot: booted,
                    version: p.version,
                    floor: st.epoch_floor,
                })
            }
            Err(e) => {
                let reason = e.to_string();
                (ctx.log)(&format!(
                    "health: slot {booted} failed its checks ({reason}): marking it bad"
                ));
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
                (ctx.log)(&format!(
                    "health: slot {} ({}) used its tries without committing: marking it bad",
                    p.slot, p.version
                ));
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

/// What [`run_after_commit`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterCommitOutcome {
    /// Every command owed to the slot exited 0.
    Done { slot: SlotId, ran: usize },
    /// One failed (or could not start); it and the rest run again at the
    /// next boot.
    Failed { slot: SlotId, error: String },
    /// The slot they were owed to is not the committed slot running now
    /// (the box went back to the other slot): dropped.
    Dropped { slot: SlotId },
}

/// Runs the `[health] after_commit` commands still owed to the running,
/// committed slot, in order, each removed from the state once it exited 0
/// (so an interrupted run, a failure or a power cut leaves the rest for the
/// next boot). A journal format migration belongs here: it runs only once
/// the slot can no longer be rolled back by boot counting.
pub fn run_after_commit(ctx: &Context<'_>) -> Result<Option<AfterCommitOutcome>> {
    let store = ctx.store();
    let mut st = store.load()?;
    let Some(mut owed) = st.after_commit.clone() else {
        return Ok(None);
    };
    let booted = ctx.boot.booted_slot()?;
    if booted != owed.slot || ctx.boot.slot_state(booted)? != BootState::Good {
        (ctx.log)(&format!(
            "health: after-commit commands of slot {} ({}) dropped: slot {booted} runs",
            owed.slot, owed.version
        ));
        st.after_commit = None;
        store.save(&st)?;
        return Ok(Some(AfterCommitOutcome::Dropped { slot: owed.slot }));
    }
    let mut ran = 0;
    while let Some(argv) = owed.remaining.first().cloned() {
        (ctx.log)(&format!(
            "health: after commit of slot {booted} ({}): running `{}`",
            owed.version,
            argv.join(" ")
        ));
        if let Err(e) = run_command(&argv) {
            owed.attempts += 1;
            owed.last_error = Some(e.to_string());
            (ctx.log)(&format!(
                "health: `{}` failed ({e}); it runs again at the next boot (attempt {})",
                argv.join(" "),
                owed.attempts
            ));
            st.after_commit = Some(owed);
            store.save(&st)?;
            return Ok(Some(AfterCommitOutcome::Failed {
                slot: booted,
                error: e.to_string(),
            }));
        }
        owed.remaining.remove(0);
        ran += 1;
        st.after_commit = (!owed.remaining.is_empty()).then(|| owed.clone());
        store.save(&st)?;
    }
    Ok(Some(AfterCommitOutcome::Done { slot: booted, ran }))
}
