//! Disk full (contract 1 and 5): when the journal cannot take a message the
//! sender gets AE with ERR 207 and a reason, never AA, and service recovers
//! by itself when space returns, also when another process fills the disk
//! while clients send (the space reserve, `gateway/journal/src/reserve.rs`).

use std::collections::{HashMap, HashSet};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gateway::net::mllp_client::Client;
use test_support::tmpfs::Tmpfs;

use crate::support::{ack_code, adt, control_id, rt, send_one, Gateway, Options};

/// Fill the filesystem with a filler file until `write` fails (true disk full) or `bytes` are written.
fn fill(path: &Path, bytes: Option<u64>) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        if bytes.is_some_and(|b| written >= b) {
            break;
        }
        match f.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n as u64,
        }
    }
    let _ = f.sync_all();
}

fn expect_ae_207(ack: &[u8]) {
    let text = String::from_utf8_lossy(ack);
    assert_eq!(ack_code(ack), "AE", "{text}");
    assert!(
        text.contains("207"),
        "ERR must carry table 0357 code 207: {text}"
    );
}

#[test]
fn watermark_refuses_with_ae_and_recovers_when_space_returns() {
    let Some(fs) = Tmpfs::mount("64m") else {
        return;
    };
    let data = fs.path().join("var");
    let g = Gateway::start_with(Options {
        data_dir: Some(data),
        ..Default::default()
    });
    assert_eq!(
        ack_code(&send_one(&g.addr(), &adt("D0", "M")).unwrap()),
        "AA"
    );
    // Fill to ~97%: over the default 95% refuse watermark.
    fill(&fs.path().join("filler"), Some(62 * 1024 * 1024));
    for i in 0..3 {
        let ack = send_one(&g.addr(), &adt(&format!("D1-{i}"), "M")).unwrap();
        expect_ae_207(&ack);
        assert!(
            String::from_utf8_lossy(&ack).contains("full"),
            "the reason must say the disk is full"
        );
    }
    std::fs::remove_file(fs.path().join("filler")).unwrap();
    let ack = send_one(&g.addr(), &adt("D2", "M")).unwrap();
    assert_eq!(
        ack_code(&ack),
        "AA",
        "service must recover by itself: {}",
        String::from_utf8_lossy(&ack)
    );
    let s = g.status_json();
    assert!(s["listeners"][0]["errored"].as_u64().unwrap() >= 3);
}

