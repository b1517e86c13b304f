//! Disk-full behaviour on a real, small filesystem (tmpfs, 8 MiB).
//! Needs root (mount); skipped with a message otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;

use hl7::HeaderSummary;
use journal::{Appended, Journal, JournalConfig, JournalError, NewMessage};

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount_tmpfs(dir: &Path, size: &str) -> Option<Mount> {
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    ok.then(|| Mount(dir.to_path_buf()))
}

fn msg(cid: &str, size: usize) -> NewMessage {
    let mut raw = format!("MSH|^~\\&|ECW|CLINIC|GW||20240101||MDM^T02|{cid}|P|2.5.1\rOBX|1|ED|||")
        .into_bytes();
    raw.extend((0..size).map(|i| (i * 7 % 251) as u8));
    NewMessage {
        source: "docs".into(),
        peer: "10.0.0.5:1".into(),
        received_at_ms: 1,
        meta: gateway::accept::hl7_meta(&HeaderSummary {
            sending_application_raw: "ECW".into(),
            sending_facility_raw: "CLINIC".into(),
            control_id: cid.into(),
            ..Default::default()
        }),
        raw,
        ack: format!("MSA|AA|{cid}").into_bytes(),
        destinations: vec![journal::Enqueue::plain("cloud")],
        patient_lane: 0,
    }
}

#[tokio::test]
async fn enospc_is_full_and_appends_resume_when_space_returns() {
    let t = tempfile::tempdir().unwrap();
    let Some(_m) = mount_tmpfs(t.path(), "8m") else {
        eprintln!("SKIP: cannot mount tmpfs (not root?)");
        return;
    };
    let filler = t.path().join("filler");
    std::fs::write(&filler, vec![0u8; 3 * 1024 * 1024]).unwrap();
    let mut cfg = JournalConfig::new(t.path().join("journal"));
    // 100%: only a real ENOSPC stops us, so the ENOSPC path is what is tested.
    cfg.refuse_at_percent = 100;
    cfg.warn_at_percent = 50;
    let j = Journal::open(cfg.clone()).unwrap();
    let mut acked: Vec<(u64, String)> = Vec::new();
    let mut full = 0;
    for i in 0..60 {
        let cid = format!("F{i}");
        match j.append(msg(&cid, 300 * 1024)).await {
            Ok(Appended::Stored { id }) => {
                assert_eq!(full, 0, "Ok after Full, before any space was freed");
                acked.push((id, cid));
            }
            Ok(d) => panic!("unexpected {d:?}"),
            Err(JournalError::Full { reason }) => {
                if full == 0 {
                    eprintln!("append {i}: Full: {reason}");
                    assert!(reason.contains("free disk space"), "{reason}");
                }
                full += 1;
            }
            Err(e) => panic!("append {i}: expected Full, got {e}"),
        }
    }
    assert!(full > 0, "the 8 MiB filesystem never filled");
    assert!(!acked.is_empty());
    eprintln!(
        "acked {} then Full x{full}; stats {:?}; commits {:?}",
        acked.len(),
        j.stats().disk_percent_used,
        j.commit_stats()
    );
    // Space returns: no reopen, no restart.
    std::fs::remove_file(&filler).unwrap();
    let mut resumed = None;
    for i in 0..3 {
        let cid = format!("R{i}");
        match j.append(msg(&cid, 300 * 1024)).await {
            Ok(Appended::Stored { id }) => {
                resumed = Some(id);
                acked.push((id, cid));
                break;
            }
            other => eprintln!("retry {i} after freeing space: {other:?}"),
        }
    }
    assert!(
        resumed.is_some(),
        "appends did not resume after space was freed"
    );
    for (id, cid) in &acked {
        let m = j
            .get(*id)
            .unwrap()
            .unwrap_or_else(|| panic!("acked {id} missing"));
        assert_eq!(m.meta.control_id, *cid);
    }
    j.close().await.unwrap();
    // Everything acknowledged is still there after a reopen.
    let j = Journal::open(cfg).unwrap();
    for (id, cid) in &acked {
        let m = j
            .get(*id)
            .unwrap()
            .unwrap_or_else(|| panic!("acked {id} missing after reopen"));
        assert_eq!(m.meta.control_id, *cid);
        assert_eq!(m.raw, msg(cid, 300 * 1024).raw);
    }
    j.close().await.unwrap();
}

#[tokio::test]
async fn watermark_refuses_before_the_disk_is_full() {
    let t = tempfile::tempdir().unwrap();
    let Some(_m) = mount_tmpfs(t.path(), "8m") else {
        eprintln!("SKIP: cannot mount tmpfs (not root?)");
        return;
    };
    let mut cfg = JournalConfig::new(t.path().join("journal"));
    cfg.refuse_at_percent = 70;
    let j = Journal::open(cfg).unwrap();
    let filler = t.path().join("filler");
    std::fs::write(&filler, vec![0u8; 6 * 1024 * 1024]).unwrap();
    match j.append(msg("W1", 10)).await {
        Err(JournalError::Full { reason }) => {
            assert!(reason.contains("% full (refuse at 70%)"), "{reason}");
            assert!(reason.contains("free disk space"), "{reason}");
        }
        other => panic!("expected Full, got {other:?}"),
    }
    assert!(j.stats().disk_percent_used >= 70);
    std::fs::remove_file(&filler).unwrap();
    assert!(matches!(
        j.append(msg("W1", 10)).await,
        Ok(Appended::Stored { .. })
    ));
}
