//! Shared by the fhir-map tests: the crate's synthetic corpus
//! (`tests/corpus`, written by its `generate.py`, no real PHI), and the
//! independent validators in `tests/peers` run by the test Python.

use std::path::{Path, PathBuf};
use std::process::Command;

pub use test_support::paths::hl7_corpus_files as shared_corpus;

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Our own synthetic messages (`tests/corpus/*.hl7`), sorted.
pub fn own_corpus() -> Vec<PathBuf> {
    test_support::paths::files_with_extension(&crate_dir().join("tests/corpus"), "hl7")
}

/// The bytes of one file of our own corpus.
pub fn own(name: &str) -> Vec<u8> {
    let path = crate_dir().join("tests/corpus").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
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
