//! `updater check`: fetch and verify the signed metadata; say what would be
//! installed (waves apply).

use super::session::Session;
use serde_json::json;
use std::process::ExitCode;
use updater::config::Config;
use updater::plan::Plan;
use updater::Result;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    json: bool,
}

pub fn run(c: &Config, args: &Args) -> Result<ExitCode> {
    let s = Session::locked(c)?;
    let (clock, v) = s.check(None)?;
    let (kind, msg) = match s.plan(&v, &clock, true)? {
        Plan::Install(t) => (
            "update",
            format!("{} {} (epoch {}) is available", t.name, t.version, t.epoch),
        ),
        Plan::Wait(m) => ("wait", m),
        Plan::None(m) => ("none", m),
    };
    if args.json {
        println!("{}", json!({"result": kind, "message": msg}));
    } else {
        println!("{msg}");
    }
    Ok(ExitCode::SUCCESS)
}
