//! A loopback FHIR server for the `transform = "fhir"` tests: it applies
//! each transaction Bundle to an in-memory store, as a FHIR server would
//! (PUT by id or by conditional identifier URL replaces the resource;
//! POST with `ifNoneExist` creates only when absent), versions every
//! resource (`meta.versionId`, starting at 1), answers reads
//! (`GET /fhir/Type/id`) and RESTful writes (`PUT`, `DELETE` on
//! `/fhir/Type/id`: a bulk export's resources), and fails a whole transaction with 412 when an
//! entry's `ifMatch` is not the current version. It records the order in
//! which Bundles were applied, and can cut the answer of a first delivery
//! (applied, answer lost), fail chosen Bundles with 500 a number of times,
//! or change a resource right after it was read (a concurrent writer).
//! Built on [`HttpPeer`].

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
    /// Store key → its current version.
    pub versions: HashMap<String, u64>,
    /// Reads served (`Type/id`), in order.
    pub reads: Vec<String>,
    /// Transactions refused with 412.
    pub precondition_failures: usize,
    /// `PUT /fhir/Type/id` and `DELETE /fhir/Type/id` served, in order.
    pub puts: Vec<String>,
    pub deletes: Vec<String>,
    /// A key whose version a concurrent writer bumps right after the next
    /// read of it (once, then `change_after_read_more` more times).
    pub change_after_read: Option<String>,
    pub change_after_read_more: u32,
    /// Answer every `PUT /fhir/Type/id` 503 (the destination is down).
    pub refuse_puts: bool,
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

/// Why a transaction was refused: the status and the diagnostics.
type Refusal = (u16, String);

/// Every `ifMatch` of the Bundle names the current version of its entry.
fn preconditions_hold(store: &Store, bundle: &Value) -> bool {
    bundle["entry"].as_array().into_iter().flatten().all(|e| {
        match e["request"]["ifMatch"].as_str() {
            None => true,
            Some(tag) => {
                let url = e["request"]["url"].as_str().unwrap_or("");
                let current = store.versions.get(url).copied().unwrap_or(0);
                tag == format!("W/\"{current}\"")
            }
        }
    })
}

fn apply(store: &mut Store, bundle: &Value) -> Result<(), Refusal> {
    if bundle["resourceType"] != "Bundle" || bundle["type"] != "transaction" {
        return Err((400, "not a transaction Bundle".into()));
    }
    if !preconditions_hold(store, bundle) {
        store.precondition_failures += 1;
        return Err((412, "version conflict".into()));
    }
    store.applications += 1;
    let id = bundle["identifier"]["value"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let redelivery = match store.first.get(&id) {
        Some(first) => {
            let noop = written_back(store, &bundle["entry"]);
            if comparable(first, &noop) != comparable(&bundle["entry"], &noop) {
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
    let bad = |why: &str| (400, why.to_string());
    for e in bundle["entry"].as_array().ok_or(bad("no entries"))? {
        let method = e["request"]["method"]
            .as_str()
            .ok_or(bad("no request.method"))?;
        let url = e["request"]["url"].as_str().ok_or(bad("no request.url"))?;
        let (key, create_only) = match method {
            "PUT" => (url.to_string(), false),
            "POST" => match e["request"]["ifNoneExist"].as_str() {
                Some(q) => (format!("{url}?{q}"), true),
                None => return Err(bad("POST without ifNoneExist: not idempotent")),
            },
            m => return Err(bad(&format!("unexpected method {m}"))),
        };
        if create_only && store.resources.contains_key(&key) {
            continue;
        }
        if redelivery && !store.resources.contains_key(&key) {
            store.created_on_redelivery.push(key.clone());
        }
        let version = store.versions.entry(key.clone()).or_insert(0);
        *version += 1;
        let mut resource = e["resource"].clone();
        resource["meta"]["versionId"] = Value::String(version.to_string());
        store.resources.insert(key, resource);
    }
    Ok(())
}

fn without_meta(r: &Value) -> Value {
    let mut r = r.clone();
    if let Some(o) = r.as_object_mut() {
        o.remove("meta");
    }
    r
}

/// The urls of entries that write back, with `ifMatch`, what the store
/// already has (the gateway's read-before-write of a create-only entry or
/// of an already merged Patient): no change, so a redelivery may differ
/// from the first delivery there.
fn written_back(store: &Store, entries: &Value) -> HashSet<String> {
    entries
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["request"].get("ifMatch").is_some())
        .filter_map(|e| {
            let url = e["request"]["url"].as_str()?;
            let stored = store.resources.get(url)?;
            (without_meta(stored) == without_meta(&e["resource"])).then(|| url.to_string())
        })
        .collect()
}

/// The entries that must be the same on every delivery.
fn comparable(entries: &Value, skip: &HashSet<String>) -> Vec<Value> {
    entries
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            !e["request"]["url"]
                .as_str()
                .is_some_and(|u| skip.contains(u))
        })
        .cloned()
        .collect()
}

/// `GET /fhir/Type/id`.
fn read(store: &mut Store, key: &str) -> (u16, String) {
    store.reads.push(key.to_string());
    let answer = match store.resources.get(key) {
        Some(r) => (200, r.to_string()),
        None => (404, r#"{"resourceType":"OperationOutcome"}"#.into()),
    };
    if store.change_after_read.as_deref() == Some(key) {
        if store.change_after_read_more > 0 {
            store.change_after_read_more -= 1;
        } else {
            store.change_after_read = None;
        }
        let version = store.versions.entry(key.to_string()).or_insert(0);
        *version += 1;
        let v = Value::String(version.to_string());
        if let Some(r) = store.resources.get_mut(key) {
            r["meta"]["versionId"] = v;
        }
    }
    answer
}

/// `PUT /fhir/Type/id` (a bulk export's resource): create or replace,
/// as a FHIR server's update; the body's type and id must match the URL.
fn put(store: &mut Store, key: &str, body: &[u8]) -> (u16, String) {
    let resource: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return (400, format!("not JSON: {e}")),
    };
    let url_of = format!(
        "{}/{}",
        resource["resourceType"].as_str().unwrap_or(""),
        resource["id"].as_str().unwrap_or("")
    );
    if url_of != key {
        return (400, format!("the body is {url_of}, the URL {key}"));
    }
    store.puts.push(key.to_string());
    let created = !store.resources.contains_key(key);
    let version = store.versions.entry(key.to_string()).or_insert(0);
    *version += 1;
    let mut resource = resource;
    resource["meta"]["versionId"] = Value::String(version.to_string());
    store.resources.insert(key.to_string(), resource.clone());
    (if created { 201 } else { 200 }, resource.to_string())
}

/// `DELETE /fhir/Type/id`: gone (a second DELETE is a 404, as on HAPI).
fn delete(store: &mut Store, key: &str) -> (u16, String) {
    store.deletes.push(key.to_string());
    match store.resources.remove(key) {
        Some(_) => (200, r#"{"resourceType":"OperationOutcome"}"#.into()),
        None => (404, r#"{"resourceType":"OperationOutcome"}"#.into()),
    }
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
        if let Some(key) = r.path.strip_prefix("/fhir/") {
            let mut s = st.lock().unwrap();
            return Some(match r.method.as_str() {
                "PUT" if s.refuse_puts => (503, "scripted outage".into()),
                "PUT" => put(&mut s, key, &r.body),
                "DELETE" => delete(&mut s, key),
                _ => read(&mut s, key),
            });
        }
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
        if let Err(refusal) = apply(&mut s, &bundle) {
            return Some(refusal);
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
