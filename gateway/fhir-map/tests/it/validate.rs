//! Every Bundle the fhir transform makes of the corpora is valid FHIR R4
//! according to an independent validator (`fhir.resources`, R4B models,
//! run by tests/peers/validate_fhir.py), and translation never panics.

use std::path::Path;

use fhir_map::MapContext;
use hl7::Message;

use crate::support;

/// fhir.resources' verdict on every Bundle in `dir`.
fn validate(dir: &Path) -> Option<String> {
    support::validator(
        "validate_fhir.py",
        &["fhir.resources"],
        &[dir.to_path_buf()],
    )
}

#[test]
fn corpora_sizes() {
    let own = support::own_corpus();
    assert!(own.len() >= 60, "own corpus has {} messages", own.len());
    let shared = support::shared_corpus();
    assert_eq!(shared.len(), 139, "FHIR-Converter's samples");
    for family in ["ADT", "ORU", "ORM", "VXU", "SIU", "MDM", "DFT"] {
        for (name, files) in [("own", &own), ("shared", &shared)] {
            let n = files
                .iter()
                .filter(|p| {
                    let raw = std::fs::read(p).unwrap();
                    Message::parse(&raw).unwrap().header().message_code == family
                })
                .count();
            assert!(n > 0, "{name} corpus has no {family}");
        }
    }
}

#[test]
fn every_bundle_is_valid_fhir_r4_in_both_modes() {
    let files = support::mapped_files();
    assert!(files.len() >= 200, "corpus files: {}", files.len());
    for (mode, ctx) in support::contexts() {
        let dir = tempfile::tempdir().unwrap();
        let n = support::write_bundles(&files, &ctx, dir.path());
        let Some(report) = validate(dir.path()) else {
            return;
        };
        assert!(
            report.contains(&format!("{n} passed, 0 failed")),
            "{mode} mode: {report}"
        );
    }
}

#[test]
fn every_corpus_file_of_any_type_gives_a_bundle_or_a_clean_error() {
    // Out-of-scope types (BAR, OML, ...) must give a MapError naming MSH-9,
    // never a panic.
    let ctx = MapContext::new("acme");
    for f in support::shared_corpus() {
        let raw = std::fs::read(&f).unwrap();
        let Ok(msg) = Message::parse(&raw) else {
            continue;
        };
        let h = msg.header();
        match fhir_map::translate(&msg, &ctx) {
            Ok(b) => assert_eq!(b["resourceType"], "Bundle"),
            Err(e) => assert!(
                !fhir_map::supported(&h.message_code, &h.trigger_event) || e.location != "MSH-9",
                "{}: {e}",
                f.display()
            ),
        }
    }
}
