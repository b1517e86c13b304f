//! The config's unit tests over whole documents: each table's rules, the
//! line of every error, the checks across tables, and the two steps.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

/// Validates and resolves `text` as `/etc/gw/gateway.toml` (no credentials
/// directory); the first error, as a single-error check used to give.
fn parse(text: &str) -> Result<Config, ConfigError> {
    parse_all(text).map_err(|e| e.first().clone())
}

fn parse_all(text: &str) -> Result<Config, ConfigErrors> {
    resolve(check(text)?, &Host::default())
}

/// The pure step only.
fn check(text: &str) -> Result<Config<Checked>, ConfigErrors> {
    validate(
        text,
        Path::new("/etc/gw/gateway.toml"),
        Path::new("/etc/gw"),
    )
}

const GOOD: &str = r#"
data_dir = "../var"

[[listener]]
name = "ehr"
bind = "127.0.0.1:2575"

[[destination]]
name = "archive"
kind = "folder"
path = "out"

[[route]]
name = "all"
from = ["ehr"]
to = ["archive"]
"#;

#[test]
fn good_config_resolves_relative_paths_against_the_file() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.data_dir, PathBuf::from("/etc/var"));
    match &c.destinations[0].kind {
        DestinationKind::Folder { path } => assert_eq!(path, &PathBuf::from("/etc/gw/out")),
        other => panic!("{other:?}"),
    }
    assert_eq!(c.listeners[0].max_frame_bytes, 16 * 1024 * 1024);
    assert_eq!(c.routes[0].transform, Transform::None);
}

#[test]
fn unknown_listener_in_route_names_line() {
    let bad = GOOD.replace("from = [\"ehr\"]", "from = [\"lab\"]");
    let e = parse(&bad).unwrap_err();
    assert_eq!(e.line, 15, "{e}");
    assert!(e.reason.contains("from names 'lab'"), "{e}");
    assert!(e.to_string().starts_with("/etc/gw/gateway.toml:15:"), "{e}");
}

#[test]
fn bad_bind_and_syntax_and_unknown_key() {
    let e = parse(&GOOD.replace("127.0.0.1:2575", "localhost")).unwrap_err();
    assert_eq!(e.line, 6);
    assert!(e.reason.contains("HOST:PORT"));
    let e = parse(&GOOD.replace("name = \"ehr\"", "name = ehr")).unwrap_err();
    assert_eq!(e.line, 5, "{e}");
    let e =
        parse(&GOOD.replace("name = \"archive\"", "name = \"archive\"\ncolour = 1")).unwrap_err();
    assert!(e.reason.contains("colour"), "{e}");
}

#[test]
fn duplicate_names_and_unsupported_kinds() {
    let dup = format!("{GOOD}\n[[listener]]\nname = \"ehr\"\nbind = \"127.0.0.1:2576\"\n");
    let e = parse(&dup).unwrap_err();
    assert!(e.reason.contains("used twice"), "{e}");
    let e = parse(&GOOD.replace("kind = \"folder\"", "kind = \"ftp\"")).unwrap_err();
    assert!(e.reason.contains("unknown kind"), "{e}");
    let e = parse(&GOOD.replace("path = \"out\"", "")).unwrap_err();
    assert!(e.reason.contains("needs path"), "{e}");
}

const DESTS: &str = r#"
[[destination]]
name = "cloud"
kind = "fhir"
url = "https://fhir.example.com/r4/"
concurrency = 4
backoff_max = "2m"
max_attempts = 10
probe_interval = "5s"

[[destination]]
name = "lab"
kind = "mllp"
url = "mllp://10.1.2.3:6661"
lane = "destination"
on_dead_letter = "continue"

[[destination]]
name = "billing"
kind = "http"
url = "http://127.0.0.1:8080/hl7"
format = "json"
headers = { "X-Api-Key" = "k1" }
"#;

