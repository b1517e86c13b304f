//! Every Bundle of both corpora (ours and FHIR-Converter's samples), in
//! PUT and in conditional mode, meets R4's invariants per an independent
//! check (`tests/peers/fhir-invariants`: fhirpath.js over the R4
//! StructureDefinitions' constraints, and @medplum/core's validator; run
//! by node). `validate.rs` has the other validator, `fhir.resources`. The
//! invariant check is itself tested on Bundles that break app-3, obs-6,
//! per-1, ref-1 and dom-3.

use crate::support::*;
use serde_json::json;

#[test]
fn every_bundle_meets_the_r4_invariants() {
    let files = mapped_files();
    assert!(files.len() >= 100, "corpus files: {}", files.len());
    for (mode, ctx) in contexts() {
        let Some(mut validator) = invariant_validator() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let n = write_bundles(&files, &ctx, dir.path());
        let out = validator.arg(dir.path()).output().unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{mode} mode:\n{report}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            report.contains(&format!("{n} passed, 0 failed")),
            "{mode} mode: {report}"
        );
    }
}

/// A transaction Bundle of one resource.
fn one_entry(resource: serde_json::Value) -> serde_json::Value {
    let rtype = resource["resourceType"].as_str().unwrap().to_string();
    json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{
            "fullUrl": "urn:uuid:0b5f0f9e-8a4c-5d1e-9a3b-2c1d0e9f8a7b",
            "resource": resource,
            "request": { "method": "PUT", "url": format!("{rtype}/x1") },
        }],
    })
}

#[test]
fn the_invariant_check_catches_what_it_must() {
    let Some(mut validator) = invariant_validator() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let patient = json!({ "reference": "Patient/p1" });
    let broken = [
        (
            "app-3",
            json!({ "resourceType": "Appointment", "id": "x1", "status": "booked",
            "participant": [{ "actor": patient, "status": "accepted" }] }),
        ),
        (
            "obs-6",
            json!({ "resourceType": "Observation", "id": "x1", "status": "final",
            "code": { "text": "x" }, "valueString": "5",
            "dataAbsentReason": { "text": "unknown" } }),
        ),
        (
            "per-1",
            json!({ "resourceType": "Encounter", "id": "x1", "status": "finished",
            "class": { "code": "AMB" },
            "period": { "start": "2024-03-02", "end": "2024-03-01" } }),
        ),
        (
            "ref-1",
            json!({ "resourceType": "Observation", "id": "x1", "status": "final",
            "code": { "text": "x" }, "subject": { "reference": "#missing" } }),
        ),
        (
            "dom-3",
            json!({ "resourceType": "Observation", "id": "x1", "status": "final",
            "code": { "text": "x" },
            "contained": [{ "resourceType": "Patient", "id": "unused", "active": true }] }),
        ),
    ];
    for (key, resource) in &broken {
        std::fs::write(
            dir.join(format!("{key}.json")),
            serde_json::to_vec(&one_entry(resource.clone())).unwrap(),
        )
        .unwrap();
    }
    let out = validator.arg(dir).output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{report}");
    assert!(report.contains("0 passed, 5 failed"), "{report}");
    for (key, _) in &broken {
        assert!(
            report.contains(&format!("{key} failed")),
            "{key} not reported:\n{report}"
        );
    }
}
