//! Shared fixtures of the gateway's integration tests: the daemon under
//! test (`daemon`), scripted HTTP servers standing in for the cloud
//! (`http_peer`), a loopback FHIR server that applies transactions
//! (`fhir_server`), a SMART token endpoint that verifies assertions
//! (`token_server`), certificates made with openssl (`pki`), the crash
//! workload and its exactly-once check (`crash`), the Python peers in
//! `tests/peers` (`peers`), and the small MLLP/HL7 helpers below. What the
//! machine must provide (a tool, root, the test Python) comes from
//! `test_support`: under `CI=true` a missing one fails the test.

pub mod bulk_server;
pub mod crash;
pub mod daemon;
pub mod fhir_server;
pub mod http_peer;
pub mod peers;
pub mod pki;
pub mod sshd;
pub mod token_server;

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use gateway::net::mllp_client::Client;

pub use daemon::{check_config, Gateway, Options, BIN};
pub use test_support::need::{require_root, require_tool};
pub use test_support::paths::hl7_corpus_files as corpus_files;

/// A minimal MSH-led message.
pub fn adt(control_id: &str, mrn: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|ECW|CLINIC|GW|CLOUD|20240101120000||ADT^A04^ADT_A01|{control_id}|P|2.5.1\rEVN|A04|20240101120000\rPID|1||{mrn}^^^CLINIC^MR||TEST^PATIENT||19800101|F\rPV1|1|O\r"
    )
    .into_bytes()
}

/// Storage thresholds that do not depend on how full the host's disk is,
/// for tests that write hundreds of MB but do not test the disk policy:
/// at the default 95 % a CI machine with little room left refuses their
/// messages (AE) for a reason that is not theirs.
pub const STORAGE: &str = "[storage]\nwarn_at_percent = 99\nrefuse_at_percent = 100\n";

/// MSH-10 of an HL7 message's bytes.
pub fn control_id(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .split('\r')
        .next()
        .unwrap_or("")
        .split('|')
        .nth(9)
        .unwrap_or("")
        .to_string()
}

/// MSA-1 of an ACK payload.
pub fn ack_code(ack: &[u8]) -> String {
    hl7::parse_ack(ack)
        .map(|a| a.code)
        .unwrap_or_else(|e| format!("unreadable ACK: {e}"))
}

/// Send one message on a fresh connection and return the ACK payload.
pub fn send_one(addr: &str, msg: &[u8]) -> Result<Vec<u8>, String> {
    rt().block_on(async {
        let mut c = Client::connect(addr, None, Duration::from_secs(20)).await?;
        c.exchange(msg).await
    })
    .map_err(|e| e.to_string())
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A loopback port nothing listens on now, and that no other test of this
/// process was given: all the tests share one process, so two daemons of
/// concurrent tests never race for the same port.
pub fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if claim_port(port) {
            return port;
        }
    }
}

/// Records `port` as taken by a test (a peer that binds port 0 itself and
/// may close and rebind it); false if it already was.
pub fn claim_port(port: u16) -> bool {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    given.get_or_insert_with(HashSet::new).insert(port)
}

/// Held by the tests that must not run alongside each other: the SIGKILL
/// and power-cut cycles (they flood the disk with syncs for a minute or
/// more) and the tests that time the daemon's start (watchdog pings, the
/// start timeout). Each of those files had a test binary of its own
/// before, which kept them apart the same way.
pub fn alone() -> MutexGuard<'static, ()> {
    static ALONE: Mutex<()> = Mutex::new(());
    ALONE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A raw HTTP/1.1 response split into its status code (0 if unreadable)
/// and its body.
pub fn status_and_body(response: &str) -> (u16, String) {
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_string())
}

/// The last 40 lines of `s` (a log).
pub fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
