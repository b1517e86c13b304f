//! Rollback on the simulated firmware: a failing health check, a slot that
//! never boots, and a good update that is committed with its floor raised.

use crate::support::*;
use std::path::Path;
use updater::boot::{BootControl, BootState, SlotId};
use updater::durable::RealFiles;
use updater::health::{after_boot, run_checks, Check, Outcome, TcpListening};

fn v1() -> Vec<u8> {
    image(&[1, 2, 3, 4], 10)
}
fn v2() -> Vec<u8> {
    image(&[1, 2, 33, 44, 55], 20)
}

fn staged() -> (Repo, Device) {
    let repo = Repo::new(1, 1);
    repo.add("gw-2.0.img", &v2(), "2.0", 2);
    repo.sign_publish();
    let dev = Device::new(&repo.root(), &v1(), "1.0", 1, 64 * 1024);
    install_from_dir(&dev, &repo, "gw-2.0.img", hours(t0(), 1)).unwrap();
    (repo, dev)
}

fn health(dev: &Device, boot_id: &str, ok: bool) -> Outcome {
    let fw = dev.firmware();
    let ctx = dev.context(&fw, &RealFiles, &dev.slots, boot_id);
    let check = || {
        if ok {
            Ok(())
        } else {
            Err(updater::Error::Unhealthy(
                "unit gateway.service active (READY=1 sent): inactive".into(),
            ))
        }
    };
    after_boot(&ctx, &check, &mut dev.clock(hours(t0(), 2))).unwrap()
}

#[test]
fn health_check_before_the_reboot_changes_nothing() {
    let (_repo, dev) = staged();
    assert_eq!(
        health(&dev, "boot-1", true),
        Outcome::WaitingForReboot { slot: SlotId::B }
    );
    assert_eq!(
        dev.firmware().slot_state(SlotId::B).unwrap(),
        BootState::Trial { tries_left: 3 }
    );
}

#[test]
fn failing_health_check_marks_the_slot_bad_and_falls_back() {
    let (repo, dev) = staged();
    let fw = dev.firmware();
    assert_eq!(fw.power_on(&|_| true, 5).unwrap(), SlotId::B);
    match health(&dev, "boot-2", false) {
        Outcome::RolledBack { slot, reason } => {
            assert_eq!(slot, SlotId::B);
            assert!(reason.contains("gateway.service"), "{reason}");
        }
        o => panic!("{o:?}"),
    }
    assert_eq!(fw.slot_state(SlotId::B).unwrap(), BootState::Bad);
    // The reboot the health unit asks for lands on the known-good slot.
    assert_eq!(fw.power_on(&|_| true, 5).unwrap(), SlotId::A);
    let st = dev.state();
    assert_eq!(st.epoch_floor, 1, "floor must not move on a failed update");
    assert!(st.failed.contains(&sha(&v2())));
    assert!(st
        .last_install
        .as_ref()
        .is_some_and(|r| !r.ok && r.message.contains("rolled back")));
    assert_eq!(health(&dev, "boot-3", true), Outcome::Healthy);
    // The failed target is not offered again.
    let v = dev.verify(&repo, hours(t0(), 1)).unwrap();
    let run = updater::anti_rollback::Running {
        version: updater::target::Version::parse("1.0"),
        epoch: Some(1),
        sha256: None,
    };
    assert!(matches!(
        updater::anti_rollback::choose(&v.targets, &run, st.epoch_floor, &st.failed),
        updater::anti_rollback::Choice::Nothing(_)
    ));
}

#[test]
fn slot_that_never_boots_exhausts_its_tries_and_falls_back() {
    let (_repo, dev) = staged();
    let fw = dev.firmware();
    // B panics on every boot: the firmware tries it 3 times, then boots A.
    assert_eq!(fw.power_on(&|s| s == SlotId::A, 10).unwrap(), SlotId::A);
    assert_eq!(fw.env().unwrap().boots, 4);
    match health(&dev, "boot-2", true) {
        Outcome::TrialNeverCameUp { slot, .. } => assert_eq!(slot, SlotId::B),
        o => panic!("{o:?}"),
    }
    assert_eq!(fw.slot_state(SlotId::B).unwrap(), BootState::Bad);
    assert_eq!(dev.state().epoch_floor, 1);
    assert!(dev
        .state()
        .last_install
        .unwrap()
        .message
        .contains("never came up"));
}

