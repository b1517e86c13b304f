//! Shared by the integration tests: the corpus and fixture files, and
//! pyx12 (the independent validator) run by the test Python.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The crate's directory.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every X12 file of the two corpus folders, sorted.
pub fn corpus_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in ["x12-imsweb", "x12-linuxforhealth"] {
        walk(&test_support::paths::shared_corpus(dir), &mut out);
    }
    out.sort();
    assert!(
        out.len() >= 70,
        "expected the X12 corpus (see ../shared/corpus/README.md), found {} files",
        out.len()
    );
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.file_name().is_some_and(|n| n != "LICENSE") {
            out.push(p);
        }
    }
}

/// The synthetic fixtures (ours, no PHI).
pub fn fixture(name: &str) -> PathBuf {
    crate_dir().join("tests/fixtures").join(name)
}

/// The test Python with pyx12 (`None`, and a failure under `CI=true`,
/// without it; `gateway/tests/peers/requirements.txt` pins pyx12==4.0.0).
pub fn python() -> Option<PathBuf> {
    test_support::python::python(&["pyx12.x12file", "pyx12.scripts.x12valid"])
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
