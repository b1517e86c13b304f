//! The ADT family beyond A01/A03/A04/A08/A31: a visit's life (admit,
//! cancel, admit again; transfer and its cancel; discharge and its cancel),
//! pre-admit, person add/delete, adverse reactions, and cancels that name
//! no visit.

use crate::support::*;
use fhir_map::MapContext;
use hl7::Message;
use serde_json::Value;

fn one(name: &str, rtype: &str) -> Value {
    let b = bundle(&own(name), &MapContext::new("acme"));
    let list = resources(&b, rtype);
    assert_eq!(list.len(), 1, "{name}: {rtype}");
    list[0].clone()
}

#[test]
fn admit_cancel_admit_is_one_encounter_in_progress() {
    let admit = one("adt_a01_visit.hl7", "Encounter");
    let cancel = one("adt_a11_visit.hl7", "Encounter");
    let again = one("adt_a01_visit_again.hl7", "Encounter");
    assert_eq!(
        admit["id"], cancel["id"],
        "A11 corrects the A01's Encounter"
    );
    assert_eq!(admit["id"], again["id"]);
    assert_eq!(admit["status"], "in-progress");
    assert_eq!(cancel["status"], "cancelled");
    assert_eq!(again["status"], "in-progress", "the last message wins");
    assert!(cancel["period"].get("end").is_none());
    // Replaying the whole sequence changes nothing: same ids, same content.
    assert_eq!(again, one("adt_a01_visit_again.hl7", "Encounter"));
}

#[test]
fn transfer_and_its_cancel_move_the_patient_back() {
    let admit = one("adt_a01_visit.hl7", "Encounter");
    let transfer = one("adt_a02_visit.hl7", "Encounter");
    let cancel = one("adt_a12_visit.hl7", "Encounter");
    assert_eq!(transfer["id"], admit["id"]);
    assert_eq!(cancel["id"], admit["id"]);
    assert_eq!(transfer["status"], "in-progress");
    let locations = transfer["location"].as_array().unwrap();
    assert_eq!(locations.len(), 2);
    assert_eq!(locations[0]["status"], "active");
    assert_eq!(locations[1]["status"], "completed", "PV1-6 prior location");
    assert_eq!(
        locations[1]["location"], admit["location"][0]["location"],
        "the bed the patient left"
    );
    assert_eq!(cancel["status"], "in-progress");
    assert_eq!(
        cancel["location"][0]["location"],
        admit["location"][0]["location"]
    );
    assert_eq!(cancel["location"].as_array().unwrap().len(), 1);
}

#[test]
fn discharge_and_its_cancel() {
    let discharge = one("adt_a03_visit.hl7", "Encounter");
    let cancel = one("adt_a13_visit.hl7", "Encounter");
    assert_eq!(discharge["id"], cancel["id"]);
    assert_eq!(discharge["status"], "finished");
    assert_eq!(discharge["period"]["end"], "2024-03-15T11:00:00-05:00");
    assert_eq!(cancel["status"], "in-progress");
    assert!(
        cancel["period"].get("end").is_none(),
        "A13 reopens the visit"
    );
    assert_eq!(cancel["period"]["start"], discharge["period"]["start"]);
}

#[test]
fn pre_admit_is_planned() {
    let e = one("adt_a05_visit.hl7", "Encounter");
    assert_eq!(e["status"], "planned");
    assert_eq!(e["class"]["code"], "PRENC");
}

#[test]
fn a_cancel_that_names_no_visit_is_refused() {
    // Not in the corpus: every corpus file must give a Bundle.
    let raw = b"MSH|^~\\&|ECW|C|GW|CLOUD|20240312093000-0500||ADT^A11|X1|P|2.5.1\rEVN|A11\rPID|1||MRN2001^^^ECW^MR\rPV1|1|I|WARD^101\r";
    let e =
        fhir_map::translate(&Message::parse(raw).unwrap(), &MapContext::new("acme")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "PV1-19 and PV1-44 are empty: a cancel must name the visit it corrects"
    );
}

#[test]
fn person_add_update_and_delete_make_no_encounter() {
    for name in ["ADT-A28-01.hl7", "ADT-A31-01.hl7", "ADT-A29-01.hl7"] {
        let b = shared_bundle(name);
        assert_eq!(resources(&b, "Patient").len(), 1, "{name}");
        assert!(resources(&b, "Encounter").is_empty(), "{name}");
    }
    let deleted = shared_bundle("ADT-A29-01.hl7");
    assert_eq!(resources(&deleted, "Patient")[0]["active"], false);
}

#[test]
fn adverse_reactions_become_allergies() {
    let b = shared_bundle("ADT-A60-01.hl7");
    let allergies = resources(&b, "AllergyIntolerance");
    assert_eq!(allergies.len(), 1);
    let a = allergies[0];
    assert_eq!(a["code"]["coding"][0]["code"], "12345");
    assert_eq!(a["category"][0], "food");
    assert_eq!(a["verificationStatus"]["coding"][0]["code"], "confirmed");
    assert_eq!(a["clinicalStatus"]["coding"][0]["code"], "active");
    assert_eq!(
        a["reaction"][0]["manifestation"][0]["coding"][0]["code"],
        "34567"
    );
    assert_eq!(a["reaction"][0]["severity"], "mild");
    assert_eq!(resources(&b, "Encounter").len(), 1, "A60 with a PV1");
}

#[test]
fn every_shared_adt_trigger_maps() {
    for trig in [
        "A02", "A05", "A06", "A07", "A09", "A10", "A11", "A13", "A14", "A15", "A16", "A25", "A26",
        "A27", "A28", "A29", "A40", "A41", "A45", "A47", "A60",
    ] {
        for n in ["01", "02"] {
            let b = shared_bundle(&format!("ADT-{trig}-{n}.hl7"));
            assert!(!resources(&b, "Patient").is_empty(), "{trig}-{n}");
        }
    }
    assert_eq!(
        resources(&shared_bundle("ADT-A14-01.hl7"), "Encounter")[0]["status"],
        "planned"
    );
    assert_eq!(
        resources(&shared_bundle("ADT-A27-01.hl7"), "Encounter")[0]["status"],
        "cancelled"
    );
    assert_eq!(
        resources(&shared_bundle("ADT-A16-01.hl7"), "Encounter")[0]["status"],
        "in-progress"
    );
}
