//! `updater`: the command line. See README "Updates".

use clap::{Parser, Subcommand};
use jiff::Timestamp;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use updater::anti_rollback::{choose, Choice};
use updater::boot::{self, BootControl, SlotId};
use updater::config::{Config, Window};
use updater::download::bitmap::Bitmap;
use updater::download::{
    dir::DirSource, http_range::HttpSource, Backoff, ChunkSource, DownloadPolicy,
};
use updater::durable::{create_dir_all, Files, RealFiles, RunLock};
use updater::health::{self, Check, Outcome};
use updater::install::{self, Context, SlotPaths};
use updater::state::{Phase, Record, Store, WaveWait};
use updater::trust::{self, clock::TrustedClock, TrustConfig, Verified};
use updater::waves::{self, WaveDecision};
use updater::{repo_tool, Error, Result};

#[derive(Parser)]
#[command(name = "updater", version, about = "Clinic Gateway signed A/B updater")]
struct Cli {
    /// The updater's configuration.
    #[arg(long, global = true, default_value = "/etc/updater/updater.toml")]
    config: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Fetch and verify the signed metadata; say what would be installed.
    Check {
        #[arg(long)]
        json: bool,
    },
    /// Check, then download, write, verify and stage the update; reboot into
    /// it inside the maintenance window.
    Install {
        /// Install from a local copy of a published repository (USB stick):
        /// DIR/metadata and DIR/targets. Same verification; waves do not apply.
        #[arg(long)]
        from: Option<PathBuf>,
        /// Stage only; do not reboot.
        #[arg(long)]
        no_reboot: bool,
        /// Reboot even outside the maintenance window.
        #[arg(long)]
        now: bool,
    },
    /// Boot-time health check: commit the trial slot, or roll it back.
    Health,
    /// Slots, epoch floor, last check, download progress, wave.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// MSP tooling: make, sign and publish a repository.
    #[command(subcommand)]
    Repo(RepoCmd),
}

#[derive(Subcommand)]
enum RepoCmd {
    /// Create keys (ed25519) for every role and a signed root.
    Init {
        dir: PathBuf,
        /// Keys per role.
        #[arg(long, default_value_t = 1)]
        keys: u64,
        /// Signatures required per role.
        #[arg(long, default_value_t = 1)]
        threshold: u64,
        #[arg(long, default_value_t = 7)]
        timestamp_days: i64,
        #[arg(long, default_value_t = 90)]
        targets_days: i64,
    },
    /// Add an image as a target.
    Add {
        dir: PathBuf,
        image: PathBuf,
        /// Target name (default: the image's file name).
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        version: String,
        /// Security epoch: boxes never install below the highest they committed.
        #[arg(long)]
        epoch: u64,
        #[arg(long, default_value_t = 4 * 1024 * 1024)]
        chunk_size: u64,
        /// Allow boxes running a newer version of this epoch to go back to it.
        #[arg(long)]
        recall: bool,
        /// Rollout wave START=PERCENT (RFC 3339 time, cumulative percent); repeatable.
        #[arg(long = "wave")]
        waves: Vec<String>,
    },
    /// Sign targets, snapshot and timestamp into DIR/staged.
    Sign { dir: PathBuf },
    /// Copy DIR/staged to OUT (targets first, timestamp.json last).
    Publish { dir: PathBuf, out: PathBuf },
    /// New root version with fresh keys for ROLES, cross-signed by the old root.
    RotateRoot {
        dir: PathBuf,
        #[arg(long, value_delimiter = ',', default_value = "root")]
        roles: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("updater: {e}");
            ExitCode::FAILURE
        }
    }
}

fn log(msg: &str) {
    eprintln!("updater: {msg}");
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::Repo(r) => repo(r).map(|_| ExitCode::SUCCESS),
        Cmd::Check { json } => check(&Config::load(&cli.config)?, json),
        Cmd::Install {
            from,
            no_reboot,
            now,
        } => install_cmd(&Config::load(&cli.config)?, from.as_deref(), no_reboot, now),
        Cmd::Health => health_cmd(&Config::load(&cli.config)?),
        Cmd::Status { json } => status(&Config::load(&cli.config)?, json),
    }
}

