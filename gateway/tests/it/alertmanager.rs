//! Alerts to a real Alertmanager (Debian's `prometheus-alertmanager`) on
//! loopback: it receives the gateway's alert with its labels, groups it
//! into a notification to its own webhook receiver, and resolves it when
//! the gateway says the condition cleared.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ops::http_get;
use crate::support::http_peer::{HttpPeer, Mode};
use crate::support::{ack_code, adt, free_port, require_tool, send_one, Gateway, Options};

/// A running Alertmanager; killed on drop.
struct Alertmanager {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Alertmanager {
    /// Groups by box and rule, notifies `receiver` quickly, with resolves.
    fn start(receiver: &str) -> Alertmanager {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            format!(
                "route:\n  receiver: hook\n  group_by: ['box', 'rule']\n  group_wait: 500ms\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: '{receiver}'\n        send_resolved: true\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let am = Alertmanager {
            child,
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&am.addr).is_err()
            || http_get(&am.addr, "/-/ready", None).0 != 200
        {
            assert!(Instant::now() < deadline, "alertmanager did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        am
    }

    fn alerts(&self) -> Vec<serde_json::Value> {
        let (code, body) = http_get(&self.addr, "/api/v2/alerts", None);
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }
}

/// Alertmanager notifications (its webhook JSON) with this status.
fn notices(hook: &HttpPeer, status: &str) -> Vec<serde_json::Value> {
    hook.received()
        .iter()
        .filter_map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
        .filter(|v| v["status"] == status)
        .collect()
}

#[test]
fn alertmanager_receives_groups_and_resolves_the_gateways_alerts() {
    if !require_tool("prometheus-alertmanager", "prometheus-alertmanager") {
        return;
    }
    let hook = HttpPeer::start();
    let am = Alertmanager::start(&hook.url("/am"));
    let dest = HttpPeer::start();
    dest.set_mode(Mode::Refuse);
    let g = Gateway::start_with(Options {
        top_extra: format!(
            "[fleet]\nurl = \"{}\"\nbox_id = \"clinic-7\"\n[alerts]\nevaluate_every = \"200ms\"\ndestination_down_max = \"0s\"\ndisk_warn_percent = 100\nalertmanager_url = \"http://{}\"\nsite = \"main-street\"\n",
            hook.url("/heartbeat"),
            am.addr
        ),
        routing: Some(format!(
            "[[destination]]\nname = \"cloud\"\nkind = \"http\"\nurl = \"{}\"\ncircuit_failures = 1\nprobe_interval = \"200ms\"\nbackoff_initial = \"50ms\"\nbackoff_max = \"200ms\"\n\n[[route]]\nname = \"all\"\nfrom = [\"ehr\"]\nto = [\"cloud\"]\n",
            dest.url("/hl7")
        )),
        ..Default::default()
    });
    assert_eq!(
        ack_code(&send_one(&g.addr(), &adt("AM-1", "MRN4711")).unwrap()),
        "AA"
    );
    let down = |a: &serde_json::Value| a["labels"]["alertname"] == "destination_down";
    g.wait_for("the alert in Alertmanager", Duration::from_secs(30), || {
        am.alerts().iter().any(down)
    });
    let a = am.alerts().into_iter().find(down).unwrap();
    assert_eq!(a["labels"]["destination"], "cloud", "{a}");
    assert_eq!(a["labels"]["severity"], "critical", "{a}");
    assert_eq!(a["labels"]["box"], "clinic-7", "{a}");
    assert_eq!(a["labels"]["site"], "main-street", "{a}");
    assert_eq!(a["status"]["state"], "active", "{a}");
    assert!(a["annotations"]["summary"]
        .as_str()
        .unwrap()
        .contains("cloud"));

    // Alertmanager groups it and notifies its receiver.
    g.wait_for("the firing notification", Duration::from_secs(30), || {
        notices(&hook, "firing")
            .iter()
            .any(|n| n["groupLabels"]["rule"] == "destination_down")
    });
    let n = notices(&hook, "firing")
        .into_iter()
        .find(|n| n["groupLabels"]["rule"] == "destination_down")
        .unwrap();
    assert_eq!(n["groupLabels"]["box"], "clinic-7", "{n}");
    assert_eq!(n["alerts"].as_array().map(Vec::len), Some(1), "{n}");

    // Cleared: the gateway resolves it, Alertmanager says so.
    dest.set_mode(Mode::Up);
    g.wait_for("the resolved notification", Duration::from_secs(30), || {
        notices(&hook, "resolved")
            .iter()
            .any(|n| n["groupLabels"]["rule"] == "destination_down")
    });
    assert!(
        !am.alerts()
            .iter()
            .any(|a| down(a) && a["status"]["state"] == "active"),
        "{:?}",
        am.alerts()
    );
    for r in hook.received() {
        let t = r.text();
        for phi in ["MRN4711", "PATIENT", "19800101"] {
            assert!(!t.contains(phi), "{phi} reached Alertmanager: {t}");
        }
    }
}
