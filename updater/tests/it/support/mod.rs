//! Shared test fixtures: repositories built with the MSP tooling, a device
//! (two file-backed slots, simulated firmware, state), a loopback HTTP
//! server with injectable faults (`http`), and what a test needs from the
//! machine (`tools`).

pub mod cli;
pub mod http;
/// What a test needs from the machine (one definition for the workspace).
pub use test_support::need as tools;

use jiff::Timestamp;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use updater::boot::sim::SimFirmware;
use updater::boot::SlotId;
use updater::download::{Backoff, DownloadPolicy};
use updater::durable::{Files, RealFiles};
use updater::install::SlotPaths;
use updater::repo_tool::{self, AddOptions, RepoSettings, SignOptions};
use updater::state::{SlotInfo, State, Store};
use updater::target::UpdateTarget;
use updater::trust::{self, clock::TrustedClock, TrustConfig, Verified};
use url::Url;

pub const CHUNK: u64 = 8192;

/// Signing time of the fixtures; test clocks are set relative to it.
pub fn t0() -> Timestamp {
    "2031-03-01T00:00:00Z".parse().unwrap()
}

pub fn hours(t: Timestamp, h: i64) -> Timestamp {
    Timestamp::from_second(t.as_second() + h * 3600).unwrap()
}

/// Deterministic image bytes: `chunks` chunks, chunk i filled from (seed, i).
pub fn image(seeds: &[u8], tail: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, s) in seeds.iter().enumerate() {
        let mut x: u32 = (*s as u32) << 16 | i as u32 | 1;
        for _ in 0..CHUNK {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            out.push(x as u8);
        }
    }
    out.truncate(out.len() - tail.min(CHUNK as usize - 1));
    out
}

pub struct Repo {
    pub dir: tempfile::TempDir,
    pub work: PathBuf,
    pub out: PathBuf,
}

impl Repo {
    pub fn new(keys: u64, threshold: u64) -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        let out = dir.path().join("pub");
        repo_tool::init(
            &work,
            &RepoSettings {
                keys_per_role: keys,
                threshold,
                ..Default::default()
            },
            t0(),
        )
        .unwrap();
        Repo { dir, work, out }
    }

    pub fn add(&self, name: &str, bytes: &[u8], version: &str, epoch: u64) {
        self.add_with(name, bytes, version, epoch, false, vec![]);
    }

    pub fn add_with(
        &self,
        name: &str,
        bytes: &[u8],
        version: &str,
        epoch: u64,
        recall: bool,
        waves: Vec<updater::target::Wave>,
    ) {
        let p = self.dir.path().join(format!("{name}.src"));
        std::fs::write(&p, bytes).unwrap();
        repo_tool::add(
            &self.work,
            &p,
            &AddOptions {
                name: name.into(),
                version: version.into(),
                epoch,
                chunk_size: CHUNK,
                recall,
                waves,
                published: t0(),
            },
        )
        .unwrap();
    }

    pub fn sign_publish(&self) {
        self.sign_publish_with(SignOptions {
            now: Some(t0()),
            timestamp_expires: None,
        });
    }

    pub fn sign_publish_with(&self, o: SignOptions) {
        repo_tool::sign(&self.work, &o).unwrap();
        repo_tool::publish(&self.work, &self.out).unwrap();
    }

    pub fn root(&self) -> PathBuf {
        self.work.join("root.json")
    }
    pub fn metadata(&self) -> PathBuf {
        self.out.join("metadata")
    }
    pub fn file_urls(&self) -> (Url, Url) {
        (
            Url::from_directory_path(self.out.join("metadata")).unwrap(),
            Url::from_directory_path(self.out.join("targets")).unwrap(),
        )
    }
    /// Copies the published metadata (to replay it later).
    pub fn snapshot_metadata(&self, to: &Path) {
        copy_dir(&self.metadata(), to);
    }
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// A box: slot A runs `active` (committed), slot B is empty.
pub struct Device {
    /// Holds the slots, firmware and state; removed on drop.
    _dir: tempfile::TempDir,
    pub state_dir: PathBuf,
    pub slots: SlotPaths,
    pub fw_path: PathBuf,
    pub root: PathBuf,
}

pub fn sha(b: &[u8]) -> String {
    updater::hash::to_hex(&updater::hash::sha256(b))
}

