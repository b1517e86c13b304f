//! Shared by the integration tests: the synthetic fixtures; the corpus
//! and pyx12 (the independent validator) come from `test_support`.

use std::path::PathBuf;

pub use test_support::paths::x12_corpus_files as corpus_files;
pub use test_support::pyx12::{python, x12valid};

/// The crate's directory.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The synthetic fixtures (ours, no PHI).
pub fn fixture(name: &str) -> PathBuf {
    crate_dir().join("tests/fixtures").join(name)
}
