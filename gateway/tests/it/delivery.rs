//! Store-and-forward delivery end to end: the real gateway binary, MLLP in,
//! and destinations that are real servers on loopback failing in scripted
//! ways (refused connections, 503, 429 + Retry-After, 400 +
//! OperationOutcome, hangs, responses cut short), plus a real Python `hl7`
//! MLLP peer for the mllp destination.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gateway::net::mllp_client::Client;

use crate::support::http_peer::{operation_outcome, HttpPeer, Mode};
use crate::support::peers::start_mllp_lab;
use crate::support::{ack_code, control_id, rt, send_one, tail, Gateway, Options};

/// An ADT^A08 for patient `mrn`, control id `cid`, with a marker in PV1-19.
fn a08(cid: &str, mrn: &str, marker: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|ECW|CLINIC|GW|CLOUD|20240101120000||ADT^A08^ADT_A01|{cid}|P|2.5.1\rEVN|A08|20240101120000\rPID|1||{mrn}^^^CLINIC^MR||TEST^PATIENT||19800101|F\rPV1|1|O|||||||||||||||||{marker}\r"
    )
    .into_bytes()
}

fn http_routing(url: &str, extra: &str) -> String {
    format!(
        "[[destination]]\nname = \"cloud\"\nkind = \"http\"\nurl = \"{url}\"\n{extra}\n\n[[route]]\nname = \"all\"\nfrom = [\"ehr\"]\nto = [\"cloud\"]\n"
    )
}

fn start(routing: String) -> Gateway {
    Gateway::start_with(Options {
        routing: Some(routing),
        ..Default::default()
    })
}

