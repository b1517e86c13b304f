//! `[health] after_commit`: commands owed to a slot once `updater health`
//! committed it (a journal format migration, say). They run only after the
//! commit is durable, never for a trial that is rolled back, and each is
//! retried at every boot until it exits 0, including after a crash while it
//! runs. The commands here are stand-ins (shell one-liners) that record when
//! they ran and what the updater's state said then.

use crate::support::cli::{ok, p, run, Box_, MspRepo};
use crate::support::image;
use std::path::Path;
use std::sync::Arc;
use updater::boot::sim::SimFirmware;
use updater::boot::SlotId;
use updater::durable::RealFiles;

/// A box on v1 with `after_commit` (TOML), v2 (epoch 2) staged in slot B
/// and the firmware rebooted into it.
fn staged_box(repo: &MspRepo, after_commit: &str, health_ok: bool) -> Box_ {
    repo.publish("gw-2.0.img", &image(&[1, 2, 7, 8], 0), "2.0", "2", &[]);
    let b = repo.offline_box(&image(&[1, 2, 3, 4], 0));
    let cfg = std::fs::read_to_string(&b.config).unwrap().replace(
        "commands = [[\"true\"]]\n",
        &format!(
            "commands = [[\"{}\"]]\nafter_commit = {after_commit}\n",
            if health_ok { "true" } else { "false" }
        ),
    );
    std::fs::write(&b.config, cfg).unwrap();
    let stdout = ok(
        &[
            "install",
            "--config",
            p(&b.config),
            "--from",
            p(&repo.out),
            "--no-reboot",
        ],
        &[("UPDATER_BOOT_ID", "boot-1")],
    );
    assert!(stdout.contains("staged in slot B"), "{stdout}");
    let fw = SimFirmware::new(&b.dir.path().join("fw.json"), Arc::new(RealFiles));
    assert_eq!(fw.power_on(&|_| true, 3).unwrap(), SlotId::B);
    b
}

fn health(b: &Box_, boot: &str) -> std::process::Output {
    run(
        &["health", "--config", p(&b.config)],
        &[("UPDATER_BOOT_ID", boot)],
    )
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn status(b: &Box_) -> serde_json::Value {
    serde_json::from_str(&ok(&["status", "--config", p(&b.config), "--json"], &[])).unwrap()
}

#[test]
fn commands_run_after_the_commit_and_are_retried_until_they_succeed() {
    let repo = MspRepo::init(&[]);
    let d = tempfile::tempdir().unwrap();
    let (log, rc) = (d.path().join("hook.log"), d.path().join("rc"));
    std::fs::write(&rc, "1").unwrap();
    // It records whether the commit (slot B good, floor 2) was already
    // durable when it ran, and exits with the code in `rc`.
    let hook = format!(
        r#"[["sh", "-c", "grep -q '\"epoch_floor\": 2' state/state.json && echo committed-before >> {log} || echo NOT-COMMITTED >> {log}; exit $(cat {rc})"]]"#,
        log = log.display(),
        rc = rc.display()
    );
    let b = staged_box(&repo, &hook, true);
    // The updater runs commands from its own directory's view: run it there.
    let cfg = std::fs::read_to_string(&b.config).unwrap();
    std::fs::write(
        &b.config,
        cfg.replace(
            "state/state.json",
            &format!("{}/state/state.json", b.dir.path().display()),
        ),
    )
    .unwrap();

    let out = health(&b, "boot-2");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("committed; epoch floor 2"), "{stdout}");
    assert!(stderr.contains("after-commit command failed"), "{stderr}");
    assert_eq!(lines(&log), ["committed-before"]);
    let s = status(&b);
    assert_eq!(s["slots"][1]["state"], "good");
    assert_eq!(s["after_commit"]["attempts"], 1);
    assert_eq!(s["after_commit"]["remaining"].as_array().unwrap().len(), 1);
    let text = ok(&["status", "--config", p(&b.config)], &[]);
    assert!(
        text.contains("after commit of slot B (2.0): 1 command(s) to run, last attempt failed"),
        "{text}"
    );

    // The next boot runs it again; now it succeeds and is done.
    std::fs::write(&rc, "0").unwrap();
    let out = health(&b, "boot-3");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 after-commit command(s) done"));
    assert_eq!(lines(&log), ["committed-before", "committed-before"]);
    assert!(status(&b)["after_commit"].is_null());
    // And never again.
    health(&b, "boot-4");
    assert_eq!(lines(&log).len(), 2);
}

#[test]
fn commands_never_run_for_a_trial_that_is_rolled_back() {
    let repo = MspRepo::init(&[]);
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("hook.log");
    let hook = format!(r#"[["sh", "-c", "echo ran >> {}"]]"#, log.display());
    let b = staged_box(&repo, &hook, false);
    let out = health(&b, "boot-2");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("failed its health check"));
    assert!(
        !log.exists(),
        "an after-commit command ran for a rolled-back slot"
    );
    let s = status(&b);
    assert_eq!(s["slots"][1]["state"], "bad");
    assert!(s["after_commit"].is_null());
    // The box boots the old slot again: nothing is owed there either.
    let fw = SimFirmware::new(&b.dir.path().join("fw.json"), Arc::new(RealFiles));
    assert_eq!(fw.power_on(&|_| true, 3).unwrap(), SlotId::A);
    health(&b, "boot-3");
    assert!(!log.exists());
}

/// A crash (the updater killed with SIGKILL, as a power cut would stop it)
/// while the second of two commands runs: the commit and the first
/// command's success are durable, and only the second runs again at the
/// next boot.
#[test]
fn a_crash_during_a_command_runs_it_again_at_the_next_boot() {
    let repo = MspRepo::init(&[]);
    let d = tempfile::tempdir().unwrap();
    let (log, crashed) = (d.path().join("hook.log"), d.path().join("crashed"));
    let hook = format!(
        r#"[["sh", "-c", "echo first >> {log}"], ["sh", "-c", "echo second-start >> {log}; if [ ! -e {crashed} ]; then touch {crashed}; kill -9 $PPID; sleep 5; fi; echo second-done >> {log}"]]"#,
        log = log.display(),
        crashed = crashed.display()
    );
    let b = staged_box(&repo, &hook, true);
    let out = health(&b, "boot-2");
    assert!(!out.status.success(), "the updater was killed");
    assert_eq!(lines(&log), ["first", "second-start"]);
    let s = status(&b);
    assert_eq!(s["slots"][1]["state"], "good");
    assert_eq!(s["epoch_floor"], 2);
    let remaining = s["after_commit"]["remaining"].as_array().unwrap().clone();
    assert_eq!(remaining.len(), 1, "{s}");
    assert!(remaining[0].to_string().contains("second-start"));

    let out = health(&b, "boot-3");
    assert!(out.status.success());
    assert_eq!(
        lines(&log),
        ["first", "second-start", "second-start", "second-done"]
    );
    assert!(status(&b)["after_commit"].is_null());
}
