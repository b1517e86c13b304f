//! `gateway bench start`: cold start of the daemon to READY (the
//! `READY=1` it sends on `NOTIFY_SOCKET`, as systemd sees it) with a large
//! journal — by default 1M messages, the newest 100k pending on an `http`
//! destination — against the start with an empty journal, measured in the
//! same run, rounds alternating. The destination points at a closed
//! loopback port, so the backlog stays as it is from round to round.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{json, Map};

use super::bench_result::{print_json, round2, CaseResult};

#[derive(Args)]
pub struct StartArgs {
    /// Directory on the disk to measure (fresh journals go below it).
    #[arg(long, default_value = "var/bench")]
    dir: PathBuf,
    /// Messages in the large journal.
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// How many of them (the newest) are pending.
    #[arg(long, default_value_t = 100_000)]
    pending: u64,
    /// Starts measured per journal (the median is reported).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Keep the filled journals in `<dir>/start-kept-N-P` and reuse them on the
    /// next run with the same `--messages`/`--pending` (filling 1M messages
    /// takes longer than the starts measured).
    #[arg(long)]
    keep: bool,
}

pub fn run(args: StartArgs) -> Result<(), String> {
    let run_dir = if args.keep {
        args.dir
            .join(format!("start-kept-{}-{}", args.messages, args.pending))
    } else {
        args.dir.join(format!("start-{}", std::process::id()))
    };
    std::fs::create_dir_all(&run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
    let abs = std::path::absolute(&run_dir).map_err(|e| e.to_string());
    let r = abs.and_then(|abs| run_in(&args, &abs));
    if !args.keep {
        let _ = std::fs::remove_dir_all(&run_dir);
    }
    r
}

fn run_in(args: &StartArgs, run_dir: &Path) -> Result<(), String> {
    let empty = run_dir.join("empty");
    let full = run_dir.join("full");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    // A kept journal is reused as it is (its fill marker is written last).
    let filled = full.join("filled");
    let fill_rate = if args.keep && filled.exists() {
        eprintln!("reusing the journal in {}", full.display());
        0.0
    } else {
        let _ = std::fs::remove_dir_all(&full);
        fill_journal(&rt, args, &full)?
    };
    if args.keep {
        std::fs::write(&filled, b"").map_err(|e| format!("{}: {e}", filled.display()))?;
    }
    drop(rt);
    let mut empty_ms = Vec::new();
    let mut full_ms = Vec::new();
    let mut full_rss = 0.0f64;
    for round in 0..args.rounds {
        eprintln!("round {}/{} ...", round + 1, args.rounds);
        empty_ms.push(time_to_ready(&empty)?.0);
        let (ms, rss) = time_to_ready(&full)?;
        full_ms.push(ms);
        full_rss = full_rss.max(rss);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let (e, f) = (median(&mut empty_ms), median(&mut full_ms));
    // A rate, so the ratio reads like every other bench: starts per second.
    let mut extra = Map::new();
    extra.insert("ready_ms".into(), json!(round2(f)));
    extra.insert("baseline_ready_ms".into(), json!(round2(e)));
    let tenths = |v: &[f64]| {
        v.iter()
            .map(|x| (x * 10.0).round() / 10.0)
            .collect::<Vec<_>>()
    };
    extra.insert("ready_ms_runs".into(), json!(tenths(&full_ms)));
    extra.insert("baseline_ready_ms_runs".into(), json!(tenths(&empty_ms)));
    extra.insert("slowdown".into(), json!(round2(f / e.max(1e-9))));
    extra.insert("rss_mb_at_ready".into(), json!(full_rss.round()));
    let row = CaseResult {
        case: format!("journal-{}-pending-{}", args.messages, args.pending),
        rate_per_s: 1000.0 / f.max(1e-9),
        baseline: "empty journal".into(),
        baseline_per_s: 1000.0 / e.max(1e-9),
        rss_mb: None,
        extra,
    };
    if args.json {
        let mut run = Map::new();
        run.insert("rounds".into(), json!(args.rounds));
        run.insert("fill_per_s".into(), json!(fill_rate.round()));
        print_json("start", &[row], run);
        return Ok(());
    }
    println!(
        "\nbench start: daemon spawn to READY=1, median of {} rounds",
        args.rounds
    );
    println!("empty journal:                          {e:>8.1} ms");
    println!(
        "{} messages, {} pending:        {f:>8.1} ms ({:.2}x the empty start; RSS at READY {full_rss:.0} MB)",
        args.messages,
        args.pending,
        f / e.max(1e-9)
    );
    println!("targets: <= 200 ms with a 1M journal, <= 2x the empty start");
    Ok(())
}

/// Fill the large journal; returns the append rate (msg/s).
fn fill_journal(
    rt: &tokio::runtime::Runtime,
    args: &StartArgs,
    full: &Path,
) -> Result<f64, String> {
    eprintln!(
        "filling a journal of {} messages ({} pending) ...",
        args.messages, args.pending
    );
    let rate = rt.block_on(async {
        let j = super::bench_drain::open_journal(&full.join("journal")).await?;
        let pending_from = args.messages.saturating_sub(args.pending);
        let r = super::bench_drain::fill(&j, args.messages, 2000, 0, pending_from).await?;
        j.close().await.map_err(|e| e.to_string())?;
        Ok::<f64, String>(r)
    })?;
    eprintln!("  {rate:.0} msg/s");
    Ok(rate)
}

/// Start the daemon on `data_dir`, wait for READY=1, stop it. Returns the
/// milliseconds from spawn to READY and its RSS then.
fn time_to_ready(data_dir: &Path) -> Result<(f64, f64), String> {
    std::fs::create_dir_all(data_dir).map_err(|e| e.to_string())?;
    let port = super::bench::free_port()?;
    let closed = super::bench::free_port()?;
    let config = data_dir.join("bench.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\n\n[[listener]]\nname = \"bench\"\nbind = \"127.0.0.1:{port}\"\n\n\
             [[destination]]\nname = \"sink\"\nkind = \"http\"\nurl = \"http://127.0.0.1:{closed}/\"\n\n\
             [[route]]\nname = \"all\"\nfrom = [\"bench\"]\nto = [\"sink\"]\n",
            data = data_dir.display().to_string()
        ),
    )
    .map_err(|e| e.to_string())?;
    let sock_path = data_dir.join("notify.sock");
    let _ = std::fs::remove_file(&sock_path);
    let sock = UnixDatagram::bind(&sock_path).map_err(|e| format!("notify socket: {e}"))?;
    sock.set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let child = Command::new(exe)
        .args(["run", "--config"])
        .arg(&config)
        .env("GATEWAY_LOG", "warn")
        .env("NOTIFY_SOCKET", &sock_path)
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the daemon: {e}"))?;
    let daemon = super::bench::Daemon { child };
    let mut buf = vec![0u8; 4096];
    let ready = loop {
        let n = sock
            .recv(&mut buf)
            .map_err(|e| format!("no READY=1 from the daemon within 120 s: {e}"))?;
        if buf[..n].split(|&b| b == b'\n').any(|l| l == b"READY=1") {
            break t0.elapsed();
        }
    };
    let rss = super::bench::rss_mb(daemon.child.id());
    drop(daemon);
    let _ = std::fs::remove_file(&sock_path);
    Ok((ready.as_secs_f64() * 1000.0, rss))
}
