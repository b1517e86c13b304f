//! Operations end to end, against the real binary: `/metrics` parsed by the
//! reference Prometheus parser, `/healthz` and `/readyz`, alerts that fire
//! and clear (destination down then back, a certificate 5 days from expiry,
//! a watchdog restart) with a webhook receiver, the fleet heartbeat, and the
//! status page loaded in headless Chromium.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::http_peer::{HttpPeer, Mode};
use crate::support::peers::{python, script};
use crate::support::pki::{self_signed, Pki, ServerKey};
use crate::support::{ack_code, adt, free_port, require_tool, send_one, Gateway, Options, BIN};

/// GET `path` on `addr` (HTTP/1.1, Connection: close); (status, body).
pub(crate) fn http_get(addr: &str, path: &str, basic: Option<(&str, &str)>) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let auth = basic
        .map(|(u, p)| {
            use base64::Engine as _;
            format!(
                "Authorization: Basic {}\r\n",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        })
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    crate::support::status_and_body(&out)
}

/// Families parsed by prometheus_client's text parser (`py`: the test
/// Python with it).
fn parse_metrics(py: &Path, text: &str) -> serde_json::Value {
    let mut child = Command::new(py)
        .arg(script("parse_metrics.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client could not parse /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The value of the sample `name` whose labels include `labels`.
fn sample(f: &serde_json::Value, family: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let fam = &f[family];
    assert!(!fam.is_null(), "no family {family} in /metrics");
    fam["samples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s[0] == name && labels.iter().all(|(k, v)| s[1][*k] == *v))
        .unwrap_or_else(|| panic!("no sample {name}{labels:?} in {fam}"))[2]
        .as_f64()
        .unwrap()
}

fn alerts(g: &Gateway) -> Vec<serde_json::Value> {
    g.status_json()["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn http_routing(url: &str) -> String {
    format!(
        "[[destination]]\nname = \"cloud\"\nkind = \"http\"\nurl = \"{url}\"\ncircuit_failures = 1\nprobe_interval = \"200ms\"\nbackoff_initial = \"50ms\"\nbackoff_max = \"200ms\"\ntimeout = \"2s\"\n\n[[route]]\nname = \"all\"\nfrom = [\"ehr\"]\nto = [\"cloud\"]\n"
    )
}

#[test]
fn metrics_parse_with_the_prometheus_parser_and_health_endpoints_answer() {
    let Some(py) = python(&["prometheus_client"]) else {
        return;
    };
    let hport = free_port();
    // A pickup folder too, for its families (its file is journaled as filtered).
    let drop = tempfile::tempdir().unwrap();
    std::fs::write(drop.path().join("one.hl7"), adt("P-1", "MRN9")).unwrap();
    let g = Gateway::start_with(Options {
        top_extra: format!(
            "[health]\nbind = \"127.0.0.1:{hport}\"\n\n[[pickup]]\nname = \"drop\"\npath = {:?}\npattern = \"*.hl7\"\nformat = \"hl7\"\nsettle = \"0s\"\nafter = \"delete\"\n",
            drop.path().display().to_string()
        ),
        ..Default::default()
    });
    let h = format!("127.0.0.1:{hport}");
    g.wait_for(
        "the pickup to take its file",
        Duration::from_secs(30),
        || !drop.path().join("one.hl7").exists(),
    );
    assert_eq!(
        ack_code(&send_one(&g.addr(), &adt("M-1", "MRN1")).unwrap()),
        "AA"
    );
    assert_eq!(
        ack_code(&send_one(&g.addr(), &adt("M-1", "MRN1")).unwrap()),
        "AA"
    );
    assert_eq!(
        ack_code(&send_one(&g.addr(), &adt("M-2", "MRN2")).unwrap()),
        "AA"
    );
    let bad = b"MSH|^~\\&|ECW|CLINIC|GW|CLOUD|20240101120000||\r".to_vec();
    let _ = send_one(&g.addr(), &bad);
    g.wait_delivered(2);
    g.wait_drained(Duration::from_secs(30));

    assert_eq!(http_get(&h, "/healthz", None), (200, "ok\n".into()));
    assert_eq!(http_get(&h, "/readyz", None), (200, "ready\n".into()));
    assert_eq!(http_get(&h, "/nope", None).0, 404);

    let (code, text) = http_get(&h, "/metrics", None);
    assert_eq!(code, 200);
    let f = parse_metrics(&py, &text);
    assert_eq!(f["gateway_pickup_files"]["type"], "counter");
    let taken = [("pickup", "drop"), ("outcome", "taken")];
    g.wait_for("the pickup's count", Duration::from_secs(10), || {
        let (_, text) = http_get(&h, "/metrics", None);
        sample(
            &parse_metrics(&py, &text),
            "gateway_pickup_files",
            "gateway_pickup_files_total",
            &taken,
        ) == 1.0
    });
    let l = [("listener", "ehr")];
    // The parser strips _total from counter family names.
    assert_eq!(f["gateway_messages_received"]["type"], "counter");
    assert_eq!(
        sample(
            &f,
            "gateway_messages_received",
            "gateway_messages_received_total",
            &l
        ),
        4.0
    );
    assert_eq!(
        sample(
            &f,
            "gateway_messages_acked",
            "gateway_messages_acked_total",
            &l
        ),
        3.0
    );
    assert_eq!(
        sample(
            &f,
            "gateway_messages_duplicate",
            "gateway_messages_duplicate_total",
            &l
        ),
        1.0
    );
    assert_eq!(
        sample(
            &f,
            "gateway_messages_nacked",
            "gateway_messages_nacked_total",
            &[("listener", "ehr"), ("reason", "reject")]
        ),
        1.0
    );
    assert_eq!(f["gateway_connections_open"]["type"], "gauge");
    assert!(f["gateway_framing_errors"]["samples"].as_array().is_some());
    let d = [("destination", "outbox")];
    assert_eq!(
        sample(
            &f,
            "gateway_destination_pending_messages",
            "gateway_destination_pending_messages",
            &d
        ),
        0.0
    );
    assert_eq!(
        sample(
            &f,
            "gateway_destination_delivered",
            "gateway_destination_delivered_total",
            &d
        ),
        2.0
    );
    assert_eq!(
        sample(
            &f,
            "gateway_destination_circuit_state",
            "gateway_destination_circuit_state",
            &[("destination", "outbox"), ("state", "closed")]
        ),
        1.0
    );
    assert_eq!(
        sample(&f, "gateway_destination_up", "gateway_destination_up", &d),
        1.0
    );
    assert!(f["gateway_token_refreshes"].is_object());
    assert!(f["gateway_destination_oldest_pending_age_seconds"].is_object());
    assert!(f["gateway_destination_dead_lettered"].is_object());
    // The commit latency histogram: buckets, sum and count, count > 0.
    let hist = &f["gateway_journal_commit_duration_seconds"];
    assert_eq!(hist["type"], "histogram");
    let count = sample(
        &f,
        "gateway_journal_commit_duration_seconds",
        "gateway_journal_commit_duration_seconds_count",
        &[],
    );
    assert!(count >= 2.0, "{hist}");
    assert_eq!(
        sample(
            &f,
            "gateway_journal_commit_duration_seconds",
            "gateway_journal_commit_duration_seconds_bucket",
            &[("le", "+Inf")]
        ),
        count
    );
    assert!(sample(&f, "gateway_journal_bytes", "gateway_journal_bytes", &[]) > 0.0);
    let disk = sample(
        &f,
        "gateway_disk_used_ratio",
        "gateway_disk_used_ratio",
        &[],
    );
    assert!((0.0..=1.0).contains(&disk));
    assert_eq!(sample(&f, "gateway_ready", "gateway_ready", &[]), 1.0);
    // No PHI: the patient name and MRNs of the messages sent are nowhere.
    for phi in ["MRN1", "MRN2", "TEST", "PATIENT", "19800101"] {
        assert!(!text.contains(phi), "/metrics contains {phi}");
    }
}

#[test]
fn destination_down_alert_fires_then_clears_with_webhook_notices() {
    let dest = HttpPeer::start();
    dest.set_mode(Mode::Refuse);
    let hook = HttpPeer::start();
    let mut g = Gateway::start_with(Options {
        top_extra: format!(
            "[alerts]\nevaluate_every = \"200ms\"\ndestination_down_max = \"0s\"\nwebhook_url = \"{}\"\n",
            hook.url("/alerts")
        ),
        routing: Some(http_routing(&dest.url("/hl7"))),
        ..Default::default()
    });
    assert_eq!(
        ack_code(&send_one(&g.addr(), &adt("D-1", "MRN77")).unwrap()),
        "AA"
    );
    g.wait_for("destination_down alert", Duration::from_secs(30), || {
        alerts(&g)
            .iter()
            .any(|a| a["id"] == "destination_down/cloud")
    });
    let a = alerts(&g)
        .into_iter()
        .find(|a| a["id"] == "destination_down/cloud")
        .unwrap();
    assert_eq!(a["severity"], "critical");
    assert!(a["title"].as_str().unwrap().contains("cloud"), "{a}");
    assert!(
        a["affected"]
            .as_str()
            .unwrap()
            .contains("destination cloud"),
        "{a}"
    );
    assert!(!a["since"].as_str().unwrap().is_empty());
    assert!(!a["action"].as_str().unwrap().is_empty());
    let human = g.cli(&["status"]);
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(
        human.contains("ALERTS") && human.contains("cloud cannot be reached"),
        "{human}"
    );

    // Fired exactly once, however many evaluations ran.
    g.wait_for("webhook fired notice", Duration::from_secs(20), || {
        hook.received()
            .iter()
            .any(|r| r.text().contains("\"fired\""))
    });
    std::thread::sleep(Duration::from_millis(800));
    let fired = |hook: &HttpPeer| {
        hook.received()
            .iter()
            .filter(|r| {
                r.text().contains("\"fired\"") && r.text().contains("destination_down/cloud")
            })
            .count()
    };
    assert_eq!(fired(&hook), 1);

    // A restart while it is still down announces nothing again: the board
    // is kept in the journal.
    assert!(g.stop().success());
    g.spawn();
    g.wait_ready();
    g.wait_for(
        "the alert after the restart",
        Duration::from_secs(30),
        || {
            alerts(&g)
                .iter()
                .any(|a| a["id"] == "destination_down/cloud")
        },
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(fired(&hook), 1, "fired again after the restart");
    assert!(g.log_text().contains("active before the restart"));

    dest.set_mode(Mode::Up);
    g.wait_for("alert cleared", Duration::from_secs(30), || {
        !alerts(&g)
            .iter()
            .any(|a| a["id"] == "destination_down/cloud")
    });
    g.wait_for("webhook resolved notice", Duration::from_secs(20), || {
        hook.received().iter().any(|r| {
            r.text().contains("\"resolved\"") && r.text().contains("destination_down/cloud")
        })
    });
    assert_eq!(fired(&hook), 1);
    for r in hook.received() {
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert!(
            v["box_id"].is_string() && v["alert"]["title"].is_string(),
            "{v}"
        );
        assert_eq!(r.header("content-type"), Some("application/json"));
        // No PHI in alerts.
        assert!(!r.text().contains("MRN77") && !r.text().contains("PATIENT"));
    }
    // And the message waited for the destination and went through.
    assert!(dest.received().iter().any(|r| r.answered == 200));
}

#[test]
fn listener_certificate_expiring_in_5_days_raises_the_certificate_alert() {
    if !require_tool("openssl", "openssl") {
        return;
    }
    let Some(py) = python(&["prometheus_client"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path(), 5);
    let hport = free_port();
    let g = Gateway::start_with(Options {
        top_extra: format!(
            "[health]\nbind = \"127.0.0.1:{hport}\"\n[alerts]\nevaluate_every = \"200ms\"\n"
        ),
        listener_extra: format!(
            "tls = {{ cert = {:?}, key = {:?} }}",
            cert.display().to_string(),
            key.display().to_string()
        ),
        ..Default::default()
    });
    g.wait_for("certificate alert", Duration::from_secs(20), || {
        alerts(&g).iter().any(|a| a["rule"] == "certificate")
    });
    let a = alerts(&g)
        .into_iter()
        .find(|a| a["rule"] == "certificate")
        .unwrap();
    assert_eq!(a["id"], "certificate/listener/ehr/server");
    assert_eq!(a["severity"], "critical");
    assert!(a["title"].as_str().unwrap().contains("within 7 day"), "{a}");
    assert!(a["affected"].as_str().unwrap().contains("cert.pem"), "{a}");
    assert!(a["action"].as_str().unwrap().contains("Renew"), "{a}");

    let (_, text) = http_get(&format!("127.0.0.1:{hport}"), "/metrics", None);
    let f = parse_metrics(&py, &text);
    let days = sample(
        &f,
        "gateway_tls_certificate_days_to_expiry",
        "gateway_tls_certificate_days_to_expiry",
        &[("owner", "ehr"), ("role", "server")],
    );
    assert!(days == 4.0 || days == 5.0, "days to expiry {days}");
    assert_eq!(
        sample(
            &f,
            "gateway_alerts_active",
            "gateway_alerts_active",
            &[("rule", "certificate")]
        ),
        1.0
    );
}

#[test]
fn a_watchdog_restart_recorded_by_exec_stop_post_raises_the_restart_alert() {
    let mut g = Gateway::configure(Options {
        top_extra: "[alerts]\nevaluate_every = \"200ms\"\n".into(),
        ..Default::default()
    });
    std::fs::create_dir_all(g.data_dir()).unwrap();
    // What systemd runs as ExecStopPost= after killing a silent service.
    test_support::run::succeeds(
        Command::new(BIN)
            .args(["record-stop", "--config"])
            .arg(&g.config)
            .env("SERVICE_RESULT", "watchdog")
            .env("EXIT_CODE", "killed")
            .env("EXIT_STATUS", "ABRT"),
    );
    g.spawn();
    g.wait_for("restart alert", Duration::from_secs(20), || {
        alerts(&g).iter().any(|a| a["rule"] == "restarted")
    });
    let a = alerts(&g)
        .into_iter()
        .find(|a| a["rule"] == "restarted")
        .unwrap();
    assert_eq!(a["title"], "The watchdog restarted the gateway");
    // A clean stop and start raises nothing.
    assert!(g.stop().success());
    g.spawn();
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        !alerts(&g).iter().any(|a| a["rule"] == "restarted"),
        "{:?}",
        alerts(&g)
    );
}

#[test]
fn fleet_heartbeat_posts_health_without_phi() {
    let msp = HttpPeer::start();
    // What `updater` writes after each run (step 11), sent along.
    let updater_dir = tempfile::tempdir().unwrap();
    let report = updater_dir.path().join("report.json");
    std::fs::write(
        &report,
        r#"{"epoch_floor": 3, "slots": {"A": {"version": "1.4.0", "state": "good"}}, "wave": null}"#,
    )
    .unwrap();
    let g = Gateway::start_with(Options {
        top_extra: format!(
            "[fleet]\nurl = \"{}\"\ninterval = \"300ms\"\nbox_id = \"clinic-42\"\nupdater_report = {:?}\nauth = {{ type = \"bearer\", token = \"fleet-token\" }}\n",
            msp.url("/heartbeat"),
            report.display().to_string()
        ),
        ..Default::default()
    });
    assert_eq!(
        ack_code(&send_one(&g.addr(), &adt("F-1", "MRN4242")).unwrap()),
        "AA"
    );
    g.wait_delivered(1);
    g.wait_for(
        "two heartbeats after the delivery",
        Duration::from_secs(20),
        || {
            msp.received()
                .iter()
                .filter(|r| r.text().contains("\"delivered\":1"))
                .count()
                >= 2
        },
    );
    let r = msp.received().into_iter().last().unwrap();
    assert_eq!(r.path, "/heartbeat");
    assert_eq!(r.header("authorization"), Some("Bearer fleet-token"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["box_id"], "clinic-42");
    assert_eq!(v["versions"]["gateway"], env!("CARGO_PKG_VERSION"));
    assert!(v["uptime_secs"].is_u64());
    assert_eq!(v["destinations"][0]["name"], "outbox");
    assert_eq!(v["destinations"][0]["up"], true);
    assert_eq!(v["destinations"][0]["pending"], 0);
    assert!(v["alerts"].is_array());
    // The audit chain's head goes off the box (docs/audit.md): SEQ:HASH.
    let head = v["audit_head"].as_str().unwrap_or_default();
    assert!(
        journal::ChainHead::parse(head).is_ok_and(|h| h.seq > 0),
        "{v}"
    );
    assert_eq!(v["updater"]["epoch_floor"], 3, "{v}");
    assert_eq!(v["updater"]["slots"]["A"]["version"], "1.4.0");
    for r in msp.received() {
        let t = r.text();
        for phi in ["MRN4242", "PATIENT", "19800101", "F-1"] {
            assert!(!t.contains(phi), "heartbeat carries {phi}: {t}");
        }
    }
}

/// The DOM of `url` as headless Chromium renders it.
fn chromium_dump(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--timeout=15000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The status page's password file ("correct horse", mode 0600) in `dir`.
pub(crate) fn password_file(dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let pw = dir.join("status-password");
    std::fs::write(&pw, "correct horse\n").unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    pw
}

/// The banner never says "All good" while a destination is down or a dead
/// letter waits: good, retrying (down, before its alert) and problem (a
/// dead letter, with the dead-letter alert off), each as Chromium shows it.
#[test]
fn status_page_banner_tells_the_truth_in_headless_chromium() {
    if !require_tool("chromium", "chromium") {
        return;
    }
    let dest = HttpPeer::start();
    dest.add_rule(Box::new(|r| {
        r.text().contains("POISON").then(|| (400, "{}".to_string()))
    }));
    let pdir = tempfile::tempdir().unwrap();
    let pw = password_file(pdir.path());
    let sport = free_port();
    let g = Gateway::start_with(Options {
        top_extra: format!(
            "[alerts]\ndisk_warn_percent = 100\nevaluate_every = \"200ms\"\ndestination_down_max = \"1h\"\ndead_letters = false\n[status_page]\nbind = \"127.0.0.1:{sport}\"\nusername = \"office\"\npassword_file = {:?}\n",
            pw.display().to_string()
        ),
        routing: Some(http_routing(&dest.url("/hl7")).replace(
            "timeout = \"2s\"\n",
            "timeout = \"2s\"\non_dead_letter = \"continue\"\n",
        )),
        ..Default::default()
    });
    let url = format!("http://office:correct%20horse@127.0.0.1:{sport}/");
    let banner = |dom: &str| -> String {
        let start = dom
            .find("id=\"summary\"")
            .map(|i| dom[..i].rfind('<').unwrap_or(i))
            .unwrap_or(0);
        let end = dom[start..].find("</div>").map_or(dom.len(), |e| start + e);
        dom[start..end].to_string()
    };
    // Good: delivered, nothing waiting.
    assert_eq!(
        ack_code(&send_one(&g.addr(), &adt("B-1", "MRN1")).unwrap()),
        "AA"
    );
    g.wait_for("B-1 delivered", Duration::from_secs(30), || {
        g.dest_status("cloud")["pending"] == 0
    });
    let b = banner(&chromium_dump(&url));
    assert!(b.contains("banner ok") && b.contains("All good"), "{b}");

    // Retrying: refused, the circuit open, the alert an hour away.
    dest.set_mode(Mode::Refuse);
    assert_eq!(
        ack_code(&send_one(&g.addr(), &adt("B-2", "MRN2")).unwrap()),
        "AA"
    );
    g.wait_for("cloud down", Duration::from_secs(30), || {
        g.dest_status("cloud")["circuit"] != "closed"
    });
    assert!(alerts(&g).is_empty(), "{:?}", alerts(&g));
    let b = banner(&chromium_dump(&url));
    assert!(
        b.contains("banner retrying") && !b.contains("All good"),
        "{b}"
    );
    assert!(b.contains("cloud is not answering"), "{b}");
    assert!(b.contains("an alert is raised at"), "{b}");
    assert!(b.contains("1 message(s) waiting"), "{b}");

    // Problem: a dead letter waits for an operator, its alert turned off.
    dest.set_mode(Mode::Up);
    g.wait_for("B-2 delivered", Duration::from_secs(30), || {
        g.dest_status("cloud")["pending"] == 0
    });
    assert_eq!(
        ack_code(&send_one(&g.addr(), &adt("POISON", "MRN3")).unwrap()),
        "AA"
    );
    g.wait_for("the dead letter", Duration::from_secs(30), || {
        g.dest_status("cloud")["dead_letters"] == 1
    });
    assert!(alerts(&g).is_empty(), "{:?}", alerts(&g));
    let b = banner(&chromium_dump(&url));
    assert!(b.contains("banner bad") && !b.contains("All good"), "{b}");
    assert!(
        b.contains("could not be delivered and wait for an operator"),
        "{b}"
    );
}

#[test]
fn status_page_in_headless_chromium_behind_a_password() {
    if !require_tool("chromium", "chromium") {
        return;
    }
    let dest = HttpPeer::start();
    dest.set_mode(Mode::Status(503, None));
    let pdir = tempfile::tempdir().unwrap();
    let pw = password_file(pdir.path());
    let sport = free_port();
    let g = Gateway::start_with(Options {
        top_extra: format!(
            "[alerts]\ndisk_warn_percent = 100\nevaluate_every = \"200ms\"\ndestination_down_max = \"0s\"\n[status_page]\nbind = \"127.0.0.1:{sport}\"\nusername = \"office\"\npassword_file = {:?}\n",
            pw.display().to_string()
        ),
        routing: Some(http_routing(&dest.url("/hl7"))),
        ..Default::default()
    });
    assert_eq!(
        ack_code(&send_one(&g.addr(), &adt("S-1", "MRN5150")).unwrap()),
        "AA"
    );
    g.wait_for("destination down alert", Duration::from_secs(30), || {
        alerts(&g)
            .iter()
            .any(|a| a["id"] == "destination_down/cloud")
    });
    let addr = format!("127.0.0.1:{sport}");
    // No password, a wrong one: 401 with a Basic challenge and no data.
    let (code, body) = http_get(&addr, "/", None);
    assert_eq!(code, 401);
    assert!(!body.contains("cloud"));
    assert_eq!(http_get(&addr, "/", Some(("office", "wrong"))).0, 401);
    assert_eq!(
        http_get(&addr, "/status.json", Some(("admin", "correct horse"))).0,
        401
    );
    assert_eq!(
        http_get(&addr, "/", Some(("office", "correct horse"))).0,
        200
    );

    let dom = chromium_dump(&format!("http://office:correct%20horse@{addr}/"));
    assert!(dom.contains("Clinic Gateway"), "{dom}");
    assert!(dom.contains("problem(s) need attention"), "{dom}");
    assert!(dom.contains("cloud cannot be reached"), "{dom}");
    assert!(dom.contains("Down for"), "{dom}");
    assert!(dom.contains("HTTP 503"), "{dom}");
    assert!(dom.contains("<td>ehr</td>"), "{dom}");
    assert!(dom.contains(env!("CARGO_PKG_VERSION")), "{dom}");
    assert!(dom.contains("Disk used"), "{dom}");
    // The default view shows no server diagnostics and no message content.
    assert!(!dom.contains("scripted 503"), "{dom}");
    for phi in ["MRN5150", "PATIENT", "19800101"] {
        assert!(!dom.contains(phi), "status page shows {phi}");
    }
    // Chromium without credentials gets the sign-in page only.
    let anon = chromium_dump(&format!("http://{addr}/"));
    assert!(!anon.contains("cloud cannot be reached"), "{anon}");

    dest.set_mode(Mode::Up);
    g.wait_for("all good", Duration::from_secs(30), || {
        http_get(&addr, "/", Some(("office", "correct horse")))
            .1
            .contains("All good")
    });
}

/// GET `url` with curl, trusting `dir/ca.pem` and presenting the client
/// certificate `name`; the body, or `None` if curl failed (refused).
fn curl(dir: &Path, url: &str, client: Option<&str>) -> Option<String> {
    curl_with(dir, &[url], client)
}

/// [`curl`] with more arguments (`-d` for a POST) before the URL.
fn curl_with(dir: &Path, args: &[&str], client: Option<&str>) -> Option<String> {
    let mut c = Command::new("curl");
    c.current_dir(dir)
        .args(["-sS", "--fail", "--max-time", "10", "--cacert", "ca.pem"]);
    if let Some(name) = client {
        c.args([
            "--cert",
            &format!("{name}.pem"),
            "--key",
            &format!("{name}.key"),
        ]);
    }
    let out = c.args(args).output().unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn status_page_with_client_certificates_only() {
    if !require_tool("openssl", "openssl") || !require_tool("curl", "curl") {
        return;
    }
    let pki = Pki::new(ServerKey::Ec);
    let sport = free_port();
    let p = |f: &str| pki.path_str(f);
    let g = Gateway::start_with(Options {
        top_extra: format!(
            "[alerts]\nevaluate_every = \"200ms\"\n[status_page]\nbind = \"127.0.0.1:{sport}\"\ntls = {{ cert = {:?}, key = {:?}, client_ca = {:?} }}\n",
            p("server.pem"),
            p("server.key"),
            p("ca.pem")
        ),
        ..Default::default()
    });
    let url = format!("https://127.0.0.1:{sport}/");
    // The page's own certificate (30 days) is within the 30-day stage.
    g.wait_for(
        "certificate alert for the status page",
        Duration::from_secs(20),
        || {
            alerts(&g)
                .iter()
                .any(|a| a["id"] == "certificate/status_page/status_page/server")
        },
    );
    let page = curl(pki.dir(), &url, Some("client"))
        .expect("a client certificate from the CA is accepted");
    assert!(
        page.contains("Clinic Gateway") && page.contains("<td>ehr</td>"),
        "{page}"
    );
    // 30 days left: the 60-day stage, or the 30-day one a second later.
    assert!(page.contains("TLS certificate expires within"), "{page}");
    assert!(page.contains("status page (server)"), "{page}");
    assert!(
        curl(pki.dir(), &url, None).is_none(),
        "no client certificate must be refused"
    );
    assert!(
        curl(pki.dir(), &url, Some("stranger")).is_none(),
        "a certificate from another CA must be refused"
    );
    // The raw view through the page is audited with the certificate's CN.
    assert_eq!(
        ack_code(&send_one(&g.addr(), &adt("CERT-1", "MRN-CERT")).unwrap()),
        "AA"
    );
    let found = curl(
        pki.dir(),
        &format!("{url}messages?control_id=CERT-1"),
        Some("client"),
    )
    .unwrap();
    let id = found
        .split("href=\"/messages/")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .unwrap_or_else(|| panic!("no result in {found}"))
        .to_string();
    let raw = curl_with(
        pki.dir(),
        &["-d", "show=1", &format!("{url}messages/{id}/raw")],
        Some("client"),
    );
    assert!(raw.is_some_and(|r| r.contains("PID|1||MRN-CERT")));
    crate::messages_page::audit_until(&g, |audit| {
        audit.lines().any(|l| {
            l.contains("phi_view")
                && l.contains(&format!("message={id}"))
                && l.contains("by=status page client certificate CN=client from 127.0.0.1:")
        })
    });
}

/// A feed that goes quiet is an alert (eCW stops sending: every queue is
/// empty and the box would look green); it clears when the feed flows.
#[test]
fn a_quiet_feed_raises_the_silence_alert_until_it_flows_again() {
    let g = Gateway::start_with(Options {
        top_extra: "[alerts]\nevaluate_every = \"200ms\"\ndisk_warn_percent = 100\n[[alerts.silence]]\nname = \"lab results\"\nsource = \"ehr\"\ntype = \"ORU^R01\"\nmax = \"2s\"\nseverity = \"critical\"\n".into(),
        ..Default::default()
    });
    let id = "silence/lab results";
    // Other types do not count.
    assert_eq!(
        ack_code(&send_one(&g.addr(), &adt("Q-1", "MRN7")).unwrap()),
        "AA"
    );
    g.wait_for("the silence alert", Duration::from_secs(30), || {
        alerts(&g).iter().any(|a| a["id"] == id)
    });
    let a = alerts(&g).into_iter().find(|a| a["id"] == id).unwrap();
    assert_eq!(a["severity"], "critical", "{a}");
    let title = a["title"].as_str().unwrap();
    assert!(
        title.contains("no ORU^R01 from ehr for more than 2 s"),
        "{a}"
    );
    let feeds = g.status_json()["feeds"].clone();
    assert_eq!(feeds[0]["seen"], 0, "{feeds}");

    let oru = b"MSH|^~\\&|LAB|CLINIC|GW|CLOUD|20240101120000||ORU^R01|Q-2|P|2.5.1\rPID|1||MRN7^^^CLINIC^MR||TEST^PATIENT\rOBR|1|||GLU\rOBX|1|NM|GLU||5.5|mg/dL|||||F\r";
    assert_eq!(ack_code(&send_one(&g.addr(), oru).unwrap()), "AA");
    g.wait_for("the alert cleared", Duration::from_secs(30), || {
        !alerts(&g).iter().any(|a| a["id"] == id)
    });
    assert_eq!(g.status_json()["feeds"][0]["seen"], 1);
}
