//! Golden tests on the clinically important fields of the order, result,
//! pharmacy, referral, billing, problem and document families that came
//! with the breadth work (FHIR-Converter's samples).

use crate::support::*;
use serde_json::Value;

/// `Type/id` of a resource, as PUT-mode references write it.
fn reference(r: &Value) -> String {
    format!(
        "{}/{}",
        r["resourceType"].as_str().unwrap(),
        r["id"].as_str().unwrap()
    )
}

#[test]
fn lab_order_with_its_specimen() {
    let b = shared_bundle("OML-O21-01.hl7");
    let sr = resources(&b, "ServiceRequest");
    assert_eq!(sr.len(), 1);
    let specimen = resources(&b, "Specimen")[0];
    assert_eq!(sr[0]["specimen"][0]["reference"], reference(specimen));
    assert_eq!(sr[0]["intent"], "order");
    assert!(sr[0]["code"]["coding"][0]["code"].is_string());
    assert_eq!(
        specimen["subject"]["reference"],
        reference(resources(&b, "Patient")[0])
    );
}

#[test]
fn specimen_oriented_results_keep_each_order_apart() {
    let b = shared_bundle("OUL-R22-02.hl7");
    let reports = resources(&b, "DiagnosticReport");
    assert_eq!(reports.len(), 2);
    for r in &reports {
        assert_eq!(r["specimen"].as_array().unwrap().len(), 1, "{}", r["id"]);
        assert!(!r["result"].as_array().unwrap().is_empty());
        assert_eq!(r["basedOn"].as_array().unwrap().len(), 1);
    }
    assert_ne!(reports[0]["specimen"], reports[1]["specimen"]);
    // R24: the specimen follows its order.
    let b = shared_bundle("OUL-R24-02.hl7");
    assert_eq!(resources(&b, "DiagnosticReport").len(), 2);
    assert_eq!(
        resources(&b, "DiagnosticReport")[0]["specimen"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[test]
fn pharmacy_order_and_dispense() {
    let b = shared_bundle("RDE-O11-02.hl7");
    let mr = resources(&b, "MedicationRequest");
    assert_eq!(mr.len(), 2, "one per ORC");
    let first = mr[0];
    assert_eq!(first["status"], "active");
    assert_eq!(first["intent"], "order");
    assert_eq!(
        first["medicationCodeableConcept"]["coding"][0]["system"],
        "http://hl7.org/fhir/sid/ndc"
    );
    assert_eq!(
        first["medicationCodeableConcept"]["coding"][0]["code"],
        "0143963401"
    );
    let dosage = &first["dosageInstruction"][0];
    assert_eq!(dosage["doseAndRate"][0]["doseQuantity"]["value"], 5);
    assert_eq!(dosage["doseAndRate"][0]["doseQuantity"]["unit"], "mg/hr");
    assert_eq!(dosage["route"]["coding"][0]["code"], "IV");
    assert_eq!(
        dosage["timing"]["repeat"]["boundsPeriod"]["start"],
        "2019-11-04T10:30:00+02:15"
    );
    assert_eq!(first["dispenseRequest"]["numberOfRepeatsAllowed"], 12);
    assert_eq!(first["identifier"][0]["value"], "1163422591");

    let b = shared_bundle("RDS-O13-02.hl7");
    let md = resources(&b, "MedicationDispense");
    assert_eq!(md.len(), 2);
    let requests = resources(&b, "MedicationRequest");
    assert_eq!(md[0]["status"], "completed");
    assert_eq!(
        md[0]["medicationCodeableConcept"]["coding"][0]["code"],
        "01151327"
    );
    assert_eq!(md[0]["quantity"]["value"], 10);
    assert_eq!(md[0]["whenHandedOver"], "2020-12-12");
    assert_eq!(
        md[0]["authorizingPrescription"][0]["reference"],
        reference(requests[0])
    );
    assert!(md[0]["performer"][0]["actor"]["reference"].is_string());
}

#[test]
fn referral_with_its_practitioners() {
    let b = shared_bundle("REF-I12-01.hl7");
    let sr = resources(&b, "ServiceRequest");
    assert_eq!(sr.len(), 1);
    let r = sr[0];
    assert_eq!(r["category"][0]["coding"][0]["code"], "3457005");
    assert_eq!(r["status"], "draft", "RF1-1 P pending");
    assert_eq!(r["priority"], "routine");
    assert_eq!(r["identifier"][0]["value"], "226839");
    let practitioners = resources(&b, "Practitioner");
    let by_ref = |reference_: &Value| {
        practitioners
            .iter()
            .find(|p| reference(p) == reference_.as_str().unwrap())
            .copied()
            .unwrap()
    };
    assert_eq!(
        by_ref(&r["requester"]["reference"])["name"][0]["family"],
        "POWELL"
    );
    assert_eq!(
        by_ref(&r["performer"][0]["reference"])["name"][0]["family"],
        "McWILLIAMS"
    );
    assert_eq!(
        r["reasonReference"][0]["reference"],
        reference(resources(&b, "Condition")[0])
    );
    assert!(!r["supportingInfo"].as_array().unwrap().is_empty());
    // I14 cancels the same referral.
    let cancel = shared_bundle("REF-I14-01.hl7");
    let c = resources(&cancel, "ServiceRequest")[0];
    assert_eq!(c["id"], r["id"]);
    assert_eq!(c["status"], "revoked");
}

#[test]
fn general_order() {
    let b = shared_bundle("OMG-O19-01.hl7");
    let sr = resources(&b, "ServiceRequest");
    assert_eq!(sr.len(), 2);
    assert!(sr
        .iter()
        .all(|s| s["intent"] == "order" && s["subject"]["reference"].is_string()));
}

#[test]
fn billing_accounts_and_procedures() {
    let b = shared_bundle("BAR-P01-01.hl7");
    assert_eq!(resources(&b, "Account")[0]["status"], "active");
    let procedure = resources(&b, "Procedure")[0];
    assert_eq!(procedure["status"], "completed");
    assert_eq!(
        procedure["encounter"]["reference"],
        reference(resources(&b, "Encounter")[0])
    );
    let purge = shared_bundle("BAR-P02-01.hl7");
    assert_eq!(
        resources(&purge, "Patient").len(),
        2,
        "every PID of a purge"
    );
    assert!(resources(&purge, "Account")
        .iter()
        .all(|a| a["status"] == "inactive"));
    let dft = shared_bundle("DFT-P11-02.hl7");
    assert_eq!(resources(&dft, "ChargeItem").len(), 2);
}

#[test]
fn problems_add_and_delete() {
    let add = shared_bundle("PC1-Problem-Add-v2.3.1.hl7");
    let c = resources(&add, "Condition")[0];
    assert_eq!(c["category"][0]["coding"][0]["code"], "problem-list-item");
    assert_eq!(c["clinicalStatus"]["coding"][0]["code"], "active");
    assert_eq!(c["code"]["coding"][0]["code"], "596.5");
    let delete = shared_bundle("PC1-Problem-Delete-v2.3.1.hl7");
    let c = resources(&delete, "Condition")[0];
    assert_eq!(
        c["verificationStatus"]["coding"][0]["code"],
        "entered-in-error"
    );
    assert!(c.get("clinicalStatus").is_none(), "con-5");
}

#[test]
fn document_notifications_and_replacements() {
    let t10 = shared_bundle("MDM-T10-01.hl7");
    let d = resources(&t10, "DocumentReference")[0];
    assert_eq!(d["relatesTo"][0]["code"], "replaces");
    let t06 = shared_bundle("MDM-T06-01.hl7");
    assert_eq!(
        resources(&t06, "DocumentReference")[0]["relatesTo"][0]["code"],
        "appends"
    );
    let t01 = shared_bundle("MDM-T01-01.hl7");
    assert!(resources(&t01, "DocumentReference")[0]
        .get("relatesTo")
        .is_none());
}
