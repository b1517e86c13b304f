//! Trust: loading and verifying TUF metadata with `tough`, plus what tough
//! leaves to its caller.
//!
//! tough does the TUF client workflow (root chain with rotation, signature
//! thresholds, versions against its datastore, snapshot/targets hashes and
//! lengths, size limits). Around it this module adds:
//!
//! 1. **A durable trusted copy** (`STATE_DIR/trusted/`): the latest verified
//!    root and the highest timestamp/snapshot/targets versions seen, written
//!    with fsync + rename. tough's own datastore (`STATE_DIR/tuf/`) is written
//!    without fsync and a damaged file there is silently treated as absent,
//!    so after a power cut it could forget the versions it must not go below;
//!    the trusted copy cannot. It also gives tough the newest root to start
//!    from (tough does not read its datastore's root itself).
//! 2. **Expiry against [`clock::TrustedClock`]**: tough checks expiry against
//!    the system clock and refuses to run at all when the clock stepped back
//!    (`latest_known_time.json`); a box with a dead RTC would then either be
//!    fooled (clock in 1970) or never update again. So tough runs with
//!    `ExpirationEnforcement::Unsafe` (which disables only its expiry checks,
//!    nothing else), its time file is removed before each load, and every
//!    role's expiry is checked here against the trusted clock instead.
//! 3. **Parsing targets** into [`UpdateTarget`]s: top-level targets only
//!    (delegated targets roles are ignored; `updater repo` makes none).

pub mod clock;
pub mod transport;

use crate::durable::{create_dir_all, read_json, write_json, Files};
use crate::target::UpdateTarget;
use crate::{Error, Result};
use clock::TrustedClock;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

/// Size limits for metadata (endless-data protection).
pub fn limits() -> tough::Limits {
    tough::Limits {
        max_root_size: 512 * 1024,
        max_targets_size: 8 * 1024 * 1024,
        max_timestamp_size: 64 * 1024,
        max_snapshot_size: 512 * 1024,
        max_root_updates: 64,
    }
}

#[derive(Debug, Clone)]
pub struct TrustConfig {
    /// The root.json shipped in the image (out-of-band trust anchor).
    pub shipped_root: PathBuf,
    pub metadata_url: Url,
    pub targets_url: Url,
    pub state_dir: PathBuf,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub extra_ca: Option<PathBuf>,
}

/// Highest versions ever verified, and the keys that signed them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RoleVersions {
    pub root: u64,
    pub timestamp: u64,
    pub snapshot: u64,
    pub targets: u64,
    #[serde(default)]
    pub timestamp_keys: Vec<String>,
    #[serde(default)]
    pub snapshot_keys: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Verified {
    pub targets: Vec<UpdateTarget>,
    /// Signed configuration targets (`custom.clinic_gateway_config`).
    pub configs: Vec<crate::config_target::ConfigTarget>,
    /// Signed targets this updater could not use, with the reason.
    pub skipped: Vec<String>,
    pub versions: RoleVersions,
    /// Earliest expiry among root, timestamp, snapshot and targets.
    pub expires: Timestamp,
    pub targets_url: Url,
}

fn trusted_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("trusted")
}

fn root_version(bytes: &[u8]) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    v.get("signed")?.get("version")?.as_u64()
}

/// Formats an error with its chain of causes.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s
}

