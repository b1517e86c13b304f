//! `gateway bench export`: a real daemon (this binary) runs an `[[export]]`
//! job against a Bulk Data server on loopback that this command serves
//! (kick-off → 202, a ready manifest, NDJSON files streamed from disk in
//! 256 KiB writes; the gzip case sends the same NDJSON gzip'd with
//! `Content-Encoding: gzip`). The daemon downloads, inflates, splits,
//! checks, tags and writes every line to its folder sink. Measured: MB of
//! NDJSON per second from the first file request to the job's `done`, and
//! the daemon's RSS at the start, middle and end of the downloads.
//! Baseline in the same run: plain streaming of the same (uncompressed)
//! bytes from the same server to disk — an HTTP client reading the body
//! and writing it to a file, no parsing, the same parallelism, fsync'd at
//! the end. Reports ratios; asserts nothing.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{json, Map};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::bench::{free_port, rss_mb, start_daemon};
use super::bench_result::{print_json, round2, CaseResult, Rss};
use crate::ops::admin::{self, Reply, Request};

#[derive(Args)]
pub struct ExportBenchArgs {
    /// Directory on the disk to measure (a fresh subdirectory per run, removed after).
    #[arg(long, default_value = "var/bench")]
    dir: PathBuf,
    /// NDJSON to generate, in MB (split over `--files` files).
    #[arg(long, default_value_t = 1024)]
    mb: u64,
    /// Files of the export (downloaded 2 at a time, the default `parallel_downloads`).
    #[arg(long, default_value_t = 4)]
    files: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// The bench's Bulk Data server: what it serves and what it saw.
struct Served {
    dir: PathBuf,
    files: usize,
    /// Serve the gzip'd copies.
    gzip: std::sync::atomic::AtomicBool,
    /// Bytes (as on disk: compressed in the gzip case) sent so far.
    sent: AtomicU64,
    /// Microseconds since `epoch` of the first file request (0: none yet).
    first_file_us: AtomicU64,
    epoch: Instant,
}

fn plain(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("Observation.{i}.ndjson"))
}

fn gz(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("Observation.{i}.ndjson.gz"))
}

/// One synthetic Observation (~300 bytes; no PHI): decimals, a reference,
/// some with `meta`.
fn observation(n: u64, out: &mut Vec<u8>) {
    use std::io::Write;
    let _ = if n % 2 == 0 {
        write!(
            out,
            r#"{{"resourceType":"Observation","id":"o{n}","status":"final","code":{{"coding":[{{"system":"http://loinc.org","code":"2345-7","display":"Glucose"}}]}},"subject":{{"reference":"Patient/p{}"}},"effectiveDateTime":"2026-01-01T10:00:00Z","valueQuantity":{{"value":{}.50,"unit":"mg/dL","system":"http://unitsofmeasure.org","code":"mg/dL"}}}}"#,
            n % 100_000,
            70 + n % 50
        )
    } else {
        write!(
            out,
            r#"{{"resourceType":"Observation","meta":{{"versionId":"2","lastUpdated":"2026-01-01T10:00:00Z"}},"id":"o{n}","status":"final","code":{{"coding":[{{"system":"http://loinc.org","code":"718-7","display":"Hemoglobin"}}]}},"subject":{{"reference":"Patient/p{}"}},"valueQuantity":{{"value":13.{},"unit":"g/dL"}}}}"#,
            n % 100_000,
            n % 10
        )
    };
    out.push(b'\n');
}

