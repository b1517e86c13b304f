//! Where things are: the repository, and `../shared` beside it (DESIGN.md
//! and the third-party corpus, which is not in the repository).

use std::path::{Path, PathBuf};

/// The repository's root (the workspace directory).
pub fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    here.canonicalize().unwrap_or(here)
}

/// A folder of `../shared/corpus` beside the repository, e.g.
/// `hl7v2-fhir-converter`; fails the test if it is missing.
pub fn shared_corpus(name: &str) -> PathBuf {
    let dir = repo_root().join("../shared/corpus").join(name);
    assert!(
        dir.is_dir(),
        "the shared corpus {} must exist beside the repository (see ../shared/corpus/README.md)",
        dir.display()
    );
    dir
}

/// The HL7 v2 files (`*.hl7`) of the shared `hl7v2-fhir-converter`
/// corpus, sorted.
pub fn hl7_corpus_files() -> Vec<PathBuf> {
    files_with_extension(&shared_corpus("hl7v2-fhir-converter"), "hl7")
}

/// The files of `dir` (not below it) whose name ends in `.ext`, sorted.
pub fn files_with_extension(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|e| {
            e.unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .path()
        })
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}
