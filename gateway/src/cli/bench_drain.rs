//! `gateway bench drain`: how fast a backlog drains to an `http` sink on
//! loopback that answers at once, and whether memory stays flat while it
//! does. For each backlog size: fill a fresh journal (the journal append
//! rate, measured in the same run, is the baseline the drain rate is
//! compared with), then start the real outbox driver and measure msgs/s
//! and this process's RSS at the start, middle and end of the drain, with
//! the bytes malloc has handed out at the same moments (what grows as data
//! against what the allocator only holds). The process stands in for the
//! daemon: journal, outbox driver and the daemon's allocator settings; the
//! filler and the sink's connections add a few MB. Last, ingest and drain
//! at the same time. Reports ratios; asserts nothing.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::bench_result::{print_json, CaseResult, Rss};
use crate::config::{
    DeliveryPolicy, DestinationConfig, DestinationKind, HttpDestination, HttpFormat,
};
use crate::ops::tasks::{Stage, Tasks};
use crate::ops::watchdog::Heartbeats;
use hl7::Message;
use journal::{Enqueue, Journal, JournalConfig, NewMessage};
use serde_json::{json, Map};

#[derive(Args)]
pub struct DrainArgs {
    /// Directory on the disk to measure (a fresh journal per run goes below it).
    #[arg(long, default_value = "var/bench")]
    dir: PathBuf,
    /// Backlog sizes.
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
    messages: Vec<u64>,
    /// Lanes delivered concurrently (the destination's `concurrency`).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Distinct patients (lanes) in the backlog.
    #[arg(long, default_value_t = 2000)]
    patients: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

fn rss_mb() -> f64 {
    super::bench::rss_mb(std::process::id())
}

/// Bytes malloc hands out now (live data), in MB: against RSS it tells
/// data that grows from memory the allocator holds free.
fn heap_mb() -> f64 {
    crate::ops::allocator::heap().map_or(0.0, |h| h.in_use as f64 / 1e6)
}

/// A loopback HTTP/1.1 sink: reads each request (headers + Content-Length
/// body) and answers 200 at once, keeping the connection alive.
async fn sink() -> Result<(String, Arc<AtomicU64>), String> {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("sink: {e}"))?;
    let addr = l.local_addr().map_err(|e| e.to_string())?;
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let c = c.clone();
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
                let mut tmp = vec![0u8; 64 * 1024];
                loop {
                    // Answer every complete request in the buffer.
                    while let Some(body) = complete_request(&buf) {
                        buf.drain(..body.end);
                        c.fetch_add(1, Ordering::Relaxed);
                        if s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    match s.read(&mut tmp).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&tmp[..n]),
                    }
                }
            });
        }
    });
    Ok((format!("http://{addr}/ingest"), count))
}

