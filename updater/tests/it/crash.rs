//! Crash consistency: a power cut at every write and fsync of a full update
//! cycle (saving the verified metadata, install steps 1–6, the firmware's
//! boot, health check and commit), then a reboot on the simulated firmware.
//!
//! After every cut:
//! - a known-good bootable slot exists and holds a verified image;
//! - every slot the firmware may boot (good, or on trial with tries left)
//!   holds a complete verified image: an unverified slot never gets boot
//!   priority;
//! - the box boots, and running the updater again converges: v2 committed in
//!   slot B, floor raised, v1 intact in slot A.

use crate::support::*;
use std::sync::Arc;
use updater::boot::sim::SimFirmware;
use updater::boot::{BootControl, SlotId};
use updater::durable::{FaultyFiles, Files, RealFiles};
use updater::fault::FaultPlan;
use updater::health::{after_boot, Outcome};
use updater::install::{SlotOpener, SlotPaths};
use updater::slot::{FaultyDisk, FileSlot, SlotDevice};

struct FaultySlots<'a> {
    inner: &'a SlotPaths,
    plan: Arc<FaultPlan>,
}

impl SlotOpener for FaultySlots<'_> {
    fn open(&self, slot: SlotId, write: bool) -> updater::Result<Box<dyn SlotDevice>> {
        let p = match slot {
            SlotId::A => &self.inner.a,
            SlotId::B => &self.inner.b,
        };
        let dev = if write {
            FileSlot::open(p)?
        } else {
            FileSlot::open_read_only(p)?
        };
        Ok(Box::new(FaultyDisk::new(dev, self.plan.clone())))
    }
}

fn v1() -> Vec<u8> {
    image(&[1, 2, 3, 4, 5, 6, 7], 1000)
}
fn v2() -> Vec<u8> {
    image(&[1, 2, 30, 40, 5, 60, 70, 80], 2000)
}

fn v0() -> Vec<u8> {
    image(&[9, 2, 3, 4, 5, 6], 3000)
}

/// Slot A runs v1 (committed). With `old_b`, slot B still holds an older
/// committed image (the box's previous update) and is the fallback, so
/// install step 1 must take it out of the boot order before writing it.
fn setup(old_b: bool) -> (Repo, Device) {
    let repo = Repo::new(1, 1);
    repo.add("gw-2.0.img", &v2(), "2.0", 2);
    repo.sign_publish();
    let dev = Device::new(&repo.root(), &v1(), "1.0", 1, 96 * 1024);
    if old_b {
        let mut b = v0();
        b.resize(96 * 1024, 0);
        std::fs::write(&dev.slots.b, b).unwrap();
        let fw = dev.firmware();
        fw.set_trial(SlotId::B, 3).unwrap();
        fw.mark_good(SlotId::B).unwrap();
        fw.mark_good(SlotId::A).unwrap();
    }
    (repo, dev)
}

/// A slot "boots" if it holds a whole verified image.
fn boots(dev: &Device, s: SlotId) -> bool {
    dev.slot_holds(s, &v1()) || dev.slot_holds(s, &v2()) || dev.slot_holds(s, &v0())
}

/// One full cycle with every I/O going through `files` and the plan.
fn cycle(
    dev: &Device,
    repo: &Repo,
    files: Arc<dyn Files>,
    plan: Arc<FaultPlan>,
) -> updater::Result<Outcome> {
    // The trusted copy (root, versions, clock) is written through the same
    // faulty files.
    let (m, u) = repo.file_urls();
    let v = updater::trust::load(
        &dev.trust(m, u),
        files.as_ref(),
        &mut dev.clock(hours(t0(), 1)),
    )?;
    let t = target(&v, "gw-2.0.img").clone();
    let fw = dev.firmware_with(files.clone());
    let slots = FaultySlots {
        inner: &dev.slots,
        plan,
    };
    let ctx = dev.context(&fw, files.as_ref(), &slots, "boot-1");
    let mut src = updater::download::dir::DirSource {
        targets_dir: repo.out.join("targets"),
    };
    updater::install::install(&ctx, &t, &mut src, v.expires)?;
    fw.power_on(&|s| boots(dev, s), 10)?;
    let ctx = dev.context(&fw, files.as_ref(), &slots, "boot-2");
    let mut clock = dev.clock(hours(t0(), 2));
    after_boot(&ctx, &|| Ok(()), &mut clock)
}

