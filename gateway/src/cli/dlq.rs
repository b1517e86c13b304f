//! `gateway dlq list|show|replay|purge`: the dead-letter queue of the
//! running daemon, through its admin socket.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;

use crate::config;
use crate::ops::admin::{self, ClientError, Reply, Request};
use crate::ops::clock;
use journal::DeadLetter;

#[derive(Subcommand)]
pub enum DlqCommand {
    /// List dead letters, oldest first.
    List {
        #[arg(long)]
        destination: Option<String>,
        #[arg(long)]
        json: bool,
        /// Most entries to print.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Show one dead letter: why it failed, and the message it holds.
    Show {
        /// The dead letter's id (first column of `gateway dlq list`).
        id: u64,
        #[arg(long)]
        json: bool,
        /// Also print the HL7 message (contains PHI).
        #[arg(long)]
        raw: bool,
    },
    /// Put dead letters back on their outbox, in the order received.
    Replay {
        /// One dead letter's id.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<u64>,
        /// Every dead letter (of --destination, if given).
        #[arg(long)]
        all: bool,
        #[arg(long)]
        destination: Option<String>,
    },
    /// Delete dead letters for good (audited).
    Purge {
        #[arg(required_unless_present = "older_than", conflicts_with = "older_than")]
        id: Option<u64>,
        /// Every dead letter older than this, e.g. "30d", "12h".
        #[arg(long)]
        older_than: Option<String>,
        #[arg(long)]
        destination: Option<String>,
    },
}

/// Who asked, for the audit trail.
pub(crate) fn operator() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata("/proc/self")
                .map(|m| format!("uid {}", m.uid()))
                .unwrap_or_else(|_| "unknown user".into())
        });
    format!("{user} via cli")
}

pub async fn run(config_path: &Path, cmd: DlqCommand) -> ExitCode {
    let cfg = match config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let (req, json) = match &cmd {
        DlqCommand::List {
            destination,
            json,
            limit,
        } => (
            Request::DlqList {
                destination: destination.clone(),
                after: None,
                limit: *limit,
            },
            *json,
        ),
        DlqCommand::Show { id, json, raw } => (
            Request::DlqShow {
                seq: *id,
                raw: *raw,
            },
            *json,
        ),
        DlqCommand::Replay {
            id, destination, ..
        } => (
            Request::DlqReplay {
                seq: *id,
                destination: destination.clone(),
                operator: operator(),
            },
            false,
        ),
        DlqCommand::Purge {
            id,
            older_than,
            destination,
        } => {
            let older_than_ms = match older_than.as_deref().map(config::parse_duration) {
                None => None,
                Some(Ok(d)) => Some(d.as_millis() as u64),
                Some(Err(e)) => {
                    eprintln!("--older-than: {e}");
                    return ExitCode::FAILURE;
                }
            };
            (
                Request::DlqPurge {
                    seq: *id,
                    older_than_ms,
                    destination: destination.clone(),
                    operator: operator(),
                },
                false,
            )
        }
    };
    if let Some(d) = match &cmd {
        DlqCommand::List { destination, .. }
        | DlqCommand::Replay { destination, .. }
        | DlqCommand::Purge { destination, .. } => destination.as_ref(),
        DlqCommand::Show { .. } => None,
    } {
        if !cfg.destinations.iter().any(|x| &x.name == d) {
            eprintln!(
                "note: '{d}' is not a destination in {} (it may have been removed; its dead letters are still shown)",
                cfg.source.display()
            );
        }
    }
    match admin::request(&cfg.admin_socket(), &req).await {
        Ok(Reply::DeadLetters { items, more }) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&items).unwrap_or_default()
                );
            } else {
                print!("{}", render_list(&items));
                if more {
                    println!("(more entries: raise --limit or use --destination)");
                }
            }
            ExitCode::SUCCESS
        }
        Ok(Reply::DeadLetterDetail { item, message }) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"dead_letter": item, "message": message})
                    )
                    .unwrap_or_default()
                );
            } else {
                print!("{}", render_detail(&item));
                match message {
                    Some(m) => {
                        println!(
                            "message:      {} control id {} from listener {}, received {}, {} bytes",
                            m.message_type, m.control_id, m.listener, m.received_at, m.bytes
                        );
                        if let Some(raw) = m.raw {
                            println!("\n{raw}");
                        }
                    }
                    None => println!("message:      missing from the journal"),
                }
            }
            ExitCode::SUCCESS
        }
        Ok(Reply::Moved { items }) => {
            let verb = if matches!(cmd, DlqCommand::Replay { .. }) {
                "replayed"
            } else {
                "purged"
            };
            for m in &items {
                println!(
                    "{verb} dead letter {} (message {} on {})",
                    m.seq, m.message_id, m.destination
                );
            }
            println!("{} dead letter(s) {verb}", items.len());
            ExitCode::SUCCESS
        }
        Ok(Reply::Error { message }) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
        Ok(_) => {
            eprintln!("error: the daemon answered with an unexpected reply");
            ExitCode::FAILURE
        }
        Err(ClientError::NotRunning(msg)) => {
            eprintln!("{msg}");
            ExitCode::from(3)
        }
        Err(ClientError::Failed(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn ago(ms: u64) -> String {
    super::status::human_duration(clock::unix_ms().saturating_sub(ms) / 1000)
}

pub fn render_list(items: &[DeadLetter]) -> String {
    if items.is_empty() {
        return "the dead-letter queue is empty\n".into();
    }
    let mut out = format!(
        "{:>6} {:<16} {:>9} {:>8} {:>9}  {}\n",
        "ID", "DESTINATION", "MESSAGE", "ATTEMPTS", "DEAD FOR", "LAST ERROR"
    );
    for d in items {
        let err: String = d.last_error.chars().take(100).collect();
        out += &format!(
            "{:>6} {:<16} {:>9} {:>8} {:>9}  {}\n",
            d.seq,
            d.destination,
            d.message_id,
            d.attempts,
            ago(d.dead_at_ms),
            err
        );
    }
    out
}

pub fn render_detail(d: &DeadLetter) -> String {
    format!(
        "dead letter:  {}\ndestination:  {}\nmessage id:   {}\ntransform:    {}\nattempts:     {}\nfirst try:    {} ({} ago)\nlast try:     {} ({} ago)\ndead since:   {} ({} ago)\nlast error:   {}\nto retry:     gateway dlq replay {}\n",
        d.seq,
        d.destination,
        d.message_id,
        d.transform,
        d.attempts,
        clock::iso8601(d.first_attempt_ms),
        ago(d.first_attempt_ms),
        clock::iso8601(d.last_attempt_ms),
        ago(d.last_attempt_ms),
        clock::iso8601(d.dead_at_ms),
        ago(d.dead_at_ms),
        d.last_error,
        d.seq
    )
}