#[test]
fn destination_kinds_and_delivery_policy() {
    let text = GOOD.replace(
        "[[route]]",
        &format!(
            "{DESTS}\n[[route]]\n{}",
            r#"sending_facility = "CLINIC*"
types = ["ADT^*", "ORU^R01"]"#
        ),
    );
    let c = parse(&text).unwrap();
    let cloud = &c.destinations[1];
    match &cloud.kind {
        DestinationKind::Fhir(h) => assert_eq!(h.url, "https://fhir.example.com/r4"),
        other => panic!("{other:?}"),
    }
    assert_eq!(cloud.delivery.concurrency, 4);
    assert_eq!(cloud.delivery.max_backoff, Duration::from_secs(120));
    assert_eq!(cloud.delivery.max_attempts, Some(10));
    assert_eq!(cloud.delivery.lane, LaneMode::Patient);
    assert_eq!(cloud.delivery.on_dead_letter, DeadLetterPolicy::Hold);
    let lab = &c.destinations[2];
    match &lab.kind {
        DestinationKind::Mllp(m) => {
            assert_eq!(m.address, "10.1.2.3:6661");
            assert!(m.tls.is_none());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(lab.delivery.concurrency, 1);
    assert_eq!(lab.delivery.lane, LaneMode::Destination);
    assert_eq!(lab.delivery.on_dead_letter, DeadLetterPolicy::Continue);
    match &c.destinations[3].kind {
        DestinationKind::Http(h) => {
            assert_eq!(h.format, HttpFormat::Json);
            assert_eq!(h.headers, vec![("X-Api-Key".to_string(), "k1".to_string())]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.routes[0].message_types.len(), 2);
    assert_eq!(c.routes[0].sending_facilities.len(), 1);
}

#[test]
fn destination_errors_name_the_line() {
    let text = GOOD.replace("[[route]]", &format!("{DESTS}\n[[route]]"));
    let e = parse(&text.replace("backoff_max = \"2m\"", "backoff_max = \"2 weeks\"")).unwrap_err();
    assert!(
        e.reason.contains("backoff_max") && e.reason.contains("unit"),
        "{e}"
    );
    assert_eq!(e.line, 19, "{e}");
    let e = parse(&text.replace("mllp://10.1.2.3:6661", "tcp://10.1.2.3:6661")).unwrap_err();
    assert!(e.reason.contains("mllp://HOST:PORT"), "{e}");
    let e = parse(&text.replace("mllp://10.1.2.3:6661", "mllps://10.1.2.3:6661")).unwrap_err();
    assert!(e.reason.contains("ca_file"), "{e}");
    let e = parse(&text.replace("lane = \"destination\"", "lane = \"facility\"")).unwrap_err();
    assert!(e.reason.contains("lane \"facility\""), "{e}");
    let e = parse(&text.replace("https://fhir.example.com/r4/", "ftp://x")).unwrap_err();
    assert!(e.reason.contains("not http or https"), "{e}");
    let e = parse(&text.replace("max_attempts = 10", "max_attempts = 0")).unwrap_err();
    assert!(e.reason.contains("max_attempts"), "{e}");
}

#[test]
fn fhir_destinations_need_the_fhir_transform_and_valid_settings() {
    let base = GOOD.replace(
            "[[route]]",
            "[[destination]]\nname = \"cloud\"\nkind = \"fhir\"\nurl = \"https://fhir.example.com/r4\"\ntenant = \"clinic-7\"\nupdate = \"conditional\"\nutc_offset = \"-05:00\"\nidentifier_systems = { CLINIC = \"http://clinic.example/mrn\" }\n\n[[route]]",
        )
        .replace("to = [\"archive\"]", "to = [\"cloud\"]\ntransform = \"fhir\"");
    let c = parse(&base).unwrap();
    match &c.destinations[1].kind {
        DestinationKind::Fhir(h) => {
            let f = h.fhir.as_ref().unwrap();
            assert_eq!(f.tenant, "clinic-7");
            assert!(f.conditional);
            assert_eq!(f.utc_offset.as_deref(), Some("-05:00"));
            assert_eq!(f.identifier_systems.len(), 1);
            assert!(f.provenance, "Provenance is on by default");
        }
        other => panic!("{other:?}"),
    }
    let off = parse(&base.replace("tenant =", "provenance = false\ntenant =")).unwrap();
    match &off.destinations[1].kind {
        DestinationKind::Fhir(h) => assert!(!h.fhir.as_ref().unwrap().provenance),
        other => panic!("{other:?}"),
    }
    let e = parse(&GOOD.replace("[[route]]", "[[destination]]\nname = \"x\"\nkind = \"folder\"\npath = \"/tmp/x\"\nprovenance = true\n\n[[route]]")).unwrap_err();
    assert!(
        e.reason.contains("provenance applies to fhir destinations"),
        "{e}"
    );
    let e = parse(&base.replace("transform = \"fhir\"", "")).unwrap_err();
    assert!(e.reason.contains("add transform = \"fhir\""), "{e}");
    let e = parse(&base.replace("to = [\"cloud\"]", "to = [\"archive\"]")).unwrap_err();
    assert!(e.reason.contains("send them to a fhir destination"), "{e}");
    let e = parse(&base.replace("-05:00", "EST")).unwrap_err();
    assert!(e.reason.contains("utc_offset"), "{e}");
    let merge = parse(&base.replace("\"conditional\"", "\"merge\"")).unwrap();
    match &merge.destinations[1].kind {
        DestinationKind::Fhir(h) => {
            let f = h.fhir.as_ref().unwrap();
            assert!(f.merge && !f.conditional);
        }
        other => panic!("{other:?}"),
    }
    let e = parse(&base.replace("\"conditional\"", "\"patch\"")).unwrap_err();
    assert!(e.reason.contains("update \"patch\""), "{e}");
    let e = parse(&base.replace("http://clinic.example/mrn", "clinic mrn")).unwrap_err();
    assert!(e.reason.contains("must be a URI"), "{e}");
}

#[test]
fn allowlist_and_tls_missing_file() {
    let c = parse(&GOOD.replace(
        "bind = \"127.0.0.1:2575\"",
        "bind = \"127.0.0.1:2575\"\nallow = [\"10.0.0.0/8\"]",
    ))
    .unwrap();
    assert_eq!(c.listeners[0].allow.len(), 1);
    let e = parse(&GOOD.replace(
        "bind = \"127.0.0.1:2575\"",
        "bind = \"127.0.0.1:2575\"\nallow = [\"10.0.0.0/99\"]",
    ))
    .unwrap_err();
    assert_eq!(e.line, 7);
    let e = parse(&GOOD.replace(
        "bind = \"127.0.0.1:2575\"",
        "bind = \"127.0.0.1:2575\"\ntls = { cert = \"nope.pem\", key = \"nope.key\" }",
    ))
    .unwrap_err();
    assert!(e.reason.contains("tls.cert"), "{e}");
}

/// `[health]`, `[alerts]`, `[fleet]`, `[status_page]`.
mod ops_tables {
    use super::*;

    const BASE: &str = "data_dir = \"/var/lib/gw\"\n";

    fn parse(extra: &str) -> Result<Config, ConfigError> {
        super::parse(&format!("{BASE}{extra}"))
    }

    #[test]
    fn defaults_when_the_tables_are_absent() {
        let c = parse("").unwrap();
        assert!(c.health.is_none() && c.fleet.is_none() && c.status_page.is_none());
        assert_eq!(c.alerts.pending_max, 1000);
        assert_eq!(c.alerts.cert_warn_days, vec![90, 60, 30, 7, 1]);
        assert_eq!(c.alerts.disk_warn_percent, 80);
        assert!(c.alerts.webhook.is_none());
        let c = parse("[health]\n").unwrap();
        assert_eq!(c.health.unwrap().bind.to_string(), DEFAULT_HEALTH_BIND);
    }

    #[test]
    fn alert_overrides_and_errors_name_the_line() {
        let c = parse(
            "[alerts]\npending_max = 50\noldest_pending_max = \"2m\"\ndestination_down_max = \"0s\"\ncert_warn_days = [7, 30]\nwebhook_url = \"https://hooks.example.com/x\"\nreminder = \"1h\"\n",
        )
        .unwrap();
        assert_eq!(c.alerts.pending_max, 50);
        assert_eq!(c.alerts.oldest_pending_max, Duration::from_secs(120));
        assert!(c.alerts.destination_down_max.is_zero());
        assert_eq!(c.alerts.cert_warn_days, vec![30, 7]);
        assert_eq!(c.alerts.webhook.unwrap().url, "https://hooks.example.com/x");
        let e = parse("[alerts]\nwebhook_url = \"http://hooks.example.com/x\"\n").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.reason.contains("must be https://"), "{e}");
        let e = parse("[alerts]\nreminder = \"soon\"\n").unwrap_err();
        assert!(e.to_string().contains("alerts.reminder"), "{e}");
        let e = parse("[alerts]\ncert_warn_days = []\n").unwrap_err();
        assert!(e.reason.contains("cert_warn_days"), "{e}");
        let e = parse("[alerts]\npager = true\n").unwrap_err();
        assert!(e.reason.contains("unknown field"), "{e}");
        let c = parse(
            "[alerts]\nalertmanager_url = \"https://am.msp.example.com\"\nsite = \"main-street\"\n",
        )
        .unwrap();
        assert_eq!(
            c.alerts.alertmanager.unwrap().url,
            "https://am.msp.example.com/"
        );
        assert_eq!(c.alerts.site, "main-street");
        let e =
            parse("[[alerts.silence]]\nsource = \"nosuch\"\ntype = \"ORU^R01\"\nmax = \"2h\"\n")
                .unwrap_err();
        assert!(e.to_string().contains("nosuch"), "{e}");
        let e = parse("[[listener]]\nname = \"ehr\"\nbind = \"127.0.0.1:2599\"\n[[alerts.silence]]\nsource = \"ehr\"\ntype = \"ORU R01\"\nmax = \"2h\"\n")
            .unwrap_err();
        assert!(e.reason.contains("type must be a message type"), "{e}");
        let e = parse("[[listener]]\nname = \"ehr\"\nbind = \"127.0.0.1:2599\"\n[[alerts.silence]]\nsource = \"ehr\"\ntype = \"ADT^*\"\nmax = \"30m\"\nseverity = \"loud\"\n").unwrap_err();
        assert!(e.reason.contains("\"warning\" or \"critical\""), "{e}");
        const EHR: &str = "[[listener]]\nname = \"ehr\"\nbind = \"127.0.0.1:2599\"\n[[alerts.silence]]\nsource = \"ehr\"\ntype = \"ORU^R01\"\nmax = \"2h\"\nhours = \"office\"\n";
        let e = parse(EHR).unwrap_err();
        assert_eq!(e.line, 9, "{e}");
        assert!(
            e.reason.contains(
                "alerts.silence 'ehr ORU^R01' hours = \"office\" needs [alerts.office_hours]"
            ),
            "{e}"
        );
        let c = parse(&format!(
            "{EHR}[alerts.office_hours]\ntime_zone = \"UTC\"\nmonday = \"08:00-17:00\"\n"
        ))
        .unwrap();
        assert!(c.alerts.silence[0].office_hours && c.alerts.office_hours.is_some());
        let e = parse(&EHR.replace("\"office\"", "\"night\"")).unwrap_err();
        assert!(
            e.reason.contains("hours is \"always\" or \"office\""),
            "{e}"
        );
        let e = parse("[alerts]\nalertmanager_auth = { type = \"bearer\", token_file = \"t\" }\n")
            .unwrap_err();
        assert!(
            e.reason
                .contains("alerts.alertmanager_auth needs alerts.alertmanager_url"),
            "{e}"
        );
        let e = parse("[alerts]\nalertmanager_url = \"http://am.example.com\"\n").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.reason.contains("must be https://"), "{e}");
    }

    #[test]
    fn fleet_remote_write_defaults_and_errors() {
        const FLEET: &str = "[fleet]\nurl = \"https://msp.example.com/hb\"\n[fleet.remote_write]\n";
        let c = parse(&format!(
            "{FLEET}url = \"https://m.example.com/api/v1/write\"\nauth = {{ type = \"bearer\", token = \"t\" }}\n"
        ))
        .unwrap();
        let w = c.fleet.and_then(|f| f.remote_write).unwrap();
        assert_eq!(
            (w.interval, w.max_age, w.max_samples),
            (Duration::from_secs(30), Duration::from_secs(3600), 200_000)
        );
        assert!(w.auth.is_some());
        for (bad, says, line) in [
            (
                "url = \"http://m.example.com/w\"\n",
                "fleet.remote_write.url",
                5,
            ),
            (
                "url = \"https://m/w\"\ninterval = \"1m\"\nmax_age = \"30s\"\n",
                "max_age must be at least the interval",
                7,
            ),
            (
                "url = \"https://m/w\"\nmax_samples = 10\n",
                "max_samples must be",
                6,
            ),
            (
                "url = \"https://m/w\"\ninterval = \"0s\"\n",
                "above zero",
                6,
            ),
            (
                "url = \"https://m/w\"\ntls = { client_cert = \"box.pem\" }\n",
                "tls.client_cert needs tls.client_key",
                6,
            ),
            (
                "url = \"https://m/w\"\ntls = { client_cert = \"/nonexistent/box.pem\", client_key = \"/nonexistent/box.key\" }\n",
                "tls.client_cert / tls.client_key: /nonexistent/box.pem",
                6,
            ),
        ] {
            let e = parse(&format!("{FLEET}{bad}")).unwrap_err();
            assert!(e.reason.contains(says), "{bad}: {e}");
            assert_eq!(e.line, line, "{bad}: {e}");
        }
    }

    #[test]
    fn fleet_and_status_page() {
        let c = parse("[fleet]\nurl = \"https://msp.example.com/hb\"\nbox_id = \"clinic-7\"\ninterval = \"1m\"\n").unwrap();
        let f = c.fleet.unwrap();
        assert_eq!(
            (f.box_id.as_str(), f.interval),
            ("clinic-7", Duration::from_secs(60))
        );
        let e =
            parse("[fleet]\nurl = \"https://msp.example.com/hb\"\nbox_id = \"a b\"\n").unwrap_err();
        assert!(e.reason.contains("fleet.box_id"), "{e}");
        // A status page without a password or client CA is refused.
        let e = parse("[status_page]\nbind = \"0.0.0.0:8080\"\n").unwrap_err();
        assert!(e.reason.contains("never served unprotected"), "{e}");
        let e =
            parse("[status_page]\nbind = \"0.0.0.0:8080\"\npassword_file = \"/nonexistent/pw\"\n")
                .unwrap_err();
        assert!(e.reason.contains("status_page.password_file"), "{e}");
        let c = parse("[status_page]\nbind = \"0.0.0.0:8080\"\npassword = \"inline\"\n").unwrap();
        let s = c.status_page.unwrap();
        assert_eq!(
            (s.username.as_str(), s.password.unwrap().expose()),
            ("admin", "inline")
        );
        // Ports must not collide.
        let e = parse("[health]\nbind = \"127.0.0.1:8080\"\n[status_page]\nbind = \"127.0.0.1:8080\"\npassword = \"x\"\n")
            .unwrap_err();
        assert!(e.reason.contains("own port"), "{e}");
    }
}

/// Where the checks across tables put their errors.
mod cross_table {
    use super::*;

    #[test]
    fn a_transform_error_points_at_the_route_entry_not_a_namesake() {
        // A listener and a route may share a name; the error belongs to the
        // route's `to` entry (line 16), not the first `name = "feed"` (line 4).
        let text = r#"data_dir = "/var/lib/gw"

[[listener]]
name = "feed"
bind = "127.0.0.1:2575"

[[destination]]
name = "cloud"
kind = "fhir"
url = "https://fhir.example.com/r4"

[[route]]
name = "feed"
from = ["feed"]
to = [
  "cloud",
]
"#;
        let e = parse(text).unwrap_err();
        assert_eq!((e.line, e.column), (16, 3), "{e}");
        assert!(e.reason.contains("add transform = \"fhir\""), "{e}");
        let e = parse(
            &text
                .replace(
                    "kind = \"fhir\"\nurl = \"https://fhir.example.com/r4\"",
                    "kind = \"folder\"\npath = \"out\"",
                )
                .replace(
                    "name = \"feed\"\nfrom",
                    "name = \"feed\"\ntransform = \"fhir\"\nfrom",
                ),
        )
        .unwrap_err();
        assert_eq!(e.line, 17, "{e}");
        assert!(e.reason.contains("send them to a fhir destination"), "{e}");
    }

    #[test]
    fn a_duplicate_bind_names_both_lines() {
        let text = "data_dir = \"/var/lib/gw\"\n\n[[listener]]\nname = \"a\"\nbind = \"127.0.0.1:2575\"\n\n[[listener]]\nname = \"b\"\nbind = \"127.0.0.1:2575\"\n";
        let e = parse(text).unwrap_err();
        assert_eq!((e.line, e.column), (9, 8), "{e}");
        assert!(
            e.reason.contains("listener 'b'") && e.reason.contains("listener 'a'"),
            "{e}"
        );
        assert!(
            e.reason.contains("(line 5)") && e.reason.contains("own port"),
            "{e}"
        );
        // A wildcard takes the port on every address of its family.
        let e = parse(&text.replacen("127.0.0.1:2575", "0.0.0.0:2575", 1)).unwrap_err();
        assert_eq!(e.line, 9, "{e}");
        // [health] without bind takes 127.0.0.1:9090: the error is at the second user.
        let e = parse("data_dir = \"/var/lib/gw\"\n[health]\n\n[[listener]]\nname = \"a\"\nbind = \"127.0.0.1:9090\"\n").unwrap_err();
        assert_eq!(e.line, 6, "{e}");
        assert!(
            e.reason.contains("[health]") && e.reason.contains("line 2"),
            "{e}"
        );
    }

    #[test]
    fn a_duplicate_name_names_the_first() {
        let text = "data_dir = \"/var/lib/gw\"\n[[listener]]\nname = \"ehr\"\nbind = \"127.0.0.1:2575\"\n[[poller]]\nname = \"ehr\"\nkind = \"fhir\"\nurl = \"https://cloud.example.com/fhir/DiagnosticReport\"\n";
        let e = parse(text).unwrap_err();
        assert_eq!(e.line, 6, "{e}");
        assert!(
            e.reason.contains("poller name 'ehr' is used twice")
                && e.reason.contains("listener 'ehr' at line 3"),
            "{e}"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once_in_file_order() {
        let text = r#"data_dir = "/var/lib/gw"

[[listener]]
name = "ehr"
bind = "nowhere"

[[destination]]
name = "lab"
kind = "mllp"
url = "mllp://10.1.2.3:6661"
lane = "facility"
concurrency = 0

[[route]]
name = "all"
from = ["ehr", "fax"]
to = ["lab", "billing"]
"#;
        let errors = parse_all(text).unwrap_err();
        let got: Vec<(usize, &str)> = errors.iter().map(|e| (e.line, e.reason.as_str())).collect();
        assert_eq!(errors.len(), 5, "{errors}");
        let lines: Vec<usize> = got.iter().map(|g| g.0).collect();
        assert_eq!(lines, vec![5, 11, 12, 16, 17], "{errors}");
        assert!(got[0].1.contains("HOST:PORT"), "{errors}");
        assert!(got[3].1.contains("from names 'fax'"), "{errors}");
        assert!(got[4].1.contains("destination 'billing'"), "{errors}");
        // Printed one per line, each with file:line:column.
        let printed = errors.to_string();
        assert_eq!(printed.lines().count(), 5);
        assert!(
            printed
                .lines()
                .all(|l| l.starts_with("/etc/gw/gateway.toml:")),
            "{printed}"
        );
    }
}

/// The pure step reads nothing; `resolve` follows the files and still
/// names the line that pointed at them.
mod two_steps {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const FILES: &str = r#"data_dir = "/var/lib/gw"

[[listener]]
name = "ehr"
bind = "127.0.0.1:2575"
tls = { cert = "nope/server.pem", key = "credential:listener.key" }

[[destination]]
name = "cloud"
kind = "fhir"
url = "https://fhir.example.com/r4"
code_maps = "nope/codemaps"
tls = { ca_file = "nope/ca.pem" }

[destination.auth]
type = "bearer"
token_file = "nope/token"

[[route]]
name = "all"
from = ["ehr"]
to = ["cloud"]
transform = "fhir"

[status_page]
bind = "127.0.0.1:8080"
password_file = "credential:status-password"
"#;

    #[test]
    fn validation_touches_no_file() {
        let c = check(FILES).unwrap();
        let tls = c.listeners[0].tls.as_ref().unwrap();
        assert_eq!(
            tls.cert.value,
            secrets::FileRef::Path("/etc/gw/nope/server.pem".into())
        );
        assert_eq!(
            tls.key.value,
            secrets::FileRef::Credential("listener.key".into())
        );
        assert_eq!(tls.key.pos.line, 6);
    }

    #[test]
    fn resolve_names_the_line_of_every_missing_file() {
        let errors = resolve(check(FILES).unwrap(), &Host::default()).unwrap_err();
        let got: Vec<(usize, &str)> = errors.iter().map(|e| (e.line, e.reason.as_str())).collect();
        assert_eq!(got.len(), 6, "{errors}");
        assert!(
            got[0].0 == 6
                && got[0]
                    .1
                    .contains("tls.cert '/etc/gw/nope/server.pem' does not exist"),
            "{errors}"
        );
        assert!(
            got[1].0 == 6
                && got[1].1.contains(
                    "tls.key: uses 'credential:listener.key' but $CREDENTIALS_DIRECTORY is not set"
                ),
            "{errors}"
        );
        assert!(got[2].0 == 12 && got[2].1.contains("code_maps"), "{errors}");
        assert!(
            got[3].0 == 13 && got[3].1.contains("tls.ca_file"),
            "{errors}"
        );
        assert!(
            got[4].1.contains("auth.token_file") && got[4].1.contains("/etc/gw/nope/token"),
            "{errors}"
        );
        assert!(
            got[5].0 == 27 && got[5].1.contains("status_page.password_file"),
            "{errors}"
        );
    }

    #[test]
    fn credentials_come_from_the_directory_systemd_passes() {
        let creds = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = creds.path().join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o400)).unwrap();
        };
        write("status-password", "hunter2\n");
        write("cert.pem", "not read here: check-config loads the pair");
        let text = "data_dir = \"/var/lib/gw\"\n[status_page]\nbind = \"127.0.0.1:8080\"\npassword_file = \"credential:status-password\"\ntls = { cert = \"credential:cert.pem\", key = \"credential:cert.pem\" }\n";
        let host = Host {
            credentials: Some(creds.path().to_path_buf()),
        };
        let c = resolve(check(text).unwrap(), &host).unwrap();
        let s = c.status_page.unwrap();
        assert_eq!(s.password.unwrap().expose(), "hunter2");
        assert_eq!(s.tls.unwrap().cert, creds.path().join("cert.pem"));
        let e = resolve(check(text).unwrap(), &Host::default()).unwrap_err();
        assert!(
            e.first().reason.contains("LoadCredential=status-password:"),
            "{e}"
        );
    }
}

/// Whatever the text, validation returns (no panic), and every error it
/// reports is placed on a line of the file.
mod any_text {
    use super::*;
    use proptest::prelude::*;

    const LINES: &[&str] = &[
        "data_dir = \"/var/lib/gw\"",
        "data_dir = \"\"",
        "[[listener]]",
        "name = \"ehr\"",
        "name = \"a b\"",
        "bind = \"127.0.0.1:2575\"",
        "bind = \"0.0.0.0:2575\"",
        "max_connections = 0",
        "allow = [\"10.0.0.0/99\"]",
        "tls = { cert = \"credential:\", key = \"k.pem\" }",
        "[[destination]]",
        "kind = \"fhir\"",
        "kind = \"folder\"",
        "path = \"out\"",
        "url = \"https://fhir.example.com/r4\"",
        "lane = \"sideways\"",
        "[destination.auth]",
        "type = \"bearer\"",
        "token = \"credential:t\"",
        "[[route]]",
        "from = [\"ehr\", \"nope\"]",
        "to = [\"ehr\"]",
        "transform = \"fhir\"",
        "[health]",
        "[status_page]",
        "bind = \"127.0.0.1:9090\"",
        "[alerts]",
        "cert_warn_days = []",
        "[storage]",
        "warn_at_percent = 99",
        "= broken",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]
        #[test]
        fn errors_are_placed_on_a_line_of_the_file(picks in proptest::collection::vec(0..LINES.len(), 0..24)) {
            let text: String = picks.iter().map(|&i| format!("{}\n", LINES[i])).collect();
            let lines = text.lines().count().max(1);
            if let Err(errors) = check(&text) {
                for e in errors.iter() {
                    prop_assert!(e.line >= 1 && e.line <= lines + 1, "{e} (of {lines} lines)\n{text}");
                }
            }
        }
    }
}

