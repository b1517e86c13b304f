//! A loopback FHIR server for the `transform = "fhir"` tests: it applies
//! each transaction Bundle to an in-memory store, as a FHIR server would
//! (PUT by id or by conditional identifier URL replaces the resource;
//! POST with `ifNoneExist` creates only when absent), records the order in
//! which Bundles were applied, and can cut the answer of a first delivery
//! (applied, answer lost) or fail chosen Bundles with 500 a number of
//! times. Built on [`HttpPeer`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::http_peer::HttpPeer;

#[derive(Default)]
pub struct Store {
    /// "Type/id" or the conditional URL → the resource as last written.
    pub resources: BTreeMap<String, Value>,
    /// Each Bundle's entries as first delivered, by Bundle.identifier.
    pub first: BTreeMap<String, Value>,
    /// Redeliveries whose entries differ from the first delivery.
    pub redelivery_diffs: Vec<String>,
    /// Resources a redelivery created (a duplicate resource).
    pub created_on_redelivery: Vec<String>,
    pub bundles_seen: HashSet<String>,
    /// Bundle identifiers in the order they were first applied.
    pub applied_order: Vec<String>,
    pub applications: usize,
    /// Bundle identifier → how many more attempts get a 500.
    pub fail: HashMap<String, u32>,
    /// Cut the answer of every first delivery (the gateway must resend).
    pub cut_first_answer: bool,
}

impl Store {
    /// The resources of one type, by their store key.
    pub fn of_type(&self, rtype: &str) -> Vec<(&String, &Value)> {
        self.resources
            .iter()
            .filter(|(_, r)| r["resourceType"] == rtype)
            .collect()
    }
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
            store.applied_order.push(id.clone());
            false
        }
    };
    for e in bundle["entry"].as_array().ok_or("no entries")? {
        let method = e["request"]["method"].as_str().ok_or("no request.method")?;
        let url = e["request"]["url"].as_str().ok_or("no request.url")?;
        let resource = &e["resource"];
        let (key, create_only) = match method {
            "PUT" => (url.to_string(), false),
            "POST" => match e["request"]["ifNoneExist"].as_str() {
                Some(q) => (format!("{url}?{q}"), true),
                None => return Err("POST without ifNoneExist: not idempotent".into()),
            },
            m => return Err(format!("unexpected method {m}")),
        };
        if create_only && store.resources.contains_key(&key) {
            continue;
        }
        if redelivery && !store.resources.contains_key(&key) {
            store.created_on_redelivery.push(key.clone());
        }
        store.resources.insert(key, resource.clone());
    }
    Ok(())
}

/// The server and its store. With `cut_first_answer`, every Bundle is
/// applied on its first delivery but its answer is lost.
pub fn fhir_server(cut_first_answer: bool) -> (HttpPeer, Arc<Mutex<Store>>) {
    let peer = HttpPeer::start();
    let store = Arc::new(Mutex::new(Store {
        cut_first_answer,
        ..Default::default()
    }));
    let st = store.clone();
    peer.add_rule(Box::new(move |r| {
        let bundle: Value = match serde_json::from_slice(&r.body) {
            Ok(v) => v,
            Err(e) => return Some((400, format!("not JSON: {e}"))),
        };
        let mut s = st.lock().unwrap();
        let id = bundle["identifier"]["value"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if let Some(n) = s.fail.get_mut(&id).filter(|n| **n > 0) {
            *n -= 1;
            return Some((500, "scripted failure".into()));
        }
        if let Err(e) = apply(&mut s, &bundle) {
            return Some((400, e));
        }
        if s.bundles_seen.insert(id) && s.cut_first_answer {
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

/// A fhir destination `cloud` (tenant `clinic-7`, quick backoff) at `url`
/// with `extra` keys, and a route from the `ehr` listener to it.
pub fn routing(url: &str, extra: &str) -> String {
    format!(
        "[[destination]]\nname = \"cloud\"\nkind = \"fhir\"\nurl = \"{url}\"\ntenant = \"clinic-7\"\nbackoff_initial = \"20ms\"\nbackoff_max = \"100ms\"\n{extra}\n\n[[route]]\nname = \"clinical\"\nfrom = [\"ehr\"]\nto = [\"cloud\"]\ntransform = \"fhir\"\n"
    )
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fhir-map/tests/corpus")
}

/// The fhir-map crate's synthetic corpus (every family the transform maps).
pub fn corpus_messages() -> Vec<Vec<u8>> {
    test_support::paths::files_with_extension(&corpus_dir(), "hl7")
        .into_iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect()
}

/// One message of that corpus by file name.
pub fn corpus_message(name: &str) -> Vec<u8> {
    let path = corpus_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
