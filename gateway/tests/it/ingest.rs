//! End to end through the real binary: MLLP in, journal, folder out, status,
//! duplicates, restart, CLI.

use std::time::Duration;

use test_support::run::succeeds;

use crate::support::{ack_code, adt, check_config, corpus_files, send_one, Gateway, Options, BIN};

#[test]
fn corpus_is_acknowledged_and_delivered_to_the_folder_exactly_once() {
    let g = Gateway::start();
    let files = corpus_files();
    assert!(files.len() >= 100, "corpus has {} files", files.len());
    let out = succeeds(
        std::process::Command::new(BIN)
            .args(["send", "--to", &g.addr()])
            .args(&files),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Messages whose MSH-15 is NE (or ER) ask for no commit ACK on success; the gateway honours that.
    let acked = stdout.matches(": AA (MSA-2").count() + stdout.matches(": CA (MSA-2").count();
    let silent = stdout.matches("(MSH-15=NE").count() + stdout.matches("(MSH-15=ER").count();
    assert!(silent > 0 && silent < 20, "{stdout}");
    assert_eq!(acked + silent, files.len(), "{stdout}");

    let delivered = g.wait_delivered(files.len());
    assert_eq!(delivered.len(), files.len());
    // Every corpus message's control id (MSH-10) appears in exactly one delivered file.
    let contents: Vec<String> = delivered
        .iter()
        .map(|p| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned())
        .collect();
    for f in &files {
        let text = String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned();
        let msh = text
            .trim_start_matches('\u{feff}')
            .lines()
            .next()
            .unwrap()
            .to_string();
        let sep = msh.chars().nth(3).unwrap();
        let control = msh.split(sep).nth(9).unwrap().to_string();
        let n = contents
            .iter()
            .filter(|c| {
                c.split(['\r', '\n']).next().unwrap_or("").split(sep).nth(9)
                    == Some(control.as_str())
            })
            .count();
        assert!(n >= 1, "{} (MSH-10 {control}) not delivered", f.display());
    }
    assert_no_phi_in_log(&g.log_text(), &files);
    let s = g.status_json();
    assert_eq!(
        s["listeners"][0]["received"].as_u64().unwrap() as usize,
        files.len()
    );
    assert_eq!(
        s["destinations"][0]["delivered"].as_u64().unwrap() as usize,
        files.len()
    );
    assert_eq!(s["destinations"][0]["pending"].as_u64().unwrap(), 0);
}

#[test]
fn retransmission_gets_the_first_ack_and_is_stored_once() {
    let g = Gateway::start();
    let msg = adt("RETX-1", "MRN1");
    let first = send_one(&g.addr(), &msg).unwrap();
    assert_eq!(ack_code(&first), "AA");
    let second = send_one(&g.addr(), &msg).unwrap();
    assert_eq!(first, second, "a retransmission must get the very same ACK");
    g.wait_delivered(1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(g.delivered_files().len(), 1);
    let s = g.status_json();
    assert_eq!(s["listeners"][0]["duplicates"], 1);
    assert_eq!(s["journal"]["messages"], 1);

    // Same control id, different bytes: stored again and audited as a reuse.
    let reuse = adt("RETX-1", "MRN2");
    let third = send_one(&g.addr(), &reuse).unwrap();
    assert_eq!(ack_code(&third), "AA");
    assert_ne!(third, first);
    g.wait_delivered(2);
    let s = g.status_json();
    assert_eq!(s["journal"]["messages"], 2);
    assert_eq!(s["journal"]["control_id_reuses"], 1);
}

#[test]
fn ack_echoes_control_id_and_swaps_applications() {
    let g = Gateway::start();
    let ack = send_one(&g.addr(), &adt("CTRL-77", "M7")).unwrap();
    let text = String::from_utf8(ack).unwrap();
    let msh: Vec<&str> = text.split('\r').next().unwrap().split('|').collect();
    assert_eq!(&msh[2..6], &["GW", "CLOUD", "ECW", "CLINIC"], "{text}");
    assert_eq!(msh[8], "ACK^A04^ACK");
    assert!(text.contains("\rMSA|AA|CTRL-77"), "{text}");
}

#[test]
fn sigterm_stops_cleanly_and_pending_messages_resume_after_restart() {
    // The folder destination points at a path that is a file, so delivery fails and messages stay pending.
    let mut g = Gateway::configure(Options::default());
    let outbox = g.outbox();
    std::fs::create_dir_all(outbox.parent().unwrap()).unwrap();
    std::fs::write(&outbox, b"not a directory").unwrap();
    g.spawn();
    for i in 0..5 {
        assert_eq!(
            ack_code(&send_one(&g.addr(), &adt(&format!("R{i}"), "MRN")).unwrap()),
            "AA"
        );
    }
    let s = g.status_json();
    assert_eq!(s["destinations"][0]["pending"], 5, "{s}");
    let status = g.stop();
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        g.log_text()
    );
    assert!(g.log_text().contains("stopped cleanly"));

    let out = g.cli(&["status"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "status must say the daemon is not running"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not running"));

    std::fs::remove_file(&outbox).unwrap();
    g.spawn();
    let files = g.wait_delivered(5);
    assert_eq!(files.len(), 5);
}

#[test]
fn human_status_names_listener_and_destination() {
    let g = Gateway::start();
    send_one(&g.addr(), &adt("S1", "MRN")).unwrap();
    let out = g.cli(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for want in ["LISTENER", "ehr", "DESTINATION", "outbox", "folder"] {
        assert!(text.contains(want), "missing {want} in:\n{text}");
    }
}

#[test]
fn check_config_names_file_line_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "data_dir = \"var\"\n\n[[listener]]\nname = \"ehr\"\nbind = \"nowhere\"\n",
    )
    .unwrap();
    let out = check_config(&cfg);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:5:"), "{err}");
    assert!(err.contains("HOST:PORT"), "{err}");

    let good = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/gateway.toml");
    let out = check_config(&good);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn second_daemon_on_same_data_dir_refuses_to_start() {
    let g = Gateway::start();
    let out = std::process::Command::new(BIN)
        .args(["run", "--config"])
        .arg(&g.config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already running"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Contract 6: the daemon's log (at debug level, over the whole corpus) carries
/// no patient name, identifier or birth date from any PID segment.
fn assert_no_phi_in_log(log: &str, files: &[std::path::PathBuf]) {
    let mut phi = std::collections::BTreeSet::new();
    for f in files {
        let bytes = std::fs::read(f).unwrap();
        let Ok(msg) = hl7::Message::parse(&bytes) else {
            continue;
        };
        for pid in msg.segments_named("PID") {
            for rep in pid.field(3).repetitions() {
                phi.insert(rep.component(1).text().into_owned());
            }
            for rep in pid.field(5).repetitions() {
                phi.insert(rep.component(1).text().into_owned());
                phi.insert(rep.component(2).text().into_owned());
            }
            phi.insert(pid.field(7).component(1).text().into_owned());
            phi.insert(pid.field(19).text().into_owned());
        }
    }
    // Short values ("1", "A") are not identifying and would match anything.
    let phi: Vec<String> = phi.into_iter().filter(|v| v.chars().count() >= 4).collect();
    assert!(
        phi.len() > 50,
        "too few PHI values extracted from the corpus: {}",
        phi.len()
    );
    assert!(
        log.lines().count() > files.len(),
        "the log is too short to mean anything"
    );
    let leaks = |text: &str| -> Vec<String> {
        let tokens: std::collections::HashSet<&str> = text
            .split(|c: char| !c.is_alphanumeric() && c != '-')
            .collect();
        phi.iter()
            .filter(|v| tokens.contains(v.as_str()))
            .cloned()
            .collect()
    };
    // The scan itself must catch a planted value.
    assert_eq!(
        leaks(&format!("INFO gateway::x: patient {} arrived", phi[0])),
        vec![phi[0].clone()]
    );
    let leaked = leaks(log);
    assert!(
        leaked.is_empty(),
        "PHI from the corpus appears in the log: {leaked:?}"
    );
}
