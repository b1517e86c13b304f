//! `gateway bench x12`: (1) the envelope check and the JSON transform of a
//! generated 835 (50 MB by default) in MB/s on one core, against a plain
//! byte scan for segment terminators over the same bytes in the same run
//! (`x12::bench`); (2) pickup throughput: small X12 files moved into a
//! `[[pickup]]` folder of a real daemon, in files/s until the destination
//! holds all of them, against the disk's raw append+fdatasync rate
//! measured in the same run. Reports ratios; asserts nothing.
//!
//! The pickup case is run per [`PickupTarget`]: the `folder` destination
//! (baseline: raw fdatasync), then the `sftp` destination to a loopback
//! OpenSSH sshd the bench starts (`bench_sshd`; baseline: the
//! pickup-to-folder rate of the same run, so the ratio is what SFTP costs).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;

use super::bench_sshd::LoopbackSshd;

#[derive(Args)]
pub struct X12BenchArgs {
    /// Directory on the disk to measure (a fresh subdirectory per run, removed after).
    #[arg(long, default_value = "var/bench")]
    dir: PathBuf,
    /// Size of the generated 835, in MB.
    #[arg(long, default_value_t = 50)]
    mb: usize,
    /// Rounds of each 835 case (the fastest counts).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Small files through the pickup (0: skip the pickup case).
    #[arg(long, default_value_t = 10_000)]
    files: usize,
    /// Skip the pickup-to-sftp case (it needs root and openssh-server).
    #[arg(long)]
    no_sftp: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Where the pickup case delivers.
#[derive(Clone, Copy, Debug)]
pub enum PickupTarget<'a> {
    /// A `folder` destination on the same disk.
    Folder,
    /// An `sftp` destination: the loopback sshd's upload folder.
    Sftp(&'a LoopbackSshd),
}

impl PickupTarget<'_> {
    fn label(self) -> &'static str {
        match self {
            PickupTarget::Folder => "pickup-to-folder",
            PickupTarget::Sftp(_) => "pickup-to-sftp",
        }
    }

    /// The `[[destination]]` table named "target", and the folder where the
    /// delivered files appear.
    fn destination(self, run_dir: &Path) -> Result<(String, PathBuf), String> {
        match self {
            PickupTarget::Folder => {
                let out = run_dir.join("out");
                Ok((
                    format!(
                        "[[destination]]\nname = \"target\"\nkind = \"folder\"\npath = {:?}\n",
                        out.display().to_string()
                    ),
                    out,
                ))
            }
            PickupTarget::Sftp(sshd) => {
                let kh = run_dir.join("target.known_hosts");
                std::fs::write(&kh, &sshd.known_hosts_line).map_err(|e| e.to_string())?;
                Ok((
                    format!(
                        "[[destination]]\nname = \"target\"\nkind = \"sftp\"\n\
                         url = \"sftp://{user}@127.0.0.1:{port}/upload\"\n\
                         name_template = \"CLM_{{id:010}}.837\"\n\
                         [destination.auth]\ntype = \"ssh_key\"\nkey_file = {key:?}\nknown_hosts = {kh:?}\n",
                        user = LoopbackSshd::user(),
                        port = sshd.port,
                        key = sshd.client_key.display().to_string(),
                        kh = kh.display().to_string(),
                    ),
                    sshd.upload_dir(),
                ))
            }
        }
    }
}

struct Row {
    case: String,
    unit: &'static str,
    rate: f64,
    baseline: String,
    baseline_rate: f64,
}

