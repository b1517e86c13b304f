//! pyx12, the independent X12 validator, run by the test Python: its
//! `x12valid` verdict per file, with its known quirks left out.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The test Python with pyx12 (`None`, and a failure under `CI=true`,
/// without it; `gateway/tests/peers/requirements.txt` pins pyx12==4.0.0).
pub fn python() -> Option<PathBuf> {
    crate::python::python(&["pyx12.x12file", "pyx12.scripts.x12valid"])
}

/// pyx12's messages that are not findings about the file: its 999 writer
/// fails on an 835 without ST03 (which the 835 guide marks not used), and
/// its 999 map makes GS mandatory, so a TA1-only interchange (ISA, TA1,
/// IEA, as X12 defines it) gets this log line while still passing.
const PYX12_QUIRKS: &[&str] = &[
    "Failed to create 999 response",
    "Mandatory loop \"Functional Group Header\" (GS_LOOP) missing",
];

/// Runs `x12valid` on each file; returns, per file, the problems pyx12
/// reported (empty = valid: "OK" and no finding besides [`PYX12_QUIRKS`]).
pub fn x12valid(py: &Path, files: &[PathBuf]) -> Vec<(PathBuf, Vec<String>)> {
    let out = Command::new(py)
        .args(["-m", "pyx12.scripts.x12valid", "-q"])
        .args(files)
        .output()
        .expect("run pyx12 x12valid");
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    let mut results = Vec::new();
    let mut pending: Vec<String> = Vec::new();
    let mut verdicts = std::collections::HashMap::new();
    for line in text.lines() {
        let verdict = files.iter().find_map(|f| {
            let name = f.to_string_lossy();
            line.strip_prefix(&*name)
                .and_then(|rest| rest.strip_prefix(": "))
                .map(|v| (f.clone(), v.to_string()))
        });
        if let Some((f, v)) = verdict {
            let mut problems = std::mem::take(&mut pending);
            if v != "OK" {
                problems.push(format!("verdict {v}"));
            }
            verdicts.insert(f, problems);
        } else if line.contains(" ERROR ") && !PYX12_QUIRKS.iter().any(|q| line.contains(q)) {
            pending.push(line.to_string());
        }
    }
    for f in files {
        let problems = verdicts
            .remove(f)
            .unwrap_or_else(|| vec![format!("no verdict from x12valid; output:\n{text}")]);
        results.push((f.clone(), problems));
    }
    results
}
