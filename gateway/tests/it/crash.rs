//! Crash test (contract 1): concurrent senders, the daemon killed with
//! SIGKILL at random moments for 20 cycles. After every restart, every message
//! that got an AA is in the journal and reaches the folder exactly once, and
//! nothing in the folder is anything but a complete message a client sent.

use std::time::Duration;

use crate::support::crash::{
    assert_acked_delivered_exactly_once, seed, start_clients, Ledger, Rng,
};
use crate::support::{alone, Gateway, Options};

const CYCLES: usize = 20;
const CLIENTS: usize = 6;

/// Every other client sends a large (chunked: over 6 KiB) message now and then.
fn big(client: usize, seq: usize) -> Option<usize> {
    (client % 2 == 1 && seq % 5 == 0).then_some(100_000)
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_message() {
    let _alone = alone();
    let seed = seed("CRASH_SEED");
    let mut rng = Rng(seed);
    let mut g = Gateway::configure(Options::default());
    let ledger = Ledger::default();

    for cycle in 0..CYCLES {
        g.spawn();
        let clients = start_clients(
            &g.addr(),
            &ledger,
            CLIENTS,
            &format!("C{cycle}"),
            Duration::from_secs(5),
            big,
        );
        let delay = 100 + rng.next() % 700;
        std::thread::sleep(Duration::from_millis(delay));
        g.kill9();
        clients.stop();
        println!(
            "cycle {cycle}: killed after {delay} ms; {} acked so far",
            ledger.acked()
        );
    }

    // Final run: let every outbox drain.
    g.spawn();
    g.wait_drained(Duration::from_secs(120));
    let acked = ledger.acked();
    assert!(
        acked > CYCLES * 5,
        "the load was too light to mean anything: {acked} acked"
    );
    let delivered = assert_acked_delivered_exactly_once(&g, &ledger, seed);
    let s = g.status_json();
    assert_eq!(
        s["destinations"][0]["delivered"].as_u64().unwrap() as usize,
        delivered
    );
    println!(
        "{acked} acked, {delivered} delivered (the difference was journaled but its ACK was cut off by the kill)"
    );
}
