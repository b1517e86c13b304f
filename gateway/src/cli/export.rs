//! `gateway export run|status|cancel`: the running daemon's `[[export]]`
//! jobs, through its admin socket. Every run and cancel is audited there.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;

use super::dlq::operator;
use super::status::human_duration;
use crate::ops::admin::{self, ClientError, Reply, Request};
use crate::ops::clock;
use crate::source::export::job::ExportStatus;

#[derive(Subcommand)]
pub enum ExportCommand {
    /// Start a job now.
    Run {
        name: String,
        /// Everything, without `_since`.
        #[arg(long)]
        full: bool,
        /// Print progress until the job ends; exit 1 if it failed.
        #[arg(long)]
        wait: bool,
    },
    /// Each job's state, last success, next run and last error.
    Status {
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Stop the running job (DELETE on the server).
    Cancel { name: String },
}

async fn ask(socket: &Path, req: &Request) -> Result<Vec<ExportStatus>, String> {
    match admin::request(socket, req).await {
        Ok(Reply::Exports { items }) => Ok(items),
        Ok(Reply::Error { message }) => Err(message),
        Ok(_) => Err("unexpected reply from the daemon".into()),
        Err(ClientError::NotRunning(m) | ClientError::Failed(m)) => Err(m),
    }
}

pub async fn run(config_path: &Path, cmd: ExportCommand) -> ExitCode {
    let socket = match super::admin_socket_of(config_path) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let result = match cmd {
        ExportCommand::Status { name, json } => ask(&socket, &Request::ExportStatus { name })
            .await
            .map(|items| {
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&items).unwrap_or_default()
                    );
                } else {
                    print!("{}", render(&items, clock::unix_ms()));
                }
            }),
        ExportCommand::Cancel { name } => ask(
            &socket,
            &Request::ExportCancel {
                name: name.clone(),
                operator: operator(),
            },
        )
        .await
        .map(|_| println!("export '{name}': cancel sent")),
        ExportCommand::Run { name, full, wait } => {
            let before = ask(
                &socket,
                &Request::ExportRun {
                    name: name.clone(),
                    full,
                    operator: operator(),
                },
            )
            .await;
            match (before, wait) {
                (Err(e), _) => Err(e),
                (Ok(_), false) => {
                    println!("export '{name}': job requested");
                    Ok(())
                }
                (Ok(items), true) => return wait_for(&socket, &name, items).await,
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Poll the status until the job started after `before` ends.
async fn wait_for(socket: &Path, name: &str, before: Vec<ExportStatus>) -> ExitCode {
    let jobs_before = before.first().map_or(0, |s| s.history.jobs);
    let (ok_before, failed_before) = before
        .first()
        .map_or((0, 0), |s| (s.history.succeeded, s.history.failed));
    let mut last_line = String::new();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let items = match ask(
            socket,
            &Request::ExportStatus {
                name: Some(name.to_string()),
            },
        )
        .await
        {
            Ok(i) => i,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let Some(s) = items.first() else {
            return ExitCode::FAILURE;
        };
        let line = progress_line(s);
        if line != last_line {
            println!("{line}");
            last_line = line;
        }
        // Done once its resources have left the outboxes too (`to`).
        if s.history.succeeded > ok_before && s.state != "delivering" {
            return ExitCode::SUCCESS;
        }
        if s.history.failed > failed_before
            || (s.history.jobs >= jobs_before
                && s.state == "idle"
                && s.history.last_error.is_some()
                && s.job.is_some())
        {
            eprintln!(
                "export '{name}' failed: {}",
                s.history.last_error.as_deref().unwrap_or("unknown error")
            );
            return ExitCode::FAILURE;
        }
    }
}

fn progress_line(s: &ExportStatus) -> String {
    let mut l = format!("export {} (tenant {}): {}", s.name, s.tenant, s.state);
    if s.state == "downloading" {
        l += &format!(
            " {} of {} files, {} MB, {} resource(s)",
            s.files_done,
            s.files_total,
            s.bytes / 1_000_000,
            s.resources
        );
        if s.journaled > 0 {
            l += &format!(", {} journaled for delivery", s.journaled);
        }
    }
    if s.state == "delivering" {
        l += &format!(
            " {} resource(s) and tombstone(s) of the job still in the outboxes",
            s.pending_delivery
        );
    }
    if let Some(p) = &s.progress {
        l += &format!(" — {p}");
    }
    if let Some(p) = &s.paused {
        l += &format!(" — {p}");
    }
    l
}

/// The human form of `gateway export status` (also in `gateway status`).
pub(crate) fn render(items: &[ExportStatus], now_ms: u64) -> String {
    let mut out = String::new();
    for s in items {
        out += &format!("{}\n", progress_line(s));
        match (&s.history.last_success_ms, &s.history.last_transaction_time) {
            (Some(t), Some(tt)) => {
                out += &format!(
                    "  last success {} ago (transactionTime {tt}): {} resource(s), {} bad line(s), {} error outcome(s)\n",
                    human_duration(now_ms.saturating_sub(*t) / 1000),
                    s.history.last_resources,
                    s.history.last_bad_lines,
                    s.history.last_error_outcomes
                )
            }
            _ => out += "  no successful job yet\n",
        }
        if !s.history.last_error_issues.is_empty() {
            out += &format!(
                "  its error files' issues: {}\n",
                crate::source::export::error_summary::describe(&s.history.last_error_issues)
            );
        }
        match s.next_run_ms {
            Some(n) if n > now_ms => {
                out += &format!("  next run in {}\n", human_duration((n - now_ms) / 1000))
            }
            Some(_) => out += "  next run: now\n",
            None => out += "  next run: only on `gateway export run`\n",
        }
        if let Some(e) = &s.history.last_error {
            out += &format!("  last error: {e}\n");
        }
    }
    out
}
