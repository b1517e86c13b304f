//! Power-loss evidence (contract 1): the daemon's data directory lives on
//! lossyfs (hw-tests), a FUSE filesystem that keeps every write in a volatile
//! cache until fsync/fdatasync and throws the cache away on a simulated power
//! cut. Concurrent senders, small and blob-sized messages; at random moments
//! the daemon is SIGKILLed and the power is cut (every other cut also tears
//! unsynced writes). After each "reboot" every acknowledged message must be in
//! the journal and, at the end, in the folder exactly once.

use std::time::Duration;

use hw_tests::LossyMount;

use crate::support::crash::{
    assert_acked_delivered_exactly_once, seed, start_clients, Ledger, Rng,
};
use crate::support::{alone, require_root, Gateway, Options};

const CYCLES: usize = 10;
const CLIENTS: usize = 3;

/// Client 0 sends a 300 KB message every third time: far above the 6 KiB
/// chunk size, so it is stored as chunks (journal format 2).
fn big(client: usize, seq: usize) -> Option<usize> {
    (client == 0 && seq % 3 == 0).then_some(300_000)
}

#[test]
fn acknowledged_messages_survive_power_cuts() {
    if !require_root("mounting lossyfs (FUSE)") {
        return;
    }
    let _alone = alone();
    let seed = seed("POWER_SEED");
    let mut rng = Rng(seed);
    let fs = LossyMount::mount_temp("gateway-power").expect("mount lossyfs (needs /dev/fuse)");
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
    let ledger = Ledger::default();
    let mut big_acked = 0;

    for cycle in 0..CYCLES {
        g.spawn();
        // Every acknowledged message so far must have survived the cut: the journal holds at least that many.
        let before = ledger.acked() as u64;
        let msgs = g.status_json()["journal"]["messages"].as_u64().unwrap();
        assert!(msgs >= before, "cycle {cycle}: journal holds {msgs} messages but {before} were acknowledged (seed {seed})\n{}", g.log_text());

        let clients = start_clients(
            &g.addr(),
            &ledger,
            CLIENTS,
            &format!("W{cycle}"),
            Duration::from_secs(10),
            big,
        );
        std::thread::sleep(Duration::from_millis(300 + rng.next() % 1200));
        let mut child = g.child.take().unwrap();
        let report = if cycle % 2 == 0 {
            fs.kill_and_cut(&mut child).unwrap()
        } else {
            let _ = child.kill();
            let _ = child.wait();
            fs.power_cut_partial(rng.next())
        };
        big_acked += clients.stop();
        println!("cycle {cycle}: power cut, {} acknowledged so far; cut dropped {} bytes, lost {} inodes", ledger.acked(), report.bytes_dropped, report.inodes_lost);
    }

    g.spawn();
    g.wait_drained(Duration::from_secs(180));
    let acked = ledger.acked();
    assert!(
        acked >= CYCLES * 3,
        "too little load to mean anything: {acked}"
    );
    assert!(
        big_acked >= 2,
        "too few blob-sized messages acknowledged: {big_acked}"
    );
    assert_acked_delivered_exactly_once(&g, &ledger, seed);
    println!("{acked} acknowledged ({big_acked} blob-sized) across {CYCLES} power cuts; all delivered exactly once");
    g.kill9();
}
