//! Results back to the EHR: a `[[poller]]` fetches FHIR DiagnosticReports
//! from a loopback "cloud" (a FHIR search answered by test code), the
//! gateway journals each as an ORU^R01 and delivers it over MLLP to a real
//! Python `hl7` listener standing in for eCW's inbound interface. Re-fetched
//! reports are not delivered twice, an unmappable one is quarantined, and
//! the cursor survives a restart.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::http_peer::HttpPeer;
use crate::support::peers::start_mllp_lab;
use crate::support::{Gateway, Options};

fn report(id: &str, patient: &str, mrn: &str, updated: &str, value: f64) -> Vec<Value> {
    vec![
        json!({"resource": {
            "resourceType": "DiagnosticReport", "id": id, "status": "final",
            "meta": {"versionId": "1", "lastUpdated": updated},
            "identifier": [{"system": "https://lab.example/filler", "value": format!("F-{id}"),
                            "type": {"coding": [{"code": "FILL"}]}}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose"}]},
            "subject": {"reference": format!("Patient/{patient}")},
            "effectiveDateTime": "2024-03-11T08:00:00-05:00",
            "result": [{"reference": format!("Observation/o-{id}")}]}}),
        json!({"resource": {"resourceType": "Observation", "id": format!("o-{id}"), "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose"}]},
            "valueQuantity": {"value": value, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}}}),
        json!({"resource": {"resourceType": "Patient", "id": patient,
            "identifier": [{"system": "urn:clinic-gateway:acme:id:ECW", "value": mrn,
                            "type": {"coding": [{"code": "MR"}]}}],
            "name": [{"family": "Testperson", "given": ["Poll"]}]}}),
    ]
}

fn searchset(entries: Vec<Vec<Value>>) -> String {
    let entry: Vec<Value> = entries.into_iter().flatten().collect();
    json!({"resourceType": "Bundle", "type": "searchset", "entry": entry}).to_string()
}

#[test]
fn fhir_results_are_polled_journaled_and_delivered_to_the_ehr_once() {
    // The cloud: the first search returns two reports and one whose
    // patient is missing; later searches (with _lastUpdated) return the
    // newest again, as a server does for `ge`.
    let cloud = HttpPeer::start();
    cloud.add_rule(Box::new(|r| {
        if !r.path.starts_with("/fhir/DiagnosticReport") {
            return Some((404, "{}".into()));
        }
        let body = if r.path.contains("_lastUpdated=ge") {
            searchset(vec![report(
                "r2",
                "p2",
                "MRN2002",
                "2024-03-11T13:00:00Z",
                140.0,
            )])
        } else {
            let mut broken = report("r3", "p9", "MRN9", "2024-03-11T11:00:00Z", 1.0);
            broken.pop(); // no Patient: cannot fill PID-3
            searchset(vec![
                report("r2", "p2", "MRN2002", "2024-03-11T13:00:00Z", 140.0),
                report("r1", "p1", "MRN1001", "2024-03-11T12:00:00Z", 95.0),
                broken,
            ])
        };
        Some((200, body))
    }));

    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("ecw.log");
    let Some((_ecw, port)) = start_mllp_lab(&log) else {
        return;
    };

    let routing = format!(
        "[[poller]]\nname = \"results\"\nkind = \"fhir\"\nurl = \"{}\"\ninterval = \"300ms\"\nsending_application = \"QUEST\"\nreceiving_application = \"ECW\"\n\n\
         [[destination]]\nname = \"ecw-inbound\"\nkind = \"mllp\"\nurl = \"mllp://127.0.0.1:{port}\"\n\n\
         [[route]]\nname = \"results-to-ehr\"\nfrom = [\"results\"]\nto = [\"ecw-inbound\"]\ntypes = [\"ORU^R01\"]\n",
        cloud.url("/fhir/DiagnosticReport?_include=DiagnosticReport:result")
    );
    let mut g = Gateway::start_with(Options {
        routing: Some(routing),
        ..Default::default()
    });
    let poller = |g: &Gateway| g.status_json()["pollers"][0].clone();
    test_support::wait::until(
        "two results stored and delivered, and re-fetched ones seen as duplicates",
        Duration::from_secs(30),
        || {
            let p = poller(&g);
            let d = &g.status_json()["destinations"][0];
            p["stored"] == 2
                && p["duplicates"].as_u64().unwrap_or(0) >= 2
                && d["pending"] == 0
                && d["delivered"] == 2
        },
        || {
            let s = g.status_json();
            format!(
                "poller {}, destination {}\n{}",
                s["pollers"][0],
                s["destinations"][0],
                g.log_tail()
            )
        },
    );
    let p = poller(&g);
    assert_eq!(p["unmappable"], 1, "{p}");
    assert_eq!(p["cursor"], "2024-03-11T13:00:00Z", "{p}");

    // eCW got each result once, oldest first, as ORU^R01 v2.5.1 with the MRN in PID-3.
    let answers = std::fs::read_to_string(&log).unwrap();
    let cids: Vec<&str> = answers
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(cids.len(), 2, "{answers}");
    assert!(cids.iter().all(|c| c.starts_with("FR")), "{cids:?}");
    let msgs = std::fs::read_to_string(format!("{}.msgs", log.display())).unwrap();
    let first = msgs.find("MRN1001").unwrap();
    let second = msgs.find("MRN2002").unwrap();
    assert!(first < second, "results not in lastUpdated order:\n{msgs}");
    assert!(
        msgs.contains("ORU^R01^ORU_R01") && msgs.contains("|QUEST|"),
        "{msgs}"
    );
    assert!(
        msgs.contains("OBX|1|NM|2345-7^Glucose^LN||95.0|mg/dL^mg/dL^UCUM"),
        "{msgs}"
    );
    // No PHI in the log.
    assert!(!g.log_text().contains("MRN1001"));
    assert!(!g.log_text().contains("Testperson"));

    // Restart: the cursor is durable, nothing is delivered again.
    assert!(g.stop().success());
    g.spawn();
    std::thread::sleep(Duration::from_secs(2));
    let p = poller(&g);
    assert!(p["polls"].as_u64().unwrap() >= 2, "{p}");
    assert_eq!(p["stored"], 0, "a restart re-journaled results: {p}");
    let answers = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        answers.lines().count(),
        2,
        "eCW got a result twice:\n{answers}"
    );
    let searches: Vec<String> = cloud.received().iter().map(|r| r.path.clone()).collect();
    assert!(
        searches
            .last()
            .unwrap()
            .contains("_lastUpdated=ge2024-03-11T13%3A00%3A00Z"),
        "{searches:?}"
    );
}
