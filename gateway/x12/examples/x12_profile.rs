//! One check (and, unless `check` is given, one JSON transform) of a
//! generated 835, for instruction counts under valgrind:
//!
//! ```text
//! cargo build --release -p x12 --example x12_profile
//! valgrind --tool=callgrind target/release/examples/x12_profile 4 [check|scan]
//! ```
//!
//! It prints the input and output sizes; compare the inclusive counts of
//! `x12::envelope::check` and `x12::json::to_json` per MB before and after
//! a change (repeatable on a shared machine, unlike wall-clock time).

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mb = args
        .get(1)
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(4);
    let check_only = args.iter().any(|a| a == "check");
    let data = x12::bench::generate_835(mb * 1_000_000);
    if args.iter().any(|a| a == "scan") {
        let n = x12::bench::segment_scan(std::hint::black_box(&data), b'~');
        println!("input {} bytes, scanned {n}", data.len());
        return;
    }
    let doc = x12::check(&data, &x12::CheckOptions::default(), &());
    if args.iter().any(|a| a == "iter") {
        let mut n = 0;
        for (_, _, set) in doc.sets() {
            for seg in set.body() {
                n += seg.raw().len() + seg.id().len();
            }
        }
        println!("input {} bytes, segment bytes {n}", data.len());
        return;
    }
    let out = if check_only {
        0
    } else {
        x12::to_json(&doc).len()
    };
    println!("input {} bytes, json {} bytes", data.len(), out);
}
