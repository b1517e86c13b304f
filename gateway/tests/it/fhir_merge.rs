//! Merges and cancels end to end: the real gateway delivers to the
//! loopback FHIR server (`support::fhir_server`), which applies each
//! transaction to its store.
//!
//! - An A40 waits for the earlier messages of the patient it merges away:
//!   an ORU for the old MRN that the server fails a few times still lands
//!   before the merge (its lane is not the A40's).
//! - A result for the old MRN after the merge never clears the merged
//!   Patient's `active` = false or its `link`.
//! - A01 → A11 → A01 again is one Encounter, in progress at the end.

use std::time::Duration;

use serde_json::Value;

use crate::support::fhir_server::{corpus_message, fhir_server, routing, Store};
use crate::support::{ack_code, send_one, Gateway, Options};

fn send(g: &Gateway, raw: &[u8]) {
    let ack = ack_code(&send_one(&g.addr(), raw).unwrap());
    assert!(ack == "AA" || ack == "CA", "{ack}");
}

/// The stored Patient that carries identifier `value`.
fn patient<'s>(st: &'s Store, value: &str) -> &'s Value {
    st.of_type("Patient")
        .into_iter()
        .map(|(_, p)| p)
        .find(|p| {
            p["identifier"]
                .as_array()
                .is_some_and(|ids| ids.iter().any(|i| i["value"] == value))
        })
        .unwrap_or_else(|| panic!("no Patient {value}"))
}

fn link_types(p: &Value) -> Vec<&str> {
    p["link"]
        .as_array()
        .map(|l| l.iter().filter_map(|l| l["type"].as_str()).collect())
        .unwrap_or_default()
}

fn assert_merged(st: &Store) {
    let old = patient(st, "MRN2001");
    assert_eq!(old["active"], false, "the merged-away Patient: {old}");
    assert_eq!(link_types(old), ["replaced-by"], "{old}");
    let survivor = patient(st, "MRN2002");
    assert_eq!(survivor["active"], true);
    assert_eq!(link_types(survivor), ["replaces"], "{survivor}");
}

#[test]
fn a_merge_waits_for_the_earlier_messages_of_the_patient_it_merges_away() {
    let (peer, store) = fhir_server(false);
    // The old MRN's result (MSH-10 MRG0) fails four times before it lands.
    store.lock().unwrap().fail.insert("MRG0".into(), 4);
    let g = Gateway::start_with(Options {
        routing: Some(routing(&peer.url("/fhir"), "circuit_failures = 100")),
        ..Default::default()
    });
    let earlier = String::from_utf8(corpus_message("oru_r01_after_merge.hl7"))
        .unwrap()
        .replace("|MRG3|", "|MRG0|");
    send(&g, earlier.as_bytes());
    send(&g, &corpus_message("adt_a40_merge.hl7"));
    g.wait_drained(Duration::from_secs(60));
    let st = store.lock().unwrap();
    assert_eq!(
        st.applied_order,
        ["MRG0", "MRG1"],
        "the A40 (MRG1) went before the earlier result of the patient it merges away"
    );
    assert_merged(&st);
    assert!(g.log_text().contains("is a merge: it waits"));
}

fn late_result_keeps_the_merge(extra: &str) {
    let (peer, store) = fhir_server(false);
    let g = Gateway::start_with(Options {
        routing: Some(routing(&peer.url("/fhir"), extra)),
        ..Default::default()
    });
    send(&g, &corpus_message("adt_a40_merge.hl7"));
    g.wait_drained(Duration::from_secs(60));
    assert_merged(&store.lock().unwrap());
    // A result for the old MRN, after the merge (MSH-10 MRG3).
    send(&g, &corpus_message("oru_r01_after_merge.hl7"));
    // The merge again: nothing changes the second time.
    send(&g, &corpus_message("adt_a40_merge.hl7"));
    g.wait_drained(Duration::from_secs(60));
    let st = store.lock().unwrap();
    assert_eq!(st.applied_order, ["MRG1", "MRG3"]);
    assert_eq!(st.of_type("DiagnosticReport").len(), 1, "the result landed");
    assert_merged(&st);
}

#[test]
fn a_late_result_for_the_old_mrn_never_clears_the_merge_conditional_mode() {
    late_result_keeps_the_merge(
        "update = \"conditional\"\nidentifier_systems = { ECW = \"http://clinic-7.example/mrn\" }",
    );
}

#[test]
fn an_admit_cancelled_and_admitted_again_is_one_encounter_in_progress() {
    let (peer, store) = fhir_server(true);
    let g = Gateway::start_with(Options {
        routing: Some(routing(&peer.url("/fhir"), "")),
        ..Default::default()
    });
    let encounters = |st: &Store| -> Vec<Value> {
        st.of_type("Encounter")
            .into_iter()
            .map(|(_, e)| e.clone())
            .collect()
    };
    send(&g, &corpus_message("adt_a01_visit.hl7"));
    send(&g, &corpus_message("adt_a11_visit.hl7"));
    g.wait_drained(Duration::from_secs(60));
    let after_cancel = encounters(&store.lock().unwrap());
    assert_eq!(
        after_cancel.len(),
        1,
        "the cancel corrects the admit's Encounter"
    );
    assert_eq!(after_cancel[0]["status"], "cancelled");
    send(&g, &corpus_message("adt_a01_visit_again.hl7"));
    g.wait_drained(Duration::from_secs(60));
    let st = store.lock().unwrap();
    let last = encounters(&st);
    assert_eq!(last.len(), 1, "one Encounter: {last:?}");
    assert_eq!(last[0]["id"], after_cancel[0]["id"]);
    assert_eq!(last[0]["status"], "in-progress");
    assert!(st.redelivery_diffs.is_empty() && st.created_on_redelivery.is_empty());
}
