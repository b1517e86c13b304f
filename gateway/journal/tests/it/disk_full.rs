//! Disk-full behaviour on a real, small filesystem (tmpfs, 8 MiB). Needs
//! root (mount): under `CI=true` its absence fails the tests.

use journal::{Appended, Journal, JournalConfig, JournalError};
use test_support::tmpfs::Tmpfs;

use crate::support::sized as msg;

#[tokio::test]
async fn enospc_is_full_and_appends_resume_when_space_returns() {
    let Some(t) = Tmpfs::mount("8m") else {
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
    let Some(t) = Tmpfs::mount("8m") else {
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
