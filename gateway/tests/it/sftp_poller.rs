//! The `sftp` poller against a real OpenSSH sshd on loopback
//! (`support::sshd`): responses in the server's outbound folder reach
//! eCW's folder once and leave the server only after they are journaled
//! (`format = "file"` and the default `format = "x12"`, where each file is
//! checked like a `[[pickup]]` X12 file: envelope errors, ISA15 against
//! `usage` and a reused ISA13 are refused, quarantined and left on the
//! server, their TA1/999 written to the poller's `ack_dir`); and under `kill -9` at random moments while a file is in hand,
//! every remote file is journaled exactly once and then moved (`move_to`).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::alone;
use crate::support::crash::{seed, Rng};
use crate::support::daemon::{Gateway, Options};
use crate::support::sshd::Sshd;

/// An sftp poller on the server's "outbound" folder, routed to a folder
/// destination (where eCW imports responses); `extra` adds poller settings
/// (`format`, `usage`, `move_to`).
fn poller_routing(s: &Sshd, files: &Path, inbox: &Path, extra: &str) -> String {
    let kh = files.join("clearinghouse.known_hosts");
    std::fs::write(&kh, s.known_hosts_line()).unwrap();
    let key = files.join("client_key");
    std::fs::copy(&s.client_key, &key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    format!(
        "[[poller]]\nname = \"responses\"\nkind = \"sftp\"\nurl = \"{url}\"\n\
         pattern = [\"*.999\", \"*.835\", \"*.TA1\", \"*.277*\"]\ninterval = \"300ms\"\n{extra}\
         [poller.auth]\ntype = \"ssh_key\"\nkey_file = {key:?}\nknown_hosts = {kh:?}\n\n\
         [[destination]]\nname = \"ecw-inbox\"\nkind = \"folder\"\npath = {inbox:?}\n\n\
         [[route]]\nname = \"responses\"\nfrom = [\"responses\"]\nto = [\"ecw-inbox\"]\n",
        url = s.url("outbound"),
        key = key.display().to_string(),
        kh = kh.display().to_string(),
        inbox = inbox.display().to_string(),
    )
}

fn inbox_files(inbox: &Path) -> Vec<Vec<u8>> {
    if !inbox.is_dir() {
        return Vec::new();
    }
    let mut v: Vec<Vec<u8>> = test_support::paths::files_with_extension(inbox, "hl7")
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    v.sort();
    v
}

fn chown_outbound(s: &Sshd, owner: &str) {
    let st = std::process::Command::new("chown")
        .arg(owner)
        .arg(s.folder("outbound"))
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn responses_arrive_once_and_leave_the_server_only_after_they_are_journaled() {
    let Some(s) = Sshd::start() else { return };
    let files = tempfile::tempdir().unwrap();
    let inbox = files.path().join("ecw-inbox");
    let out = s.folder("outbound");
    // The user may read but not delete: every round re-lists the same
    // files, and the journal must take each once.
    chown_outbound(&s, "root:root");
    let mut want = Vec::new();
    for (name, body) in [
        ("R1.999", "ISA*00*999 one~".to_string()),
        ("R2.999", "ISA*00*999 two~".to_string()),
        ("ERA.835", format!("ISA*00*835~{}", "CLP*1~".repeat(5000))),
    ] {
        std::fs::write(out.join(name), &body).unwrap();
        want.push(body.into_bytes());
    }
    // Not taken: a dot file (an upload in progress) and another pattern.
    std::fs::write(out.join(".R3.999.part"), "partial").unwrap();
    std::fs::write(out.join("notes.txt"), "not a response").unwrap();
    want.sort();
    let g = Gateway::start_with(Options {
        routing: Some(poller_routing(
            &s,
            files.path(),
            &inbox,
            "format = \"file\"\n",
        )),
        ..Default::default()
    });
    let poller = |g: &Gateway| {
        g.status_json()["pollers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "responses")
            .cloned()
            .unwrap()
    };
    g.wait_for(
        "three responses in the inbox",
        Duration::from_secs(60),
        || inbox_files(&inbox).len() >= 3,
    );
    // Several more rounds see the same files (removal refused).
    g.wait_for(
        "re-listings answered as duplicates",
        Duration::from_secs(30),
        || poller(&g)["duplicates"].as_u64().unwrap_or(0) >= 6,
    );
    let p = poller(&g);
    assert_eq!(p["kind"], "sftp", "{p}");
    assert_eq!(p["stored"], 3, "{p}");
    assert!(
        p["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("cannot remove"),
        "{p}"
    );
    assert_eq!(inbox_files(&inbox), want);
    assert!(
        out.join("R1.999").exists(),
        "removed although the delete was refused?"
    );

    // Removal allowed again: the journaled files leave the server, the others stay.
    chown_outbound(
        &s,
        &format!(
            "{}:{}",
            crate::support::sshd::USER,
            crate::support::sshd::USER
        ),
    );
    g.wait_for(
        "the journaled files to leave the server",
        Duration::from_secs(30),
        || {
            !out.join("R1.999").exists()
                && !out.join("R2.999").exists()
                && !out.join("ERA.835").exists()
        },
    );
    assert!(out.join(".R3.999.part").exists() && out.join("notes.txt").exists());
    g.wait_drained(Duration::from_secs(30));
    assert_eq!(inbox_files(&inbox), want, "a response was delivered twice");
    assert_eq!(poller(&g)["stored"], 3);
    let human = String::from_utf8(g.cli(&["status"]).stdout).unwrap();
    assert!(human.contains("poller responses (sftp): "), "{human}");
}

fn poller(g: &Gateway) -> serde_json::Value {
    g.status_entry("pollers", "responses")
}

fn fixture(name: &str) -> String {
    let p = test_support::paths::repo_root()
        .join("gateway/x12/tests/fixtures")
        .join(name);
    std::fs::read_to_string(p).unwrap()
}

/// Put a file in a server folder as a careful writer does (a dot name the
/// poller never takes, then a rename).
fn place(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.part"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

#[test]
fn x12_responses_are_checked_like_pickup_files_and_refused_ones_stay_on_the_server() {
    let Some(s) = Sshd::start() else { return };
    let files = tempfile::tempdir().unwrap();
    let inbox = files.path().join("ecw-inbox");
    let acks = files.path().join("ecw-responses");
    let out = s.folder("outbound");
    let ack999 = fixture("ack-partial.999");
    let era = fixture("remit-plb-reversal-denial.835");
    // Clean: one of each response; the 999 a second time under another
    // name (the same interchange: a duplicate, removed, not sent again).
    let good = [
        ("R1.999", ack999.clone()),
        (
            "ACK.TA1",
            fixture("ack-rejected.ta1").replace("000009001", "000009002"),
        ),
        ("CLM.277CA", fixture("claim-ack.277ca")),
        ("ERA.835", era.clone()),
    ];
    let refused = [
        // SE01 off by 900: an envelope error.
        (
            "BADSE.835",
            era.replace("000000101", "000000102")
                .replacen("\nSE*", "\nSE*9", 1),
        ),
        // ISA15 P on a usage = "T" connection.
        (
            "PROD.999",
            ack999
                .replace("000009001", "000009003")
                .replacen("*0*T*:~", "*0*P*:~", 1),
        ),
        // ISA13 9001 of this sender/receiver again, with other content.
        (
            "REUSE.999",
            ack999.replacen("AK1*HC*201*", "AK1*HC*202*", 1),
        ),
    ];
    for (name, body) in good.iter().chain(refused.iter()) {
        place(&out, name, body.as_bytes());
    }
    place(&out, "R1-again.999", ack999.as_bytes());
    let mut want: Vec<Vec<u8>> = good.iter().map(|(_, b)| b.clone().into_bytes()).collect();
    want.sort();
    let g = Gateway::start_with(Options {
        routing: Some(poller_routing(
            &s,
            files.path(),
            &inbox,
            &format!(
                "usage = \"T\"\nack_dir = {:?}\n",
                acks.display().to_string()
            ),
        )),
        ..Default::default()
    });
    g.wait_for(
        "the clean responses to leave the server",
        Duration::from_secs(60),
        || good.iter().all(|(n, _)| !out.join(n).exists()) && !out.join("R1-again.999").exists(),
    );
    g.wait_drained(Duration::from_secs(30));
    g.wait_for(
        "the refused files' TA1/999 in ack_dir",
        Duration::from_secs(30),
        || ack_names(&acks).len() >= refused.len(),
    );
    let first_acks = ack_names(&acks);
    // Several more rounds list the refused files: they are not refused
    // (nor quarantined, nor acknowledged) again.
    let polls = poller(&g)["polls"].as_u64().unwrap();
    g.wait_for("three more rounds", Duration::from_secs(30), || {
        poller(&g)["polls"].as_u64().unwrap() >= polls + 3
    });
    assert_eq!(
        inbox_files(&inbox),
        want,
        "each clean response once, byte for byte"
    );
    for (name, body) in &refused {
        assert_eq!(
            std::fs::read_to_string(out.join(name)).unwrap(),
            *body,
            "{name} must stay on the server"
        );
    }
    let p = poller(&g);
    assert_eq!(p["stored"], 4, "{p}");
    assert_eq!(p["duplicates"], 1, "{p}");
    assert_eq!(p["unmappable"], 3, "{p}");
    assert_eq!(p["left_on_server"], 3, "{p}");
    assert_eq!(g.status_json()["journal"]["quarantined"], 3);
    // R1-again.999 a duplicate of R1.999 (another name, the same
    // interchange) shows the files were keyed as X12, not as raw files.
    let log = g.log_text();
    for (name, why) in [
        ("BADSE.835", "refused"),
        ("PROD.999", "refused"),
        ("REUSE.999", "refused"),
    ] {
        assert!(
            log.contains(&format!("file {name} {why}")),
            "{name}: {}",
            g.log_tail()
        );
    }
    let human = String::from_utf8(g.cli(&["status"]).stdout).unwrap();
    assert!(human.contains("3 refused (quarantined)"), "{human}");
    assert!(human.contains("last refused: file "), "{human}");
    // Each refused file has its acknowledgment beside eCW's responses,
    // written once: a 999 for the SE01 error (IK5 R with AK9), a TA1 for
    // the wrong ISA15 and for the reused ISA13 (TA105 025).
    assert_eq!(ack_names(&acks), first_acks, "acknowledged again");
    for (name, kind, must) in [
        ("BADSE.835", "999", "IK5*R"),
        ("PROD.999", "ta1", "TA1*"),
        ("REUSE.999", "ta1", "*R*025"),
    ] {
        let mine: Vec<&String> = first_acks
            .iter()
            .filter(|a| a.starts_with(&format!("{name}.")) && a.ends_with(&format!(".{kind}")))
            .collect();
        assert_eq!(mine.len(), 1, "{name}: {first_acks:?}");
        let text = std::fs::read_to_string(acks.join(mine[0])).unwrap();
        assert!(text.starts_with("ISA*"), "{name}: {text}");
        assert!(text.contains(must), "{name}: {text}");
    }
    assert_eq!(first_acks.len(), 3, "{first_acks:?}");
    assert!(
        p["last_refused"]
            .as_str()
            .unwrap()
            .contains("TA1/999 written to"),
        "{p}"
    );
}

/// The acknowledgment files in `dir` (no temp files), sorted.
fn ack_names(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

/// Whether an sshd session has one of `names` in `dir` open (the poller's
/// download in flight): its fds as /proc shows them. Matched by name too,
/// since other tests may run sshd sessions of their own at the same time
/// (and a chrooted session's paths may show relative to its chroot).
fn download_in_flight(dir: &Path, names: &BTreeMap<String, Vec<u8>>) -> bool {
    let marker = format!("/{}/", dir.file_name().unwrap().to_string_lossy());
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    for p in procs.flatten() {
        let pid = p.file_name();
        if !pid.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("sshd") {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                let t = target.to_string_lossy();
                let name = t.rsplit('/').next().unwrap_or("");
                if t.contains(&marker) && names.contains_key(name) {
                    return true;
                }
            }
        }
    }
    false
}

/// A valid 835 of about `bytes` with its own ISA13.
fn remittance(isa13: u32, bytes: usize) -> Vec<u8> {
    let text = String::from_utf8(x12::bench::generate_835(bytes)).unwrap();
    text.replacen("*000000001*0*T*", &format!("*{isa13:09}*0*T*"), 1)
        .replacen("IEA*1*000000001~", &format!("IEA*1*{isa13:09}~"), 1)
        .into_bytes()
}

/// Files in a server folder (dot files, i.e. uploads in progress, too).
fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

const CYCLES: usize = 10;
const PER_CYCLE: usize = 5;

/// `kill -9` of the gateway at a random moment while the poller has a file
/// in hand, 10 times: every remote file is journaled (delivered) exactly
/// once and ends up in `move_to`, none is left or doubled.
#[test]
fn kill9_while_a_file_is_in_hand_journals_every_remote_file_exactly_once() {
    let _alone = alone();
    let Some(s) = Sshd::start() else { return };
    let files = tempfile::tempdir().unwrap();
    let inbox = files.path().join("ecw-inbox");
    let out = s.folder("outbound");
    let archive = s.folder("archive");
    let mut g = Gateway::configure(Options {
        routing: Some(poller_routing(
            &s,
            files.path(),
            &inbox,
            "move_to = \"/archive\"\n",
        )),
        ..Default::default()
    });
    let mut rng = Rng(seed("SFTP_POLLER_CRASH_SEED"));
    let mut placed: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut in_hand = 0;
    for cycle in 0..CYCLES {
        for i in 0..PER_CYCLE {
            let isa13 = (cycle * 100 + i + 1) as u32;
            let name = format!("ERA{isa13:05}.835");
            let body = remittance(isa13, 1_500_000);
            place(&out, &name, &body);
            placed.insert(name, body);
        }
        g.spawn();
        // Let a random number of files through first (so kills also land
        // after a journal commit, before the remote move), then wait
        // (bounded) for a download to be in flight and kill a random few
        // ms later: a fixed delay would land between files or after the
        // round on an idle machine, and before the first under load.
        let through = count(&archive) + (rng.next() % PER_CYCLE as u64) as usize;
        let deadline = Instant::now() + Duration::from_secs(60);
        while count(&archive) < through && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        while !download_in_flight(&out, &placed) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(rng.next() % 40));
        let hit = download_in_flight(&out, &placed);
        g.kill9();
        in_hand += usize::from(hit);
        println!(
            "cycle {cycle}: killed {} a download, {} file(s) left on the server, {} moved",
            if hit { "during" } else { "outside" },
            count(&out),
            count(&archive)
        );
    }
    g.spawn();
    g.wait_for(
        "every file moved to the archive",
        Duration::from_secs(180),
        || count(&out) == 0,
    );
    g.wait_drained(Duration::from_secs(120));
    // Each remote file delivered once (a second journal entry would be a
    // second file in the inbox), byte for byte, and moved whole.
    let mut want: Vec<Vec<u8>> = placed.values().cloned().collect();
    want.sort();
    assert_eq!(
        inbox_files(&inbox).len(),
        placed.len(),
        "journaled more or fewer times than placed"
    );
    assert!(
        inbox_files(&inbox) == want,
        "a delivered file differs from the remote one"
    );
    for (name, body) in &placed {
        let moved = std::fs::read(archive.join(name))
            .unwrap_or_else(|e| panic!("{name} not in the archive: {e}"));
        assert!(moved == *body, "{name} changed on the move");
    }
    let p = poller(&g);
    assert_eq!(p["unmappable"], 0, "{p}");
    println!("{in_hand} of {CYCLES} kills landed while a download was in flight");
    assert!(
        in_hand >= 1,
        "no kill landed while a file was in hand ({in_hand} of {CYCLES})"
    );
}
