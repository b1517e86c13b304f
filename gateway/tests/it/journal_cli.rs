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

/// The image's version pair with a format change (image/README.md,
/// "Journal format and rollback"): a gateway limited to format 1
/// (`GATEWAY_JOURNAL_MAX_FORMAT=1`, as a release before format 2) makes a
/// format-1 journal; the newer gateway runs on it unconverted; the
/// after-commit step's `migrate --at-next-start` works while it runs, and
/// the restart converts it. The older gateway then refuses the journal at
/// start, saying how to convert it back; a bad setting is refused too.
#[test]
fn a_migration_requested_while_running_is_done_at_the_next_start() {
    let mut g = Gateway::configure(Default::default());
    let v1 = [("GATEWAY_JOURNAL_MAX_FORMAT", std::ffi::OsStr::new("1"))];
    g.spawn_with_env(&v1);
    g.wait_ready();
    let mut big = adt("K1", "M");
    big.extend(format!("OBX|1|TX|X^Y||{}\r", "Q".repeat(60_000)).bytes());
    assert_eq!(ack_code(&send_one(&g.addr(), &big).unwrap()), "AA");
    assert_eq!(g.status_json()["journal"]["format"], 1);
    assert!(g.stop().success());

    // v2 on trial: the journal stays format 1.
    g.spawn();
    assert_eq!(g.status_json()["journal"]["format"], 1);
    let asked = g.cli(&["journal", "migrate", "--at-next-start"]);
    assert!(asked.status.success(), "{}", text(&asked));
    assert!(text(&asked).contains("requested"), "{}", text(&asked));
    assert_eq!(
        g.status_json()["journal"]["format"],
        1,
        "not converted while running"
    );
    assert!(g.stop().success());
    g.spawn();
    assert_eq!(g.status_json()["journal"]["format"], 2);
    assert!(
        g.log_text()
            .contains("journal migrated as requested at this start: format 1 -> 2"),
        "{}",
        g.log_tail()
    );
    assert!(!g.data_dir().join("journal").join("migrate-to").exists());
    let show = g.cli(&["messages", "show", "1", "--raw"]);
    assert!(
        String::from_utf8_lossy(&show.stdout).contains(&"Q".repeat(60_000)),
        "{}",
        text(&show).len()
    );
    assert!(g.stop().success());

    // The format-1 gateway will not run on format 2, and says what to do.
    let refused = |g: &mut Gateway, value: &str| {
        g.spawn_with_env(&[("GATEWAY_JOURNAL_MAX_FORMAT", std::ffi::OsStr::new(value))]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while g.child.as_mut().unwrap().try_wait().unwrap().is_none() {
            assert!(std::time::Instant::now() < deadline, "{}", g.log_tail());
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        g.child = None;
        g.log_tail()
    };
    let said = refused(&mut g, "1");
    assert!(
        said.contains("journal format 2 is newer than this gateway reads (up to 1)")
            && said.contains("migrate --to 1"),
        "{said}"
    );
    let said = refused(&mut g, "two");
    assert!(
        said.contains("GATEWAY_JOURNAL_MAX_FORMAT") && said.contains("\"two\""),
        "{said}"
    );
    g.spawn();
    g.wait_delivered(1);
}
