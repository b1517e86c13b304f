//! The FHIR mapping context of one `fhir` destination (its tenant,
//! identifier systems, update mode, code maps), shared by its attempts, and
//! the code maps' hot reload: the CSV directory is checked every few
//! seconds and reloaded when a file changes, without a restart. A file that
//! no longer parses is reported (file:line) and the previous maps stay in
//! use.

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::config::FhirSettings;
use crate::fhir::{CodeMaps, IdentifierSystems, MapContext, UnmappedCodes, UpdateMode};

/// How often the code-map directory is checked for changes.
pub const RELOAD_CHECK: Duration = Duration::from_secs(3);

pub struct FhirContext {
    settings: FhirSettings,
    current: RwLock<Arc<MapContext>>,
    unmapped: Arc<UnmappedCodes>,
    /// Newest modification time (and file count) seen in the code-map directory.
    stamp: Mutex<Option<(SystemTime, usize)>>,
}

/// Newest mtime and number of `*.csv` files in `dir`.
fn dir_stamp(dir: &Path) -> Option<(SystemTime, usize)> {
    let mut newest = SystemTime::UNIX_EPOCH;
    let mut n = 0;
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x.eq_ignore_ascii_case("csv")) {
            n += 1;
            if let Ok(m) = e.metadata().and_then(|m| m.modified()) {
                newest = newest.max(m);
            }
        }
    }
    Some((newest, n))
}

impl FhirContext {
    pub fn new(settings: &FhirSettings) -> Result<FhirContext, String> {
        let unmapped = Arc::new(UnmappedCodes::default());
        let maps = match &settings.code_maps_dir {
            Some(d) => CodeMaps::load_dir(d)?,
            None => CodeMaps::default(),
        };
        let stamp = settings.code_maps_dir.as_deref().and_then(dir_stamp);
        let ctx = build(settings, Arc::new(maps), unmapped.clone());
        Ok(FhirContext {
            settings: settings.clone(),
            current: RwLock::new(Arc::new(ctx)),
            unmapped,
            stamp: Mutex::new(stamp),
        })
    }

    /// The context to map with now.
    pub fn get(&self) -> Arc<MapContext> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Local codes seen without a mapping, and how often.
    pub fn unmapped(&self) -> Arc<UnmappedCodes> {
        self.unmapped.clone()
    }

    /// Reload the code maps if their directory changed. `Ok(Some(n))` = reloaded, n mappings.
    pub fn reload_if_changed(&self) -> Result<Option<usize>, String> {
        let Some(dir) = &self.settings.code_maps_dir else {
            return Ok(None);
        };
        let now = dir_stamp(dir);
        {
            let mut seen = self
                .stamp
                .lock()
                .map_err(|_| "code-map stamp lock poisoned")?;
            if *seen == now {
                return Ok(None);
            }
            *seen = now;
        }
        let maps = CodeMaps::load_dir(dir)?;
        let n = maps.len();
        let ctx = build(&self.settings, Arc::new(maps), self.unmapped.clone());
        match self.current.write() {
            Ok(mut g) => *g = Arc::new(ctx),
            Err(p) => *p.into_inner() = Arc::new(ctx),
        }
        Ok(Some(n))
    }

    /// Check for code-map changes until shutdown.
    pub async fn watch(self: Arc<Self>, destination: String, mut shutdown: watch::Receiver<bool>) {
        if self.settings.code_maps_dir.is_none() {
            return;
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(RELOAD_CHECK) => {}
                _ = shutdown.changed() => return,
            }
            let me = self.clone();
            match tokio::task::spawn_blocking(move || me.reload_if_changed()).await {
                Ok(Ok(Some(n))) => {
                    log::info!(target: "gateway::fhir", "destination {destination}: code maps reloaded ({n} mappings)")
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    log::warn!(target: "gateway::fhir", "destination {destination}: code maps not reloaded, the previous ones stay in use: {e}")
                }
                Err(e) => {
                    log::warn!(target: "gateway::fhir", "destination {destination}: code-map reload task failed: {e}")
                }
            }
        }
    }
}

fn build(s: &FhirSettings, maps: Arc<CodeMaps>, unmapped: Arc<UnmappedCodes>) -> MapContext {
    let mut systems = IdentifierSystems::default();
    for (authority, uri) in &s.identifier_systems {
        systems.insert(authority, uri);
    }
    MapContext {
        tenant: s.tenant.clone(),
        identifier_systems: systems,
        code_maps: maps,
        update_mode: if s.conditional {
            UpdateMode::Conditional
        } else {
            UpdateMode::Put
        },
        unmapped,
        default_utc_offset: s.utc_offset.clone(),
    }
}
