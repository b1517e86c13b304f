//! The attack suite: each case is rejected with a clear error, nothing is
//! written to the active slot, and the inactive slot never gets boot
//! priority. Repositories are built with the MSP tooling (`repo_tool`, which
//! uses tough's editor).

use crate::support::http::{Fault, Server};
use crate::support::*;
use updater::boot::SlotId;
use updater::repo_tool::SignOptions;

fn v1() -> Vec<u8> {
    image(&[1, 2, 3, 4, 5, 6], 100)
}
fn v2() -> Vec<u8> {
    image(&[1, 2, 3, 40, 50, 60, 70], 300)
}

/// A repository with v2 published and a device running v1.
fn setup(keys: u64, threshold: u64) -> (Repo, Device) {
    let repo = Repo::new(keys, threshold);
    repo.add("gw-2.0.img", &v2(), "2.0", 1);
    repo.sign_publish();
    let dev = Device::new(&repo.root(), &v1(), "1.0", 1, 128 * 1024);
    (repo, dev)
}

fn edit_json(path: &std::path::Path, f: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

#[test]
fn baseline_install_succeeds() {
    let (repo, dev) = setup(1, 1);
    let s = install_from_dir(&dev, &repo, "gw-2.0.img", hours(t0(), 1)).unwrap();
    assert_eq!(s.slot, SlotId::B);
    // Chunks 0..3 are identical to the active slot: copied, not downloaded.
    assert_eq!((s.chunks_copied, s.chunks_downloaded), (3, 4), "{s:?}");
    assert!(dev.slot_holds(SlotId::B, &v2()));
    assert!(dev.slot_holds(SlotId::A, &v1()));
    let env = dev.firmware().env().unwrap();
    assert_eq!(env.order[0], SlotId::B);
    assert_eq!(env.b.tries, 3);
}

#[test]
fn tampered_chunk_is_rejected() {
    let (repo, dev) = setup(1, 1);
    let v = dev.verify(&repo, hours(t0(), 1)).unwrap();
    let t = target(&v, "gw-2.0.img");
    let f = repo.out.join("targets").join(t.file_name());
    let mut b = std::fs::read(&f).unwrap();
    b[5 * CHUNK as usize + 17] ^= 0x01;
    std::fs::write(&f, b).unwrap();
    let e = install_from_dir(&dev, &repo, "gw-2.0.img", hours(t0(), 1)).unwrap_err();
    let msg = e.to_string();
    eprintln!("rejected: {}", msg);
    assert!(
        msg.contains("chunk 5") && msg.contains("does not match the signed chunk hash"),
        "{msg}"
    );
    dev.assert_active_untouched(&v1());
    assert!(!dev.state().b.verified);
}

#[test]
fn bad_signature_is_rejected() {
    let (repo, dev) = setup(1, 1);
    edit_json(&repo.metadata().join("timestamp.json"), |v| {
        let sig = v["signatures"][0]["sig"].as_str().unwrap().to_string();
        let first = if sig.starts_with('0') { "1" } else { "0" };
        let flipped = format!("{first}{}", &sig[1..]);
        v["signatures"][0]["sig"] = flipped.into();
    });
    let e = dev.verify(&repo, hours(t0(), 1)).unwrap_err().to_string();
    eprintln!("rejected: {}", e);
    assert!(
        e.contains("update metadata rejected") && e.to_lowercase().contains("timestamp"),
        "{e}"
    );
    let e2 = install_from_dir(&dev, &repo, "gw-2.0.img", hours(t0(), 1)).unwrap_err();
    assert!(matches!(e2, updater::Error::Trust(_)), "{e2}");
    dev.assert_active_untouched(&v1());
}

#[test]
fn signed_content_changed_after_signing_is_rejected() {
    let (repo, dev) = setup(1, 1);
    // Bump the expiry inside timestamp.json without re-signing.
    edit_json(&repo.metadata().join("timestamp.json"), |v| {
        v["signed"]["expires"] = "2099-01-01T00:00:00Z".into();
    });
    let e = dev.verify(&repo, hours(t0(), 1)).unwrap_err().to_string();
    eprintln!("rejected: {}", e);
    assert!(e.contains("update metadata rejected"), "{e}");
    dev.assert_active_untouched(&v1());
}

#[test]
fn too_few_signatures_for_the_threshold_are_rejected() {
    let (repo, dev) = setup(2, 2);
    // Sanity: with both signatures it verifies.
    dev.verify(&repo, hours(t0(), 1)).unwrap();
    let (repo, dev) = setup(2, 2);
    edit_json(&repo.metadata().join("timestamp.json"), |v| {
        v["signatures"].as_array_mut().unwrap().truncate(1);
    });
    let e = dev.verify(&repo, hours(t0(), 1)).unwrap_err().to_string();
    eprintln!("rejected: {}", e);
    assert!(e.contains("update metadata rejected"), "{e}");
    eprintln!("rejected: {}", e);
    assert!(
        e.to_lowercase().contains("threshold") || e.contains("signature"),
        "{e}"
    );
    dev.assert_active_untouched(&v1());
}

#[test]
fn signing_below_threshold_is_refused_by_the_tool() {
    let repo = Repo::new(2, 2);
    repo.add("gw-2.0.img", &v2(), "2.0", 1);
    // Take one timestamp key offline.
    let k = repo.work.join("keys/timestamp-2.pk8");
    std::fs::remove_file(k).unwrap();
    let e = updater::repo_tool::sign(
        &repo.work,
        &SignOptions {
            now: Some(t0()),
            timestamp_expires: None,
        },
    )
    .unwrap_err()
    .to_string();
    eprintln!("rejected: {}", e);
    assert!(
        e.contains("signing failed") && e.contains("at least 2 keys"),
        "{e}"
    );
}

#[test]
fn expired_timestamp_is_rejected_even_with_a_dead_rtc() {
    let (repo, dev) = setup(1, 1);
    repo.sign_publish_with(SignOptions {
        now: Some(t0()),
        timestamp_expires: Some(hours(t0(), 2)),
    });
    // The RTC says it is later than the expiry.
    let e = dev.verify(&repo, hours(t0(), 3)).unwrap_err().to_string();
    eprintln!("rejected: {}", e);
    assert!(
        e.contains("timestamp.json expired") && e.contains("freeze"),
        "{e}"
    );

    // A second box verified metadata at t0+10h (its clock floor moved
    // there, durably). Its RTC then dies (1970). Metadata that expires at or
    // before the floor is refused: the floor, not the RTC, is the clock.
    let (repo2, dev2) = setup(1, 1);
    repo2.sign_publish_with(SignOptions {
        now: Some(hours(t0(), 10)),
        timestamp_expires: Some(hours(t0(), 11)),
    });
    dev2.verify(&repo2, hours(t0(), 10)).unwrap();
    let floor = dev2.clock(jiff::Timestamp::UNIX_EPOCH).now();
    assert!(
        floor >= hours(t0(), 10),
        "the clock floor did not move: {floor}"
    );
    repo2.sign_publish_with(SignOptions {
        now: Some(t0()),
        timestamp_expires: Some(hours(t0(), 10)),
    });
    let e = dev2
        .verify(&repo2, jiff::Timestamp::UNIX_EPOCH)
        .unwrap_err()
        .to_string();
    eprintln!("rejected: {}", e);
    assert!(e.contains("expired"), "{e}");
    dev2.assert_active_untouched(&v1());
}

#[test]
fn metadata_older_than_the_build_is_expired_on_a_box_with_no_rtc() {
    // Signed long ago and expired before this binary was built; the RTC says 1970.
    let repo = Repo::new(1, 1);
    repo.add("gw-2.0.img", &v2(), "2.0", 1);
    let long_ago: jiff::Timestamp = "2020-01-01T00:00:00Z".parse().unwrap();
    repo.sign_publish_with(SignOptions {
        now: Some(long_ago),
        timestamp_expires: Some(hours(long_ago, 24)),
    });
    let dev = Device::new(&repo.root(), &v1(), "1.0", 1, 128 * 1024);
    let e = dev
        .verify(&repo, jiff::Timestamp::UNIX_EPOCH)
        .unwrap_err()
        .to_string();
    eprintln!("rejected: {}", e);
    assert!(e.contains("timestamp.json expired"), "{e}");
}

#[test]
fn replayed_older_metadata_is_rejected() {
    let (repo, dev) = setup(1, 1);
    let old = repo.dir.path().join("old-metadata");
    repo.snapshot_metadata(&old);
    repo.sign_publish(); // versions 2
    dev.verify(&repo, hours(t0(), 1)).unwrap();
    // The mirror serves the old set again.
    std::fs::remove_dir_all(repo.metadata()).unwrap();
    copy_dir(&old, &repo.metadata());
    let e = dev.verify(&repo, hours(t0(), 1)).unwrap_err().to_string();
    assert!(
        e.contains("update metadata rejected") && e.contains("previously fetched version 2"),
        "{e}"
    );
    // tough's own datastore is written without fsync; lose it entirely, as a
    // power cut could: the durable trusted copy still refuses the replay.
    std::fs::remove_dir_all(dev.state_dir.join("tuf")).unwrap();
    let e = dev.verify(&repo, hours(t0(), 1)).unwrap_err().to_string();
    eprintln!("rejected: {}", e);
    assert!(
        e.contains("already trusted by this box") && e.contains("rollback"),
        "{e}"
    );
    dev.assert_active_untouched(&v1());
}

#[test]
fn snapshot_and_targets_mix_and_match_is_rejected() {
    let (repo, dev) = setup(1, 1);
    let old = repo.dir.path().join("old-metadata");
    repo.snapshot_metadata(&old);
    // Round 2 drops the target and signs again.
    repo.add("gw-2.1.img", &image(&[9, 9], 0), "2.1", 1);
    repo.sign_publish();
    // Serve round 2's timestamp and snapshot with round 1's targets under
    // round 2's name.
    std::fs::copy(
        old.join("1.targets.json"),
        repo.metadata().join("2.targets.json"),
    )
    .unwrap();
    let e = dev.verify(&repo, hours(t0(), 1)).unwrap_err().to_string();
    eprintln!("rejected: {}", e);
    assert!(
        e.contains("update metadata rejected") && e.contains("targets"),
        "{e}"
    );
    dev.assert_active_untouched(&v1());
}

#[test]
fn oversized_target_is_refused_before_anything_is_written() {
    let repo = Repo::new(1, 1);
    let big = image(&[7; 20], 0); // 160 KiB
    repo.add("gw-big.img", &big, "3.0", 1);
    repo.sign_publish();
    let dev = Device::new(&repo.root(), &v1(), "1.0", 1, 128 * 1024);
    let before = dev.slot_bytes(SlotId::B);
    let e = install_from_dir(&dev, &repo, "gw-big.img", hours(t0(), 1))
        .unwrap_err()
        .to_string();
    eprintln!("rejected: {}", e);
    assert!(e.contains("oversized target refused"), "{e}");
    assert_eq!(
        dev.slot_bytes(SlotId::B),
        before,
        "inactive slot was touched"
    );
    dev.assert_active_untouched(&v1());
}

#[test]
fn endless_metadata_is_cut_off() {
    let (repo, dev) = setup(1, 1);
    let srv = Server::start(repo.out.clone());
    srv.always("timestamp.json", Fault::Endless);
    let cfg = dev.trust(srv.url("metadata/"), srv.url("targets/"));
    let e = updater::trust::load(
        &cfg,
        &updater::durable::RealFiles,
        &mut dev.clock(hours(t0(), 1)),
    )
    .unwrap_err()
    .to_string();
    eprintln!("rejected: {}", e);
    assert!(e.contains("update metadata rejected"), "{e}");
    eprintln!("rejected: {}", e);
    assert!(
        e.contains("endless") || e.contains("max_timestamp_size") || e.contains("exceed"),
        "{e}"
    );
    dev.assert_active_untouched(&v1());
}

#[test]
fn endless_chunk_body_is_cut_off() {
    let (repo, dev) = setup(1, 1);
    let srv = Server::start(repo.out.clone());
    let v = dev.verify(&repo, hours(t0(), 1)).unwrap();
    let t = target(&v, "gw-2.0.img").clone();
    srv.always("targets/", Fault::Endless);
    let fw = dev.firmware();
    let ctx = dev.context(&fw, &updater::durable::RealFiles, &dev.slots, "b1");
    let mut src = updater::download::http_range::HttpSource::new(
        srv.url("targets/"),
        std::time::Duration::from_secs(2),
        std::time::Duration::from_secs(2),
        std::time::Duration::from_secs(5),
        vec![],
    )
    .unwrap();
    let e = updater::install::install(&ctx, &t, &mut src, v.expires)
        .unwrap_err()
        .to_string();
    eprintln!("rejected: {}", e);
    assert!(e.contains("Range") || e.contains("more than"), "{e}");
    dev.assert_active_untouched(&v1());
}

#[test]
fn target_below_the_epoch_floor_is_refused() {
    let repo = Repo::new(1, 1);
    repo.add("gw-old.img", &v2(), "5.0", 1);
    repo.sign_publish();
    // The box already committed epoch 2.
    let dev = Device::new(&repo.root(), &v1(), "1.0", 2, 128 * 1024);
    let before = dev.slot_bytes(SlotId::B);
    let e = install_from_dir(&dev, &repo, "gw-old.img", hours(t0(), 1))
        .unwrap_err()
        .to_string();
    eprintln!("rejected: {}", e);
    assert!(
        e.contains("epoch 1 is below this box's epoch floor 2"),
        "{e}"
    );
    assert_eq!(dev.slot_bytes(SlotId::B), before);
    dev.assert_active_untouched(&v1());
}

#[test]
fn downgrade_without_recall_is_refused_and_recall_is_allowed() {
    let repo = Repo::new(1, 1);
    repo.add("gw-0.9.img", &v2(), "0.9", 1);
    repo.sign_publish();
    let dev = Device::new(&repo.root(), &v1(), "1.0", 1, 128 * 1024);
    let e = install_from_dir(&dev, &repo, "gw-0.9.img", hours(t0(), 1))
        .unwrap_err()
        .to_string();
    eprintln!("rejected: {}", e);
    assert!(
        e.contains("older than the running 1.0") && e.contains("recall"),
        "{e}"
    );
    dev.assert_active_untouched(&v1());

    let repo = Repo::new(1, 1);
    repo.add_with("gw-0.9.img", &v2(), "0.9", 1, true, vec![]);
    repo.sign_publish();
    let dev = Device::new(&repo.root(), &v1(), "1.0", 1, 128 * 1024);
    install_from_dir(&dev, &repo, "gw-0.9.img", hours(t0(), 1)).unwrap();
    assert!(dev.slot_holds(SlotId::B, &v2()));
}

#[test]
fn root_rotation_is_followed_and_old_keys_stop_working() {
    let (repo, dev) = setup(1, 1);
    dev.verify(&repo, hours(t0(), 1)).unwrap();
    // Keep the old timestamp key to forge with later.
    let old_ts = repo.dir.path().join("old-timestamp.pk8");
    std::fs::copy(repo.work.join("keys/timestamp-1.pk8"), &old_ts).unwrap();
    updater::repo_tool::rotate_root(&repo.work, &["root", "timestamp"], t0()).unwrap();
    repo.sign_publish();
    let v = dev.verify(&repo, hours(t0(), 1)).unwrap();
    assert_eq!(v.versions.root, 2);
    // The box persisted root v2 and keeps using it (the shipped root is v1).
    let v = dev.verify(&repo, hours(t0(), 1)).unwrap();
    assert_eq!(v.versions.root, 2);
    // A timestamp signed by the retired key is now refused.
    let retired = std::fs::read_dir(repo.work.join("keys/retired"))
        .unwrap()
        .count();
    assert!(retired >= 2, "old root and timestamp keys retired");
    std::fs::copy(&old_ts, repo.work.join("keys/timestamp-1.pk8")).unwrap();
    for e in std::fs::read_dir(repo.work.join("keys")).unwrap() {
        let p = e.unwrap().path();
        let n = p.file_name().unwrap().to_string_lossy().to_string();
        if n.starts_with("timestamp-v2-") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let signed = updater::repo_tool::sign(
        &repo.work,
        &SignOptions {
            now: Some(t0()),
            timestamp_expires: None,
        },
    );
    assert!(
        signed.is_err(),
        "the tool refuses: the old key is not in root v2"
    );
}
