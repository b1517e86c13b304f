//! `gateway x12 check FILE... [--ack-dir DIR]` and `gateway x12 json FILE`:
//! the X12 envelope check and the x12-json transform, offline, for the
//! billing team and an interface analyst (the pure `x12` crate does the
//! work; this is reading files and printing).
//!
//! `check` prints per file the envelope summary (interchanges, groups,
//! sets with their control numbers, guides and segment counts), every
//! envelope error at its segment position with its TA1/999 code, and the
//! TA1/999 the gateway would send back; `--ack-dir` also writes those as
//! files (atomically: temp, fsync, rename). Exit 1 when a file cannot be
//! read or has envelope errors. The acknowledgments' own ISA13/GS06 come
//! from the clock here (seconds since the epoch, modulo 10^9, counting up
//! within one run); the daemon uses its durable counter instead.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use crate::ops::clock;
use ::x12::{AckHeader, AckKind, CheckOptions, Document, Stamp, Usage};

#[derive(Subcommand)]
pub enum X12Command {
    /// Check X12 envelopes; print the summary, every error with its segment
    /// position and the TA1/999 that would be sent; exit 1 on envelope errors.
    Check(CheckArgs),
    /// Print the x12-json of a file (docs/x12-json.md); exit 1 on envelope errors.
    Json(JsonArgs),
}

#[derive(Args)]
pub struct CheckArgs {
    /// The X12 files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Also write each TA1/999 to this directory, as `<file>.<ISA13>.ta1|999`.
    #[arg(long)]
    ack_dir: Option<PathBuf>,
    /// The ISA15 the connection expects (default: T or P).
    #[arg(long, value_enum)]
    usage: Option<UsageArg>,
}

#[derive(Args)]
pub struct JsonArgs {
    /// The X12 file.
    file: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum UsageArg {
    /// ISA15 = T.
    Test,
    /// ISA15 = P.
    Production,
}

impl From<UsageArg> for Usage {
    fn from(u: UsageArg) -> Usage {
        match u {
            UsageArg::Test => Usage::Test,
            UsageArg::Production => Usage::Production,
        }
    }
}

pub fn run(cmd: X12Command) -> ExitCode {
    match cmd {
        X12Command::Check(args) => check(&args),
        X12Command::Json(args) => json(&args),
    }
}

fn check(args: &CheckArgs) -> ExitCode {
    let options = CheckOptions {
        expected_usage: args.usage.map(Usage::from),
    };
    if let Some(dir) = &args.ack_dir {
        if let Err(e) = journal::durable_fs::create_dir_all(dir) {
            eprintln!("{}: cannot create the ack directory: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    }
    let now = clock::unix_ms() / 1000;
    let stamp = Stamp::from_unix(now as i64);
    let mut next_control = (now % 1_000_000_000) as u32;
    let mut failed = false;
    let mut out = std::io::stdout().lock();
    for file in &args.files {
        let bytes = match std::fs::read(file) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{}: cannot read: {e}", file.display());
                failed = true;
                continue;
            }
        };
        let doc = ::x12::check(&bytes, &options, &());
        failed |= !doc.is_clean();
        let acks = ::x12::acknowledgments(&doc, || {
            next_control = next_control % 999_999_999 + 1;
            AckHeader::numbered(next_control, stamp)
        });
        let mut text = summary(file, &doc);
        for ack in &acks {
            let (name, ext) = match ack.kind {
                AckKind::Ta1 => ("TA1", "ta1"),
                AckKind::Ack999 => ("999", "999"),
            };
            text.push_str(&format!(
                "  would send: {name} (ISA13 {:09}) for interchange {}\n",
                ack.control_number,
                ack.interchange + 1
            ));
            for line in String::from_utf8_lossy(&ack.bytes).lines() {
                text.push_str(&format!("    {line}\n"));
            }
            if let Some(dir) = &args.ack_dir {
                let file_name = file
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_else(|| "x12".into());
                let ack_name = format!("{file_name}.{:09}.{ext}", ack.control_number);
                match journal::durable_fs::write_atomically(dir, &ack_name, &ack.bytes) {
                    Ok(()) => {
                        text.push_str(&format!("  wrote {}\n", dir.join(&ack_name).display()))
                    }
                    Err(e) => {
                        eprintln!("{}: cannot write {ack_name}: {e}", dir.display());
                        failed = true;
                    }
                }
            }
        }
        if out.write_all(text.as_bytes()).is_err() {
            return ExitCode::FAILURE;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The envelope summary and the errors of one checked file.
fn summary(file: &Path, doc: &Document<'_>) -> String {
    let groups: usize = doc.interchanges.iter().map(|i| i.groups.len()).sum();
    let sets = doc.sets().count();
    let errors: Vec<String> = doc.errors().map(|e| e.to_string()).collect();
    let verdict = if errors.is_empty() {
        "clean".to_string()
    } else {
        format!("{} envelope error(s)", errors.len())
    };
    let mut s = format!(
        "{}: {} interchange(s), {groups} group(s), {sets} transaction set(s): {verdict}\n",
        file.display(),
        doc.interchanges.len()
    );
    let v = |b: &[u8]| ::x12::error::shown(::x12::isa::trim(b));
    for (i, ic) in doc.interchanges.iter().enumerate() {
        s.push_str(&format!(
            "  interchange {} at {}: ISA13 {}, {}:{} -> {}:{}, usage {}, {} group(s)\n",
            i + 1,
            ic.isa.pos,
            v(ic.isa.element(13)),
            v(ic.isa.element(5)),
            v(ic.isa.element(6)),
            v(ic.isa.element(7)),
            v(ic.isa.element(8)),
            v(ic.isa.element(15)),
            ic.groups.len()
        ));
        for (g, group) in ic.groups.iter().enumerate() {
            s.push_str(&format!(
                "    group {} at {}: GS01 {}, GS06 {}, GS08 {}, {} set(s)\n",
                g + 1,
                group.gs.pos,
                v(group.gs.element(1)),
                v(group.gs.element(6)),
                v(group.gs.element(8)),
                group.sets.len()
            ));
            for (t, set) in group.sets.iter().enumerate() {
                s.push_str(&format!(
                    "      set {} at {}: ST {} {}, {}, {} segment(s)\n",
                    t + 1,
                    set.st.pos,
                    v(set.st.element(1)),
                    v(set.st.element(2)),
                    set.kind.map_or("unknown guide", |k| k.name()),
                    set.segment_count
                ));
            }
        }
    }
    for e in errors {
        s.push_str(&format!("  error: {e}\n"));
    }
    s
}

fn json(args: &JsonArgs) -> ExitCode {
    let bytes = match std::fs::read(&args.file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{}: cannot read: {e}", args.file.display());
            return ExitCode::FAILURE;
        }
    };
    let doc = ::x12::check(&bytes, &CheckOptions::default(), &());
    let mut out = std::io::stdout().lock();
    let mut write_failed = false;
    ::x12::write_json(&doc, 64 * 1024, &mut |chunk| {
        write_failed |= out.write_all(chunk).is_err();
    });
    write_failed |= out.write_all(b"\n").and_then(|()| out.flush()).is_err();
    if write_failed {
        eprintln!("cannot write the JSON to standard output");
        return ExitCode::FAILURE;
    }
    if doc.is_clean() {
        ExitCode::SUCCESS
    } else {
        let n = doc.errors().count();
        eprintln!(
            "{}: {n} envelope error(s); the file would not be sent (see \"errors\", or run `gateway x12 check`)",
            args.file.display()
        );
        ExitCode::FAILURE
    }
}
