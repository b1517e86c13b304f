//! `gateway bench soak` (kept out of CI: it runs for about 15 minutes): a
//! real daemon takes ORU^R01s over MLLP at a steady rate while its FHIR
//! destination, a loopback server in this process, refuses connections for
//! `--outage` (a backlog of `--backlog` messages builds up), then comes
//! back while the clients go on sending. It checks that every AA'd message
//! is delivered, in per-patient order, samples the daemon's RSS and the
//! journal's disk use every `--sample`, and counts the daemon's ERROR and
//! WARN log lines by event. Reports figures; asserts nothing.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{json, Map};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::task::JoinSet;

use super::bench::{free_port, rss_mb, sample_message, Daemon};
use super::bench_drain::complete_request;
use super::bench_result::{print_json, CaseResult, Rss};
use crate::net::mllp_client::Client;

#[derive(Args)]
pub struct SoakArgs {
    /// Directory on the disk to use (a fresh journal goes below it, removed after).
    #[arg(long, default_value = "var/bench")]
    dir: PathBuf,
    /// Seconds the FHIR destination refuses connections.
    #[arg(long, default_value_t = 600)]
    outage: u64,
    /// Messages sent during the outage (the backlog); the send rate is backlog / outage.
    #[arg(long, default_value_t = 100_000)]
    backlog: u64,
    /// Seconds of steady traffic with the destination up, before the outage (the warm-up).
    #[arg(long, default_value_t = 60)]
    warmup: u64,
    /// Seconds the clients go on sending after the destination is back.
    #[arg(long, default_value_t = 120)]
    after: u64,
    /// Distinct patients (each sent on one connection, in order).
    #[arg(long, default_value_t = 500)]
    patients: usize,
    /// MLLP client connections.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Seconds between samples of RSS and disk use.
    #[arg(long, default_value_t = 10)]
    sample: u64,
    /// Most seconds to wait for the backlog to drain once the clients stop.
    #[arg(long, default_value_t = 900)]
    drain_limit: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// What the FHIR server saw: per patient, the sequence numbers in arrival order.
#[derive(Default)]
struct Seen {
    per_patient: HashMap<u32, Vec<u32>>,
    requests: u64,
}

/// The loopback FHIR server: answers every POST 200 with a
/// transaction-response while up; while down its port is closed
/// (connection refused) and open connections are cut, as a cloud outage.
struct FhirServer {
    port: u16,
    seen: Arc<Mutex<Seen>>,
    conns: Mutex<Option<JoinSet<()>>>,
}

impl FhirServer {
    fn new(port: u16) -> FhirServer {
        FhirServer {
            port,
            seen: Arc::new(Mutex::new(Seen::default())),
            conns: Mutex::new(None),
        }
    }

