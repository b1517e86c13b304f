//! `updater`: the command line. Parses the arguments, loads the
//! configuration once and runs one verb from `cli/`. See docs/updates.md.

mod cli;

use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use updater::config::Config;
use updater::Result;

#[derive(Parser)]
#[command(name = "updater", version, about = "Clinic Gateway signed A/B updater")]
struct Cli {
    /// The updater's configuration.
    #[arg(long, global = true, default_value = "/etc/updater/updater.toml")]
    config: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Fetch and verify the signed metadata; say what would be installed.
    Check(cli::check::Args),
    /// Check, then download, write, verify and stage the update; reboot into
    /// it inside the maintenance window.
    Install(cli::install::Args),
    /// Boot-time health check: commit the trial slot, or roll it back.
    Health,
    /// Slots, epoch floor, last check, download progress, wave.
    Status(cli::status::Args),
    /// MSP tooling: make, sign and publish a repository.
    #[command(subcommand)]
    Repo(cli::repo::Cmd),
    /// Write shell completions and man pages under DIR (for scripts/deb).
    #[command(hide = true)]
    CliDocs {
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("updater: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Cli) -> Result<ExitCode> {
    // Every verb but `repo` works on this box, as the configuration says.
    let config = || Config::load(&args.config);
    if let Some(version) = stands_aside(&args.cmd) {
        let msg = updater::deb_install::message(&version);
        if let Cmd::Status(a) = &args.cmd {
            if a.json {
                let v = serde_json::json!({
                    "install": "deb", "updates": "apt", "version": version, "message": msg,
                });
                println!("{v}");
            } else {
                println!("{msg}");
            }
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!("updater: {msg}");
        return Ok(ExitCode::from(updater::deb_install::EXIT_STANDS_ASIDE));
    }
    match args.cmd {
        Cmd::CliDocs { out } => {
            let files = cli_docs::write(Cli::command(), "updater", &out).map_err(|source| {
                updater::Error::Io {
                    path: out.clone(),
                    action: "write completions and man pages",
                    source,
                }
            })?;
            for f in files {
                println!("{f}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Repo(r) => cli::repo::run(r).map(|()| ExitCode::SUCCESS),
        Cmd::Check(a) => cli::check::run(&config()?, &a),
        Cmd::Install(a) => cli::install::run(&config()?, &a),
        Cmd::Health => cli::health::run(&config()?),
        Cmd::Status(a) => cli::status::run(&config()?, &a),
    }
}

/// On a .deb install the verbs that work on this box's slots stand aside
/// (the MSP's `repo` tooling and `cli-docs` still run). Checked before the
/// configuration is loaded: the package ships no updater.toml.
fn stands_aside(cmd: &Cmd) -> Option<String> {
    match cmd {
        Cmd::Repo(_) | Cmd::CliDocs { .. } => None,
        Cmd::Check(_) | Cmd::Install(_) | Cmd::Health | Cmd::Status(_) => {
            updater::deb_install::detect(std::path::Path::new(updater::deb_install::MARKER))
        }
    }
}