/// Write the NDJSON files (and their gzip'd copies): `mb` MB in all.
/// Returns the NDJSON bytes and lines.
fn generate(dir: &Path, mb: u64, files: usize) -> Result<(u64, u64), String> {
    use std::io::Write;
    let per_file = mb * 1_000_000 / files as u64;
    let (mut bytes, mut lines) = (0u64, 0u64);
    let mut n = 0u64;
    for i in 0..files {
        let io = |e: std::io::Error| format!("{}: {e}", plain(dir, i).display());
        let mut p = std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(plain(dir, i)).map_err(io)?,
        );
        let mut z = flate2::write::GzEncoder::new(
            std::io::BufWriter::with_capacity(
                1 << 20,
                std::fs::File::create(gz(dir, i)).map_err(io)?,
            ),
            flate2::Compression::fast(),
        );
        let mut written = 0u64;
        let mut buf = Vec::with_capacity(1 << 16);
        while written < per_file {
            buf.clear();
            while buf.len() < 60_000 {
                observation(n, &mut buf);
                n += 1;
                lines += 1;
            }
            p.write_all(&buf).map_err(io)?;
            z.write_all(&buf).map_err(io)?;
            written += buf.len() as u64;
        }
        p.flush().map_err(io)?;
        z.finish().and_then(|mut w| w.flush()).map_err(io)?;
        bytes += written;
    }
    Ok((bytes, lines))
}

/// Read one request head; the method and path.
async fn request_head(s: &mut TcpStream) -> Option<(String, String)> {
    let mut head = Vec::with_capacity(1024);
    let mut b = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut b).await.ok()?;
        if n == 0 || head.len() > 64 * 1024 {
            return None;
        }
        head.extend_from_slice(&b[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let mut words = text.split_whitespace();
    Some((words.next()?.to_string(), words.next()?.to_string()))
}

async fn respond(s: &mut TcpStream, status: &str, headers: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n{headers}\r\n",
        body.len()
    );
    let _ = s.write_all(head.as_bytes()).await;
    let _ = s.write_all(body).await;
}

/// One connection (one request; `Connection: close`).
async fn serve(mut s: TcpStream, st: Arc<Served>, base: String) {
    let Some((method, path)) = request_head(&mut s).await else {
        return;
    };
    let gzip = st.gzip.load(Ordering::SeqCst);
    if path.starts_with("/fhir/$export") {
        let loc = format!("Content-Location: {base}/status/1\r\n");
        return respond(&mut s, "202 Accepted", &loc, b"").await;
    }
    if path == "/status/1" {
        if method == "DELETE" {
            return respond(&mut s, "202 Accepted", "", b"").await;
        }
        let output: Vec<serde_json::Value> = (0..st.files)
            .map(|i| json!({"type": "Observation", "url": format!("{base}/file/{i}")}))
            .collect();
        let m = json!({"transactionTime": "2026-02-01T10:00:00Z", "request": format!("{base}/fhir/$export"),
            "requiresAccessToken": false, "output": output, "error": []});
        let body = m.to_string();
        return respond(
            &mut s,
            "200 OK",
            "Content-Type: application/json\r\n",
            body.as_bytes(),
        )
        .await;
    }
    let Some(i) = path
        .strip_prefix("/file/")
        .and_then(|i| i.parse::<usize>().ok())
        .filter(|i| *i < st.files)
    else {
        return respond(&mut s, "404 Not Found", "", b"").await;
    };
    let us = st.epoch.elapsed().as_micros() as u64;
    let _ = st
        .first_file_us
        .compare_exchange(0, us.max(1), Ordering::SeqCst, Ordering::SeqCst);
    let file = if gzip {
        gz(&st.dir, i)
    } else {
        plain(&st.dir, i)
    };
    let Ok(mut f) = tokio::fs::File::open(&file).await else {
        return respond(&mut s, "500 Internal Server Error", "", b"").await;
    };
    let len = f.metadata().await.map(|m| m.len()).unwrap_or(0);
    let enc = if gzip {
        "Content-Encoding: gzip\r\n"
    } else {
        ""
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/fhir+ndjson\r\n{enc}Content-Length: {len}\r\n\r\n"
    );
    if s.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match f.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if s.write_all(&buf[..n]).await.is_err() {
            return;
        }
        st.sent.fetch_add(n as u64, Ordering::SeqCst);
    }
}

