//! The updater's unit files pass `systemd-analyze verify`, stay hardened
//! (`systemd-analyze security --offline=true`), and keep the properties the
//! design relies on.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_updater");
const UNITS: [&str; 3] = ["updater.service", "updater.timer", "updater-health.service"];

fn unit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd")
}

fn text(name: &str) -> String {
    std::fs::read_to_string(unit_dir().join(name)).unwrap()
}

/// Copies of the units pointing at the binary under test.
fn units_under_test(dir: &Path) -> Vec<PathBuf> {
    UNITS
        .iter()
        .map(|n| {
            let out = dir.join(n);
            std::fs::write(&out, text(n).replace("/usr/bin/updater", BIN)).unwrap();
            out
        })
        .collect()
}

#[test]
fn units_pass_systemd_analyze_verify() {
    let d = tempfile::tempdir().unwrap();
    let units = units_under_test(d.path());
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .current_dir(d.path())
        .output()
        .expect("systemd-analyze must be installed (scripts/test installs systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    let own: Vec<&str> = stderr.lines().filter(|l| l.contains("updater")).collect();
    assert!(
        own.is_empty(),
        "verify warnings about the units:\n{}",
        own.join("\n")
    );
}

#[test]
fn services_are_hardened() {
    let d = tempfile::tempdir().unwrap();
    units_under_test(d.path());
    for unit in ["updater.service", "updater-health.service"] {
        // --threshold is in tenths: 30 = exposure 3.0.
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--threshold=30"])
            .arg(d.path().join(unit))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .find(|l| l.contains("Overall exposure level"))
            .unwrap_or_else(|| panic!("no exposure line:\n{stdout}"));
        eprintln!("{unit}: {line}");
        assert!(out.status.success(), "{unit} exposure above 3.0:\n{stdout}");
    }
}

#[test]
fn units_keep_the_properties_the_design_needs() {
    let svc = text("updater.service");
    assert!(svc.contains("DevicePolicy=closed"));
    assert!(svc.contains("DeviceAllow=/dev/disk/by-partlabel/gateway-a rw"));
    assert!(svc.contains("DeviceAllow=/dev/disk/by-partlabel/gateway-b rw"));
    let timer = text("updater.timer");
    assert!(timer.contains("RandomizedDelaySec="));
    assert!(timer.contains("OnCalendar="));
    let health = text("updater-health.service");
    assert!(health.contains("Before=boot-complete.target"));
    assert!(health.contains("RequiredBy=boot-complete.target"));
    assert!(health.contains("Type=oneshot"));
    assert!(health.contains("ExecStart=/usr/bin/updater health"));
}
