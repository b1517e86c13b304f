//! `systemd-analyze` on unit files, for the gateway's and the updater's
//! unit tests. Callers check `require_tool("systemd-analyze", "systemd")`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `systemd-analyze verify` of `units`, run in `dir`: it must succeed.
/// Returns what it wrote to stderr (warnings), for the caller to filter.
pub fn verify(dir: &Path, units: &[PathBuf]) -> String {
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(units)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("run systemd-analyze: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    stderr
}

/// What `systemd-analyze security --offline=true` says of a unit.
pub struct Exposure {
    /// The overall exposure level (0.0 best, 10.0 worst).
    pub level: f64,
    /// At most the `max` asked for (systemd's own `--threshold` verdict).
    pub within: bool,
    /// The whole report, for the failure message.
    pub report: String,
}

/// The exposure of `unit`, judged against `max` (e.g. 2.0).
pub fn exposure(unit: &Path, max: f64) -> Exposure {
    // --threshold is in tenths: 20 = exposure 2.0.
    let threshold = format!("--threshold={}", (max * 10.0).round() as u32);
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", &threshold])
        .arg(unit)
        .output()
        .unwrap_or_else(|e| panic!("run systemd-analyze: {e}"));
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = report
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure line:\n{report}"));
    let level = line
        .split(':')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unreadable exposure line: {line}"));
    Exposure {
        level,
        within: out.status.success(),
        report,
    }
}
