//! Read before write, for a `fhir` destination in PUT mode. Pure: what to
//! read, and the Bundle rewritten with what was read; the reads themselves
//! are `http_sender`'s.
//!
//! - **Create-only entries** (`fhir_map::Translation::create_only`: the
//!   Patient of a non-ADT message, shared reference data): R4 has no
//!   create-if-absent for a client-chosen id, so each is read first. If the
//!   server has it, the entry writes the server's own copy back with
//!   `If-Match` on its version (no change; a merged-away Patient stays
//!   `active` = false with its `link`); if not, the entry creates it.
//! - **`update = "merge"`**: every `PUT Patient/<id>` is read first and
//!   written as [`merge_patient`] of the server's copy and the message's,
//!   with `If-Match`. A version that changed in between fails the
//!   transaction with 412; the sender reads again (bounded).
//!
//! Entries are rewritten one by one as raw JSON: the rest of the Bundle
//! (exact decimals included) is sent byte for byte as mapped.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

#[derive(Deserialize)]
struct Request {
    method: String,
    url: String,
}

#[derive(Deserialize)]
struct EntryHead {
    request: Request,
}

/// How an entry's write depends on what the server has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    CreateOnly,
    Merge,
}

fn rule(e: &EntryHead, create_only: &[String], merge: bool) -> Option<Rule> {
    if e.request.method != "PUT" {
        return None;
    }
    if create_only.contains(&e.request.url) {
        Some(Rule::CreateOnly)
    } else if merge && e.request.url.starts_with("Patient/") {
        Some(Rule::Merge)
    } else {
        None
    }
}

/// A Bundle's top-level members, each as raw JSON.
type Members = BTreeMap<String, Box<RawValue>>;

fn entries(bundle: &[u8]) -> Result<(Members, Vec<Box<RawValue>>), String> {
    let top: Members = serde_json::from_slice(bundle).map_err(|e| format!("the Bundle: {e}"))?;
    let list = match top.get("entry") {
        Some(raw) => serde_json::from_str(raw.get()).map_err(|e| format!("Bundle.entry: {e}"))?,
        None => Vec::new(),
    };
    Ok((top, list))
}

fn head(entry: &RawValue) -> Result<EntryHead, String> {
    serde_json::from_str(entry.get()).map_err(|e| format!("Bundle.entry.request: {e}"))
}

/// The `Type/id` of each entry to read before `bundle` is sent.
pub fn to_read(bundle: &[u8], create_only: &[String], merge: bool) -> Result<Vec<String>, String> {
    if create_only.is_empty() && !merge {
        return Ok(Vec::new());
    }
    let (_, list) = entries(bundle)?;
    let mut urls = Vec::new();
    for e in &list {
        let h = head(e)?;
        if rule(&h, create_only, merge).is_some() {
            urls.push(h.request.url);
        }
    }
    Ok(urls)
}

/// `bundle` with each read entry rewritten from `found` (`Type/id` → the
/// server's resource; absent: the server has none, the entry creates it).
pub fn rewrite(
    bundle: &[u8],
    create_only: &[String],
    merge: bool,
    found: &HashMap<String, Value>,
) -> Result<Vec<u8>, String> {
    let (mut top, list) = entries(bundle)?;
    let mut out = Vec::with_capacity(list.len());
    for raw in list {
        let h = head(&raw)?;
        let (Some(rule), Some(server)) = (rule(&h, create_only, merge), found.get(&h.request.url))
        else {
            out.push(raw);
            continue;
        };
        let mut entry: Value =
            serde_json::from_str(raw.get()).map_err(|e| format!("Bundle.entry: {e}"))?;
        let written = match rule {
            Rule::CreateOnly => server.clone(),
            Rule::Merge => merge_patient(server, &entry["resource"]),
        };
        entry["resource"] = written;
        if let Some(v) = server["meta"]["versionId"].as_str() {
            entry["request"]["ifMatch"] = Value::String(format!("W/\"{v}\""));
        }
        out.push(serde_json::value::to_raw_value(&entry).map_err(|e| e.to_string())?);
    }
    top.insert(
        "entry".into(),
        serde_json::value::to_raw_value(&out).map_err(|e| e.to_string())?,
    );
    serde_json::to_vec(&top).map_err(|e| e.to_string())
}