#[test]
fn pickup_tables_are_sources_with_their_defaults_and_errors_at_their_lines() {
    let with = |extra: &str| {
        format!(
            "{}\n[[pickup]]\nname = \"claims\"\npath = \"claims\"\npattern = [\"*.837\", \"*.x12\"]\nformat = \"x12\"\nusage = \"T\"\nack_dir = \"acks\"\n{extra}",
            GOOD.replace("from = [\"ehr\"]", "from = [\"ehr\", \"claims\"]")
        )
    };
    let c = parse(&with("")).unwrap();
    let p = &c.pickups[0];
    assert_eq!(p.path, PathBuf::from("/etc/gw/claims"));
    assert_eq!(p.ack_dir, Some(PathBuf::from("/etc/gw/acks")));
    assert_eq!(p.patterns.len(), 2);
    assert_eq!(p.format, PickupFormat::X12);
    assert_eq!(p.settle, Duration::from_secs(5));
    assert_eq!(p.after, AfterPickup::Archive);
    assert_eq!(p.usage, Some(x12::Usage::Test));
    for (extra, line, needle) in [
        ("after = \"move\"", 25, "after = \"move\""),
        ("settle = \"soon\"", 25, "settle"),
        ("rescan = \"10ms\"", 25, "rescan must be at least 100 ms"),
    ] {
        let e = parse(&with(extra)).unwrap_err();
        assert_eq!(e.line, line, "{e}");
        assert!(e.reason.contains(needle), "{e}");
    }
    let e = parse(&with("").replace("format = \"x12\"", "format = \"csv\"")).unwrap_err();
    assert_eq!(e.line, 22, "{e}");
    assert!(e.reason.contains("\"x12\" or \"hl7\""), "{e}");
    let e = parse(&with("").replace("usage = \"T\"", "usage = \"test\"")).unwrap_err();
    assert!(e.reason.contains("\"T\" (test) or \"P\""), "{e}");
    let e = parse(&with("").replace("format = \"x12\"", "format = \"hl7\"")).unwrap_err();
    assert!(
        e.reason.contains("usage is for format = \"x12\" only"),
        "{e}"
    );
    // A route from an unknown pickup names its line.
    let e = parse(&GOOD.replace("from = [\"ehr\"]", "from = [\"claims\"]")).unwrap_err();
    assert!(e.reason.contains("from names 'claims'"), "{e}");
}