/// The body of the first whole HTTP/1.1 request in `buf` (headers and
/// its Content-Length body), or `None` while it is incomplete.
pub(super) fn complete_request(buf: &[u8]) -> Option<std::ops::Range<usize>> {
    let end = find(buf, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    (buf.len() >= end + 4 + len).then_some(end + 4..end + 4 + len)
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// Append `n` messages with 64 concurrent appenders; returns msgs/s. Those
/// numbered `pending_from` and above are queued on the `sink` destination,
/// the others are journaled with no destination (as if delivered).
pub(super) async fn fill(
    journal: &Journal,
    n: u64,
    patients: usize,
    offset: u64,
    pending_from: u64,
) -> Result<f64, String> {
    let start = Instant::now();
    let mut set = JoinSet::new();
    let writers = 64u64;
    for w in 0..writers {
        let j = journal.clone();
        set.spawn(async move {
            let mut i = w;
            while i < n {
                let cid = format!("B{}", offset + i);
                let raw = super::bench::sample_message(&cid, (i as usize) % patients);
                let header = Message::parse(&raw).map_err(|e| e.to_string())?.header();
                let lane = crate::route::lane::patient_lane(&header);
                j.append(NewMessage {
                    source: "bench".into(),
                    peer: "127.0.0.1:1".into(),
                    received_at_ms: crate::ops::clock::unix_ms(),
                    meta: crate::accept::hl7_meta(&header),
                    raw,
                    ack: Vec::new(),
                    destinations: if i >= pending_from {
                        vec![Enqueue::plain("sink")]
                    } else {
                        Vec::new()
                    },
                    patient_lane: lane,
                })
                .await
                .map_err(|e| e.to_string())?;
                i += writers;
            }
            Ok::<(), String>(())
        });
    }
    while let Some(r) = set.join_next().await {
        r.map_err(|e| e.to_string())??;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn pending(journal: &Journal) -> u64 {
    journal
        .stats()
        .per_destination
        .get("sink")
        .map_or(0, |s| s.pending)
}

struct Drained {
    rate: f64,
    rss: [f64; 3],
    heap: [f64; 3],
}

/// Start the outbox driver, wait until `target` messages reached the sink, stop it.
async fn drain(
    journal: &Journal,
    url: &str,
    sunk: &AtomicU64,
    target: u64,
    concurrency: usize,
) -> Result<Drained, String> {
    let kind = DestinationKind::Http(HttpDestination {
        url: url.to_string(),
        format: HttpFormat::Hl7,
        headers: Vec::new(),
        auth: None,
        tls: Default::default(),
        fhir: None,
    });
    let mut delivery = DeliveryPolicy::defaults_for(&kind);
    delivery.concurrency = concurrency;
    let dest = DestinationConfig {
        name: "sink".into(),
        kind,
        delivery,
    };
    let hb = Heartbeats::default();
    let base = sunk.load(Ordering::Relaxed);
    let rss_start = rss_mb();
    let heap_start = heap_mb();
    let start = Instant::now();
    let mut tasks = Tasks::default();
    crate::deliver::start_all(&[dest], journal, &hb, tasks.stage(Stage::Delivery))
        .map_err(|e| e.to_string())?;
    let mut rss_mid = 0.0;
    let mut heap_mid = 0.0;
    let mut last_report = Instant::now();
    let finished = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let done = sunk.load(Ordering::Relaxed) - base;
        if rss_mid == 0.0 && done >= target / 2 {
            rss_mid = rss_mb();
            heap_mid = heap_mb();
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            eprintln!(
                "  ... {done}/{target} delivered, {} pending, RSS {:.0} MB, heap in use {:.0} MB",
                pending(journal),
                rss_mb(),
                heap_mb()
            );
            last_report = Instant::now();
        }
        if done >= target && pending(journal) == 0 {
            break Ok(());
        }
        if start.elapsed() > Duration::from_secs(3600) {
            break Err("drain did not finish within an hour".to_string());
        }
    };
    let elapsed = start.elapsed();
    tasks.stop(Stage::Delivery).await;
    finished?;
    Ok(Drained {
        rate: target as f64 / elapsed.as_secs_f64(),
        rss: [rss_start, rss_mid, rss_mb()],
        heap: [heap_start, heap_mid, heap_mb()],
    })
}

pub(super) async fn open_journal(dir: &Path) -> Result<Journal, String> {
    let cfg = JournalConfig::new(dir.to_path_buf());
    tokio::task::spawn_blocking(move || Journal::open(cfg))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

pub fn run(args: DrainArgs) -> Result<(), String> {
    let run_dir = args.dir.join(format!("drain-{}", std::process::id()));
    std::fs::create_dir_all(&run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let r = rt.block_on(run_in(&args, &run_dir));
    let _ = std::fs::remove_dir_all(&run_dir);
    r
}

async fn run_in(args: &DrainArgs, run_dir: &Path) -> Result<(), String> {
    let (url, sunk) = sink().await?;
    // The daemon trims its heap periodically (ops::allocator); so does its stand-in.
    let (_stop_trim, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(crate::ops::allocator::trim_periodically(stop));
    let mut rows = Vec::new();
    for (i, &n) in args.messages.iter().enumerate() {
        let dir = run_dir.join(format!("journal-{i}"));
        let j = open_journal(&dir).await?;
        eprintln!("filling a backlog of {n} messages ...");
        let ingest = fill(&j, n, args.patients, 0, 0).await?;
        eprintln!("  journal append rate {ingest:.0} msg/s; draining ...");
        let d = drain(&j, &url, &sunk, n, args.concurrency).await?;
        rows.push((n, ingest, d));
        j.close().await.map_err(|e| e.to_string())?;
        let _ = std::fs::remove_dir_all(&dir);
    }

    // Ingest and drain at the same time.
    let n = args.messages.first().copied().unwrap_or(100_000);
    let dir = run_dir.join("journal-both");
    let j = open_journal(&dir).await?;
    eprintln!("ingest and drain of {n} messages at the same time ...");
    let j2 = j.clone();
    let patients = args.patients;
    let filler = tokio::spawn(async move { fill(&j2, n, patients, 10_000_000, 0).await });
    let both = drain(&j, &url, &sunk, n, args.concurrency).await?;
    let ingest_both = filler.await.map_err(|e| e.to_string())??;
    j.close().await.map_err(|e| e.to_string())?;

    let rss = |d: &Drained| Rss {
        start: d.rss[0],
        mid: d.rss[1],
        end: d.rss[2],
    };
    let heap = |d: &Drained| {
        let mut m = Map::new();
        let [start, mid, end] = d.heap.map(|x| x.round());
        m.insert(
            "heap_in_use_mb".into(),
            json!({"start": start, "mid": mid, "end": end}),
        );
        m
    };
    let mut results: Vec<CaseResult> = rows
        .iter()
        .map(|(n, ingest, d)| CaseResult {
            case: format!("backlog-{n}"),
            rate_per_s: d.rate,
            baseline: "journal append".into(),
            baseline_per_s: *ingest,
            rss_mb: Some(rss(d)),
            extra: heap(d),
        })
        .collect();
    results.push(CaseResult {
        case: format!("ingest-and-drain-{n}"),
        rate_per_s: both.rate,
        baseline: "journal append at the same time".into(),
        baseline_per_s: ingest_both,
        rss_mb: Some(rss(&both)),
        extra: heap(&both),
    });
    if args.json {
        let mut run = Map::new();
        run.insert("concurrency".into(), json!(args.concurrency));
        run.insert("patients".into(), json!(args.patients));
        print_json("drain", &results, run);
        return Ok(());
    }
    println!("\nbench drain: http sink on loopback answering 200 at once, {} lanes in flight, {} patients", args.concurrency, args.patients);
    println!(
        "{:>26} {:>12} {:>12} {:>8} {:>22} {:>22}",
        "CASE", "APPEND/s", "DRAIN/s", "RATIO", "RSS MB start/mid/end", "HEAP MB start/mid/end"
    );
    let drained = rows.iter().map(|(_, _, d)| d).chain(std::iter::once(&both));
    for (r, d) in results.iter().zip(drained) {
        let m = r.rss_mb.unwrap_or_default();
        let [hs, hm, he] = d.heap;
        println!(
            "{:>26} {:>12.0} {:>12.0} {:>8.2} {:>8.0}/{:.0}/{:.0} {:>16.0}/{hm:.0}/{he:.0}",
            r.case,
            r.baseline_per_s,
            r.rate_per_s,
            r.ratio(),
            m.start,
            m.mid,
            m.end,
            hs
        );
    }
    println!("targets: drain >= 25,000 msg/s and >= 0.9x append; RSS <= 32 MB, end <= start + 10%");
    Ok(())
}
