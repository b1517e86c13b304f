//! The `updater` binary end to end, the way an MSP and a box use it: `repo
//! init|add|sign|publish`, `check` against a loopback HTTP server (waves in
//! `status`), `install --from DIR`, the reboot on the simulated firmware,
//! `health`, and `status --json`.

use crate::support::cli::{make_box, ok, p, run, MspRepo};
use crate::support::http::Server;
use crate::support::image;
use std::sync::Arc;
use updater::boot::sim::SimFirmware;
use updater::boot::SlotId;
use updater::durable::RealFiles;

#[test]
fn msp_publishes_and_a_box_installs_commits_and_reports() {
    let v1 = image(&[1, 2, 3, 4], 0);
    let v2 = image(&[1, 2, 30, 40, 50], 123);
    let repo = MspRepo::init(&["--keys", "2", "--threshold", "2"]);
    repo.publish("gateway-2.0.img", &v2, "2.0", "2", &[]);
    let out = &repo.out;
    assert!(out.join("metadata/timestamp.json").exists());

    let b = repo.offline_box(&v1);
    let cfg = p(&b.config);
    let env = [("UPDATER_BOOT_ID", "boot-1")];
    let stdout = ok(
        &["install", "--config", cfg, "--from", p(out), "--no-reboot"],
        &env,
    );
    assert!(stdout.contains("staged in slot B"), "{stdout}");
    assert!(stdout.contains("not rebooting"), "{stdout}");
    // The next run finds it staged and only reboots (reboot_command is `true`).
    let stdout = ok(&["install", "--config", cfg, "--from", p(out)], &env);
    assert!(stdout.contains("already staged in slot B"), "{stdout}");
    assert!(stdout.contains("rebooting into slot B"), "{stdout}");

    // Health in the same boot changes nothing.
    let stdout = ok(&["health", "--config", cfg], &env);
    assert!(stdout.contains("waits for a reboot"), "{stdout}");

    // Reboot: the firmware tries slot B.
    let fw = SimFirmware::new(&b.dir.path().join("fw.json"), Arc::new(RealFiles));
    assert_eq!(fw.power_on(&|_| true, 3).unwrap(), SlotId::B);
    let stdout = ok(
        &["health", "--config", cfg],
        &[("UPDATER_BOOT_ID", "boot-2")],
    );
    assert!(stdout.contains("committed; epoch floor 2"), "{stdout}");

    let status: serde_json::Value = serde_json::from_str(&ok(
        &["status", "--config", cfg, "--json"],
        &[("UPDATER_BOOT_ID", "boot-2")],
    ))
    .unwrap();
    assert_eq!(status["epoch_floor"], 2);
    assert_eq!(status["slots"][1]["version"], "2.0");
    assert_eq!(status["slots"][1]["state"], "good");
    assert_eq!(status["slots"][1]["booted"], true);
    assert_eq!(
        status["download"]["chunks_done"],
        status["download"]["chunks_total"]
    );
    assert!(status["last_install"]["message"]
        .as_str()
        .unwrap()
        .contains("committed"));
    assert!(b.dir.path().join("state/report.json").exists());
    let text = ok(
        &["status", "--config", cfg],
        &[("UPDATER_BOOT_ID", "boot-2")],
    );
    assert!(
        text.contains("slot B (running): 2.0 epoch 2 — good"),
        "{text}"
    );
    assert!(text.contains("epoch floor: 2"), "{text}");
}

#[test]
fn check_over_http_reports_the_wave_in_status() {
    let repo = MspRepo::init(&[]);
    // Everyone is in a wave that opens in 2099.
    repo.publish(
        "gw.img",
        &image(&[9, 8, 7], 0),
        "3.0",
        "1",
        &["--wave", "2099-01-01T00:00:00Z=100"],
    );
    let srv = Server::start(repo.out.clone());
    let b = make_box(
        &repo.work.join("root.json"),
        &image(&[1], 0),
        srv.url("metadata/").as_str(),
        srv.url("targets/").as_str(),
    );
    let cfg = p(&b.config);
    let stdout = ok(&["check", "--config", cfg], &[]);
    assert!(
        stdout.contains("waiting for wave until 2099-01-01T00:00:00Z"),
        "{stdout}"
    );
    let stdout = ok(&["install", "--config", cfg], &[]);
    assert!(stdout.contains("waiting for wave"), "{stdout}");
    let text = ok(&["status", "--config", cfg], &[]);
    assert!(
        text.contains("wave: gw.img 3.0: waiting for wave until 2099-01-01T00:00:00Z"),
        "{text}"
    );
    assert!(
        text.contains("last check:") && text.contains("ok — verified: 1 target(s)"),
        "{text}"
    );
    // Nothing was written.
    assert_eq!(
        std::fs::read(b.dir.path().join("slot-b")).unwrap(),
        vec![0u8; 256 * 1024]
    );
}

