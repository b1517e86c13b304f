//! `[[pickup]]` folders with the real daemon: X12 and HL7 files dropped in
//! are journaled and delivered (to a folder destination, byte-identical),
//! archived or deleted; settling files are left alone; refused files go to
//! `.rejected/` with their reason and the X12 TA1/999 to `ack_dir`;
//! re-dropped files are duplicates; a reused ISA13 is refused; and under
//! `kill -9` at random moments every file ends up delivered exactly once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::crash::{seed, Rng};
use crate::support::{Gateway, Options};

fn fixture_837() -> String {
    let p =
        test_support::paths::repo_root().join("gateway/x12/tests/fixtures/claim-professional.837");
    std::fs::read_to_string(p).unwrap()
}

/// The 837P fixture with its own ISA13 (IEA02 too).
fn claim(isa13: u32) -> Vec<u8> {
    fixture_837()
        .replace("000000201", &format!("{isa13:09}"))
        .into_bytes()
}

fn hl7(control: &str) -> String {
    format!("MSH|^~\\&|LAB|CLINIC|GW|CLOUD|20240101120000||ORU^R01|{control}|P|2.5.1\r\nPID|1||TESTMRN^^^CLINIC^MR||TEST^PATIENT\r\nOBR|1\r\nOBX|1|NM|GLU||5.5\r\n")
}

struct Folders {
    claims: PathBuf,
    labs: PathBuf,
    acks: PathBuf,
}

fn gateway(root: &Path, settle: &str, claims_after: &str) -> (Gateway, Folders) {
    let f = Folders {
        claims: root.join("claims"),
        labs: root.join("labs"),
        acks: root.join("acks"),
    };
    let data = root.join("var");
    let top = format!(
        "[alerts]\nevaluate_every = \"200ms\"\n\n[[pickup]]\nname = \"claims\"\npath = {claims:?}\npattern = [\"*.837\", \"*.x12\"]\nformat = \"x12\"\nsettle = \"{settle}\"\nafter = \"{claims_after}\"\nrescan = \"500ms\"\nusage = \"T\"\nack_dir = {acks:?}\n\n\
         [[pickup]]\nname = \"labs\"\npath = {labs:?}\npattern = \"*.hl7\"\nformat = \"hl7\"\nsettle = \"{settle}\"\nafter = \"delete\"\nrescan = \"500ms\"\n",
        claims = f.claims.display().to_string(),
        labs = f.labs.display().to_string(),
        acks = f.acks.display().to_string(),
    );
    let routing = format!(
        "[[destination]]\nname = \"outbox\"\nkind = \"folder\"\npath = {out:?}\n\n[[route]]\nname = \"all\"\nfrom = [\"claims\", \"labs\"]\nto = [\"outbox\"]\n",
        out = data.join("outbox").display().to_string()
    );
    let g = Gateway::configure(Options {
        top_extra: top,
        data_dir: Some(data),
        routing: Some(routing),
        ..Options::default()
    });
    (g, f)
}

