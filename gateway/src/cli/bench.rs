//! `gateway bench ingest`: durable-ACK throughput and ACK latency over 1, 8
//! and 32 concurrent MLLP connections against a real daemon process, with the
//! disk's raw append+fdatasync rate measured in the same run as the baseline.
//! Reports ratios, not absolute targets, because shared machines are noisy.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};

use crate::net::mllp_client::Client;

#[derive(Subcommand)]
pub enum BenchKind {
    /// MLLP ingest: durable ACKs per second and ACK latency.
    Ingest(IngestArgs),
    /// Store-and-forward: drain 100k and 1M backlogs to a loopback HTTP sink.
    Drain(super::bench_drain::DrainArgs),
    /// X12: 835 check + JSON vs a byte scan; pickup throughput vs raw fdatasync.
    X12(super::bench_x12::X12BenchArgs),
}

#[derive(Args)]
pub struct IngestArgs {
    /// Directory on the disk to measure (the journal goes in a fresh subdirectory).
    #[arg(long, default_value = "var/bench")]
    dir: PathBuf,
    /// Seconds of load per concurrency level.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    connections: Vec<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(kind: BenchKind) -> ExitCode {
    match kind {
        BenchKind::Drain(args) => match super::bench_drain::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench failed: {e}");
                ExitCode::FAILURE
            }
        },
        BenchKind::X12(args) => match super::bench_x12::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench failed: {e}");
                ExitCode::FAILURE
            }
        },
        BenchKind::Ingest(args) => match ingest(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench failed: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Appends of `size`-byte records to one file, each followed by fdatasync, per second.
pub fn raw_fdatasync_rate(dir: &Path, size: usize, duration: Duration) -> std::io::Result<f64> {
    let path = dir.join("fdatasync-baseline.dat");
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    let record = vec![b'x'; size];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < duration {
        f.write_all(&record)?;
        f.sync_data()?;
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path)?;
    Ok(rate)
}

struct Level {
    connections: usize,
    acked: u64,
    msgs_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    rss_mb: f64,
}

pub(super) struct Daemon {
    pub(super) child: Child,
}

impl Daemon {
    /// This binary's daemon on `config` (log level `log`), once its
    /// listener on `port` accepts connections.
    pub(super) fn start(config: &Path, port: u16, log: &str) -> Result<Daemon, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let child = Command::new(exe)
            .args(["run", "--config"])
            .arg(config)
            .env("GATEWAY_LOG", log)
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the daemon: {e}"))?;
        let daemon = Daemon { child };
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&addr).is_err() {
            if Instant::now() > deadline {
                return Err("daemon did not start listening within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(daemon)
    }
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
    eprintln!(
        "measuring raw append+fdatasync rate in {} ...",
        abs.display()
    );
    let raw = raw_fdatasync_rate(&abs, 1024, Duration::from_secs(3))
        .map_err(|e| format!("baseline: {e}"))?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    eprintln!("measuring a loopback MLLP echo round trip (no disk) ...");
    let echo = rt.block_on(echo_round_trips(Duration::from_secs(3)))?;

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let config = abs.join("bench.toml");
    // No route: the journal alone is measured (every message is journaled as filtered).
    std::fs::write(
        &config,
        format!("data_dir = \"data\"\n\n[[listener]]\nname = \"bench\"\nbind = \"127.0.0.1:{port}\"\nmax_connections = 128\nmax_connections_per_peer = 128\n"),
    )
    .map_err(|e| e.to_string())?;
    let daemon = Daemon::start(&config, port, "warn")?;
    let addr = format!("127.0.0.1:{port}");

    let mut levels = Vec::new();
    for &n in &args.connections {
        eprintln!("{n} connection(s) for {} s ...", args.seconds);
        let pid = daemon.child.id();
        let level = rt.block_on(load(&addr, n, Duration::from_secs(args.seconds), pid))?;
        levels.push(level);
    }
    drop(daemon);
    report(args, raw, echo, &levels);
    Ok(())
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
    pid: u32,
) -> Result<Level, String> {
    let start = Instant::now();
    let stop_at = start + duration;
    let prefix = Arc::new(format!("B{}C{connections}", crate::ops::clock::unix_ms()));
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
    // Sample the daemon's memory while all connections are busy.
    tokio::time::sleep(duration / 2).await;
    let rss_mid = rss_mb(pid);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.map_err(|e| e.to_string())??);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let rss = rss_mid.max(rss_mb(pid));
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    };
    Ok(Level {
        connections,
        acked: all.len() as u64,
        msgs_per_sec: all.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        rss_mb: rss,
    })
}

fn report(args: &IngestArgs, raw: f64, echo: f64, levels: &[Level]) {
    // One connection can do no better than one fdatasync plus one round trip per message.
    let serial_limit = 1.0 / (1.0 / raw + 1.0 / echo);
    let one = levels
        .iter()
        .find(|l| l.connections == 1)
        .map(|l| l.msgs_per_sec);
    if args.json {
        let v = serde_json::json!({
            "raw_fdatasync_per_sec": raw,
            "echo_round_trips_per_sec": echo,
            "one_connection_limit_per_sec": serial_limit,
            "levels": levels.iter().map(|l| serde_json::json!({
                "connections": l.connections, "acked": l.acked, "msgs_per_sec": l.msgs_per_sec,
                "p50_ms": l.p50_ms, "p99_ms": l.p99_ms, "rss_mb": l.rss_mb,
                "ratio_to_raw_fdatasync": l.msgs_per_sec / raw,
                "ratio_to_one_connection": one.map(|o| l.msgs_per_sec / o),
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return;
    }
    println!("raw append+fdatasync (1 KiB records, same disk): {raw:.0} /s");
    println!("loopback MLLP echo round trips (no disk):        {echo:.0} /s");
    println!(
        "one connection's limit (one fdatasync + one round trip per message): {serial_limit:.0} /s{}",
        one.map(|o| format!("; 1 connection reaches {:.2}x of it", o / serial_limit)).unwrap_or_default()
    );
    println!(
        "{:>6} {:>9} {:>10} {:>9} {:>9} {:>8} {:>9} {:>9}",
        "CONNS", "ACKED", "MSGS/S", "P50 ms", "P99 ms", "RSS MB", "x RAW", "x 1-CONN"
    );
    for l in levels {
        println!(
            "{:>6} {:>9} {:>10.0} {:>9.2} {:>9.2} {:>8.1} {:>9.2} {:>9}",
            l.connections,
            l.acked,
            l.msgs_per_sec,
            l.p50_ms,
            l.p99_ms,
            l.rss_mb,
            l.msgs_per_sec / raw,
            one.map(|o| format!("{:.2}", l.msgs_per_sec / o))
                .unwrap_or_else(|| "-".into())
        );
    }
    println!("targets: 1 connection >= 0.8x raw; 32 connections >= 5x one connection; RSS <= 30 MB at 32 connections");
}