/// The Patient to write in merge mode: the server's, with every top-level
/// element the message carries replaced by the message's (a list such as
/// `address` or `telecom` is replaced whole), the message's `meta`, and
/// the server's merge state kept ([`fhir_map::merge::preserve_merge_state`]:
/// links, a replaced Patient stays inactive). An element the message
/// leaves out is kept: an A08 cannot clear it.
pub fn merge_patient(server: &Value, incoming: &Value) -> Value {
    let mut out = match server {
        Value::Object(s) => s.clone(),
        _ => return incoming.clone(),
    };
    out.remove("meta");
    out.remove("text");
    if let Value::Object(inc) = incoming {
        for (k, v) in inc {
            out.insert(k.clone(), v.clone());
        }
    }
    fhir_map::merge::preserve_merge_state(server, &Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BUNDLE: &str = r#"{"entry":[{"fullUrl":"urn:uuid:1","request":{"method":"PUT","url":"Patient/p1"},"resource":{"active":true,"id":"p1","name":[{"family":"New"}],"resourceType":"Patient"}},{"fullUrl":"urn:uuid:2","request":{"method":"PUT","url":"Observation/o1"},"resource":{"id":"o1","resourceType":"Observation","valueQuantity":{"value":5.50}}}],"resourceType":"Bundle","type":"transaction"}"#;

    #[test]
    fn only_the_entries_that_depend_on_the_server_are_read() {
        let b = BUNDLE.as_bytes();
        assert!(to_read(b, &[], false).unwrap().is_empty());
        assert_eq!(to_read(b, &[], true).unwrap(), ["Patient/p1"]);
        assert_eq!(
            to_read(b, &["Observation/o1".into()], false).unwrap(),
            ["Observation/o1"]
        );
    }

    #[test]
    fn merge_keeps_what_the_message_leaves_out_and_the_merge_state() {
        let server = json!({"resourceType":"Patient","id":"p1","active":false,
            "meta":{"versionId":"3"},"address":[{"city":"Springfield"}],"name":[{"family":"Old"}],
            "link":[{"type":"replaced-by","other":{"reference":"Patient/p2"}}]});
        let found = HashMap::from([("Patient/p1".to_string(), server)]);
        let out = rewrite(BUNDLE.as_bytes(), &[], true, &found).unwrap();
        let text = String::from_utf8(out).unwrap();
        // The Observation's decimal is untouched, byte for byte.
        assert!(text.contains(r#""value":5.50"#), "{text}");
        let b: Value = serde_json::from_str(&text).unwrap();
        let e = &b["entry"][0];
        assert_eq!(e["request"]["ifMatch"], "W/\"3\"");
        let p = &e["resource"];
        assert_eq!(p["name"][0]["family"], "New", "the message's name wins");
        assert_eq!(p["address"][0]["city"], "Springfield", "kept");
        assert_eq!(p["active"], false, "a replaced Patient stays inactive");
        assert_eq!(p["link"][0]["type"], "replaced-by");
        assert!(p.get("meta").is_none());
        // Nothing found: the entry is sent as mapped.
        let same = rewrite(BUNDLE.as_bytes(), &[], true, &HashMap::new()).unwrap();
        let a: Value = serde_json::from_slice(&same).unwrap();
        assert_eq!(a, serde_json::from_str::<Value>(BUNDLE).unwrap());
    }

    #[test]
    fn a_create_only_entry_the_server_has_writes_its_copy_back() {
        let server = json!({"resourceType":"Observation","id":"o1","meta":{"versionId":"7"},"status":"final"});
        let found = HashMap::from([("Observation/o1".to_string(), server.clone())]);
        let out = rewrite(BUNDLE.as_bytes(), &["Observation/o1".into()], false, &found).unwrap();
        let b: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(b["entry"][1]["resource"], server);
        assert_eq!(b["entry"][1]["request"]["ifMatch"], "W/\"7\"");
        assert_eq!(b["entry"][0]["resource"]["name"][0]["family"], "New");
    }
}