/// Write a file the way a careful writer does: a temp name, then rename.
fn drop_file(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    let tmp = dir.join(format!(".{name}.part"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

fn pickup_status(g: &Gateway, name: &str) -> serde_json::Value {
    g.status_entry("pickups", name)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn read_all(paths: &[PathBuf]) -> Vec<Vec<u8>> {
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn wait_gone(g: &Gateway, path: &Path) {
    g.wait_for(
        &format!("{} to be taken", path.display()),
        Duration::from_secs(30),
        || !path.exists(),
    );
}

#[test]
fn files_are_taken_archived_deleted_rejected_and_deduplicated() {
    let root = tempfile::tempdir().unwrap();
    let (mut g, f) = gateway(root.path(), "300ms", "archive");
    g.spawn();

    // A good claim: delivered byte for byte, archived under .done/<date>/.
    let good = claim(201);
    drop_file(&f.claims, "claim1.837", &good);
    let delivered = g.wait_delivered(1);
    assert_eq!(read_all(&delivered), vec![good.clone()]);
    wait_gone(&g, &f.claims.join("claim1.837"));
    let done: Vec<PathBuf> = files(&f.claims.join(".done"))
        .into_iter()
        .chain(
            std::fs::read_dir(f.claims.join(".done"))
                .unwrap()
                .flatten()
                .flat_map(|d| files(&d.path())),
        )
        .collect();
    assert_eq!(read_all(&done), vec![good.clone()], "{done:?}");

    // Dropped again, same name and bytes: a duplicate, archived, not sent again.
    drop_file(&f.claims, "claim1.837", &good);
    wait_gone(&g, &f.claims.join("claim1.837"));

    // Envelope errors, a production file on a test connection, a reused
    // ISA13 with other content, and not X12 at all: each rejected with
    // its reason, the TA1/999 in ack_dir.
    let s = String::from_utf8(claim(202)).unwrap();
    let bad = [
        (
            "se01.837",
            s.replace("SE*30*0001~", "SE*31*0001~"),
            "SE01",
            "IK5*R*4~",
        ),
        (
            "prod.837",
            String::from_utf8(claim(203))
                .unwrap()
                .replace("*0*T*:~", "*0*P*:~")
                .replace("*1*T*:~", "*1*P*:~"),
            "ISA15",
            "*R*020~",
        ),
        (
            "reused.x12",
            String::from_utf8(good.clone())
                .unwrap()
                .replace("TESTCLAIM0001", "TESTCLAIM0009"),
            "already journaled",
            "*R*025~",
        ),
        (
            "hello.837",
            "hello, not X12\n".to_string(),
            "no ISA segment",
            "",
        ),
    ];
    for (name, body, _, _) in &bad {
        drop_file(&f.claims, name, body.as_bytes());
    }
    for (name, _, reason, ack) in &bad {
        let rejected = f.claims.join(".rejected").join(name);
        g.wait_for(&format!("{name} rejected"), Duration::from_secs(30), || {
            rejected.exists()
        });
        let why = std::fs::read_to_string(
            f.claims
                .join(".rejected")
                .join(format!("{name}.reason.txt")),
        )
        .unwrap();
        assert!(why.contains(reason), "{name}: {why}");
        if !ack.is_empty() {
            let acks: Vec<String> = files(&f.acks)
                .iter()
                .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(name))
                .map(|p| std::fs::read_to_string(p).unwrap())
                .collect();
            assert!(
                acks.iter().any(|a| a.contains(ack)),
                "{name}: no {ack:?} in {acks:?}"
            );
        }
    }

    // The daemon's TA1/999 pass pyx12's x12valid.
    if let Some(py) = test_support::pyx12::python() {
        let acks = files(&f.acks);
        assert!(acks.len() >= 3, "{acks:?}");
        for (file, problems) in test_support::pyx12::x12valid(&py, &acks) {
            assert!(problems.is_empty(), "{}: {problems:#?}", file.display());
        }
    }

    // HL7: a batch file (FHS/BHS, CRLF) of two messages, and a plain one;
    // each message delivered, the files deleted. A file with a broken
    // message is rejected.
    let batch = format!(
        "FHS|^~\\&|LAB\r\nBHS|^~\\&|LAB\r\n{}{}BTS|2\r\nFTS|1\r\n",
        hl7("L1"),
        hl7("L2")
    );
    drop_file(&f.labs, "batch.hl7", batch.as_bytes());
    drop_file(&f.labs, "one.hl7", hl7("L3").as_bytes());
    drop_file(&f.labs, "broken.hl7", b"MSH|^~\\&|LAB\rPID|1\r");
    let delivered = g.wait_delivered(4);
    assert_eq!(delivered.len(), 4);
    let texts: Vec<String> = read_all(&delivered)
        .iter()
        .map(|b| String::from_utf8_lossy(b).to_string())
        .collect();
    for c in ["|L1|", "|L2|", "|L3|"] {
        assert_eq!(
            texts.iter().filter(|t| t.contains(c)).count(),
            1,
            "{c}: {texts:?}"
        );
    }
    assert!(texts
        .iter()
        .filter(|t| t.contains("|L1|"))
        .all(|t| !t.contains('\n')));
    wait_gone(&g, &f.labs.join("batch.hl7"));
    wait_gone(&g, &f.labs.join("one.hl7"));
    g.wait_for("broken.hl7 rejected", Duration::from_secs(30), || {
        f.labs.join(".rejected/broken.hl7.reason.txt").exists()
    });
    assert!(files(&f.labs).is_empty(), "{:?}", files(&f.labs));

    // The counts, and nothing was sent twice.
    let claims = pickup_status(&g, "claims");
    assert_eq!(claims["taken"], 1, "{claims}");
    assert_eq!(claims["duplicates"], 1, "{claims}");
    assert_eq!(claims["rejected"], 4, "{claims}");
    assert_eq!(claims["in_progress"], 0, "{claims}");
    let labs = pickup_status(&g, "labs");
    assert_eq!(labs["taken"], 2, "{labs}");
    assert_eq!(labs["rejected"], 1, "{labs}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(g.delivered_files().len(), 4);
    // Files waiting in .rejected/ raise an alert, which clears once they
    // are dealt with.
    let alert = |g: &Gateway| {
        g.status_json()["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == "pickup_rejected/claims")
    };
    g.wait_for("the pickup_rejected alert", Duration::from_secs(30), || {
        alert(&g)
    });
    std::fs::remove_dir_all(f.claims.join(".rejected")).unwrap();
    g.wait_for(
        "the pickup_rejected alert to clear",
        Duration::from_secs(30),
        || !alert(&g),
    );
    let text = String::from_utf8_lossy(&g.cli(&["status"]).stdout).to_string();
    assert!(
        text.contains("pickup claims: 1 file(s) taken, 1 duplicate(s), 4 rejected (0 still in .rejected/), 0 in progress"),
        "{text}"
    );
    g.stop();
}

#[test]
fn a_file_still_being_written_is_not_taken_until_it_settles() {
    let root = tempfile::tempdir().unwrap();
    let (mut g, f) = gateway(root.path(), "1s", "delete");
    g.spawn();
    let body = claim(301);
    std::fs::create_dir_all(&f.claims).unwrap();
    let path = f.claims.join("slow.837");
    // Written in pieces 100 ms apart for 2 s: never still for 1 s.
    let pieces: Vec<&[u8]> = body.chunks(body.len() / 20 + 1).collect();
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&path).unwrap();
        for (i, p) in pieces.iter().enumerate() {
            file.write_all(p).unwrap();
            file.flush().unwrap();
            std::thread::sleep(Duration::from_millis(100));
            assert!(path.exists(), "taken while being written");
            // Half-way (scans have seen it): status counts it in progress.
            if i == pieces.len() / 2 {
                let claims = pickup_status(&g, "claims");
                assert_eq!(claims["in_progress"], 1, "{claims}");
                assert_eq!(claims["taken"], 0, "{claims}");
                let text = String::from_utf8_lossy(&g.cli(&["status"]).stdout).to_string();
                assert!(
                    text.contains("pickup claims: 0 file(s) taken, 0 duplicate(s), 0 rejected (0 still in .rejected/), 1 in progress"),
                    "{text}"
                );
            }
        }
    }
    wait_gone(&g, &path);
    let delivered = g.wait_delivered(1);
    assert_eq!(read_all(&delivered), vec![body]);
    g.wait_for(
        "the pickup's status to count it taken",
        Duration::from_secs(10),
        || {
            let claims = pickup_status(&g, "claims");
            claims["taken"] == 1 && claims["in_progress"] == 0
        },
    );
    assert!(!f.claims.join(".rejected").exists());
    g.stop();
}

const PER_CYCLE: usize = 40;

#[test]
fn kill9_at_random_moments_leaves_every_file_delivered_exactly_once() {
    let root = tempfile::tempdir().unwrap();
    let (mut g, f) = gateway(root.path(), "0s", "archive");
    let mut rng = Rng(seed("PICKUP_CRASH_SEED"));
    let mut dropped: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut isa13 = 1000;
    let mut interrupted = 0;
    for cycle in 0..10 {
        for _ in 0..PER_CYCLE {
            isa13 += 1;
            let body = claim(isa13);
            drop_file(&f.claims, &format!("c{isa13}.837"), &body);
            dropped.insert(body, 0);
        }
        let before = files(&f.claims).len();
        g.spawn();
        // Kill within the pickup's first pass: once it has taken a file,
        // a random few ms later (bounded wait; on a fast idle machine a
        // fixed delay would often land after the pass).
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while files(&f.claims).len() == before && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(rng.next() % 40));
        g.kill9();
        // Every file is in the folder, or journaled (and so delivered once
        // the daemon runs again), never both as two messages.
        let left = files(&f.claims).len();
        interrupted += usize::from(left > 0);
        println!("cycle {cycle}: {left} file(s) still in the folder");
    }
    g.spawn();
    g.wait_for(
        "the pickup folder to empty",
        Duration::from_secs(120),
        || files(&f.claims).is_empty(),
    );
    g.wait_drained(Duration::from_secs(120));
    for body in read_all(&g.delivered_files()) {
        match dropped.get_mut(&body) {
            Some(n) => *n += 1,
            None => panic!("delivered bytes that were never dropped"),
        }
    }
    let wrong: Vec<usize> = dropped.values().copied().filter(|n| *n != 1).collect();
    assert!(
        wrong.is_empty(),
        "{} file(s) not delivered exactly once: {wrong:?}",
        wrong.len()
    );
    assert_eq!(g.delivered_files().len(), 10 * PER_CYCLE);
    // Files journaled just before a kill and so read again (the window
    // between the journal's commit and the rename).
    let again = pickup_status(&g, "claims")["duplicates"].clone();
    println!("{interrupted} cycle(s) killed mid-pass; {again} file(s) found already journaled");
    assert!(
        interrupted >= 3,
        "the kills missed the pickup: {interrupted} cycle(s) interrupted"
    );
    assert!(
        !f.claims.join(".rejected").exists(),
        "{:?}",
        files(&f.claims.join(".rejected"))
    );
    g.stop();
}

/// Responses from the clearinghouse: the route with `transform =
/// "x12-json"` posts each one's JSON (what `gateway x12 json` prints) to a
/// billing service, the plain route writes the X12 unchanged where eCW
/// imports it.
#[test]
fn responses_go_to_ecw_unchanged_and_to_billing_as_x12_json() {
    let root = tempfile::tempdir().unwrap();
    let billing = crate::support::http_peer::HttpPeer::start();
    let inbox = root.path().join("responses");
    let data = root.path().join("var");
    let top = format!(
        "[[pickup]]\nname = \"responses\"\npath = {inbox:?}\npattern = [\"*.835\", \"*.999\", \"*.277ca\"]\nformat = \"x12\"\nsettle = \"200ms\"\nrescan = \"500ms\"\n",
        inbox = inbox.display().to_string()
    );
    let routing = format!(
        "[[destination]]\nname = \"outbox\"\nkind = \"folder\"\npath = {out:?}\n\n\
         [[destination]]\nname = \"billing\"\nkind = \"http\"\nurl = \"{url}\"\n\n\
         [[route]]\nname = \"to-ecw\"\nfrom = [\"responses\"]\nto = [\"outbox\"]\n\n\
         [[route]]\nname = \"to-billing\"\nfrom = [\"responses\"]\nto = [\"billing\"]\ntransform = \"x12-json\"\ntypes = [\"835\", \"999\", \"277CA\"]\n",
        out = data.join("outbox").display().to_string(),
        url = billing.url("/remits"),
    );
    let mut g = Gateway::configure(Options {
        top_extra: top,
        data_dir: Some(data),
        routing: Some(routing),
        ..Options::default()
    });
    g.spawn();
    let fixtures = test_support::paths::repo_root().join("gateway/x12/tests/fixtures");
    let names = [
        "remit-plb-reversal-denial.835",
        "ack-partial.999",
        "claim-ack.277ca",
    ];
    let mut originals = Vec::new();
    for n in names {
        let bytes = std::fs::read(fixtures.join(n)).unwrap();
        drop_file(&inbox, n, &bytes);
        originals.push(bytes);
    }
    let delivered = g.wait_delivered(3);
    let mut got = read_all(&delivered);
    got.sort();
    originals.sort();
    assert_eq!(got, originals, "eCW's copies are not the files as received");
    g.wait_for("3 JSON posts", Duration::from_secs(30), || {
        billing.count() >= 3
    });
    let mut kinds = Vec::new();
    for r in billing.received() {
        assert_eq!(r.header("content-type"), Some("application/json"));
        let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let t = json["interchanges"][0]["groups"][0]["transactions"][0]["transaction"]
            .as_str()
            .unwrap()
            .to_string();
        let n = names
            .iter()
            .find(|n| match t.as_str() {
                "835" => n.ends_with(".835"),
                "999" => n.ends_with(".999"),
                _ => n.ends_with(".277ca"),
            })
            .unwrap();
        let cli = std::process::Command::new(crate::support::BIN)
            .args(["x12", "json"])
            .arg(fixtures.join(n))
            .output()
            .unwrap();
        let expected: serde_json::Value = serde_json::from_slice(&cli.stdout).unwrap();
        assert_eq!(
            json, expected,
            "{n}: the posted JSON is not `gateway x12 json`'s"
        );
        kinds.push(t);
    }
    kinds.sort();
    assert_eq!(kinds, ["277CA", "835", "999"]);
    g.stop();
}
