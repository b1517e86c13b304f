//! Running a program a test relies on (a peer, a validator, the CLI).

use std::process::{Command, Output};

/// Runs `cmd` to completion; it must exit 0. Returns its output; fails the
/// test naming the program and quoting what it wrote.
pub fn succeeds(cmd: &mut Command) -> Output {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
