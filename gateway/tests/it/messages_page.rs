//! The status page's message search and timeline in headless Chromium,
//! driven through the DevTools protocol (`tests/peers/chromium_cdp.py`):
//! fill the search form, open a timeline, check every destination's state
//! (delivered, pending against a down destination, dead), click to show
//! the raw message, and find the `phi_view` / `phi_lookup` events with the
//! page user in the audit trail. The MRN stays out of URLs, pages (but the
//! raw view) and the log; a POST from another origin is refused.

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::peers::{python, script};
use crate::support::{adt, free_port, require_tool, send_one, Gateway, Options};

const MRN: &str = "MRN-PAGE-8080";

/// POST `body` to `path` on `addr` with Basic office:correct horse and
/// `headers`; (status, body).
fn http_post(addr: &str, path: &str, body: &str, headers: &str) -> (u16, String) {
    use base64::Engine as _;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("office:correct horse");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {auth}\r\n{headers}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    crate::support::status_and_body(&out)
}

/// Runs the CDP `steps` as the page user; the dumped DOMs by name.
fn chromium(py: &std::path::Path, steps: Value) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("steps.json");
    std::fs::write(
        &spec,
        json!({"basic": "office:correct horse", "steps": steps}).to_string(),
    )
    .unwrap();
    let out = Command::new(py)
        .arg(script("chromium_cdp.py"))
        .arg(&spec)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium_cdp.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `gateway audit export --json` once `done` holds for it (the audit
/// trail is written behind the answer), at most 20 s.
pub(crate) fn audit_until(g: &Gateway, done: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    g.wait_for("the audit events", Duration::from_secs(20), || {
        let out = g.cli(&["audit", "export", "--json"]);
        assert!(out.status.success());
        text = String::from_utf8_lossy(&out.stdout).into_owned();
        done(&text)
    });
    text
}

fn state(dom: &str, destination: &str, state: &str) -> bool {
    dom.contains(&format!(
        "data-destination=\"{destination}\" data-state=\"{state}\""
    ))
}

#[test]
fn status_page_search_timeline_and_audited_raw_view_in_headless_chromium() {
    if !require_tool("chromium", "chromium") {
        return;
    }
    let Some(py) = python(&["json"]) else { return };
    let closed = free_port();
    let data = tempfile::tempdir().unwrap();
    let out_dir = data.path().join("var").join("outbox");
    let pw = crate::ops::password_file(data.path());
    let sport = free_port();
    let routing = format!(
        "[[destination]]\nname = \"outbox\"\nkind = \"folder\"\npath = {out:?}\n\n[[destination]]\nname = \"down\"\nkind = \"http\"\nurl = \"http://127.0.0.1:{closed}/r\"\nmax_attempts = 100000\nbackoff_initial = \"100ms\"\nbackoff_max = \"500ms\"\n\n[[destination]]\nname = \"gone\"\nkind = \"http\"\nurl = \"http://127.0.0.1:{closed}/r\"\nmax_attempts = 1\nbackoff_initial = \"100ms\"\n\n[[route]]\nname = \"adt\"\nfrom = [\"ehr\"]\nto = [\"outbox\", \"down\", \"gone\"]\n",
        out = out_dir.display().to_string()
    );
    let mut g = Gateway::start_with(Options {
        top_extra: format!(
            "[alerts]\nevaluate_every = \"200ms\"\n[status_page]\nbind = \"127.0.0.1:{sport}\"\nusername = \"office\"\npassword_file = {:?}\n",
            pw.display().to_string()
        ),
        routing: Some(routing),
        data_dir: Some(data.path().join("var")),
        ..Default::default()
    });
    for m in [adt("PAGE-1", MRN), adt("PAGE-2", "MRN-PAGE-OTHER")] {
        assert_eq!(
            crate::support::ack_code(&send_one(&g.addr(), &m).unwrap()),
            "AA"
        );
    }
    g.wait_for(
        "dead on gone, delivered to outbox",
        Duration::from_secs(30),
        || {
            g.dest_status("gone")["dead_letters"].as_u64() == Some(2)
                && g.dest_status("outbox")["delivered"].as_u64() == Some(2)
        },
    );
    let addr = format!("127.0.0.1:{sport}");
    let base = format!("http://{addr}");

    // Search by control id, open the timeline, click to show the message.
    let doms = chromium(
        &py,
        json!([
            {"goto": format!("{base}/")},
            {"click": "#find-message"},
            {"fill": ["#control_id", "PAGE-1"]},
            {"click": "#search-button"},
            {"dump": "results"},
            {"click": "#results a"},
            {"dump": "timeline"},
            {"click": "#show-raw"},
            {"dump": "raw"},
        ]),
    );
    let results = doms["results"].as_str().unwrap();
    assert!(
        results.contains("PAGE-1") && !results.contains("PAGE-2"),
        "{results}"
    );
    assert!(state(results, "outbox", "delivered"), "{results}");
    assert!(state(results, "down", "pending"), "{results}");
    assert!(state(results, "gone", "dead"), "{results}");
    let timeline = doms["timeline"].as_str().unwrap();
    for want in [
        "received",
        "from 127.0.0.1",
        "ACK AA sent",
        "connection refused",
        "dead letter",
    ] {
        assert!(timeline.contains(want), "{want:?} missing from {timeline}");
    }
    assert!(state(timeline, "outbox", "delivered"), "{timeline}");
    assert!(state(timeline, "down", "pending"), "{timeline}");
    assert!(state(timeline, "gone", "dead"), "{timeline}");
    assert!(
        timeline.contains("class=\"attempt\" data-destination=\"gone\" data-outcome=\"retry\""),
        "the dead destination's one failed attempt has its row: {timeline}"
    );
    assert!(timeline.contains("data-kind=\"delivered\""), "{timeline}");
    assert!(timeline.contains("data-kind=\"dead_letter\""), "{timeline}");
    assert!(timeline.contains("id=\"show-raw\""), "{timeline}");
    let id = timeline
        .split("<h1>Message ")
        .nth(1)
        .and_then(|t| t.split('<').next())
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no message id in {timeline}"));
    let raw = doms["raw"].as_str().unwrap();
    assert!(raw.contains(&format!("PID|1||{MRN}")), "{raw}");

    // By patient (a POST: the MRN is in no URL, and not echoed back).
    let doms = chromium(
        &py,
        json!([
            {"goto": format!("{base}/messages")},
            {"fill": ["#patient", MRN]},
            {"click": "#search-button"},
            {"dump": "patient"},
        ]),
    );
    let patient = doms["patient"].as_str().unwrap();
    assert!(
        patient.contains("PAGE-1") && !patient.contains("PAGE-2"),
        "{patient}"
    );

    // No PHI but in the raw view; no MRN in a link; no cross-origin POST.
    for dom in [results, timeline, patient] {
        assert!(!dom.contains(MRN) && !dom.contains("19800101"), "{dom}");
    }
    let (code, _) = crate::ops::http_get(
        &addr,
        &format!("/messages?patient={MRN}"),
        Some(("office", "correct horse")),
    );
    assert_eq!(code, 400);
    let (code, _) = crate::ops::http_get(
        &addr,
        &format!("/messages/{id}/raw"),
        Some(("office", "correct horse")),
    );
    assert_eq!(code, 405, "the raw view is a POST only");
    let (code, body) = http_post(
        &addr,
        &format!("/messages/{id}/raw"),
        "",
        "Origin: http://evil.example\r\n",
    );
    assert_eq!(code, 403);
    assert!(!body.contains(MRN));
    assert_eq!(crate::ops::http_get(&addr, "/messages", None).0, 401);

    // The audit trail: the raw view and the patient lookup, by the page user.
    let text = audit_until(&g, |t| {
        t.contains("messages_show_raw") && t.contains("messages_search_patient")
    });
    let events: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let detail = |kind: &str, what: &str| {
        events
            .iter()
            .filter(|e| e["kind"] == kind)
            .filter_map(|e| e["detail"].as_str())
            .filter(|d| d.contains(what))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let views = detail("phi_view", "what=messages_show_raw");
    assert_eq!(
        views.len(),
        1,
        "one raw view (the refused POST is not one): {text}"
    );
    assert!(
        views[0].contains(&format!("message={id}"))
            && views[0].contains("control_id=PAGE-1")
            && views[0].contains("by=status page user office from 127.0.0.1:"),
        "{}",
        views[0]
    );
    let lookups = detail("phi_lookup", "what=messages_search_patient");
    assert!(
        lookups
            .iter()
            .any(|d| d.contains("found=1") && d.contains("by=status page user office")),
        "{text}"
    );
    g.stop();
    let log = g.log_text();
    assert!(!log.contains(MRN) && !text.contains(MRN), "the MRN leaked");
}
