//! The crash workload (contract 1), shared by the SIGKILL test and the
//! power-cut test: concurrent MLLP clients, small and blob-sized
//! messages, a record of what was sent and what got AA, a seeded PRNG for
//! the kill moments, and the exactly-once check at the end.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use gateway::net::mllp_client::Client;

use super::{ack_code, adt, control_id, rt, Gateway};

/// The seed of a run: `$var` (to replay a failure) or the clock. Printed,
/// so a failing run can be replayed.
pub fn seed(var: &str) -> u64 {
    let seed = std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| gateway::ops::clock::unix_ms() | 1);
    println!("{var}={seed}");
    seed
}

/// xorshift: a tiny seeded PRNG, so a failing run replays with its seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// What the clients sent (control id → the exact bytes) and which of
/// those got an AA, over every cycle of a run.
#[derive(Clone, Default)]
pub struct Ledger {
    sent: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    acked: Arc<Mutex<HashSet<String>>>,
}

impl Ledger {
    pub fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }
}

/// One cycle's clients, each on its own connection, sending until stopped.
pub struct Clients {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<usize>>,
}

/// The load of one cycle against `addr`: `clients` connections, each
/// sending ADT messages with control ids `{prefix}T{client}S{seq}` one
/// after the other until [`Clients::stop`]. `big(client, seq)` is the
/// number of base64 quads of a PDF OBX to add (blob-sized messages), if
/// any. Every answer must be AA; it is recorded in `ledger`.
pub fn start_clients(
    addr: &str,
    ledger: &Ledger,
    clients: usize,
    prefix: &str,
    connect_timeout: Duration,
    big: fn(usize, usize) -> Option<usize>,
) -> Clients {
    let stop = Arc::new(AtomicBool::new(false));
    let threads = (0..clients)
        .map(|t| {
            let (addr, ledger, stop) = (addr.to_string(), ledger.clone(), stop.clone());
            let prefix = prefix.to_string();
            std::thread::spawn(move || {
                rt().block_on(async move {
                    let mut big_acked = 0;
                    let Ok(mut c) = Client::connect(&addr, None, connect_timeout).await else {
                        return big_acked;
                    };
                    let mut seq = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let id = format!("{prefix}T{t}S{seq}");
                        let mut msg = adt(&id, &format!("P{t}"));
                        let quads = big(t, seq);
                        if let Some(n) = quads {
                            msg.extend(
                                format!(
                                    "OBX|1|ED|PDF^Report||^AP^PDF^Base64^{}\r",
                                    "QUJD".repeat(n)
                                )
                                .bytes(),
                            );
                        }
                        ledger.sent.lock().unwrap().insert(id.clone(), msg.clone());
                        match c.exchange(&msg).await {
                            Ok(ack) => {
                                assert_eq!(ack_code(&ack), "AA", "unexpected ACK for {id}");
                                ledger.acked.lock().unwrap().insert(id);
                                big_acked += usize::from(quads.is_some());
                            }
                            Err(_) => return big_acked,
                        }
                        seq += 1;
                    }
                    big_acked
                })
            })
        })
        .collect();
    Clients { stop, threads }
}

impl Clients {
    /// Stops the clients (the daemon was killed) and joins them; returns
    /// how many blob-sized messages got AA.
    pub fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.threads.into_iter().map(|t| t.join().unwrap()).sum()
    }
}

/// The exactly-once check of the crash tests: every file in the folder is a
/// byte-identical copy of a message a client sent, and every acknowledged
/// message is there exactly once. Returns how many messages were delivered.
pub fn assert_acked_delivered_exactly_once(g: &Gateway, ledger: &Ledger, seed: u64) -> usize {
    let sent = ledger.sent.lock().unwrap();
    let acked = ledger.acked.lock().unwrap();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for f in g.delivered_files() {
        let bytes = std::fs::read(&f).unwrap();
        let id = control_id(&bytes);
        let original = sent.get(&id).unwrap_or_else(|| {
            panic!(
                "{} holds a message no client sent (control id '{id}')",
                f.display()
            )
        });
        assert!(
            original == &bytes,
            "{} is not byte-identical to what was sent",
            f.display()
        );
        *seen.entry(id).or_default() += 1;
    }
    for id in acked.iter() {
        match seen.get(id) {
            Some(1) => {}
            Some(n) => panic!("acknowledged message {id} delivered {n} times (seed {seed})"),
            None => panic!(
                "acknowledged message {id} was lost (seed {seed}); log:\n{}",
                g.log_text()
            ),
        }
    }
    seen.len()
}
