//! `gateway messages search|show`: find a message in the running daemon's
//! journal and tell its journey, through the admin socket
//! (`ops/messages.rs` answers). Search output streams: each page is printed
//! as it arrives. Nothing printed carries PHI except `show --raw`, which
//! the daemon audits.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::ops::admin::{self, ClientError, Reply, Request};
use crate::ops::messages::{Journey, MessageRow, SearchQuery, PAGE_MAX};

#[derive(Subcommand)]
pub enum MessagesCommand {
    /// Find messages, newest first: id, received time, source, type, control id, state per destination.
    Search(SearchArgs),
    /// One message's journey: received, each destination's attempts, dead letter, replays and who did them.
    Show {
        /// The message id (first column of `gateway messages search`).
        id: u64,
        /// Also print the HL7 message (contains PHI; the view is audited).
        #[arg(long)]
        raw: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct SearchArgs {
    /// The sender's control id (HL7 MSH-10).
    #[arg(long)]
    control_id: Option<String>,
    /// The message type, e.g. ORU^R01.
    #[arg(long = "type")]
    message_type: Option<String>,
    /// The listener, poller or pickup it came from.
    #[arg(long)]
    source: Option<String>,
    /// A destination it was routed to.
    #[arg(long)]
    destination: Option<String>,
    /// pending, delivered, dead or filtered (on --destination, if given).
    #[arg(long)]
    state: Option<String>,
    /// Received at or after: "2h" (ago), "2026-12-01" or "2026-12-01T08:30:00Z" (UTC).
    #[arg(long)]
    since: Option<String>,
    /// Received at or before (same forms).
    #[arg(long)]
    until: Option<String>,
    /// The patient's MRN (PID-3), or MRN^^^AUTHORITY. A PHI lookup: audited.
    #[arg(long)]
    patient: Option<String>,
    /// Most messages to print.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

pub async fn run(config_path: &Path, cmd: MessagesCommand) -> ExitCode {
    let socket = match super::admin_socket_of(config_path) {
        Ok(s) => s,
        Err(code) => return code,
    };
    match cmd {
        MessagesCommand::Search(a) => search(&socket, a).await,
        MessagesCommand::Show { id, raw, json } => show(&socket, id, raw, json).await,
    }
}

fn fail(e: ClientError) -> ExitCode {
    match e {
        ClientError::NotRunning(m) | ClientError::Failed(m) => eprintln!("{m}"),
    }
    ExitCode::FAILURE
}

async fn search(socket: &Path, a: SearchArgs) -> ExitCode {
    let time = |flag: &str, v: &Option<String>| match v
        .as_deref()
        .map(crate::ops::clock::parse_time)
        .transpose()
    {
        Ok(t) => Ok(t),
        Err(e) => Err(format!("--{flag} {e}")),
    };
    let (since_ms, until_ms) = match (time("since", &a.since), time("until", &a.until)) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let mut q = SearchQuery {
        control_id: a.control_id,
        message_type: a.message_type,
        source: a.source,
        destination: a.destination,
        state: a.state,
        since_ms,
        until_ms,
        patient: a.patient,
        before: None,
        limit: 0,
    };
    let mut left = a.limit;
    let mut printed = 0usize;
    let mut out = std::io::stdout().lock();
    if !a.json {
        let _ = writeln!(
            out,
            "{:>8}  {:<20}  {:<12}  {:<10}  {:<20}  STATE",
            "ID", "RECEIVED (UTC)", "SOURCE", "TYPE", "CONTROL ID"
        );
    }
    while left > 0 {
        q.limit = left.min(PAGE_MAX);
        let page = match admin::request(socket, &Request::MessagesSearch(q.clone())).await {
            Ok(Reply::Messages { items, next_before }) => (items, next_before),
            Ok(Reply::Error { message }) => {
                eprintln!("{message}");
                return ExitCode::FAILURE;
            }
            Ok(_) => {
                eprintln!("unexpected reply from the daemon");
                return ExitCode::FAILURE;
            }
            Err(e) => return fail(e),
        };
        for row in &page.0 {
            let _ = if a.json {
                writeln!(out, "{}", serde_json::to_string(row).unwrap_or_default())
            } else {
                writeln!(out, "{}", row_line(row))
            };
            printed += 1;
        }
        let _ = out.flush();
        left = left.saturating_sub(page.0.len());
        match page.1 {
            Some(before) => q.before = Some(before),
            None => break,
        }
    }
    if !a.json && printed == 0 {
        let _ = writeln!(out, "(no message matches)");
    }
    ExitCode::SUCCESS
}

fn row_line(r: &MessageRow) -> String {
    let states = if r.filtered {
        "filtered (no route)".to_string()
    } else if r.destinations.is_empty() {
        "unknown (received before the trace index)".to_string()
    } else {
        r.destinations
            .iter()
            .map(|d| format!("{}={}", d.destination, d.state))
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "{:>8}  {:<20}  {:<12}  {:<10}  {:<20}  {states}",
        r.id,
        r.received_at.get(..19).unwrap_or(&r.received_at),
        r.source,
        r.message_type,
        r.control_id
    )
}

async fn show(socket: &Path, id: u64, raw: bool, json: bool) -> ExitCode {
    match admin::request(socket, &Request::MessagesShow { id, raw }).await {
        Ok(Reply::MessageJourney(j)) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&j).unwrap_or_default());
            } else {
                print!("{}", journey_text(&j));
            }
            ExitCode::SUCCESS
        }
        Ok(Reply::Error { message }) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
        Ok(_) => {
            eprintln!("unexpected reply from the daemon");
            ExitCode::FAILURE
        }
        Err(e) => fail(e),
    }
}

