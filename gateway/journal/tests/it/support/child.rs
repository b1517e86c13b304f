//! The re-exec child, `tests/bin/journal_test_child.rs`: a `[[bin]]` of
//! this crate (built for its tests, started through
//! `CARGO_BIN_EXE_journal-test-child`), not a `#[test]`, so a test run
//! counts only real tests. Its roles are documented in that file.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The child's executable.
pub const EXE: &str = env!("CARGO_BIN_EXE_journal-test-child");

/// Runs the `crash` role on a fresh journal in `root/j` (appends 1..=n,
/// one delivery, one quarantine) and SIGKILLs it once all of them are
/// acknowledged: the journal is never closed, so no checkpoint runs.
pub fn crash(root: &Path, n: u64) {
    let mut child = Command::new(EXE)
        .arg("crash")
        .arg(root)
        .arg(n.to_string())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {EXE}: {e}"));
    let acked = root.join("acked");
    test_support::wait::until(
        "the crash child's acknowledgements",
        Duration::from_secs(60),
        || {
            if let Ok(Some(st)) = child.try_wait() {
                panic!("the crash child exited early: {st}");
            }
            acked.exists()
        },
        String::new,
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}
