//! `gateway messages search|show` against a real daemon: every state a
//! message can be in (delivered, dead, replayed by an operator, filtered),
//! found by control id, patient, type and state; the journey; the PHI
//! rules (a searched MRN appears in no output, log or audit text; `--raw`
//! and `--patient` are audited with the operator; no lane or hash shown).

use std::time::Duration;

use serde_json::Value;

use crate::support::{adt, send_one, Gateway, Options};

const MRN: &str = "MRN-TRACE-4711";

fn oru(control_id: &str, mrn: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|ECW|CLINIC|GW|CLOUD|20240101120000||ORU^R01|{control_id}|P|2.5.1\rPID|1||{mrn}^^^CLINIC^MR||TEST^PATIENT||19800101|F\rOBR|1||R1|CBC\rOBX|1|NM|HGB||13.5|g/dL|||||F\r"
    )
    .into_bytes()
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `gateway messages search ARGS --json`: its rows (checks it succeeded).
fn search(g: &Gateway, args: &[&str], seen: &mut String) -> Vec<Value> {
    let mut all = vec!["messages", "search", "--json"];
    all.extend_from_slice(args);
    let out = g.cli(&all);
    seen.push_str(&text(&out));
    assert!(out.status.success(), "{args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn states(row: &Value) -> Vec<(String, String)> {
    row["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["destination"].as_str().unwrap().to_string(),
                d["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pair(d: &str, s: &str) -> (String, String) {
    (d.to_string(), s.to_string())
}

#[test]
fn search_and_show_trace_every_state_and_keep_the_mrn_out_of_every_output() {
    let closed = crate::support::free_port();
    let data = tempfile::tempdir().unwrap();
    let out_dir = data.path().join("var").join("outbox");
    let routing = format!(
        "[[destination]]\nname = \"outbox\"\nkind = \"folder\"\npath = {out:?}\n\n[[destination]]\nname = \"cloud\"\nkind = \"http\"\nurl = \"http://127.0.0.1:{closed}/r\"\nmax_attempts = 1\nbackoff_initial = \"100ms\"\n\n[[route]]\nname = \"adt\"\nfrom = [\"ehr\"]\nto = [\"outbox\", \"cloud\"]\ntypes = [\"ADT^*\"]\n",
        out = out_dir.display().to_string()
    );
    let mut g = Gateway::start_with(Options {
        routing: Some(routing),
        data_dir: Some(data.path().join("var")),
        ..Default::default()
    });
    for m in [
        adt("TRACE-1", MRN),
        adt("TRACE-2", "MRN-OTHER-99"),
        oru("TRACE-ORU", MRN),
    ] {
        let ack = send_one(&g.addr(), &m).unwrap();
        assert_eq!(crate::support::ack_code(&ack), "AA");
    }
    g.wait_for("two dead letters", Duration::from_secs(30), || {
        g.dest_status("cloud")["dead_letters"].as_u64().unwrap_or(0) >= 2
    });
    g.wait_delivered(2);
    let mut seen = String::new();

    // By control id: one message, delivered on one destination, dead on the other.
    let rows = search(&g, &["--control-id", "TRACE-1"], &mut seen);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let id1 = rows[0]["id"].as_u64().unwrap();
    assert_eq!(rows[0]["source"], "ehr");
    assert_eq!(rows[0]["control_id"], "TRACE-1");
    assert!(rows[0]["message_type"]
        .as_str()
        .unwrap()
        .starts_with("ADT^A04"));
    assert_eq!(
        states(&rows[0]),
        vec![pair("cloud", "dead"), pair("outbox", "delivered")]
    );

    // Replay its dead letter (dead again: the cloud is still down), by an operator.
    let list: Value = serde_json::from_slice(&g.cli(&["dlq", "list", "--json"]).stdout).unwrap();
    assert!(
        !list.to_string().contains("patient_lane"),
        "the unkeyed lane hash stays out of every output: {list}"
    );
    let seq = list
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["message_id"].as_u64() == Some(id1))
        .map(|d| d["seq"].as_u64().unwrap())
        .unwrap();
    let replay = g.cli(&["dlq", "replay", &seq.to_string()]);
    assert!(replay.status.success(), "{}", text(&replay));
    g.wait_for("dead again", Duration::from_secs(30), || {
        let r = search(&g, &["--control-id", "TRACE-1"], &mut String::new());
        states(&r[0]) == vec![pair("cloud", "dead"), pair("outbox", "delivered")]
            && g.dest_status("cloud")["dead_letters"].as_u64() == Some(2)
    });

    // By patient: the ADT and the filtered ORU, newest first; never the other patient.
    let by_patient = search(&g, &["--patient", MRN], &mut seen);
    let ids: Vec<u64> = by_patient
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{by_patient:?}");
    assert!(ids[0] > ids[1] && ids[1] == id1, "{ids:?}");
    assert_eq!(
        search(&g, &["--patient", &format!("{MRN}^^^CLINIC")], &mut seen).len(),
        2
    );
    assert!(search(&g, &["--patient", &format!("{MRN}^^^ELSEWHERE")], &mut seen).is_empty());
    assert!(search(&g, &["--patient", "MRN-NOBODY"], &mut seen).is_empty());

    // By state, type, destination; the limit pages through the results.
    let filtered = search(&g, &["--state", "filtered"], &mut seen);
    assert_eq!(filtered.len(), 1);
    assert_eq!(filtered[0]["control_id"], "TRACE-ORU");
    assert_eq!(filtered[0]["filtered"], true);
    assert_eq!(search(&g, &["--type", "ORU^R01"], &mut seen).len(), 1);
    let dead = search(
        &g,
        &["--state", "dead", "--destination", "cloud"],
        &mut seen,
    );
    assert_eq!(dead.len(), 2);
    assert!(search(&g, &["--state", "pending"], &mut seen).is_empty());
    assert_eq!(search(&g, &["--limit", "1"], &mut seen).len(), 1);
    assert_eq!(search(&g, &["--since", "1h"], &mut seen).len(), 3);
    assert!(search(&g, &["--until", "2000-01-01"], &mut seen).is_empty());
    assert!(search(&g, &["--source", "nowhere"], &mut seen).is_empty());
    let bad = g.cli(&["messages", "search", "--state", "lost"]);
    assert!(!bad.status.success() && text(&bad).contains("pending, delivered, dead"));

    // The journey, as text and JSON: received, ACK, both destinations, the replay and who.
    let show = g.cli(&["messages", "show", &id1.to_string()]);
    let shown = text(&show);
    seen.push_str(&shown);
    assert!(show.status.success(), "{shown}");
    for want in [
        "received",
        "from ehr",
        "ACK AA sent",
        "cloud",
        "dead letter",
        "outbox",
        "delivered",
        "dlq_replay",
    ] {
        assert!(shown.contains(want), "{want:?} missing from:\n{shown}");
    }
    let out = g.cli(&["messages", "show", &id1.to_string(), "--json"]);
    seen.push_str(&text(&out));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["raw"], Value::Null);
    let kinds: Vec<&str> = j["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "dead_letter").count(),
        2,
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"delivered") && kinds.contains(&"dlq_replay"),
        "{kinds:?}"
    );
    let replayed = j["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "dlq_replay")
        .unwrap();
    assert!(
        replayed["operator"].as_str().unwrap().contains("pid"),
        "the operator is who the kernel says connected: {replayed}"
    );
    let cloud = j["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["destination"] == "cloud")
        .unwrap();
    assert_eq!(cloud["state"], "dead");
    assert!(cloud["failures"].as_u64().unwrap() >= 1);
    assert!(cloud["last_error"].as_str().is_some_and(|e| !e.is_empty()));
    let missing = g.cli(&["messages", "show", "999999"]);
    assert!(!missing.status.success() && text(&missing).contains("gateway messages search"));

    // --raw shows the HL7 (PHI) and is audited as phi_view; --patient as phi_lookup.
    let raw = g.cli(&["messages", "show", &id1.to_string(), "--raw"]);
    assert!(
        text(&raw).contains(&format!("PID|1||{MRN}")),
        "{}",
        text(&raw)
    );
    std::thread::sleep(Duration::from_millis(300));
    let audit = g.cli(&["audit", "export", "--json"]);
    let audit_text = text(&audit);
    assert!(audit.status.success(), "{audit_text}");
    let events: Vec<Value> = audit_text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let detail_of = |kind: &str, what: &str| {
        events
            .iter()
            .filter(|e| e["kind"] == kind)
            .map(|e| e["detail"].as_str().unwrap().to_string())
            .find(|d| d.contains(what))
            .unwrap_or_else(|| panic!("no {kind} {what} event in {audit_text}"))
    };
    let view = detail_of("phi_view", "what=messages_show_raw");
    assert!(
        view.contains(&format!("message={id1}")) && view.contains("by="),
        "{view}"
    );
    let lookup = detail_of("phi_lookup", "what=messages_search_patient");
    assert!(
        lookup.contains("found=2") && lookup.contains("by="),
        "{lookup}"
    );
    seen.push_str(&audit_text);

    // The MRN searched for is nowhere but in the --raw view: not in any
    // other CLI output, the audit trail, the status or the daemon's log.
    seen.push_str(&g.status_json().to_string());
    g.stop();
    seen.push_str(&g.log_text());
    assert!(!seen.contains(MRN), "the MRN leaked into an output");
    assert!(!seen.contains("MRN-OTHER-99"));
    use std::os::unix::fs::PermissionsExt;
    let key = g.data_dir().join("patient-index.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the patient index key is private");
}

/// Issue 17: a destination that fails twice, then accepts. The journey
/// lists both failed attempts (time, outcome, error class: never the
/// server's text) and then the delivery, in order. A message delivered at
/// its first attempt leaves nothing in the journey state: a healthy
/// destination's fast path gains no journal write.
#[test]
fn the_journey_lists_each_failed_attempt_then_the_delivery() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use crate::support::control_id;
    use crate::support::http_peer::HttpPeer;

    let peer = HttpPeer::start();
    let failed = Arc::new(AtomicUsize::new(0));
    let n = failed.clone();
    peer.add_rule(Box::new(move |r| {
        (control_id(&r.body) == "HIST-2" && n.fetch_add(1, Ordering::SeqCst) < 2)
            .then(|| (503, "{\"diagnostics\":\"SERVER-TEXT-SECRET\"}".to_string()))
    }));
    let routing = format!(
        "[[destination]]\nname = \"cloud\"\nkind = \"http\"\nurl = \"{}\"\nbackoff_initial = \"50ms\"\nbackoff_max = \"100ms\"\ncircuit_failures = 1000\n\n[[route]]\nname = \"all\"\nfrom = [\"ehr\"]\nto = [\"cloud\"]\n",
        peer.url("/ingest")
    );
    let mut g = Gateway::start_with(Options {
        routing: Some(routing),
        ..Default::default()
    });
    let ack = send_one(&g.addr(), &adt("HIST-1", "MRN-HIST-A")).unwrap();
    assert_eq!(crate::support::ack_code(&ack), "AA");
    g.wait_for("HIST-1 delivered", Duration::from_secs(30), || {
        peer.received()
            .iter()
            .any(|r| r.answered == 200 && control_id(&r.body) == "HIST-1")
            && g.dest_status("cloud")["pending"] == 0
    });
    let ack = send_one(&g.addr(), &adt("HIST-2", "MRN-HIST-B")).unwrap();
    assert_eq!(crate::support::ack_code(&ack), "AA");
    g.wait_for("HIST-2 delivered", Duration::from_secs(30), || {
        peer.received()
            .iter()
            .any(|r| r.answered == 200 && control_id(&r.body) == "HIST-2")
            && g.dest_status("cloud")["pending"] == 0
    });
    assert_eq!(failed.load(Ordering::SeqCst), 3, "two 503s, then the 200");

    let mut seen = String::new();
    let id_of = |cid: &str, seen: &mut String| {
        search(&g, &["--control-id", cid], seen)[0]["id"]
            .as_u64()
            .unwrap()
    };
    let healthy = id_of("HIST-1", &mut seen);
    let flaky = id_of("HIST-2", &mut seen);

    let out = g.cli(&["messages", "show", &flaky.to_string(), "--json"]);
    seen.push_str(&text(&out));
    assert!(out.status.success(), "{}", text(&out));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cloud = &j["destinations"][0];
    assert_eq!(cloud["state"], "delivered", "{j}");
    let attempts = cloud["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{cloud}");
    assert_eq!(cloud["attempts_elided"], 0);
    for a in attempts {
        assert_eq!(a["outcome"], "retry", "{a}");
        assert_eq!(a["error"], "HTTP 503", "{a}");
        assert!(a["at"].as_str().is_some_and(|t| t.ends_with('Z')), "{a}");
    }
    let delivered_ms = j["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "delivered")
        .and_then(|e| e["at_ms"].as_u64())
        .unwrap();
    let (t1, t2) = (
        attempts[0]["at_ms"].as_u64().unwrap(),
        attempts[1]["at_ms"].as_u64().unwrap(),
    );
    assert!(
        j["received_at_ms"].as_u64().unwrap() <= t1 && t1 < t2 && t2 < delivered_ms,
        "received, failed, failed, delivered, in order: {j}"
    );
    assert!(cloud["delivered_at"].as_str().is_some(), "{cloud}");

    let out = g.cli(&["messages", "show", &flaky.to_string()]);
    let shown = text(&out);
    seen.push_str(&shown);
    assert_eq!(
        shown.matches("failed (retry): HTTP 503").count(),
        2,
        "{shown}"
    );
    let last_failure = shown.rfind("failed (retry)").unwrap();
    assert!(
        shown[last_failure..].contains("delivered"),
        "the delivery comes after the failures:\n{shown}"
    );

    // The healthy message: no attempts, and no journey state written.
    let out = g.cli(&["messages", "show", &healthy.to_string(), "--json"]);
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["destinations"][0]["attempts"], Value::Array(vec![]));
    assert!(!seen.contains("SERVER-TEXT-SECRET"), "{seen}");

    assert!(g.stop().success());
    let j =
        journal::Journal::open(journal::JournalConfig::new(g.data_dir().join("journal"))).unwrap();
    let journey = j.list_state("journey:cloud", &[], None, 10).unwrap();
    let keys: Vec<u64> = journey
        .iter()
        .map(|e| u64::from_be_bytes(e.key.as_slice().try_into().unwrap()))
        .collect();
    assert_eq!(
        keys,
        vec![flaky],
        "only the message that failed has a history"
    );
    assert!(j
        .get_state("journey:cloud", &healthy.to_be_bytes())
        .unwrap()
        .is_none());
    assert!(j
        .list_state("attempts:cloud", &[], None, 10)
        .unwrap()
        .is_empty());
}
