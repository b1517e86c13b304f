//! Live audit forwarding (`[audit.syslog]`, docs/audit.md) to Debian's
//! rsyslog on loopback: imtcp with the OpenSSL stream driver (RFC 5425,
//! TLS from a test CA), writing each message's raw text to a file. The
//! collector goes down mid-stream and the gateway restarts; every audit
//! event must still arrive, in order (duplicates allowed, de-duplicated by
//! seq here), carrying its chain hash, with the chain head after batches,
//! and no PHI.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use test_support::need::require_tool;

use crate::support::pki::{Pki, ServerKey};
use crate::support::{adt, free_port, send_one, Gateway, Options};

/// rsyslogd in the foreground on 127.0.0.1:`port`, TLS (ossl driver).
struct Rsyslog {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Rsyslog {
    fn start(dir: &Path, pki: &Pki, port: u16) -> Rsyslog {
        let conf = format!(
            r#"global(
  workDirectory="{dir}"
  DefaultNetstreamDriver="ossl"
  DefaultNetstreamDriverCAFile="{ca}"
  DefaultNetstreamDriverCertFile="{cert}"
  DefaultNetstreamDriverKeyFile="{key}"
)
module(load="imtcp" StreamDriver.Name="ossl" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
input(type="imtcp" port="{port}" address="127.0.0.1")
template(name="raw" type="string" string="%rawmsg%\n")
action(type="omfile" file="{dir}/received.log" template="raw")
"#,
            dir = dir.display(),
            ca = pki.path_str("ca.pem"),
            cert = pki.path_str("server.pem"),
            key = pki.path_str("server.key"),
        );
        std::fs::write(dir.join("rsyslog.conf"), conf).unwrap();
        let mut r = Rsyslog {
            dir: dir.to_path_buf(),
            port,
            child: None,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.join("rsyslogd.out")).unwrap();
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(self.dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(self.dir.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("run rsyslogd (apt-get install rsyslog rsyslog-openssl)");
        self.child = Some(child);
        let addr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "rsyslogd exited ({st}) (is rsyslog-openssl installed?):\n{}",
                    std::fs::read_to_string(self.dir.join("rsyslogd.out")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "rsyslogd does not listen on {addr}:\n{}",
                std::fs::read_to_string(self.dir.join("rsyslogd.out")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM and wait (the outage).
    fn stop(&mut self) {
        crate::support::peers::terminate(&mut self.child);
    }

    fn received(&self) -> String {
        std::fs::read_to_string(self.dir.join("received.log")).unwrap_or_default()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `name="value"` inside `line`'s structured data element `sd_id`.
fn sd_param(line: &str, sd_id: &str, name: &str) -> Option<String> {
    let start = line.find(&format!("[{sd_id} "))?;
    let elem = &line[start..];
    let elem = &elem[..elem.find(']')?];
    let key = format!(" {name}=\"");
    let v = &elem[elem.find(&key)? + key.len()..];
    Some(v[..v.find('"')?].to_string())
}

/// seq -> chain hash of every audit event the gateway's own export lists.
fn exported(g: &Gateway) -> BTreeMap<u64, String> {
    let out = g.cli(&["audit", "export", "--json"]);
    assert!(out.status.success(), "audit export failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["seq"].as_u64().unwrap(),
                v["hash"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn send_batch(g: &Gateway, prefix: &str, n: usize) {
    for i in 0..n {
        let ack = send_one(&g.addr(), &adt(&format!("{prefix}{i}"), "MRNSECRET77")).unwrap();
        assert_eq!(crate::support::ack_code(&ack), "AA");
    }
}

#[test]
fn every_audit_event_reaches_rsyslog_over_tls_in_order_through_an_outage_and_a_restart() {
    if !require_tool("rsyslogd", "rsyslog rsyslog-openssl") || !require_tool("openssl", "openssl") {
        return;
    }
    let pki = Pki::new(ServerKey::Ec);
    let collector_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut rsyslog = Rsyslog::start(collector_dir.path(), &pki, port);
    let mut g = Gateway::start_with(Options {
        top_extra: format!(
            "[audit.syslog]\naddress = \"127.0.0.1:{port}\"\nca = {:?}\nhostname = \"gw-test\"\n",
            pki.path_str("ca.pem")
        ),
        ..Default::default()
    });
    send_batch(&g, "S1-", 20);
    std::thread::sleep(Duration::from_secs(1));
    // The outage: the collector stops while events keep coming.
    rsyslog.stop();
    send_batch(&g, "S2-", 20);
    std::thread::sleep(Duration::from_secs(2));
    rsyslog.spawn();
    send_batch(&g, "S3-", 10);
    // A gateway restart: the cursor is durable.
    assert!(g.stop().success());
    g.spawn();
    send_batch(&g, "S4-", 10);

    let want = exported(&g);
    let newest = *want.keys().last().unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let got = loop {
        let text = rsyslog.received();
        let mut first_seen: Vec<u64> = Vec::new();
        let mut hashes: BTreeMap<u64, String> = BTreeMap::new();
        for line in text.lines() {
            if let Some(seq) = sd_param(line, "audit@32473", "seq") {
                let seq: u64 = seq.parse().unwrap();
                let hash = sd_param(line, "audit@32473", "hash").unwrap_or_default();
                if let Some(h) = hashes.insert(seq, hash.clone()) {
                    assert_eq!(h, hash, "seq {seq} arrived twice with different hashes");
                } else {
                    first_seen.push(seq);
                }
            }
        }
        if hashes.range(..=newest).count() >= want.len() || Instant::now() > deadline {
            break (text, first_seen, hashes);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let (text, first_seen, hashes) = got;
    let missing: Vec<_> = want.keys().filter(|s| !hashes.contains_key(s)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} audit events never reached the collector, e.g. {:?}; gateway log:\n{}",
        missing.len(),
        want.len(),
        &missing[..missing.len().min(10)],
        g.log_tail()
    );
    for (seq, hash) in &want {
        assert_eq!(&hashes[seq], hash, "seq {seq}: chain hash differs");
    }
    assert!(
        first_seen.windows(2).all(|w| w[0] < w[1]),
        "events arrived out of order: {first_seen:?}"
    );
    let heads = text
        .lines()
        .filter(|l| sd_param(l, "head@32473", "hash").is_some())
        .count();
    assert!(heads >= 2, "the chain head must follow every batch");
    assert!(
        text.lines()
            .all(|l| l.starts_with("<110>1 ") && l.contains(" gw-test ")),
        "RFC 5424 header (facility log audit, hostname): {}",
        text.lines().next().unwrap_or("")
    );
    for phi in ["MRNSECRET77", "PATIENT", "19800101"] {
        assert!(!text.contains(phi), "PHI {phi:?} reached the collector");
    }
    println!(
        "{} events, {} messages received (duplicates after the outage: {})",
        want.len(),
        text.lines().count(),
        text.lines().count().saturating_sub(heads + want.len())
    );
}