/// Send `per_patient` messages for each of `patients` patients over
/// `conns` connections; a patient always uses the same connection, so its
/// messages are received in sequence order. Control ids are "P{p}-{seq}".
fn send_patients(addr: &str, patients: usize, per_patient: usize, conns: usize) {
    rt().block_on(async {
        let mut tasks = Vec::new();
        for c in 0..conns {
            let addr = addr.to_string();
            tasks.push(tokio::spawn(async move {
                let mut client = Client::connect(&addr, None, Duration::from_secs(30))
                    .await
                    .unwrap();
                for seq in 0..per_patient {
                    for p in (c..patients).step_by(conns) {
                        let msg = a08(&format!("P{p}-{seq}"), &format!("MRN{p}"), &format!("V{p}"));
                        let ack = client.exchange(&msg).await.unwrap();
                        assert_eq!(ack_code(&ack), "AA");
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

/// MSH-10 of a delivered message: the HL7 body's, or a FHIR Bundle's identifier.
fn delivered_control_id(body: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(b) => b["identifier"]["value"].as_str().unwrap_or("").to_string(),
        Err(_) => control_id(body),
    }
}

#[test]
fn outage_then_recovery_delivers_everything_in_patient_order_with_bounded_probes() {
    let peer = HttpPeer::start();
    peer.set_mode(Mode::Refuse);
    // The FHIR destination: every message becomes a transaction Bundle.
    let g = start(format!(
        "[[destination]]\nname = \"cloud\"\nkind = \"fhir\"\nurl = \"{}\"\nconcurrency = 16\ncircuit_failures = 3\nprobe_interval = \"300ms\"\nbackoff_initial = \"50ms\"\nbackoff_max = \"1s\"\ntimeout = \"5s\"\n\n[[route]]\nname = \"all\"\nfrom = [\"ehr\"]\nto = [\"cloud\"]\ntransform = \"fhir\"\n",
        peer.url("/fhir")
    ));
    let (patients, per) = (200, 50);
    send_patients(&g.addr(), patients, per, 8);
    let s = g.dest_status("cloud");
    assert_eq!(s["pending"], (patients * per) as u64, "{s}");
    assert_ne!(s["circuit"], "closed", "{s}");
    let probes_refused = s["probes"].as_u64().unwrap();

    // Still down, now answering 503: count what reaches the server.
    peer.set_mode(Mode::Status(503, None));
    let outage = Duration::from_secs(3);
    std::thread::sleep(outage);
    let during = peer.count();
    // One probe per 300 ms, plus what was in flight when it went down.
    let bound = (outage.as_millis() / 300) as usize + 16 + 3 + 2;
    assert!(
        during <= bound,
        "{during} requests reached the server in a {outage:?} outage (bound {bound})"
    );
    assert!(during >= 3, "the gateway never probed ({during} requests)");

    peer.set_mode(Mode::Up);
    g.wait_for("the backlog to drain", Duration::from_secs(180), || {
        g.dest_status("cloud")["pending"] == 0
    });

    let mut per_patient: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut delivered = HashSet::new();
    for r in peer.received().iter().filter(|r| r.answered == 200) {
        assert_eq!(r.header("Content-Type"), Some("application/fhir+json"));
        let cid = delivered_control_id(&r.body);
        let (p, seq) = cid[1..].split_once('-').unwrap();
        assert!(delivered.insert(cid.clone()), "{cid} delivered twice");
        per_patient
            .entry(p.parse().unwrap())
            .or_default()
            .push(seq.parse().unwrap());
        assert_eq!(
            r.header("Idempotency-Key").map(|k| !k.is_empty()),
            Some(true)
        );
    }
    assert_eq!(delivered.len(), patients * per);
    for (p, seqs) in &per_patient {
        let want: Vec<usize> = (0..per).collect();
        assert_eq!(seqs, &want, "patient {p} delivered out of order");
    }
    let s = g.dest_status("cloud");
    assert_eq!(s["circuit"], "closed", "{s}");
    assert_eq!(s["delivered"], (patients * per) as u64);
    // The log summarised the outage instead of a line per message.
    let log = g.log_text();
    let failure_lines = log.matches("attempt failed").count() + log.matches("still down").count();
    assert!(failure_lines < 50, "{failure_lines} failure lines logged");
    assert!(
        log.contains("is down") && log.contains("is back after"),
        "{}",
        tail(&log)
    );
    eprintln!("probes while refused: {probes_refused}; requests during the 503 phase: {during}");
}

#[test]
fn poison_message_is_dead_lettered_holds_its_patient_only_and_replays() {
    let peer = HttpPeer::start();
    peer.add_rule(Box::new(|r| {
        r.text().contains("POISON").then(|| {
            (
                400,
                operation_outcome("Patient.birthDate: invalid date for this server"),
            )
        })
    }));
    let g = start(http_routing(
        &peer.url("/ingest"),
        "backoff_initial = \"50ms\"",
    ));
    let send = |cid: &str, mrn: &str, marker: &str| {
        assert_eq!(
            ack_code(&send_one(&g.addr(), &a08(cid, mrn, marker)).unwrap()),
            "AA"
        )
    };
    send("A-1", "A", "POISON");
    send("A-2", "A", "ok");
    send("B-1", "B", "ok");
    send("C-1", "C", "ok");
    send("B-2", "B", "ok");
    g.wait_for("other patients' messages", Duration::from_secs(30), || {
        let ok: HashSet<String> = peer
            .received()
            .iter()
            .filter(|r| r.answered == 200)
            .map(|r| control_id(&r.body))
            .collect();
        ["B-1", "B-2", "C-1"].iter().all(|c| ok.contains(*c))
    });
    g.wait_for("the dead letter", Duration::from_secs(30), || {
        g.dest_status("cloud")["dead_letters"] == 1
    });
    // A-2 waits behind A-1 (policy hold): never sent.
    std::thread::sleep(Duration::from_millis(500));
    assert!(peer.received().iter().all(|r| control_id(&r.body) != "A-2"));
    let s = g.dest_status("cloud");
    assert_eq!(s["held_lanes"], 1, "{s}");
    assert_eq!(s["pending"], 1, "{s}");

    let out = g.cli(&["dlq", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let dl = &list[0];
    assert_eq!(dl["destination"], "cloud");
    let reason = dl["last_error"].as_str().unwrap();
    assert!(
        reason.starts_with("HTTP 400") && reason.contains("invalid date for this server"),
        "{reason}"
    );
    let seq = dl["seq"].as_u64().unwrap().to_string();
    let show = g.cli(&["dlq", "show", &seq]);
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        text.contains("ADT^A08") && text.contains("A-1") && text.contains("gateway dlq replay"),
        "{text}"
    );
    let human = String::from_utf8_lossy(&g.cli(&["status"]).stdout).into_owned();
    assert!(human.contains("held behind dead letters"), "{human}");
    // The log names the dead letter but not the server's diagnostics.
    assert!(!g.log_text().contains("invalid date for this server"));

    // The cause is fixed; the operator replays: A-1 then A-2, in order.
    peer.clear_rules();
    let out = g.cli(&["dlq", "replay", &seq]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    g.wait_for("the replay", Duration::from_secs(30), || {
        g.dest_status("cloud")["pending"] == 0
    });
    let a: Vec<String> = peer
        .received()
        .iter()
        .filter(|r| r.answered == 200 && control_id(&r.body).starts_with("A-"))
        .map(|r| control_id(&r.body))
        .collect();
    assert_eq!(a, vec!["A-1", "A-2"]);
    assert_eq!(g.dest_status("cloud")["dead_letters"], 0);
    assert_eq!(g.dest_status("cloud")["held_lanes"], 0);

    // A second poison message, purged instead: its lane goes on.
    peer.add_rule(Box::new(|r| {
        r.text()
            .contains("POISON")
            .then(|| (422, operation_outcome("unprocessable")))
    }));
    send("D-1", "D", "POISON");
    send("D-2", "D", "ok");
    g.wait_for("the second dead letter", Duration::from_secs(30), || {
        g.dest_status("cloud")["dead_letters"] == 1
    });
    let list: serde_json::Value =
        serde_json::from_slice(&g.cli(&["dlq", "list", "--json"]).stdout).unwrap();
    let seq = list[0]["seq"].as_u64().unwrap().to_string();
    assert!(g.cli(&["dlq", "purge", &seq]).status.success());
    g.wait_for("D-2 after the purge", Duration::from_secs(30), || {
        peer.received()
            .iter()
            .any(|r| r.answered == 200 && control_id(&r.body) == "D-2")
    });
    let empty = g.cli(&["dlq", "list"]);
    assert!(String::from_utf8_lossy(&empty.stdout).contains("empty"));

    // Every action is in the audit trail.
    let mut g = g;
    assert!(g.stop().success());
    let j =
        journal::Journal::open(journal::JournalConfig::new(g.data_dir().join("journal"))).unwrap();
    let kinds: Vec<String> = j
        .audit_events(None, 100_000)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    for k in ["dead_letter", "dlq_replay", "dlq_purge", "delivered"] {
        assert!(
            kinds.iter().any(|x| x == k),
            "no {k} audit event in {kinds:?}"
        );
    }
}

#[test]
fn retry_after_hang_and_dropped_responses_are_retried() {
    let peer = HttpPeer::start();
    let answered_429 = Arc::new(AtomicUsize::new(0));
    let a = answered_429.clone();
    peer.add_rule(Box::new(move |r| {
        (control_id(&r.body) == "RA-1" && a.fetch_add(1, Ordering::SeqCst) == 0)
            .then(|| (429, "{}".to_string()))
    }));
    let g = start(http_routing(
        &peer.url("/ingest"),
        "timeout = \"1s\"\nbackoff_initial = \"50ms\"\nbackoff_max = \"200ms\"",
    ));
    // 429 without Retry-After from the rule above is plain throttling; now
    // one with Retry-After: 2 seconds, set as the mode for the first try.
    peer.set_mode(Mode::Status(429, Some("2".into())));
    assert_eq!(
        ack_code(&send_one(&g.addr(), &a08("RA-2", "R", "x")).unwrap()),
        "AA"
    );
    g.wait_for("the 429", Duration::from_secs(10), || peer.count() >= 1);
    let first = peer.received()[0].at;
    peer.set_mode(Mode::Up);
    g.wait_for(
        "delivery after Retry-After",
        Duration::from_secs(20),
        || peer.received().iter().any(|r| r.answered == 200),
    );
    let ok = peer
        .received()
        .into_iter()
        .find(|r| r.answered == 200)
        .unwrap();
    assert!(
        ok.at.duration_since(first) >= Duration::from_millis(1900),
        "retried {:?} after a Retry-After of 2 s",
        ok.at.duration_since(first)
    );

    // The server hangs: the attempt times out and is retried.
    peer.set_mode(Mode::Hang);
    let before = peer.count();
    assert_eq!(
        ack_code(&send_one(&g.addr(), &a08("H-1", "H", "x")).unwrap()),
        "AA"
    );
    g.wait_for("the hung request", Duration::from_secs(10), || {
        peer.count() > before
    });
    std::thread::sleep(Duration::from_millis(1500));
    peer.set_mode(Mode::Up);
    // The response is cut short: retried too.
    g.wait_for("H-1 delivered", Duration::from_secs(20), || {
        peer.received()
            .iter()
            .any(|r| r.answered == 200 && control_id(&r.body) == "H-1")
    });
    peer.set_mode(Mode::DropMidResponse);
    let before = peer.count();
    assert_eq!(
        ack_code(&send_one(&g.addr(), &a08("D-1", "D", "x")).unwrap()),
        "AA"
    );
    g.wait_for("the cut response", Duration::from_secs(10), || {
        peer.count() > before
    });
    peer.set_mode(Mode::Up);
    g.wait_for("D-1 delivered", Duration::from_secs(20), || {
        g.dest_status("cloud")["pending"] == 0
    });
    let d1 = peer
        .received()
        .iter()
        .filter(|r| control_id(&r.body) == "D-1")
        .count();
    assert!(d1 >= 2, "D-1 was not retried after the cut response");
    // A plain 500 is retried as well.
    peer.add_rule(Box::new(|r| {
        (control_id(&r.body) == "E-1" && r.header("X-Never").is_none() && fastrand_once())
            .then(|| (500, "oops".to_string()))
    }));
    assert_eq!(
        ack_code(&send_one(&g.addr(), &a08("E-1", "E", "x")).unwrap()),
        "AA"
    );
    g.wait_for("E-1 delivered", Duration::from_secs(20), || {
        peer.received()
            .iter()
            .any(|r| r.answered == 200 && control_id(&r.body) == "E-1")
    });
    assert!(g.dest_status("cloud")["failed_attempts"].as_u64().unwrap() >= 4);
    assert_eq!(g.dest_status("cloud")["dead_letters"], 0);
}

/// True the first time it is called (per process), then false.
fn fastrand_once() -> bool {
    static ONCE: AtomicUsize = AtomicUsize::new(0);
    ONCE.fetch_add(1, Ordering::SeqCst) == 0
}

#[test]
fn sigkill_during_delivery_loses_nothing_and_duplicates_only_lost_answers() {
    let peer = HttpPeer::start();
    // A slow server, so the kill lands while requests are in flight.
    peer.add_rule(Box::new(|_| {
        std::thread::sleep(Duration::from_millis(5));
        None
    }));
    let mut g = start(http_routing(&peer.url("/ingest"), "concurrency = 8"));
    let n = 400;
    send_patients(&g.addr(), 40, n / 40, 4);
    g.wait_for("some deliveries", Duration::from_secs(30), || {
        peer.count() >= 100
    });
    g.kill9();
    // Let the server read what the dead process had already sent (bytes in
    // socket buffers, connections still in the accept backlog): all of it
    // was received by the destination before the restart.
    std::thread::sleep(Duration::from_millis(500));
    let before: HashSet<String> = peer
        .received()
        .iter()
        .map(|r| control_id(&r.body))
        .collect();
    assert!(before.len() < n, "everything was delivered before the kill");
    g.spawn();
    g.wait_for("the rest after restart", Duration::from_secs(60), || {
        g.dest_status("cloud")["pending"] == 0
    });
    let mut count: HashMap<String, usize> = HashMap::new();
    for r in peer.received().iter().filter(|r| r.answered == 200) {
        *count.entry(control_id(&r.body)).or_default() += 1;
    }
    assert_eq!(count.len(), n, "not every message was delivered");
    for (cid, c) in &count {
        if *c > 1 {
            assert!(
                before.contains(cid),
                "{cid} delivered {c} times but the server had not received it before the kill"
            );
        }
    }
    let dups = count.values().filter(|c| **c > 1).count();
    assert!(dups <= 8 + 1, "{dups} duplicates for 8 lanes in flight");
    eprintln!("delivered {n} across a SIGKILL with {dups} duplicate(s)");
}

#[test]
fn mllp_destination_against_python_hl7_peer() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("lab.log");
    let Some((lab, port)) = start_mllp_lab(&log) else {
        return;
    };
    let routing = format!(
        "[[destination]]\nname = \"lab\"\nkind = \"mllp\"\nurl = \"mllp://127.0.0.1:{port}\"\ntimeout = \"1s\"\nbackoff_initial = \"50ms\"\nbackoff_max = \"300ms\"\non_dead_letter = \"continue\"\n\n[[route]]\nname = \"orders\"\nfrom = [\"ehr\"]\nto = [\"lab\"]\ntypes = [\"ADT^*\"]\n"
    );
    let g = start(routing);
    for cid in ["L-1", "L-NAK-AE", "L-AR-ONCE", "L-SILENT-ONCE", "L-2"] {
        assert_eq!(
            ack_code(&send_one(&g.addr(), &a08(cid, "LABPAT", "x")).unwrap()),
            "AA"
        );
    }
    // An ORU is filtered by the route's types: journaled, not sent.
    let oru = b"MSH|^~\\&|ECW|CLINIC|GW|CLOUD|20240101||ORU^R01|O-1|P|2.5.1\rPID|1||Z9\r";
    assert_eq!(ack_code(&send_one(&g.addr(), oru).unwrap()), "AA");
    g.wait_for("the lab to settle", Duration::from_secs(30), || {
        let s = g.dest_status("lab");
        s["pending"] == 0 && s["dead_letters"] == 1
    });
    let text = std::fs::read_to_string(&log).unwrap();
    let answers: Vec<(&str, &str)> = text.lines().filter_map(|l| l.split_once('\t')).collect();
    let of = |cid: &str| -> Vec<&str> {
        answers
            .iter()
            .filter(|(c, _)| *c == cid)
            .map(|(_, a)| *a)
            .collect()
    };
    assert_eq!(of("L-1"), vec!["AA"]);
    assert_eq!(
        of("L-AR-ONCE"),
        vec!["AR", "AA"],
        "AR is retried with the same MSH-10"
    );
    assert_eq!(
        of("L-SILENT-ONCE"),
        vec!["silent", "AA"],
        "a timeout is retried"
    );
    assert_eq!(of("L-NAK-AE"), vec!["AE"], "AE is not retried");
    assert_eq!(of("L-2"), vec!["AA"]);
    assert!(of("O-1").is_empty(), "the filtered ORU reached the lab");
    // Order: L-2 (same patient, policy continue) after L-SILENT-ONCE's success.
    let pos = |cid: &str, a: &str| answers.iter().position(|x| *x == (cid, a)).unwrap();
    assert!(pos("L-SILENT-ONCE", "AA") < pos("L-2", "AA"));
    let list: serde_json::Value =
        serde_json::from_slice(&g.cli(&["dlq", "list", "--json"]).stdout).unwrap();
    let reason = list[0]["last_error"].as_str().unwrap();
    assert!(
        reason.contains("AE") && reason.contains("PID-3 unknown to the lab"),
        "{reason}"
    );
    drop(lab);
}

/// `max_attempts` holds across a restart: failed attempts are recorded in
/// the journal (only on failure) and counted on after the restart; a
/// message delivered after failures leaves no record behind.
#[test]
fn attempt_counts_survive_a_restart() {
    let peer = HttpPeer::start();
    peer.set_mode(Mode::Status(503, None));
    let mut g = start(http_routing(
        &peer.url("/ingest"),
        "max_attempts = 4\nbackoff_initial = \"50ms\"\nbackoff_max = \"100ms\"\ncircuit_failures = 1000\non_dead_letter = \"continue\"",
    ));
    assert_eq!(
        ack_code(&send_one(&g.addr(), &a08("AT-1", "AT", "x")).unwrap()),
        "AA"
    );
    // The second request means the first failure was recorded: the outbox
    // writes the record before it schedules the retry.
    g.wait_for("two failed attempts", Duration::from_secs(30), || {
        peer.count() >= 2
    });
    g.kill9();
    let before_restart = peer.count();
    let restarted_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    g.spawn();
    g.wait_ready();
    g.wait_for("the dead letter", Duration::from_secs(30), || {
        g.dest_status("cloud")["dead_letters"] == 1
    });
    let after_restart = peer.count() - before_restart;
    assert!(
        (1..=3).contains(&after_restart),
        "{after_restart} attempts after the restart (of max_attempts = 4, {before_restart} before it): the count started again"
    );
    let out = g.cli(&["dlq", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let dl = &list[0];
    let attempts = dl["attempts"].as_u64().unwrap_or(0);
    assert_eq!(attempts, 4, "{dl}");
    let first = dl["first_attempt_ms"].as_u64().unwrap_or(u64::MAX);
    assert!(
        first < restarted_ms,
        "the first attempt is from before the restart: {dl}"
    );
    assert!(g.log_text().contains("go on with the attempt counts"));

    // Failures, then a delivery: the record goes with it.
    assert_eq!(
        ack_code(&send_one(&g.addr(), &a08("AT-2", "AU", "x")).unwrap()),
        "AA"
    );
    g.wait_for("a failure of AT-2", Duration::from_secs(30), || {
        peer.received()
            .iter()
            .any(|r| control_id(&r.body) == "AT-2")
    });
    peer.set_mode(Mode::Up);
    g.wait_for("AT-2 delivered", Duration::from_secs(30), || {
        g.dest_status("cloud")["pending"] == 0
    });
    assert!(g.stop().success());
    let j =
        journal::Journal::open(journal::JournalConfig::new(g.data_dir().join("journal"))).unwrap();
    let left = j.list_state("attempts:cloud", &[], None, 10).unwrap();
    assert!(left.is_empty(), "records left behind: {left:?}");
}
