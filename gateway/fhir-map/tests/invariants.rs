//! Every Bundle of both corpora (ours and FHIR-Converter's samples), in
//! PUT and in conditional mode, passes two independent validators:
//! `fhir.resources` (structure, R4B models) and the FHIRPath invariant
//! check (gateway/tests/peers/fhir-invariants: fhirpath.js over the R4
//! StructureDefinitions' constraints, and @medplum/core's validator).
//! The invariant check is itself tested on Bundles that break app-3,
//! obs-6, per-1, ref-1 and dom-3.

mod mapping_support;

use std::path::PathBuf;

use hl7::Message;
use mapping_support::*;
use serde_json::json;

/// Every corpus file of a family the transform maps (`breadth.rs` checks
/// that this is every file).
fn mapped_files() -> Vec<PathBuf> {
    let mut files = own_corpus();
    files.extend(shared_corpus());
    files
        .into_iter()
        .filter(|f| {
            Message::parse(&read(f)).is_ok_and(|m| {
                let h = m.header();
                fhir_map::supported(&h.message_code, &h.trigger_event)
            })
        })
        .collect()
}

#[test]
fn every_bundle_meets_the_r4_invariants() {
    let files = mapped_files();
    assert!(files.len() >= 100, "corpus files: {}", files.len());
    for (mode, ctx) in contexts() {
        let dir = scratch(&format!("invariants-{mode}"));
        let n = write_bundles(&files, &ctx, &dir);
        let Some(validator) = invariant_validator() else {
            return;
        };
        validate(validator, &dir, n);
    }
}

#[test]
fn every_bundle_is_valid_per_fhir_resources() {
    let files = mapped_files();
    for (mode, ctx) in contexts() {
        let dir = scratch(&format!("fhir-resources-{mode}"));
        let n = write_bundles(&files, &ctx, &dir);
        let Some(validator) = fhir_resources_validator() else {
            return;
        };
        validate(validator, &dir, n);
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
    let dir = scratch("invariants-broken");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
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
    let out = validator.arg(&dir).output().unwrap();
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
