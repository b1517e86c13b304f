//! A40: the non-surviving Patient is `active` = false and `replaced-by`
//! the survivor, the survivor `replaces` it, both ids come from their MRNs,
//! an A40 twice changes nothing, both patients' lanes are named, and a later
//! message for either MRN does not undo the merge.

use crate::support::*;
use fhir_map::{MapContext, TranslateOptions, UpdateMode};
use hl7::Message;
use serde_json::{json, Value};

fn patients(name: &str, ctx: &MapContext) -> Vec<Value> {
    resources(&bundle(&own(name), ctx), "Patient")
        .into_iter()
        .cloned()
        .collect()
}

/// The Patient of an MRN, from a message that is only about it.
fn patient_id_of(name: &str) -> Value {
    let p = patients(name, &MapContext::new("acme"));
    assert_eq!(p.len(), 1, "{name}");
    p[0]["id"].clone()
}

#[test]
fn the_merged_patient_is_replaced_by_the_survivor() {
    let p = patients("adt_a40_merge.hl7", &MapContext::new("acme"));
    assert_eq!(p.len(), 2);
    let survivor = p.iter().find(|p| p["active"] == true).unwrap();
    let merged = p.iter().find(|p| p["active"] == false).unwrap();
    // Both ids from their MRNs: the ids an ADT for each MRN gives.
    assert_eq!(merged["id"], patient_id_of("adt_a01_visit.hl7"), "MRN2001");
    assert_eq!(
        survivor["id"],
        patient_id_of("adt_a08_after_merge.hl7"),
        "MRN2002"
    );
    assert_eq!(survivor["identifier"][0]["value"], "MRN2002");
    assert_eq!(merged["identifier"][0]["value"], "MRN2001");
    assert_eq!(
        merged["identifier"][1]["value"], "ALT77",
        "every MRG-1 identifier"
    );
    assert_eq!(merged["name"][0]["given"][0], "Old", "MRG-7");
    assert_eq!(
        merged["link"],
        json!([{ "other": { "reference": format!("Patient/{}", survivor["id"].as_str().unwrap()) }, "type": "replaced-by" }])
    );
    assert_eq!(
        survivor["link"],
        json!([{ "other": { "reference": format!("Patient/{}", merged["id"].as_str().unwrap()) }, "type": "replaces" }])
    );
}

#[test]
fn an_a40_twice_changes_nothing() {
    for (_, ctx) in contexts() {
        let raw = own("adt_a40_merge.hl7");
        let msg = Message::parse(&raw).unwrap();
        let first = fhir_map::translate_to_bytes(&msg, &ctx).unwrap();
        let second = fhir_map::translate_to_bytes(&msg, &ctx).unwrap();
        assert_eq!(first, second);
    }
}

#[test]
fn a_merge_names_both_patient_lanes() {
    let t = translation(
        "adt_a40_merge.hl7",
        &MapContext::new("acme"),
        &TranslateOptions::default(),
    );
    let keys: Vec<(&str, &str)> = t
        .patient_keys
        .iter()
        .map(|k| (k.authority.as_str(), k.value.as_str()))
        .collect();
    assert_eq!(keys, [("ECW", "MRN2002"), ("ECW", "MRN2001")]);
    // Every pair of a multi-merge message.
    let raw = shared("ADT-A40-02.hl7");
    let keys = fhir_map::merge::patient_keys(&Message::parse(&raw).unwrap());
    assert_eq!(keys.len(), 4);
}

#[test]
fn a_late_result_for_the_old_mrn_cannot_undo_the_merge() {
    // Conditional mode: the ORU's Patient is created only if absent.
    let mut ctx = MapContext::new("acme");
    ctx.update_mode = UpdateMode::Conditional;
    let b = bundle(&own("oru_r01_after_merge.hl7"), &ctx);
    let entry = entry(&b, "Patient");
    assert_eq!(entry["request"]["method"], "POST");
    assert_eq!(
        entry["request"]["ifNoneExist"],
        "identifier=urn:clinic-gateway:acme:id:ECW|MRN2001"
    );
    assert!(entry["resource"].get("active").is_none());
    assert!(entry["resource"].get("link").is_none());
    // PUT mode: the daemon is told which entries are create-only.
    let t = translation(
        "oru_r01_after_merge.hl7",
        &MapContext::new("acme"),
        &TranslateOptions::default(),
    );
    let old = patient_id_of("adt_a01_visit.hl7");
    assert!(
        t.create_only
            .contains(&format!("Patient/{}", old.as_str().unwrap())),
        "{:?}",
        t.create_only
    );
    // An ADT still owns the Patient: it is an upsert, not create-only.
    let t = translation(
        "adt_a08_after_merge.hl7",
        &MapContext::new("acme"),
        &TranslateOptions::default(),
    );
    assert!(!t.create_only.iter().any(|u| u.starts_with("Patient/")));
}

#[test]
fn the_update_rule_keeps_a_merge_through_later_adts() {
    let ctx = MapContext::new("acme");
    let merge = patients("adt_a40_merge.hl7", &ctx);
    let server_survivor = merge.iter().find(|p| p["active"] == true).unwrap();
    let server_merged = merge.iter().find(|p| p["active"] == false).unwrap();
    // A later A08 of the survivor carries no link: the link stays.
    let a08 = &patients("adt_a08_after_merge.hl7", &ctx)[0];
    assert!(a08.get("link").is_none());
    let kept = fhir_map::merge::preserve_merge_state(server_survivor, a08);
    assert_eq!(kept["link"], server_survivor["link"]);
    assert_eq!(kept["name"], a08["name"], "the A08's demographics win");
    // A late ADT for the old MRN (it is active there): it stays replaced.
    let late = &patients("adt_a01_visit.hl7", &ctx)[0];
    let kept = fhir_map::merge::preserve_merge_state(server_merged, late);
    assert_eq!(kept["active"], false);
    assert_eq!(kept["link"], server_merged["link"]);
    // Twice is the same as once.
    assert_eq!(
        fhir_map::merge::preserve_merge_state(server_merged, &kept),
        kept
    );
}

#[test]
fn a_merge_into_itself_or_without_mrg_is_refused() {
    let ctx = MapContext::new("acme");
    let e = |raw: &str| {
        fhir_map::translate(&Message::parse(raw.as_bytes()).unwrap(), &ctx)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        e("MSH|^~\\&|A|B|C|D|20240101||ADT^A40|1|P|2.5.1\rPID|1||M1^^^ECW^MR\rMRG|M1^^^ECW^MR\r"),
        "MRG(1)-1 names the patient of PID-3 (A40 of a patient into itself)"
    );
    assert_eq!(
        e("MSH|^~\\&|A|B|C|D|20240101||ADT^A40|1|P|2.5.1\rPID|1||M1^^^ECW^MR\r"),
        "MRG is missing: a merge must name the patient merged away"
    );
}
