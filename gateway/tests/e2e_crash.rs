//! Crash test (contract 1): concurrent senders, the daemon killed with
//! SIGKILL at random moments for 20 cycles. After every restart, every message
//! that got an AA is in the journal and reaches the folder exactly once, and
//! nothing in the folder is anything but a complete message a client sent.

mod common;

use common::*;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CYCLES: usize = 20;
const CLIENTS: usize = 6;

/// xorshift: a tiny seeded PRNG so a failing run can be replayed with its seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_message() {
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| gateway::ops::clock::unix_ms() | 1);
    println!("CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let mut g = Gateway::configure(Options::default());
    // control id -> exact bytes sent; and the set that got AA.
    let sent: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();

    for cycle in 0..CYCLES {
        g.spawn();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut threads = Vec::new();
        for t in 0..CLIENTS {
            let (addr, sent, acked, stop) = (g.addr(), sent.clone(), acked.clone(), stop.clone());
            // Every other client sends a large (blob-sized) message now and then.
            let big = t % 2 == 1;
            threads.push(std::thread::spawn(move || {
                let rt = rt();
                rt.block_on(async move {
                    let Ok(mut c) = gateway::net::mllp_client::Client::connect(
                        &addr,
                        None,
                        Duration::from_secs(5),
                    )
                    .await
                    else {
                        return;
                    };
                    let mut seq = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let id = format!("C{cycle}T{t}S{seq}");
                        let mut msg = adt(&id, &format!("P{t}"));
                        if big && seq % 5 == 0 {
                            msg.extend(
                                format!(
                                    "OBX|1|ED|PDF^Report||^AP^PDF^Base64^{}\r",
                                    "QUJD".repeat(100_000)
                                )
                                .bytes(),
                            );
                        }
                        sent.lock().unwrap().insert(id.clone(), msg.clone());
                        match c.exchange(&msg).await {
                            Ok(ack) => {
                                let code = ack_code(&ack);
                                assert!(code == "AA", "unexpected {code} for {id}");
                                acked.lock().unwrap().insert(id);
                            }
                            Err(_) => return,
                        }
                        seq += 1;
                    }
                });
            }));
        }
        let delay = 100 + rng.next() % 700;
        std::thread::sleep(Duration::from_millis(delay));
        g.kill9();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        println!(
            "cycle {cycle}: killed after {delay} ms; {} acked so far",
            acked.lock().unwrap().len()
        );
    }

    // Final run: let every outbox drain.
    g.spawn();
    wait_drained(&g, Duration::from_secs(120));
    let sent = sent.lock().unwrap();
    let acked = acked.lock().unwrap();
    assert!(
        acked.len() > CYCLES * 5,
        "the load was too light to mean anything: {} acked",
        acked.len()
    );
    let delivered = assert_acked_delivered_exactly_once(&g, &sent, &acked, seed);
    let s = g.status_json();
    assert_eq!(
        s["destinations"][0]["delivered"].as_u64().unwrap() as usize,
        delivered
    );
    println!(
        "{} acked, {delivered} delivered (the difference was journaled but its ACK was cut off by the kill)",
        acked.len()
    );
}
