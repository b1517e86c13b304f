//! The transaction Bundle: entries with deterministic ids, one entry per
//! resource (a Practitioner named in three segments is one entry), the
//! request of each entry per [`UpdateMode`], and the final clean-up that
//! drops empty values (FHIR forbids `""`, `[]` and `{}`).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use super::json::{json, Map, Value};

use super::ids::{resource_id, uuid_urn};
use super::provenance::{provenance, ProvenanceSource};
use super::systems::{urn_segment, GATEWAY_URN};
use super::UpdateMode;

/// A resource's type and deterministic id, known before the resource is
/// built (so that others can reference it first).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rid {
    pub rtype: &'static str,
    pub id: String,
}

/// How the server should treat an entry in conditional mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Create or replace (`PUT Type/id`, or `PUT Type?identifier=...`).
    Upsert,
    /// Create only if absent (`PUT Type/id`, or `POST` with `ifNoneExist`):
    /// shared reference data (practitioners, organizations, locations) that
    /// the server may know better than this one message.
    CreateOnly,
}

struct Entry {
    rid: Rid,
    resource: Map,
    /// (system, value) used for conditional requests.
    match_identifier: Option<(String, String)>,
    write: Write,
}

pub struct BundleBuilder<'c> {
    tenant: &'c str,
    mode: UpdateMode,
    entries: Vec<Entry>,
    /// Resource → index in `entries` (looked up by `&Rid`: no key copies).
    index: HashMap<Rid, usize, RidHash>,
    /// Ids handed out by [`BundleBuilder::new_rid`] (unique per message).
    reserved: HashSet<Rid, RidHash>,
}

/// Hashes a [`Rid`] for the maps above. Its id is already the hex of a
/// SHA-256, so a word-at-a-time mix is as good a spread as SipHash, at a
/// fraction of the instructions (these maps are probed for every
/// reference). Not exposed to untrusted keys: the ids are ours.
type RidHash = BuildHasherDefault<WordHasher>;

