//! The Bulk Data export's NDJSON handling, as the download streams a file:
//! `LineSplitter` over the body in chunks, `check_line` on each line, and
//! the tenant tag (`tag::tag_tenant`). Checks: no panic, lines within the
//! limit and the same whatever the chunk size, and a tagged line is still
//! one JSON object that carries the tenant tag exactly once.
#![no_main]

use gateway::source::export::ndjson::{check_line, LineSplitter, Piece};
use gateway::source::export::tag::{tag_tenant, TENANT_TAG_SYSTEM};
use gateway_fuzz::chunked;
use libfuzzer_sys::fuzz_target;

const MAX_LINE: usize = 4096;
const TENANT: &str = "fuzz-clinic";

#[derive(Debug, PartialEq)]
enum Seen {
    Line(Vec<u8>),
    TooLong(usize),
}

fn split(body: &[u8], chunk: usize) -> Vec<Seen> {
    let mut s = LineSplitter::new(MAX_LINE);
    let mut out = Vec::new();
    let mut each = |p: Piece<'_>| -> Result<(), ()> {
        out.push(match p {
            Piece::Line(l) => Seen::Line(l.to_vec()),
            Piece::TooLong { len } => Seen::TooLong(len),
        });
        Ok(())
    };
    for c in body.chunks(chunk.max(1)) {
        let _ = s.push(c, &mut each);
    }
    let _ = s.finish(&mut each);
    out
}

fn tags_of_tenant(v: &serde_json::Value) -> usize {
    v["meta"]["tag"].as_array().map_or(0, |tags| {
        tags.iter()
            .filter(|t| t["system"] == TENANT_TAG_SYSTEM && t["code"] == TENANT)
            .count()
    })
}

fuzz_target!(|data: &[u8]| {
    let (chunk, body) = chunked(data);
    let lines = split(body, chunk);
    assert_eq!(
        lines,
        split(body, body.len()),
        "lines depend on the chunk size {chunk}"
    );
    for seen in &lines {
        let Seen::Line(line) = seen else { continue };
        assert!(line.len() <= MAX_LINE);
        let resource_type = serde_json::from_slice::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v["resourceType"].as_str().map(str::to_string))
            .unwrap_or_else(|| "Patient".into());
        if check_line(line, &resource_type).is_err() {
            continue;
        }
        // serde_json is the oracle only where it reads the line itself: it
        // refuses valid JSON numbers beyond f64 ("number out of range"),
        // which the check rightly passes through untouched.
        let oracle_reads_it = serde_json::from_slice::<serde_json::Value>(line).is_ok();
        if let (true, Ok(tagged)) = (oracle_reads_it, tag_tenant(line, TENANT)) {
            let v: serde_json::Value =
                serde_json::from_slice(&tagged).expect("the tagged line is not JSON");
            assert_eq!(tags_of_tenant(&v), 1, "tenant tag not there exactly once");
        }
    }
});
