//! Applying a signed config target ([`crate::config_target`]), durably and
//! reversibly:
//!
//! 1. the bundle (already verified against its signed length and SHA-256)
//!    is staged in `STATE_DIR/config/staged/`;
//! 2. `[config] check_command` (`gateway check-config`) must pass on the
//!    staged files, or nothing else happens (the target is remembered as
//!    failed);
//! 3. the files it replaces are copied to `STATE_DIR/config/backup/` (and the
//!    credentials it adds are listed there), then the state says `swapping`;
//! 4. each file is put in place (temp file, fsync, rename, fsync directory),
//!    then the state says `checking`;
//! 5. `[config] restart_command` restarts the gateway, and the health
//!    checks of `[health]` decide: pass → applied (the version `updater
//!    status` shows); fail → the backup is put back, the gateway restarted
//!    again, the target marked failed.
//!
//! A power cut anywhere leaves either the old files (before 3 is saved),
//! or a pending apply that `updater health` finishes at the next boot
//! ([`resume`]): the swap is completed from the staged copy, and the health
//! check decides as in 5.

use crate::config::ConfigTargets;
use crate::config_target::{Bundle, ConfigTarget};
use crate::durable::{create_dir_all, read_json, rename_synced, sync_dir, write_json, Files};
use crate::state::{AppliedConfig, ConfigPhase, PendingConfig, Record, Store};
use crate::{Error, Result};
use jiff::Timestamp;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What applying (or resuming) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOutcome {
    /// The gateway runs healthy with the new config.
    Applied { version: u64 },
    /// `check_command` refused it; nothing was changed.
    Refused { version: u64, reason: String },
    /// The gateway was not healthy with it; the previous config is back.
    RolledBack { version: u64, reason: String },
}

/// Everything an apply needs; the health checks are a closure (they read
/// the gateway config, so they are built after the swap).
pub struct Applier<'a> {
    pub files: &'a dyn Files,
    pub state_dir: PathBuf,
    pub settings: &'a ConfigTargets,
    pub checks: &'a dyn Fn() -> Result<()>,
    pub log: &'a dyn Fn(&str),
}

/// The list of credentials an apply created (removed again on rollback).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Created {
    credentials: Vec<String>,
}

