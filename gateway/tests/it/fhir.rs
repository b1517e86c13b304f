//! `transform = "fhir"` end to end: the real gateway maps HL7 v2 to FHIR
//! transaction Bundles and delivers them to a loopback FHIR server
//! (`support::fhir_server`), which applies each transaction to an
//! in-memory store (PUT by id or by conditional identifier URL, POST
//! `ifNoneExist` creates only when absent). Every first delivery has its answer cut
//! off after the server applied it, so every Bundle is delivered twice: the
//! second delivery must carry exactly the same entries (deterministic ids
//! and content, so a PUT changes nothing) and must create no resource.
//! Also: the example code maps in `config/codemaps` load.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use gateway::ops::clock::{iso8601, unix_ms};

use crate::support::fhir_server::{corpus_message, corpus_messages, fhir_server, routing};
use crate::support::http_peer::Mode;
use crate::support::{ack_code, send_one, Gateway, Options};

fn run(extra: &str) {
    let (peer, store) = fhir_server(true);
    let g = Gateway::start_with(Options {
        routing: Some(routing(&peer.url("/fhir"), extra)),
        ..Default::default()
    });
    let msgs = corpus_messages();
    assert!(msgs.len() >= 60);
    let mut accepted = 0;
    for m in &msgs {
        let ack = send_one(&g.addr(), m).unwrap();
        match ack_code(&ack).as_str() {
            "AA" | "CA" => accepted += 1,
            other => eprintln!("{other}: {}", String::from_utf8_lossy(&ack)),
        }
    }
    assert_eq!(accepted, msgs.len(), "the gateway refused corpus messages");
    g.wait_drained(Duration::from_secs(60));
    let s = g.status_json();
    let d = &s["destinations"][0];
    let dead = d["dead_letters"].as_u64().unwrap();
    let st = store.lock().unwrap();
    // Every mappable message: applied twice (first answer cut), no change the second time.
    assert!(
        st.redelivery_diffs.is_empty(),
        "a redelivered Bundle differs from its first delivery: {:?}",
        st.redelivery_diffs
    );
    assert!(
        st.created_on_redelivery.is_empty(),
        "a redelivery created resources: {:?}",
        st.created_on_redelivery
    );
    assert_eq!(
        st.bundles_seen.len() as u64 + dead,
        msgs.len() as u64,
        "every message is delivered or dead-lettered with a reason"
    );
    assert!(st.applications >= 2 * st.bundles_seen.len());
    if dead > 0 {
        let list: Value =
            serde_json::from_slice(&g.cli(&["dlq", "list", "--json"]).stdout).unwrap();
        for e in list.as_array().unwrap() {
            let why = e["last_error"].as_str().unwrap();
            assert!(why.starts_with("cannot map to FHIR"), "{why}");
        }
    }
    // One Patient per patient: ids are deterministic, never random.
    let patients = st
        .resources
        .keys()
        .filter(|k| k.starts_with("Patient"))
        .count();
    assert!(patients > 5, "{patients} patients");
    let log = g.log_text();
    assert!(!log.contains("Bundle"), "resource content reached the log");
    eprintln!(
        "{} bundles, {} resources, {} dead letters, {} applications",
        st.bundles_seen.len(),
        st.resources.len(),
        dead,
        st.applications
    );
}

#[test]
fn corpus_is_delivered_as_transactions_and_redelivery_changes_nothing() {
    run("");
}

#[test]
fn conditional_update_mode_is_idempotent_too() {
    run("update = \"conditional\"\nidentifier_systems = { CLINIC = \"http://clinic-7.example/mrn\" }\nutc_offset = \"-05:00\"");
}

