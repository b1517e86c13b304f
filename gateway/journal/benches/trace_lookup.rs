//! `gateway messages search --control-id` on a large journal: the trace
//! index lookup against two baselines measured in the same run on the same
//! journal: a point read of one message (`get`, the floor) and the scan a
//! search without the index would do (read every message's meta).
//! Run with `cargo bench -p journal --bench trace_lookup` (1M messages;
//! `TRACE_BENCH_MESSAGES=N` for another size). The journal is built in a
//! temporary directory under the current one and removed at the end.

use std::time::{Duration, Instant};

use journal::{Journal, JournalConfig, MessageMeta, NewMessage, Policy, KIND_HL7V2};

const BATCH: usize = 1024;
const LOOKUPS: usize = 2000;

fn msg(i: usize) -> NewMessage {
    let cid = format!("CID{i:09}");
    NewMessage {
        source: "lab".into(),
        peer: "p".into(),
        received_at_ms: 1_700_000_000_000 + i as u64,
        meta: MessageMeta {
            kind: KIND_HL7V2.into(),
            sender: "A|B".into(),
            control_id: cid.clone(),
            message_type: "ORU^R01".into(),
            dedup: vec!["A".into(), "B".into(), cid.clone()],
        },
        raw: format!("MSH|^~\\&|A|B|C|D|1||ORU^R01|{cid}|P|2.5.1\rOBX|1|NM|x||1\r").into_bytes(),
        ack: b"MSA|AA".to_vec(),
        destinations: vec![journal::Enqueue::plain("cloud")],
        patient_lane: 0,
    }
}

/// A cheap deterministic sequence (no clock, no rand crate).
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let n: usize = std::env::var("TRACE_BENCH_MESSAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(n));
}

async fn run(n: usize) {
    let t = tempfile::Builder::new()
        .prefix("tracebench")
        .tempdir_in(".")
        .unwrap();
    let j = Journal::open(JournalConfig::new(t.path().join("j"))).unwrap();
    let start = Instant::now();
    let mut i = 0;
    while i < n {
        let batch: Vec<_> = (i..(i + BATCH).min(n))
            .map(|k| (msg(k), Policy::default()))
            .collect();
        i += batch.len();
        j.append_batch(batch, Vec::new()).await.unwrap();
    }
    println!(
        "built a {n}-message journal in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    // All delivered, as most of a real journal is.
    let mut after = None;
    loop {
        let ids = j.pending("cloud", after, 4096).unwrap();
        let Some(&last) = ids.last() else { break };
        j.mark_delivered_many("cloud", ids).await.unwrap();
        after = Some(last);
    }

    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let (mut index, mut point) = (Vec::new(), Vec::new());
    for _ in 0..LOOKUPS {
        let k = (next(&mut x) % n as u64) as usize;
        let cid = format!("CID{k:09}");
        let s = Instant::now();
        let page = j.trace_by_control_id(&cid, None, 100).unwrap();
        let states = j.trace_states(page.ids[0], &cid).unwrap();
        index.push(s.elapsed());
        assert_eq!(page.ids.len(), 1);
        assert!(states.is_some());
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
    let (idx, pt) = (median(index.clone()), median(point));
    let worst = index.iter().max().copied().unwrap_or_default();
    println!("control-id lookup (index + states), median of {LOOKUPS}: {idx:?} (worst {worst:?})");
    println!(
        "baseline point read of one message (get), median: {pt:?}; ratio {:.2}×",
        idx.as_secs_f64() / pt.as_secs_f64().max(1e-9)
    );
    println!(
        "baseline full scan without the index: {scan:?}; index is {:.0}× faster",
        scan.as_secs_f64() / idx.as_secs_f64().max(1e-9)
    );
    j.close().await.unwrap();
}
