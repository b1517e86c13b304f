//! Signed config targets on this box: `updater install` applies a newer one
//! for this box or its group ([`apply_if_offered`]); `updater health`
//! finishes one a power cut interrupted ([`resume`]).

use super::health::checks;
use super::session::{log, Session};
use std::fmt;
use updater::config_apply::{Applier, ConfigOutcome};
use updater::config_target::pick;
use updater::download::{fetch_verified, ChunkSource};
use updater::health::run_checks_settled;
use updater::trust::Verified;
use updater::{Error, Result};

/// What to print about a config run.
pub struct Said(pub ConfigOutcome);

impl fmt::Display for Said {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            ConfigOutcome::Applied { version } => write!(f, "config version {version} applied"),
            ConfigOutcome::Refused { version, reason } => {
                write!(f, "config version {version} refused by its check: {reason}")
            }
            ConfigOutcome::RolledBack { version, reason } => write!(
                f,
                "config version {version} rolled back (the gateway was not healthy with it): {reason}"
            ),
        }
    }
}

/// The health checks of `[health]`, built when called (after the swap:
/// the listener checks come from the gateway config in place then).
fn judge(s: &Session<'_>) -> Result<()> {
    let h = &s.config.health;
    let list = checks(s.config);
    run_checks_settled(&list, h.deadline, h.interval, h.settle, &log)
}

fn applier<'a>(s: &'a Session<'_>, judge: &'a dyn Fn() -> Result<()>) -> Option<Applier<'a>> {
    let settings = s.config.config_targets.as_ref()?;
    Some(Applier {
        files: s.files.as_ref(),
        state_dir: s.config.state_dir.clone(),
        settings,
        checks: judge,
        log: &log,
    })
}

/// Applies the config target this box should run, if there is a new one.
/// Not while an image update is in flight (its health check owns the
/// gateway's restarts until it is committed or rolled back).
pub fn apply_if_offered(
    s: &Session<'_>,
    v: &Verified,
    src: &mut dyn ChunkSource,
) -> Result<Option<Said>> {
    let j = || judge(s);
    let Some(a) = applier(s, &j) else {
        return Ok(None);
    };
    let st = s.store().load()?;
    if st.pending.is_some() || st.config.pending.is_some() {
        log("config: an update is in progress; config targets wait for it");
        return Ok(None);
    }
    let (box_id, group) = a.settings.identity();
    let t = match pick(&v.configs, box_id.as_deref(), group.as_deref(), &st.config) {
        Ok(t) => t.clone(),
        Err(why) => {
            log(&format!("config: {why}"));
            return Ok(None);
        }
    };
    let as_image = t.as_download()?;
    let backoff = s.context()?.policy.backoff;
    let bytes = fetch_verified(src, &as_image, 0, &backoff)
        .map_err(|e| Error::Download(format!("config target {}: {e}", t.name)))?;
    a.apply(&t, &bytes).map(|o| Some(Said(o)))
}

/// At boot: finishes a config apply a power cut interrupted.
pub fn resume(s: &Session<'_>) -> Result<Option<Said>> {
    let j = || judge(s);
    match applier(s, &j) {
        Some(a) => Ok(a.resume()?.map(Said)),
        None => Ok(None),
    }
}
