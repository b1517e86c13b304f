//! The FHIR Bulk Data `$export` client end to end: the real gateway
//! against the loopback Bulk Data server of `support::bulk_server` (and the
//! token endpoint of `support::token_server`, with 2-second tokens).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::support::bulk_server::{
    dataset, resource, BulkServer, DataFile, DELETED_LINE, ERROR_LINES,
};
use crate::support::token_server::{TokenServer, Verifier, CLIENT_ID};
use crate::support::{free_port, rt, Gateway, Options, STORAGE};

const TAG: &str = "urn:clinic-gateway:tenant";

pub(crate) fn export_table(
    name: &str,
    tenant: &str,
    base: &str,
    out: &Path,
    extra: &str,
    token_url: Option<&str>,
) -> String {
    let auth = token_url
        .map(|t| format!("[export.auth]\ntype = \"client_credentials\"\ntoken_url = \"{t}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"s3cret\"\nscope = \"claims.write\"\naudience = \"https://api.example.com\"\n"))
        .unwrap_or_default();
    format!(
        "[[export]]\nname = \"{name}\"\ntenant = \"{tenant}\"\nurl = \"{base}\"\ntypes = [\"Patient\", \"Observation\"]\noutput = {out:?}\npoll_min = \"100ms\"\npoll_max = \"1s\"\ntimeout = \"10s\"\n{extra}\n{auth}\n",
        out = out.display().to_string()
    )
}

/// Every NDJSON line under `dir` (outputs only: not errors/ or deleted/),
/// by (type, id): how often it was seen. Each line must be JSON with
/// exactly one tenant tag for `tenant`.
fn outputs(dir: &Path, tenant: &str) -> BTreeMap<(String, String), usize> {
    let mut seen = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "ndjson") {
            continue;
        }
        for line in std::fs::read_to_string(&p).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: {e}: {line}", p.display()));
            let tags: Vec<&serde_json::Value> = v["meta"]["tag"]
                .as_array()
                .map(|t| t.iter().filter(|t| t["system"] == TAG).collect())
                .unwrap_or_default();
            assert_eq!(tags.len(), 1, "one tenant tag in {line}");
            assert_eq!(tags[0]["code"], tenant);
            // One top-level "meta" (never a duplicate key).
            let (top, _) = gateway::source::export::json_scan::members(line.as_bytes(), 0).unwrap();
            assert_eq!(
                top.iter().filter(|m| m.is(line.as_bytes(), "meta")).count(),
                1,
                "{line}"
            );
            *seen
                .entry((
                    v["resourceType"].as_str().unwrap().to_string(),
                    v["id"].as_str().unwrap().to_string(),
                ))
                .or_insert(0) += 1;
        }
    }
    seen
}

