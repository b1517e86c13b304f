//! Real third-party peers: the Python `hl7` package (MLLPClient, mllp_send)
//! and `hl7apy` (strict ACK/NAK validation) against the running daemon.

mod common;

use common::*;

#[test]
fn python_hl7_and_hl7apy_peers_get_valid_acks() {
    let g = Gateway::start();
    let out = std::process::Command::new(python())
        .arg(peers_dir().join("hl7_peers.py"))
        .args(["--port", &g.port.to_string(), "--corpus"])
        .arg(corpus_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "peer checks failed:\n{stdout}\n{stderr}\ngateway log tail:\n{}",
        tail(&g.log_text())
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}

fn tail(s: &str) -> String {
    s.lines()
        .rev()
        .take(40)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n")
}
