//! The real boot-loader backends against the real tools where the machine
//! has them: GRUB's `grub-editenv` and `grub-script-check` (grub-common),
//! libubootenv's `fw_printenv`/`fw_setenv` on a file-backed redundant
//! environment, and the systemd-boot entry renames with a recording
//! `bootctl`. A missing tool fails the test under `CI=true` (it names the
//! package); elsewhere the test says SKIPPED.

use crate::support::tools::require_tool;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use updater::boot::grub::Grub;
use updater::boot::systemd_boot::SystemdBoot;
use updater::boot::uboot::UBoot;
use updater::boot::{BootControl, BootState, SlotId};
use updater::durable::RealFiles;

fn cmdline(dir: &Path, slot: &str) -> std::path::PathBuf {
    let p = dir.join("cmdline");
    std::fs::write(
        &p,
        format!("root=PARTLABEL=gateway-{slot} ro updater.slot={slot}\n"),
    )
    .unwrap();
    p
}

#[test]
fn grubenv_written_by_the_updater_is_read_by_grub_editenv_and_back() {
    if !require_tool("grub-editenv", "grub-common") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let env = d.path().join("grubenv");
    let g = Grub::new(&env, &cmdline(d.path(), "a"), Arc::new(RealFiles));
    g.provision(SlotId::A).unwrap();
    g.mark_invalid(SlotId::B).unwrap();
    g.set_trial(SlotId::B, 3).unwrap();
    let out = Command::new("grub-editenv")
        .arg(&env)
        .arg("list")
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for want in [
        "ORDER=B A",
        "B_OK=1",
        "B_TRY=3",
        "B_GOOD=0",
        "A_GOOD=1",
        "LAST_GOOD=A",
    ] {
        assert!(
            list.lines().any(|l| l == want),
            "grub-editenv list lacks {want}:\n{list}"
        );
    }
    // GRUB's save_env decrements the tries (what grub.cfg does at boot).
    let st = Command::new("grub-editenv")
        .arg(&env)
        .args(["set", "B_TRY=2"])
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        g.slot_state(SlotId::B).unwrap(),
        BootState::Trial { tries_left: 2 }
    );
    assert_eq!(std::fs::metadata(&env).unwrap().len(), 1024);
    g.mark_good(SlotId::B).unwrap();
    let out = Command::new("grub-editenv")
        .arg(&env)
        .arg("list")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l == "LAST_GOOD=B"));
}

#[test]
fn shipped_grub_cfg_parses() {
    if !require_tool("grub-script-check", "grub-common") {
        return;
    }
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("boot/grub.cfg");
    let out = Command::new("grub-script-check")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "grub-script-check {}: {}{}",
        cfg.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A file-backed redundant U-Boot environment initialised from the shipped
/// `uboot-env.txt`; `None` (skipped) where libubootenv's tools are missing.
fn uboot(d: &Path) -> Option<UBoot> {
    for tool in ["fw_setenv", "fw_printenv"] {
        if !require_tool(tool, "libubootenv-tool") {
            return None;
        }
    }
    let env1 = d.join("env1");
    let env2 = d.join("env2");
    std::fs::write(&env1, vec![0u8; 0x4000]).unwrap();
    std::fs::write(&env2, vec![0u8; 0x4000]).unwrap();
    let cfg = d.join("fw_env.config");
    std::fs::write(
        &cfg,
        format!(
            "{} 0x0 0x4000\n{} 0x0 0x4000\n",
            env1.display(),
            env2.display()
        ),
    )
    .unwrap();
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("boot/uboot-env.txt"))
            .unwrap();
    let defenv = d.join("defenv");
    let vars: String = shipped
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&defenv, &vars).unwrap();
    let init = d.join("init.script");
    std::fs::write(&init, "bootcount=0\n").unwrap();
    let st = Command::new("fw_setenv")
        .arg("-c")
        .arg(&cfg)
        .arg("-f")
        .arg(&defenv)
        .arg("-s")
        .arg(&init)
        .status()
        .unwrap();
    assert!(st.success(), "initialising the environment failed");
    Some(UBoot {
        fw_printenv: "fw_printenv".into(),
        fw_setenv: "fw_setenv".into(),
        fw_config: Some(cfg),
        cmdline: cmdline(d, "a"),
        script_dir: d.to_path_buf(),
    })
}

