//! `updater health`: the boot-time health check (install steps 8–11):
//! commit the trial slot, or roll it back.

use super::{session::Session, status};
use std::process::ExitCode;
use updater::config::Config;
use updater::health::{self, Check, Outcome};
use updater::Result;

pub fn run(c: &Config) -> Result<ExitCode> {
    let s = Session::locked(c)?;
    let mut clock = s.clock()?;
    let ctx = s.context()?;
    let list = checks(c);
    let run = || health::run_checks(&list, c.health.deadline, c.health.interval);
    let outcome = health::after_boot(&ctx, &run, &mut clock)?;
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
fn checks(c: &Config) -> Vec<Box<dyn Check>> {
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
        v.push(Box::new(health::UnitActive(u.clone())));
    }
    for cmd in &c.health.commands {
        v.push(Box::new(health::CommandOk(cmd.clone())));
    }
    for a in &c.health.tcp {
        v.push(Box::new(health::TcpListening(*a)));
    }
    v
}
