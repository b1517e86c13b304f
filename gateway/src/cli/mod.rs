//! Command-line interface. `gateway` with no subcommand runs the daemon on
//! the development default config.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::config::{self, DEFAULT_CONFIG_PATH};

mod audit;
mod bench;
mod bench_drain;
mod bench_export;
mod bench_naive;
mod bench_result;
mod bench_segments;
mod bench_soak;
mod bench_sshd;
mod bench_start;
mod bench_translate;
mod bench_wear;
mod bench_x12;
mod dlq;
mod export;
mod journal;
mod messages;
mod send;
mod smb_conf;
mod status;
mod translate;
mod x12;

#[derive(Parser)]
#[command(
    name = "gateway",
    version,
    about = "Clinic Gateway: durable HL7 v2 interface engine"
)]
pub struct Cli {
    /// Configuration file (TOML). Relative paths inside it are relative to the file.
    #[arg(long, global = true, default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the daemon (the default when no subcommand is given).
    Run,
    /// Validate the configuration; on error print FILE:LINE:COLUMN: reason and exit 1.
    CheckConfig,
    /// Send HL7 files over MLLP(S) and print each ACK; exit 1 on AE/AR/CE/CR, timeout or error.
    Send(send::SendArgs),
    /// Show the running daemon's counts per listener and destination.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Inspect, replay or purge the running daemon's dead-letter queue.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// Find messages in the running daemon's journal and show each one's journey.
    #[command(subcommand)]
    Messages(messages::MessagesCommand),
    /// Run, watch or cancel the running daemon's FHIR Bulk Data exports.
    #[command(subcommand)]
    Export(export::ExportCommand),
    /// Check (verify) the audit trail's hash chain.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Benchmarks that report ratios against a baseline measured in the same run.
    #[command(subcommand)]
    Bench(bench::BenchKind),
    /// Record how systemd saw the run that just ended ($SERVICE_RESULT etc.),
    /// so the next start can raise the "restarted" alert. For the unit's ExecStopPost=.
    RecordStop,
    /// Print the FHIR Bundle the fhir transform makes of an HL7 file (or, with --to hl7, the ORU made of FHIR results).
    Translate(translate::TranslateArgs),
    /// Check X12 envelopes (with the TA1/999 they would get) or print a file's x12-json.
    #[command(subcommand)]
    X12(x12::X12Command),
    /// Print the Samba configuration that serves the pickup and folder-destination folders to eCW.
    SmbConf(smb_conf::SmbConfArgs),
    /// Write shell completions and man pages under DIR (for scripts/deb).
    #[command(hide = true)]
    CliDocs {
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify the journal, or salvage what is intact into a new one (daemon stopped).
    #[command(subcommand)]
    Journal(journal::JournalCommand),
}

pub fn main() -> ExitCode {
    // Before any thread exists: the daemon and the benches that stand in
    // for it run with the same allocator settings.
    crate::ops::allocator::limit_arenas();
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => run_daemon(&cli.config),
        Command::CheckConfig => match config::load(&cli.config) {
            Ok(c) if tls_problems(&c) > 0 => ExitCode::FAILURE,
            Ok(c) => {
                println!(
                    "{}: OK ({} listener(s), {} destination(s), {} route(s); data in {})",
                    cli.config.display(),
                    c.listeners.len(),
                    c.destinations.len(),
                    c.routes.len(),
                    c.data_dir.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Command::Send(args) => runtime().block_on(send::run(args)),
        Command::Status { json } => runtime().block_on(status::run(&cli.config, json)),
        Command::Dlq(cmd) => runtime().block_on(dlq::run(&cli.config, cmd)),
        Command::Messages(cmd) => runtime().block_on(messages::run(&cli.config, cmd)),
        Command::Export(cmd) => runtime().block_on(export::run(&cli.config, cmd)),
        Command::Audit(cmd) => runtime().block_on(audit::run(&cli.config, cmd)),
        Command::Bench(kind) => bench::run(kind),
        Command::Translate(args) => translate::run(args, &cli.config),
        Command::X12(cmd) => x12::run(cmd),
        Command::SmbConf(args) => smb_conf::run(&cli.config, args),
        Command::CliDocs { out } => match cli_docs::write(Cli::command(), "gateway", &out) {
            Ok(files) => {
                files.iter().for_each(|f| println!("{f}"));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!(
                    "{}: cannot write completions and man pages: {e}",
                    out.display()
                );
                ExitCode::FAILURE
            }
        },
        Command::Journal(cmd) => journal::run(&cli.config, cmd),
        Command::RecordStop => match config::load(&cli.config)
            .map_err(crate::Error::from)
            .and_then(|c| crate::ops::restart_markers::record_stop(&c.data_dir))
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Load every listener's certificate and key the way `run` will, so a bad PEM
/// file is caught by check-config rather than at start-up. Prints each problem.
fn tls_problems(cfg: &config::Config) -> usize {
    let mut problems = 0;
    for l in &cfg.listeners {
        if let Some(t) = &l.tls {
            if let Err(e) = crate::net::tls_config::server_config(t) {
                eprintln!("{}: listener '{}': {e}", cfg.source.display(), l.name);
                problems += 1;
            }
        }
    }
    if let Some(t) = cfg.status_page.as_ref().and_then(|s| s.tls.as_ref()) {
        if let Err(e) = crate::net::tls_config::server_config(t) {
            eprintln!("{}: status_page.tls: {e}", cfg.source.display());
            problems += 1;
        }
    }
    problems
}

/// The admin socket the config at `path` names, for the verbs that only
/// talk to the daemon; on a config error, printed, the exit code to return.
fn admin_socket_of(path: &std::path::Path) -> Result<PathBuf, ExitCode> {
    config::load(path).map(|c| c.admin_socket()).map_err(|e| {
        eprintln!("{e}");
        ExitCode::FAILURE
    })
}

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    }
}

fn run_daemon(path: &std::path::Path) -> ExitCode {
    crate::ops::logging::init();
    let cfg = match config::load(path) {
        Ok(c) => c,
        Err(e) => {
            log::error!(target: "gateway::daemon", "invalid configuration: {e}");
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    log::info!(target: "gateway::daemon", "Clinic Gateway {} starting with {}", env!("CARGO_PKG_VERSION"), cfg.source.display());
    match runtime().block_on(crate::daemon::run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!(target: "gateway::daemon", "{e}");
            ExitCode::FAILURE
        }
    }
}