pub fn run(args: X12BenchArgs) -> Result<(), String> {
    let mut rows = Vec::new();
    eprintln!("generating a {} MB 835 ...", args.mb);
    let data = x12::bench::generate_835(args.mb * 1_000_000);
    eprintln!("check and check+json, best of {} ...", args.rounds);
    for r in x12::bench::run(&data, args.rounds, &Instant::now) {
        rows.push(Row {
            case: r.case,
            unit: "MB/s",
            rate: r.rate_per_s,
            baseline: r.baseline,
            baseline_rate: r.baseline_per_s,
        });
    }
    drop(data);
    if args.files > 0 {
        let run_dir = args.dir.join(format!("x12-{}", std::process::id()));
        std::fs::create_dir_all(&run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
        let abs = std::path::absolute(&run_dir).map_err(|e| e.to_string())?;
        let result = (|| {
            eprintln!(
                "measuring raw append+fdatasync rate in {} ...",
                abs.display()
            );
            let raw = super::bench_segments::fdatasync_rate(
                &abs,
                super::bench_segments::Layout::Append,
                1024,
                Duration::from_secs(3),
            )
            .map_err(|e| format!("baseline: {e}"))?;
            let folder = measure(&abs, args.files, PickupTarget::Folder)?;
            rows.push(Row {
                case: format!("pickup-to-folder {} files", args.files),
                unit: "files/s",
                rate: folder,
                baseline: "raw fdatasync".into(),
                baseline_rate: raw,
            });
            if !args.no_sftp {
                let sshd = LoopbackSshd::start()?;
                let sftp = measure(&abs.join("sftp"), args.files, PickupTarget::Sftp(&sshd))?;
                rows.push(Row {
                    case: format!("pickup-to-sftp {} files", args.files),
                    unit: "files/s",
                    rate: sftp,
                    baseline: "pickup-to-folder".into(),
                    baseline_rate: folder,
                });
            }
            Ok::<(), String>(())
        })();
        let _ = std::fs::remove_dir_all(&run_dir);
        result?;
    }
    report(&rows, args.json);
    Ok(())
}

/// One pickup case, announced.
fn measure(run_dir: &Path, files: usize, target: PickupTarget<'_>) -> Result<f64, String> {
    std::fs::create_dir_all(run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
    eprintln!("{files} files through a pickup, {} ...", target.label());
    pickup_throughput(run_dir, files, target)
}

/// Files per second from the first file moved into the pickup folder until
/// `files` are delivered, with a real daemon (this binary).
pub fn pickup_throughput(
    run_dir: &Path,
    files: usize,
    target: PickupTarget<'_>,
) -> Result<f64, String> {
    let inbox = run_dir.join("pickup");
    let staging = run_dir.join("staging");
    for d in [&inbox, &staging] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let (destination, delivered_dir) = target.destination(run_dir)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let config = run_dir.join("bench.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"data\"\n\n[[listener]]\nname = \"unused\"\nbind = \"127.0.0.1:{port}\"\n\n\
             [[pickup]]\nname = \"claims\"\npath = {inbox:?}\npattern = \"*.837\"\nformat = \"x12\"\nsettle = \"0s\"\nafter = \"delete\"\nrescan = \"200ms\"\n\n\
             {destination}\n[[route]]\nname = \"claims\"\nfrom = [\"claims\"]\nto = [\"target\"]\n",
            inbox = inbox.display().to_string()
        ),
    )
    .map_err(|e| e.to_string())?;
    // Small claims, each its own ISA13, written before the clock starts.
    for n in 0..files {
        let body = small_claim(n as u32 + 1);
        std::fs::write(staging.join(format!("c{n:06}.837")), body).map_err(|e| e.to_string())?;
    }
    // The backlog raises pending_depth alerts: not news in a benchmark.
    let _daemon = super::bench::start_daemon(&config, &format!("127.0.0.1:{port}"))?;
    let start = Instant::now();
    for n in 0..files {
        let name = format!("c{n:06}.837");
        std::fs::rename(staging.join(&name), inbox.join(&name)).map_err(|e| e.to_string())?;
    }
    let limit = Duration::from_secs(600);
    loop {
        let delivered = std::fs::read_dir(&delivered_dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                    .count()
            })
            .unwrap_or(0);
        if delivered >= files {
            break;
        }
        if start.elapsed() > limit {
            return Err(format!(
                "only {delivered} of {files} files delivered in {} s",
                limit.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(files as f64 / start.elapsed().as_secs_f64())
}

/// A ~600-byte clean 837P with ISA13 = `n` (synthetic, no PHI).
fn small_claim(n: u32) -> Vec<u8> {
    let body = [
        "ST*837*0001*005010X222A1",
        "BHT*0019*00*BENCH*20240310*0900*CH",
        "NM1*41*2*TEST CLINIC*****46*TESTSUBMIT01",
        "NM1*40*2*TEST CLEARINGHOUSE*****46*TESTRECV01",
        "HL*1**20*1",
        "NM1*85*2*TEST CLINIC*****XX*1234567893",
        "HL*2*1*22*0",
        "SBR*P*18*******CI",
        "NM1*IL*1*PATIENT*TEST****MI*TESTMEMBER01",
        "NM1*PR*2*TEST HEALTH PLAN*****PI*TESTPAYER01",
        "CLM*BENCH*100.00***11:B:1*Y*A*Y*Y",
        "LX*1",
        "SV1*HC:99213*100.00*UN*1***1",
    ];
    let mut s = format!("ISA*00*          *00*          *ZZ*TESTCLINIC     *ZZ*TESTCLEARING   *240310*0900*^*00501*{n:09}*0*T*:~\nGS*HC*TESTCLINIC*TESTCLEARING*20240310*0900*1*X*005010X222A1~\n");
    for seg in body {
        s.push_str(seg);
        s.push_str("~\n");
    }
    s.push_str(&format!(
        "SE*{}*0001~\nGE*1*1~\nIEA*1*{n:09}~\n",
        body.len() + 1
    ));
    s.into_bytes()
}

fn report(rows: &[Row], json: bool) {
    if json {
        let v = serde_json::json!({
            "bench": "x12",
            "results": rows.iter().map(|r| serde_json::json!({
                "case": r.case,
                "unit": r.unit,
                "rate_per_s": r.rate,
                "baseline": r.baseline,
                "baseline_per_s": r.baseline_rate,
                "ratio": r.rate / r.baseline_rate,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return;
    }
    println!(
        "{:<34} {:>12} {:>16} {:>14} {:>7}",
        "case", "rate", "baseline", "baseline rate", "ratio"
    );
    for r in rows {
        println!(
            "{:<34} {:>7.1} {:<4} {:>16} {:>9.1} {:<4} {:>7.2}",
            r.case,
            r.rate,
            r.unit,
            r.baseline,
            r.baseline_rate,
            if r.unit == "MB/s" { "MB/s" } else { "/s" },
            r.rate / r.baseline_rate
        );
    }
    println!("target: 835 check+json >= 0.3x the segment scan (one core)");
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_small_claim_is_clean() {
        let b = super::small_claim(42);
        let doc = x12::check(&b, &x12::CheckOptions::default(), &());
        let errors: Vec<String> = doc.errors().map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}");
    }
}