fn role_keys(root: &tough::schema::Root, role: tough::schema::RoleType) -> Vec<String> {
    let mut v: Vec<String> = root
        .roles
        .get(&role)
        .map(|r| {
            r.keyids
                .iter()
                .map(|k| hex::encode(k.as_ref() as &[u8]))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Fetches and verifies the repository. Returns only metadata that passed
/// every check; on any failure nothing about the trusted state changes except
/// tough's scratch datastore.
pub fn load(cfg: &TrustConfig, files: &dyn Files, clock: &mut TrustedClock) -> Result<Verified> {
    let tdir = trusted_dir(&cfg.state_dir);
    let datastore = cfg.state_dir.join("tuf");
    create_dir_all(&tdir)?;
    create_dir_all(&datastore)?;

    // The newest root we trust: our durable copy, or the shipped one if the
    // image brought a newer root.
    let shipped = std::fs::read(&cfg.shipped_root)
        .map_err(|e| Error::io(&cfg.shipped_root, "read the shipped trusted root", e))?;
    let saved = files.read(&tdir.join("root.json"))?;
    let root_bytes = match saved {
        Some(s) if root_version(&s) > root_version(&shipped) => s,
        _ => shipped,
    };
    let stored: RoleVersions = read_json(files, &tdir.join("versions.json"))?.unwrap_or_default();

    // Our clock replaces tough's "never stepped backward" file.
    match std::fs::remove_file(datastore.join("latest_known_time.json")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::io(&datastore, "remove latest_known_time.json", e))
        }
        _ => {}
    }

    let certs = transport::root_certificates(cfg.extra_ca.as_deref())?;
    let t = transport::UpdaterTransport::new(
        cfg.connect_timeout,
        cfg.timeout,
        certs,
        limits().max_targets_size,
    )?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::State(format!("cannot start the async runtime: {e}")))?;
    let repo = rt
        .block_on(
            tough::RepositoryLoader::new(
                &root_bytes,
                cfg.metadata_url.clone(),
                cfg.targets_url.clone(),
            )
            .transport(t)
            .limits(limits())
            .datastore(&datastore)
            .expiration_enforcement(tough::ExpirationEnforcement::Unsafe)
            .load(),
        )
        .map_err(|e| Error::Trust(format!("{}: {}", cfg.metadata_url, chain(&e))))?;

    // Expiry against the trusted clock.
    let now = clock.now();
    let roles = [
        ("root.json", repo.root().signed.expires),
        ("timestamp.json", repo.timestamp().signed.expires),
        ("snapshot.json", repo.snapshot().signed.expires),
        ("targets.json", repo.targets().signed.expires),
    ];
    for (name, expires) in roles {
        if expires <= now {
            return Err(Error::Trust(format!(
                "{name} expired at {expires} (trusted time is {now}, never earlier than {}); \
                 the MSP must re-sign the repository (`updater repo sign` + `publish`), \
                 or someone is replaying old metadata (freeze attack)",
                clock.floor()
            )));
        }
    }
    let expires = roles.iter().map(|r| r.1).min().unwrap_or(now);

    // Rollback against the durable copy (tough checked its own datastore).
    let root = &repo.root().signed;
    let new = RoleVersions {
        root: root.version.get(),
        timestamp: repo.timestamp().signed.version.get(),
        snapshot: repo.snapshot().signed.version.get(),
        targets: repo.targets().signed.version.get(),
        timestamp_keys: role_keys(root, tough::schema::RoleType::Timestamp),
        snapshot_keys: role_keys(root, tough::schema::RoleType::Snapshot),
    };
    let rotated =
        new.timestamp_keys != stored.timestamp_keys || new.snapshot_keys != stored.snapshot_keys;
    let mut checks = vec![("root.json", stored.root, new.root)];
    // TUF 5.3.11: after a timestamp/snapshot key rotation the old versions
    // no longer bind (recovery from a fast-forward attack).
    if !rotated {
        checks.push(("timestamp.json", stored.timestamp, new.timestamp));
        checks.push(("snapshot.json", stored.snapshot, new.snapshot));
        checks.push(("targets.json", stored.targets, new.targets));
    }
    for (name, old, cur) in checks {
        if cur < old {
            return Err(Error::Trust(format!(
                "{name} version {cur} is older than version {old} already trusted by this box \
                 (rollback attack, or a stale mirror)"
            )));
        }
    }

    let mut targets = Vec::new();
    let mut configs = Vec::new();
    let mut skipped = Vec::new();
    // Top-level targets only: delegated roles are not used by `updater
    // repo`, and their expiry would escape the check above.
    for (name, t) in &repo.targets().signed.targets {
        let sha: &[u8] = t.hashes.sha256.as_ref();
        if crate::config_target::ConfigTarget::is_config(&t.custom) {
            match crate::config_target::ConfigTarget::from_signed(
                name.raw(),
                t.length,
                sha,
                t.custom.get(crate::config_target::CONFIG_KEY),
            ) {
                Ok(c) => configs.push(c),
                Err(e) => skipped.push(e.to_string()),
            }
            continue;
        }
        match UpdateTarget::from_signed(
            name.raw(),
            t.length,
            sha,
            t.custom.get(crate::target::CUSTOM_KEY),
        ) {
            Ok(u) => targets.push(u),
            Err(e) => skipped.push(e.to_string()),
        }
    }

    // Persist what is now trusted, then advance the clock.
    let root_json = serde_json::to_vec_pretty(repo.root())
        .map_err(|e| Error::Trust(format!("cannot serialise the verified root: {e}")))?;
    if root_version(&root_json) != Some(new.root) {
        return Err(Error::Trust("the verified root does not round-trip".into()));
    }
    files.write_atomic(&tdir.join("root.json"), &root_json)?;
    write_json(files, &tdir.join("versions.json"), &new)?;
    if let Some(p) = targets.iter().map(|t| t.published).max() {
        clock.observe(files, p.min(expires))?;
    }
    clock.observe(files, clock.system_now().min(expires))?;

    Ok(Verified {
        targets,
        configs,
        skipped,
        versions: new,
        expires,
        targets_url: cfg.targets_url.clone(),
    })
}
