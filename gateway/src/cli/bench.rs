//! `gateway bench ingest`: durable-ACK throughput and ACK latency over 1, 8
//! and 32 concurrent MLLP connections against a real daemon process, with
//! baselines measured in the same run on the same disk: the naive durable
//! server (`bench_naive.rs`) under the same client load, the disk's raw
//! append+fdatasync rate (three file layouts, `bench_segments.rs`) and a
//! loopback MLLP echo. With `--block-device` it also reports the bytes the
//! device received per acknowledged message (`bench_wear.rs`), gateway and
//! naive server alike. Reports ratios, not absolute targets, because
//! shared machines are noisy.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::{json, Map};

use super::bench_naive::NaiveServer;
use super::bench_result::{print_json, round2, CaseResult, Rss};
use super::bench_segments::{fdatasync_rate, Layout};
use super::bench_wear::{settle, Device};
use crate::net::mllp_client::Client;

#[derive(Subcommand)]
pub enum BenchKind {
    /// MLLP ingest: durable ACKs per second and ACK latency, against the naive durable server.
    Ingest(IngestArgs),
    /// Store-and-forward: drain 100k and 1M backlogs to a loopback HTTP sink.
    Drain(super::bench_drain::DrainArgs),
    /// Cold start to READY with a large journal, against an empty one.
    Start(super::bench_start::StartArgs),
    /// X12: 835 check + JSON vs a byte scan; pickup throughput vs raw fdatasync.
    X12(super::bench_x12::X12BenchArgs),
    /// Bulk Data $export: download + tag of ~1 GB NDJSON vs plain streaming to disk.
    Export(super::bench_export::ExportBenchArgs),
    /// HL7 v2 -> FHIR Bundle bytes per core (ORU^R01 10 OBX, ADT^A08) vs parse only and a serde_json write.
    Translate(super::bench_translate::TranslateBenchArgs),
    /// Soak (not CI, ~15 min): a 100k backlog through a 10-minute FHIR outage with clients sending, then recovery.
    Soak(super::bench_soak::SoakArgs),
}

