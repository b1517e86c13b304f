//! `gateway messages search --control-id` / `--patient` on a large journal:
//! the trace index lookups, as the search does them (index range scan, then
//! each hit's message and per-destination states), against baselines
//! measured in the same run on the same journal: a point read of one
//! message (`get`, the floor of any lookup) and the scan a search without
//! the index would do (read every message's meta).
//!
//! `cargo bench -p journal --bench trace_lookup [-- --json]` (1M messages,
//! 100k patients of 10 messages each, all delivered; `TRACE_BENCH_MESSAGES=N`
//! for another size). The journal is built with traced batches of 1024 in
//! a temporary directory under the current one, removed at the end.
//! `--json` prints the common bench shape (rates are lookups per second at
//! the median; p50/p99 in ms alongside).

use std::time::{Duration, Instant};

use journal::bench_support::{oru, rss_mb};
use journal::{Journal, JournalConfig, PatientRef, Policy};

const BATCH: usize = 1024;
const LOOKUPS: usize = 2000;
/// Messages per patient.
const PER_PATIENT: usize = 10;

/// The opaque 16-byte tag of patient `p` (the gateway's is a keyed HMAC;
/// the journal does not care how it is made).
fn tag(p: usize) -> [u8; 16] {
    let mut t = [0u8; 16];
    t[..8].copy_from_slice(&(p as u64).to_be_bytes());
    t[8..].copy_from_slice(&(!(p as u64)).rotate_left(17).to_be_bytes());
    t
}

/// A cheap deterministic sequence (no clock, no rand crate).
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

struct Stats {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn stats(mut v: Vec<Duration>) -> Stats {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    Stats {
        p50: at(0.5),
        p99: at(0.99),
        max: v[v.len() - 1],
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let n: usize = std::env::var("TRACE_BENCH_MESSAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let json = std::env::args().any(|a| a == "--json");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(n, json));
}

/// What `messages search` does with a page of ids: each message and its states.
fn rows(j: &Journal, ids: &[u64]) -> usize {
    let mut found = 0;
    for &id in ids {
        let m = j.get(id).unwrap().unwrap();
        let states = j.trace_states(id, &m.meta.control_id).unwrap();
        assert_eq!(states.map(|s| s.len()), Some(1));
        found += 1;
    }
    found
}

async fn run(n: usize, json: bool) {
    let t = tempfile::Builder::new()
        .prefix("tracebench")
        .tempdir_in(".")
        .unwrap();
    let j = Journal::open(JournalConfig::new(t.path().join("j"))).unwrap();
    let patients = (n / PER_PATIENT).max(1);
    let start = Instant::now();
    let mut i = 0;
    while i < n {
        let batch: Vec<_> = (i..(i + BATCH).min(n))
            .map(|k| {
                let m = oru(&format!("CID{k:09}"), 1_700_000_000_000 + k as u64, 1);
                let p = PatientRef {
                    tag: tag(k % patients),
                    authority: "ECW".into(),
                };
                (m, Policy::default(), Some(p))
            })
            .collect();
        i += batch.len();
        j.append_batch_traced(batch, Vec::new()).await.unwrap();
    }
    let built = start.elapsed();
    // All delivered, as most of a real journal is.
    let mut after = None;
    loop {
        let ids = j.pending("cloud", after, 4096).unwrap();
        let Some(&last) = ids.last() else { break };
        j.mark_delivered_many("cloud", ids).await.unwrap();
        after = Some(last);
    }
    let ready = start.elapsed();
    if !json {
        println!(
            "built a {n}-message journal ({patients} patients) in {:.1} s, all delivered at {:.1} s",
            built.as_secs_f64(),
            ready.as_secs_f64()
        );
    }

    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let (mut by_cid, mut by_patient, mut point) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..LOOKUPS {
        let k = (next(&mut x) % n as u64) as usize;
        let cid = format!("CID{k:09}");
        let s = Instant::now();
        let page = j.trace_by_control_id(&cid, None, 100).unwrap();
        let found = rows(&j, &page.ids);
        by_cid.push(s.elapsed());
        assert_eq!(found, 1);

        let p = (next(&mut x) % patients as u64) as usize;
        let s = Instant::now();
        let page = j.trace_by_patient(&tag(p), None, 100).unwrap();
        let found = rows(&j, &page.ids);
        by_patient.push(s.elapsed());
        assert_eq!(found, n / patients + usize::from(p < n % patients));

        let s = Instant::now();
        let m = j.get(k as u64 + 1).unwrap().unwrap();
        point.push(s.elapsed());
        assert_eq!(m.meta.control_id, cid);
    }
    // What a search without the index does: every message, newest first.
    let want = format!("CID{:09}", n / 2);
    let s = Instant::now();
    let mut before = None;
    let mut found = 0;
    loop {
        let ids = j.message_ids_before(before, 50_000).unwrap();
        let Some(&last) = ids.last() else { break };
        for id in ids {
            if j.get(id)
                .unwrap()
                .is_some_and(|m| m.meta.control_id == want)
            {
                found += 1;
            }
        }
        before = Some(last);
    }
    let scan = s.elapsed();
    assert_eq!(found, 1);
    let (cid, pat, pt) = (stats(by_cid), stats(by_patient), stats(point));
    let (rss, peak) = rss_mb();
    if json {
        let per_s = |d: Duration| 1.0 / d.as_secs_f64().max(1e-9);
        let case = |name: &str, s: &Stats, base: &str, base_d: Duration| {
            format!(
                "{{\"case\":\"{name}\",\"messages\":{n},\"rate_per_s\":{:.1},\"p50_ms\":{:.4},\"p99_ms\":{:.4},\"max_ms\":{:.4},\"baseline\":\"{base}\",\"baseline_per_s\":{:.3},\"ratio\":{:.4},\"rss_mb\":{{\"current\":{rss:.1},\"peak\":{peak:.1}}}}}",
                per_s(s.p50),
                ms(s.p50),
                ms(s.p99),
                ms(s.max),
                per_s(base_d),
                per_s(s.p50) / per_s(base_d)
            )
        };
        println!(
            "{{\"bench\":\"trace_lookup\",\"build_s\":{:.1},\"results\":[{},{},{},{}]}}",
            ready.as_secs_f64(),
            case("control_id_lookup", &cid, "point_get", pt.p50),
            case("patient_lookup_10_messages", &pat, "point_get", pt.p50),
            case("control_id_lookup", &cid, "full_scan_without_index", scan),
            case(
                "patient_lookup_10_messages",
                &pat,
                "full_scan_without_index",
                scan
            ),
        );
    } else {
        for (name, s) in [
            ("control-id lookup (index + message + states)", &cid),
            ("patient lookup (index + 10 messages + states)", &pat),
            ("baseline: point read of one message (get)", &pt),
        ] {
            println!(
                "{name}, {LOOKUPS} lookups: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
                ms(s.p50),
                ms(s.p99),
                ms(s.max)
            );
        }
        println!(
            "baseline: full scan without the index: {:.0} ms ({:.0}× the control-id p50); rss {rss:.0} MB (peak {peak:.0} MB)",
            ms(scan),
            scan.as_secs_f64() / cid.p50.as_secs_f64().max(1e-9)
        );
    }
    j.close().await.unwrap();
}
