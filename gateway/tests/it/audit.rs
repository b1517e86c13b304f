//! `gateway audit ...` against the real daemon: the chain verifies through
//! the admin socket and offline, and an edit made on disk while the daemon
//! was stopped is named by `gateway audit verify` (exit 1); a head seen
//! elsewhere catches a cut tail.

use std::time::Duration;

use journal::{Journal, JournalConfig};

use crate::support::{ack_code, adt, send_one, Gateway};

fn verify(g: &Gateway, extra: &[&str]) -> (i32, serde_json::Value) {
    let mut args = vec!["audit", "verify", "--json"];
    args.extend_from_slice(extra);
    let out = g.cli(&args);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "no JSON from audit verify: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

#[test]
fn verify_names_an_edit_made_on_disk_and_a_cut_tail() {
    let mut g = Gateway::start();
    for i in 0..5 {
        let ack = send_one(&g.addr(), &adt(&format!("AV-{i}"), &format!("MRN{i}"))).unwrap();
        assert_eq!(ack_code(&ack), "AA");
    }
    g.wait_delivered(5);
    std::thread::sleep(Duration::from_millis(200));
    let (code, v) = verify(&g, &[]);
    assert_eq!(code, 0, "{v}");
    let head = v["head"].as_str().unwrap().to_string();
    let seq: u64 = head.split(':').next().unwrap().parse().unwrap();
    assert!(seq >= 6, "{v}");
    assert!(g.stop().success());

    // Offline (no daemon): the same answer, from the journal itself.
    let (code, v) = verify(&g, &["--head", &head]);
    assert_eq!(code, 0, "{v}");

    // Someone with the disk edits event 3 (valid checksum, own link kept).
    {
        let j = Journal::open(JournalConfig::new(g.data_dir().join("journal"))).unwrap();
        let e = j.audit_events(Some(2), 1).unwrap().remove(0);
        let prev = journal::ChainHead::parse(&format!("2:{}", e.prev.unwrap())).unwrap();
        let forged = Journal::debug_encode_audit(3, e.at_ms, &e.kind, "edited", &prev.hash);
        rt().block_on(j.debug_put_audit_record(3, Some(forged)))
            .unwrap();
        rt().block_on(j.close()).unwrap();
    }
    g.spawn();
    let (code, v) = verify(&g, &[]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["problem"]["seq"], 3, "{v}");
    assert_eq!(v["problem"]["kind"], "edited", "{v}");
    let human = g.cli(&["audit", "verify"]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("TAMPERED: event 3"), "{text}");
    assert!(g.stop().success());

    // No journal where the config says (and no daemon): exit 2, nothing created.
    let empty = Gateway::configure(crate::support::Options::default());
    let out = empty.cli(&["audit", "verify"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no journal in"));
    assert!(!empty.data_dir().join("journal").exists());

    // A bad --head is a usage error (exit 2) naming the form.
    let out = g.cli(&["audit", "verify", "--head", "12"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SEQ:HASH"));
}

#[test]
fn a_cut_tail_is_caught_against_the_head_seen_before() {
    let mut g = Gateway::start();
    for i in 0..3 {
        send_one(&g.addr(), &adt(&format!("AT-{i}"), "MRN")).unwrap();
    }
    g.wait_delivered(3);
    std::thread::sleep(Duration::from_millis(200));
    assert!(g.stop().success());
    let (_, v) = verify(&g, &[]);
    let head = v["head"].as_str().unwrap().to_string();
    let seq: u64 = head.split(':').next().unwrap().parse().unwrap();
    // Cut the newest events: then the chain alone still looks whole.
    {
        let j = Journal::open(JournalConfig::new(g.data_dir().join("journal"))).unwrap();
        let newest = j.audit_head().seq;
        for s in (seq - 1)..=newest {
            rt().block_on(j.debug_put_audit_record(s, None)).unwrap();
        }
        rt().block_on(j.close()).unwrap();
    }
    // (Each offline open adds a journal_open event, at the cut seqs.)
    let (code, v) = verify(&g, &["--head", &head]);
    assert_eq!(code, 1, "{v}");
    assert!(v["problem"]["seq"].as_u64().unwrap() >= seq - 1, "{v}");
}

fn rt() -> tokio::runtime::Runtime {
    crate::support::rt()
}

/// Run `gateway ARGS --config CFG` as the unprivileged `nobody` (65534, no
/// supplementary groups) through util-linux's setpriv.
fn as_nobody(g: &Gateway, args: &[&str]) -> std::process::Output {
    std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(crate::support::BIN)
        .args(args)
        .arg("--config")
        .arg(&g.config)
        .output()
        .unwrap()
}

/// Let `nobody` reach the config and the socket (the test's own temp dir).
fn open_up(g: &Gateway) {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path, m| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
    };
    mode(g.config.parent().unwrap(), 0o755);
    mode(&g.config, 0o644);
    mode(&g.data_dir(), 0o755);
}

#[test]
fn admin_requests_are_checked_against_the_kernel_peer_and_audited() {
    if !crate::support::require_root("running a client as a second uid")
        || !crate::support::require_tool("setpriv", "util-linux")
    {
        return;
    }
    let mut g = Gateway::start();
    open_up(&g);
    let out = as_nobody(&g, &["status"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("uid 65534")
            && err.contains("gateway-admin")
            && err.contains("[admin] allow_users"),
        "{err}"
    );
    // Root is let in.
    assert!(g.cli(&["status"]).status.success());
    // A dlq replay names who the kernel says asked, not what the client claims.
    let _ = g.cli(&["dlq", "replay", "--all"]);
    assert!(g.stop().success());

    // Listed in [admin] allow_users: let in (the table after data_dir,
    // the only top-level key).
    let text = std::fs::read_to_string(&g.config).unwrap();
    let (first, rest) = text.split_once('\n').unwrap();
    std::fs::write(
        &g.config,
        format!("{first}\n[admin]\nallow_users = [\"nobody\"]\n{rest}"),
    )
    .unwrap();
    g.spawn();
    open_up(&g);
    let out = as_nobody(&g, &["status"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(g.stop().success());

    let j = Journal::open(JournalConfig::new(g.data_dir().join("journal"))).unwrap();
    let events = j.audit_events(None, 100_000).unwrap();
    let has = |kind: &str, needle: &str| {
        events
            .iter()
            .any(|e| e.kind == kind && e.detail.contains(needle))
    };
    assert!(
        has("admin_refused", "cmd=status by=uid 65534 (nobody)"),
        "{events:?}"
    );
    assert!(
        has("admin_request", "cmd=status by=uid 0 (root) pid "),
        "{events:?}"
    );
    assert!(
        has(
            "admin_request",
            "cmd=dlq_replay dead_letter=* destination=* by=uid 0 (root)"
        ),
        "{events:?}"
    );
    assert!(
        has("admin_request", "cmd=status by=uid 65534 (nobody)"),
        "{events:?}"
    );
    assert!(rt().block_on(j.close()).is_ok());
}

/// PID-3 (first id), PID-5 (family, given) and PID-7 of an HL7 message:
/// what must never appear in the audit trail.
fn phi_of(msg: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(msg).replace('\n', "\r");
    let mut out = Vec::new();
    for seg in text.split('\r').filter(|s| s.starts_with("PID|")) {
        let f: Vec<&str> = seg.split('|').collect();
        let comp = |i: usize, c: usize| {
            f.get(i)
                .and_then(|x| x.split('~').next())
                .and_then(|x| x.split('^').nth(c))
                .unwrap_or("")
                .to_string()
        };
        let dob = comp(7, 0);
        out.extend([
            comp(3, 0),
            comp(5, 0),
            comp(5, 1),
            dob.chars().take(8).collect(),
            dob,
        ]);
    }
    // Short values ("F", "1", "1980") would match unrelated text.
    out.retain(|v| v.len() >= 6);
    out
}

#[test]
fn phi_views_are_audited_and_the_export_carries_no_phi() {
    // A destination that is never up, one attempt: every message is a dead letter.
    let closed = crate::support::free_port();
    let routing = format!(
        "[[destination]]\nname = \"cloud\"\nkind = \"http\"\nurl = \"http://127.0.0.1:{closed}/r\"\nmax_attempts = 1\nbackoff_initial = \"100ms\"\n\n[[route]]\nname = \"all\"\nfrom = [\"ehr\"]\nto = [\"cloud\"]\n"
    );
    let mut g = Gateway::start_with(crate::support::Options {
        routing: Some(routing),
        ..Default::default()
    });
    let mut sent = vec![adt("PHI-1", "MRN-PHI-77")];
    sent.extend(
        crate::support::corpus_files()
            .iter()
            .step_by(12)
            .map(|p| std::fs::read(p).unwrap()),
    );
    for m in &sent {
        send_one(&g.addr(), m).unwrap();
    }
    g.wait_for("a dead letter", Duration::from_secs(30), || {
        g.dest_status("cloud")["dead_letters"].as_u64().unwrap_or(0) >= 1
    });
    let list: serde_json::Value =
        serde_json::from_slice(&g.cli(&["dlq", "list", "--json"]).stdout).unwrap();
    let seq = list[0]["seq"].as_u64().unwrap();
    let message = list[0]["message_id"].as_u64().unwrap();
    let show = g.cli(&["dlq", "show", &seq.to_string(), "--raw"]);
    assert!(
        show.status.success(),
        "{}",
        String::from_utf8_lossy(&show.stderr)
    );
    assert!(
        String::from_utf8_lossy(&show.stdout).contains("PID|"),
        "the operator sees the message"
    );
    std::thread::sleep(Duration::from_millis(300));

    let out = g.cli(&["audit", "export", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events.len() > sent.len(), "{text}");
    for w in events.windows(2) {
        assert_eq!(w[1]["seq"].as_u64(), w[0]["seq"].as_u64().map(|s| s + 1));
        assert_eq!(w[1]["prev"], w[0]["hash"], "every record carries its link");
    }
    let view = events
        .iter()
        .find(|e| e["kind"] == "phi_view")
        .unwrap_or_else(|| panic!("no phi_view event in {text}"));
    let d = view["detail"].as_str().unwrap();
    assert!(
        d.contains(&format!("dead_letter={seq} message={message}"))
            && d.contains("by=uid 0 (root) pid "),
        "{d}"
    );
    // --since filters by time.
    let later = g.cli(&["audit", "export", "--since", "2999-01-01"]);
    assert!(later.status.success() && later.stdout.is_empty());

    // No name, MRN or birth date of any message sent is in the audit
    // text (kind and detail; times and hashes are numbers of their own).
    let phi: Vec<String> = sent.iter().flat_map(|m| phi_of(m)).collect();
    assert!(
        phi.iter().any(|p| p == "MRN-PHI-77") && phi.len() > 10,
        "{phi:?}"
    );
    let audit_text: String = events
        .iter()
        .map(|e| format!("{} {}\n", e["kind"], e["detail"]))
        .collect();
    for p in &phi {
        assert!(
            !audit_text.contains(p.as_str()),
            "audit export carries PHI {p:?}"
        );
    }
    assert!(g.stop().success());
}