#[derive(Args)]
pub struct IngestArgs {
    /// Directory on the disk to measure (the journal goes in a fresh subdirectory).
    #[arg(long, default_value = "var/bench")]
    dir: PathBuf,
    /// Seconds of load per concurrency level (each for the gateway and for the naive server).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    connections: Vec<usize>,
    /// The block device holding --dir (its /proc/diskstats name, e.g. loop7):
    /// report bytes written to it per acknowledged message. Use a dedicated device.
    #[arg(long)]
    block_device: Option<String>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(kind: BenchKind) -> ExitCode {
    let r = match kind {
        BenchKind::Drain(args) => super::bench_drain::run(args),
        BenchKind::Ingest(args) => ingest(args),
        BenchKind::Start(args) => super::bench_start::run(args),
        BenchKind::X12(args) => super::bench_x12::run(args),
        BenchKind::Export(args) => super::bench_export::run(args),
        BenchKind::Translate(args) => super::bench_translate::run(args),
        BenchKind::Soak(args) => super::bench_soak::run(args),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One load run against one server.
struct Load {
    acked: u64,
    msgs_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    rss: Rss,
    /// Bytes the block device received per acknowledged message.
    bytes_per_msg: Option<f64>,
}

struct Level {
    connections: usize,
    gateway: Load,
    naive: Load,
}

pub(super) struct Daemon {
    pub(super) child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `gateway run --config <config>` and wait until it listens on `addr`.
pub(super) fn start_daemon(config: &Path, addr: &str) -> Result<Daemon, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let child = Command::new(exe)
        .args(["run", "--config"])
        .arg(config)
        .env("GATEWAY_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the daemon: {e}"))?;
    let daemon = Daemon { child };
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(addr).is_err() {
        if Instant::now() > deadline {
            return Err("daemon did not start listening within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(daemon)
}

pub(super) fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

pub(super) fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

pub(super) fn sample_message(control_id: &str, patient: usize) -> Vec<u8> {
    // A typical ~1 KB lab result.
    let mut m = format!(
        "MSH|^~\\&|ECW|CLINIC|LAB|REF|20240101120000||ORU^R01^ORU_R01|{control_id}|P|2.5.1\rPID|1||MRN{patient}^^^CLINIC^MR||BENCH^PATIENT||19700101|F\rOBR|1|PL{control_id}|FL{control_id}|24323-8^Comprehensive metabolic panel^LN|||20240101110000\r"
    );
    for i in 1..=10 {
        m += &format!(
            "OBX|{i}|NM|2345-7^Glucose^LN||{}|mg/dL^mg/dL^UCUM|70-99|N|||F|||20240101113000\r",
            80 + i
        );
    }
    m.into_bytes()
}

fn ingest(args: IngestArgs) -> Result<(), String> {
    let run_dir = args.dir.join(format!("run-{}", std::process::id()));
    std::fs::create_dir_all(&run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
    let result = ingest_in(&args, &run_dir);
    let _ = std::fs::remove_dir_all(&run_dir);
    result
}

fn ingest_in(args: &IngestArgs, run_dir: &Path) -> Result<(), String> {
    let abs = std::path::absolute(run_dir).map_err(|e| e.to_string())?;
    let device = args.block_device.as_deref().map(Device::new).transpose()?;
    eprintln!(
        "measuring raw 1 KiB write+fdatasync rates in {} (append, fallocate, pre-zeroed) ...",
        abs.display()
    );
    let mut raw = Vec::new();
    for layout in [Layout::Append, Layout::Fallocate, Layout::Prezeroed] {
        let r = fdatasync_rate(&abs, layout, 1024, Duration::from_secs(3))
            .map_err(|e| format!("raw {} baseline: {e}", layout.label()))?;
        raw.push((layout, r));
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    eprintln!("measuring a loopback MLLP echo round trip (no disk) ...");
    let echo = rt.block_on(echo_round_trips(Duration::from_secs(3)))?;

    let mut levels = Vec::new();
    for &n in &args.connections {
        eprintln!(
            "{n} connection(s): gateway and naive durable server, alternating 1 s slices for {} s each ...",
            args.seconds
        );
        levels.push(level(&rt, &abs, n, args.seconds.max(1), device.as_ref())?);
    }
    report(args, &raw, echo, &levels);
    Ok(())
}

/// One concurrency level: a fresh naive server and a fresh daemon, loaded
/// in alternating 1 s slices (the order swapped every round), so a burst of
/// other I/O on a shared machine hits both alike.
fn level(
    rt: &tokio::runtime::Runtime,
    abs: &Path,
    n: usize,
    rounds: u64,
    device: Option<&Device>,
) -> Result<Level, String> {
    let ndir = abs.join(format!("naive-{n}"));
    let gdir = abs.join(format!("gateway-{n}"));
    for d in [&ndir, &gdir] {
        std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
    }
    let naive_server = NaiveServer::start(&ndir)?;
    let port = free_port()?;
    let config = gdir.join("bench.toml");
    // No route: the journal alone is measured (every message is journaled as filtered).
    std::fs::write(
        &config,
        format!("data_dir = \"data\"\n\n[[listener]]\nname = \"bench\"\nbind = \"127.0.0.1:{port}\"\nmax_connections = 128\nmax_connections_per_peer = 128\n"),
    )
    .map_err(|e| e.to_string())?;
    let gaddr = format!("127.0.0.1:{port}");
    let daemon = start_daemon(&config, &gaddr)?;
    let pid = daemon.child.id();
    let mut naive = Acc::default();
    let mut gateway = Acc::default();
    gateway.rss.start = rss_mb(pid);
    for round in 0..rounds {
        for gateway_turn in [round % 2 == 0, round % 2 == 1] {
            let (acc, addr, dir, pid) = if gateway_turn {
                (&mut gateway, gaddr.as_str(), &gdir, Some(pid))
            } else {
                (&mut naive, naive_server.addr.as_str(), &ndir, None)
            };
            let before = written(device, dir)?;
            let slice = rt.block_on(load(addr, n, Duration::from_secs(1), pid, round))?;
            acc.bytes += written(device, dir)?.saturating_sub(before);
            acc.add(slice);
        }
    }
    gateway.rss.end = rss_mb(pid);
    // A clean stop checkpoints the journal: its writes count too.
    let before = written(device, &gdir)?;
    drop(daemon);
    gateway.bytes += written(device, &gdir)?.saturating_sub(before);
    drop(naive_server);
    for d in [&ndir, &gdir] {
        let _ = std::fs::remove_dir_all(d);
    }
    Ok(Level {
        connections: n,
        gateway: gateway.finish(device.is_some()),
        naive: naive.finish(device.is_some()),
    })
}

/// Latencies of one slice of load, its length, and the RSS seen in it.
struct Slice {
    latencies: Vec<Duration>,
    elapsed: Duration,
    rss_max: f64,
}

#[derive(Default)]
struct Acc {
    latencies: Vec<Duration>,
    elapsed: Duration,
    rss: Rss,
    bytes: u64,
}

impl Acc {
    /// `rss.mid` becomes the highest RSS seen under load.
    fn add(&mut self, s: Slice) {
        self.latencies.extend(s.latencies);
        self.elapsed += s.elapsed;
        self.rss.mid = self.rss.mid.max(s.rss_max);
    }

    fn finish(mut self, counted_bytes: bool) -> Load {
        self.latencies.sort_unstable();
        let all = &self.latencies;
        let pct = |p: f64| {
            all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
                .map(|d| d.as_secs_f64() * 1000.0)
                .unwrap_or(0.0)
        };
        let acked = all.len() as u64;
        Load {
            acked,
            msgs_per_sec: acked as f64 / self.elapsed.as_secs_f64().max(1e-9),
            p50_ms: pct(0.50),
            p99_ms: pct(0.99),
            rss: self.rss,
            bytes_per_msg: counted_bytes.then(|| self.bytes as f64 / acked.max(1) as f64),
        }
    }
}

fn written(device: Option<&Device>, dir: &Path) -> Result<u64, String> {
    match device {
        None => Ok(0),
        Some(d) => {
            settle(dir)?;
            d.bytes_written()
        }
    }
}

/// One connection's MLLP round trips per second against a loopback server
/// that answers every frame at once with a fixed ACK: the network and
/// scheduling share of one connection's ACK latency, with no disk involved.
async fn echo_round_trips(duration: Duration) -> Result<f64, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener
        .local_addr()
        .map_err(|e| e.to_string())?
        .to_string();
    let server = tokio::spawn(async move {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        let _ = s.set_nodelay(true);
        let ack = hl7::mllp::frame(b"MSH|^~\\&|||||||ACK|1|P|2.5.1\rMSA|AA|1\r");
        let mut decoder = hl7::mllp::Decoder::new(1 << 20);
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            while let Some(ev) = decoder.next_event() {
                if !matches!(ev, hl7::mllp::Event::Frame(_)) || s.write_all(&ack).await.is_err() {
                    return;
                }
            }
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => decoder.push(&buf[..n]),
            }
        }
    });
    let mut client = Client::connect(&addr, None, Duration::from_secs(10))
        .await
        .map_err(|e| e.to_string())?;
    let msg = sample_message("ECHO", 1);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < duration {
        client.exchange(&msg).await.map_err(|e| e.to_string())?;
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    drop(client);
    let _ = server.await;
    Ok(rate)
}

async fn load(
    addr: &str,
    connections: usize,
    duration: Duration,
    pid: Option<u32>,
    slice: u64,
) -> Result<Slice, String> {
    let rss = |pid: Option<u32>| pid.map_or(0.0, rss_mb);
    let start = Instant::now();
    let stop_at = start + duration;
    let prefix = Arc::new(format!(
        "B{}C{connections}S{slice}",
        crate::ops::clock::unix_ms()
    ));
    let mut tasks = Vec::new();
    for c in 0..connections {
        let addr = addr.to_string();
        let prefix = prefix.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(&addr, None, Duration::from_secs(10))
                .await
                .map_err(|e| e.to_string())?;
            let mut latencies = Vec::new();
            let mut seq = 0u64;
            while Instant::now() < stop_at {
                let msg = sample_message(
                    &format!("{prefix}-{c}-{seq}"),
                    c * 1000 + (seq % 50) as usize,
                );
                let t = Instant::now();
                let ack = client.exchange(&msg).await.map_err(|e| e.to_string())?;
                latencies.push(t.elapsed());
                if !ack.windows(7).any(|w| w == b"\rMSA|AA") {
                    return Err(format!("non-AA answer: {}", String::from_utf8_lossy(&ack)));
                }
                seq += 1;
            }
            Ok::<_, String>(latencies)
        }));
    }
    // Sample the server's memory while all connections are busy.
    tokio::time::sleep(duration / 2).await;
    let rss_mid = rss(pid);
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.map_err(|e| e.to_string())??);
    }
    let elapsed = start.elapsed();
    Ok(Slice {
        latencies,
        elapsed,
        rss_max: rss_mid.max(rss(pid)),
    })
}

