//! Fleet metrics by remote-write to a real Prometheus (Debian's
//! `prometheus --web.enable-remote-write-receiver`) on loopback: the series
//! come back through its HTTP API with the box and site labels; samples
//! taken while Prometheus was down arrive afterwards with their original
//! timestamps; an unmapped local code that is a birth date stays on the box
//! (status) and out of every series, `/metrics` and the heartbeat; the
//! shipped alerting rules pass `promtool check rules` and load, and every
//! panel of the shipped Grafana dashboard returns data.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::ops::http_get;
use crate::support::fhir_server::{fhir_server, routing};
use crate::support::http_peer::HttpPeer;
use crate::support::peers::start_peer;
use crate::support::pki::{self_signed, Pki, ServerKey};
use crate::support::{ack_code, free_port, require_tool, send_one, Gateway, Options};

/// The birth date a misaligned interface put in IN1-15 (plan type): the
/// transform reports it as an unmapped local code.
const DOB_AS_CODE: &str = "19850622";

fn observability(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config/observability")
        .join(file)
}

fn adt_with_dob_in_in1_15(control_id: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|ECW|CLINIC|GW|CLOUD|20240101120000||ADT^A04^ADT_A01|{control_id}|P|2.5.1\r\
         EVN|A04|20240101120000\r\
         PID|1||MRN5150^^^CLINIC^MR||DOE^JANE||19850622|F\r\
         PV1|1|O\r\
         IN1|1|GOLD^Gold Plan|INS01^^^PAYERS|Example Health Plan|||||||||||{DOB_AS_CODE}\r"
    )
    .into_bytes()
}

