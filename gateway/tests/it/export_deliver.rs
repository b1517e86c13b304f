//! `[[export]] to = [...]`: every exported resource journaled and delivered
//! to a fhir destination (the loopback FHIR server of `support::fhir_server`)
//! as `PUT [base]/Type/id` with the tenant-namespaced id, tombstones as
//! `DELETE`; exactly once in the journal across `kill -9`; a replay
//! creates nothing new.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use gateway::source::export::namespace::namespaced_id;

use crate::export::{export_status, export_table};
use crate::support::bulk_server::{dataset, BulkServer, DataFile};
use crate::support::fhir_server::{fhir_server, routing};
use crate::support::STORAGE;
use crate::support::{rt, Gateway, Options};

const TAG: &str = "urn:clinic-gateway:tenant";

/// The store keys the data set must end up as: `Type/<namespaced id>`.
fn expected_keys(files: &[DataFile], tenant: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for f in files {
        for l in &f.lines {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let id = v["id"].as_str().unwrap();
            keys.insert(format!("{}/{}", f.ty, namespaced_id(tenant, &f.ty, id)));
        }
    }
    keys
}

/// `kill -9` five times while the files download (each file holds its
/// last chunk until released, so every kill lands mid-file with lines
/// already journaled), then to the end: every resource reaches the FHIR
/// server, under its namespaced id, tagged, its references namespaced;
/// the deleted entry arrives as a DELETE; the journal holds each
/// resource once (no duplicate, no second append after a restart); a
/// `--full` replay of the export creates nothing new.
#[test]
fn delivers_each_resource_once_across_kill9_and_a_replay_creates_nothing() {
    let rt = rt();
    let data = dataset(1000, 4000, 2);
    let server = rt.block_on(BulkServer::start(data.clone(), vec![], None));
    let s = &server.state.script;
    s.polls_before_ready.store(1, Ordering::SeqCst);
    s.throttle_ms.store(30, Ordering::SeqCst);
    s.hold_files.store(true, Ordering::SeqCst);
    s.errors_and_deleted.store(true, Ordering::SeqCst);
    s.gzip.lock().unwrap().extend([1]);
    let (fhir, store) = fhir_server(false);
    let out = tempfile::tempdir().unwrap();
    let mut g = Gateway::configure(Options {
        top_extra: format!(
            "{STORAGE}[alerts]\ndisk_warn_percent = 100\n{}",
            export_table(
                "d",
                "acme",
                &server.base,
                out.path(),
                "to = [\"cloud\"]",
                None
            )
        ),
        routing: Some(routing(&fhir.url("/fhir"), "")),
        ..Default::default()
    });
    let mut journaled_before_last_kill = 0;
    for cycle in 0..5 {
        g.spawn();
        if cycle == 0 {
            assert!(g.cli(&["export", "run", "d"]).status.success());
        }
        g.wait_for(
            &format!("cycle {cycle}: the job downloading"),
            Duration::from_secs(60),
            || export_status(&g, "d")["state"] == "downloading",
        );
        std::thread::sleep(Duration::from_millis(300 + 100 * cycle));
        let st = g.status_json();
        journaled_before_last_kill = st["journal"]["messages"].as_u64().unwrap_or(0);
        eprintln!(
            "cycle {cycle}: journal {} export {}",
            st["journal"], st["exports"][0]
        );
        g.kill9();
    }
    assert!(
        journaled_before_last_kill > 0,
        "lines were journaled before the kills (else the test shows nothing): {}",
        g.log_tail()
    );
    s.hold_files.store(false, Ordering::SeqCst);
    g.spawn();
    g.wait_for("the job to finish", Duration::from_secs(120), || {
        export_status(&g, "d")["state"] == "done"
    });
    let want = expected_keys(&data, "acme");
    let gone = format!("Patient/{}", namespaced_id("acme", "Patient", "gone-1"));
    g.wait_for(
        "every resource and the tombstone delivered",
        Duration::from_secs(120),
        || {
            let st = store.lock().unwrap();
            st.resources.len() == want.len() && st.deletes.contains(&gone)
        },
    );
    let status = g.status_json();
    let j = &status["journal"];
    // Exactly once in the journal: 5000 resources + 1 tombstone appended,
    // none twice, none as a duplicate or a reused key.
    assert_eq!(j["messages"], 5001, "{j}");
    assert_eq!(j["duplicates"], 0, "{j}");
    assert_eq!(j["control_id_reuses"], 0, "{j}");
    {
        let st = store.lock().unwrap();
        let got: BTreeSet<String> = st.resources.keys().cloned().collect();
        assert_eq!(got, want, "every resource, under its namespaced id");
        assert!(st.applications == 0, "no Bundle was POSTed");
        for (key, r) in &st.resources {
            let tags: Vec<&serde_json::Value> = r["meta"]["tag"]
                .as_array()
                .map(|t| t.iter().filter(|t| t["system"] == TAG).collect())
                .unwrap_or_default();
            assert_eq!(tags.len(), 1, "{key}: one tenant tag");
            if let Some(reference) = r["subject"]["reference"].as_str() {
                assert!(
                    st.resources.contains_key(reference),
                    "{key}: its subject {reference} is namespaced and resolves"
                );
            }
        }
        // The PUTs went to /fhir/Type/id, the tombstone as a DELETE.
        assert!(st.puts.len() >= want.len());
        assert_eq!(
            st.deletes.iter().filter(|d| **d == gone).count(),
            st.deletes.len()
        );
    }
    // The journal keeps export resources only until delivered.
    g.wait_for("the outbox to drain", Duration::from_secs(60), || {
        g.status_json()["destinations"]
            .as_array()
            .and_then(|d| d.iter().find(|d| d["name"] == "cloud"))
            .is_some_and(|d| d["pending"] == 0)
    });

    // A replay of the whole export: the same PUTs, nothing new created.
    let puts_before = store.lock().unwrap().puts.len();
    s.polls_before_ready.store(1, Ordering::SeqCst);
    let run = g.cli(&["export", "run", "d", "--full", "--wait"]);
    assert!(
        run.status.success(),
        "replay: {}\n{}",
        String::from_utf8_lossy(&run.stderr),
        g.log_tail()
    );
    g.wait_for("the replay delivered", Duration::from_secs(120), || {
        store.lock().unwrap().puts.len() >= puts_before + want.len()
    });
    let st = store.lock().unwrap();
    let got: BTreeSet<String> = st.resources.keys().cloned().collect();
    assert_eq!(got, want, "a replay created nothing new");
    assert!(
        st.resources.values().all(|r| r["meta"]["versionId"] != "1"),
        "every resource was updated in place by the replay"
    );
    assert_eq!(server.kickoffs().len(), 2);
}