#[test]
fn power_blip_during_a_trial_boot_does_not_fail_the_update() {
    let (_repo, dev) = staged();
    let fw = dev.firmware();
    // The first boot of B loses power before userspace; the second works.
    let first = std::cell::Cell::new(true);
    let booted = fw
        .power_on(&|s| s == SlotId::B && !first.replace(false), 10)
        .unwrap();
    assert_eq!(booted, SlotId::B);
    assert!(matches!(
        health(&dev, "boot-2", true),
        Outcome::Committed { .. }
    ));
}

#[test]
fn good_update_is_committed_and_the_floor_raised() {
    let (repo, dev) = staged();
    let fw = dev.firmware();
    assert_eq!(fw.power_on(&|_| true, 5).unwrap(), SlotId::B);
    // The floor is still 1 while on trial.
    assert_eq!(dev.state().epoch_floor, 1);
    match health(&dev, "boot-2", true) {
        Outcome::Committed {
            slot,
            version,
            floor,
        } => {
            assert_eq!((slot, version.as_str(), floor), (SlotId::B, "2.0", 2));
        }
        o => panic!("{o:?}"),
    }
    let env = fw.env().unwrap();
    assert!(env.b.good && env.last_good == SlotId::B);
    assert_eq!(fw.power_on(&|_| true, 5).unwrap(), SlotId::B);
    // Running again is harmless.
    assert_eq!(health(&dev, "boot-3", true), Outcome::Healthy);
    // An epoch-1 target can no longer be installed.
    repo.add_with("gw-1.5.img", &image(&[5, 5], 0), "3.0", 1, false, vec![]);
    repo.sign_publish();
    let e = install_from_dir(&dev, &repo, "gw-1.5.img", hours(t0(), 1)).unwrap_err();
    assert!(
        e.to_string().contains("below this box's epoch floor 2"),
        "{e}"
    );
    // The clock remembers the commit ("last saved good time").
    assert!(dev.state().last_good_time.is_some());
    assert!(dev.clock(jiff::Timestamp::UNIX_EPOCH).now() >= t0());
}

#[test]
fn install_refused_while_the_running_slot_is_on_trial() {
    let (repo, dev) = staged();
    dev.firmware().power_on(&|_| true, 5).unwrap();
    let e = install_from_dir(&dev, &repo, "gw-2.0.img", hours(t0(), 1)).unwrap_err();
    assert!(e.to_string().contains("updater health"), "{e}");
}

/// The checks pass within five seconds.
fn passes(checks: &[Box<dyn Check>]) {
    run_checks(
        checks,
        std::time::Duration::from_secs(5),
        std::time::Duration::from_millis(10),
    )
    .unwrap();
}

/// The checks still fail after 50 ms; what they say.
fn fails(checks: &[Box<dyn Check>]) -> String {
    run_checks(
        checks,
        std::time::Duration::from_millis(50),
        std::time::Duration::from_millis(10),
    )
    .unwrap_err()
    .to_string()
}

#[test]
fn tcp_health_check_sees_a_bound_listener_and_a_missing_one() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bound: Vec<Box<dyn Check>> = vec![Box::new(TcpListening(l.local_addr().unwrap()))];
    passes(&bound);
    let addr = l.local_addr().unwrap();
    drop(l);
    let missing: Vec<Box<dyn Check>> = vec![Box::new(TcpListening(addr))];
    let e = fails(&missing);
    assert!(e.contains("bound"), "{e}");
}

#[test]
fn gateway_config_gives_the_status_and_listener_checks() {
    let d = tempfile::tempdir().unwrap();
    let up = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = up.local_addr().unwrap().port();
    let cfg = d.path().join("gateway.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"var\"\n[[listener]]\nname = \"ehr\"\nbind = \"0.0.0.0:{port}\"\n\
             [[destination]]\nname = \"x\"\nkind = \"folder\"\npath = \"out\"\n"
        ),
    )
    .unwrap();
    let checks = updater::health::gateway_checks(Path::new("true"), &cfg).unwrap();
    assert_eq!(checks.len(), 2);
    passes(&checks);
    // The daemon's status command fails: the check names it.
    let checks = updater::health::gateway_checks(Path::new("false"), &cfg).unwrap();
    let e = fails(&checks);
    assert!(
        e.contains("status --config") && e.contains("gateway.toml"),
        "{e}"
    );
    // A listener that is not bound.
    drop(up);
    let checks = updater::health::gateway_checks(Path::new("true"), &cfg).unwrap();
    let e = fails(&checks);
    assert!(
        e.contains(&format!("listener 127.0.0.1:{port} bound")),
        "{e}"
    );
    // The repository's own development config parses.
    let dev = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/gateway.toml");
    assert_eq!(
        updater::health::gateway_checks(Path::new("true"), &dev)
            .unwrap()
            .len(),
        2
    );
}
