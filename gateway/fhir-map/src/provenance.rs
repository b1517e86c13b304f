//! One Provenance per Bundle, so that a receiving system can answer
//! "where did this Observation come from?":
//!
//! | element | value |
//! | --- | --- |
//! | `target` | every resource the Bundle writes |
//! | `recorded` | the journal's received time ([`super::TranslateOptions::received`]), else MSH-7 when it is an `instant` |
//! | `activity` | the HL7 v2 event (MSH-9.2, table 0003) |
//! | `agent[0]` | `author`: the sending application MSH-3 on behalf of the facility MSH-4 (as sent, in `display`) |
//! | `agent[1]` | `assembler`: the gateway |
//! | `entity` | `source`: the message (MSH-10 control id) and, when known, its journal id |
//!
//! Its id is keyed by the sender (MSH-3, MSH-4) and MSH-10, like the
//! journal's de-duplication: a replay rewrites the same Provenance. R4's
//! Provenance has no `identifier`; in conditional mode it is matched by a
//! `meta.tag` carrying that id (see [`super::bundle`]). Without a
//! `recorded` time (no journal time, MSH-7 without offset and no default
//! offset) there is no Provenance: R4 requires it. A destination can turn
//! Provenance off ([`super::TranslateOptions::provenance`]).

use super::json::{json, Map, Value};

use super::systems::{urn_segment, GATEWAY_URN};

/// What the Provenance says, gathered before the Bundle is finished.
pub struct ProvenanceSource {
    pub recorded: String,
    /// MSH-3.1 and MSH-4.1.
    pub application: String,
    pub facility: String,
    pub control_id: String,
    /// MSH-9.2.
    pub trigger: String,
    pub journal_id: Option<String>,
}

/// The Provenance resource (without id and resourceType, which the bundle
/// adds) for `targets` (references as the Bundle writes them).
pub fn provenance(tenant: &str, source: ProvenanceSource, targets: Vec<Value>) -> Map {
    let tenant = urn_segment(tenant);
    // Kept lean (no displays): every Bundle carries one, and its bytes are
    // most of what it costs.
    let logical = |kind: &str, value: &str| {
        let mut system = String::with_capacity(GATEWAY_URN.len() + tenant.len() + kind.len() + 2);
        for part in [GATEWAY_URN, ":", &tenant, ":", kind] {
            system.push_str(part);
        }
        json!({ "identifier": { "system": system, "value": value.to_string() } })
    };
    let participant = |code: &'static str| {
        json!({ "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
            "code": code,
        }]})
    };
    let mut author = Map::new();
    author.insert("type", participant("author"));
    let application = if source.application.is_empty() {
        "unknown"
    } else {
        &source.application
    };
    author.insert("who", json!({ "display": application.to_string() }));
    if !source.facility.is_empty() {
        author.insert("onBehalfOf", json!({ "display": source.facility }));
    }
    let assembler = json!({
        "type": participant("assembler"),
        "who": { "display": "Clinic Gateway" },
    });
    let mut entities = Vec::with_capacity(2);
    if !source.control_id.is_empty() {
        entities.push(json!({
            "role": "source",
            "what": logical("message-control-id", &source.control_id),
        }));
    }
    if let Some(journal) = source.journal_id.filter(|j| !j.is_empty()) {
        entities.push(json!({
            "role": "source",
            "what": logical("journal-id", &journal),
        }));
    }
    let mut p = Map::new();
    p.insert("target", Value::Array(targets));
    p.insert("recorded", Value::from(source.recorded));
    if !source.trigger.is_empty() {
        p.insert(
            "activity",
            json!({ "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v2-0003",
                "code": source.trigger,
            }]}),
        );
    }
    p.insert(
        "agent",
        Value::Array(vec![Value::Object(author), assembler]),
    );
    if !entities.is_empty() {
        p.insert("entity", Value::Array(entities));
    }
    p
}
