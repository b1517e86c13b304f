//! MSP tooling: `updater repo init|add|add-config|sign|publish|rotate-root`.
//!
//! A repository work directory holds:
//!
//! ```text
//! DIR/repo.json            threshold and expiry periods
//! DIR/keys/ROLE-N.pk8      ed25519 private keys (PKCS#8 DER, mode 0600); keep
//!                          root keys offline and copy them in only to rotate
//! DIR/roots/N.root.json    every root version (clients walk the chain)
//! DIR/targets.d/NAME.json  signed-to-be target entries (`repo add`)
//! DIR/images/NAME          the images themselves
//! DIR/versions.json        the last signed versions of each role
//! DIR/staged/              `repo sign` output: metadata/ and targets/
//! ```
//!
//! `repo publish DIR OUT` copies the staged repository to OUT (any static
//! HTTPS server or bucket serves it): targets first, then versioned
//! metadata, `timestamp.json` last, each by temp file + rename, so a client
//! never sees metadata that names files not yet there.
//!
//! Signing uses tough's editor; metadata uses consistent snapshots
//! (`N.snapshot.json`, `N.targets.json`, `<sha256>.<image>`).

use crate::hash::{sha256, to_hex, Hasher};
use crate::target::{ImageMeta, Wave, CUSTOM_KEY, MAX_CHUNK_SIZE};
use crate::{Error, Result};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use tough::editor::signed::SignedRole;
use tough::editor::RepositoryEditor;
use tough::key_source::{KeySource, LocalKeySource};
use tough::schema::{Hashes, KeyHolder, RoleKeys, RoleType, Root, Target};
use tough::sign::{parse_keypair, Sign};

const ROLES: [RoleType; 4] = [
    RoleType::Root,
    RoleType::Targets,
    RoleType::Snapshot,
    RoleType::Timestamp,
];

/// Settings kept in `DIR/repo.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepoSettings {
    pub threshold: u64,
    pub keys_per_role: u64,
    pub root_expires_days: i64,
    pub targets_expires_days: i64,
    pub snapshot_expires_days: i64,
    pub timestamp_expires_days: i64,
}

impl Default for RepoSettings {
    fn default() -> Self {
        RepoSettings {
            threshold: 1,
            keys_per_role: 1,
            root_expires_days: 365 * 5,
            targets_expires_days: 90,
            snapshot_expires_days: 90,
            timestamp_expires_days: 7,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SignedVersions {
    targets: u64,
    snapshot: u64,
    timestamp: u64,
}

fn block_on<F: std::future::Future>(dir: &Path, f: F) -> Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::repo(dir, format!("cannot start the async runtime: {e}")))?;
    Ok(rt.block_on(f))
}

fn io<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |e| Error::io(path, action, e)
}

fn role_name(r: RoleType) -> &'static str {
    match r {
        RoleType::Root => "root",
        RoleType::Targets => "targets",
        RoleType::Snapshot => "snapshot",
        RoleType::Timestamp => "timestamp",
        _ => "other",
    }
}

fn days_from(now: Timestamp, days: i64) -> Result<Timestamp> {
    Timestamp::from_second(now.as_second().saturating_add(days.saturating_mul(86_400)))
        .map_err(|e| Error::State(format!("expiry out of range: {e}")))
}

fn nz(n: u64) -> NonZeroU64 {
    NonZeroU64::new(n).unwrap_or(NonZeroU64::MIN)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path, "create key file"))?;
    f.write_all(bytes).map_err(io(path, "write key file"))?;
    f.sync_all().map_err(io(path, "fsync key file"))
}

/// Generates `n` ed25519 keys for `role` in `keys_dir`; returns (keyid, key, path).
fn generate_keys(
    keys_dir: &Path,
    role: RoleType,
    n: u64,
    tag: &str,
) -> Result<
    Vec<(
        tough::schema::decoded::Decoded<tough::schema::decoded::Hex>,
        tough::schema::key::Key,
        PathBuf,
    )>,
> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let mut out = Vec::new();
    for i in 1..=n {
        let doc = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| Error::repo(keys_dir, "ed25519 key generation failed"))?;
        let path = keys_dir.join(format!("{}-{tag}{i}.pk8", role_name(role)));
        write_private(&path, doc.as_ref())?;
        let key = parse_keypair(doc.as_ref())
            .map_err(|e| Error::repo(keys_dir, format!("generated key does not parse: {e}")))?
            .tuf_key();
        let id = key
            .key_id()
            .map_err(|e| Error::repo(keys_dir, format!("key id: {e}")))?;
        out.push((id, key, path));
    }
    Ok(out)
}

/// Every key file in `dir/keys`.
fn key_sources(dir: &Path) -> Result<Vec<Box<dyn KeySource>>> {
    let kd = dir.join("keys");
    let mut out: Vec<Box<dyn KeySource>> = Vec::new();
    let mut paths: Vec<PathBuf> = fs::read_dir(&kd)
        .map_err(io(&kd, "list keys"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pk8"))
        .collect();
    paths.sort();
    for path in paths {
        out.push(Box::new(LocalKeySource { path }));
    }
    Ok(out)
}

fn load_settings(dir: &Path) -> Result<RepoSettings> {
    let p = dir.join("repo.json");
    let b = fs::read(&p).map_err(|e| {
        Error::repo(
            dir,
            format!(
                "{}: {e} (create the repository with `updater repo init`)",
                p.display()
            ),
        )
    })?;
    serde_json::from_slice(&b).map_err(|e| Error::repo(dir, format!("{}: {e}", p.display())))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::durable::RealFiles.write_atomic_plain(path, bytes)
}

impl crate::durable::RealFiles {
    fn write_atomic_plain(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        use crate::durable::Files;
        if let Some(p) = path.parent() {
            fs::create_dir_all(p).map_err(io(p, "create directory"))?;
        }
        self.write_atomic(path, bytes)
    }
}

/// `repo init`: keys for every role and a signed root (version 1).
pub fn init(dir: &Path, settings: &RepoSettings, now: Timestamp) -> Result<()> {
    if settings.threshold == 0 || settings.threshold > settings.keys_per_role {
        return Err(Error::repo(
            dir,
            format!(
                "threshold {} must be between 1 and the number of keys per role ({})",
                settings.threshold, settings.keys_per_role
            ),
        ));
    }
    if dir.join("repo.json").exists() {
        return Err(Error::repo(dir, "already initialised (repo.json exists)"));
    }
    let kd = dir.join("keys");
    fs::create_dir_all(&kd).map_err(io(&kd, "create"))?;
    fs::set_permissions(&kd, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .map_err(io(&kd, "chmod"))?;
    let mut keys = HashMap::new();
    let mut roles = HashMap::new();
    for role in ROLES {
        let generated = generate_keys(&kd, role, settings.keys_per_role, "")?;
        let mut ids = Vec::new();
        for (id, key, _) in generated {
            ids.push(id.clone());
            keys.insert(id, key);
        }
        roles.insert(
            role,
            RoleKeys {
                keyids: ids,
                threshold: nz(settings.threshold),
                _extra: HashMap::new(),
            },
        );
    }
    let root = Root {
        spec_version: "1.0.0".into(),
        consistent_snapshot: true,
        version: nz(1),
        expires: days_from(now, settings.root_expires_days)?,
        keys,
        roles,
        _extra: HashMap::new(),
    };
    let sources = key_sources(dir)?;
    let signed = block_on(dir, async {
        SignedRole::new(
            root.clone(),
            &KeyHolder::Root(root),
            &sources,
            &aws_lc_rs::rand::SystemRandom::new(),
        )
        .await
    })?
    .map_err(|e| Error::repo(dir, format!("signing root: {e}")))?;
    write_file(&dir.join("roots/1.root.json"), signed.buffer())?;
    write_file(&dir.join("root.json"), signed.buffer())?;
    let s = serde_json::to_vec_pretty(settings).map_err(|e| Error::repo(dir, e.to_string()))?;
    write_file(&dir.join("repo.json"), &s)?;
    fs::create_dir_all(dir.join("targets.d")).map_err(io(dir, "create targets.d"))?;
    fs::create_dir_all(dir.join("images")).map_err(io(dir, "create images"))?;
    Ok(())
}

/// What `repo add` records about an image.
#[derive(Debug, Clone)]
pub struct AddOptions {
    pub name: String,
    pub version: String,
    pub epoch: u64,
    pub chunk_size: u64,
    pub recall: bool,
    pub waves: Vec<Wave>,
    pub published: Timestamp,
}

/// `repo add`: hashes the image (whole and per chunk) and stages a target.
pub fn add(dir: &Path, image: &Path, opts: &AddOptions) -> Result<()> {
    load_settings(dir)?;
    tough::TargetName::new(opts.name.clone())
        .map_err(|e| Error::repo(dir, format!("target name {:?}: {e}", opts.name)))?;
    if !crate::target::valid_name(&opts.name) {
        return Err(Error::repo(
            dir,
            format!(
                "target name {:?}: use 1-200 characters of A-Z a-z 0-9 . _ - (not starting with '.')",
                opts.name
            ),
        ));
    }
    let mut f = fs::File::open(image).map_err(io(image, "open image"))?;
    let mut whole = Hasher::default();
    let mut chunks = Vec::new();
    let mut buf = vec![0u8; opts.chunk_size as usize];
    let mut length = 0u64;
    loop {
        let mut n = 0;
        while n < buf.len() {
            let r = f.read(&mut buf[n..]).map_err(io(image, "read image"))?;
            if r == 0 {
                break;
            }
            n += r;
        }
        if n == 0 {
            break;
        }
        whole.update(&buf[..n]);
        chunks.push(to_hex(&sha256(&buf[..n])));
        length += n as u64;
        if n < buf.len() {
            break;
        }
    }
    let digest = whole.finish();
    let meta = ImageMeta {
        version: opts.version.clone(),
        epoch: opts.epoch,
        chunk_size: opts.chunk_size,
        chunks,
        recall: opts.recall,
        published: opts.published,
        waves: opts.waves.clone(),
    };
    // Validate exactly as a box will.
    crate::target::UpdateTarget::from_meta(&opts.name, length, digest, meta.clone())
        .map_err(|e| Error::repo(dir, format!("{e} (chunk size at most {MAX_CHUNK_SIZE})")))?;
    let mut custom = HashMap::new();
    custom.insert(
        CUSTOM_KEY.to_string(),
        serde_json::to_value(&meta).map_err(|e| Error::repo(dir, e.to_string()))?,
    );
    let target = Target {
        length,
        hashes: Hashes {
            sha256: digest.to_vec().into(),
            _extra: HashMap::new(),
        },
        custom,
        _extra: HashMap::new(),
    };
    let dest = dir.join("images").join(&opts.name);
    fs::create_dir_all(dir.join("images")).map_err(io(dir, "create images"))?;
    fs::copy(image, &dest).map_err(io(&dest, "copy image"))?;
    let json = serde_json::to_vec_pretty(&target).map_err(|e| Error::repo(dir, e.to_string()))?;
    write_file(
        &dir.join("targets.d").join(format!("{}.json", opts.name)),
        &json,
    )
}

/// What `repo add-config` records: the config version and whom it is for.
#[derive(Debug, Clone)]
pub struct ConfigOptions {
    pub version: u64,
    pub scope: crate::config_target::Scope,
    pub published: Timestamp,
}

/// The bundle for a directory holding `gateway.toml` and, optionally,
/// `credentials/NAME` files.
pub fn config_bundle(src: &Path) -> Result<Vec<u8>> {
    let toml_path = src.join("gateway.toml");
    let gateway_toml = fs::read_to_string(&toml_path).map_err(io(&toml_path, "read"))?;
    let mut credentials = std::collections::BTreeMap::new();
    let cd = src.join("credentials");
    if cd.is_dir() {
        for e in fs::read_dir(&cd).map_err(io(&cd, "list"))? {
            let p = e.map_err(io(&cd, "list"))?.path();
            if !p.is_file() {
                continue;
            }
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let bytes = fs::read(&p).map_err(io(&p, "read"))?;
            credentials.insert(name, hex::encode(bytes));
        }
    }
    let bundle = crate::config_target::Bundle {
        gateway_toml,
        credentials,
    };
    let bytes = serde_json::to_vec_pretty(&bundle).map_err(|e| Error::repo(src, e.to_string()))?;
    // Exactly what a box will accept.
    crate::config_target::Bundle::parse(&bytes).map_err(|e| Error::repo(src, e.to_string()))?;
    Ok(bytes)
}

/// `repo add-config`: stages a config target for a box or a group from a
/// directory (see [`config_bundle`]); it replaces that scope's earlier one.
pub fn add_config(dir: &Path, src: &Path, opts: &ConfigOptions) -> Result<String> {
    use crate::config_target::{ConfigMeta, ConfigTarget, Scope, CONFIG_KEY};
    load_settings(dir)?;
    let bytes = config_bundle(src)?;
    let name = opts.scope.target_name();
    let (box_id, group) = match &opts.scope {
        Scope::Box(b) => (Some(b.clone()), None),
        Scope::Group(g) => (None, Some(g.clone())),
    };
    let meta = ConfigMeta {
        config_version: opts.version,
        box_id,
        group,
        published: opts.published,
    };
    let digest = sha256(&bytes);
    ConfigTarget::from_meta(&name, bytes.len() as u64, digest, meta.clone())
        .map_err(|e| Error::repo(dir, e.to_string()))?;
    let mut custom = HashMap::new();
    custom.insert(
        CONFIG_KEY.to_string(),
        serde_json::to_value(&meta).map_err(|e| Error::repo(dir, e.to_string()))?,
    );
    let target = Target {
        length: bytes.len() as u64,
        hashes: Hashes {
            sha256: digest.to_vec().into(),
            _extra: HashMap::new(),
        },
        custom,
        _extra: HashMap::new(),
    };
    write_file(&dir.join("images").join(&name), &bytes)?;
    let json = serde_json::to_vec_pretty(&target).map_err(|e| Error::repo(dir, e.to_string()))?;
    write_file(&dir.join("targets.d").join(format!("{name}.json")), &json)?;
    Ok(name)
}

/// Overrides for tests and special cases (`repo sign`).
#[derive(Debug, Clone, Default)]
pub struct SignOptions {
    /// Signing time (expiries are counted from it); default now.
    pub now: Option<Timestamp>,
    /// Explicit expiry for timestamp.json.
    pub timestamp_expires: Option<Timestamp>,
}

/// `repo sign`: signs targets, snapshot and timestamp with the keys present
/// in `DIR/keys` (at least the threshold of each role), into `DIR/staged`.
pub fn sign(dir: &Path, opts: &SignOptions) -> Result<()> {
    let settings = load_settings(dir)?;
    let now = opts.now.unwrap_or_else(Timestamp::now);
    let vpath = dir.join("versions.json");
    let prev: SignedVersions = match fs::read(&vpath) {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| Error::repo(dir, format!("{}: {e}", vpath.display())))?,
        Err(_) => SignedVersions::default(),
    };
    let next = SignedVersions {
        targets: prev.targets + 1,
        snapshot: prev.snapshot + 1,
        timestamp: prev.timestamp + 1,
    };
    let mut entries: Vec<(String, Target)> = Vec::new();
    let td = dir.join("targets.d");
    for e in fs::read_dir(&td).map_err(io(&td, "list"))? {
        let p = e.map_err(io(&td, "list"))?.path();
        let Some(name) = p
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        let b = fs::read(&p).map_err(io(&p, "read"))?;
        let t: Target = serde_json::from_slice(&b)
            .map_err(|e| Error::repo(dir, format!("{}: {e}", p.display())))?;
        entries.push((name.to_string(), t));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let sources = key_sources(dir)?;
    let staged = dir.join("staged");
    let meta_out = staged.join("metadata");
    let targets_out = staged.join("targets");
    let root_path = dir.join("root.json");
    let signed = block_on(dir, async {
        let mut ed = RepositoryEditor::new(&root_path).await?;
        for (name, t) in &entries {
            ed.add_target(name.as_str(), t.clone())?;
        }
        ed.targets_version(nz(next.targets))?
            .targets_expires(days_from(now, settings.targets_expires_days).unwrap_or(now))?
            .snapshot_version(nz(next.snapshot))
            .snapshot_expires(days_from(now, settings.snapshot_expires_days).unwrap_or(now))
            .timestamp_version(nz(next.timestamp))
            .timestamp_expires(
                opts.timestamp_expires
                    .unwrap_or(days_from(now, settings.timestamp_expires_days).unwrap_or(now)),
            );
        ed.sign(&sources).await
    })?
    .map_err(|e| {
        Error::repo(
            dir,
            format!(
                "signing failed: {e} (are at least {} keys of each role in {}?)",
                settings.threshold,
                dir.join("keys").display()
            ),
        )
    })?;
    let _ = fs::remove_dir_all(&staged);
    fs::create_dir_all(&meta_out).map_err(io(&meta_out, "create"))?;
    fs::create_dir_all(&targets_out).map_err(io(&targets_out, "create"))?;
    block_on(dir, signed.write(&meta_out))?
        .map_err(|e| Error::repo(dir, format!("writing metadata: {e}")))?;
    // Every root version, for clients that walk the chain.
    let rd = dir.join("roots");
    for e in fs::read_dir(&rd).map_err(io(&rd, "list"))? {
        let p = e.map_err(io(&rd, "list"))?.path();
        if let Some(n) = p.file_name() {
            fs::copy(&p, meta_out.join(n)).map_err(io(&p, "copy root"))?;
        }
    }
    for (name, t) in &entries {
        let src = dir.join("images").join(name);
        let dst = targets_out.join(format!(
            "{}.{name}",
            hex::encode(t.hashes.sha256.as_ref() as &[u8])
        ));
        if fs::hard_link(&src, &dst).is_err() {
            fs::copy(&src, &dst).map_err(io(&src, "copy image"))?;
        }
    }
    let v = serde_json::to_vec_pretty(&next).map_err(|e| Error::repo(dir, e.to_string()))?;
    write_file(&vpath, &v)
}

/// `repo publish`: copies `DIR/staged` into `out` in a client-safe order.
pub fn publish(dir: &Path, out: &Path) -> Result<()> {
    let staged = dir.join("staged");
    if !staged.join("metadata/timestamp.json").exists() {
        return Err(Error::repo(
            dir,
            "nothing staged: run `updater repo sign` first",
        ));
    }
    let copy_all = |sub: &str, last: Option<&str>| -> Result<()> {
        let from = staged.join(sub);
        let to = out.join(sub);
        fs::create_dir_all(&to).map_err(io(&to, "create"))?;
        let mut names: Vec<_> = fs::read_dir(&from)
            .map_err(io(&from, "list"))?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        names.sort();
        if let Some(l) = last {
            names.retain(|n| n != l);
            names.push(l.into());
        }
        for n in names {
            let src = from.join(&n);
            let dst = to.join(&n);
            if sub == "targets" && dst.exists() {
                continue; // content-addressed: same name, same bytes
            }
            let tmp = to.join(format!(".{}.tmp", n.to_string_lossy()));
            fs::copy(&src, &tmp).map_err(io(&src, "copy"))?;
            fs::rename(&tmp, &dst).map_err(io(&dst, "rename into place"))?;
        }
        Ok(())
    };
    copy_all("targets", None)?;
    copy_all("metadata", Some("timestamp.json"))
}

/// `repo rotate-root`: a new root (version + 1) with fresh keys for `roles`,
/// signed by the threshold of both the old and the new root keys. The old
/// keys of rotated roles move to `DIR/keys/retired/`. Run `repo sign` after.
pub fn rotate_root(dir: &Path, roles: &[&str], now: Timestamp) -> Result<()> {
    let roles_to_rotate = roles
        .iter()
        .map(|r| match *r {
            "root" => Ok(RoleType::Root),
            "targets" => Ok(RoleType::Targets),
            "snapshot" => Ok(RoleType::Snapshot),
            "timestamp" => Ok(RoleType::Timestamp),
            o => Err(Error::repo(
                dir,
                format!("unknown role {o:?}: expected root, targets, snapshot or timestamp"),
            )),
        })
        .collect::<Result<Vec<_>>>()?;
    let settings = load_settings(dir)?;
    let root_path = dir.join("root.json");
    let old: tough::schema::Signed<Root> =
        serde_json::from_slice(&fs::read(&root_path).map_err(io(&root_path, "read"))?)
            .map_err(|e| Error::repo(dir, format!("root.json: {e}")))?;
    let old_sources = key_sources(dir)?;
    let kd = dir.join("keys");
    let retired = kd.join("retired");
    fs::create_dir_all(&retired).map_err(io(&retired, "create"))?;
    let mut new = old.signed.clone();
    new.version = nz(old.signed.version.get() + 1);
    new.expires = days_from(now, settings.root_expires_days)?;
    let tag = format!("v{}-", new.version);
    let mut retired_paths = Vec::new();
    for role in &roles_to_rotate {
        let old_ids = new
            .roles
            .get(role)
            .map(|r| r.keyids.clone())
            .unwrap_or_default();
        for id in &old_ids {
            new.keys.remove(id);
        }
        let generated = generate_keys(&kd, *role, settings.keys_per_role, &tag)?;
        let mut ids = Vec::new();
        for (id, key, _) in generated {
            ids.push(id.clone());
            new.keys.insert(id, key);
        }
        new.roles.insert(
            *role,
            RoleKeys {
                keyids: ids,
                threshold: nz(settings.threshold),
                _extra: HashMap::new(),
            },
        );
        // Old key files of this role are retired after signing.
        for e in fs::read_dir(&kd).map_err(io(&kd, "list"))? {
            let p = e.map_err(io(&kd, "list"))?.path();
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if n.starts_with(&format!("{}-", role_name(*role))) && !n.contains(&tag) && p.is_file()
            {
                retired_paths.push(p);
            }
        }
    }
    let new_sources = key_sources(dir)?;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let signed = block_on(dir, async {
        let by_new = SignedRole::new(
            new.clone(),
            &KeyHolder::Root(new.clone()),
            &new_sources,
            &rng,
        )
        .await?;
        let by_old = SignedRole::new(
            new.clone(),
            &KeyHolder::Root(old.signed.clone()),
            &old_sources,
            &rng,
        )
        .await?;
        by_new.add_old_signatures(by_old.signed().signatures.clone())
    })?
    .map_err(|e| Error::repo(dir, format!("signing the new root: {e}")))?;
    // Both the old and the new root must accept it, as a client will check.
    old.signed
        .verify_role(signed.signed())
        .map_err(|e| Error::repo(dir, format!("new root lacks the old root's threshold: {e}")))?;
    new.verify_role(signed.signed())
        .map_err(|e| Error::repo(dir, format!("new root lacks its own threshold: {e}")))?;
    write_file(
        &dir.join(format!("roots/{}.root.json", new.version)),
        signed.buffer(),
    )?;
    write_file(&root_path, signed.buffer())?;
    for p in retired_paths {
        if let Some(n) = p.file_name() {
            fs::rename(&p, retired.join(n)).map_err(io(&p, "retire key"))?;
        }
    }
    Ok(())
}
