//! `transform = "fhir"` end to end: the real gateway maps HL7 v2 to FHIR
//! transaction Bundles and delivers them to a loopback FHIR server written
//! here, which applies each transaction to an in-memory store (PUT by id or
//! by conditional identifier URL). Every first delivery has its answer cut
//! off after the server applied it, so every Bundle is delivered twice: the
//! second delivery must carry exactly the same entries (deterministic ids
//! and content, so a PUT changes nothing) and must create no resource.
//! Also: the example code maps in `config/codemaps` load.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::support::http_peer::HttpPeer;
use crate::support::{ack_code, send_one, Gateway, Options};

#[derive(Default)]
struct Store {
    /// "Type/id" or the conditional URL → the resource as last written.
    resources: BTreeMap<String, Value>,
    /// Each Bundle's entries as first delivered, by Bundle.identifier.
    first: BTreeMap<String, Value>,
    /// Redeliveries whose entries differ from the first delivery.
    redelivery_diffs: Vec<String>,
    /// Resources a redelivery created (a duplicate resource).
    created_on_redelivery: Vec<String>,
    bundles_seen: HashSet<String>,
    applications: usize,
}

fn apply(store: &mut Store, bundle: &Value) -> Result<(), String> {
    if bundle["resourceType"] != "Bundle" || bundle["type"] != "transaction" {
        return Err("not a transaction Bundle".into());
    }
    store.applications += 1;
    let id = bundle["identifier"]["value"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let redelivery = match store.first.get(&id) {
        Some(first) => {
            if first != &bundle["entry"] {
                store.redelivery_diffs.push(id.clone());
            }
            true
        }
        None => {
            store.first.insert(id.clone(), bundle["entry"].clone());
            false
        }
    };
    for e in bundle["entry"].as_array().ok_or("no entries")? {
        let method = e["request"]["method"].as_str().ok_or("no request.method")?;
        let url = e["request"]["url"].as_str().ok_or("no request.url")?;
        let resource = &e["resource"];
        let key = match method {
            "PUT" => url.to_string(),
            "POST" => format!(
                "{url}?{}",
                e["request"]["ifNoneExist"].as_str().unwrap_or("")
            ),
            m => return Err(format!("unexpected method {m}")),
        };
        if redelivery && !store.resources.contains_key(&key) {
            store.created_on_redelivery.push(key.clone());
        }
        store.resources.insert(key, resource.clone());
    }
    Ok(())
}

fn fhir_server() -> (HttpPeer, Arc<Mutex<Store>>) {
    let peer = HttpPeer::start();
    let store = Arc::new(Mutex::new(Store::default()));
    let st = store.clone();
    peer.add_rule(Box::new(move |r| {
        let bundle: Value = match serde_json::from_slice(&r.body) {
            Ok(v) => v,
            Err(e) => return Some((400, format!("not JSON: {e}"))),
        };
        let mut s = st.lock().unwrap();
        if let Err(e) = apply(&mut s, &bundle) {
            return Some((400, e));
        }
        let id = bundle["identifier"]["value"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if s.bundles_seen.insert(id) {
            // Applied, but the answer is lost: the gateway must send it again.
            return Some((0, String::new()));
        }
        Some((
            200,
            r#"{"resourceType":"Bundle","type":"transaction-response"}"#.into(),
        ))
    }));
    (peer, store)
}

fn routing(url: &str, extra: &str) -> String {
    format!(
        "[[destination]]\nname = \"cloud\"\nkind = \"fhir\"\nurl = \"{url}\"\ntenant = \"clinic-7\"\nbackoff_initial = \"20ms\"\nbackoff_max = \"100ms\"\n{extra}\n\n[[route]]\nname = \"clinical\"\nfrom = [\"ehr\"]\nto = [\"cloud\"]\ntransform = \"fhir\"\n"
    )
}

/// The fhir-map crate's synthetic corpus (every family the transform maps).
fn corpus_messages() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fhir-map/tests/corpus");
    test_support::paths::files_with_extension(&dir, "hl7")
        .into_iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect()
}

fn run(extra: &str) {
    let (peer, store) = fhir_server();
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
    let (peer, _store) = fhir_server();
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