/// The baseline: GET every file (plain) two at a time, each body written to
/// a file as it arrives, fsync'd at the end. MB/s of NDJSON.
async fn baseline(base: &str, files: usize, out: &Path, bytes: u64) -> Result<f64, String> {
    let client = reqwest::Client::builder()
        .no_gzip()
        .build()
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..2 {
        let (client, next, base, out) = (
            client.clone(),
            next.clone(),
            base.to_string(),
            out.to_path_buf(),
        );
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst) as usize;
                if i >= files {
                    return Ok::<(), String>(());
                }
                let mut resp = client
                    .get(format!("{base}/file/{i}"))
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let path = out.join(format!("{i}.ndjson"));
                let mut f = tokio::fs::File::create(&path)
                    .await
                    .map_err(|e| e.to_string())?;
                while let Some(c) = resp.chunk().await.map_err(|e| e.to_string())? {
                    f.write_all(&c).await.map_err(|e| e.to_string())?;
                }
                f.sync_all().await.map_err(|e| e.to_string())?;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.map_err(|e| e.to_string())??;
    }
    Ok(bytes as f64 / 1e6 / start.elapsed().as_secs_f64())
}

fn export_status(socket: &Path, rt: &tokio::runtime::Runtime) -> Option<String> {
    match rt.block_on(admin::request(
        socket,
        &Request::ExportStatus {
            name: Some("bench".into()),
        },
    )) {
        Ok(Reply::Exports { items }) => items.first().map(|s| s.state.clone()),
        _ => None,
    }
}

