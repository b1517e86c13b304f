//! `updater install`: check, then download, write, verify and stage the
//! update (install steps 1–6); reboot into it inside the maintenance window
//! (step 7).

use super::session::{local_minute_of_day, Session};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use updater::boot::SlotId;
use updater::config::Config;
use updater::download::{dir::DirSource, http_range::HttpSource, ChunkSource};
use updater::plan::{self, Plan, Reboot};
use updater::trust::transport::root_certificates;
use updater::trust::Verified;
use updater::{install, Result};

#[derive(clap::Args)]
pub struct Args {
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
}

pub fn run(c: &Config, args: &Args) -> Result<ExitCode> {
    let s = Session::locked(c)?;
    let from = args.from.as_deref();
    let (clock, v) = s.check(from)?;
    // A signed config for this box first: it changes the running gateway
    // only, and only if the gateway stays healthy with it.
    if let Some(outcome) = super::config::apply_if_offered(&s, &v, &mut *source(c, from, &v)?)? {
        println!("{outcome}");
    }
    let t = match s.plan(&v, &clock, from.is_none())? {
        Plan::Install(t) => t.clone(),
        Plan::Wait(m) | Plan::None(m) => {
            println!("{m}");
            return Ok(ExitCode::SUCCESS);
        }
    };
    // Already staged by an earlier run (outside the window): just reboot.
    let st = s.store().load()?;
    if let Some(p) = &st.pending {
        if plan::already_staged(&st, &t, &s.boot.slot_state(p.slot)?) {
            println!(
                "{} {} is already staged in slot {} and waits for a reboot",
                t.name, t.version, p.slot
            );
            return reboot_if_allowed(&s, args, p.slot);
        }
    }
    let mut src = source(c, from, &v)?;
    let staged = install::install(&s.context()?, &t, src.as_mut(), v.expires)?;
    println!(
        "{} {} staged in slot {}: {} chunks downloaded, {} copied from the running slot, {} already there",
        t.name, t.version, staged.slot, staged.chunks_downloaded, staged.chunks_copied, staged.chunks_kept
    );
    reboot_if_allowed(&s, args, staged.slot)
}

/// Where target bytes come from: the repository's server, or `--from DIR`.
fn source(c: &Config, from: Option<&Path>, v: &Verified) -> Result<Box<dyn ChunkSource>> {
    Ok(match from {
        Some(d) => Box::new(DirSource {
            targets_dir: d.join("targets"),
        }),
        None => Box::new(HttpSource::new(
            v.targets_url.clone(),
            c.download.connect_timeout,
            c.download.stall_timeout,
            c.download.chunk_timeout,
            root_certificates(c.ca_file.as_deref())?,
        )?),
    })
}

/// Install step 7: reboot into the staged slot, inside the maintenance window.
fn reboot_if_allowed(s: &Session<'_>, args: &Args, slot: SlotId) -> Result<ExitCode> {
    let window = s.config.download.maintenance_window;
    match plan::reboot(args.no_reboot, args.now, window, local_minute_of_day()) {
        Reboot::No => {
            println!("not rebooting (--no-reboot); the update is tried at the next boot")
        }
        Reboot::Now => {
            println!("rebooting into slot {slot}");
            s.reboot()?;
        }
        Reboot::OutsideWindow(w) => println!(
            "outside the maintenance window {w}; the next run inside it reboots (or any reboot before)"
        ),
    }
    Ok(ExitCode::SUCCESS)
}