/// `to = [...]` without `output`: no folder sink is written. While the
/// destination refuses the PUTs, the downloaded, journaled job says
/// "delivering" with the count still in the outbox (status, --json,
/// metrics); once the destination takes them, "done", and `--wait`
/// returns only then.
#[test]
fn without_output_no_folder_and_delivering_until_the_outbox_is_empty() {
    let rt = rt();
    let data = dataset(20, 30, 1);
    let server = rt.block_on(BulkServer::start(data.clone(), vec![], None));
    server
        .state
        .script
        .polls_before_ready
        .store(1, Ordering::SeqCst);
    let (fhir, store) = fhir_server(false);
    store.lock().unwrap().refuse_puts = true;
    let out = tempfile::tempdir().unwrap();
    let table = export_table(
        "d",
        "acme",
        &server.base,
        out.path(),
        "to = [\"cloud\"]",
        None,
    )
    .replace(
        &format!("output = {:?}\n", out.path().display().to_string()),
        "",
    );
    assert!(!table.contains("output"), "{table}");
    let hport = crate::support::free_port();
    let mut g = Gateway::configure(Options {
        top_extra: format!(
            "{STORAGE}[alerts]\ndisk_warn_percent = 100\n[health]\nbind = \"127.0.0.1:{hport}\"\n{table}"
        ),
        routing: Some(routing(&fhir.url("/fhir"), "probe_interval = \"200ms\"")),
        ..Default::default()
    });
    g.spawn();
    let mut wait = std::process::Command::new(crate::support::daemon::BIN)
        .args(["export", "run", "d", "--wait", "--config"])
        .arg(&g.config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    g.wait_for("the job delivering", Duration::from_secs(60), || {
        export_status(&g, "d")["state"] == "delivering"
    });
    let st = export_status(&g, "d");
    let want = expected_keys(&data, "acme").len() as u64;
    assert_eq!(st["pending_delivery"], want, "{st}");
    // The history (the next `since`) is stored before the delivery ends.
    assert_eq!(st["succeeded"], 1, "{st}");
    let text = g.cli(&["export", "status", "d"]);
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(
        text.contains(&format!("delivering {want} resource(s)"))
            && text.contains("pending for cloud"),
        "{text}"
    );
    let (_, metrics) = crate::ops::http_get(&format!("127.0.0.1:{hport}"), "/metrics", None);
    assert!(
        metrics.contains(r#"gateway_export_state{export="d",tenant="acme",state="delivering"} 1"#),
        "{metrics}"
    );
    assert!(
        wait.try_wait().unwrap().is_none(),
        "--wait waits for the delivery too"
    );
    store.lock().unwrap().refuse_puts = false;
    g.wait_for("the job done", Duration::from_secs(60), || {
        export_status(&g, "d")["state"] == "done"
    });
    assert_eq!(export_status(&g, "d")["pending_delivery"], 0);
    assert_eq!(store.lock().unwrap().resources.len() as u64, want);
    let waited = wait.wait_with_output().unwrap();
    assert!(
        waited.status.success(),
        "{}",
        String::from_utf8_lossy(&waited.stderr)
    );
    // No folder sink: nothing under the directory `output` would have named.
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
}