fn report(args: &IngestArgs, raw: &[(Layout, f64)], echo: f64, levels: &[Level]) {
    let raw_append = raw.first().map_or(0.0, |r| r.1);
    // One connection can do no better than one fdatasync plus one round trip per message.
    let ceiling = 1.0 / (1.0 / raw_append + 1.0 / echo);
    let one = levels
        .iter()
        .find(|l| l.connections == 1)
        .map(|l| l.gateway.msgs_per_sec);
    let results: Vec<CaseResult> = levels
        .iter()
        .map(|l| {
            let g = &l.gateway;
            let mut extra = Map::new();
            extra.insert("acked".into(), json!(g.acked));
            extra.insert("p50_ms".into(), json!(round2(g.p50_ms)));
            extra.insert("p99_ms".into(), json!(round2(g.p99_ms)));
            extra.insert("baseline_p99_ms".into(), json!(round2(l.naive.p99_ms)));
            extra.insert(
                "p99_ratio".into(),
                json!(round2(g.p99_ms / l.naive.p99_ms.max(1e-9))),
            );
            if l.connections == 1 {
                extra.insert(
                    "ratio_to_echo_ceiling".into(),
                    json!(round2(g.msgs_per_sec / ceiling)),
                );
            }
            if let Some(o) = one {
                extra.insert(
                    "ratio_to_one_connection".into(),
                    json!(round2(g.msgs_per_sec / o)),
                );
            }
            if let (Some(gb), Some(nb)) = (g.bytes_per_msg, l.naive.bytes_per_msg) {
                extra.insert("bytes_written_per_msg".into(), json!(gb.round()));
                extra.insert("baseline_bytes_written_per_msg".into(), json!(nb.round()));
            }
            CaseResult {
                case: format!("connections-{}", l.connections),
                rate_per_s: g.msgs_per_sec,
                baseline: "naive durable server".into(),
                baseline_per_s: l.naive.msgs_per_sec,
                rss_mb: Some(g.rss),
                extra,
            }
        })
        .collect();
    if args.json {
        let mut run = Map::new();
        for (layout, r) in raw {
            run.insert(
                format!("raw_fdatasync_{}_per_s", layout.label()),
                json!(r.round()),
            );
        }
        run.insert("echo_round_trips_per_s".into(), json!(echo.round()));
        run.insert(
            "one_connection_ceiling_per_s".into(),
            json!(ceiling.round()),
        );
        print_json("ingest", &results, run);
        return;
    }
    for (layout, r) in raw {
        println!(
            "raw 1 KiB write+fdatasync, {:<10} {r:>8.0} /s",
            format!("{}:", layout.label())
        );
    }
    println!("loopback MLLP echo round trips (no disk): {echo:.0} /s");
    println!("one connection's ceiling (one fdatasync + one round trip): {ceiling:.0} /s");
    println!(
        "{:>6} {:>9} {:>9} {:>8} {:>9} {:>9} {:>8} {:>9} {:>15} {:>9}",
        "CONNS",
        "GW/s",
        "NAIVE/s",
        "x NAIVE",
        "P99 GW",
        "P99 NAIVE",
        "x P99",
        "x 1-CONN",
        "RSS MB s/m/e",
        "B/MSG GW/NAIVE"
    );
    for (l, r) in levels.iter().zip(&results) {
        let g = &l.gateway;
        println!(
            "{:>6} {:>9.0} {:>9.0} {:>8.2} {:>9.2} {:>9.2} {:>8.2} {:>9} {:>15} {:>9}",
            l.connections,
            g.msgs_per_sec,
            l.naive.msgs_per_sec,
            r.ratio(),
            g.p99_ms,
            l.naive.p99_ms,
            g.p99_ms / l.naive.p99_ms.max(1e-9),
            one.map(|o| format!("{:.2}", g.msgs_per_sec / o))
                .unwrap_or_else(|| "-".into()),
            format!("{:.0}/{:.0}/{:.0}", g.rss.start, g.rss.mid, g.rss.end),
            match (g.bytes_per_msg, l.naive.bytes_per_msg) {
                (Some(a), Some(b)) => format!("{a:.0}/{b:.0}"),
                _ => "-".into(),
            }
        );
    }
    if let Some(o) = one {
        println!(
            "1 connection reaches {:.2}x the one-connection ceiling",
            o / ceiling
        );
    }
    println!("targets: 1 connection >= 1.0x naive, >= 0.9x ceiling, p99 <= 1.5x naive; 32 connections >= 5x one connection, RSS <= 32 MB");
}
