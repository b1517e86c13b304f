//! A resource claims a US Core profile only when it has what the profile
//! requires (its 1..1 / 1..* elements, US Core 6.1): over every Bundle of
//! both corpora. A claim the data cannot meet makes a validating server
//! reject the whole transaction.

use crate::support::*;
use hl7::Message;
use serde_json::Value;

const US_CORE: &str = "http://hl7.org/fhir/us/core/StructureDefinition/";

/// Required elements per profile; `a|b` is one of them, `x.y` a path.
fn required(profile: &str) -> Option<&'static [&'static str]> {
    Some(match profile {
        "us-core-patient" => &["identifier", "name", "gender"],
        "us-core-encounter" => &["status", "class", "type", "subject"],
        "us-core-coverage" => &["status", "beneficiary", "relationship", "payor"],
        "us-core-immunization" => &[
            "status",
            "vaccineCode",
            "patient",
            "occurrenceDateTime|occurrenceString",
            "primarySource",
        ],
        "us-core-documentreference" => &[
            "status",
            "type",
            "category",
            "subject",
            "content.attachment.data|content.attachment.url",
        ],
        "us-core-specimen" => &["type", "subject"],
        "us-core-practitioner" => &["identifier", "name"],
        "us-core-organization" => &["active", "name"],
        "us-core-location" => &["name"],
        "us-core-observation-lab" => &["status", "category", "code", "subject"],
        "us-core-diagnosticreport-lab" => &["status", "category", "code", "subject"],
        "us-core-servicerequest" => &["status", "intent", "code", "subject"],
        "us-core-medicationrequest" => &[
            "status",
            "intent",
            "medicationCodeableConcept|medicationReference",
            "subject",
            "requester",
        ],
        "us-core-allergyintolerance" => &["code", "patient"],
        "us-core-condition-encounter-diagnosis" => &["category", "code", "subject"],
        "us-core-relatedperson" => &["active", "patient", "name|relationship"],
        _ => return None,
    })
}

/// Whether `path` (dots; arrays looked through) has a value in `v`.
fn has(v: &Value, path: &str) -> bool {
    let Some((head, rest)) = path.split_once('.').map_or(Some((path, "")), Some) else {
        return false;
    };
    let child = &v[head];
    let items: Vec<&Value> = match child {
        Value::Array(a) => a.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    };
    items
        .into_iter()
        .any(|item| rest.is_empty() || has(item, rest))
}

#[test]
fn profiles_are_claimed_only_where_met() {
    let mut files = own_corpus();
    files.extend(shared_corpus());
    let mut claims = 0;
    let mut encounters_claimed = 0;
    for f in &files {
        let raw = read(f);
        let msg = Message::parse(&raw).unwrap();
        for (mode, ctx) in contexts() {
            let b = fhir_map::translate(&msg, &ctx).unwrap();
            for e in b["entry"].as_array().unwrap() {
                let r = &e["resource"];
                for p in r["meta"]["profile"].as_array().into_iter().flatten() {
                    let name = p.as_str().unwrap().strip_prefix(US_CORE).unwrap();
                    let Some(needs) = required(name) else {
                        panic!("{}: unknown profile {name}", f.display());
                    };
                    for need in needs {
                        assert!(
                            need.split('|').any(|alt| has(r, alt)),
                            "{} ({mode}): {} claims {name} without {need}",
                            f.display(),
                            r["resourceType"]
                        );
                    }
                    claims += 1;
                    encounters_claimed += usize::from(name == "us-core-encounter");
                }
            }
        }
    }
    assert!(claims > 1000, "claims checked: {claims}");
    assert!(
        encounters_claimed > 50,
        "us-core-encounter claims: {encounters_claimed}"
    );
}
