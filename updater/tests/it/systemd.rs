//! The updater's unit files pass `systemd-analyze verify`, stay hardened
//! (`systemd-analyze security --offline=true`), and keep the properties the
//! design relies on.

use std::path::{Path, PathBuf};

use test_support::systemd;

use crate::support::tools::require_tool;

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
    if !require_tool("systemd-analyze", "systemd") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let units = units_under_test(d.path());
    let warnings = systemd::verify(d.path(), &units);
    let own: Vec<&str> = warnings.lines().filter(|l| l.contains("updater")).collect();
    assert!(
        own.is_empty(),
        "verify warnings about the units:\n{}",
        own.join("\n")
    );
}

#[test]
fn services_are_hardened() {
    if !require_tool("systemd-analyze", "systemd") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    units_under_test(d.path());
    for unit in ["updater.service", "updater-health.service"] {
        let e = systemd::exposure(&d.path().join(unit), 3.0);
        eprintln!("{unit}: exposure {}", e.level);
        assert!(e.within, "{unit} exposure above 3.0:\n{}", e.report);
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
    // `gateway status` reaches a DynamicUser gateway's 0600 admin socket
    // only with it (the qemu scenario 3 failure without it).
    assert!(health.contains("CapabilityBoundingSet=CAP_DAC_OVERRIDE\n"));
}
