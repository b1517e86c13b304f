//! Real third-party peers: the Python `hl7` package (MLLPClient, mllp_send)
//! and `hl7apy` (strict ACK/NAK validation) against the running daemon.

use crate::support::peers::{python, script};
use crate::support::Gateway;

#[test]
fn python_hl7_and_hl7apy_peers_get_valid_acks() {
    let Some(py) = python(&["hl7", "hl7apy"]) else {
        return;
    };
    let g = Gateway::start();
    let out = std::process::Command::new(py)
        .arg(script("hl7_peers.py"))
        .args(["--port", &g.port.to_string(), "--corpus"])
        .arg(test_support::paths::shared_corpus("hl7v2-fhir-converter"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "peer checks failed:\n{stdout}\n{stderr}\ngateway log tail:\n{}",
        g.log_tail()
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}
