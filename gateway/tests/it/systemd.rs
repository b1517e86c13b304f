//! systemd integration: the unit files pass `systemd-analyze verify` and
//! `systemd-analyze security --offline=true` (exposure <= 2.0), and the daemon
//! speaks the notify protocol on a real NOTIFY_SOCKET.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use test_support::systemd;

use crate::support::{
    ack_code, adt, alone, free_port, require_tool, send_one, Gateway, Options, BIN,
};

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
    if !require_tool("systemd-analyze", "systemd") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let unit = unit_under_test(d.path(), "gateway.service");
    let warnings = systemd::verify(d.path(), &[unit]);
    let own: Vec<&str> = warnings
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
    if !require_tool("systemd-analyze", "systemd") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let unit = unit_under_test(d.path(), "gateway.service");
    let e = systemd::exposure(&unit, 2.0);
    assert!(
        e.within && e.level <= 2.0,
        "exposure {} > 2.0:\n{}",
        e.level,
        e.report
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

/// Collect notify datagrams for `secs`, with the time each arrived.
/// The notifications for `secs` seconds counted from READY=1, each with
/// its time since READY=1: a slow start on a loaded machine does not
/// shift the windows the tests look at. At most 30 s wait for READY=1.
fn collect(sock: &UnixDatagram, secs: u64) -> Vec<(Duration, String)> {
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut ready: Option<Instant> = None;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match ready {
            Some(r) if r.elapsed() >= Duration::from_secs(secs) => break,
            None if Instant::now() >= deadline => panic!("no READY=1 within 30 s: {out:?}"),
            _ => {}
        }
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if ready.is_none() && msg.lines().any(|l| l == "READY=1") {
                ready = Some(Instant::now());
            }
            if let Some(r) = ready {
                out.push((r.elapsed(), msg));
            }
        }
    }
    out
}

fn watchdog_daemon(stall: bool) -> (Gateway, UnixDatagram, tempfile::TempDir) {
    let d = tempfile::tempdir().unwrap();
    let sock_path = d.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let mut g = Gateway::configure(Options::default());
    let mut env: Vec<(&str, &std::ffi::OsStr)> = vec![
        ("NOTIFY_SOCKET", sock_path.as_os_str()),
        // 2 s: pings every 0.5 s; a loop silent for 3 s counts as stuck.
        ("WATCHDOG_USEC", std::ffi::OsStr::new("2000000")),
    ];
    if stall {
        env.push((
            "GATEWAY_TEST_STALL_DELIVERER",
            std::ffi::OsStr::new("outbox"),
        ));
        env.push(("GATEWAY_TEST_STALL_AFTER_MS", std::ffi::OsStr::new("2500")));
    }
    g.spawn_with_env(&env);
    (g, sock, d)
}

fn pings(events: &[(Duration, String)], from: u64, to: u64) -> usize {
    events
        .iter()
        .filter(|(t, m)| {
            *t >= Duration::from_secs(from)
                && *t < Duration::from_secs(to)
                && m.lines().any(|l| l == "WATCHDOG=1")
        })
        .count()
}

#[test]
fn watchdog_pings_while_every_critical_loop_is_alive() {
    let _alone = alone();
    let (g, sock, _d) = watchdog_daemon(false);
    let events = collect(&sock, 8);
    assert!(pings(&events, 0, 3) >= 2, "no pings early: {events:?}");
    assert!(
        pings(&events, 5, 8) >= 3,
        "pings must continue while healthy: {events:?}\n{}",
        g.log_text()
    );
}

#[test]
fn watchdog_stops_pinging_when_a_deliverer_is_stuck() {
    let _alone = alone();
    let (g, sock, _d) = watchdog_daemon(true);
    let events = collect(&sock, 10);
    assert!(
        pings(&events, 0, 2) >= 2,
        "no pings before the stall: {events:?}"
    );
    // Stalled 2.5 s after start (the deliverers start before READY=1);
    // stale 3 s later; a second of slack for a loaded machine.
    assert_eq!(
        pings(&events, 7, 10),
        0,
        "pings continued through a stuck deliverer: {events:?}"
    );
    let log = g.log_text();
    assert!(
        log.contains("withholding watchdog pings") && log.contains("deliverer outbox"),
        "{log}"
    );
}