#[test]
fn a_failed_check_is_recorded_and_named() {
    let repo = MspRepo::init(&[]);
    // The servers are unreachable: the check fails, and says so.
    let b = repo.offline_box(&image(&[1], 0));
    let out = run(&["check", "--config", p(&b.config)], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("update metadata rejected") && err.contains("127.0.0.1:9"),
        "{err}"
    );
    let text = ok(&["status", "--config", p(&b.config)], &[]);
    assert!(
        text.contains("last check:") && text.contains("FAILED"),
        "{text}"
    );
}

#[test]
fn a_bad_config_names_the_file_and_field() {
    let d = tempfile::tempdir().unwrap();
    let c = d.path().join("u.toml");
    std::fs::write(&c, "state_dir = 's'\n").unwrap();
    let out = run(&["status", "--config", p(&c)], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("u.toml") && err.contains("missing field"),
        "{err}"
    );
}

#[test]
fn a_factory_fresh_box_takes_its_floor_from_the_running_image() {
    let repo = MspRepo::init(&[]);
    repo.publish("gw.img", &image(&[4, 4], 0), "3.0", "1", &[]);
    let out = &repo.out;
    let b = repo.offline_box(&image(&[1], 0));
    // No state yet; the image says what it is.
    std::fs::remove_file(b.dir.path().join("state/state.json")).unwrap();
    std::fs::write(
        b.dir.path().join("image.json"),
        r#"{"version": "1.0", "epoch": 2}"#,
    )
    .unwrap();
    let cfg = std::fs::read_to_string(&b.config).unwrap();
    std::fs::write(&b.config, format!("running_image = \"image.json\"\n{cfg}")).unwrap();
    let stdout = ok(
        &["install", "--config", p(&b.config), "--from", p(out)],
        &[],
    );
    assert!(
        stdout.contains("nothing installable") && stdout.contains("below this box's epoch floor 2"),
        "{stdout}"
    );
    let text = ok(&["status", "--config", p(&b.config)], &[]);
    assert!(
        text.contains("slot A (running): 1.0 epoch 2") && text.contains("epoch floor: 2"),
        "{text}"
    );
}

#[test]
fn outside_the_maintenance_window_the_update_is_staged_without_a_reboot() {
    let repo = MspRepo::init(&[]);
    repo.publish("gw.img", &image(&[6, 6], 0), "3.0", "1", &[]);
    let out = &repo.out;
    let b = repo.offline_box(&image(&[1], 0));
    // A one-hour window that starts two hours from now (local time).
    let now = jiff::Zoned::now();
    let start = (now.hour() as u32 * 60 + now.minute() as u32 + 120) % 1440;
    let end = (start + 60) % 1440;
    let window = format!(
        "{:02}:{:02}-{:02}:{:02}",
        start / 60,
        start % 60,
        end / 60,
        end % 60
    );
    let cfg = std::fs::read_to_string(&b.config).unwrap().replace(
        "[download]\n",
        &format!("[download]\nmaintenance_window = \"{window}\"\n"),
    );
    std::fs::write(&b.config, cfg).unwrap();
    let stdout = ok(
        &["install", "--config", p(&b.config), "--from", p(out)],
        &[("UPDATER_BOOT_ID", "b1")],
    );
    assert!(stdout.contains("staged in slot B"), "{stdout}");
    assert!(
        stdout.contains(&format!("outside the maintenance window {window}")),
        "{stdout}"
    );
    // `--now` overrides the window (the reboot command is `true`).
    let stdout = ok(
        &[
            "install",
            "--config",
            p(&b.config),
            "--from",
            p(out),
            "--now",
        ],
        &[("UPDATER_BOOT_ID", "b1")],
    );
    assert!(
        stdout.contains("already staged") && stdout.contains("rebooting into slot B"),
        "{stdout}"
    );
}
