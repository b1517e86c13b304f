//! `gateway journal verify [--json]`, `gateway journal salvage --to DIR`
//! and `gateway journal migrate [--to 1|2]`: offline checks and rescue of
//! the journal when the daemon refuses to start (docs/durability.md,
//! "Verify and salvage"), and its format conversion (docs/durability.md,
//! "Journal format"). The daemon must be stopped: each says so if its
//! lock is held. The work is in the journal crate (`verify.rs`,
//! `salvage.rs`, `migrate.rs`); this is finding the directory and
//! printing. Exit codes: 0 clean (migrate: done), 1 problems found
//! (salvage: it still wrote the new journal), 2 the journal could not be
//! read or written.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::config;
use ::journal::migrate;
use ::journal::salvage::{self, SalvageReport};
use ::journal::verify::{self, VerifyReport};

#[derive(Subcommand)]
pub enum JournalCommand {
    /// Check every WAL record, every stored record and the indexes (daemon stopped);
    /// exit 0 clean, 1 problems (each named with its file + offset or key), 2 unreadable.
    Verify {
        #[command(flatten)]
        at: Where,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Build a new journal in DIR from everything intact; print the recovered and lost message ids.
    Salvage {
        #[command(flatten)]
        at: Where,
        /// The new journal's directory (must not exist or be empty).
        #[arg(long)]
        to: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Convert the journal's format (daemon stopped): 2 keeps large values in small chunks so a
    /// full disk cannot wedge sled; 1 is what a gateway older than format 2 reads (rollback).
    Migrate {
        #[command(flatten)]
        at: Where,
        /// The format to convert to: 2 (default) or 1.
        #[arg(long, default_value_t = migrate::FORMAT_CHUNKED)]
        to: u64,
        /// Do not convert now: leave a request that the daemon carries out
        /// before it next opens the journal (works while it runs; restart it
        /// after). The image's after-commit step.
        #[arg(long)]
        at_next_start: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct Where {
    /// The data directory (the journal is its `journal/`), or a journal
    /// directory itself; default: the config's `data_dir`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

pub fn run(config_path: &Path, cmd: JournalCommand) -> ExitCode {
    let (at, json) = match &cmd {
        JournalCommand::Verify { at, json }
        | JournalCommand::Salvage { at, json, .. }
        | JournalCommand::Migrate { at, json, .. } => (at, *json),
    };
    let dir = match journal_dir(config_path, at) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match &cmd {
        JournalCommand::Verify { .. } => match verify::verify(&dir) {
            Ok(r) => {
                print_verify(&r, json);
                if r.is_clean() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
            Err(e) => {
                eprintln!("gateway journal verify: {e}");
                ExitCode::from(2)
            }
        },
        JournalCommand::Migrate {
            to,
            at_next_start: true,
            ..
        } => match migrate::request(&dir, *to) {
            Ok(migrate::Requested::Written(path)) => {
                println!(
                    "journal {}: conversion to format {to} requested ({}): the gateway does it before it next opens the journal (systemctl restart gateway)",
                    dir.display(),
                    path.display()
                );
                ExitCode::SUCCESS
            }
            Ok(migrate::Requested::NoJournal) => {
                println!(
                    "journal {}: none yet; the gateway creates it in its newest format: nothing to do",
                    dir.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("gateway journal migrate: {e}");
                ExitCode::from(2)
            }
        },
        JournalCommand::Migrate { to, .. } => match migrate::migrate(&dir, *to) {
            Ok(r) => {
                if json {
                    println!("{}", to_json(&r));
                } else {
                    println!(
                        "journal {}: format {} -> {}: {} value(s), {} bytes rewritten",
                        r.dir.display(),
                        r.from_format,
                        r.to_format,
                        r.values,
                        r.bytes
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("gateway journal migrate: {e}");
                ExitCode::from(2)
            }
        },
        JournalCommand::Salvage { to, .. } => match salvage::salvage(&dir, to) {
            Ok(r) => {
                print_salvage(&r, json);
                if r.verify.is_clean() && r.lost.is_empty() && r.possibly_lost.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
            Err(e) => {
                eprintln!("gateway journal salvage: {e}");
                ExitCode::from(2)
            }
        },
    }
}

fn journal_dir(config_path: &Path, at: &Where) -> Result<PathBuf, String> {
    match &at.data_dir {
        Some(d) if d.join("journal").join("db").is_file() => Ok(d.join("journal")),
        Some(d) => Ok(d.clone()),
        None => config::load(config_path)
            .map(|c| c.journal_dir())
            .map_err(|e| format!("{e}\n(or pass --data-dir DIR)")),
    }
}

fn to_json<T: serde::Serialize>(t: &T) -> String {
    serde_json::to_string_pretty(t).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

fn print_verify(r: &VerifyReport, json: bool) {
    if json {
        println!("{}", to_json(r));
        return;
    }
    print_summary(r);
    if r.is_clean() {
        println!("OK: no problems found");
    } else {
        println!(
            "{} problem(s) found. The daemon will not start on a journal whose WAL is damaged; \
             `gateway journal salvage --to DIR` builds a new journal from what is intact \
             (docs/durability.md, \"Verify and salvage\").",
            r.findings.len()
        );
    }
}

fn print_summary(r: &VerifyReport) {
    println!(
        "journal {}: {} WAL segment(s), {} WAL record(s), {} replayed",
        r.dir.display(),
        r.wal_segments,
        r.wal_records,
        r.wal_replayed
    );
    let counts: Vec<String> = r.records.iter().map(|(k, n)| format!("{k}={n}")).collect();
    println!("records: {}", counts.join(" "));
    for f in &r.findings {
        println!("{}: {}", f.place, f.problem);
    }
}

fn print_salvage(r: &SalvageReport, json: bool) {
    if json {
        println!("{}", to_json(r));
        return;
    }
    print_summary(&r.verify);
    let kinds = |m: &std::collections::BTreeMap<String, u64>| {
        m.iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("copied: {}", kinds(&r.copied));
    println!("left out: {}", kinds(&r.skipped));
    println!(
        "recovered {} message(s): {}",
        r.recovered.len(),
        ranges(&r.recovered)
    );
    println!(
        "NOT recovered {} message(s): {}",
        r.lost.len(),
        ranges(&r.lost)
    );
    if let Some(why) = &r.possibly_lost_why {
        println!(
            "POSSIBLY LOST {} message(s): {} ({why}; check them against the sender)",
            r.possibly_lost.len(),
            ranges(&r.possibly_lost)
        );
    }
    if let Some(above) = r.verify.ids_unknown_above {
        println!(
            "UNKNOWN: damaged WAL records may have held messages above id {above} that nothing \
             left names; check the sender for anything it sent after message {above}"
        );
    }
    println!(
        "new journal: {}. To use it: stop the daemon, move the old journal aside (keep it), \
         move this one to <data_dir>/journal, start the daemon (docs/durability.md).",
        r.to.display()
    );
}

/// `1-250,252,260-300` (ids ascending); `none` when empty.
fn ranges(ids: &[u64]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let start = ids[i];
        while i + 1 < ids.len() && ids[i + 1] == ids[i] + 1 {
            i += 1;
        }
        out.push(if ids[i] == start {
            start.to_string()
        } else {
            format!("{start}-{}", ids[i])
        });
        i += 1;
    }
    if out.is_empty() {
        "none".into()
    } else {
        out.join(",")
    }
}
