//! The `updater` binary as an MSP and a box run it: a repository made with
//! `updater repo ...`, and a box (two file slots, the simulated firmware, a
//! state directory, an `updater.toml`) to run `install`, `health` and
//! `status` on.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use updater::boot::sim::SimFirmware;
use updater::boot::SlotId;
use updater::durable::RealFiles;
use updater::state::{SlotInfo, State, Store};

pub const BIN: &str = env!("CARGO_BIN_EXE_updater");

pub fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    eprintln!(
        "$ updater {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn ok(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = run(args, env);
    assert!(out.status.success(), "updater {args:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// An MSP's repository made with `updater repo init ARGS`: keys and root in
/// `work`, published copies in `out`.
pub struct MspRepo {
    pub dir: tempfile::TempDir,
    pub work: PathBuf,
    pub out: PathBuf,
}

impl MspRepo {
    pub fn init(args: &[&str]) -> MspRepo {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        let out = dir.path().join("pub");
        ok(&[&["repo", "init", p(&work)], args].concat(), &[]);
        MspRepo { dir, work, out }
    }

    /// A box that trusts this repository's root and runs `v1`; its servers
    /// are unreachable (nothing listens on port 9 of loopback).
    pub fn offline_box(&self, v1: &[u8]) -> Box_ {
        make_box(
            &self.work.join("root.json"),
            v1,
            "http://127.0.0.1:9/metadata/",
            "http://127.0.0.1:9/targets/",
        )
    }

    /// `repo add` the image `bytes` as file `name` (8 KiB chunks, more
    /// `add` ARGS), then `repo sign` and `repo publish` to `out`.
    pub fn publish(&self, name: &str, bytes: &[u8], version: &str, epoch: &str, args: &[&str]) {
        let img = self.dir.path().join(name);
        std::fs::write(&img, bytes).unwrap();
        let add = [
            "repo",
            "add",
            p(&self.work),
            p(&img),
            "--version",
            version,
            "--epoch",
            epoch,
            "--chunk-size",
            "8192",
        ];
        ok(&[&add[..], args].concat(), &[]);
        ok(&["repo", "sign", p(&self.work)], &[]);
        ok(&["repo", "publish", p(&self.work), p(&self.out)], &[]);
    }
}

pub struct Box_ {
    pub dir: tempfile::TempDir,
    pub config: std::path::PathBuf,
}

pub fn make_box(root: &Path, v1: &[u8], metadata_url: &str, targets_url: &str) -> Box_ {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut a = v1.to_vec();
    a.resize(256 * 1024, 0);
    std::fs::write(d.join("slot-a"), &a).unwrap();
    std::fs::write(d.join("slot-b"), vec![0u8; 256 * 1024]).unwrap();
    std::fs::copy(root, d.join("root.json")).unwrap();
    std::fs::create_dir_all(d.join("state")).unwrap();
    SimFirmware::provision(&d.join("fw.json"), Arc::new(RealFiles), SlotId::A).unwrap();
    Store::new(&d.join("state"), &RealFiles)
        .save(&State {
            epoch_floor: 1,
            a: SlotInfo {
                version: Some("1.0".into()),
                epoch: Some(1),
                sha256: None,
                length: None,
                verified: true,
            },
            ..Default::default()
        })
        .unwrap();
    let config = d.join("updater.toml");
    std::fs::write(
        &config,
        format!(
            r#"state_dir = "state"
trusted_root = "root.json"
metadata_url = "{metadata_url}"
targets_url = "{targets_url}"
[slots]
a = "slot-a"
b = "slot-b"
[boot]
kind = "sim"
sim_env = "fw.json"
[download]
backoff_base_ms = 1
backoff_cap_ms = 10
max_attempts = 3
[health]
deadline_secs = 5
interval_secs = 1
units = []
commands = [["true"]]
reboot_command = ["true"]
"#
        ),
    )
    .unwrap();
    Box_ { dir, config }
}
