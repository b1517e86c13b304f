//! One Provenance per Bundle: targets every resource written, `recorded` is
//! the journal's received time, the sender (MSH-3/4) is the author and the
//! gateway the assembler, the entities are MSH-10 and the journal id. It can
//! be turned off, and a replay writes the same one.

use crate::support::*;
use fhir_map::{MapContext, TranslateOptions, UpdateMode};
use serde_json::Value;

fn with(name: &str, ctx: &MapContext, options: &TranslateOptions<'_>) -> Value {
    serde_json::from_slice(&translation(name, ctx, options).bytes).unwrap()
}

const JOURNAL: TranslateOptions<'static> = TranslateOptions {
    provenance: true,
    journal_id: Some("000000000000002a"),
    received: Some("2024-03-12T14:30:01.250Z"),
};

#[test]
fn one_provenance_naming_every_resource() {
    let b = with("oru_r01_lipid_1.hl7", &MapContext::new("acme"), &JOURNAL);
    let provenances = resources(&b, "Provenance");
    assert_eq!(provenances.len(), 1);
    let p = provenances[0];
    let entries = b["entry"].as_array().unwrap();
    let targets: Vec<&str> = p["target"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["reference"].as_str().unwrap())
        .collect();
    assert_eq!(targets.len(), entries.len() - 1);
    for e in entries {
        let r = &e["resource"];
        if r["resourceType"] != "Provenance" {
            let reference = format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            );
            assert!(targets.contains(&reference.as_str()), "{reference}");
        }
    }
    assert_eq!(p["recorded"], "2024-03-12T14:30:01.250Z");
    assert_eq!(p["activity"]["coding"][0]["code"], "R01");
    assert_eq!(p["agent"][0]["type"]["coding"][0]["code"], "author");
    assert_eq!(p["agent"][0]["who"]["display"], "REFLAB");
    assert_eq!(p["agent"][0]["onBehalfOf"]["display"], "CLINIC01");
    assert_eq!(p["agent"][1]["type"]["coding"][0]["code"], "assembler");
    assert_eq!(p["entity"][0]["what"]["identifier"]["value"], "ORU0");
    assert_eq!(p["entity"][0]["role"], "source");
    assert_eq!(
        p["entity"][1]["what"]["identifier"]["value"],
        "000000000000002a"
    );
}

#[test]
fn without_a_journal_time_msh7_is_recorded_and_without_either_none() {
    let b = bundle(&own("oru_r01_lipid_1.hl7"), &MapContext::new("acme"));
    assert_eq!(
        resources(&b, "Provenance")[0]["recorded"],
        "2024-03-12T09:30:00-05:00"
    );
    let raw = b"MSH|^~\\&|A|B|C|D|20240101||ADT^A04|1|P|2.5.1\rPID|1||M1^^^ECW^MR\r";
    let b = bundle(raw, &MapContext::new("acme"));
    assert!(
        resources(&b, "Provenance").is_empty(),
        "R4 requires recorded"
    );
}

#[test]
fn a_destination_can_turn_it_off() {
    let off = TranslateOptions {
        provenance: false,
        ..JOURNAL
    };
    let b = with("oru_r01_lipid_1.hl7", &MapContext::new("acme"), &off);
    assert!(resources(&b, "Provenance").is_empty());
    let on = with("oru_r01_lipid_1.hl7", &MapContext::new("acme"), &JOURNAL);
    assert_eq!(
        on["entry"].as_array().unwrap().len(),
        b["entry"].as_array().unwrap().len() + 1
    );
}

#[test]
fn a_replay_rewrites_the_same_provenance() {
    let a = with("oru_r01_lipid_1.hl7", &MapContext::new("acme"), &JOURNAL);
    let later = TranslateOptions {
        received: Some("2024-03-13T00:00:00Z"),
        ..JOURNAL
    };
    let b = with("oru_r01_lipid_1.hl7", &MapContext::new("acme"), &later);
    assert_eq!(
        resources(&a, "Provenance")[0]["id"],
        resources(&b, "Provenance")[0]["id"]
    );
    // Conditional mode: R4's Provenance has no identifier; a tag matches it.
    let mut ctx = MapContext::new("acme");
    ctx.update_mode = UpdateMode::Conditional;
    let c = with("oru_r01_lipid_1.hl7", &ctx, &JOURNAL);
    let entry = entry(&c, "Provenance");
    let tag = &entry["resource"]["meta"]["tag"][0];
    assert_eq!(tag["system"], "urn:clinic-gateway:acme:resource-id");
    assert_eq!(entry["request"]["method"], "PUT");
    assert_eq!(
        entry["request"]["url"],
        format!(
            "Provenance?_tag=urn:clinic-gateway:acme:resource-id|{}",
            tag["code"].as_str().unwrap()
        )
    );
    assert!(entry["resource"].get("identifier").is_none());
}