fn repo(cmd: RepoCmd) -> Result<()> {
    match cmd {
        RepoCmd::Init {
            dir,
            keys,
            threshold,
            timestamp_days,
            targets_days,
        } => {
            let s = repo_tool::RepoSettings {
                threshold,
                keys_per_role: keys,
                timestamp_expires_days: timestamp_days,
                targets_expires_days: targets_days,
                snapshot_expires_days: targets_days,
                ..Default::default()
            };
            repo_tool::init(&dir, &s, Timestamp::now())?;
            println!(
                "initialised {}: {keys} key(s) per role, threshold {threshold}; ship {} in the image as the trusted root",
                dir.display(),
                dir.join("root.json").display()
            );
        }
        RepoCmd::Add {
            dir,
            image,
            name,
            version,
            epoch,
            chunk_size,
            recall,
            waves,
        } => {
            let name = match name {
                Some(n) => n,
                None => image
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .ok_or_else(|| Error::repo(&dir, "give --name"))?,
            };
            let waves = waves
                .iter()
                .map(|w| {
                    let (t, p) = w.split_once('=').ok_or_else(|| {
                        Error::repo(&dir, format!("--wave {w:?}: expected START=PERCENT"))
                    })?;
                    Ok(updater::target::Wave {
                        start: t
                            .parse()
                            .map_err(|e| Error::repo(&dir, format!("--wave {w:?}: {e}")))?,
                        percent: p
                            .parse()
                            .map_err(|e| Error::repo(&dir, format!("--wave {w:?}: {e}")))?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            repo_tool::add(
                &dir,
                &image,
                &repo_tool::AddOptions {
                    name: name.clone(),
                    version,
                    epoch,
                    chunk_size,
                    recall,
                    waves,
                    published: Timestamp::now(),
                },
            )?;
            println!("added {name}; run `updater repo sign {}`", dir.display());
        }
        RepoCmd::Sign { dir } => {
            repo_tool::sign(&dir, &repo_tool::SignOptions::default())?;
            println!("signed into {}", dir.join("staged").display());
        }
        RepoCmd::Publish { dir, out } => {
            repo_tool::publish(&dir, &out)?;
            println!("published to {}", out.display());
        }
        RepoCmd::RotateRoot { dir, roles } => {
            let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
            repo_tool::rotate_root(&dir, &roles, Timestamp::now())?;
            println!("new root written; run `updater repo sign` and `publish`");
        }
    }
    Ok(())
}

fn boot_control(c: &Config, files: Arc<dyn Files>) -> Result<Box<dyn BootControl>> {
    let b = &c.boot;
    Ok(match b.kind.as_str() {
        "grub" => Box::new(boot::grub::Grub::new(
            b.grubenv
                .as_deref()
                .unwrap_or(Path::new("/boot/grub/grubenv")),
            &b.cmdline,
            files,
        )),
        "systemd-boot" => Box::new(boot::systemd_boot::SystemdBoot {
            entries_dir: b.entries_dir.clone().unwrap_or_default(),
            prefix: b.entry_prefix.clone(),
            bootctl: b.bootctl.clone(),
            cmdline: b.cmdline.clone(),
        }),
        "uboot" => Box::new(boot::uboot::UBoot {
            fw_printenv: b.fw_printenv.clone(),
            fw_setenv: b.fw_setenv.clone(),
            fw_config: b.fw_config.clone(),
            cmdline: b.cmdline.clone(),
            script_dir: c.state_dir.clone(),
        }),
        _ => Box::new(boot::sim::SimFirmware::new(
            b.sim_env
                .as_deref()
                .unwrap_or(Path::new("sim-firmware.json")),
            files,
        )),
    })
}

/// This boot's id; `UPDATER_BOOT_ID` overrides it (tests, the qemu harness).
fn boot_id() -> Result<String> {
    if let Ok(id) = std::env::var("UPDATER_BOOT_ID") {
        return Ok(id);
    }
    let p = "/proc/sys/kernel/random/boot_id";
    let id = std::fs::read_to_string(p).map_err(|e| Error::io(p, "read", e))?;
    let id = id.trim().to_string();
    if id.is_empty() {
        return Err(Error::State(format!("{p} is empty")));
    }
    Ok(id)
}

fn parse_url(field: &str, s: &str) -> Result<url::Url> {
    url::Url::parse(s).map_err(|e| Error::State(format!("{field} {s:?}: {e}")))
}

fn trust_config(c: &Config, from: Option<&Path>) -> Result<TrustConfig> {
    let (m, t) = match from {
        Some(d) => {
            let d = std::fs::canonicalize(d).map_err(|e| Error::io(d, "open", e))?;
            let m = url::Url::from_directory_path(d.join("metadata"))
                .map_err(|_| Error::State(format!("{}: not an absolute path", d.display())))?;
            let t = url::Url::from_directory_path(d.join("targets"))
                .map_err(|_| Error::State(format!("{}: not an absolute path", d.display())))?;
            (m, t)
        }
        None => (
            parse_url("metadata_url", &c.metadata_url)?,
            parse_url("targets_url", &c.targets_url)?,
        ),
    };
    Ok(TrustConfig {
        shipped_root: c.trusted_root.clone(),
        metadata_url: m,
        targets_url: t,
        state_dir: c.state_dir.clone(),
        connect_timeout: Duration::from_secs(c.download.connect_timeout_secs),
        timeout: Duration::from_secs(c.download.stall_timeout_secs.max(60)),
        extra_ca: c.ca_file.clone(),
    })
}

fn verify(
    c: &Config,
    from: Option<&Path>,
    files: &dyn Files,
    clock: &mut TrustedClock,
) -> Result<Verified> {
    let r = trust::load(&trust_config(c, from)?, files, clock);
    let store = Store::new(&c.state_dir, files);
    let mut st = store.load()?;
    st.last_check = Some(Record {
        at: clock.now(),
        ok: r.is_ok(),
        message: match &r {
            Ok(v) => format!(
                "verified: {} target(s), timestamp v{}, expires {}",
                v.targets.len(),
                v.versions.timestamp,
                v.expires
            ),
            Err(e) => e.to_string(),
        },
    });
    store.save(&st)?;
    r
}

enum Plan<'a> {
    Install(&'a updater::target::UpdateTarget),
    Wait(String),
    None(String),
}

fn plan<'a>(
    c: &Config,
    v: &'a Verified,
    files: &dyn Files,
    boot: &dyn BootControl,
    clock: &TrustedClock,
    use_waves: bool,
) -> Result<Plan<'a>> {
    let store = Store::new(&c.state_dir, files);
    let mut st = store.load()?;
    let (_, run) = install::running(&store, boot)?;
    let choice = choose(&v.targets, &run, st.epoch_floor, &st.failed);
    let t = match choice {
        Choice::UpToDate => {
            st.wave_wait = None;
            store.save(&st)?;
            return Ok(Plan::None("up to date".into()));
        }
        Choice::Nothing(why) => {
            st.wave_wait = None;
            store.save(&st)?;
            let mut all = why;
            all.extend(v.skipped.iter().cloned());
            return Ok(Plan::None(if all.is_empty() {
                "no targets".into()
            } else {
                format!("nothing installable: {}", all.join("; "))
            }));
        }
        Choice::Install(t) => t,
    };
    if !use_waves {
        return Ok(Plan::Install(t));
    }
    let seed = waves::device_seed(files, &c.state_dir)?;
    let (d, pos) = waves::decide(t, &seed, clock.now());
    st.wave_wait = match d {
        WaveDecision::Go => None,
        WaveDecision::WaitUntil(u) => Some(WaveWait {
            target: t.name.clone(),
            version: t.version.to_string(),
            until: Some(u),
            position_bp: pos,
        }),
        WaveDecision::NotScheduled => Some(WaveWait {
            target: t.name.clone(),
            version: t.version.to_string(),
            until: None,
            position_bp: pos,
        }),
    };
    store.save(&st)?;
    Ok(match d {
        WaveDecision::Go => Plan::Install(t),
        WaveDecision::WaitUntil(u) => Plan::Wait(format!(
            "{} {}: waiting for wave until {u} (this box is at {:.2}% of the fleet)",
            t.name,
            t.version,
            pos as f64 / 100.0
        )),
        WaveDecision::NotScheduled => Plan::Wait(format!(
            "{} {}: no wave includes this box yet (at {:.2}% of the fleet)",
            t.name,
            t.version,
            pos as f64 / 100.0
        )),
    })
}

/// Reads `running_image` and records it (see `install::adopt_running_image`).
fn adopt(c: &Config, files: &dyn Files, boot: &dyn BootControl) -> Result<()> {
    let Some(path) = &c.running_image else {
        return Ok(());
    };
    let bytes =
        std::fs::read(path).map_err(|e| Error::io(path, "read the running image's info", e))?;
    let info: install::ImageInfo = serde_json::from_slice(&bytes).map_err(|e| Error::Config {
        file: path.clone(),
        msg: format!("expected {{\"version\": \"1.4.2\", \"epoch\": 3}}: {e}"),
    })?;
    install::adopt_running_image(&Store::new(&c.state_dir, files), boot, &info)
}

fn check(c: &Config, as_json: bool) -> Result<ExitCode> {
    create_dir_all(&c.state_dir)?;
    let _lock = RunLock::acquire(&c.state_dir)?;
    let files: Arc<dyn Files> = Arc::new(RealFiles);
    let mut clock = TrustedClock::load(files.as_ref(), &c.state_dir)?;
    let boot = boot_control(c, files.clone())?;
    adopt(c, files.as_ref(), boot.as_ref())?;
    let v = verify(c, None, files.as_ref(), &mut clock)?;
    let p = plan(c, &v, files.as_ref(), boot.as_ref(), &clock, true)?;
    let (kind, msg) = match &p {
        Plan::Install(t) => (
            "update",
            format!("{} {} (epoch {}) is available", t.name, t.version, t.epoch),
        ),
        Plan::Wait(m) => ("wait", m.clone()),
        Plan::None(m) => ("none", m.clone()),
    };
    if as_json {
        println!("{}", json!({"result": kind, "message": msg}));
    } else {
        println!("{msg}");
    }
    Ok(ExitCode::SUCCESS)
}

fn policy(c: &Config) -> DownloadPolicy {
    let d = &c.download;
    DownloadPolicy {
        backoff: Backoff {
            base: Duration::from_millis(d.backoff_base_ms),
            cap: Duration::from_millis(d.backoff_cap_ms),
            max_attempts: d.max_attempts,
        },
        bandwidth_limit: (d.bandwidth_limit_kib > 0).then_some(d.bandwidth_limit_kib * 1024),
        sync_every: 8,
    }
}

fn in_window(c: &Config) -> bool {
    let Some(w) = c
        .download
        .maintenance_window
        .as_deref()
        .and_then(Window::parse)
    else {
        return true;
    };
    let now = jiff::Zoned::now();
    w.contains(now.hour() as u16 * 60 + now.minute() as u16)
}

fn reboot(c: &Config) -> Result<()> {
    let argv = &c.health.reboot_command;
    let Some((prog, args)) = argv.split_first() else {
        return Err(Error::State("[health] reboot_command is empty".into()));
    };
    let st = std::process::Command::new(prog)
        .args(args)
        .status()
        .map_err(|e| Error::io(prog, "run reboot command", e))?;
    if !st.success() {
        return Err(Error::State(format!("{} exited with {st}", argv.join(" "))));
    }
    Ok(())
}

fn install_cmd(c: &Config, from: Option<&Path>, no_reboot: bool, now: bool) -> Result<ExitCode> {
    create_dir_all(&c.state_dir)?;
    let _lock = RunLock::acquire(&c.state_dir)?;
    let files: Arc<dyn Files> = Arc::new(RealFiles);
    let mut clock = TrustedClock::load(files.as_ref(), &c.state_dir)?;
    let boot = boot_control(c, files.clone())?;
    adopt(c, files.as_ref(), boot.as_ref())?;
    let v = verify(c, from, files.as_ref(), &mut clock)?;
    let t = match plan(c, &v, files.as_ref(), boot.as_ref(), &clock, from.is_none())? {
        Plan::Install(t) => t.clone(),
        Plan::Wait(m) | Plan::None(m) => {
            println!("{m}");
            return Ok(ExitCode::SUCCESS);
        }
    };
    // Already staged by an earlier run (outside the window): just reboot.
    let st = Store::new(&c.state_dir, files.as_ref()).load()?;
    if let Some(p) = &st.pending {
        if p.sha256 == t.sha256_hex()
            && p.phase == Phase::Trial
            && matches!(boot.slot_state(p.slot)?, boot::BootState::Trial { .. })
        {
            println!(
                "{} {} is already staged in slot {} and waits for a reboot",
                t.name, t.version, p.slot
            );
            return reboot_if_allowed(c, p.slot, no_reboot, now);
        }
    }
    let mut src: Box<dyn ChunkSource> = match from {
        Some(d) => Box::new(DirSource {
            targets_dir: d.join("targets"),
        }),
        None => Box::new(HttpSource::new(
            v.targets_url.clone(),
            Duration::from_secs(c.download.connect_timeout_secs),
            Duration::from_secs(c.download.stall_timeout_secs),
            Duration::from_secs(c.download.chunk_timeout_secs),
            trust::transport::root_certificates(c.ca_file.as_deref())?,
        )?),
    };
    let slots = SlotPaths {
        a: c.slots.a.clone(),
        b: c.slots.b.clone(),
    };
    let ctx = Context {
        files: files.as_ref(),
        state_dir: c.state_dir.clone(),
        boot: boot.as_ref(),
        slots: &slots,
        policy: policy(c),
        boot_id: boot_id()?,
        log: &log,
    };
    let staged = install::install(&ctx, &t, src.as_mut(), v.expires)?;
    println!(
        "{} {} staged in slot {}: {} chunks downloaded, {} copied from the running slot, {} already there",
        t.name, t.version, staged.slot, staged.chunks_downloaded, staged.chunks_copied, staged.chunks_kept
    );
    reboot_if_allowed(c, staged.slot, no_reboot, now)
}

/// Install step 7: reboot into the staged slot, inside the maintenance window.
fn reboot_if_allowed(c: &Config, slot: SlotId, no_reboot: bool, now: bool) -> Result<ExitCode> {
    if no_reboot {
        println!("not rebooting (--no-reboot); the update is tried at the next boot");
    } else if now || in_window(c) {
        println!("rebooting into slot {slot}");
        reboot(c)?;
    } else {
        println!(
            "outside the maintenance window {}; the next run inside it reboots (or any reboot before)",
            c.download.maintenance_window.as_deref().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn checks(c: &Config) -> Vec<Box<dyn Check>> {
    let mut v: Vec<Box<dyn Check>> = Vec::new();
    if let Some(g) = &c.health.gateway_config {
        // An unreadable gateway config fails the check (a trial slot without
        // a working gateway config must roll back), it does not abort it.
        match health::gateway_checks(&c.health.gateway_bin, g) {
            Ok(list) => v.extend(list),
            Err(e) => v.push(Box::new(health::Failing(e.to_string()))),
        }
    }
    for u in &c.health.units {
        v.push(Box::new(health::UnitActive(u.clone())));
    }
    for cmd in &c.health.commands {
        v.push(Box::new(health::CommandOk(cmd.clone())));
    }
    for t in &c.health.tcp {
        if let Ok(a) = t.parse() {
            v.push(Box::new(health::TcpListening(a)));
        }
    }
    v
}

fn health_cmd(c: &Config) -> Result<ExitCode> {
    create_dir_all(&c.state_dir)?;
    let _lock = RunLock::acquire(&c.state_dir)?;
    let files: Arc<dyn Files> = Arc::new(RealFiles);
    let mut clock = TrustedClock::load(files.as_ref(), &c.state_dir)?;
    let boot = boot_control(c, files.clone())?;
    let slots = SlotPaths {
        a: c.slots.a.clone(),
        b: c.slots.b.clone(),
    };
    let ctx = Context {
        files: files.as_ref(),
        state_dir: c.state_dir.clone(),
        boot: boot.as_ref(),
        slots: &slots,
        policy: policy(c),
        boot_id: boot_id()?,
        log: &log,
    };
    let list = checks(c);
    let run = || {
        health::run_checks(
            &list,
            Duration::from_secs(c.health.deadline_secs),
            Duration::from_secs(c.health.interval_secs.max(1)),
        )
    };
    let outcome = health::after_boot(&ctx, &run, &mut clock)?;
    write_report(c, files.as_ref(), boot.as_ref())?;
    match outcome {
        Outcome::Committed {
            slot,
            version,
            floor,
        } => {
            println!("slot {slot} ({version}) is healthy and committed; epoch floor {floor}");
            Ok(ExitCode::SUCCESS)
        }
        Outcome::RolledBack { slot, reason } => {
            eprintln!("updater: slot {slot} failed its health check ({reason}); marked bad, rebooting into the known-good slot");
            reboot(c)?;
            Ok(ExitCode::FAILURE)
        }
        Outcome::TrialNeverCameUp { slot, version } => {
            println!(
                "slot {slot} ({version}) never came up; marked bad, staying on the known-good slot"
            );
            Ok(ExitCode::SUCCESS)
        }
        Outcome::WaitingForReboot { slot } => {
            println!("slot {slot} is staged and waits for a reboot");
            Ok(ExitCode::SUCCESS)
        }
        Outcome::Healthy => {
            println!("healthy");
            Ok(ExitCode::SUCCESS)
        }
        Outcome::Unhealthy(e) => {
            // The committed slot: nothing better to fall back to; say so and
            // let systemd's boot-complete logic see the failure.
            eprintln!("updater: unhealthy: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn status_json(c: &Config, files: &dyn Files, boot: &dyn BootControl) -> Result<serde_json::Value> {
    let st = Store::new(&c.state_dir, files).load()?;
    let booted = boot.booted_slot().ok();
    let slot = |s: SlotId| {
        let i = st.slot(s);
        json!({
            "slot": s.to_string(),
            "device": match s { SlotId::A => c.slots.a.display().to_string(), SlotId::B => c.slots.b.display().to_string() },
            "booted": booted == Some(s),
            "version": i.version,
            "epoch": i.epoch,
            "verified": i.verified,
            "state": boot.slot_state(s).map(|b| b.to_string()).unwrap_or_else(|e| format!("unknown: {e}")),
        })
    };
    let progress = Bitmap::progress(files, &c.state_dir)
        .map(|(d, t, sha)| json!({"chunks_done": d, "chunks_total": t, "target_sha256": sha}));
    Ok(json!({
        "slots": [slot(SlotId::A), slot(SlotId::B)],
        "epoch_floor": st.epoch_floor,
        "last_check": st.last_check,
        "last_install": st.last_install,
        "pending": st.pending,
        "download": progress,
        "wave": st.wave_wait,
        "failed_targets": st.failed,
        "boot_backend": boot.backend(),
    }))
}

/// Step 11: the report a fleet heartbeat can pick up (`STATE_DIR/report.json`).
fn write_report(c: &Config, files: &dyn Files, boot: &dyn BootControl) -> Result<()> {
    let v = status_json(c, files, boot)?;
    updater::durable::write_json(files, &c.state_dir.join("report.json"), &v)
}

fn status(c: &Config, as_json: bool) -> Result<ExitCode> {
    let files: Arc<dyn Files> = Arc::new(RealFiles);
    let boot = boot_control(c, files.clone())?;
    let v = status_json(c, files.as_ref(), boot.as_ref())?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    let st = Store::new(&c.state_dir, files.as_ref()).load()?;
    let booted = boot.booted_slot().ok();
    for s in [SlotId::A, SlotId::B] {
        let i = st.slot(s);
        println!(
            "slot {s}{}: {} epoch {} — {}{}",
            if booted == Some(s) { " (running)" } else { "" },
            i.version.as_deref().unwrap_or("unknown version"),
            i.epoch.map(|e| e.to_string()).unwrap_or_else(|| "?".into()),
            boot.slot_state(s)
                .map(|b| b.to_string())
                .unwrap_or_else(|e| format!("unknown ({e})")),
            if i.verified { ", verified" } else { "" }
        );
    }
    println!("epoch floor: {}", st.epoch_floor);
    match &st.last_check {
        Some(r) => println!(
            "last check: {} {} — {}",
            r.at,
            if r.ok { "ok" } else { "FAILED" },
            r.message
        ),
        None => println!("last check: never"),
    }
    if let Some(r) = &st.last_install {
        println!(
            "last install: {} {} — {}",
            r.at,
            if r.ok { "ok" } else { "FAILED" },
            r.message
        );
    }
    if let Some(p) = &st.pending {
        println!(
            "in progress: {} {} → slot {} ({:?})",
            p.target, p.version, p.slot, p.phase
        );
    }
    if let Some((d, t, _)) = Bitmap::progress(files.as_ref(), &c.state_dir) {
        println!("download: {d}/{t} chunks");
    }
    match &st.wave_wait {
        Some(WaveWait {
            target,
            version,
            until: Some(u),
            ..
        }) => {
            println!("wave: {target} {version}: waiting for wave until {u}")
        }
        Some(WaveWait {
            target,
            version,
            until: None,
            ..
        }) => {
            println!("wave: {target} {version}: no wave includes this box yet")
        }
        None => println!("wave: not waiting"),
    }
    Ok(ExitCode::SUCCESS)
}
