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
            let since_ms = match since.as_deref().map(parse_since).transpose() {
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
    let j = Journal::open(crate::daemon::journal_config(cfg)).map_err(|e| {
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

/// `--since`: a duration ago, or a UTC date `YYYY-MM-DD`.
pub(super) fn parse_since(s: &str) -> Result<u64, String> {
    if let Ok(d) = config::parse_duration(s) {
        return Ok(crate::ops::clock::unix_ms().saturating_sub(d.as_millis() as u64));
    }
    let p: Vec<&str> = s.split('-').collect();
    let num = |x: &str| x.parse::<i64>().ok();
    match p.as_slice() {
        [y, m, d] if y.len() == 4 => match (num(y), num(m), num(d)) {
            (Some(y), Some(m @ 1..=12), Some(d @ 1..=31)) => {
                Ok((days_from_civil(y, m, d).max(0) as u64) * 86_400_000)
            }
            _ => Err(format!("{s:?}: not a date (YYYY-MM-DD)")),
        },
        _ => Err(format!(
            "{s:?}: give a duration ago (\"24h\", \"7d\") or a UTC date (\"2026-01-31\")"
        )),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_date_or_a_duration() {
        assert_eq!(parse_since("1970-01-02"), Ok(86_400_000));
        assert_eq!(parse_since("2000-03-01"), Ok(11_017 * 86_400_000));
        assert!(parse_since("7d").unwrap() < crate::ops::clock::unix_ms());
        assert!(parse_since("2026-13-01").is_err());
        assert!(parse_since("yesterday")
            .unwrap_err()
            .contains("duration ago"));
    }
}