#[test]
fn truly_full_disk_never_gets_aa_and_recovers() {
    let Some(fs) = Tmpfs::mount("48m") else {
        return;
    };
    let g = Gateway::start_with(Options {
        data_dir: Some(fs.path().join("var")),
        // Watermark at 100%: only a real ENOSPC stops the journal.
        top_extra: "[storage]\nwarn_at_percent = 99\nrefuse_at_percent = 100\n".into(),
        ..Default::default()
    });
    assert_eq!(
        ack_code(&send_one(&g.addr(), &adt("E0", "M")).unwrap()),
        "AA"
    );
    fill(&fs.path().join("filler"), None);
    let mut big = adt("E1", "M");
    big.extend(
        format!(
            "OBX|1|ED|PDF^Report||^AP^PDF^Base64^{}\r",
            "QUJD".repeat(600_000)
        )
        .bytes(),
    );
    let mut saw_ae = false;
    for i in 0..5 {
        let mut m = big.clone();
        let id = format!("E1-{i}");
        m = String::from_utf8(m)
            .unwrap()
            .replacen("|E1|", &format!("|{id}|"), 1)
            .into_bytes();
        let ack = send_one(&g.addr(), &m).unwrap();
        match ack_code(&ack).as_str() {
            "AE" => {
                expect_ae_207(&ack);
                saw_ae = true;
            }
            other => panic!(
                "a full disk must answer AE, got {other}: {}",
                String::from_utf8_lossy(&ack)
            ),
        }
    }
    assert!(saw_ae);
    std::fs::remove_file(fs.path().join("filler")).unwrap();
    let mut recovered = false;
    for i in 0..20 {
        let ack = send_one(&g.addr(), &adt(&format!("E2-{i}"), "M")).unwrap();
        if ack_code(&ack) == "AA" {
            recovered = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert!(
        recovered,
        "no AA after space returned; log:\n{}",
        g.log_text()
    );
}

#[test]
fn quota_refuses_with_ae_and_never_aa() {
    let g = Gateway::start_with(Options {
        top_extra: "[storage]\nquota_mb = 4\n".into(),
        ..Default::default()
    });
    let mut refused_at = None;
    for i in 0..40 {
        let mut m = adt(&format!("Q{i}"), "M");
        m.extend(format!("OBX|1|TX|X^Y||{}\r", "Z".repeat(300_000)).bytes());
        let ack = send_one(&g.addr(), &m).unwrap();
        match (ack_code(&ack).as_str(), refused_at) {
            ("AA", None) => {}
            ("AE", _) => {
                expect_ae_207(&ack);
                refused_at.get_or_insert(i);
            }
            (code, _) => panic!(
                "message {i}: {code} after the quota was reached: {}",
                String::from_utf8_lossy(&ack)
            ),
        }
    }
    assert!(
        refused_at.is_some(),
        "4 MB quota never enforced over 12 MB of messages"
    );
}

/// Bytes free on the filesystem holding `p`.
fn free_bytes(p: &Path) -> u64 {
    let s = nix::sys::statvfs::statvfs(p).unwrap();
    s.blocks_available() as u64 * s.fragment_size() as u64
}

/// Polls `done` every 100 ms for at most `within`; whether it came true.
fn poll(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

/// What the racing clients sent and were answered: id -> (bytes, code,
/// when the answer came).
type Answers = Arc<Mutex<HashMap<String, (Vec<u8>, String, Instant)>>>;

/// `n` clients, each on its own connection, sending until `stop` (at most
/// 3000 messages each); every 4th message is 300 KB (a sled blob file in a
/// format-1 journal; chunks in format 2). A client whose connection fails
/// reconnects.
fn racing_clients(
    addr: &str,
    n: usize,
    stop: &Arc<AtomicBool>,
    answers: &Answers,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..n)
        .map(|t| {
            let (addr, stop, answers) = (addr.to_string(), stop.clone(), answers.clone());
            std::thread::spawn(move || {
                rt().block_on(async move {
                    let mut seq = 0;
                    'conn: while !stop.load(Ordering::Relaxed) && seq < 3000 {
                        let Ok(mut c) = Client::connect(&addr, None, Duration::from_secs(20)).await
                        else {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        };
                        while !stop.load(Ordering::Relaxed) && seq < 3000 {
                            let id = format!("R{t}S{seq}");
                            let mut msg = adt(&id, &format!("P{t}"));
                            if seq % 4 == 3 {
                                msg.extend(
                                    format!(
                                        "OBX|1|ED|PDF^Report||^AP^PDF^Base64^{}\r",
                                        "QUJD".repeat(75_000)
                                    )
                                    .bytes(),
                                );
                            }
                            seq += 1;
                            match c.exchange(&msg).await {
                                Ok(ack) => {
                                    let code = ack_code(&ack);
                                    // A refused sender waits before its next
                                    // message, as eCW does: without it a fast
                                    // machine spends all 3000 on AEs while the
                                    // disk is full and none is left to show the
                                    // recovery.
                                    let refused = code != "AA";
                                    answers
                                        .lock()
                                        .unwrap()
                                        .insert(id, (msg, code, Instant::now()));
                                    if refused {
                                        tokio::time::sleep(Duration::from_millis(50)).await;
                                    }
                                }
                                // No answer: neither acknowledged nor refused.
                                Err(_) => continue 'conn,
                            }
                        }
                    }
                })
            })
        })
        .collect()
}

/// The journal is fresh, so format 2 (`gateway/journal/src/chunk.rs`):
/// the 300 KB messages are chunked inside sled, which therefore never
/// writes a blob file, the write that wedged sled 0.34 on ENOSPC.
#[test]
fn a_process_filling_the_disk_while_clients_send_never_gets_an_aa_lost_or_a_hang() {
    let Some(fs) = Tmpfs::mount("64m") else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let notify = tempfile::tempdir().unwrap();
    let sock_path = notify.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let routing = format!(
        "[[destination]]\nname = \"outbox\"\nkind = \"folder\"\npath = {:?}\n\n\
         [[route]]\nname = \"all\"\nfrom = [\"ehr\"]\nto = [\"outbox\"]\n",
        out.path().display().to_string()
    );
    let mut g = Gateway::configure(Options {
        data_dir: Some(fs.path().join("var")),
        // Watermarks out of the way: only the disk really filling stops
        // the journal. A 4 MiB reserve (1/16 of this filesystem).
        top_extra: "[storage]\nwarn_at_percent = 99\nrefuse_at_percent = 100\nreserve_mb = 4\n"
            .into(),
        routing: Some(routing),
        ..Default::default()
    });
    g.spawn_with_env(&[
        ("NOTIFY_SOCKET", sock_path.as_os_str()),
        ("WATCHDOG_USEC", std::ffi::OsStr::new("2000000")),
    ]);
    g.wait_ready();
    assert!(
        fs.path().join("var/journal/reserve").is_file(),
        "no space reserve in the journal directory"
    );
    // The watchdog pings, timestamped, for the whole run.
    let pings: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let listening = Arc::new(AtomicBool::new(true));
    let listener = {
        let (pings, listening) = (pings.clone(), listening.clone());
        std::thread::spawn(move || {
            sock.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut buf = [0u8; 4096];
            while listening.load(Ordering::Relaxed) {
                if let Ok(n) = sock.recv(&mut buf) {
                    if String::from_utf8_lossy(&buf[..n])
                        .lines()
                        .any(|l| l == "WATCHDOG=1")
                    {
                        pings.lock().unwrap().push(Instant::now());
                    }
                }
            }
        })
    };

    let stop = Arc::new(AtomicBool::new(false));
    let answers: Answers = Arc::default();
    let clients = racing_clients(&g.addr(), 4, &stop, &answers);
    // A few AAs first, then the filler: on a fast machine a fixed pause
    // let the journal itself take most of the 64 MiB, so removing the
    // filler freed too little for the reserve to come back.
    assert!(
        poll(Duration::from_secs(30), || {
            answers
                .lock()
                .unwrap()
                .values()
                .filter(|(_, c, _)| c == "AA")
                .count()
                >= 8
        }),
        "no AA before the disk filled; log:\n{}",
        g.log_tail()
    );
    // Another process fills the filesystem while the clients send: a
    // runaway writer appending 1 MiB at a time, as fast as a small sleep
    // lets it (~100 MB/s here), until ENOSPC stops it. (A writer faster
    // than the journal's check-then-write window is the limit
    // docs/durability.md names.)
    let filler = fs.path().join("filler");
    let status = std::process::Command::new("sh")
        .arg("-c")
        // 32 MiB at once, so removing the filler surely frees room for
        // the reserve again, then 1 MiB steps until ENOSPC.
        .arg("head -c 33554432 /dev/zero >> \"$0\" && while head -c 1048576 /dev/zero >> \"$0\"; do sleep 0.005; done")
        .arg(&filler)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run sh (coreutils head)");
    assert!(
        status.success(),
        "the filler loop ends at ENOSPC (its first 32 MiB must fit)"
    );
    assert!(
        free_bytes(fs.path()) < 1024 * 1024,
        "the filler left the filesystem with room"
    );
    let full_from = Instant::now();
    // Full for 4 s: the daemon keeps answering (status over the admin
    // socket) and keeps feeding the watchdog.
    while full_from.elapsed() < Duration::from_secs(4) {
        let s = g.status_json();
        assert!(s["listeners"].is_array(), "status while full: {s}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let full_until = Instant::now();
    std::fs::remove_file(&filler).unwrap();
    // Service resumes by itself: an AA answered after the filler went.
    let resumed = poll(Duration::from_secs(30), || {
        answers
            .lock()
            .unwrap()
            .values()
            .any(|(_, code, at)| code == "AA" && *at > full_until)
    });
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    listening.store(false, Ordering::Relaxed);
    listener.join().unwrap();
    assert!(
        resumed,
        "no AA after space returned; log:\n{}",
        g.log_tail()
    );

    let answers = answers.lock().unwrap();
    let mut codes: HashMap<&str, usize> = HashMap::new();
    for (id, (_, code, _)) in answers.iter() {
        assert!(
            code == "AA" || code == "AE",
            "{id}: only AA or AE (ERR 207) may answer a full disk, got {code}"
        );
        *codes.entry(code.as_str()).or_default() += 1;
    }
    let refused_while_full = answers
        .values()
        .filter(|(_, code, at)| code == "AE" && *at > full_from && *at < full_until)
        .count();
    println!("answers: {codes:?}; AE while full: {refused_while_full}");
    assert!(
        refused_while_full > 0,
        "no AE while the disk was full: {codes:?}"
    );
    let pinged_while_full = pings
        .lock()
        .unwrap()
        .iter()
        .filter(|t| **t > full_from && **t < full_until)
        .count();
    assert!(
        pinged_while_full >= 4,
        "the watchdog was fed {pinged_while_full} times in 4 s of full disk; log:\n{}",
        g.log_tail()
    );

    // The reserve was used to finish a commit, then re-created.
    let log = g.log_text();
    assert!(
        log.contains("released the") && log.contains(") allocated again"),
        "the space reserve was never released and re-allocated; journal log:\n{}",
        log.lines()
            .filter(|l| l.contains("journal"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // Nothing acknowledged is lost: after a restart, every AA'd message is
    // delivered, byte for byte.
    assert!(g.stop().success(), "clean stop; log:\n{}", g.log_tail());
    g.spawn();
    let acked: HashSet<&String> = answers
        .iter()
        .filter(|(_, (_, code, _))| code == "AA")
        .map(|(id, _)| id)
        .collect();
    let delivered = || -> HashMap<String, Vec<u8>> {
        test_support::paths::files_with_extension(out.path(), "hl7")
            .into_iter()
            .filter_map(|f| std::fs::read(f).ok())
            .map(|b| (control_id(&b), b))
            .collect()
    };
    let all_there = poll(Duration::from_secs(60), || {
        let d = delivered();
        acked.iter().all(|id| d.contains_key(*id))
    });
    let d = delivered();
    let lost: Vec<_> = acked.iter().filter(|id| !d.contains_key(**id)).collect();
    assert!(
        all_there,
        "{} acknowledged message(s) lost, e.g. {:?}; log:\n{}",
        lost.len(),
        lost.iter().take(5).collect::<Vec<_>>(),
        g.log_tail()
    );
    for (id, bytes) in &d {
        let (sent, _, _) = answers
            .get(id)
            .unwrap_or_else(|| panic!("delivered {id}, which no client sent"));
        assert!(sent == bytes, "{id} delivered with other bytes");
    }
}