fn check_invariants(dev: &Device, n: u64) {
    let env = dev.firmware().env().unwrap();
    let good: Vec<SlotId> = [SlotId::A, SlotId::B]
        .into_iter()
        .filter(|s| env.slot(*s).bootable && env.slot(*s).good && boots(dev, *s))
        .collect();
    assert!(
        !good.is_empty(),
        "cut {n}: no known-good bootable slot: {env:?}"
    );
    for s in [SlotId::A, SlotId::B] {
        let st = env.slot(s);
        if st.bootable && (st.good || st.tries > 0) {
            assert!(
                boots(dev, s),
                "cut {n}: slot {s} may boot but holds an unverified image: {env:?}"
            );
        }
    }
    assert!(
        dev.slot_holds(SlotId::A, &v1()),
        "cut {n}: the active slot was written"
    );
}

/// After the cut: power on, run health, then the updater until done.
fn recover(dev: &Device, repo: &Repo, n: u64) {
    let fw = dev.firmware();
    let booted = fw.power_on(&|s| boots(dev, s), 10).unwrap();
    let ctx = dev.context(&fw, &RealFiles, &dev.slots, "boot-3");
    let mut clock = dev.clock(hours(t0(), 3));
    after_boot(&ctx, &|| Ok(()), &mut clock).unwrap();
    if dev.state().epoch_floor == 2 {
        // Committed before or during recovery.
        assert_eq!(booted, SlotId::B, "cut {n}");
    } else {
        let plan = FaultPlan::counting();
        let out = cycle(dev, repo, Arc::new(RealFiles), plan);
        assert!(
            matches!(out, Ok(Outcome::Committed { .. })),
            "cut {n}: the retry did not converge: {out:?}"
        );
    }
    let st = dev.state();
    assert_eq!(st.epoch_floor, 2, "cut {n}: {st:?}");
    assert!(st.pending.is_none(), "cut {n}: {st:?}");
    let env = fw.env().unwrap();
    assert!(env.b.good && env.a.good, "cut {n}: {env:?}");
    assert!(
        dev.slot_holds(SlotId::B, &v2()) && dev.slot_holds(SlotId::A, &v1()),
        "cut {n}"
    );
}

#[test]
fn power_cut_at_every_write_and_fsync_of_an_update() {
    cut_everywhere(false);
}

#[test]
fn power_cut_at_every_write_and_fsync_over_an_older_committed_slot() {
    cut_everywhere(true);
}

fn cut_everywhere(old_b: bool) {
    // Count the I/O points of a clean cycle.
    let (repo, dev) = setup(old_b);
    let plan = FaultPlan::counting();
    let files = Arc::new(FaultyFiles { plan: plan.clone() });
    let out = cycle(&dev, &repo, files, plan.clone()).unwrap();
    assert!(
        matches!(out, Outcome::Committed { floor: 2, .. }),
        "{out:?}"
    );
    let total = plan.points_seen();
    assert!(total > 20, "only {total} I/O points?");
    eprintln!("a full update cycle has {total} write/fsync points; cutting at each");

    for n in 0..total {
        let (repo, dev) = setup(old_b);
        let plan = FaultPlan::cut_at(n);
        let files = Arc::new(FaultyFiles { plan: plan.clone() });
        let r = cycle(&dev, &repo, files, plan.clone());
        assert!(plan.is_cut(), "cut {n} never happened: {r:?}");
        match r {
            Err(e) if e.is_power_cut() => {}
            other => panic!("cut {n}: expected the power cut to surface, got {other:?}"),
        }
        check_invariants(&dev, n);
        recover(&dev, &repo, n);
    }
}

#[test]
fn firmware_boots_last_known_good_when_every_slot_is_out_of_tries() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("fw.json");
    let fw = SimFirmware::provision(&path, Arc::new(RealFiles), SlotId::A).unwrap();
    fw.set_trial(SlotId::B, 3).unwrap();
    // A flaky health check once marked the old slot bad too.
    fw.mark_bad(SlotId::A).unwrap();
    fw.set_trial(SlotId::B, 3).unwrap();
    // B never comes up: three tries, then nothing is eligible: A boots anyway.
    let booted = fw.power_on(&|s| s == SlotId::A, 10).unwrap();
    assert_eq!(booted, SlotId::A);
    assert_eq!(fw.env().unwrap().boots, 4);
}