    fn up(&self) -> Result<(), String> {
        let sock = TcpSocket::new_v4().map_err(|e| e.to_string())?;
        sock.set_reuseaddr(true).map_err(|e| e.to_string())?;
        sock.bind(([127, 0, 0, 1], self.port).into())
            .map_err(|e| format!("FHIR server port {}: {e}", self.port))?;
        let listener = sock.listen(256).map_err(|e| e.to_string())?;
        let mut set = JoinSet::new();
        let seen = self.seen.clone();
        set.spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((s, _)) = listener.accept().await {
                let seen = seen.clone();
                conns.spawn(serve(s, seen));
                while conns.try_join_next().is_some() {}
            }
        });
        *self.conns.lock().unwrap_or_else(|e| e.into_inner()) = Some(set);
        Ok(())
    }

    /// Close the port and cut every connection (dropping the JoinSet aborts
    /// the accept loop, whose own JoinSet aborts the connections).
    fn down(&self) {
        self.conns.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

async fn serve(mut s: tokio::net::TcpStream, seen: Arc<Mutex<Seen>>) {
    let _ = s.set_nodelay(true);
    let body = r#"{"resourceType":"Bundle","type":"transaction-response"}"#;
    let reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut tmp = vec![0u8; 64 * 1024];
    loop {
        while let Some(body) = complete_request(&buf) {
            if let Some((p, seq)) = control_id(&buf[body.clone()]) {
                let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                seen.per_patient.entry(p).or_default().push(seq);
                seen.requests += 1;
            }
            buf.drain(..body.end);
            if s.write_all(reply.as_bytes()).await.is_err() {
                return;
            }
        }
        match s.read(&mut tmp).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The Bundle's message-control-id identifier, `S<patient>-<seq>`.
fn control_id(body: &[u8]) -> Option<(u32, u32)> {
    let key = b"message-control-id\",\"value\":\"S";
    let at = find(body, key)? + key.len();
    let rest = &body[at..];
    let end = rest.iter().position(|&b| b == b'"')?;
    let text = std::str::from_utf8(&rest[..end]).ok()?;
    let (p, seq) = text.split_once('-')?;
    Some((p.parse().ok()?, seq.parse().ok()?))
}

/// What the clients had acknowledged: per patient, the AA'd sequence numbers.
#[derive(Default)]
struct Sent {
    acked: HashMap<u32, Vec<u32>>,
    refused: u64,
}

struct Sample {
    at_s: u64,
    phase: &'static str,
    rss_mb: f64,
    disk_mb: f64,
    acked: u64,
    delivered: u64,
}

pub fn run(args: SoakArgs) -> Result<(), String> {
    let run_dir = args.dir.join(format!("soak-{}", std::process::id()));
    std::fs::create_dir_all(&run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
    let result = soak(&args, &run_dir);
    let _ = std::fs::remove_dir_all(&run_dir);
    result
}

fn soak(args: &SoakArgs, run_dir: &Path) -> Result<(), String> {
    let abs = std::path::absolute(run_dir).map_err(|e| e.to_string())?;
    let data = abs.join("data");
    let port = free_port()?;
    let fhir_port = free_port()?;
    let config = abs.join("soak.toml");
    // Delivered messages are pruned after ~5 minutes, so disk use can
    // come back down once the backlog is delivered.
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\n\n[storage]\nretention_days = 0.0035\n\n\
             [[listener]]\nname = \"ehr\"\nbind = \"127.0.0.1:{port}\"\n\n\
             [[destination]]\nname = \"cloud\"\nkind = \"fhir\"\nurl = \"http://127.0.0.1:{fhir_port}/fhir\"\n\n\
             [[route]]\nname = \"all\"\nfrom = [\"ehr\"]\nto = [\"cloud\"]\ntransform = \"fhir\"\n",
            data = data.display().to_string()
        ),
    )
    .map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let server = Arc::new(FhirServer::new(fhir_port));
    rt.block_on(async { server.up() })?;

    let log_path = abs.join("daemon.log");
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let child = Command::new(exe)
        .args(["run", "--config"])
        .arg(&config)
        .env("GATEWAY_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start the daemon: {e}"))?;
    let daemon = Daemon { child };
    let pid = daemon.child.id();
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(&addr).is_err() {
        if Instant::now() > deadline {
            return Err(format!(
                "the daemon did not listen within 60 s (log: {})",
                log_path.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    let rate = args.backlog as f64 / args.outage.max(1) as f64;
    let sending = Arc::new(AtomicBool::new(true));
    let sent = Arc::new(Mutex::new(Sent::default()));
    let acked_total = Arc::new(AtomicU64::new(0));
    eprintln!(
        "soak: {rate:.0} msg/s over {} connection(s), {} patients; warm-up {} s, outage {} s, then {} s more",
        args.connections, args.patients, args.warmup, args.outage, args.after
    );
    let clients = rt.spawn(clients(
        addr.clone(),
        args.connections.max(1),
        args.patients.max(1),
        rate,
        sending.clone(),
        sent.clone(),
        acked_total.clone(),
    ));

    let start = Instant::now();
    let mut samples = Vec::new();
    let delivered_now = |s: &FhirServer| {
        let seen = s.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.requests
    };
    let mut take = |phase: &'static str, samples: &mut Vec<Sample>| {
        let s = Sample {
            at_s: start.elapsed().as_secs(),
            phase,
            rss_mb: rss_mb(pid),
            disk_mb: disk_bytes(&data) as f64 / 1e6,
            acked: acked_total.load(Ordering::Relaxed),
            delivered: delivered_now(&server),
        };
        eprintln!(
            "  {:>5} s  {:<8} rss {:>6.1} MB  disk {:>7.1} MB  acked {:>7}  delivered {:>7}",
            s.at_s, s.phase, s.rss_mb, s.disk_mb, s.acked, s.delivered
        );
        samples.push(s);
    };
    let step = Duration::from_secs(args.sample.max(1));
    let phase_until = |phase_end: Instant,
                       phase: &'static str,
                       samples: &mut Vec<Sample>,
                       take: &mut dyn FnMut(&'static str, &mut Vec<Sample>)| {
        while Instant::now() < phase_end {
            std::thread::sleep(step.min(phase_end.saturating_duration_since(Instant::now())));
            take(phase, samples);
        }
    };
    take("start", &mut samples);
    phase_until(
        start + Duration::from_secs(args.warmup),
        "warm-up",
        &mut samples,
        &mut take,
    );
    let warm_idx = samples.len().saturating_sub(1);
    server.down();
    eprintln!("soak: the FHIR destination is down for {} s", args.outage);
    let outage_start = Instant::now();
    phase_until(
        outage_start + Duration::from_secs(args.outage),
        "outage",
        &mut samples,
        &mut take,
    );
    let backlog_at_recovery = acked_total
        .load(Ordering::Relaxed)
        .saturating_sub(delivered_now(&server));
    rt.block_on(async { server.up() })?;
    let recovered = Instant::now();
    eprintln!("soak: the FHIR destination is back; {backlog_at_recovery} message(s) waiting");
    phase_until(
        recovered + Duration::from_secs(args.after),
        "recovery",
        &mut samples,
        &mut take,
    );
    sending.store(false, Ordering::Relaxed);
    let client_error = rt.block_on(clients).map_err(|e| e.to_string())?.err();
    let acked = acked_total.load(Ordering::Relaxed);
    let drain_end = Instant::now() + Duration::from_secs(args.drain_limit);
    let mut drained_at = None;
    while Instant::now() < drain_end {
        if unique_delivered(&server) >= acked {
            drained_at = Some(Instant::now());
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        if samples
            .last()
            .is_some_and(|s| start.elapsed().as_secs() >= s.at_s + step.as_secs())
        {
            take("drain", &mut samples);
        }
    }
    take("end", &mut samples);
    drop(daemon);

    let check = compare(&sent, &server);
    let log_counts = scan_log(&log_path)?;
    let drain_rate = drain_rate(&samples, recovered, start);
    let after_warm = &samples[warm_idx..];
    let warm_rss = after_warm.first().map_or(0.0, |s| s.rss_mb);
    let max_rss = after_warm.iter().map(|s| s.rss_mb).fold(0.0, f64::max);
    let rss = Rss {
        start: warm_rss,
        mid: samples.get(samples.len() / 2).map_or(0.0, |s| s.rss_mb),
        end: samples.last().map_or(0.0, |s| s.rss_mb),
    };
    let peak_disk = samples.iter().map(|s| s.disk_mb).fold(0.0, f64::max);
    let end_disk = samples.last().map_or(0.0, |s| s.disk_mb);
    let refused = sent.lock().unwrap_or_else(|e| e.into_inner()).refused;
    let mut extra = Map::new();
    extra.insert("acked".into(), json!(acked));
    extra.insert("refused_by_gateway".into(), json!(refused));
    extra.insert("backlog_at_recovery".into(), json!(backlog_at_recovery));
    extra.insert("delivered_unique".into(), json!(check.delivered));
    extra.insert("missing".into(), json!(check.missing));
    extra.insert("duplicates".into(), json!(check.duplicates));
    extra.insert("order_violations".into(), json!(check.order_violations));
    extra.insert("drained".into(), json!(drained_at.is_some()));
    extra.insert("rss_max_after_warmup_mb".into(), json!(max_rss.round()));
    extra.insert(
        "rss_flat_within_10_percent".into(),
        json!(max_rss <= warm_rss * 1.1),
    );
    extra.insert(
        "disk_mb".into(),
        json!({"peak": peak_disk.round(), "end": end_disk.round()}),
    );
    extra.insert("log".into(), json!(log_counts));
    if let Some(e) = &client_error {
        extra.insert("client_error".into(), json!(e));
    }
    extra.insert(
        "samples".into(),
        json!(samples
            .iter()
            .map(|s| json!({"at_s": s.at_s, "phase": s.phase, "rss_mb": (s.rss_mb * 10.0).round() / 10.0,
                "disk_mb": (s.disk_mb * 10.0).round() / 10.0, "acked": s.acked, "delivered": s.delivered}))
            .collect::<Vec<_>>()),
    );
    let case = CaseResult {
        case: format!("outage-{}s-backlog-{}", args.outage, args.backlog),
        rate_per_s: drain_rate,
        baseline: "client send rate".into(),
        baseline_per_s: rate,
        rss_mb: Some(rss),
        extra,
    };
    if args.json {
        print_json("soak", &[case], Map::new());
        return Ok(());
    }
    println!("\nbench soak: {}", case.case);
    println!(
        "  acked {acked} (refused {refused}), delivered {} unique, missing {}, duplicates {}, out of patient order {}",
        check.delivered, check.missing, check.duplicates, check.order_violations
    );
    println!(
        "  drain after recovery {:.0} msg/s = {:.2}× the send rate; backlog at recovery {backlog_at_recovery}",
        drain_rate,
        case.ratio()
    );
    println!(
        "  RSS after warm-up {warm_rss:.1} MB, max {max_rss:.1} MB ({}), end {:.1} MB; disk peak {peak_disk:.1} MB, end {end_disk:.1} MB",
        if max_rss <= warm_rss * 1.1 { "flat within 10%" } else { "NOT flat" },
        rss.end
    );
    println!("  daemon log: {log_counts}");
    if let Some(e) = client_error {
        println!("  a client stopped early: {e}");
    }
    if drained_at.is_none() {
        println!("  NOT drained within {} s", args.drain_limit);
    }
    Ok(())
}

/// Each connection sends its own patients' messages one at a time, paced
/// to `rate / connections` per second, recording the AA'd ones.
async fn clients(
    addr: String,
    connections: usize,
    patients: usize,
    rate: f64,
    sending: Arc<AtomicBool>,
    sent: Arc<Mutex<Sent>>,
    acked_total: Arc<AtomicU64>,
) -> Result<(), String> {
    let mut set = JoinSet::new();
    let per_conn = (rate / connections as f64).max(0.1);
    for c in 0..connections {
        let (addr, sending, sent, acked_total) = (
            addr.clone(),
            sending.clone(),
            sent.clone(),
            acked_total.clone(),
        );
        set.spawn(async move {
            let mut client = Client::connect(&addr, None, Duration::from_secs(30))
                .await
                .map_err(|e| e.to_string())?;
            let mine: Vec<u32> = (0..patients as u32)
                .filter(|p| *p as usize % connections == c)
                .collect();
            if mine.is_empty() {
                return Ok(());
            }
            let mut seqs = vec![0u32; mine.len()];
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_conn));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut i = 0usize;
            while sending.load(Ordering::Relaxed) {
                tick.tick().await;
                let k = i % mine.len();
                let (p, seq) = (mine[k], seqs[k]);
                let msg = sample_message(&format!("S{p}-{seq}"), p as usize);
                let ack = client.exchange(&msg).await.map_err(|e| e.to_string())?;
                let mut s = sent.lock().unwrap_or_else(|e| e.into_inner());
                if ack.windows(7).any(|w| w == b"\rMSA|AA") {
                    s.acked.entry(p).or_default().push(seq);
                    acked_total.fetch_add(1, Ordering::Relaxed);
                } else {
                    s.refused += 1;
                }
                seqs[k] += 1;
                i += 1;
            }
            Ok::<(), String>(())
        });
    }
    let mut first_error = Ok(());
    while let Some(r) = set.join_next().await {
        if let Err(e) = r.map_err(|e| e.to_string()).and_then(|r| r) {
            first_error = first_error.and(Err(e));
        }
    }
    first_error
}

struct Check {
    delivered: u64,
    missing: u64,
    duplicates: u64,
    order_violations: u64,
}

fn unique_delivered(server: &FhirServer) -> u64 {
    let seen = server.seen.lock().unwrap_or_else(|e| e.into_inner());
    seen.per_patient
        .values()
        .map(|v| {
            let mut u = v.clone();
            u.sort_unstable();
            u.dedup();
            u.len() as u64
        })
        .sum()
}

/// Every AA'd message delivered; per patient, arrivals never go back to an
/// earlier message than one already delivered (a repeat of the latest is a
/// redelivery after a cut connection, counted as a duplicate).
fn compare(sent: &Mutex<Sent>, server: &FhirServer) -> Check {
    let sent = sent.lock().unwrap_or_else(|e| e.into_inner());
    let seen = server.seen.lock().unwrap_or_else(|e| e.into_inner());
    let mut c = Check {
        delivered: 0,
        missing: 0,
        duplicates: 0,
        order_violations: 0,
    };
    for (p, acked) in &sent.acked {
        let got = seen.per_patient.get(p).map(Vec::as_slice).unwrap_or(&[]);
        let mut latest: Option<u32> = None;
        for &seq in got {
            match latest {
                Some(l) if seq < l => c.order_violations += 1,
                Some(l) if seq == l => c.duplicates += 1,
                _ => latest = Some(seq),
            }
        }
        let mut unique = got.to_vec();
        unique.sort_unstable();
        unique.dedup();
        c.delivered += unique.len() as u64;
        c.missing += acked
            .iter()
            .filter(|s| unique.binary_search(s).is_err())
            .count() as u64;
    }
    c
}

/// Messages per second from recovery until the server had all it had at
/// the first sample where the backlog was gone (or the last sample).
fn drain_rate(samples: &[Sample], recovered: Instant, start: Instant) -> f64 {
    let from = recovered.duration_since(start).as_secs();
    let Some(first) = samples.iter().find(|s| s.at_s >= from) else {
        return 0.0;
    };
    let done = samples
        .iter()
        .filter(|s| s.at_s > first.at_s)
        .find(|s| s.delivered >= s.acked)
        .or(samples.last());
    match done {
        Some(d) if d.at_s > first.at_s => {
            d.delivered.saturating_sub(first.delivered) as f64 / (d.at_s - first.at_s) as f64
        }
        _ => 0.0,
    }
}

/// Bytes the journal's files take on disk (allocated blocks).
fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.blocks() * 512,
                Err(_) => {}
            }
        }
    }
    total
}