fn journey_text(j: &Journey) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "message {}  {}  control id {}  ({} bytes, {})",
        j.id, j.message_type, j.control_id, j.bytes, j.kind
    );
    let ack = match &j.ack {
        Some(code) => format!("ACK {code} sent"),
        None => "no ACK asked for".into(),
    };
    let _ = writeln!(
        s,
        "  received  {}  from {} ({}), {ack}",
        j.received_at, j.source, j.peer
    );
    if j.filtered {
        let _ = writeln!(s, "  filtered  no route takes it: journaled, not sent");
    }
    for d in &j.destinations {
        let mut line = format!("  → {:<14} {}", d.destination, d.state);
        if d.failures > 0 {
            let _ = write!(line, ", {} failed attempt(s)", d.failures);
        }
        if let Some(t) = &d.first_attempt_at {
            let _ = write!(line, ", first {t}");
        }
        if let Some(t) = &d.last_attempt_at {
            let _ = write!(line, ", last {t}");
        }
        if let Some(seq) = d.dead_letter {
            let _ = write!(line, "; dead letter {seq} (`gateway dlq show {seq}`)");
        }
        let _ = writeln!(s, "{line}");
        for (i, a) in d.attempts.iter().enumerate() {
            if i == 1 && d.attempts_elided > 0 {
                let _ = writeln!(s, "      … {} more failed attempt(s)", d.attempts_elided);
            }
            let _ = writeln!(s, "      {}  failed ({}): {}", a.at, a.outcome, a.error);
        }
        if let Some(t) = &d.delivered_at {
            let _ = writeln!(s, "      {t}  delivered");
        }
        if let Some(e) = &d.last_error {
            let _ = writeln!(s, "      last error: {e}");
        }
    }
    if !j.events.is_empty() {
        let _ = writeln!(s, "  journey (audit trail):");
        for e in &j.events {
            let mut line = format!("    {}  {:<12}", e.at, e.kind);
            if let Some(d) = &e.destination {
                let _ = write!(line, " {d}");
            }
            if let Some(o) = &e.operator {
                let _ = write!(line, " by {o}");
            }
            let _ = writeln!(s, "{line}");
        }
    }
    if j.events_truncated {
        let _ = writeln!(
            s,
            "  (audit trail read only part of the way after the receipt; `gateway audit export` has it all)"
        );
    }
    if let Some(raw) = &j.raw {
        let _ = writeln!(s, "\n{}", raw.trim_end());
    }
    s
}