impl Device {
    pub fn new(
        repo_root: &Path,
        active: &[u8],
        version: &str,
        epoch: u64,
        slot_size: u64,
    ) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        std::fs::create_dir_all(&state_dir).unwrap();
        let a = dir.path().join("slot-a.img");
        let b = dir.path().join("slot-b.img");
        let mut img = active.to_vec();
        img.resize(slot_size as usize, 0);
        std::fs::write(&a, &img).unwrap();
        std::fs::write(&b, vec![0xEEu8; slot_size as usize]).unwrap();
        let root = dir.path().join("root.json");
        std::fs::copy(repo_root, &root).unwrap();
        let fw_path = dir.path().join("firmware.json");
        SimFirmware::provision(&fw_path, Arc::new(RealFiles), SlotId::A).unwrap();
        let st = State {
            epoch_floor: epoch,
            a: SlotInfo {
                version: Some(version.into()),
                epoch: Some(epoch),
                sha256: Some(sha(active)),
                length: Some(active.len() as u64),
                verified: true,
            },
            ..Default::default()
        };
        Store::new(&state_dir, &RealFiles).save(&st).unwrap();
        Device {
            _dir: dir,
            state_dir,
            slots: SlotPaths { a, b },
            fw_path,
            root,
        }
    }

    pub fn firmware(&self) -> SimFirmware {
        SimFirmware::new(&self.fw_path, Arc::new(RealFiles))
    }
    pub fn firmware_with(&self, files: Arc<dyn Files>) -> SimFirmware {
        SimFirmware::new(&self.fw_path, files)
    }

    pub fn trust(&self, metadata: Url, targets: Url) -> TrustConfig {
        TrustConfig {
            shipped_root: self.root.clone(),
            metadata_url: metadata,
            targets_url: targets,
            state_dir: self.state_dir.clone(),
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
            extra_ca: None,
        }
    }

    pub fn clock(&self, at: Timestamp) -> TrustedClock {
        TrustedClock::load(&RealFiles, &self.state_dir)
            .unwrap()
            .with_system_time(at)
    }

    pub fn verify(&self, repo: &Repo, at: Timestamp) -> updater::Result<Verified> {
        let (m, t) = repo.file_urls();
        trust::load(&self.trust(m, t), &RealFiles, &mut self.clock(at))
    }

    pub fn state(&self) -> State {
        Store::new(&self.state_dir, &RealFiles).load().unwrap()
    }

    pub fn slot_bytes(&self, s: SlotId) -> Vec<u8> {
        std::fs::read(match s {
            SlotId::A => &self.slots.a,
            SlotId::B => &self.slots.b,
        })
        .unwrap()
    }

    /// True if slot `s` starts with exactly `img`.
    pub fn slot_holds(&self, s: SlotId, img: &[u8]) -> bool {
        let b = self.slot_bytes(s);
        b.len() >= img.len() && b[..img.len()] == *img
    }
}

pub fn fast_policy() -> DownloadPolicy {
    DownloadPolicy {
        backoff: Backoff {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(5),
            max_attempts: 4,
        },
        bandwidth_limit: None,
        sync_every: 3,
    }
}

pub fn target<'a>(v: &'a Verified, name: &str) -> &'a UpdateTarget {
    v.targets.iter().find(|t| t.name == name).unwrap()
}

pub fn quiet(_: &str) {}

/// Verifies the repository at `at` and installs `name` from its published
/// directory (steps 1–6).
pub fn install_from_dir(
    dev: &Device,
    repo: &Repo,
    name: &str,
    at: Timestamp,
) -> updater::Result<updater::install::Staged> {
    let v = dev.verify(repo, at)?;
    let t = target(&v, name).clone();
    let fw = dev.firmware();
    let ctx = dev.context(&fw, &RealFiles, &dev.slots, "boot-1");
    let mut src = updater::download::dir::DirSource {
        targets_dir: repo.out.join("targets"),
    };
    updater::install::install(&ctx, &t, &mut src, v.expires)
}

impl Device {
    pub fn context<'a>(
        &self,
        boot: &'a dyn updater::boot::BootControl,
        files: &'a dyn Files,
        slots: &'a dyn updater::install::SlotOpener,
        boot_id: &str,
    ) -> updater::install::Context<'a> {
        updater::install::Context {
            files,
            state_dir: self.state_dir.clone(),
            boot,
            slots,
            policy: fast_policy(),
            boot_id: boot_id.into(),
            log: &quiet,
            after_commit: vec![],
        }
    }

    /// The active slot still holds `img` and keeps boot priority; slot B
    /// cannot boot.
    pub fn assert_active_untouched(&self, img: &[u8]) {
        assert!(
            self.slot_holds(SlotId::A, img),
            "active slot A was modified"
        );
        let env = self.firmware().env().unwrap();
        assert_eq!(env.order[0], SlotId::A, "slot B got boot priority: {env:?}");
        assert!(!env.b.bootable, "slot B became bootable: {env:?}");
    }
}