const SFTP: &str = r#"
[[destination]]
name = "availity"
kind = "sftp"
url = "sftp://practice42@sftp.example.com:2222/SendFiles"
name_template = "CLM_{id:08}.837"
[destination.auth]
type = "ssh_key"
key_file = "credential:availity-key"
known_hosts = "availity.known_hosts"

[[poller]]
name = "availity-responses"
kind = "sftp"
url = "sftp://practice42@sftp.example.com:2222/ReceiveFiles"
pattern = ["*.999", "*.835"]
interval = "5m"
move_to = "Done"
[poller.auth]
type = "password"
password_file = "credential:availity-pw"
known_hosts = "availity.known_hosts"
"#;

#[test]
fn sftp_destinations_and_pollers_are_checked_from_the_text() {
    let c = check(&format!("{GOOD}{SFTP}")).unwrap();
    let DestinationKind::Sftp(d) = &c.destinations[1].kind else {
        panic!("{:?}", c.destinations[1].kind)
    };
    assert_eq!(
        (
            d.endpoint.host.as_str(),
            d.endpoint.port,
            d.endpoint.user.as_str()
        ),
        ("sftp.example.com", 2222, "practice42")
    );
    assert_eq!(d.endpoint.dir, "/SendFiles");
    assert_eq!(d.name_template.as_str(), "CLM_{id:08}.837");
    assert!(matches!(d.endpoint.login, SshLogin::Key(_)));
    let p = &c.pollers.sftp[0];
    assert_eq!(p.interval, Duration::from_secs(300));
    assert_eq!(p.after, AfterFetch::MoveTo("Done".into()));
    assert!(p.patterns[1].matches("ERA_0001.835"));
    assert!(matches!(p.endpoint.login, SshLogin::Password(_)));
    assert_eq!(p.format, FetchFormat::X12 { usage: None });
    let with = |extra: &str| format!("{GOOD}{}", SFTP.replace("move_to = \"Done\"\n", extra));
    let c = check(&with("format = \"x12\"\nusage = \"P\"\n")).unwrap();
    assert_eq!(
        c.pollers.sftp[0].format,
        FetchFormat::X12 {
            usage: Some(x12::Usage::Production)
        }
    );
    let c = check(&with("format = \"file\"\n")).unwrap();
    assert_eq!(c.pollers.sftp[0].format, FetchFormat::File);
    assert_eq!(c.pollers.sftp[0].ack_dir, None);
    let c = check(&with("ack_dir = \"/srv/ecw/responses\"\n")).unwrap();
    assert_eq!(
        c.pollers.sftp[0].ack_dir,
        Some(PathBuf::from("/srv/ecw/responses"))
    );
    for (extra, why) in [
        ("format = \"csv\"\n", "use \"x12\""),
        (
            "format = \"file\"\nack_dir = \"acks\"\n",
            "ack_dir is for format = \"x12\" only",
        ),
        ("ack_dir = \"\"\n", "ack_dir is empty"),
        ("usage = \"test\"\n", "\"T\" (test) or \"P\""),
        (
            "format = \"file\"\nusage = \"T\"\n",
            "usage is for format = \"x12\" only",
        ),
    ] {
        let e = check(&with(extra)).unwrap_err();
        assert!(e.first().reason.contains(why), "{extra}: {}", e.first());
    }
    // Errors name the line and say what to do.
    for (from, to, why) in [
        ("known_hosts = \"availity.known_hosts\"\n\n", "\n", "missing field `known_hosts`"),
        ("sftp://practice42@sftp", "sftp://sftp", "has no user"),
        ("{id:08}", "{date}", "has no {id}"),
        ("pattern = [\"*.999\", \"*.835\"]", "pattern = []", "pattern must be"),
        (
            "type = \"ssh_key\"\nkey_file = \"credential:availity-key\"\nknown_hosts = \"availity.known_hosts\"",
            "type = \"bearer\"\ntoken = \"t\"",
            "ssh_key\" or \"password\"",
        ),
    ] {
        let text = format!("{GOOD}{}", SFTP.replacen(from, to, 1));
        let e = check(&text).unwrap_err();
        let e = e.first();
        assert!(e.reason.contains(why), "{from}: {e}");
        assert!(e.line > 20, "{from}: {e}");
    }
}