/// A long journal recovery: EXTEND_TIMEOUT_USEC while it runs, /readyz says
/// why it is not ready, then READY=1; later STATUS= lines follow the state
/// ("1 listener, 1 pending, cloud down 0m").
#[test]
fn extends_the_start_timeout_during_recovery_and_keeps_status_current() {
    let _alone = alone();
    let d = tempfile::tempdir().unwrap();
    let sock_path = d.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let hport = free_port();
    let mut g = Gateway::configure(Options {
        top_extra: format!("[health]\nbind = \"127.0.0.1:{hport}\"\n"),
        routing: Some(
            "[[destination]]\nname = \"cloud\"\nkind = \"http\"\nurl = \"http://127.0.0.1:1/x\"\ncircuit_failures = 1\nprobe_interval = \"1s\"\n\n[[route]]\nname = \"all\"\nfrom = [\"ehr\"]\nto = [\"cloud\"]\n"
                .into(),
        ),
        ..Default::default()
    });
    g.spawn_with_env(&[
        ("NOTIFY_SOCKET", sock_path.as_os_str()),
        (
            "GATEWAY_TEST_SLOW_JOURNAL_OPEN_MS",
            std::ffi::OsStr::new("3000"),
        ),
    ]);
    let readyz = || -> Option<String> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", hport)).ok()?;
        s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
            .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    };
    let mut extended = false;
    let mut not_ready_reason = None;
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "no READY=1 within 60 s");
        if not_ready_reason.is_none() {
            if let Some(r) = readyz() {
                if r.starts_with("HTTP/1.1 503") {
                    not_ready_reason = Some(r);
                }
            }
        }
        let Ok(n) = sock.recv(&mut buf) else { continue };
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        if msg.lines().any(|l| l.starts_with("EXTEND_TIMEOUT_USEC=")) {
            assert!(msg.contains("STATUS=recovering the journal"), "{msg}");
            extended = true;
        }
        if msg.lines().any(|l| l == "READY=1") {
            break;
        }
    }
    assert!(extended, "no EXTEND_TIMEOUT_USEC during the slow open");
    let why = not_ready_reason.expect("/readyz never answered 503 during the open");
    assert!(why.contains("journal not open"), "{why}");
    assert!(readyz().unwrap().starts_with("HTTP/1.1 200"));

    assert_eq!(
        ack_code(&send_one(&g.addr(), &adt("ST-1", "M")).unwrap()),
        "AA"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "no STATUS= naming the outage");
        let Ok(n) = sock.recv(&mut buf) else { continue };
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        if msg.contains("STATUS=1 listener, 1 pending, cloud down") {
            break;
        }
    }
    assert!(g.stop().success());
}

/// A `setpriv` command running `args` as `uid`/`gid` with no
/// supplementary groups.
fn as_ids(uid: u32, gid: u32, program: &Path) -> std::process::Command {
    let mut c = std::process::Command::new("setpriv");
    c.args([
        &format!("--reuid={uid}"),
        &format!("--regid={gid}"),
        "--clear-groups",
        "--",
    ])
    .arg(program);
    c
}

/// The shipped unit's `RuntimeDirectoryMode=` (octal).
fn runtime_directory_mode(unit: &str) -> u32 {
    let line = unit
        .lines()
        .find(|l| l.starts_with("RuntimeDirectoryMode="))
        .expect("the unit sets RuntimeDirectoryMode=");
    u32::from_str_radix(line.split('=').nth(1).unwrap().trim(), 8).unwrap()
}

#[test]
fn gateway_admin_members_reach_the_admin_socket_and_nobody_else_does() {
    use std::os::unix::fs::PermissionsExt;
    if !crate::support::require_root("running the daemon and clients as other uids")
        || !require_tool("setpriv", "util-linux")
        || !require_tool("systemd-sysusers", "systemd")
    {
        return;
    }
    let unit = std::fs::read_to_string(unit_dir().join("gateway.service")).unwrap();
    // In a user namespace every other uid/gid is unmapped: SO_PEERCRED
    // would show an operator as nobody and the group could never match.
    assert!(
        !unit.lines().any(|l| l.trim() == "PrivateUsers=yes"),
        "PrivateUsers=yes hides the gateway-admin group from the daemon"
    );
    // The group, from the shipped sysusers.d snippet (idempotent).
    let sysusers = unit_dir().join("gateway-admin.sysusers");
    test_support::run::succeeds(std::process::Command::new("systemd-sysusers").arg(&sysusers));
    let gid = nix::unistd::Group::from_name("gateway-admin")
        .unwrap()
        .expect("systemd-sysusers created gateway-admin")
        .gid
        .as_raw();

    // As systemd would start it: an unprivileged service uid (DynamicUser=)
    // owning its data directory and a runtime directory made with the
    // unit's mode, the admin socket in it.
    const SERVICE_UID: u32 = 61_234;
    let root = tempfile::tempdir().unwrap();
    let mode =
        |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    mode(root.path(), 0o755);
    let run = root.path().join("run/gateway");
    std::fs::create_dir_all(&run).unwrap();
    mode(&root.path().join("run"), 0o755);
    mode(&run, runtime_directory_mode(&unit));
    let data = root.path().join("var");
    std::fs::create_dir(&data).unwrap();
    for d in [&run, &data] {
        nix::unistd::chown(
            d.as_path(),
            Some(nix::unistd::Uid::from_raw(SERVICE_UID)),
            Some(nix::unistd::Gid::from_raw(SERVICE_UID)),
        )
        .unwrap();
    }
    let sock = run.join("admin.sock");
    let mut g = Gateway::configure(Options {
        data_dir: Some(data),
        top_extra: format!("admin_socket = {:?}\n", sock.display().to_string()),
        ..Default::default()
    });
    mode(g.config.parent().unwrap(), 0o755);
    mode(&g.config, 0o644);
    let log = std::fs::File::create(&g.log).unwrap();
    let child = as_ids(SERVICE_UID, SERVICE_UID, Path::new(BIN))
        .args(["run", "--config"])
        .arg(&g.config)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    g.child = Some(child);
    g.wait_ready();

    let status_as = |uid: u32, gid: u32| {
        as_ids(uid, gid, Path::new(BIN))
            .args(["status", "--config"])
            .arg(&g.config)
            .output()
            .unwrap()
    };
    let member = status_as(65534, gid);
    assert!(
        member.status.success(),
        "a gateway-admin member must run `gateway status`: {}\n{}",
        String::from_utf8_lossy(&member.stderr),
        g.log_tail()
    );
    assert!(
        g.cli(&["status"]).status.success(),
        "root runs `gateway status`"
    );
    let other = status_as(65534, 65534);
    assert!(!other.status.success(), "nobody must be refused");
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(
        err.contains("not root and not in the gateway-admin group"),
        "the refusal names the group: {err}"
    );
}
