//! `updater status`: slots, epoch floor, last check, download progress,
//! wave; and the same as the report a fleet heartbeat picks up (step 11).

use super::session::Session;
use serde_json::json;
use std::process::ExitCode;
use updater::boot::SlotId;
use updater::config::Config;
use updater::download::bitmap::Bitmap;
use updater::state::{Record, WaveWait};
use updater::Result;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    pub json: bool,
}

pub fn run(c: &Config, args: &Args) -> Result<ExitCode> {
    let s = Session::read_only(c)?;
    if args.json {
        let v = status_json(&s)?;
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    let st = s.store().load()?;
    let booted = s.boot.booted_slot().ok();
    for slot in [SlotId::A, SlotId::B] {
        let i = st.slot(slot);
        println!(
            "slot {slot}{}: {} epoch {} — {}{}",
            if booted == Some(slot) {
                " (running)"
            } else {
                ""
            },
            i.version.as_deref().unwrap_or("unknown version"),
            i.epoch.map(|e| e.to_string()).unwrap_or_else(|| "?".into()),
            s.boot
                .slot_state(slot)
                .map(|b| b.to_string())
                .unwrap_or_else(|e| format!("unknown ({e})")),
            if i.verified { ", verified" } else { "" }
        );
    }
    println!("epoch floor: {}", st.epoch_floor);
    match &st.last_check {
        Some(r) => println!("last check: {}", record(r)),
        None => println!("last check: never"),
    }
    if let Some(r) = &st.last_install {
        println!("last install: {}", record(r));
    }
    if let Some(p) = &st.pending {
        println!(
            "in progress: {} {} → slot {} ({:?})",
            p.target, p.version, p.slot, p.phase
        );
    }
    if let Some((d, t, _)) = Bitmap::progress(s.files.as_ref(), &c.state_dir) {
        println!("download: {d}/{t} chunks");
    }
    match &st.config.applied {
        Some(a) => println!(
            "config: version {} ({}), applied {}",
            a.version, a.scope, a.at
        ),
        None if c.config_targets.is_some() => {
            println!("config: as provisioned (no signed config target applied)")
        }
        None => println!("config: signed config targets are off ([config] not set)"),
    }
    if let Some(p) = &st.config.pending {
        println!(
            "config in progress: {} version {} ({:?})",
            p.scope, p.version, p.phase
        );
    }
    if let Some(r) = &st.config.last {
        println!("last config: {}", record(r));
    }
    if let Some(a) = &st.after_commit {
        println!(
            "after commit of slot {} ({}): {} command(s) to run{}",
            a.slot,
            a.version,
            a.remaining.len(),
            a.last_error
                .as_deref()
                .map(|e| format!(", last attempt failed: {e}"))
                .unwrap_or_default()
        );
    }
    match &st.wave_wait {
        Some(WaveWait {
            target,
            version,
            until: Some(u),
            ..
        }) => println!("wave: {target} {version}: waiting for wave until {u}"),
        Some(WaveWait {
            target,
            version,
            until: None,
            ..
        }) => println!("wave: {target} {version}: no wave includes this box yet"),
        None => println!("wave: not waiting"),
    }
    Ok(ExitCode::SUCCESS)
}

fn record(r: &Record) -> String {
    format!(
        "{} {} — {}",
        r.at,
        if r.ok { "ok" } else { "FAILED" },
        r.message
    )
}

fn status_json(s: &Session<'_>) -> Result<serde_json::Value> {
    let c = s.config;
    let st = s.store().load()?;
    let booted = s.boot.booted_slot().ok();
    let slot = |id: SlotId| {
        let i = st.slot(id);
        let device = match id {
            SlotId::A => &c.slots.a,
            SlotId::B => &c.slots.b,
        };
        json!({
            "slot": id.to_string(),
            "device": device.display().to_string(),
            "booted": booted == Some(id),
            "version": i.version,
            "epoch": i.epoch,
            "verified": i.verified,
            "state": s.boot.slot_state(id).map(|b| b.to_string()).unwrap_or_else(|e| format!("unknown: {e}")),
        })
    };
    let progress = Bitmap::progress(s.files.as_ref(), &c.state_dir)
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
        "config": st.config,
        "after_commit": st.after_commit,
        "boot_backend": s.boot.backend(),
    }))
}

/// Step 11: the report a fleet heartbeat can pick up (`STATE_DIR/report.json`).
pub fn write_report(s: &Session<'_>) -> Result<()> {
    let v = status_json(s)?;
    updater::durable::write_json(
        s.files.as_ref(),
        &s.config.state_dir.join("report.json"),
        &v,
    )
}
