//! The FHIR mapping context of one `fhir` destination (its tenant,
//! identifier systems, update mode, code maps), shared by its attempts, and
//! the code maps' hot reload: the CSV directory is checked every few
//! seconds and reloaded when a file changes, without a restart. A file that
//! no longer parses is reported (file:line) and the previous maps stay in
//! use. The directory is read here ([`load_code_maps`]); `fhir_map` only
//! parses CSV text.

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::config::FhirSettings;
use fhir_map::{CodeMaps, IdentifierSystems, MapContext, UnmappedCodes, UpdateMode};

/// How often the code-map directory is checked for changes.
pub const RELOAD_CHECK: Duration = Duration::from_secs(3);

pub struct FhirContext {
    settings: FhirSettings,
    current: RwLock<Arc<MapContext>>,
    unmapped: Arc<UnmappedCodes>,
    /// Newest modification time (and file count) seen in the code-map directory.
    stamp: Mutex<Option<(SystemTime, usize)>>,
}

/// Loads every `*.csv` file in `dir` (sorted by name) into one set of code
/// maps. Errors name the directory or the file (and line).
pub fn load_code_maps(dir: &Path) -> Result<CodeMaps, crate::Error> {
    let unreadable = |path: &Path| {
        let path = path.to_path_buf();
        move |source| crate::Error::Io {
            action: "cannot read the code-map file or directory",
            path,
            source,
        }
    };
    let entries = std::fs::read_dir(dir).map_err(unreadable(dir))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(unreadable(dir))?.path();
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
        {
            files.push(path);
        }
    }
    files.sort();
    let mut maps = CodeMaps::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(unreadable(&file))?;
        maps.add_csv(&text, &file.display().to_string())?;
    }
    Ok(maps)
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
    pub fn new(settings: &FhirSettings) -> Result<FhirContext, crate::Error> {
        let unmapped = Arc::new(UnmappedCodes::default());
        let maps = match &settings.code_maps_dir {
            Some(d) => load_code_maps(d)?,
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
        let maps = load_code_maps(dir).map_err(|e| e.to_string())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path) -> FhirSettings {
        FhirSettings {
            tenant: "t1".into(),
            conditional: false,
            identifier_systems: vec![("CLINIC".into(), "https://c.example/mrn".into())],
            code_maps_dir: Some(dir.to_path_buf()),
            utc_offset: None,
        }
    }

    #[test]
    fn code_maps_reload_when_the_directory_changes_and_survive_a_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let header = "local_system,local_code,target_system,target_code,display\n";
        std::fs::write(
            dir.path().join("a.csv"),
            format!("{header}LAB,GLU,LOINC,2345-7,Glucose\n"),
        )
        .unwrap();
        let ctx = FhirContext::new(&settings(dir.path())).unwrap();
        assert_eq!(ctx.get().code_maps.len(), 1);
        assert_eq!(ctx.reload_if_changed().unwrap(), None, "nothing changed");
        std::fs::write(
            dir.path().join("b.csv"),
            format!("{header}LAB,NA,LOINC,2951-2,Sodium\n"),
        )
        .unwrap();
        assert_eq!(ctx.reload_if_changed().unwrap(), Some(2));
        assert_eq!(ctx.get().code_maps.len(), 2);
        // A broken file: reported, the maps in use stay.
        std::fs::write(dir.path().join("c.csv"), "not,a,valid\nrow").unwrap();
        let e = ctx.reload_if_changed().unwrap_err();
        assert!(e.contains("c.csv"), "{e}");
        assert_eq!(ctx.get().code_maps.len(), 2);
        assert_eq!(ctx.get().tenant, "t1");
    }
}
