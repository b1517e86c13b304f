//! MLLP over TLS against OpenSSL's own client: TLS 1.2 and 1.3 accepted,
//! older versions refused, mutual TLS enforced when a client CA is set.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::pki::{Pki, ServerKey};
use crate::support::{adt, check_config, require_tool, send_one, Gateway, Options, BIN};

fn tls_gateway(pki: &Path, mutual: bool) -> Gateway {
    let ca = if mutual {
        format!(
            ", client_ca = {:?}",
            pki.join("ca.pem").display().to_string()
        )
    } else {
        String::new()
    };
    Gateway::start_with(Options {
        listener_extra: format!(
            "tls = {{ cert = {:?}, key = {:?}{ca} }}",
            pki.join("server.pem").display().to_string(),
            pki.join("server.key").display().to_string()
        ),
        ..Default::default()
    })
}

/// Send one framed message through `openssl s_client` and return what came back (None if nothing did).
fn s_client(g: &Gateway, pki: &Path, extra: &[&str], control_id: &str) -> Option<String> {
    let mut cmd = Command::new("openssl");
    cmd.args([
        "s_client",
        "-connect",
        &g.addr(),
        "-quiet",
        "-verify_return_error",
        "-CAfile",
    ])
    .arg(pki.join("ca.pem"))
    .args(extra)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(&hl7::mllp::frame(&adt(control_id, "M")))
        .ok();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut chunk) {
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.ends_with(&[0x1c, 0x0d]) {
                break;
            }
        }
        let _ = tx.send(buf);
    });
    let got = rx.recv_timeout(Duration::from_secs(15)).ok();
    let _ = child.kill();
    let _ = child.wait();
    got.filter(|b| !b.is_empty())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// The test PKI (EC keys), or `None` without openssl (a failure on CI).
fn pki() -> Option<Pki> {
    require_tool("openssl", "openssl").then(|| Pki::new(ServerKey::Ec))
}

#[test]
fn tls_1_2_and_1_3_accepted_older_refused() {
    let Some(pki) = pki() else {
        return;
    };
    let pki = pki.dir();
    let g = tls_gateway(pki, false);
    let ack = s_client(&g, pki, &["-tls1_3"], "TLS13").expect("no ACK over TLS 1.3");
    assert!(ack.contains("MSA|AA|TLS13"), "{ack}");
    let ack = s_client(&g, pki, &["-tls1_2"], "TLS12").expect("no ACK over TLS 1.2");
    assert!(ack.contains("MSA|AA|TLS12"), "{ack}");
    let old = s_client(
        &g,
        pki,
        &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
        "TLS11",
    );
    assert!(old.is_none(), "TLS 1.1 must be refused, got {old:?}");
    // A plain-TCP MLLP client gets nothing from a TLS listener.
    assert!(send_one(&g.addr(), &adt("PLAIN", "M")).is_err());
    g.wait_for("two refused connections", Duration::from_secs(10), || {
        g.status_json()["listeners"][0]["connections_refused"]
            .as_u64()
            .unwrap()
            >= 2
    });
}

#[test]
fn mutual_tls_requires_a_client_certificate_from_the_configured_ca() {
    let Some(pki) = pki() else {
        return;
    };
    let pki = pki.dir();
    let g = tls_gateway(pki, true);
    let none = s_client(&g, pki, &[], "NOCERT");
    assert!(
        none.as_deref().is_none_or(|s| !s.contains("MSA|AA")),
        "no client cert must not be served: {none:?}"
    );
    let cert = pki.join("client.pem").display().to_string();
    let key = pki.join("client.key").display().to_string();
    let ack = s_client(&g, pki, &["-cert", &cert, "-key", &key], "MTLS")
        .expect("no ACK with a valid client certificate");
    assert!(ack.contains("MSA|AA|MTLS"), "{ack}");
    let cert = pki.join("stranger.pem").display().to_string();
    let key = pki.join("stranger.key").display().to_string();
    let stranger = s_client(&g, pki, &["-cert", &cert, "-key", &key], "STRANGER");
    assert!(
        stranger.as_deref().is_none_or(|s| !s.contains("MSA|AA")),
        "a certificate from another CA must be refused: {stranger:?}"
    );
    let s = g.status_json();
    assert_eq!(s["listeners"][0]["mutual_tls"], true);
}

#[test]
fn gateway_send_speaks_tls_and_mutual_tls() {
    let Some(pki) = pki() else {
        return;
    };
    let pki = pki.dir();
    let g = tls_gateway(pki, true);
    let file = pki.join("msg.hl7");
    std::fs::write(&file, adt("SENDTLS", "M")).unwrap();
    let out = test_support::run::succeeds(
        Command::new(BIN)
            .args(["send", "--to", &g.addr(), "--tls-ca"])
            .arg(pki.join("ca.pem"))
            .arg("--tls-cert")
            .arg(pki.join("client.pem"))
            .arg("--tls-key")
            .arg(pki.join("client.key"))
            .arg(&file),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("AA (MSA-2 SENDTLS)"), "{stdout}");
    // Without the client certificate, send fails with a non-zero status.
    let out = Command::new(BIN)
        .args(["send", "--timeout", "5", "--to", &g.addr(), "--tls-ca"])
        .arg(pki.join("ca.pem"))
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn check_config_rejects_a_key_that_does_not_match_the_certificate() {
    let Some(pki) = pki() else {
        return;
    };
    let pki = pki.dir();
    let cfg = pki.join("gw.toml");
    std::fs::write(
        &cfg,
        "data_dir = \"var\"\n[[listener]]\nname = \"ehr\"\nbind = \"127.0.0.1:2575\"\ntls = { cert = \"server.pem\", key = \"client.key\" }\n",
    )
    .unwrap();
    let out = check_config(&cfg);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("listener 'ehr'") && err.contains("server.pem"),
        "{err}"
    );
}
