//! `gateway audit verify`: check the audit trail's hash chain, and
//! `gateway audit export`: print its events, streamed page by page
//! (docs/audit.md). Verify asks the running daemon; with none running, it
//! opens the journal itself.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;

use crate::config;
use crate::ops::admin::{self, ClientError, Reply, Request};
use journal::{AuditVerify, ChainHead, Journal};

/// `verify` exit codes (docs/audit.md): intact; tampering found; could not check.
const INTACT: u8 = 0;
const TAMPERED: u8 = 1;
const CANNOT_CHECK: u8 = 2;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain: exit 0 intact, 1 an event was edited, removed or
    /// reordered (the first bad one is named), 2 the check could not run.
    Verify {
        /// A chain head seen elsewhere (syslog collector, fleet heartbeat) as
        /// SEQ:HASH: also proves the trail's tail was not cut.
        #[arg(long)]
        head: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Print the audit events, oldest first (one JSON object a line with
    /// --json), each with its seq and chain hash.
    Export {
        /// Only events from then on: a duration ago ("24h", "7d") or a UTC
        /// date ("2026-01-31").
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(config_path: &Path, cmd: AuditCommand) -> ExitCode {
    let cfg = match config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(CANNOT_CHECK);
        }
    };
    match cmd {
        AuditCommand::Export { since, json } => {
            let since_ms = match since
                .as_deref()
                .map(crate::ops::clock::parse_since)
                .transpose()
            {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("--since {e}");
                    return ExitCode::from(CANNOT_CHECK);
                }
            };
            export(&cfg, since_ms, json).await
        }
        AuditCommand::Verify { head, json } => {
            if let Some(Err(e)) = head.as_deref().map(ChainHead::parse) {
                eprintln!("--head {e}");
                return ExitCode::from(CANNOT_CHECK);
            }
            let req = Request::AuditVerify { head: head.clone() };
            let report = match admin::request(&cfg.admin_socket(), &req).await {
                Ok(Reply::AuditVerify(r)) => *r,
                Ok(Reply::Error { message }) => {
                    eprintln!("error: {message}");
                    return ExitCode::from(CANNOT_CHECK);
                }
                Ok(_) => {
                    eprintln!("error: the daemon answered with an unexpected reply");
                    return ExitCode::from(CANNOT_CHECK);
                }
                Err(ClientError::NotRunning(_)) => match offline(&cfg, head.as_deref()).await {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(CANNOT_CHECK);
                    }
                },
                Err(ClientError::Failed(msg)) => {
                    eprintln!("error: {msg}");
                    return ExitCode::from(CANNOT_CHECK);
                }
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            } else {
                print!("{}", render(&report));
            }
            ExitCode::from(if report.ok() { INTACT } else { TAMPERED })
        }
    }
}

/// No daemon: open the journal (its lock keeps a daemon from starting
/// meanwhile) and walk the chain here. The open itself adds a
/// `journal_open` event, as every open does.
async fn offline(cfg: &config::Config, head: Option<&str>) -> Result<AuditVerify, String> {
    let head = head.map(ChainHead::parse).transpose()?;
    let dir = cfg.journal_dir();
    // Never create an empty journal and call it intact (a wrong data_dir).
    if !dir.join("db").exists() {
        return Err(format!(
            "no daemon is running and there is no journal in {} (check data_dir in the config)",
            dir.display()
        ));
    }
    let jcfg = crate::daemon::journal_config(cfg).map_err(|e| e.to_string())?;
    let j = Journal::open(jcfg).map_err(|e| {
        format!(
            "no daemon is running and the journal {} does not open: {e}",
            dir.display()
        )
    })?;
    let r = j.audit_verify(head).map_err(|e| e.to_string());
    let _ = j.close().await;
    r
}

pub fn render(r: &AuditVerify) -> String {
    let mut out = format!(
        "checked {} audit event(s) ({} from before the chain)\nanchor {}\nhead   {}\n",
        r.checked, r.genesis, r.anchor, r.head
    );
    if let Some(h) = &r.checked_head {
        out += &format!("against head {h}\n");
    }
    if let Some(n) = &r.note {
        out += &format!("note: {n}\n");
    }
    match &r.problem {
        None => out += "OK: the audit trail is intact\n",
        Some(p) => out += &format!("TAMPERED: event {} ({:?}): {}\n", p.seq, p.kind, p.detail),
    }
    out
}

/// Page through the daemon's trail, printing as it goes.
async fn export(cfg: &config::Config, since_ms: Option<u64>, json: bool) -> ExitCode {
    use std::io::Write;
    let mut after = None;
    let mut out = std::io::stdout().lock();
    loop {
        let req = Request::AuditExport {
            after,
            since_ms,
            limit: 1000,
        };
        let (items, next) = match admin::request(&cfg.admin_socket(), &req).await {
            Ok(Reply::AuditEvents { items, next_after }) => (items, next_after),
            Ok(Reply::Error { message }) => {
                eprintln!("error: {message}");
                return ExitCode::FAILURE;
            }
            Ok(_) => {
                eprintln!("error: the daemon answered with an unexpected reply");
                return ExitCode::FAILURE;
            }
            Err(ClientError::NotRunning(msg)) => {
                eprintln!("{msg}");
                return ExitCode::from(3);
            }
            Err(ClientError::Failed(msg)) => {
                eprintln!("error: {msg}");
                return ExitCode::FAILURE;
            }
        };
        for e in &items {
            let line = if json {
                serde_json::to_string(e).unwrap_or_default()
            } else {
                format!(
                    "{} {} {} {} hash={}",
                    e.seq,
                    crate::ops::clock::iso8601(e.at_ms),
                    e.kind,
                    e.detail,
                    e.hash.as_deref().unwrap_or("-")
                )
            };
            // A closed pipe (`| head`) ends the export quietly.
            if writeln!(out, "{line}").is_err() {
                return ExitCode::SUCCESS;
            }
        }
        match next {
            Some(n) => after = Some(n),
            None => return ExitCode::SUCCESS,
        }
    }
}