fn set_raw(u: &UBoot, kv: &str) {
    let s = u.script_dir.join("raw.script");
    std::fs::write(&s, format!("{kv}\n")).unwrap();
    let st = Command::new("fw_setenv")
        .arg("-c")
        .arg(u.fw_config.as_ref().unwrap())
        .arg("-s")
        .arg(&s)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn uboot_backend_drives_libubootenv() {
    let d = tempfile::tempdir().unwrap();
    let Some(u) = uboot(d.path()) else { return };
    assert_eq!(u.booted_slot().unwrap(), SlotId::A);
    assert_eq!(u.slot_state(SlotId::A).unwrap(), BootState::Good);
    assert_eq!(u.slot_state(SlotId::B).unwrap(), BootState::Bad);
    u.mark_invalid(SlotId::B).unwrap();
    u.set_trial(SlotId::B, 3).unwrap();
    let v = u.vars().unwrap();
    assert_eq!(v["boot_slot"], "B");
    assert_eq!(v["upgrade_available"], "1");
    assert_eq!(v["bootlimit"], "3");
    assert_eq!(
        v["good_slot"], "A",
        "the known-good slot stays A during the trial"
    );
    assert_eq!(
        u.slot_state(SlotId::B).unwrap(),
        BootState::Trial { tries_left: 3 }
    );
    // U-Boot counts a boot.
    set_raw(&u, "bootcount=1");
    assert_eq!(
        u.slot_state(SlotId::B).unwrap(),
        BootState::Trial { tries_left: 2 }
    );
    // Committed from the trial slot.
    u.mark_good(SlotId::B).unwrap();
    let v = u.vars().unwrap();
    assert_eq!(
        (v["good_slot"].as_str(), v["upgrade_available"].as_str()),
        ("B", "0")
    );
    assert_eq!(u.slot_state(SlotId::B).unwrap(), BootState::Good);
    u.mark_bad(SlotId::B).unwrap();
    assert_eq!(u.vars().unwrap()["boot_slot"], "A");
    assert_eq!(u.slot_state(SlotId::B).unwrap(), BootState::Bad);
}

#[test]
fn uboot_trial_runs_out_of_tries() {
    let d = tempfile::tempdir().unwrap();
    let Some(u) = uboot(d.path()) else { return };
    u.set_trial(SlotId::B, 3).unwrap();
    set_raw(&u, "bootcount=3");
    assert_eq!(u.slot_state(SlotId::B).unwrap(), BootState::Bad);
}

#[test]
fn uboot_redundant_environment_survives_a_torn_write() {
    let d = tempfile::tempdir().unwrap();
    let Some(u) = uboot(d.path()) else { return };
    u.mark_invalid(SlotId::B).unwrap();
    let before = u.vars().unwrap();
    u.set_trial(SlotId::B, 3).unwrap();
    // The power went while the new copy was written: it is garbage now.
    let (e1, e2) = (d.path().join("env1"), d.path().join("env2"));
    let newest = if std::fs::read(&e1).unwrap()[4] > std::fs::read(&e2).unwrap()[4] {
        e1
    } else {
        e2
    };
    let mut b = std::fs::read(&newest).unwrap();
    for x in b.iter_mut().skip(10).take(64) {
        *x ^= 0x5a;
    }
    std::fs::write(&newest, b).unwrap();
    // The old, whole set is read back: B is not on trial, A still boots.
    assert_eq!(u.vars().unwrap(), before);
    assert_eq!(u.slot_state(SlotId::B).unwrap(), BootState::Bad);
    assert_eq!(u.slot_state(SlotId::A).unwrap(), BootState::Good);
}

#[test]
fn systemd_boot_entries_are_renamed_and_no_default_is_set() {
    let d = tempfile::tempdir().unwrap();
    let entries = d.path().join("entries");
    std::fs::create_dir_all(&entries).unwrap();
    std::fs::write(
        entries.join("gateway-a.conf"),
        "title A\nlinux /EFI/gateway/a/vmlinuz\n",
    )
    .unwrap();
    std::fs::write(
        entries.join("gateway-b.conf"),
        "title B\nlinux /EFI/gateway/b/vmlinuz\n",
    )
    .unwrap();
    let log = d.path().join("bootctl.log");
    let bootctl = d.path().join("bootctl");
    std::fs::write(
        &bootctl,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&bootctl, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sb = SystemdBoot {
        entries_dir: entries.clone(),
        prefix: "gateway".into(),
        bootctl,
        cmdline: cmdline(d.path(), "a"),
    };
    sb.mark_invalid(SlotId::B).unwrap();
    assert!(entries.join("gateway-b+0-0.conf").exists());
    assert_eq!(sb.slot_state(SlotId::B).unwrap(), BootState::Bad);
    sb.set_trial(SlotId::B, 3).unwrap();
    assert!(entries.join("gateway-b+3-0.conf").exists());
    assert_eq!(
        sb.slot_state(SlotId::B).unwrap(),
        BootState::Trial { tries_left: 3 }
    );
    // systemd-boot counts a boot attempt by renaming.
    std::fs::rename(
        entries.join("gateway-b+3-0.conf"),
        entries.join("gateway-b+2-1.conf"),
    )
    .unwrap();
    assert_eq!(
        sb.slot_state(SlotId::B).unwrap(),
        BootState::Trial { tries_left: 2 }
    );
    sb.mark_good(SlotId::B).unwrap();
    assert!(entries.join("gateway-b.conf").exists());
    assert_eq!(sb.slot_state(SlotId::A).unwrap(), BootState::Good);
    // Boot order comes from the entries' generations alone: no default is
    // ever set (systemd#15256), so bootctl is never run.
    assert!(!log.exists(), "bootctl was called");
}
