//! What a test needs from the machine (a tool, root, a kernel feature).
//! Under `CI=true` a missing need fails the test with what to install or
//! do; elsewhere the test says SKIPPED with the same advice and returns.

use std::process::Command;

/// True on CI (`CI=true`), where nothing may be skipped.
pub fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// `why` keeps this test from running; `fix` says what to do about it.
/// Panics on CI; elsewhere prints SKIPPED and returns false.
pub fn unavailable(why: &str, fix: &str) -> bool {
    let msg = format!("{why}: {fix}");
    assert!(!on_ci(), "{msg} (CI=true: this test may not be skipped)");
    eprintln!("SKIPPED: {msg}");
    false
}

/// True if `tool` is on PATH; otherwise [`unavailable`], naming the
/// Debian package that has it (scripts/test installs it).
pub fn require_tool(tool: &str, package: &str) -> bool {
    on_path(tool)
        || unavailable(
            &format!("{tool} missing"),
            &format!("apt-get install {package}"),
        )
}

/// True if the test runs as root; otherwise [`unavailable`].
pub fn require_root(what: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    root || unavailable(
        &format!("{what} needs root"),
        "run the tests as root (scripts/test does)",
    )
}

fn on_path(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success())
}
