//! systemd integration: the unit files pass `systemd-analyze verify` and
//! `systemd-analyze security --offline=true` (exposure <= 2.0), and the daemon
//! speaks the notify protocol on a real NOTIFY_SOCKET.

mod common;

use common::*;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn unit_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd")
}

/// The shipped unit names install paths (/usr/bin/gateway); verify a copy
/// that points at the binary under test so the executable checks are real.
fn unit_under_test(dir: &Path, name: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(unit_dir().join(name)).unwrap();
    let out = dir.join(name);
    std::fs::write(&out, text.replace("/usr/bin/gateway", BIN)).unwrap();
    out
}

#[test]
fn gateway_unit_passes_systemd_analyze_verify() {
    let d = tempfile::tempdir().unwrap();
    let unit = unit_under_test(d.path(), "gateway.service");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze must be installed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    let own: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("gateway.service"))
        .collect();
    assert!(
        own.is_empty(),
        "verify warnings about the unit:\n{}",
        own.join("\n")
    );
}

#[test]
fn gateway_unit_exposure_is_at_most_2() {
    let d = tempfile::tempdir().unwrap();
    let unit = unit_under_test(d.path(), "gateway.service");
    // --threshold is in tenths: 20 = exposure 2.0.
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=20"])
        .arg(&unit)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure line:\n{stdout}"));
    let level: f64 = line
        .split(':')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(
        out.status.success() && level <= 2.0,
        "exposure {level} > 2.0:\n{stdout}"
    );
}

#[test]
fn ready_after_listener_is_bound_and_stopping_on_sigterm() {
    let d = tempfile::tempdir().unwrap();
    let sock_path = d.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut g = Gateway::configure(Options::default());
    g.spawn_with_env(&[("NOTIFY_SOCKET", sock_path.as_os_str())]);
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = sock.recv(&mut buf).expect("no READY=1 from the daemon");
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        if msg.lines().any(|l| l == "READY=1") {
            // Ready means the MLLP port is already bound and accepting.
            let ack = send_one(&g.addr(), &adt("READY-1", "M")).unwrap();
            assert_eq!(ack_code(&ack), "AA");
            assert!(
                msg.contains("STATUS="),
                "READY should carry a human STATUS: {msg}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no READY=1 within 60 s");
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(g.pid()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut stopping = false;
    while let Ok(n) = sock.recv(&mut buf) {
        if String::from_utf8_lossy(&buf[..n])
            .lines()
            .any(|l| l == "STOPPING=1")
        {
            stopping = true;
            break;
        }
    }
    assert!(stopping, "no STOPPING=1 after SIGTERM");
    assert!(g.stop_wait().success());
}
