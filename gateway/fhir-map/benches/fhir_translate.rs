//! HL7 v2 → FHIR translation throughput, one core. Run with:
//!
//! ```text
//! cargo bench -p fhir-map --bench fhir_translate
//! ```
//!
//! For an ORU^R01 with 10 OBX and an ADT^A08 it measures, in the same run
//! and on one thread (so per core): parsing alone (the baseline), parse +
//! `translate_to_bytes` (the Bundle's JSON bytes, for the FHIR destination
//! to send), for comparison parse + `translate` (a `serde_json::Value`) and
//! parse + `translate` + `serde_json::to_vec`, and writing an already built
//! Bundle's JSON alone (a floor that no mapping writing JSON with serde_json
//! goes under). It prints messages/s, the time relative to the parse
//! baseline, and heap allocations per message (a counting global
//! allocator). Each rate is the fastest of five rounds. The target is
//! ≥ 50,000 ORU messages/s per core; the bench reports, it never asserts a
//! time.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use fhir_map::{bench_messages, MapContext};
use hl7::Message;

struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

struct Run {
    per_sec: f64,
    allocations: f64,
    bytes: f64,
}

/// Rounds each measurement is split into; the fastest counts. On a shared
/// machine (other builds running) the slowest rounds measure the neighbours.
const ROUNDS: u32 = 5;

/// Runs `f` on `raw` for `iterations` (in [`ROUNDS`] rounds) and measures
/// the fastest round's rate and the allocations per call over all rounds.
fn measure(raw: &[u8], iterations: u32, f: &dyn Fn(&[u8]) -> usize) -> Run {
    let mut sink = 0usize;
    for _ in 0..iterations / 10 {
        sink += f(black_box(raw));
    }
    let per_round = (iterations / ROUNDS).max(1);
    let allocs_before = ALLOCATIONS.load(Ordering::Relaxed);
    let bytes_before = BYTES.load(Ordering::Relaxed);
    let mut fastest = f64::INFINITY;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for _ in 0..per_round {
            sink += f(black_box(raw));
        }
        fastest = fastest.min(start.elapsed().as_secs_f64());
    }
    let calls = f64::from(per_round * ROUNDS);
    let allocations = (ALLOCATIONS.load(Ordering::Relaxed) - allocs_before) as f64;
    let bytes = (BYTES.load(Ordering::Relaxed) - bytes_before) as f64;
    black_box(sink);
    Run {
        per_sec: f64::from(per_round) / fastest,
        allocations: allocations / calls,
        bytes: bytes / calls,
    }
}

fn report(name: &str, raw: &[u8], iterations: u32) {
    let ctx = MapContext::new("bench");
    let parse = |r: &[u8]| Message::parse(r).map_or(0, |m| m.segment_count());
    let translate = |r: &[u8]| {
        Message::parse(r)
            .ok()
            .and_then(|m| fhir_map::translate(&m, &ctx).ok())
            .map_or(0, |b| b["entry"].as_array().map_or(0, Vec::len))
    };
    let to_bytes = |r: &[u8]| {
        Message::parse(r)
            .ok()
            .and_then(|m| fhir_map::translate_to_bytes(&m, &ctx).ok())
            .map_or(0, |v| v.len())
    };
    let translate_serialize = |r: &[u8]| {
        Message::parse(r)
            .ok()
            .and_then(|m| fhir_map::translate(&m, &ctx).ok())
            .and_then(|b| serde_json::to_vec(&b).ok())
            .map_or(0, |v| v.len())
    };
    // No mapping at all: only writing an already built Bundle as JSON, the
    // part of any translation that grows with the size of its output.
    let prebuilt = Message::parse(raw)
        .ok()
        .and_then(|m| fhir_map::translate(&m, &ctx).ok())
        .unwrap_or_default();
    let write_only = |_: &[u8]| serde_json::to_vec(&prebuilt).map_or(0, |v| v.len());
    let entries = translate(raw);
    let json_len = to_bytes(raw);
    let base = measure(raw, iterations, &parse);
    let b = measure(raw, iterations, &to_bytes);
    let t = measure(raw, iterations, &translate);
    let ts = measure(raw, iterations, &translate_serialize);
    let w = measure(raw, iterations, &write_only);
    println!(
        "{name}: {} bytes in, {entries} entries, {json_len} bytes of JSON out",
        raw.len()
    );
    for (label, run) in [
        ("parse (baseline)", &base),
        ("parse + translate_to_bytes", &b),
        ("parse + translate (Value)", &t),
        ("parse + translate + serde_json::to_vec", &ts),
        ("write a built Bundle only (no parse/map)", &w),
    ] {
        println!(
            "  {label:<40} {:>9.0} msgs/s  {:>6.1} us/msg  {:>6.0} allocs/msg  {:>7.0} bytes allocated/msg  {:>5.2}x baseline time",
            run.per_sec,
            1e6 / run.per_sec,
            run.allocations,
            run.bytes,
            base.per_sec / run.per_sec
        );
    }
}

fn main() {
    // FHIR_BENCH_ITERATIONS: fewer iterations for instruction counting
    // under `valgrind --tool=callgrind` (docs/benchmarks.md).
    let iterations = std::env::var("FHIR_BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    // FHIR_BENCH_ONLY=oru|adt: one message type (instruction counts per type).
    let only = std::env::var("FHIR_BENCH_ONLY").unwrap_or_default();
    if only != "adt" {
        report("ORU^R01, 10 OBX", &bench_messages::oru_r01(10), iterations);
    }
    if only != "oru" {
        report("ADT^A08", &bench_messages::adt_a08(), iterations);
    }
}
