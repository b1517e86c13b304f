//! `updater health`: the boot-time health check (install steps 8–11):
//! commit the trial slot, or roll it back.

use super::{session::Session, status};
use std::process::ExitCode;
use updater::config::Config;
use updater::health::{self, AfterCommitOutcome, Check, Outcome};
use updater::Result;

pub fn run(c: &Config) -> Result<ExitCode> {
    let s = Session::locked(c)?;
    let mut clock = s.clock()?;
    let ctx = s.context()?;
    let list = checks(c);
    let h = &c.health;
    let run = || {
        health::run_checks_settled(
            &list,
            h.deadline,
            h.interval,
            h.settle,
            &super::session::log,
        )
    };
    let outcome = health::after_boot(&ctx, &run, &mut clock)?;
    if !matches!(outcome, Outcome::RolledBack { .. }) {
        // Owed to a committed slot (this boot's commit, or an earlier one
        // whose commands were interrupted or failed).
        match health::run_after_commit(&ctx)? {
            Some(AfterCommitOutcome::Done { slot, ran }) => {
                println!("slot {slot}: {ran} after-commit command(s) done")
            }
            Some(AfterCommitOutcome::Failed { slot, error }) => {
                eprintln!("updater: slot {slot}: after-commit command failed ({error}); retried at the next boot")
            }
            Some(AfterCommitOutcome::Dropped { slot }) => {
                println!(
                    "slot {slot} is not running committed: its after-commit commands were dropped"
                )
            }
            None => {}
        }
        // A config apply a power cut interrupted.
        if let Some(said) = super::config::resume(&s)? {
            println!("{said}");
        }
    }
    status::write_report(&s)?;
    match outcome {
        Outcome::Committed {
            slot,
            version,
            floor,
        } => {
            println!("slot {slot} ({version}) is healthy and committed; epoch floor {floor}");
            Ok(ExitCode::SUCCESS)
        }
        Outcome::RolledBack { slot, reason } => {
            eprintln!("updater: slot {slot} failed its health check ({reason}); marked bad, rebooting into the known-good slot");
            s.reboot()?;
            Ok(ExitCode::FAILURE)
        }
        Outcome::TrialNeverCameUp { slot, version } => {
            println!(
                "slot {slot} ({version}) never came up; marked bad, staying on the known-good slot"
            );
            Ok(ExitCode::SUCCESS)
        }
        Outcome::WaitingForReboot { slot } => {
            println!("slot {slot} is staged and waits for a reboot");
            Ok(ExitCode::SUCCESS)
        }
        Outcome::Healthy => {
            println!("healthy");
            Ok(ExitCode::SUCCESS)
        }
        Outcome::Unhealthy(e) => {
            // The committed slot: nothing better to fall back to; say so and
            // let systemd's boot-complete logic see the failure.
            eprintln!("updater: unhealthy: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The checks `[health]` asks for.
pub fn checks(c: &Config) -> Vec<Box<dyn Check>> {
    let mut v: Vec<Box<dyn Check>> = Vec::new();
    if let Some(g) = &c.health.gateway_config {
        // An unreadable gateway config fails the check (a trial slot without
        // a working gateway config must roll back), it does not abort it.
        match health::gateway_checks(&c.health.gateway_bin, g) {
            Ok(list) => v.extend(list),
            Err(e) => v.push(Box::new(health::Failing(e.to_string()))),
        }
    }
    for u in &c.health.units {
        v.push(Box::new(health::UnitActive {
            unit: u.clone(),
            max_restarts: c.health.max_restarts,
        }));
    }
    for cmd in &c.health.commands {
        v.push(Box::new(health::CommandOk(cmd.clone())));
    }
    for a in &c.health.tcp {
        v.push(Box::new(health::TcpListening(*a)));
    }
    v
}