fn expected(files: &[DataFile], skip: Option<(usize, usize)>) -> BTreeMap<(String, String), usize> {
    let mut m = BTreeMap::new();
    for (i, f) in files.iter().enumerate() {
        for (n, l) in f.lines.iter().enumerate() {
            if skip == Some((i, n)) {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            m.insert((f.ty.clone(), v["id"].as_str().unwrap().to_string()), 1);
        }
    }
    m
}

pub(crate) fn export_status(g: &Gateway, name: &str) -> serde_json::Value {
    let out = g.cli(&["export", "status", name, "--json"]);
    assert!(
        out.status.success(),
        "export status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0].clone()
}

fn job_dir(out: &Path, tenant: &str, tt: &str) -> PathBuf {
    out.join(tenant).join(tt)
}

/// A full export of ~100k resources through every gotcha the server can
/// script, then an incremental one from the first one's transactionTime.
#[test]
fn full_export_then_incremental() {
    let rt = rt();
    let tokens = rt.block_on(TokenServer::start(
        Verifier::Secret {
            secret: "s3cret".into(),
            post: false,
        },
        2,
    ));
    let full = dataset(20_000, 80_000, 3);
    let incremental = vec![DataFile {
        ty: "Patient".into(),
        lines: vec![resource("Patient", 7)],
    }];
    let server = rt.block_on(BulkServer::start(full.clone(), incremental, Some(&tokens)));
    let s = &server.state.script;
    s.kickoff_429.store(1, Ordering::SeqCst);
    s.polls_before_ready.store(4, Ordering::SeqCst);
    s.retry_after_dates.store(true, Ordering::SeqCst);
    s.transient_once.store(true, Ordering::SeqCst);
    s.require_token.store(true, Ordering::SeqCst);
    s.errors_and_deleted.store(true, Ordering::SeqCst);
    s.page_size.store(2, Ordering::SeqCst);
    s.gzip.lock().unwrap().extend([1, 3, 4]);
    *s.redirect.lock().unwrap() = Some(2);
    *s.expire_once.lock().unwrap() = Some(4);
    *s.cut_once.lock().unwrap() = Some(3);
    *s.bad_line.lock().unwrap() = Some((5, 17));
    // Slow enough that the 2 s tokens expire mid-job.
    s.throttle_ms.store(20, Ordering::SeqCst);

    let out = tempfile::tempdir().unwrap();
    let hport = free_port();
    let mut g = Gateway::start_with(Options {
        top_extra: format!(
            "{STORAGE}[alerts]\ndisk_warn_percent = 100\n[health]\nbind = \"127.0.0.1:{hport}\"\n{}",
            export_table(
                "acme-nightly",
                "acme",
                &server.base,
                out.path(),
                "",
                Some(&tokens.url)
            )
        ),
        ..Default::default()
    });
    let run = g.cli(&["export", "run", "acme-nightly", "--wait"]);
    assert!(
        run.status.success(),
        "export run --wait failed: {}\n{}\nlog:\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
        g.log_tail()
    );
    let progress = String::from_utf8_lossy(&run.stdout);
    assert!(progress.contains("polling"), "progress shown: {progress}");

    // Kick-off: GET, Prefer: respond-async, never handling=lenient; the 429 was waited out, never a second job.
    let k = server.kickoffs();
    assert_eq!(k.len(), 2, "{k:?}");
    assert!(k
        .iter()
        .all(|(m, _, p)| m == "GET" && p.as_deref() == Some("respond-async")));
    assert!(
        k[1].1.contains("_type=Patient%2CObservation") && !k[1].1.contains("_since"),
        "{k:?}"
    );
    // The bearer never went to the second origin; files were asked for as NDJSON with gzip.
    let other = server.state.seen.other_origin_auth.lock().unwrap().clone();
    assert!(
        !other.is_empty() && other.iter().all(Option::is_none),
        "{other:?}"
    );
    assert!(server
        .state
        .seen
        .file_headers
        .lock()
        .unwrap()
        .iter()
        .all(|(a, e)| a.as_deref() == Some("application/fhir+ndjson")
            && e.as_deref() == Some("gzip")));
    // Tokens expired mid-job and were renewed (the server refuses expired ones).
    assert!(tokens.requests() >= 2, "tokens: {}", tokens.requests());

    let tt = "2026-02-01T10:00:00.000Z";
    let dir = job_dir(out.path(), "acme", tt);
    for f in [
        "manifest.json",
        "manifest.2.json",
        "manifest.3.json",
        "done",
        "errors/OperationOutcome.1.ndjson",
        "deleted/Bundle.1.ndjson",
    ] {
        assert!(dir.join(f).is_file(), "{f} in {}", dir.display());
    }
    assert!(!std::fs::read_dir(&dir).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".part")));
    // Every line exactly once, tagged; the bad line quarantined, not written.
    let got = outputs(&dir, "acme");
    assert_eq!(got, expected(&full, Some((5, 17))));
    assert_eq!(
        std::fs::read_to_string(dir.join("errors/OperationOutcome.1.ndjson")).unwrap(),
        format!("{}\n{}\n", ERROR_LINES[0], ERROR_LINES[1])
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("deleted/Bundle.1.ndjson")).unwrap(),
        format!("{DELETED_LINE}\n")
    );
    // Bytes other than the tag are the server's: decimals and unknown extensions.
    let p1 = std::fs::read_to_string(dir.join("Patient.1.ndjson")).unwrap();
    assert!(p1.contains(r#""extension":[{"url":"http://x.example/unknown","valueDecimal":0.10}]"#));
    let o = std::fs::read_to_string(dir.join("Observation.1.ndjson")).unwrap();
    assert!(o.contains(r#""valueQuantity":{"value":1.50,"unit":"mmol/L"}"#));
    assert!(o.contains(r#""value":120.000"#));

    let st = export_status(&g, "acme-nightly");
    assert_eq!(st["state"], "done", "{st}");
    assert_eq!(st["last_transaction_time"], tt);
    assert_eq!(st["last_resources"], 99_999);
    assert_eq!(st["last_bad_lines"], 1);
    // Lines (good and bad) match each file's count.
    assert_eq!(st["count_mismatches"], 0);
    // The error files are summarised by severity/code, and their
    // diagnostics text (which may quote PHI) is in no log line.
    assert_eq!(st["last_error_outcomes"], 2, "{st}");
    assert_eq!(st["last_error_issues"]["error/processing"], 1, "{st}");
    assert_eq!(st["last_error_issues"]["warning/incomplete"], 1, "{st}");
    let log = std::fs::read_to_string(&g.log).unwrap_or_default();
    assert!(
        log.contains("issues error/processing 1, warning/incomplete 1"),
        "the job's log line has the summary"
    );
    assert!(
        !log.contains("could not be read") && !log.contains("some Conditions skipped"),
        "no server diagnostics in the log"
    );
    let human =
        String::from_utf8_lossy(&g.cli(&["export", "status", "acme-nightly"]).stdout).to_string();
    assert!(
        human.contains("its error files' issues: error/processing 1, warning/incomplete 1"),
        "{human}"
    );
    // The status URL was deleted.
    assert_eq!(server.state.seen.deletes.lock().unwrap().as_slice(), ["1"]);
    // The quarantine holds the bad line with its file and line number.
    let status = g.status_json();
    assert_eq!(status["journal"]["quarantined"], 1);
    assert_eq!(status["exports"][0]["name"], "acme-nightly");
    let human = String::from_utf8_lossy(&g.cli(&["status"]).stdout).to_string();
    assert!(
        human.contains("export acme-nightly (tenant acme): done"),
        "{human}"
    );
    let (code, metrics) = crate::ops::http_get(&format!("127.0.0.1:{hport}"), "/metrics", None);
    assert_eq!(code, 200);
    assert!(
        metrics.contains(
            r#"gateway_export_state{export="acme-nightly",tenant="acme",state="done"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains(
        r#"gateway_export_jobs_total{export="acme-nightly",tenant="acme",outcome="succeeded"} 1"#
    ));

    // The second run starts from the first one's transactionTime.
    s.polls_before_ready.store(1, Ordering::SeqCst);
    let run = g.cli(&["export", "run", "acme-nightly", "--wait"]);
    assert!(
        run.status.success(),
        "second run: {}\nlog:\n{}",
        String::from_utf8_lossy(&run.stderr),
        g.log_tail()
    );
    let k = server.kickoffs();
    assert!(
        k.last()
            .unwrap()
            .1
            .contains("_since=2026-02-01T10%3A00%3A00.000Z"),
        "{k:?}"
    );
    let dir2 = job_dir(out.path(), "acme", "2026-02-02T10:00:00.000Z");
    assert_eq!(outputs(&dir2, "acme").len(), 1);
    // A --full run would leave _since out.
    g.stop();
}

/// Two tenants at once against two servers: the failing one (a fatal
/// OperationOutcome) fails with the server's text and raises the stale
/// alert; the other is untouched. Cancel stops a job with a DELETE.
#[test]
fn tenants_are_isolated_and_failures_are_reported() {
    let rt = rt();
    let good = rt.block_on(BulkServer::start(dataset(300, 900, 2), vec![], None));
    let bad = rt.block_on(BulkServer::start(dataset(10, 10, 1), vec![], None));
    let slow = rt.block_on(BulkServer::start(dataset(10, 10, 1), vec![], None));
    good.state
        .script
        .polls_before_ready
        .store(2, Ordering::SeqCst);
    bad.state.script.fatal.store(true, Ordering::SeqCst);
    slow.state
        .script
        .polls_before_ready
        .store(1_000_000, Ordering::SeqCst);
    let out = tempfile::tempdir().unwrap();
    let g = Gateway::start_with(Options {
        top_extra: format!(
            "{STORAGE}[alerts]\nevaluate_every = \"200ms\"\ndisk_warn_percent = 100\n{}{}{}",
            export_table(
                "a",
                "tenant-a",
                &good.base,
                out.path(),
                "schedule = \"every 6h\"",
                None
            ),
            export_table(
                "b",
                "tenant-b",
                &bad.base,
                out.path(),
                "schedule = \"every 6h\"\nalert_after = \"1s\"",
                None
            ),
            export_table("c", "tenant-c", &slow.base, out.path(), "", None),
        ),
        ..Default::default()
    });
    // "every 6h" on a fresh box: both start at once.
    g.wait_for("both jobs to end", Duration::from_secs(60), || {
        let (a, b) = (export_status(&g, "a"), export_status(&g, "b"));
        a["state"] == "done" && b["state"] == "failed"
    });
    let b = export_status(&g, "b");
    assert!(
        b["last_error"]
            .as_str()
            .unwrap()
            .contains("the _typeFilter cannot be evaluated"),
        "{b}"
    );
    assert_eq!(b["failed"], 1);
    let a = export_status(&g, "a");
    assert_eq!(a["last_resources"], 1200);
    assert_eq!(
        outputs(
            &job_dir(out.path(), "tenant-a", "2026-02-01T10:00:00.000Z"),
            "tenant-a"
        )
        .len(),
        1200
    );
    assert!(!out
        .path()
        .join("tenant-b")
        .join("2026-02-01T10:00:00.000Z")
        .join("done")
        .exists());
    g.wait_for(
        "the export_stale alert for b",
        Duration::from_secs(30),
        || {
            g.status_json()["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["id"] == "export_stale/b")
        },
    );
    assert!(!g.status_json()["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["id"] == "export_stale/a"));
    let failing = g.cli(&["export", "run", "b", "--wait"]);
    assert!(
        !failing.status.success(),
        "--wait exits non-zero on failure"
    );

    // Cancel: a job that polls forever stops with a DELETE and is audited.
    assert!(g.cli(&["export", "run", "c"]).status.success());
    g.wait_for("c to poll", Duration::from_secs(20), || {
        export_status(&g, "c")["state"] == "polling"
    });
    let c = g.cli(&["export", "cancel", "c"]);
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
    g.wait_for("c to stop", Duration::from_secs(20), || {
        export_status(&g, "c")["state"] == "idle"
    });
    assert_eq!(slow.state.seen.deletes.lock().unwrap().len(), 1);
    assert!(export_status(&g, "c")["last_error"]
        .as_str()
        .unwrap()
        .contains("cancelled"));
    let unknown = g.cli(&["export", "run", "nope"]);
    assert!(
        !unknown.status.success()
            && String::from_utf8_lossy(&unknown.stderr).contains("no export named 'nope'")
    );
}

/// Above `warn_at_percent` an export pauses and says so; restarted with
/// room (here: a higher threshold), the stored job resumes and finishes.
#[test]
fn pauses_while_the_disk_is_over_warn_then_resumes_after_a_restart() {
    let rt = rt();
    let server = rt.block_on(BulkServer::start(dataset(100, 100, 1), vec![], None));
    let out = tempfile::tempdir().unwrap();
    let table = export_table("p", "acme", &server.base, out.path(), "", None);
    let mut g = Gateway::start_with(Options {
        top_extra: format!("[storage]\nwarn_at_percent = 1\nrefuse_at_percent = 100\n[alerts]\ndisk_warn_percent = 100\n{table}"),
        ..Default::default()
    });
    assert!(g.cli(&["export", "run", "p"]).status.success());
    g.wait_for("the export to pause", Duration::from_secs(30), || {
        export_status(&g, "p")["paused"]
            .as_str()
            .is_some_and(|p| p.contains("warn_at_percent = 1"))
    });
    assert_eq!(server.state.seen.file_requests.load(Ordering::SeqCst), 0);
    g.stop();
    let text = std::fs::read_to_string(&g.config)
        .unwrap()
        .replace("warn_at_percent = 1\n", "warn_at_percent = 99\n");
    std::fs::write(&g.config, text).unwrap();
    g.spawn();
    g.wait_for("the resumed job to finish", Duration::from_secs(30), || {
        export_status(&g, "p")["state"] == "done"
    });
    assert_eq!(
        server.kickoffs().len(),
        1,
        "the stored job was resumed, not kicked off again"
    );
    let dir = job_dir(out.path(), "acme", "2026-02-01T10:00:00.000Z");
    assert_eq!(outputs(&dir, "acme"), expected(&dataset(100, 100, 1), None));
}

/// `kill -9` of the gateway at random moments while the job polls and
/// while it downloads, ten times: every restart resumes the same job (one
/// kick-off in all), and the output equals an uninterrupted run's.
#[test]
fn kill9_in_polling_and_download_resumes_the_same_job() {
    let rt = rt();
    let data = dataset(3000, 12_000, 3);
    let server = rt.block_on(BulkServer::start(data.clone(), vec![], None));
    let s = &server.state.script;
    s.polls_before_ready.store(8, Ordering::SeqCst);
    s.throttle_ms.store(40, Ordering::SeqCst);
    // No file may finish before the last kill: on a fast machine the whole
    // download could otherwise end within the first cycles.
    s.hold_files.store(true, Ordering::SeqCst);
    s.gzip.lock().unwrap().extend([0, 4]);
    let out = tempfile::tempdir().unwrap();
    let mut g = Gateway::configure(Options {
        top_extra: format!(
            "{STORAGE}[alerts]\ndisk_warn_percent = 100\n{}",
            export_table(
                "k",
                "acme",
                &server.base,
                out.path(),
                "schedule = \"every 6h\"",
                None
            )
        ),
        ..Default::default()
    });
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill9 seed {seed}");
    let mut random_ms = |max: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % max
    };
    let mut phases = Vec::new();
    for cycle in 0..10 {
        g.spawn();
        // Four kills while polling, then six while downloading.
        let want = if cycle < 4 { "polling" } else { "downloading" };
        g.wait_for(
            &format!("cycle {cycle}: the job {want}"),
            Duration::from_secs(60),
            || export_status(&g, "k")["state"] == want,
        );
        std::thread::sleep(Duration::from_millis(random_ms(if cycle < 4 {
            900
        } else {
            500
        })));
        phases.push(
            export_status(&g, "k")["state"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        );
        g.kill9();
    }
    s.hold_files.store(false, Ordering::SeqCst);
    g.spawn();
    g.wait_for(
        "the job to finish after the last restart",
        Duration::from_secs(120),
        || export_status(&g, "k")["state"] == "done",
    );
    eprintln!("killed in: {phases:?}");
    assert!(
        phases.iter().any(|p| p == "polling") && phases.iter().any(|p| p == "downloading"),
        "{phases:?}"
    );
    assert_eq!(
        server.kickoffs().len(),
        1,
        "never a second kick-off while the first status URL is live"
    );
    let dir = job_dir(out.path(), "acme", "2026-02-01T10:00:00.000Z");
    assert_eq!(
        outputs(&dir, "acme"),
        expected(&data, None),
        "every line exactly once"
    );
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".part")), "{names:?}");
    assert_eq!(export_status(&g, "k")["last_resources"], 15_000);
    assert_eq!(server.state.seen.deletes.lock().unwrap().len(), 1);
}

/// Credentials the token endpoint refuses fail the job with its reason
/// (retrying would not help) instead of retrying for ever.
#[test]
fn refused_credentials_fail_the_job_with_the_reason() {
    let rt = rt();
    let tokens = rt.block_on(TokenServer::start(
        Verifier::Secret {
            secret: "another-secret".into(),
            post: false,
        },
        60,
    ));
    let server = rt.block_on(BulkServer::start(dataset(10, 10, 1), vec![], Some(&tokens)));
    server
        .state
        .script
        .require_token
        .store(true, Ordering::SeqCst);
    let out = tempfile::tempdir().unwrap();
    let g = Gateway::start_with(Options {
        top_extra: format!(
            "{STORAGE}{}",
            export_table("r", "acme", &server.base, out.path(), "", Some(&tokens.url))
        ),
        ..Default::default()
    });
    let run = g.cli(&["export", "run", "r", "--wait"]);
    assert!(!run.status.success());
    let st = export_status(&g, "r");
    assert_eq!(st["state"], "failed", "{st}");
    assert!(
        st["last_error"]
            .as_str()
            .unwrap()
            .contains("cannot get an access token"),
        "{st}"
    );
    assert!(server.kickoffs().is_empty());
}