impl Applier<'_> {
    fn dir(&self) -> PathBuf {
        self.state_dir.join("config")
    }
    fn staged(&self) -> PathBuf {
        self.dir().join("staged")
    }
    fn backup(&self) -> PathBuf {
        self.dir().join("backup")
    }
    fn store(&self) -> Store<'_> {
        Store::new(&self.state_dir, self.files)
    }

    /// Steps 1–5 for `target`, whose verified bytes are `bundle`.
    pub fn apply(&self, target: &ConfigTarget, bundle: &[u8]) -> Result<ConfigOutcome> {
        let (toml, creds) = Bundle::parse(bundle)?;
        let version = target.version;
        (self.log)(&format!(
            "config: {} version {version}: staging and checking it",
            target.scope
        ));
        // 1. Stage.
        let staged = self.staged();
        let _ = std::fs::remove_dir_all(&staged);
        create_dir_all(&staged.join("credentials"))?;
        put(&staged.join("gateway.toml"), toml.as_bytes(), 0o644)?;
        for (name, bytes) in &creds {
            put(&staged.join("credentials").join(name), bytes, 0o600)?;
        }
        // 2. Check.
        if let Err(e) = self.check(&staged) {
            let reason = e.to_string();
            self.finish(
                target_pending(target, ConfigPhase::Swapping),
                false,
                &reason,
            )?;
            let _ = std::fs::remove_dir_all(&staged);
            (self.log)(&format!("config: version {version} refused: {reason}"));
            return Ok(ConfigOutcome::Refused { version, reason });
        }
        // 3. Back up what is replaced, then say so.
        let s = self.settings;
        let backup = self.backup();
        let _ = std::fs::remove_dir_all(&backup);
        create_dir_all(&backup.join("credentials"))?;
        copy_if_exists(&s.gateway_toml, &backup.join("gateway.toml"), 0o644)?;
        let mut created = Created::default();
        for name in creds.keys() {
            let live = s.credentials_dir.join(name);
            if live.exists() {
                copy_if_exists(&live, &backup.join("credentials").join(name), 0o600)?;
            } else {
                created.credentials.push(name.clone());
            }
        }
        write_json(self.files, &backup.join("created.json"), &created)?;
        sync_dir(&backup)?;
        let store = self.store();
        let mut st = store.load()?;
        st.config.pending = Some(target_pending(target, ConfigPhase::Swapping));
        store.save(&st)?;
        // 4–5.
        self.swap_and_decide()
    }

    /// At boot: finish an apply a power cut interrupted (`None`: none was).
    pub fn resume(&self) -> Result<Option<ConfigOutcome>> {
        let st = self.store().load()?;
        let Some(p) = st.config.pending else {
            return Ok(None);
        };
        (self.log)(&format!(
            "config: resuming the apply of {} version {} ({:?})",
            p.scope, p.version, p.phase
        ));
        self.swap_and_decide().map(Some)
    }

    /// `check_command` on the staged files.
    fn check(&self, staged: &Path) -> Result<()> {
        let cfg = staged.join("gateway.toml");
        let creds = staged.join("credentials");
        let argv: Vec<String> = self
            .settings
            .check_command
            .iter()
            .map(|a| {
                a.replace("{config}", &cfg.to_string_lossy())
                    .replace("{credentials}", &creds.to_string_lossy())
            })
            .collect();
        run(&argv, &[("CREDENTIALS_DIRECTORY", &creds)])
    }

    fn swap_and_decide(&self) -> Result<ConfigOutcome> {
        let store = self.store();
        let mut st = store.load()?;
        let Some(mut p) = st.config.pending.clone() else {
            return Err(Error::State("no config apply in progress".into()));
        };
        let s = self.settings;
        let staged = self.staged();
        if p.phase == ConfigPhase::Swapping {
            // 4. Idempotent: the staged copy is complete (written before the
            // state said "swapping").
            put(&s.gateway_toml, &read(&staged.join("gateway.toml"))?, 0o644)?;
            for (name, path) in list(&staged.join("credentials"))? {
                put(&s.credentials_dir.join(&name), &read(&path)?, 0o600)?;
            }
            p.phase = ConfigPhase::Checking;
            st.config.pending = Some(p.clone());
            store.save(&st)?;
            (self.log)(&format!(
                "config: version {} in place; restarting the gateway",
                p.version
            ));
        }
        // 5. Restart and judge.
        let verdict = run(&s.restart_command, &[]).and_then(|()| (self.checks)());
        match verdict {
            Ok(()) => {
                self.finish(p.clone(), true, "")?;
                let _ = std::fs::remove_dir_all(self.backup());
                let _ = std::fs::remove_dir_all(&staged);
                (self.log)(&format!(
                    "config: {} version {} applied; the gateway is healthy with it",
                    p.scope, p.version
                ));
                Ok(ConfigOutcome::Applied { version: p.version })
            }
            Err(e) => {
                let reason = e.to_string();
                (self.log)(&format!(
                    "config: the gateway is not healthy with version {} ({reason}): putting the previous config back",
                    p.version
                ));
                self.restore()?;
                let again = run(&s.restart_command, &[]);
                self.finish(p.clone(), false, &reason)?;
                if let Err(e) = again {
                    (self.log)(&format!("config: restarting with the previous config: {e}"));
                }
                Ok(ConfigOutcome::RolledBack {
                    version: p.version,
                    reason,
                })
            }
        }
    }

    /// The backup back in place; credentials the apply created removed.
    fn restore(&self) -> Result<()> {
        let s = self.settings;
        let backup = self.backup();
        let toml = backup.join("gateway.toml");
        if toml.exists() {
            put(&s.gateway_toml, &read(&toml)?, 0o644)?;
        }
        for (name, path) in list(&backup.join("credentials"))? {
            put(&s.credentials_dir.join(&name), &read(&path)?, 0o600)?;
        }
        let created: Created =
            read_json(self.files, &backup.join("created.json"))?.unwrap_or_default();
        for name in created.credentials {
            let p = s.credentials_dir.join(&name);
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io(&p, "remove", e))
                }
                _ => {}
            }
        }
        sync_dir(&s.credentials_dir)
    }

    /// Records the outcome: applied, or failed (never offered again).
    fn finish(&self, p: PendingConfig, ok: bool, reason: &str) -> Result<()> {
        let store = self.store();
        let mut st = store.load()?;
        let now = Timestamp::now();
        st.config.pending = None;
        if ok {
            st.config.applied = Some(AppliedConfig {
                version: p.version,
                scope: p.scope.clone(),
                sha256: p.sha256.clone(),
                at: now,
            });
            st.config.failed.retain(|f| f != &p.sha256);
        } else if !st.config.failed.contains(&p.sha256) {
            st.config.failed.push(p.sha256.clone());
        }
        st.config.last = Some(Record {
            at: now,
            ok,
            message: if ok {
                format!("config {} version {} applied", p.scope, p.version)
            } else {
                format!(
                    "config {} version {} not applied: {reason}",
                    p.scope, p.version
                )
            },
        });
        store.save(&st)
    }
}

fn target_pending(t: &ConfigTarget, phase: ConfigPhase) -> PendingConfig {
    PendingConfig {
        version: t.version,
        scope: t.scope.clone(),
        sha256: t.sha256_hex(),
        phase,
    }
}

/// Replaces `path` durably with `bytes` at `mode` (temp file, fsync,
/// rename, fsync of the directory).
fn put(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.new"));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| Error::io(&tmp, "create", e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(&tmp, "write", e))?;
    drop(f);
    rename_synced(&tmp, path)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, "read", e))
}

fn copy_if_exists(from: &Path, to: &Path, mode: u32) -> Result<()> {
    match std::fs::read(from) {
        Ok(b) => put(to, &b, mode),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(from, "read", e)),
    }
}

/// The regular files of `dir` (name, path), sorted; none if it is missing.
fn list(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(Error::io(dir, "list", e)),
    };
    let mut v = Vec::new();
    for e in rd {
        let e = e.map_err(|e| Error::io(dir, "list", e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if e.path().is_file() && !name.starts_with('.') {
            v.push((name, e.path()));
        }
    }
    v.sort();
    Ok(v)
}

/// Runs a command (no shell); its last stderr line explains a failure.
fn run(argv: &[String], env: &[(&str, &Path)]) -> Result<()> {
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| Error::State("[config]: an empty command".into()))?;
    let mut cmd = Command::new(prog);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().map_err(|source| Error::Spawn {
        program: prog.clone(),
        source,
    })?;
    if out.status.success() {
        return Ok(());
    }
    // What it said (stderr, else stdout), a few lines at most.
    let said = |b: &[u8]| {
        let t = String::from_utf8_lossy(b);
        let lines: Vec<&str> = t.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        lines[..lines.len().min(5)].join(" / ")
    };
    let mut last = said(&out.stderr);
    if last.is_empty() {
        last = said(&out.stdout);
    }
    Err(Error::Command {
        command: argv.join(" "),
        status: out.status,
        detail: format!(": {last}"),
    })
}
