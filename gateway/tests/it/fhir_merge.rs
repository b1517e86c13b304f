//! Merges and cancels end to end: the real gateway delivers to the
//! loopback FHIR server (`support::fhir_server`), which applies each
//! transaction to its store.
//!
//! - An A40 waits for the earlier messages of the patient it merges away:
//!   an ORU for the old MRN that the server fails a few times still lands
//!   before the merge (its lane is not the A40's).
//! - A result for the old MRN after the merge never clears the merged
//!   Patient's `active` = false or its `link`, in PUT mode (its Patient is
//!   create-only: read first, written back unchanged with If-Match) and in
//!   conditional mode (POST + ifNoneExist).
//! - `update = "merge"`: a sparse A08 keeps what it leaves out; a version
//!   that changes between the read and the write (412) is read again.
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
fn a_late_result_for_the_old_mrn_never_clears_the_merge_put_mode() {
    late_result_keeps_the_merge("");
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

/// adt_a04_same_patient's patient again, in an A08 that carries only the
/// identifier, name, birth date and sex (no address, telecom, race ...).
fn sparse_a08() -> Vec<u8> {
    let full = String::from_utf8(corpus_message("adt_a04_same_patient.hl7")).unwrap();
    full.split('\r')
        .filter(|s| !s.is_empty())
        .map(|s| {
            if s.starts_with("MSH") {
                s.replace("ADT^A04^ADT_A01|SAME1|", "ADT^A08^ADT_A01|SPARSE8|")
            } else if s.starts_with("PID") {
                s.split('|').take(9).collect::<Vec<_>>().join("|")
            } else {
                s.to_string()
            }
        })
        .map(|s| s + "\r")
        .collect::<String>()
        .into_bytes()
}

/// The Patient MRN1004 after the full A04 and then the sparse A08, whose
/// Patient a concurrent writer changes right after each of its first
/// `concurrent_changes` reads; the 412s counted, the reads, the log.
fn after_sparse_a08(extra: &str, concurrent_changes: u32) -> (Value, usize, Vec<String>, String) {
    let (peer, store) = fhir_server(false);
    let g = Gateway::start_with(Options {
        routing: Some(routing(&peer.url("/fhir"), extra)),
        ..Default::default()
    });
    send(&g, &corpus_message("adt_a04_same_patient.hl7"));
    g.wait_drained(Duration::from_secs(60));
    if concurrent_changes > 0 {
        let mut st = store.lock().unwrap();
        let key = st
            .of_type("Patient")
            .first()
            .map(|(k, _)| k.to_string())
            .unwrap();
        st.change_after_read = Some(key);
        st.change_after_read_more = concurrent_changes - 1;
    }
    send(&g, &sparse_a08());
    g.wait_drained(Duration::from_secs(60));
    let st = store.lock().unwrap();
    assert_eq!(st.applied_order, ["SAME1", "SPARSE8"]);
    (
        patient(&st, "MRN1004").clone(),
        st.precondition_failures,
        st.reads.clone(),
        g.log_text(),
    )
}

#[test]
fn put_mode_an_a08_replaces_the_whole_patient() {
    let (p, _, reads, _) = after_sparse_a08("", 0);
    assert!(p.get("address").is_none(), "PUT replaces: {p}");
    assert!(
        !reads.iter().any(|r| r.starts_with("Patient/")),
        "an ADT's Patient is not read in PUT mode: {reads:?}"
    );
}

/// A resource that keeps changing between read and write (another client
/// writing the same Patient) is contention, not an outage: the message is
/// retried on its lane's backoff until it applies, and the destination,
/// which answered every time, is never taken down (the circuit opens after
/// 5 failures in a row; here 6 attempts in a row end in 412).
#[test]
fn a_resource_that_keeps_changing_is_retried_without_taking_the_destination_down() {
    let rounds = gateway::deliver::http_sender::MAX_PRECONDITION_ROUNDS;
    let (p, failures, _, log) = after_sparse_a08("update = \"merge\"", 6 * rounds);
    assert_eq!(p["name"][0]["family"], "Øverby", "the A08 applied: {p}");
    assert_eq!(failures, (6 * rounds) as usize, "every change made one 412");
    assert!(log.contains("HTTP 412"), "the contention is logged");
    assert!(
        !log.contains("destination cloud is down"),
        "contention took the destination down:\n{log}"
    );
}

#[test]
fn merge_mode_keeps_what_a_sparse_a08_leaves_out_and_reads_again_on_412() {
    let (p, failures, reads, _) = after_sparse_a08("update = \"merge\"", 1);
    assert_eq!(
        p["address"][0]["city"], "Springfield",
        "kept from the A04: {p}"
    );
    assert!(p["telecom"].is_array(), "{p}");
    assert_eq!(p["name"][0]["family"], "Øverby");
    assert_eq!(
        failures, 1,
        "the concurrent change made one write fail with 412"
    );
    assert!(
        reads.iter().filter(|r| r.starts_with("Patient/")).count() >= 3,
        "A04, A08, and the A08 again after the 412: {reads:?}"
    );
}
