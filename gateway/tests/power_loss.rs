//! Power-loss evidence (contract 1): the daemon's data directory lives on
//! lossyfs (hw-tests), a FUSE filesystem that keeps every write in a volatile
//! cache until fsync/fdatasync and throws the cache away on a simulated power
//! cut. Concurrent senders, small and blob-sized messages; at random moments
//! the daemon is SIGKILLed and the power is cut (every other cut also tears
//! unsynced writes). After each "reboot" every acknowledged message must be in
//! the journal and, at the end, in the folder exactly once.

mod common;

use common::*;
use hw_tests::LossyMount;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CYCLES: usize = 10;
const CLIENTS: usize = 3;

#[test]
fn acknowledged_messages_survive_power_cuts() {
    let seed = std::env::var("POWER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| gateway::ops::clock::unix_ms() | 1);
    println!("POWER_SEED={seed}");
    let mut rng = seed;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let fs =
        LossyMount::mount_temp("gateway-power").expect("mount lossyfs (needs root and /dev/fuse)");
    let sockdir = tempfile::tempdir().unwrap();
    let mut g = Gateway::configure(Options {
        data_dir: Some(fs.path().join("var")),
        // Unix sockets cannot live on lossyfs; keep the admin socket on a normal disk.
        top_extra: format!(
            "admin_socket = {:?}\n",
            sockdir.path().join("admin.sock").display().to_string()
        ),
        ..Default::default()
    });
    let sent: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut big_acked = 0;

    for cycle in 0..CYCLES {
        g.spawn();
        // Every acknowledged message so far must have survived the cut: the journal holds at least that many.
        let before = acked.lock().unwrap().len() as u64;
        let msgs = g.status_json()["journal"]["messages"].as_u64().unwrap();
        assert!(msgs >= before, "cycle {cycle}: journal holds {msgs} messages but {before} were acknowledged (seed {seed})\n{}", g.log_text());

        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut threads = Vec::new();
        for t in 0..CLIENTS {
            let (addr, sent, acked, stop) = (g.addr(), sent.clone(), acked.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                let mut big_ok = 0;
                rt().block_on(async {
                    let Ok(mut c) = gateway::net::mllp_client::Client::connect(
                        &addr,
                        None,
                        Duration::from_secs(10),
                    )
                    .await
                    else {
                        return;
                    };
                    let mut seq = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let id = format!("W{cycle}T{t}S{seq}");
                        let mut msg = adt(&id, &format!("P{t}"));
                        let big = t == 0 && seq % 3 == 0;
                        if big {
                            // ~1.2 MiB: far above sled's blob threshold, so it lands in blobs/.
                            msg.extend(
                                format!(
                                    "OBX|1|ED|PDF^Report||^AP^PDF^Base64^{}\r",
                                    "QUJD".repeat(300_000)
                                )
                                .bytes(),
                            );
                        }
                        sent.lock().unwrap().insert(id.clone(), msg.clone());
                        match c.exchange(&msg).await {
                            Ok(ack) => {
                                assert_eq!(ack_code(&ack), "AA", "{id}");
                                acked.lock().unwrap().insert(id);
                                if big {
                                    big_ok += 1;
                                }
                            }
                            Err(_) => return,
                        }
                        seq += 1;
                    }
                });
                big_ok
            }));
        }
        std::thread::sleep(Duration::from_millis(300 + next() % 1200));
        let mut child = g.child.take().unwrap();
        let report = if cycle % 2 == 0 {
            fs.kill_and_cut(&mut child).unwrap()
        } else {
            let _ = child.kill();
            let _ = child.wait();
            fs.power_cut_partial(next())
        };
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in threads {
            big_acked += t.join().unwrap();
        }
        println!("cycle {cycle}: power cut, {} acknowledged so far; cut dropped {} bytes, lost {} inodes", acked.lock().unwrap().len(), report.bytes_dropped, report.inodes_lost);
    }

    g.spawn();
    wait_drained(&g, Duration::from_secs(180));
    let sent = sent.lock().unwrap();
    let acked = acked.lock().unwrap();
    assert!(
        acked.len() >= CYCLES * 3,
        "too little load to mean anything: {}",
        acked.len()
    );
    assert!(
        big_acked >= 2,
        "too few blob-sized messages acknowledged: {big_acked}"
    );
    assert_acked_delivered_exactly_once(&g, &sent, &acked, seed);
    println!("{} acknowledged ({big_acked} blob-sized) across {CYCLES} power cuts; all delivered exactly once", acked.len());
    g.kill9();
}
