//! Every Bundle the fhir transform makes of the corpora is valid FHIR R4
//! according to an independent validator (`fhir.resources`, R4B models,
//! run by tests/peers/validate_fhir.py), and translation never panics.

use std::path::{Path, PathBuf};

use fhir_map::{MapContext, UpdateMode};
use hl7::Message;

use crate::support;

/// The shared corpus files whose MSH-9 is a family the transform maps.
fn shared_in_scope() -> Vec<PathBuf> {
    support::shared_corpus()
        .into_iter()
        .filter(|p| {
            let raw = std::fs::read(p).unwrap();
            Message::parse(&raw).is_ok_and(|m| {
                let h = m.header();
                fhir_map::supported(&h.message_code, &h.trigger_event)
            })
        })
        .collect()
}

fn translate_all(files: &[PathBuf], ctx: &MapContext, out: &Path) {
    for f in files {
        let raw = std::fs::read(f).unwrap();
        let msg = Message::parse(&raw).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let bundle =
            fhir_map::translate(&msg, ctx).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let name = f.file_stem().unwrap().to_string_lossy().into_owned();
        std::fs::write(
            out.join(format!("{name}.json")),
            serde_json::to_vec_pretty(&bundle).unwrap(),
        )
        .unwrap();
    }
}

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
    let shared = shared_in_scope();
    // ADT A01/A03/A04/A08/A31, ORU, ORM, VXU, SIU S12/S14/S15, MDM T02, DFT P03.
    assert!(
        shared.len() >= 40,
        "shared corpus in scope: {}",
        shared.len()
    );
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
fn every_bundle_is_valid_fhir_r4() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = support::own_corpus();
    files.extend(shared_in_scope());
    translate_all(&files, &MapContext::new("acme"), dir.path());
    let Some(report) = validate(dir.path()) else {
        return;
    };
    assert!(
        report.contains(&format!("{} passed, 0 failed", files.len())),
        "{report}"
    );
}

#[test]
fn conditional_mode_bundles_are_valid_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut ctx = MapContext::new("acme");
    ctx.update_mode = UpdateMode::Conditional;
    let mut files = support::own_corpus();
    files.extend(shared_in_scope());
    translate_all(&files, &ctx, dir.path());
    let Some(report) = validate(dir.path()) else {
        return;
    };
    assert!(report.ends_with("0 failed\n"), "{report}");
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
