//! `gateway bench translate`: HL7 v2 → FHIR Bundle bytes per second on one
//! thread (so per core) for an ORU^R01 with 10 OBX and an ADT^A08 (the
//! messages of `cargo bench -p fhir-map --bench fhir_translate`,
//! `fhir_map::bench_messages`), each as parse + `translate_to_bytes`, the
//! delivery path's work. Two baselines measured in the same run, rounds
//! interleaved: parsing alone, and writing the same Bundle's bytes with
//! `serde_json::to_vec` from a pre-built `serde_json::Value` (no parse, no
//! mapping). Each rate is the fastest round. Reports; asserts nothing.

use std::hint::black_box;
use std::time::Instant;

use clap::Args;
use fhir_map::{bench_messages, MapContext};
use hl7::Message;
use serde_json::{json, Map};

use super::bench_result::{print_json, round2, CaseResult};

#[derive(Args)]
pub struct TranslateBenchArgs {
    /// Messages per measurement (split into --rounds rounds; the fastest round counts).
    #[arg(long, default_value_t = 20_000)]
    iterations: u32,
    /// Rounds per measurement, the three measurements interleaved.
    #[arg(long, default_value_t = 5)]
    rounds: u32,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// Issue 15's targets, messages/s per core.
const ORU_TARGET: f64 = 50_000.0;
const ADT_TARGET: f64 = 80_000.0;

const PARSE_BASELINE: &str = "parse only";
const WRITE_BASELINE: &str = "serde_json write of the pre-built Bundle";

struct Case {
    name: &'static str,
    raw: Vec<u8>,
    target: f64,
}

struct Measured {
    translate: f64,
    parse: f64,
    write: f64,
    entries: usize,
    json_bytes: usize,
}

pub fn run(args: TranslateBenchArgs) -> Result<(), String> {
    if args.iterations == 0 || args.rounds == 0 {
        return Err("--iterations and --rounds must be at least 1".into());
    }
    let cases = [
        Case {
            name: "ORU^R01 10 OBX",
            raw: bench_messages::oru_r01(10),
            target: ORU_TARGET,
        },
        Case {
            name: "ADT^A08",
            raw: bench_messages::adt_a08(),
            target: ADT_TARGET,
        },
    ];
    let ctx = MapContext::new("bench");
    let load_before = load_average();
    let mut results = Vec::new();
    for case in &cases {
        let m = measure(case, &ctx, &args)?;
        results.push(case_result(case, &m));
    }
    let load_after = load_average();
    if args.json {
        let mut run = Map::new();
        run.insert("threads".into(), json!(1));
        run.insert("iterations".into(), json!(args.iterations));
        run.insert("load_average_before".into(), json!(load_before));
        run.insert("load_average_after".into(), json!(load_after));
        print_json("translate", &results, run);
    } else {
        print_table(&results, &load_before, &load_after);
    }
    Ok(())
}

fn measure(case: &Case, ctx: &MapContext, args: &TranslateBenchArgs) -> Result<Measured, String> {
    let raw = case.raw.as_slice();
    let msg = Message::parse(raw).map_err(|e| format!("{}: {e}", case.name))?;
    let bytes =
        fhir_map::translate_to_bytes(&msg, ctx).map_err(|e| format!("{}: {e}", case.name))?;
    let prebuilt = fhir_map::translate(&msg, ctx).map_err(|e| format!("{}: {e}", case.name))?;
    let entries = prebuilt["entry"].as_array().map_or(0, Vec::len);
    if entries == 0 {
        return Err(format!("{}: the Bundle has no entries", case.name));
    }
    let parse = || Message::parse(black_box(raw)).map_or(0, |m| m.segment_count());
    let translate = || {
        Message::parse(black_box(raw))
            .ok()
            .and_then(|m| fhir_map::translate_to_bytes(&m, ctx).ok())
            .map_or(0, |v| v.len())
    };
    let write = || serde_json::to_vec(black_box(&prebuilt)).map_or(0, |v| v.len());
    let per_round = (args.iterations / args.rounds).max(1);
    // Warm up caches and the allocator.
    for _ in 0..(per_round / 10).max(1) {
        black_box(translate() + parse() + write());
    }
    let mut best = [f64::INFINITY; 3];
    for _ in 0..args.rounds {
        for (slot, f) in [&parse as &dyn Fn() -> usize, &translate, &write]
            .into_iter()
            .enumerate()
        {
            let start = Instant::now();
            let mut sink = 0usize;
            for _ in 0..per_round {
                sink += f();
            }
            black_box(sink);
            best[slot] = best[slot].min(start.elapsed().as_secs_f64());
        }
    }
    let rate = |secs: f64| f64::from(per_round) / secs;
    Ok(Measured {
        parse: rate(best[0]),
        translate: rate(best[1]),
        write: rate(best[2]),
        entries,
        json_bytes: bytes.len(),
    })
}

fn case_result(case: &Case, m: &Measured) -> CaseResult {
    let mut extra = Map::new();
    extra.insert("baseline_write".into(), json!(WRITE_BASELINE));
    extra.insert("baseline_write_per_s".into(), json!(m.write.round()));
    extra.insert("ratio_write".into(), json!(round2(m.translate / m.write)));
    // Parse then write: the floor of any translation that writes with serde_json.
    let floor = 1.0 / (1.0 / m.parse + 1.0 / m.write);
    extra.insert("parse_plus_write_per_s".into(), json!(floor.round()));
    extra.insert(
        "ratio_parse_plus_write".into(),
        json!(round2(m.translate / floor)),
    );
    extra.insert("us_per_msg".into(), json!(round2(1e6 / m.translate)));
    extra.insert("target_per_s".into(), json!(case.target));
    extra.insert("target_met".into(), json!(m.translate >= case.target));
    extra.insert("entries".into(), json!(m.entries));
    extra.insert("json_bytes".into(), json!(m.json_bytes));
    CaseResult {
        case: case.name.to_string(),
        rate_per_s: m.translate,
        baseline: PARSE_BASELINE.to_string(),
        baseline_per_s: m.parse,
        rss_mb: None,
        extra,
    }
}

fn print_table(results: &[CaseResult], load_before: &[f64], load_after: &[f64]) {
    println!("HL7 v2 -> FHIR Bundle bytes, one thread (parse + translate_to_bytes)");
    println!(
        "{:<16} {:>11} {:>9} {:>11} {:>7} {:>12} {:>7} {:>10} {:>7}",
        "case", "msgs/s", "us/msg", "parse/s", "ratio", "sj write/s", "ratio", "target/s", "met"
    );
    for r in results {
        let num = |k: &str| r.extra.get(k).and_then(|v| v.as_f64()).unwrap_or(0.0);
        println!(
            "{:<16} {:>11.0} {:>9.2} {:>11.0} {:>7.3} {:>12.0} {:>7.2} {:>10.0} {:>7}",
            r.case,
            r.rate_per_s,
            num("us_per_msg"),
            r.baseline_per_s,
            r.ratio(),
            num("baseline_write_per_s"),
            num("ratio_write"),
            num("target_per_s"),
            if r.extra.get("target_met").and_then(|v| v.as_bool()) == Some(true) {
                "yes"
            } else {
                "no"
            }
        );
    }
    println!("ratio: to {PARSE_BASELINE}, then to {WRITE_BASELINE} (no parse, no mapping)");
    println!("load average before {load_before:?}, after {load_after:?} (2-core shared machines: compare ratios)");
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`), empty if unreadable.
fn load_average() -> Vec<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .filter_map(|x| x.parse().ok())
        .collect()
}