#[test]
fn iis_soap_destinations_need_basic_credentials_and_a_facility() {
    let iis = r#"
[[destination]]
name = "state-iis"
kind = "iis_soap"
url = "https://iis.state.example/ws/submitSingleMessage"
facility_id = "FAC-0042"
[destination.auth]
type = "basic"
username = "clinic42"
password_file = "credential:iis-pw"
"#;
    let c = check(&format!("{GOOD}{iis}")).unwrap();
    let DestinationKind::IisSoap(d) = &c.destinations[1].kind else {
        panic!("{:?}", c.destinations[1].kind)
    };
    assert_eq!(
        (d.username.as_str(), d.facility_id.as_str()),
        ("clinic42", "FAC-0042")
    );
    assert!(d.http.auth.is_none(), "credentials go in the SOAP body");
    assert_eq!(c.destinations[1].delivery.concurrency, 1);
    for (from, to, why) in [
        ("facility_id = \"FAC-0042\"\n", "", "needs facility_id"),
        (
            "type = \"basic\"\nusername = \"clinic42\"\npassword_file = \"credential:iis-pw\"",
            "type = \"bearer\"\ntoken = \"t\"",
            "type = \"basic\"",
        ),
    ] {
        let e = check(&format!("{GOOD}{}", iis.replacen(from, to, 1))).unwrap_err();
        assert!(e.first().reason.contains(why), "{from}: {}", e.first());
    }
}

#[test]
fn audit_table_defaults_and_errors() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.audit.retention, Duration::from_secs(2190 * 86400));
    assert_eq!(c.audit.max_bytes, 2048 * 1024 * 1024);
    let c = parse(&format!(
        "{GOOD}\n[audit]\nretention_days = 3000\nmax_mb = 10\n"
    ))
    .unwrap();
    assert_eq!(c.audit.retention, Duration::from_secs(3000 * 86400));
    assert_eq!(c.audit.max_bytes, 10 * 1024 * 1024);
    let e = parse(&format!("{GOOD}\n[audit]\nretention_days = 0\n")).unwrap_err();
    assert!(
        e.reason.contains("audit.retention_days") && e.reason.contains("2190"),
        "{e}"
    );
    let e = parse(&format!("{GOOD}\n[audit]\nmax_mb = 0\n")).unwrap_err();
    assert!(e.reason.contains("audit.max_mb"), "{e}");
    assert!(parse(&format!("{GOOD}\n[audit]\nkeep = 1\n")).is_err());
}
