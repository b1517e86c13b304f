//! Shared by the mapping tests: the corpora, the two contexts (PUT and
//! conditional), Bundles written to a directory, and the independent
//! validators (`fhir.resources` in Python, FHIRPath invariants in Node).
//!
//! A validator that is not installed fails the test under `CI=true`, naming
//! what to install; elsewhere the test says SKIPPED loudly and returns.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use fhir_map::{MapContext, UpdateMode};
use hl7::Message;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn hl7_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "hl7"))
        .collect();
    v.sort();
    v
}

/// Our synthetic corpus (gateway/tests/corpus/fhir).
pub fn own_corpus() -> Vec<PathBuf> {
    hl7_files(&repo_root().join("gateway/tests/corpus/fhir"))
}

/// FHIR-Converter's samples beside the repository (139 files).
pub fn shared_corpus() -> Vec<PathBuf> {
    hl7_files(&repo_root().join("../shared/corpus/hl7v2-fhir-converter"))
}

pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One file of the own corpus by name.
pub fn own(name: &str) -> Vec<u8> {
    read(&repo_root().join("gateway/tests/corpus/fhir").join(name))
}

/// PUT mode (no default offset) and conditional mode (with -05:00).
pub fn contexts() -> Vec<(&'static str, MapContext)> {
    let put = MapContext::new("acme");
    let mut conditional = MapContext::new("acme");
    conditional.update_mode = UpdateMode::Conditional;
    conditional.default_utc_offset = Some("-05:00".into());
    vec![("put", put), ("conditional", conditional)]
}

/// Translates `raw` or panics with the file name and the error.
pub fn bundle(raw: &[u8], ctx: &MapContext) -> serde_json::Value {
    let msg = Message::parse(raw).unwrap_or_else(|e| panic!("parse: {e}"));
    fhir_map::translate(&msg, ctx).unwrap_or_else(|e| panic!("translate: {e}"))
}

/// The resources of a Bundle with the given type.
pub fn resources<'b>(bundle: &'b serde_json::Value, rtype: &str) -> Vec<&'b serde_json::Value> {
    bundle["entry"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| &e["resource"])
                .filter(|r| r["resourceType"] == rtype)
                .collect()
        })
        .unwrap_or_default()
}

/// The first entry (fullUrl, resource, request) of a resource type.
pub fn entry<'b>(bundle: &'b serde_json::Value, rtype: &str) -> &'b serde_json::Value {
    bundle["entry"]
        .as_array()
        .and_then(|entries| {
            entries
                .iter()
                .find(|e| e["resource"]["resourceType"] == rtype)
        })
        .unwrap_or_else(|| panic!("no {rtype} entry"))
}

/// [`fhir_map::translate_with`] of an own-corpus file.
pub fn translation(
    name: &str,
    ctx: &MapContext,
    options: &fhir_map::TranslateOptions<'_>,
) -> fhir_map::Translation {
    let raw = own(name);
    let msg = Message::parse(&raw).unwrap_or_else(|e| panic!("{name}: {e}"));
    fhir_map::translate_with(&msg, ctx, options).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Writes the Bundle of every file to `dir/<stem>.json`; panics on any
/// file that does not translate.
pub fn write_bundles(files: &[PathBuf], ctx: &MapContext, dir: &Path) -> usize {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    for f in files {
        let raw = read(f);
        let msg = Message::parse(&raw).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let b = fhir_map::translate(&msg, ctx).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let name = f.file_stem().unwrap().to_string_lossy().into_owned();
        std::fs::write(
            dir.join(format!("{name}.json")),
            serde_json::to_vec_pretty(&b).unwrap(),
        )
        .unwrap();
    }
    files.len()
}

/// A scratch directory under the target dir (no tempfile dependency).
pub fn scratch(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// Missing tool: a failure under CI, a loud skip elsewhere (`None`).
fn missing(what: &str, install: &str) -> Option<Command> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(!ci, "{what} is missing: {install}");
    eprintln!("SKIPPED: {what} is missing: {install}");
    None
}

/// The Python of the test venv with `fhir.resources`.
pub fn fhir_resources_validator() -> Option<Command> {
    let python = std::env::var("GATEWAY_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".venv/bin/python"));
    if !python.exists() {
        return missing(
            "the Python test venv",
            "run scripts/test (python3 -m venv .venv; .venv/bin/pip install -r gateway/tests/peers/requirements.txt) or set GATEWAY_TEST_PYTHON",
        );
    }
    let mut c = Command::new(python);
    c.arg(repo_root().join("gateway/tests/peers/validate_fhir.py"));
    Some(c)
}

/// Node with the invariant validator's packages installed.
pub fn invariant_validator() -> Option<Command> {
    let dir = repo_root().join("gateway/tests/peers/fhir-invariants");
    let node_ok = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !node_ok {
        return missing("node (>= 20.19)", "apt-get install nodejs npm");
    }
    if !dir.join("node_modules/fhirpath").exists()
        || !dir.join("node_modules/@medplum/core").exists()
    {
        return missing(
            "the invariant validator's npm packages",
            "npm ci --prefix gateway/tests/peers/fhir-invariants",
        );
    }
    let mut c = Command::new("node");
    c.arg(dir.join("validate.mjs"));
    Some(c)
}

/// Runs a validator over `dir`; returns its report, panics with it when it
/// fails or when fewer than `expected` files passed.
pub fn validate(mut validator: Command, dir: &Path, expected: usize) -> String {
    let out = validator.arg(dir).output().expect("run the validator");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "validator failed on {}:\n{report}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report.contains(&format!("{expected} passed, 0 failed")),
        "{report}"
    );
    report
}
