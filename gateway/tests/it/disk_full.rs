//! Disk full (contract 1 and 5): when the journal cannot take a message the
//! sender gets AE with ERR 207 and a reason, never AA, and service recovers
//! by itself when space returns.

use std::path::Path;

use test_support::tmpfs::Tmpfs;

use crate::support::{ack_code, adt, send_one, Gateway, Options};

/// Fill the filesystem with a filler file until `write` fails (true disk full) or `bytes` are written.
fn fill(path: &Path, bytes: Option<u64>) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        if bytes.is_some_and(|b| written >= b) {
            break;
        }
        match f.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n as u64,
        }
    }
    let _ = f.sync_all();
}

fn expect_ae_207(ack: &[u8]) {
    let text = String::from_utf8_lossy(ack);
    assert_eq!(ack_code(ack), "AE", "{text}");
    assert!(
        text.contains("207"),
        "ERR must carry table 0357 code 207: {text}"
    );
}

#[test]
fn watermark_refuses_with_ae_and_recovers_when_space_returns() {
    let Some(fs) = Tmpfs::mount("64m") else {
        return;
    };
    let data = fs.path().join("var");
    let g = Gateway::start_with(Options {
        data_dir: Some(data),
        ..Default::default()
    });
    assert_eq!(
        ack_code(&send_one(&g.addr(), &adt("D0", "M")).unwrap()),
        "AA"
    );
    // Fill to ~97%: over the default 95% refuse watermark.
    fill(&fs.path().join("filler"), Some(62 * 1024 * 1024));
    for i in 0..3 {
        let ack = send_one(&g.addr(), &adt(&format!("D1-{i}"), "M")).unwrap();
        expect_ae_207(&ack);
        assert!(
            String::from_utf8_lossy(&ack).contains("full"),
            "the reason must say the disk is full"
        );
    }
    std::fs::remove_file(fs.path().join("filler")).unwrap();
    let ack = send_one(&g.addr(), &adt("D2", "M")).unwrap();
    assert_eq!(
        ack_code(&ack),
        "AA",
        "service must recover by itself: {}",
        String::from_utf8_lossy(&ack)
    );
    let s = g.status_json();
    assert!(s["listeners"][0]["errored"].as_u64().unwrap() >= 3);
}

#[test]
fn truly_full_disk_never_gets_aa_and_recovers() {
    let Some(fs) = Tmpfs::mount("48m") else {
        return;
    };
    let g = Gateway::start_with(Options {
        data_dir: Some(fs.path().join("var")),
        // Watermark at 100%: only a real ENOSPC stops the journal.
        top_extra: "[storage]\nwarn_at_percent = 99\nrefuse_at_percent = 100\n".into(),
        ..Default::default()
    });
    assert_eq!(
        ack_code(&send_one(&g.addr(), &adt("E0", "M")).unwrap()),
        "AA"
    );
    fill(&fs.path().join("filler"), None);
    let mut big = adt("E1", "M");
    big.extend(
        format!(
            "OBX|1|ED|PDF^Report||^AP^PDF^Base64^{}\r",
            "QUJD".repeat(600_000)
        )
        .bytes(),
    );
    let mut saw_ae = false;
    for i in 0..5 {
        let mut m = big.clone();
        let id = format!("E1-{i}");
        m = String::from_utf8(m)
            .unwrap()
            .replacen("|E1|", &format!("|{id}|"), 1)
            .into_bytes();
        let ack = send_one(&g.addr(), &m).unwrap();
        match ack_code(&ack).as_str() {
            "AE" => {
                expect_ae_207(&ack);
                saw_ae = true;
            }
            other => panic!(
                "a full disk must answer AE, got {other}: {}",
                String::from_utf8_lossy(&ack)
            ),
        }
    }
    assert!(saw_ae);
    std::fs::remove_file(fs.path().join("filler")).unwrap();
    let mut recovered = false;
    for i in 0..20 {
        let ack = send_one(&g.addr(), &adt(&format!("E2-{i}"), "M")).unwrap();
        if ack_code(&ack) == "AA" {
            recovered = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert!(
        recovered,
        "no AA after space returned; log:\n{}",
        g.log_text()
    );
}

#[test]
fn quota_refuses_with_ae_and_never_aa() {
    let g = Gateway::start_with(Options {
        top_extra: "[storage]\nquota_mb = 4\n".into(),
        ..Default::default()
    });
    let mut refused_at = None;
    for i in 0..40 {
        let mut m = adt(&format!("Q{i}"), "M");
        m.extend(format!("OBX|1|TX|X^Y||{}\r", "Z".repeat(300_000)).bytes());
        let ack = send_one(&g.addr(), &m).unwrap();
        match (ack_code(&ack).as_str(), refused_at) {
            ("AA", None) => {}
            ("AE", _) => {
                expect_ae_207(&ack);
                refused_at.get_or_insert(i);
            }
            (code, _) => panic!(
                "message {i}: {code} after the quota was reached: {}",
                String::from_utf8_lossy(&ack)
            ),
        }
    }
    assert!(
        refused_at.is_some(),
        "4 MB quota never enforced over 12 MB of messages"
    );
}