#[derive(Default)]
struct WordHasher(u64);

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        // FxHash's step, 8 bytes at a time.
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl<'c> BundleBuilder<'c> {
    pub fn new(tenant: &'c str, mode: UpdateMode) -> BundleBuilder<'c> {
        BundleBuilder {
            tenant,
            mode,
            entries: Vec::with_capacity(16),
            index: HashMap::with_capacity_and_hasher(16, RidHash::default()),
            reserved: HashSet::with_capacity_and_hasher(16, RidHash::default()),
        }
    }

    /// The id of a shared resource (Patient, Practitioner, Location ...):
    /// the same key gives the same id, and inserting it twice keeps one.
    pub fn shared_rid(&self, rtype: &'static str, key: &[&str]) -> Rid {
        Rid {
            rtype,
            id: resource_id(self.tenant, rtype, key),
        }
    }

    /// The id of a resource that must be distinct within this message (an
    /// Observation per OBX): when two segments carry the same business key
    /// (two OBX with the same code and no sub-id), the later ones get the
    /// occurrence number added to the key: still deterministic on replay.
    pub fn new_rid(&mut self, rtype: &'static str, key: &[&str]) -> Rid {
        let mut rid = self.shared_rid(rtype, key);
        let mut occurrence = 1usize;
        while self.reserved.contains(&rid) {
            occurrence += 1;
            let n = occurrence.to_string();
            let mut parts: Vec<&str> = key.to_vec();
            parts.push("#");
            parts.push(&n);
            rid = self.shared_rid(rtype, &parts);
        }
        self.reserved.insert(rid.clone());
        rid
    }

    /// A Reference to `rid` as this bundle writes it: `Type/id` when ids
    /// are ours (PUT mode), the entry's `urn:uuid:` fullUrl when the server
    /// picks ids (conditional mode) — the server rewrites those on commit.
    pub fn reference(&self, rid: &Rid) -> Value {
        json!({ "reference": self.reference_string(rid) })
    }

    pub fn reference_string(&self, rid: &Rid) -> String {
        match self.mode {
            UpdateMode::Put => type_slash_id(rid),
            UpdateMode::Conditional => uuid_urn(&rid.id),
        }
    }

    pub fn contains(&self, rid: &Rid) -> bool {
        self.index.contains_key(rid)
    }

    /// Adds a resource; a second resource with the same id is merged into
    /// the first (fields the first lacks are taken from the second), so a
    /// practitioner named with more detail in a later segment loses nothing.
    pub fn insert(
        &mut self,
        rid: Rid,
        mut resource: Map,
        match_identifier: Option<(String, String)>,
        write: Write,
    ) {
        if let Some(entry) = self.index.get(&rid).and_then(|&i| self.entries.get_mut(i)) {
            for (k, v) in resource {
                let absent = entry.resource.get(k).is_none_or(is_empty_value);
                if absent {
                    entry.resource.insert(k, v);
                }
            }
            if entry.match_identifier.is_none() {
                entry.match_identifier = match_identifier;
            }
            return;
        }
        resource.insert("resourceType", Value::from(rid.rtype));
        self.index.insert(rid.clone(), self.entries.len());
        self.entries.push(Entry {
            rid,
            resource,
            match_identifier,
            write,
        });
    }

    /// The resource already added under `rid`, for late additions (a note,
    /// a result reference).
    pub fn resource_mut(&mut self, rid: &Rid) -> Option<&mut Map> {
        let i = *self.index.get(rid)?;
        self.entries.get_mut(i).map(|e| &mut e.resource)
    }

    /// The request urls (PUT mode: `Type/id`) of the create-only entries:
    /// what a destination must write only if absent.
    pub fn create_only_urls(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| e.write == Write::CreateOnly)
            .map(|e| type_slash_id(&e.rid))
            .collect()
    }

    /// Adds the Bundle's Provenance, naming every entry so far as a target.
    pub fn add_provenance(&mut self, key: &[&str], source: ProvenanceSource) {
        let targets: Vec<Value> = self
            .entries
            .iter()
            .map(|e| self.reference(&e.rid))
            .collect();
        if targets.is_empty() {
            return;
        }
        let rid = self.shared_rid("Provenance", key);
        let resource = provenance(self.tenant, source, targets);
        self.insert(rid, resource, None, Write::Upsert);
    }

    /// The transaction Bundle. `control_id` is MSH-10; `timestamp` an
    /// `instant` (MSH-7 when it has full precision and an offset).
    pub fn finish(self, control_id: &str, timestamp: Option<String>) -> Value {
        self.finish_pruning(control_id, timestamp, Pruning::InTree)
    }

    /// [`BundleBuilder::finish`], the empty values of each resource dropped
    /// now or (`Pruning::WhenWritten`) left for the writer to skip.
    pub fn finish_pruning(
        self,
        control_id: &str,
        timestamp: Option<String>,
        pruning: Pruning,
    ) -> Value {
        let tenant = urn_segment(self.tenant);
        let gateway_id_system = format!("{GATEWAY_URN}:{tenant}:resource-id");
        let mut entries = Vec::with_capacity(self.entries.len());
        for Entry {
            rid,
            mut resource,
            match_identifier,
            write,
        } in self.entries
        {
            let full_url = uuid_urn(&rid.id);
            let request = match self.mode {
                UpdateMode::Put => {
                    resource.insert("id", Value::from(&rid.id));
                    json!({ "method": "PUT", "url": type_slash_id(&rid) })
                }
                UpdateMode::Conditional => {
                    let (param, system, value) = match match_identifier {
                        Some((system, value)) => ("identifier", system, value),
                        // No `identifier` element (Provenance): matched by a tag.
                        None if rid.rtype == "Provenance" => {
                            let tag = json!({ "system": gateway_id_system.clone(), "code": rid.id.clone() });
                            resource.insert("meta", json!({ "tag": [tag] }));
                            ("_tag", gateway_id_system.clone(), rid.id.clone())
                        }
                        None => {
                            // No business identifier: carry our id as one so
                            // the server can match it on the next replay.
                            push_identifier(&mut resource, &gateway_id_system, &rid.id);
                            ("identifier", gateway_id_system.clone(), rid.id.clone())
                        }
                    };
                    let search = format!(
                        "{param}={}|{}",
                        percent_encode(&system),
                        percent_encode(&value)
                    );
                    match write {
                        Write::Upsert => json!({
                            "method": "PUT",
                            "url": format!("{}?{}", rid.rtype, search)
                        }),
                        Write::CreateOnly => json!({
                            "method": "POST",
                            "url": rid.rtype,
                            "ifNoneExist": search
                        }),
                    }
                }
            };
            let mut resource = Value::Object(resource);
            // The Provenance is built without empty values.
            if rid.rtype != "Provenance" {
                match pruning {
                    Pruning::InTree => prune(&mut resource),
                    Pruning::WhenWritten => {}
                }
            }
            // Built by hand: `json!` would deep-copy the resource.
            let mut entry = Map::new();
            entry.insert("fullUrl", Value::from(full_url));
            entry.insert("resource", resource);
            entry.insert("request", request);
            entries.push(Value::Object(entry));
        }
        let mut bundle = Map::new();
        bundle.insert("resourceType", Value::from("Bundle"));
        bundle.insert("type", Value::from("transaction"));
        if !control_id.trim().is_empty() {
            bundle.insert(
                "identifier",
                json!({
                    "system": format!("{GATEWAY_URN}:{tenant}:message-control-id"),
                    "value": control_id.to_string(),
                }),
            );
        }
        if let Some(t) = timestamp {
            bundle.insert("timestamp", Value::from(t));
        }
        if !entries.is_empty() {
            bundle.insert("entry", Value::Array(entries));
        }
        Value::Object(bundle)
    }
}