#[test]
fn unmappable_message_is_dead_lettered_with_the_map_error() {
    let (peer, _store) = fhir_server(true);
    let g = Gateway::start_with(Options {
        routing: Some(routing(&peer.url("/fhir"), "")),
        ..Default::default()
    });
    // PID-3 empty: the mapper cannot identify the patient.
    let msg = b"MSH|^~\\&|ECW|CLINIC|GW|CLOUD|20240101||ADT^A04^ADT_A01|NOPID-1|P|2.5.1\rEVN|A04|20240101\rPID|1||||DOE^JANE\rPV1|1|O\r";
    assert_eq!(ack_code(&send_one(&g.addr(), msg).unwrap()), "AA");
    g.wait_drained(Duration::from_secs(60));
    let list: Value = serde_json::from_slice(&g.cli(&["dlq", "list", "--json"]).stdout).unwrap();
    let why = list[0]["last_error"].as_str().unwrap();
    assert!(
        why.contains("PID-3") && why.contains("cannot identify the patient"),
        "{why}"
    );
    assert_eq!(peer.count(), 0);
    assert!(!g.log_text().contains("DOE"));
}

#[test]
fn the_example_code_map_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/codemaps");
    let maps = gateway::deliver::fhir_context::load_code_maps(&dir).unwrap();
    assert!(maps.len() >= 3);
}

/// Sends one own-corpus message while the FHIR server is down for a few
/// seconds, then lets it come up; returns the store and the times (as the
/// gateway writes them) just before the send and just after its ACK.
fn deliver_late(name: &str, extra: &str) -> (Vec<Value>, String, String) {
    let (peer, store) = fhir_server(false);
    peer.set_mode(Mode::Refuse);
    let g = Gateway::start_with(Options {
        routing: Some(routing(&peer.url("/fhir"), extra)),
        ..Default::default()
    });
    let msg = corpus_message(name);
    let before = iso8601(unix_ms());
    let ack = ack_code(&send_one(&g.addr(), &msg).unwrap());
    assert!(ack == "AA" || ack == "CA", "{ack}");
    let after = iso8601(unix_ms() + 999);
    // Delivered seconds after it was received.
    std::thread::sleep(Duration::from_millis(2500));
    peer.set_mode(Mode::Up);
    g.wait_drained(Duration::from_secs(60));
    let st = store.lock().unwrap();
    assert_eq!(st.bundles_seen.len(), 1);
    let provenances = st
        .of_type("Provenance")
        .into_iter()
        .map(|(_, r)| r.clone())
        .collect();
    (provenances, before, after)
}

#[test]
fn provenance_records_the_journal_time_and_id_not_the_delivery_time() {
    let (provenances, before, after) = deliver_late("oru_r01_lipid_1.hl7", "");
    assert_eq!(provenances.len(), 1, "one Provenance per Bundle");
    let p = &provenances[0];
    let recorded = p["recorded"].as_str().unwrap();
    // The journal's received time (MSH-7 is 2024; the delivery came > 2 s later).
    assert!(
        before.as_str() <= recorded && recorded <= after.as_str(),
        "recorded {recorded} is not the received time ({before} .. {after})"
    );
    let ids: Vec<(&str, &str)> = p["entity"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let id = &e["what"]["identifier"];
            (
                id["system"].as_str().unwrap(),
                id["value"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        ids.iter()
            .any(|(s, v)| s.ends_with(":journal-id") && v.parse::<u64>().is_ok()),
        "no journal id entity: {ids:?}"
    );
    assert!(
        ids.iter()
            .any(|(s, v)| s.ends_with(":message-control-id") && !v.is_empty()),
        "no MSH-10 entity: {ids:?}"
    );
    assert!(p["target"].as_array().unwrap().len() > 3);
}

#[test]
fn provenance_false_leaves_it_out() {
    let (provenances, _, _) = deliver_late("oru_r01_lipid_1.hl7", "provenance = false");
    assert!(provenances.is_empty(), "{provenances:?}");
}

#[test]
fn gateway_translate_writes_decimals_as_received() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fhir-map/tests/corpus");
    let out = test_support::run::succeeds(
        std::process::Command::new(crate::support::BIN)
            .arg("translate")
            .arg(dir.join("oru_r01_decimals.hl7")),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("\"value\": 5.50\n"), "{text}");
    assert!(text.contains("\"value\": 1234567890.123456789\n"), "{text}");
    let bundle: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(bundle["resourceType"], "Bundle");
}
