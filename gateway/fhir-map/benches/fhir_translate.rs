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

use fhir_map::MapContext;
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

fn oru(obx_count: usize) -> Vec<u8> {
    let mut s = String::from(
        "MSH|^~\\&|LAB|REFLAB^2.16.840.1.113883.3.1^ISO|ECW|CLINIC|20240102030405-0500||ORU^R01^ORU_R01|MSG000123|P|2.5.1|||AL|NE||UNICODE UTF-8\r\
         PID|1||123456^^^CLINIC&2.16.840.1.113883.3.2&ISO^MR||Doe^Jane^Q^^^^L||19800101|F|||1 Main St^^Town^ST^12345^USA^H||^PRN^PH^^1^555^1234567\r\
         PV1|1|O|CLINIC^EXAM1^^MAIN||||1234^Smith^John^^^Dr^MD^^NPI&2.16.840.1.113883.4.6&ISO^^^^NPI||||||||||||V100^^^CLINIC^VN\r\
         ORC|RE|ORD1^ECW|FILL1^LAB||CM\r\
         OBR|1|ORD1^ECW|FILL1^LAB|24331-1^Lipid panel^LN|||20240101080000-0500|||||||||1234^Smith^John^^^Dr^MD^^NPI&2.16.840.1.113883.4.6&ISO^^^^NPI||||||20240102030000-0500||CH|F\r\
         NTE|1||Fasting specimen\\.br\\Reviewed\r",
    );
    for i in 1..=obx_count {
        s.push_str(&format!(
            "OBX|{i}|NM|{}^Analyte {i}^LN||{}.5|mg/dL^milligram per deciliter^UCUM|70-{}|N|||F|||20240101080000-0500||1234^Smith^John|||||||Reference Lab^L^^^^CLIA&2.16.840.1.113883.4.7&ISO^XX^^^05D0000000\r",
            2000 + i,
            150 + i,
            200 + i
        ));
    }
    s.into_bytes()
}

fn adt_a08() -> Vec<u8> {
    b"MSH|^~\\&|ECW|CLINIC|GW|CLOUD|20240312093000-0500||ADT^A08^ADT_A01|A08X|P|2.5.1\r\
EVN|A08|20240312093000-0500\r\
PID|1||MRN1001^^^ECW^MR~999-00-1111^^^SSA^SS||Testperson^Alpha^Q^^^^L||19800115|F||2106-3^White^CDCREC|100 Example Ave^Unit 2^Springfield^IL^62701^USA^H||^PRN^PH^^1^555^0100001|^WPN^PH^^1^555^0100099|eng^English^ISO639|M||||||N^Not Hispanic or Latino^HL70189\r\
PD1|||Main Clinic^^ORG77|1234567890^Doctor^Primary^A^^Dr^MD^^NPI&2.16.840.1.113883.4.6&ISO^^^^NPI\r\
NK1|1|Testrelative^Sam|SPO^Spouse^HL70063|1 Other Rd^^Springfield^IL^62702^USA|^PRN^PH^^1^555^0100123\r\
PV1|1|O|CLINIC^EXAM1^^MAINCLINIC|R|||1234567890^Doctor^Primary^A^^Dr^MD^^NPI&2.16.840.1.113883.4.6&ISO^^^^NPI|||MED||||1|||||V1000^^^ECW^VN|||||||||||||||||||||||||20240312090000-0500\r\
AL1|1|DA|70618^Penicillin^RXNORM|SV|Hives\r\
DG1|1|I10|E11.9^Type 2 diabetes mellitus without complications^I10|Diabetes|20240312|F\r\
IN1|1|GOLD^Gold Plan|INS01^^^PAYERS|Example Health Plan|||||||||20240101|20241231||||SEL^Self|||||||||||||||||||POL-1\r"
        .to_vec()
}

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
        report("ORU^R01, 10 OBX", &oru(10), iterations);
    }
    if only != "oru" {
        report("ADT^A08", &adt_a08(), iterations);
    }
}
