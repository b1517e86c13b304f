//! X12 throughput, one core. Run with:
//!
//! ```text
//! cargo bench -p x12 [-- --json] [-- --mb N]
//! ```
//!
//! The envelope check, and the check plus the x12-json transform, of a
//! generated ~50 MB 835, in MB/s, against a plain byte scan for segment
//! terminators over the same bytes in the same run (target: check+json at
//! ≥ 0.3× the scan). Each rate is the fastest of three rounds. It reports;
//! it never asserts a time.

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let json = args.iter().any(|a| a == "--json");
    let mb = args
        .iter()
        .position(|a| a == "--mb")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(50);
    let data = x12::bench::generate_835(mb * 1_000_000);
    let results = x12::bench::run(&data, 3, &Instant::now);
    if json {
        println!("{}", x12::bench::json(&results));
    } else {
        print!("{}", x12::bench::table(&results));
    }
}
