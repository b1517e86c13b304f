//! `gateway translate FILE`: what the `fhir` transform makes of a message,
//! offline, for an interface analyst. HL7 v2 in → the FHIR transaction
//! Bundle (pretty JSON) out; with `--to hl7`, FHIR results (JSON) in → the
//! ORU^R01 out, one segment per line.
//!
//! Code maps: every `*.csv` in `codemaps/` beside the config file, when that
//! directory exists. Errors name the file and the reason and exit 1; they
//! print no message content.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, ValueEnum};

use crate::ops::clock;
use fhir_map::{CodeMaps, MapContext, ToHl7Context};
use hl7::Message;

#[derive(Args)]
pub struct TranslateArgs {
    /// The input: an HL7 v2 message (or, with --to hl7, a FHIR JSON Bundle
    /// or DiagnosticReport).
    file: PathBuf,
    /// What to produce.
    #[arg(long, value_enum, default_value_t = Target::Fhir)]
    to: Target,
    /// Tenant: part of every resource id and of tenant-local URIs.
    #[arg(long, default_value = "default")]
    tenant: String,
    /// Use conditional updates (PUT Type?identifier=...) instead of PUT Type/id.
    #[arg(long)]
    conditional: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// HL7 v2 → FHIR R4 transaction Bundle.
    Fhir,
    /// FHIR results → HL7 v2.5.1 ORU^R01.
    Hl7,
}

pub fn run(args: TranslateArgs, config: &Path) -> ExitCode {
    let input = match std::fs::read(&args.file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{}: cannot read: {e}", args.file.display());
            return ExitCode::FAILURE;
        }
    };
    let result = match args.to {
        Target::Fhir => to_fhir(&input, &args, config),
        Target::Hl7 => to_hl7(&input),
    };
    match result {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(reason) => {
            eprintln!("{}: {reason}", args.file.display());
            ExitCode::FAILURE
        }
    }
}

/// The code maps beside the config file (`codemaps/*.csv`), if any.
fn code_maps(config: &Path) -> Result<CodeMaps, String> {
    let dir = config
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("codemaps");
    if dir.is_dir() {
        crate::deliver::fhir_context::load_code_maps(&dir).map_err(|e| e.to_string())
    } else {
        Ok(CodeMaps::default())
    }
}

fn to_fhir(input: &[u8], args: &TranslateArgs, config: &Path) -> Result<String, String> {
    let msg = Message::parse(input).map_err(|e| format!("not HL7 v2: {e}"))?;
    let mut ctx = MapContext::new(&args.tenant);
    ctx.code_maps = Arc::new(code_maps(config)?);
    if args.conditional {
        ctx.update_mode = fhir_map::UpdateMode::Conditional;
    }
    let bundle = fhir_map::translate(&msg, &ctx).map_err(|e| e.to_string())?;
    serde_json::to_string_pretty(&bundle).map_err(|e| e.to_string())
}

fn to_hl7(input: &[u8]) -> Result<String, String> {
    let json: serde_json::Value =
        serde_json::from_slice(input).map_err(|e| format!("not JSON: {e}"))?;
    let now = clock::unix_ms();
    let ctx = ToHl7Context {
        control_id: clock::next_control_id(),
        timestamp: clock::hl7_timestamp(now),
        ..ToHl7Context::default()
    };
    let oru = fhir_map::results_to_oru(&json, &ctx).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&oru);
    Ok(text.trim_end_matches('\r').replace('\r', "\n"))
}
