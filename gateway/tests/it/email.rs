//! Alert e-mail to a real SMTP server (Python's `aiosmtpd`,
//! `tests/peers/smtp_sink.py`) on loopback, over STARTTLS and implicit
//! TLS with a test CA, with AUTH: one mail per firing, reminders, one
//! resolved mail, none again after a restart, no PHI from the messages;
//! office hours route to the clinic or the MSP, critical alerts to both; a
//! refused login is reported; config errors name the field.

use std::path::PathBuf;
use std::time::Duration;

use crate::support::http_peer::{HttpPeer, Mode};
use crate::support::peers::{start_peer, KillOnDrop};
use crate::support::pki::{Pki, ServerKey};
use crate::support::{ack_code, adt, check_config, free_port, require_tool, send_one};
use crate::support::{Gateway, Options};

/// PHI in the sample message `adt(_, "MRN4711")`: none may reach a mail.
const PHI: [&str; 4] = ["MRN4711", "PATIENT", "TEST^", "19800101"];

/// The SMTP server and the mails it took (one JSON object each).
struct Sink {
    _peer: KillOnDrop,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Sink {
    /// `mode` "starttls" or "tls"; AUTH as gateway / s3cret.
    fn start(mode: &str, pki: &Pki) -> Option<Sink> {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("mails.jsonl");
        let port = free_port().to_string();
        let args: Vec<std::ffi::OsString> = vec![
            mode.into(),
            port.into(),
            pki.file("server.pem").into(),
            pki.file("server.key").into(),
            "gateway".into(),
            "s3cret".into(),
            log.clone().into(),
        ];
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let (peer, port) = start_peer("smtp_sink.py", &["aiosmtpd"], &args)?;
        Some(Sink {
            _peer: peer,
            port,
            log,
            _dir: dir,
        })
    }

    fn mails(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Mails whose subject starts with `prefix` and names `what`.
    fn with(&self, prefix: &str, what: &str) -> Vec<serde_json::Value> {
        self.mails()
            .into_iter()
            .filter(|m| {
                let s = m["subject"].as_str().unwrap_or("");
                s.starts_with(prefix) && s.contains(what)
            })
            .collect()
    }
}

fn rcpts(m: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = m["rcpt_tos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// `[alerts]` with e-mail through `sink`, `security`, `password`, and
/// `hours` as the `[alerts.office_hours]` table's body.
fn alerts_config(
    sink: &Sink,
    pki: &Pki,
    security: &str,
    password: &str,
    extra: &str,
    hours: &str,
) -> String {
    let pw = pki.dir().join(format!("smtp-{password}.pw"));
    std::fs::write(&pw, password).unwrap();
    // The gateway refuses a password file others can read.
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    format!(
        "[fleet]\nurl = \"http://127.0.0.1:9/\"\nbox_id = \"clinic-7\"\n\
         [alerts]\nevaluate_every = \"200ms\"\ndestination_down_max = \"0s\"\nreminder = \"3s\"\nsite = \"main-street\"\n{extra}\
         [alerts.email]\nserver = \"127.0.0.1:{}\"\nsecurity = \"{security}\"\nfrom = \"gateway@clinic.example\"\n\
         clinic = [\"manager@clinic.example\"]\nmsp = [\"oncall@msp.example\"]\n\
         auth = {{ type = \"basic\", username = \"gateway\", password_file = {:?} }}\n\
         tls = {{ ca_file = {:?} }}\n\
         [alerts.office_hours]\ntime_zone = \"America/New_York\"\n{hours}",
        sink.port,
        pw.display().to_string(),
        pki.path_str("ca.pem"),
    )
}

fn routing(dest: &HttpPeer) -> String {
    format!(
        "[[destination]]\nname = \"cloud\"\nkind = \"http\"\nurl = \"{}\"\ncircuit_failures = 1\nprobe_interval = \"200ms\"\nbackoff_initial = \"50ms\"\nbackoff_max = \"200ms\"\n\n[[route]]\nname = \"all\"\nfrom = [\"ehr\"]\nto = [\"cloud\"]\n",
        dest.url("/hl7")
    )
}

/// Open every hour of every day: everything goes to the clinic.
const ALWAYS_OPEN: &str = "monday = \"00:00-24:00\"\ntuesday = \"00:00-24:00\"\nwednesday = \"00:00-24:00\"\nthursday = \"00:00-24:00\"\nfriday = \"00:00-24:00\"\nsaturday = \"00:00-24:00\"\nsunday = \"00:00-24:00\"\n";

fn no_phi(sink: &Sink) {
    for m in sink.mails() {
        let raw = m["raw"].as_str().unwrap();
        let body = m["body"].as_str().unwrap();
        for phi in PHI {
            assert!(
                !raw.contains(phi) && !body.contains(phi),
                "{phi} reached a mail: {body}"
            );
        }
    }
}

/// A test CA, the SMTP server in `mode`, a destination that refuses
/// connections (so `destination_down/cloud` fires), and the gateway with
/// [`alerts_config`], after one message accepted.
struct Setup {
    sink: Sink,
    dest: HttpPeer,
    g: Gateway,
    /// Keep it bound: the CA and password files are read again on a restart.
    pki: Pki,
}

fn setup(mode: &str, password: &str, extra: &str, hours: &str) -> Option<Setup> {
    if !require_tool("openssl", "openssl") {
        return None;
    }
    let pki = Pki::new(ServerKey::Ec);
    let sink = Sink::start(mode, &pki)?;
    let dest = HttpPeer::start();
    dest.set_mode(Mode::Refuse);
    let g = Gateway::start_with(Options {
        top_extra: alerts_config(&sink, &pki, mode, password, extra, hours),
        routing: Some(routing(&dest)),
        ..Default::default()
    });
    assert_eq!(
        ack_code(&send_one(&g.addr(), &adt("MAIL-1", "MRN4711")).unwrap()),
        "AA"
    );
    Some(Setup { sink, dest, g, pki })
}

#[test]
fn alert_mails_over_starttls_fire_once_remind_resolve_and_survive_a_restart() {
    let Some(Setup {
        sink,
        dest,
        mut g,
        pki: _pki,
    }) = setup("starttls", "s3cret", "disk_warn_percent = 1\n", ALWAYS_OPEN)
    else {
        return;
    };
    let within = Duration::from_secs(30);
    g.wait_for("the alert mail", within, || {
        !sink.with("URGENT: ", "cloud cannot be reached").is_empty()
    });
    let fired = &sink.with("URGENT: ", "cloud cannot be reached")[0];
    assert_eq!(fired["mail_from"], "gateway@clinic.example", "{fired}");
    // Inside office hours and not one of the always-both rules: the clinic.
    assert_eq!(rcpts(fired), vec!["manager@clinic.example"], "{fired}");
    assert_eq!(fired["tls"], true, "{fired}");
    assert_eq!(fired["authenticated"], true, "{fired}");
    assert_eq!(fired["auto_submitted"], "auto-generated", "{fired}");
    let subject = fired["subject"].as_str().unwrap();
    assert!(subject.contains("clinic-7 at main-street"), "{subject}");
    let body = fired["body"].as_str().unwrap();
    for part in [
        "What is wrong: cloud cannot be reached",
        "What is affected: destination cloud",
        "What to do: Messages for cloud are kept safely",
        "reminded every 3 s",
        "no patient information",
    ] {
        assert!(body.contains(part), "{part:?} missing from: {body}");
    }

    // Still down: a reminder after `reminder`, no second "fired".
    g.wait_for("a reminder mail", within, || {
        !sink.with("Still not fixed: ", "cloud").is_empty()
    });

    // A restart does not fire an alert that lasts through it again (the
    // board is kept). The disk alert holds from the first evaluation; a
    // destination is not known to be down again until its first failure.
    g.wait_for("the disk alert mail", within, || {
        !sink.with("URGENT: ", "data disk").is_empty()
    });
    g.stop();
    let before = sink.with("Still not fixed: ", "data disk").len();
    g.spawn();
    g.wait_for("a disk reminder after the restart", within, || {
        sink.with("Still not fixed: ", "data disk").len() > before
    });
    assert_eq!(
        sink.with("URGENT: ", "data disk").len(),
        1,
        "{:#?}",
        sink.mails()
    );
    assert!(sink.with("Resolved: ", "data disk").is_empty());

    // Cleared: one resolved mail.
    dest.set_mode(Mode::Up);
    g.wait_for("the resolved mail", within, || {
        !sink.with("Resolved: ", "cloud").is_empty()
    });
    let done = &sink.with("Resolved: ", "cloud")[0];
    assert!(
        done["body"].as_str().unwrap().contains("This is fixed now"),
        "{done}"
    );
    // The server has the mail before the gateway reads its reply and logs.
    g.wait_for("the resolved mail's log line", within, || {
        g.log_text()
            .contains("alert e-mail (resolved) for destination_down/cloud sent")
    });
    let log = g.log_text();
    // Quiet now: nothing more about it (a few evaluations later).
    let count = sink.with("", "cloud").len();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(sink.with("", "cloud").len(), count, "{:#?}", sink.mails());
    assert_eq!(sink.with("Resolved: ", "cloud").len(), 1);
    no_phi(&sink);
    for phi in PHI {
        assert!(!log.contains(phi), "{phi} in the log");
    }
}

#[test]
fn outside_office_hours_alerts_go_to_the_msp_and_critical_ones_to_both_over_implicit_tls() {
    // No opening hours at all (every hour is outside), and the disk alert
    // on from 1% (critical: both sides, whatever the hour).
    let Some(Setup {
        sink, g, pki: _pki, ..
    }) = setup(
        "tls",
        "s3cret",
        "disk_warn_percent = 1\n",
        "holidays = [\"2026-12-25\"]\n",
    )
    else {
        return;
    };
    let within = Duration::from_secs(30);
    g.wait_for("both alert mails", within, || {
        !sink.with("URGENT: ", "cloud cannot be reached").is_empty()
            && !sink.with("URGENT: ", "data disk").is_empty()
    });
    let down = &sink.with("URGENT: ", "cloud cannot be reached")[0];
    assert_eq!(rcpts(down), vec!["oncall@msp.example"], "{down}");
    assert!(down["body"]
        .as_str()
        .unwrap()
        .contains("outside office hours"));
    let disk = &sink.with("URGENT: ", "data disk")[0];
    assert_eq!(
        rcpts(disk),
        vec!["manager@clinic.example", "oncall@msp.example"],
        "{disk}"
    );
    assert_eq!(disk["authenticated"], true, "{disk}");
    no_phi(&sink);
}

#[test]
fn a_refused_smtp_login_is_reported_and_nothing_is_sent() {
    let Some(Setup {
        sink, g, pki: _pki, ..
    }) = setup(
        "starttls",
        "wrong-password",
        "disk_warn_percent = 100\n",
        ALWAYS_OPEN,
    )
    else {
        return;
    };
    g.wait_for(
        "the refused login in the log",
        Duration::from_secs(30),
        || g.log_text().contains("refused the login"),
    );
    let log = g.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("refused the login"))
        .unwrap();
    assert!(line.contains("destination_down/cloud"), "{line}");
    assert!(line.contains("535"), "{line}");
    assert!(line.contains("check alerts.email auth"), "{line}");
    // A refused login is not retried (it would not get better).
    assert!(line.contains("after 1 attempt(s)"), "{line}");
    assert!(
        !log.contains("wrong-password"),
        "the password is in the log"
    );
    assert!(sink.mails().is_empty(), "{:#?}", sink.mails());
}

#[test]
fn email_and_office_hours_config_errors_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str); 7] = [
        (
            "[alerts.office_hours]\ntime_zone = \"Mars/Olympus\"\n",
            "alerts.office_hours.time_zone: 'Mars/Olympus' is not a time zone",
        ),
        (
            "[alerts.office_hours]\ntime_zone = \"UTC\"\nmonday = \"17:00-08:00\"\n",
            "alerts.office_hours.monday: '17:00-08:00' ends before it starts",
        ),
        (
            "[alerts.office_hours]\ntime_zone = \"UTC\"\ntuesday = \"08:00-25:00\"\n",
            "alerts.office_hours.tuesday: '25:00' is not a time of day",
        ),
        (
            "[alerts.office_hours]\ntime_zone = \"UTC\"\nholidays = [\"2026-12-24/2026-12-26\", \"2026-12-25\"]\n",
            "alerts.office_hours.holidays[1]: '2026-12-25' overlaps holidays[0]",
        ),
        (
            "[alerts.email]\nserver = \"smtp.example.org\"\nfrom = \"gw@clinic.example\"\nclinic = [\"Practice Manager <pm@clinic.example>\"]\n",
            "alerts.email.clinic[0]: 'Practice Manager <pm@clinic.example>' is not an e-mail address",
        ),
        (
            "[alerts.email]\nserver = \"smtp.example.org\"\nsecurity = \"none\"\nfrom = \"gw@clinic.example\"\nmsp = [\"a@b.example\"]\n",
            "alerts.email.security is \"starttls\" (port 587) or \"tls\" (port 465)",
        ),
        (
            "[alerts.email]\nserver = \"smtp.example.org\"\nfrom = \"gw@clinic.example\"\nmsp = [\"a@b.example\"]\nauth = { type = \"bearer\", token = \"x\" }\n",
            "alerts.email auth: SMTP AUTH takes type = \"basic\"",
        ),
    ];
    for (i, (table, want)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad-{i}.toml"));
        let out = dir.path().join("out");
        std::fs::write(
            &path,
            format!(
                "data_dir = {:?}\n{table}\n[[listener]]\nname = \"ehr\"\nbind = \"127.0.0.1:0\"\n\n[[destination]]\nname = \"outbox\"\nkind = \"folder\"\npath = {:?}\n\n[[route]]\nname = \"all\"\nfrom = [\"ehr\"]\nto = [\"outbox\"]\n",
                dir.path().join("var").display().to_string(),
                out.display().to_string(),
            ),
        )
        .unwrap();
        let o = check_config(&path);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "case {i} was accepted");
        assert!(err.contains(want), "case {i}: want {want:?} in:\n{err}");
        assert!(
            err.contains(&format!("bad-{i}.toml:")),
            "case {i} names no line:\n{err}"
        );
    }
}