/// A Prometheus with the remote-write receiver and the shipped rules; its
/// TSDB survives [`Prometheus::stop`] / [`Prometheus::start`].
struct Prometheus {
    child: Option<Child>,
    addr: String,
    dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Prometheus {
    fn new() -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("prometheus.yml"),
            format!(
                "global:\n  evaluation_interval: 1s\nrule_files:\n  - {:?}\n",
                observability("gateway-rules.yml").display().to_string()
            ),
        )
        .unwrap();
        let mut p = Prometheus {
            child: None,
            addr: format!("127.0.0.1:{}", free_port()),
            dir,
        };
        p.start();
        p
    }

    fn start(&mut self) {
        let d = self.dir.path();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                d.join("prometheus.yml").display()
            ))
            .arg(format!("--storage.tsdb.path={}", d.join("tsdb").display()))
            .arg(format!("--web.listen-address={}", self.addr))
            .arg("--web.enable-remote-write-receiver")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("prometheus.log")).unwrap())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(&self.addr).is_err()
            || http_get(&self.addr, "/-/ready", None).0 != 200
        {
            assert!(
                Instant::now() < deadline,
                "prometheus did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM (Prometheus flushes its WAL), then wait.
    fn stop(&mut self) {
        crate::support::peers::terminate(&mut self.child);
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// GET `path` and its JSON `data` (asserting status success).
    fn api(&self, path: &str) -> Value {
        let (code, body) = get10(&self.addr, path);
        let v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path}: HTTP {code}, not JSON ({e}): {body}"));
        assert_eq!(v["status"], "success", "{path}: {v}");
        v["data"].clone()
    }

    /// An instant query, at `at` (seconds) or now: the result array.
    fn query(&self, q: &str, at: Option<f64>) -> Vec<Value> {
        let mut path = format!("/api/v1/query?query={}", enc(q));
        if let Some(t) = at {
            path += &format!("&time={t:.3}");
        }
        self.api(&path)["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// HTTP/1.0 GET (so Go answers without chunked encoding).
fn get10(addr: &str, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    crate::support::status_and_body(&out)
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The value of a vector sample.
fn value(v: &Value) -> f64 {
    v["value"][1].as_str().unwrap().parse().unwrap()
}

fn remote_write_status(g: &Gateway) -> Value {
    g.status_json()["remote_write"].clone()
}

/// Every PromQL expression of the dashboard, with its panel's title; the
/// Grafana variables as "all".
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(observability("fleet-dashboard.json")).unwrap();
    let d: Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"]
                .as_str()
                .unwrap()
                .replace("$site", ".*")
                .replace("$box", ".*")
                .replace("$__rate_interval", "1m");
            out.push((p["title"].as_str().unwrap().to_string(), expr));
        }
    }
    out
}

#[test]
fn promtool_checks_the_shipped_rules() {
    if !require_tool("promtool", "prometheus") {
        return;
    }
    let out = Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(observability("gateway-rules.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The dashboard is JSON with a query in every panel.
    assert!(dashboard_queries().len() >= 10);
}

#[test]
fn remote_write_reaches_prometheus_across_an_outage_without_phi() {
    if !require_tool("prometheus", "prometheus") || !require_tool("openssl", "openssl") {
        return;
    }
    let mut prom = Prometheus::new();
    let hook = HttpPeer::start();
    let (fhir, _store) = fhir_server(false);
    let certs = tempfile::tempdir().unwrap();
    // A certificate expiring in 5 days: its days-left series, and an alert.
    let (cert, _key) = self_signed(certs.path(), 5);
    let report = certs.path().join("report.json");
    std::fs::write(
        &report,
        serde_json::json!({
            "slots": [{"slot": "A", "booted": true, "version": "1.4.0", "epoch": 3, "verified": true, "state": "good"},
                      {"slot": "B", "booted": false, "version": "1.3.2", "epoch": 3, "verified": true, "state": "good"}],
            "epoch_floor": 3, "last_check": {"at": "2026-12-02T02:00:00Z", "ok": true, "message": "up to date"},
            "last_install": null, "pending": null, "download": null, "wave": null, "failed_targets": []
        })
        .to_string(),
    )
    .unwrap();
    let hport = free_port();
    let g = Gateway::start_with(Options {
        top_extra: format!(
            "[health]\nbind = \"127.0.0.1:{hport}\"\n\
             [fleet]\nurl = \"{}\"\nbox_id = \"clinic-7\"\ninterval = \"1s\"\nupdater_report = {:?}\n\
             [fleet.remote_write]\nurl = \"http://{}/api/v1/write\"\ninterval = \"1s\"\nmax_age = \"10m\"\n\
             [alerts]\nevaluate_every = \"200ms\"\nsite = \"main-street\"\n",
            hook.url("/heartbeat"),
            report.display().to_string(),
            prom.addr
        ),
        routing: Some(routing(
            &fhir.url("/fhir"),
            &format!(
                "tls = {{ ca_file = {:?} }}",
                cert.display().to_string()
            ),
        )),
        ..Default::default()
    });
    assert_eq!(
        ack_code(&send_one(&g.addr(), &adt_with_dob_in_in1_15("RW-1")).unwrap()),
        "AA"
    );
    // The box itself shows the unmapped "code" (that is where it belongs).
    g.wait_for(
        "the unmapped code in the status",
        Duration::from_secs(30),
        || {
            g.dest_status("cloud")["unmapped_codes"]
                .as_array()
                .is_some_and(|u| u.iter().any(|c| c["code"] == DOB_AS_CODE))
        },
    );

    let delivered = r#"gateway_destination_delivered_total{box="clinic-7",site="main-street",destination="cloud"}"#;
    g.wait_for(
        "the first delivery in Prometheus",
        Duration::from_secs(60),
        || {
            prom.query(delivered, None)
                .first()
                .is_some_and(|s| value(s) == 1.0)
        },
    );

    // Outage: Prometheus stops; a message is delivered meanwhile.
    prom.stop();
    let stopped = now_secs();
    assert_eq!(
        ack_code(&send_one(&g.addr(), &adt_with_dob_in_in1_15("RW-2")).unwrap()),
        "AA"
    );
    g.wait_for("the second delivery", Duration::from_secs(30), || {
        g.dest_status("cloud")["delivered"] == 2
    });
    g.wait_for("samples buffered", Duration::from_secs(30), || {
        let rw = remote_write_status(&g);
        rw["pending_samples"].as_u64().unwrap_or(0) > 0 && !rw["last_error"].is_null()
    });
    let text = String::from_utf8(g.cli(&["status"]).stdout).unwrap();
    assert!(
        text.contains("remote-write http://") && text.contains("failing:"),
        "{text}"
    );
    std::thread::sleep(Duration::from_secs(4));
    let restarted = now_secs();
    prom.start();
    g.wait_for("the backlog sent", Duration::from_secs(60), || {
        let rw = remote_write_status(&g);
        rw["pending_samples"] == 0 && rw["last_error"].is_null()
    });

    // The outage's samples, with the times they were taken.
    let window = (restarted - stopped).ceil() as u64;
    let range = prom.query(&format!("{delivered}[{window}s]"), Some(restarted));
    let samples = range
        .first()
        .and_then(|s| s["values"].as_array().cloned())
        .unwrap_or_else(|| panic!("no samples from the outage: {range:?}"));
    let times: Vec<f64> = samples.iter().map(|s| s[0].as_f64().unwrap()).collect();
    let during = times.iter().filter(|&&t| t > stopped).count();
    assert!(
        during >= 3,
        "{during} sample(s) from a {window} s outage: {samples:?}"
    );
    assert!(
        times.windows(2).all(|w| w[0] < w[1]),
        "not in order: {times:?}"
    );
    assert!(
        times.iter().all(|&t| t > stopped - 1.5 && t <= restarted),
        "timestamps {times:?} outside the outage {stopped}..{restarted}"
    );
    let last: f64 = samples.last().unwrap()[1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(last, 2.0, "the delivery during the outage: {samples:?}");
    let rw = remote_write_status(&g);
    assert_eq!(rw["dropped_too_old"], 0, "{rw}");
    assert!(rw["sent_samples"].as_u64().unwrap() > 0, "{rw}");

    // The birth date is in no series, no /metrics label and no heartbeat.
    let series = prom.api(&format!(
        "/api/v1/series?match[]={}",
        enc(r#"{box="clinic-7"}"#)
    ));
    let series = series.as_array().unwrap();
    assert!(series.len() > 50, "{} series", series.len());
    for s in series {
        let t = s.to_string();
        for phi in [DOB_AS_CODE, "MRN5150", "DOE", "JANE"] {
            assert!(!t.contains(phi), "{phi} in a remote-write series: {t}");
        }
        assert_eq!(s["site"], "main-street", "{s}");
    }
    let (_, metrics) = http_get(&format!("127.0.0.1:{hport}"), "/metrics", None);
    assert!(metrics.contains("gateway_fhir_unmapped_codes{destination=\"cloud\"} 1"));
    assert!(!metrics.contains(DOB_AS_CODE), "{metrics}");
    g.wait_for("a heartbeat", Duration::from_secs(20), || hook.count() > 0);
    for r in hook.received() {
        assert!(!r.text().contains(DOB_AS_CODE), "{}", r.text());
    }

    // Every dashboard panel's PromQL returns data.
    for (title, expr) in dashboard_queries() {
        let r = prom.query(&expr, None);
        assert!(
            !r.is_empty(),
            "dashboard panel '{title}': no data for {expr}"
        );
    }
    let sites = prom.api("/api/v1/label/site/values?match[]=gateway_ready");
    assert_eq!(sites, serde_json::json!(["main-street"]));

    // The shipped rules load, evaluate without error, and the certificate one fires.
    g.wait_for("the rules evaluated", Duration::from_secs(30), || {
        let groups = prom.api("/api/v1/rules")["groups"].clone();
        let rules: Vec<Value> = groups
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        !rules.is_empty()
            && rules.iter().all(|r| {
                assert_ne!(r["health"], "err", "rule {}: {}", r["name"], r["lastError"]);
                r["health"] == "ok"
            })
    });
    g.wait_for(
        "GatewayCertificateExpiring firing",
        Duration::from_secs(30),
        || {
            prom.api("/api/v1/alerts")["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| {
                    a["labels"]["alertname"] == "GatewayCertificateExpiring"
                        && a["labels"]["box"] == "clinic-7"
                        && a["state"] == "firing"
                })
        },
    );
    drop(prom);
}

/// `[fleet.remote_write] tls` with `client_cert` + `client_key`: a
/// receiver that requires a client certificate takes the samples; without
/// one the status says the server asked for it.
#[test]
fn remote_write_presents_a_client_certificate_when_the_receiver_requires_one() {
    if !require_tool("openssl", "openssl") {
        return;
    }
    let pki = Pki::new(ServerKey::Ec);
    let Some((_peer, port)) = start_peer("mtls_receiver.py", &["ssl"], &[pki.dir().as_os_str()])
    else {
        return;
    };
    let start = |client: &str| {
        Gateway::start_with(Options {
            top_extra: format!(
                "[fleet]\nurl = \"https://127.0.0.1:1/hb\"\n\
                 [fleet.remote_write]\nurl = \"https://127.0.0.1:{port}/api/v1/write\"\ninterval = \"1s\"\n\
                 tls = {{ ca_file = {:?}{client} }}\n",
                pki.path_str("ca.pem")
            ),
            ..Default::default()
        })
    };
    let g = start(&format!(
        ", client_cert = {:?}, client_key = {:?}",
        pki.path_str("client.pem"),
        pki.path_str("client.key")
    ));
    g.wait_for(
        "samples taken over mutual TLS",
        Duration::from_secs(30),
        || {
            let rw = remote_write_status(&g);
            rw["sent_samples"].as_u64().unwrap_or(0) > 0 && rw["last_error"].is_null()
        },
    );
    drop(g);
    let g = start("");
    g.wait_for(
        "the receiver asking for a certificate",
        Duration::from_secs(30),
        || {
            remote_write_status(&g)["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("tls.client_cert"))
        },
    );
    assert_eq!(remote_write_status(&g)["sent_samples"], 0);
}