/// ERROR and WARN lines of the daemon's log, by level and `event=` (or
/// target when a line has none).
fn scan_log(path: &Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (_, Some(level), Some(target)) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        if level != "ERROR" && level != "WARN" {
            continue;
        }
        let event = line
            .split("event=")
            .nth(1)
            .and_then(|r| r.split([' ', ']']).next())
            .unwrap_or(target.trim_end_matches(':'));
        *counts.entry(format!("{level} {event}")).or_default() += 1;
    }
    Ok(json!(counts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_id_is_read_from_the_bundle_identifier() {
        let body = br#"{"identifier":{"system":"urn:x:message-control-id","value":"S17-42"}}"#;
        assert_eq!(control_id(body), Some((17, 42)));
        assert_eq!(control_id(br#"{"value":"S17-42"}"#), None);
    }

    #[test]
    fn order_duplicates_and_missing_are_counted() {
        let sent = Mutex::new(Sent::default());
        sent.lock().unwrap().acked.insert(1, vec![0, 1, 2, 3]);
        let server = FhirServer::new(0);
        server
            .seen
            .lock()
            .unwrap()
            .per_patient
            .insert(1, vec![0, 1, 1, 0, 3]);
        let c = compare(&sent, &server);
        assert_eq!(
            (c.delivered, c.missing, c.duplicates, c.order_violations),
            (3, 1, 1, 1)
        );
    }
}
