//! `gateway journal migrate` (docs/cli.md): refused while the daemon runs,
//! then format 2 -> 1 -> 2 with the daemon stopped; the journal verifies
//! clean and the large message reads back whole afterwards. The formats themselves are tested in the journal
//! crate (`gateway/journal/tests/it/format.rs`).

use crate::support::{ack_code, adt, send_one, Gateway};

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn migrate_is_refused_while_running_and_converts_both_ways_when_stopped() {
    let mut g = Gateway::start();
    let mut big = adt("J1", "M");
    big.extend(format!("OBX|1|TX|X^Y||{}\r", "Z".repeat(100_000)).bytes());
    assert_eq!(ack_code(&send_one(&g.addr(), &big).unwrap()), "AA");
    let running = g.cli(&["journal", "migrate", "--to", "1"]);
    assert_eq!(running.status.code(), Some(2), "{}", text(&running));
    assert!(
        text(&running).contains("stop the daemon"),
        "{}",
        text(&running)
    );

    assert!(g.stop().success());
    let back = g.cli(&["journal", "migrate", "--to", "1"]);
    assert!(back.status.success(), "{}", text(&back));
    assert!(text(&back).contains("format 2 -> 1"), "{}", text(&back));
    let json = g.cli(&["journal", "migrate", "--json"]);
    assert!(json.status.success(), "{}", text(&json));
    let r: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        (r["from_format"].as_u64(), r["to_format"].as_u64()),
        (Some(1), Some(2)),
        "{r}"
    );
    assert!(r["values"].as_u64() >= Some(1), "the 100 KB message: {r}");
    let bad = g.cli(&["journal", "migrate", "--to", "3"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));

    let verify = g.cli(&["journal", "verify"]);
    assert!(verify.status.success(), "{}", text(&verify));

    g.spawn();
    assert_eq!(
        ack_code(&send_one(&g.addr(), &adt("J2", "M")).unwrap()),
        "AA"
    );
    // The migrated (chunked again) message reads back whole.
    let show = g.cli(&["messages", "show", "1", "--raw"]);
    assert!(show.status.success(), "{}", text(&show));
    let raw = String::from_utf8_lossy(&show.stdout);
    assert!(
        raw.contains("J1") && raw.contains(&"Z".repeat(100_000)),
        "{}",
        text(&show).len()
    );
    g.wait_delivered(2);
}