/// One case: a fresh daemon runs the job; MB/s of NDJSON and its RSS.
fn job_case(
    run_dir: &Path,
    st: &Arc<Served>,
    base: &str,
    bytes: u64,
    rt: &tokio::runtime::Runtime,
) -> Result<(f64, Rss, u64), String> {
    let out = run_dir.join("exports");
    let _ = std::fs::remove_dir_all(&out);
    let data = run_dir.join("data");
    let _ = std::fs::remove_dir_all(&data);
    let port = free_port()?;
    let config = run_dir.join("bench.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\n\n[storage]\nwarn_at_percent = 99\nrefuse_at_percent = 100\n\n[[listener]]\nname = \"unused\"\nbind = \"127.0.0.1:{port}\"\n\n\
             [[export]]\nname = \"bench\"\ntenant = \"bench\"\nurl = \"{base}/fhir\"\noutput = {out:?}\npoll_min = \"100ms\"\npoll_max = \"1s\"\n\n\
             [[destination]]\nname = \"unused\"\nkind = \"folder\"\npath = {sink:?}\n\n\
             [[route]]\nname = \"unused\"\nfrom = [\"unused\"]\nto = [\"unused\"]\n",
            data = data.display().to_string(),
            out = out.display().to_string(),
            sink = run_dir.join("sink").display().to_string(),
        ),
    )
    .map_err(|e| e.to_string())?;
    let daemon = start_daemon(&config, &format!("127.0.0.1:{port}"))?;
    let pid = daemon.child.id();
    let socket = data.join("admin.sock");
    st.sent.store(0, Ordering::SeqCst);
    st.first_file_us.store(0, Ordering::SeqCst);
    let on_disk: u64 = (0..st.files)
        .map(|i| {
            let p = if st.gzip.load(Ordering::SeqCst) {
                gz(&st.dir, i)
            } else {
                plain(&st.dir, i)
            };
            std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
        })
        .sum();
    let ran = rt.block_on(admin::request(
        &socket,
        &Request::ExportRun {
            name: "bench".into(),
            full: true,
            operator: "bench".into(),
        },
    ));
    if let Err(e) = ran {
        return Err(format!("export run: {e:?}"));
    }
    let mut rss = Rss::default();
    let (mut got_start, mut got_mid) = (false, false);
    let limit = Instant::now() + Duration::from_secs(1800);
    loop {
        let sent = st.sent.load(Ordering::SeqCst);
        if !got_start && sent > 0 {
            rss.start = rss_mb(pid);
            got_start = true;
        }
        if !got_mid && sent >= on_disk / 2 {
            rss.mid = rss_mb(pid);
            got_mid = true;
        }
        match export_status(&socket, rt).as_deref() {
            Some("done") => break,
            Some("failed") => return Err("the export job failed: see the daemon's log".into()),
            _ => {}
        }
        if Instant::now() > limit {
            return Err("the export did not finish within 30 minutes".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    rss.end = rss_mb(pid);
    let first = Duration::from_micros(st.first_file_us.load(Ordering::SeqCst));
    let secs = (st.epoch.elapsed() - first).as_secs_f64();
    drop(daemon);
    let _ = std::fs::remove_dir_all(&out);
    Ok((bytes as f64 / 1e6 / secs, rss, on_disk))
}

pub fn run(args: ExportBenchArgs) -> Result<(), String> {
    if args.files == 0 || args.mb == 0 {
        return Err("--mb and --files must be at least 1".into());
    }
    let run_dir = args.dir.join(format!("export-{}", std::process::id()));
    std::fs::create_dir_all(&run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
    let run_dir = std::path::absolute(&run_dir).map_err(|e| e.to_string())?;
    let result = run_in(&args, &run_dir);
    let _ = std::fs::remove_dir_all(&run_dir);
    let (results, lines) = result?;
    if args.json {
        let mut run = Map::new();
        run.insert("ndjson_mb".into(), json!(args.mb));
        run.insert("lines".into(), json!(lines));
        print_json("export", &results, run);
    } else {
        println!(
            "{:<22} {:>10} {:>22} {:>10} {:>7} {:>18}",
            "case", "MB/s", "baseline", "MB/s", "ratio", "RSS MB start/mid/end"
        );
        for r in &results {
            let rss = r.rss_mb.unwrap_or_default();
            println!(
                "{:<22} {:>10.1} {:>22} {:>10.1} {:>7.2} {:>8.0}/{:.0}/{:.0}",
                r.case,
                r.rate_per_s,
                r.baseline,
                r.baseline_per_s,
                r.ratio(),
                rss.start,
                rss.mid,
                rss.end
            );
        }
        println!("targets: >= 0.7x the baseline; >= 200 MB/s plain; RSS <= 40 MB, flat");
    }
    Ok(())
}

fn run_in(args: &ExportBenchArgs, run_dir: &Path) -> Result<(Vec<CaseResult>, u64), String> {
    let files_dir = run_dir.join("files");
    std::fs::create_dir_all(&files_dir).map_err(|e| e.to_string())?;
    eprintln!(
        "generating {} MB of NDJSON in {} files (and gzip'd copies) ...",
        args.mb, args.files
    );
    let (bytes, lines) = generate(&files_dir, args.mb, args.files)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let listener = rt
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .map_err(|e| e.to_string())?;
    let base = format!(
        "http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    let st = Arc::new(Served {
        dir: files_dir.clone(),
        files: args.files,
        gzip: Default::default(),
        sent: AtomicU64::new(0),
        first_file_us: AtomicU64::new(0),
        epoch: Instant::now(),
    });
    let (st2, base2) = (st.clone(), base.clone());
    rt.spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(serve(s, st2.clone(), base2.clone()));
        }
    });
    let baseline_dir = run_dir.join("baseline");
    std::fs::create_dir_all(&baseline_dir).map_err(|e| e.to_string())?;
    eprintln!("baseline: plain streaming of the same bytes to disk ...");
    let base_rate = rt.block_on(baseline(&base, args.files, &baseline_dir, bytes))?;
    let _ = std::fs::remove_dir_all(&baseline_dir);
    let mut results = Vec::new();
    for gzip in [false, true] {
        st.gzip.store(gzip, Ordering::SeqCst);
        let case = if gzip { "export gzip" } else { "export plain" };
        eprintln!("{case}: a daemon downloads, checks, tags and writes every line ...");
        let (rate, rss, wire) = job_case(run_dir, &st, &base, bytes, &rt)?;
        let mut extra = Map::new();
        extra.insert("unit".into(), json!("MB/s"));
        extra.insert("wire_mb".into(), json!(round2(wire as f64 / 1e6)));
        results.push(CaseResult {
            case: case.into(),
            rate_per_s: rate,
            baseline: "plain streaming to disk".into(),
            baseline_per_s: base_rate,
            rss_mb: Some(rss),
            extra,
        });
    }
    Ok((results, lines))
}