/// Where a resource's empty values are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pruning {
    /// In the tree ([`prune`]): for [`super::translate`] and pretty output.
    InTree,
    /// By the byte writer as it goes ([`super::json_write::write_bundle`]):
    /// no second pass over the tree, no shifting of retained members.
    WhenWritten,
}

/// `Type/id`, allocated once (this runs for every reference).
fn type_slash_id(rid: &Rid) -> String {
    let mut s = String::with_capacity(rid.rtype.len() + 1 + rid.id.len());
    s.push_str(rid.rtype);
    s.push('/');
    s.push_str(&rid.id);
    s
}

fn push_identifier(resource: &mut Map, system: &str, value: &str) {
    let identifier = json!({ "system": system.to_string(), "value": value.to_string() });
    match resource.get_mut("identifier") {
        Some(Value::Array(list)) => list.push(identifier),
        _ => {
            resource.insert("identifier", Value::Array(vec![identifier]));
        }
    }
}

/// Percent-encodes what may not appear raw in a search parameter value.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 0xF)]));
        }
    }
    out
}

pub fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        // Most strings start with a visible character: no scan.
        Value::String(s) => match s.as_bytes().first() {
            None => true,
            Some(b) if b.is_ascii_graphic() => false,
            Some(_) => s.trim().is_empty(),
        },
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Removes nulls, blank strings, empty arrays and empty objects, depth
/// first (an object that only had empty members goes too).
pub fn prune(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for child in map.values_mut() {
                prune(child);
            }
            map.retain(|_, child| !is_empty_value(child));
        }
        Value::Array(list) => {
            for child in list.iter_mut() {
                prune(child);
            }
            list.retain(|child| !is_empty_value(child));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedupes_and_merges() {
        let mut b = BundleBuilder::new("t", UpdateMode::Put);
        let rid = b.shared_rid("Practitioner", &["NPI", "1"]);
        let mut first = Map::new();
        first.insert("name", json!([{"family": "Smith"}]));
        b.insert(rid.clone(), first, None, Write::CreateOnly);
        let mut second = Map::new();
        second.insert("name", json!([{"family": "Other"}]));
        second.insert("gender", json!("female"));
        b.insert(rid.clone(), second, None, Write::CreateOnly);
        let bundle = b.finish("42", None);
        let entries = bundle["entry"].as_array().unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0]["resource"]["name"][0]["family"], "Smith");
        assert_eq!(entries[0]["resource"]["gender"], "female");
        assert_eq!(entries[0]["request"]["method"], "PUT");
        assert_eq!(
            entries[0]["request"]["url"],
            format!("Practitioner/{}", rid.id)
        );
        assert_eq!(bundle["identifier"]["value"], "42");
    }

    #[test]
    fn unique_ids_per_message() {
        let mut b = BundleBuilder::new("t", UpdateMode::Put);
        let a = b.new_rid("Observation", &["x"]);
        let c = b.new_rid("Observation", &["x"]);
        assert_ne!(a, c);
        let mut b2 = BundleBuilder::new("t", UpdateMode::Put);
        assert_eq!(b2.new_rid("Observation", &["x"]), a);
        assert_eq!(b2.new_rid("Observation", &["x"]), c);
    }

    #[test]
    fn conditional_requests() {
        let mut b = BundleBuilder::new("t", UpdateMode::Conditional);
        let p = b.shared_rid("Patient", &["A", "1"]);
        b.insert(
            p.clone(),
            Map::new(),
            Some(("urn:oid:1.2".into(), "1 2".into())),
            Write::Upsert,
        );
        let o = b.shared_rid("Organization", &["x"]);
        b.insert(o, Map::new(), None, Write::CreateOnly);
        assert!(b.reference_string(&p).starts_with("urn:uuid:"));
        let bundle = b.finish("1", None);
        let e = bundle["entry"].as_array().unwrap();
        assert_eq!(
            e[0]["request"]["url"],
            "Patient?identifier=urn:oid:1.2|1%202"
        );
        assert!(e[0]["resource"].get("id").is_none());
        assert_eq!(e[1]["request"]["method"], "POST");
        assert!(e[1]["request"]["ifNoneExist"]
            .as_str()
            .unwrap()
            .starts_with("identifier=urn:clinic-gateway:t:resource-id|"));
    }

    #[test]
    fn prunes_empties() {
        let mut v = json!({"a": "", "b": [{}, {"c": null}], "d": {"e": []}, "f": 0, "g": " x"});
        prune(&mut v);
        assert_eq!(v, json!({"f": 0, "g": " x"}));
    }
}
