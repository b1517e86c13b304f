//! Golden tests on the fields that matter clinically, idempotency, code
//! maps, MapErrors, and a property test that translation never panics.

use std::sync::Arc;

use fhir_map::{CodeMaps, MapContext, UpdateMode};
use hl7::Message;
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::support;

fn translate(raw: &[u8], ctx: &MapContext) -> Value {
    fhir_map::translate(&Message::parse(raw).unwrap(), ctx).unwrap()
}

fn resources<'v>(bundle: &'v Value, rtype: &str) -> Vec<&'v Value> {
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == rtype)
        .collect()
}

fn one<'v>(bundle: &'v Value, rtype: &str) -> &'v Value {
    let r = resources(bundle, rtype);
    assert_eq!(r.len(), 1, "{rtype}: {}", r.len());
    r[0]
}

fn by_code<'v>(bundle: &'v Value, code: &str) -> &'v Value {
    resources(bundle, "Observation")
        .into_iter()
        .find(|o| o["code"]["coding"][0]["code"] == code)
        .unwrap_or_else(|| panic!("no Observation {code}"))
}

#[test]
fn oru_lab_values_units_ranges_statuses_and_dates() {
    let b = translate(
        &support::own("oru_r01_lipid_1.hl7"),
        &MapContext::new("acme"),
    );
    assert_eq!(b["type"], "transaction");
    assert_eq!(b["identifier"]["value"], "ORU0");
    assert_eq!(b["timestamp"], "2024-03-12T09:30:00-05:00");
    let tg = by_code(&b, "2571-8");
    assert_eq!(tg["status"], "final");
    assert_eq!(tg["code"]["coding"][0]["system"], "http://loinc.org");
    assert_eq!(
        tg["valueQuantity"],
        json!({"value": 220, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"})
    );
    assert_eq!(tg["referenceRange"][0]["high"]["value"], 150);
    assert_eq!(tg["referenceRange"][0]["text"], "<150");
    assert_eq!(
        tg["interpretation"][0]["coding"][0],
        json!({"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "H", "display": "High"})
    );
    assert_eq!(tg["effectiveDateTime"], "2024-03-11T08:00:00-05:00");
    assert_eq!(
        tg["meta"]["profile"][0],
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab"
    );
    let ldl = by_code(&b, "13457-7");
    assert_eq!(ldl["referenceRange"][0]["low"]["value"], 0);
    assert_eq!(ldl["referenceRange"][0]["high"]["value"], 99);
    let glucose = by_code(&b, "2345-7");
    assert_eq!(glucose["valueQuantity"]["value"], 5.6);
    assert_eq!(glucose["valueQuantity"]["code"], "mmol/L");

    let report = one(&b, "DiagnosticReport");
    assert_eq!(report["status"], "final");
    assert_eq!(report["code"]["coding"][0]["code"], "24331-1");
    assert_eq!(report["result"].as_array().unwrap().len(), 10);
    assert_eq!(report["issued"], "2024-03-11T12:00:00-05:00");
    let ids = report["identifier"].as_array().unwrap();
    assert!(ids
        .iter()
        .any(|i| i["value"] == "F5000" && i["type"]["coding"][0]["code"] == "FILL"));
    assert!(ids
        .iter()
        .any(|i| i["value"] == "PLF5000" && i["type"]["coding"][0]["code"] == "PLAC"));
    // The order NTE lands on the ServiceRequest (R4 DiagnosticReport has no note).
    let sr = one(&b, "ServiceRequest");
    assert_eq!(
        sr["note"][0]["text"],
        "Fasting specimen.\nCollected at clinic."
    );
    assert_eq!(
        report["basedOn"][0]["reference"],
        format!("ServiceRequest/{}", sr["id"].as_str().unwrap())
    );
}

#[test]
fn patient_identity_demographics_and_us_core_extensions() {
    let b = translate(&support::own("adt_a01_2.hl7"), &MapContext::new("acme"));
    let p = one(&b, "Patient");
    assert_eq!(p["identifier"][0]["value"], "MRN1002");
    assert_eq!(
        p["identifier"][0]["system"],
        "urn:clinic-gateway:acme:id:ECW"
    );
    assert_eq!(p["identifier"][0]["type"]["coding"][0]["code"], "MR");
    assert_eq!(p["name"][0]["family"], "Müller");
    assert_eq!(p["name"][0]["given"][0], "Zoë");
    assert_eq!(p["birthDate"], "1975-03-02");
    assert_eq!(p["gender"], "female");
    let race = &p["extension"][0];
    assert_eq!(
        race["url"],
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
    );
    assert_eq!(race["extension"][0]["valueCoding"]["code"], "2028-9");
    assert_eq!(
        race["extension"][0]["valueCoding"]["system"],
        "urn:oid:2.16.840.1.113883.6.238"
    );
    let eth = &p["extension"][1];
    assert_eq!(
        eth["url"],
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"
    );
    assert_eq!(eth["extension"][0]["valueCoding"]["code"], "2186-5");
    assert_eq!(p["communication"][0]["language"]["coding"][0]["code"], "en");
    assert_eq!(p["maritalStatus"]["coding"][0]["code"], "M");

    let enc = one(&b, "Encounter");
    assert_eq!(enc["status"], "in-progress");
    assert_eq!(enc["class"]["code"], "IMP");
    assert_eq!(enc["identifier"][0]["value"], "V1001");
    assert_eq!(enc["period"]["start"], "2024-03-12T09:00:00-05:00");
    let participants = enc["participant"].as_array().unwrap();
    assert_eq!(participants.len(), 3);
    // The attending doctor is also the PD1 GP: one Practitioner.
    let doctors: Vec<_> = resources(&b, "Practitioner")
        .into_iter()
        .filter(|p| p["identifier"][0]["value"] == "1234567890")
        .collect();
    assert_eq!(doctors.len(), 1);
    assert_eq!(
        doctors[0]["identifier"][0]["system"],
        "http://hl7.org/fhir/sid/us-npi"
    );
    let allergies = resources(&b, "AllergyIntolerance");
    assert_eq!(allergies.len(), 2);
    assert_eq!(allergies[0]["criticality"], "high");
    let cond = one(&b, "Condition");
    assert_eq!(
        cond["code"]["coding"][0]["system"],
        "http://hl7.org/fhir/sid/icd-10-cm"
    );
    assert_eq!(cond["verificationStatus"]["coding"][0]["code"], "confirmed");
    let cov = one(&b, "Coverage");
    assert_eq!(cov["relationship"]["coding"][0]["code"], "self");
    assert_eq!(
        cov["period"],
        json!({"start": "2024-01-01", "end": "2024-12-31"})
    );
    assert_eq!(
        one(&b, "RelatedPerson")["relationship"][0]["coding"][0]["code"],
        "SPS"
    );
}

#[test]
fn discharge_and_person_update() {
    let a03 = translate(&support::own("adt_a03_1.hl7"), &MapContext::new("acme"));
    let enc = one(&a03, "Encounter");
    assert_eq!(enc["status"], "finished");
    assert_eq!(enc["period"]["end"], "2024-03-14T11:00:00-05:00");
    let a31 = translate(&support::own("adt_a31_1.hl7"), &MapContext::new("acme"));
    assert!(resources(&a31, "Encounter").is_empty());
}

#[test]
fn same_message_twice_gives_identical_bundles() {
    let ctx = MapContext::new("acme");
    for name in [
        "oru_r01_multi_obr.hl7",
        "adt_a01_1.hl7",
        "vxu_v04_1.hl7",
        "dft_p03_1.hl7",
        "siu_s12_1.hl7",
        "mdm_t02_1.hl7",
    ] {
        let raw = support::own(name);
        assert_eq!(translate(&raw, &ctx), translate(&raw, &ctx), "{name}");
    }
}

#[test]
fn a04_then_a08_updates_one_patient() {
    let ctx = MapContext::new("acme");
    let a04 = translate(&support::own("adt_a04_same_patient.hl7"), &ctx);
    let a08 = translate(&support::own("adt_a08_same_patient.hl7"), &ctx);
    let (p1, p2) = (one(&a04, "Patient"), one(&a08, "Patient"));
    assert_eq!(p1["id"], p2["id"]);
    assert_ne!(p1, p2, "the A08 carries new data");
    assert_eq!(one(&a04, "Encounter")["id"], one(&a08, "Encounter")["id"]);
    let put = &a08["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["resource"]["resourceType"] == "Patient")
        .unwrap()["request"];
    assert_eq!(put["method"], "PUT");
    assert_eq!(
        put["url"],
        format!("Patient/{}", p1["id"].as_str().unwrap())
    );
    // Another tenant: another id.
    let other = translate(
        &support::own("adt_a04_same_patient.hl7"),
        &MapContext::new("other"),
    );
    assert_ne!(one(&other, "Patient")["id"], p1["id"]);
}

#[test]
fn oru_correction_updates_the_same_observation() {
    let ctx = MapContext::new("acme");
    let first = translate(&support::own("oru_r01_lipid_1.hl7"), &ctx);
    let corrected = translate(&support::own("oru_r01_lipid_1_corrected.hl7"), &ctx);
    let (a, b) = (by_code(&first, "2093-3"), by_code(&corrected, "2093-3"));
    assert_eq!(a["id"], b["id"]);
    assert_eq!(a["valueQuantity"]["value"], 185);
    assert_eq!(b["valueQuantity"]["value"], 191);
    assert_eq!(b["status"], "corrected");
    assert_eq!(
        one(&first, "DiagnosticReport")["id"],
        one(&corrected, "DiagnosticReport")["id"]
    );
    assert_eq!(one(&corrected, "DiagnosticReport")["status"], "corrected");
}

#[test]
fn repeated_codes_and_sub_ids_get_distinct_stable_ids() {
    let b = translate(
        &support::own("oru_r01_multi_obr.hl7"),
        &MapContext::new("acme"),
    );
    let obs = resources(&b, "Observation");
    let mut ids: Vec<&str> = obs.iter().map(|o| o["id"].as_str().unwrap()).collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "duplicate Observation ids");
    assert_eq!(resources(&b, "DiagnosticReport").len(), 3);
    let statuses: Vec<&str> = resources(&b, "DiagnosticReport")
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["final", "preliminary", "final"]);
    let spec = one(&b, "Specimen");
    assert_eq!(spec["identifier"][0]["value"], "SPFILL1");
    assert_eq!(spec["type"]["coding"][0]["code"], "119297000");
    assert_eq!(
        spec["collection"]["collectedDateTime"],
        "2024-03-09T07:00:00-05:00"
    );
}

#[test]
fn value_types_map_to_value_x() {
    let b = translate(
        &support::own("oru_r01_value_types.hl7"),
        &MapContext::new("acme"),
    );
    assert_eq!(by_code(&b, "5196-1")["valueQuantity"]["comparator"], "<");
    assert_eq!(by_code(&b, "33914-3")["valueQuantity"]["comparator"], ">=");
    assert_eq!(
        by_code(&b, "5130-0")["valueRatio"]["denominator"]["value"],
        128
    );
    assert_eq!(by_code(&b, "2514-8")["valueRange"]["high"]["value"], 15);
    assert_eq!(by_code(&b, "2514-8")["status"], "preliminary");
    assert_eq!(by_code(&b, "5778-6")["valueString"], "Yellow\npale");
    assert_eq!(
        by_code(&b, "22637-3")["valueString"],
        "Line one\nLine two with & and ^"
    );
    assert_eq!(
        by_code(&b, "600-7")["valueCodeableConcept"]["coding"][0]["system"],
        "http://snomed.info/sct"
    );
    assert_eq!(by_code(&b, "21112-8")["valueDateTime"], "2023-05-05");
    assert_eq!(
        by_code(&b, "82810-3")["valueDateTime"],
        "2024-03-10T10:15:00-05:00"
    );
    let report = one(&b, "DiagnosticReport");
    assert_eq!(report["presentedForm"][0]["contentType"], "application/pdf");
    assert!(report["presentedForm"][0]["data"]
        .as_str()
        .unwrap()
        .starts_with("JVBERi0"));
    assert_eq!(report["effectiveDateTime"], "2024-03-10T10:15:00+00:00");
    let spec = one(&b, "Specimen");
    assert_eq!(spec["type"]["coding"][0]["code"], "BLD");
}

#[test]
fn immunization_given_refused_and_partial() {
    let ctx = MapContext::new("acme");
    let given = one(
        &translate(&support::own("vxu_v04_1.hl7"), &ctx),
        "Immunization",
    )
    .clone();
    assert_eq!(given["status"], "completed");
    assert_eq!(
        given["vaccineCode"]["coding"][0],
        json!({"system": "http://hl7.org/fhir/sid/cvx", "code": "08", "display": "Hep B, adolescent or pediatric"})
    );
    assert_eq!(given["lotNumber"], "LOT0X");
    assert_eq!(given["expirationDate"], "2025-12-30");
    assert_eq!(given["doseQuantity"]["value"], 0.5);
    assert_eq!(given["primarySource"], true);
    assert_eq!(given["route"]["coding"][0]["code"], "C28161");
    assert_eq!(given["site"]["coding"][0]["code"], "LD");
    assert_eq!(given["fundingSource"]["coding"][0]["code"], "VXC50");
    let refused = one(
        &translate(&support::own("vxu_v04_3.hl7"), &ctx),
        "Immunization",
    )
    .clone();
    assert_eq!(refused["status"], "not-done");
    assert_eq!(refused["statusReason"]["coding"][0]["code"], "00");
    assert!(refused.get("doseQuantity").is_none());
    let partial = one(
        &translate(&support::own("vxu_v04_4.hl7"), &ctx),
        "Immunization",
    )
    .clone();
    assert_eq!(partial["isSubpotent"], true);
}

#[test]
fn appointment_statuses_follow_the_trigger() {
    let ctx = MapContext::new("acme");
    let s12 = translate(&support::own("siu_s12_1.hl7"), &ctx);
    let s14 = translate(&support::own("siu_s14_2.hl7"), &ctx);
    let s15 = translate(&support::own("siu_s15_3.hl7"), &ctx);
    let (a, b, c) = (
        one(&s12, "Appointment"),
        one(&s14, "Appointment"),
        one(&s15, "Appointment"),
    );
    assert_eq!(
        (
            a["status"].as_str(),
            b["status"].as_str(),
            c["status"].as_str()
        ),
        (Some("booked"), Some("booked"), Some("cancelled"))
    );
    assert_eq!(a["id"], b["id"], "S14 modifies the S12 appointment");
    assert_eq!(a["id"], c["id"], "S15 cancels it");
    assert_eq!(a["start"], "2024-03-20T10:00:00-05:00");
    assert_eq!(a["end"], "2024-03-20T10:30:00-05:00");
    assert_eq!(a["minutesDuration"], 30);
    assert_eq!(a["participant"].as_array().unwrap().len(), 3);
    assert_eq!(c["cancelationReason"]["coding"][0]["code"], "CANC");
}

#[test]
fn document_and_addendum() {
    let ctx = MapContext::new("acme");
    let t02 = translate(&support::own("mdm_t02_1.hl7"), &ctx);
    let t04 = translate(&support::own("mdm_t04_2.hl7"), &ctx);
    let (doc, addendum) = (
        one(&t02, "DocumentReference"),
        one(&t04, "DocumentReference"),
    );
    assert_eq!(doc["masterIdentifier"]["value"], "DOC800");
    assert_eq!(doc["docStatus"], "final");
    assert_eq!(doc["date"], "2024-03-15T13:30:00-05:00");
    assert_eq!(
        doc["content"][0]["attachment"]["contentType"],
        "text/plain; charset=utf-8"
    );
    assert_eq!(
        addendum["relatesTo"][0],
        json!({"code": "appends", "target": {"reference": format!("DocumentReference/{}", doc["id"].as_str().unwrap())}})
    );
    let mut conditional = MapContext::new("acme");
    conditional.update_mode = UpdateMode::Conditional;
    let t04 = translate(&support::own("mdm_t04_2.hl7"), &conditional);
    let target = &one(&t04, "DocumentReference")["relatesTo"][0]["target"];
    assert_eq!(target["identifier"]["value"], "DOC800");
    assert!(target.get("reference").is_none());
}

#[test]
fn charges_account_and_diagnosis_links() {
    let b = translate(&support::own("dft_p03_1.hl7"), &MapContext::new("acme"));
    let charges = resources(&b, "ChargeItem");
    assert_eq!(charges.len(), 2);
    assert_eq!(
        charges[0]["code"]["coding"][0],
        json!({"system": "http://www.ama-assn.org/go/cpt", "code": "99213", "display": "Office visit"})
    );
    assert_eq!(
        charges[0]["extension"][0]["valueCodeableConcept"]["coding"][0]["code"],
        "25"
    );
    assert_eq!(charges[0]["quantity"]["value"], 1);
    assert_eq!(
        charges[0]["priceOverride"],
        json!({"value": 125.0, "currency": "USD"})
    );
    assert_eq!(
        charges[0]["supportingInformation"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        charges[1]["code"]["coding"][0]["system"],
        "urn:oid:2.16.840.1.113883.6.285"
    );
    let account = one(&b, "Account");
    assert_eq!(account["identifier"][0]["value"], "ACCT970");
    assert_eq!(
        charges[0]["account"][0]["reference"],
        format!("Account/{}", account["id"].as_str().unwrap())
    );
}

#[test]
fn code_maps_add_a_coding_and_unmapped_codes_are_counted() {
    let mut ctx = MapContext::new("acme");
    ctx.code_maps = Arc::new(
        CodeMaps::from_csv(
            "local_system,local_code,target_system,target_code,display\nLOCAL-LAB,LOCALTSH,LOINC,3016-3,Thyrotropin [Units/volume] in Serum or Plasma\n",
            "test.csv",
        )
        .unwrap(),
    );
    let b = translate(&support::own("oru_r01_multi_obr.hl7"), &ctx);
    let tsh = by_code(&b, "LOCALTSH");
    let codings = tsh["code"]["coding"].as_array().unwrap();
    assert_eq!(codings[0]["system"], "urn:clinic-gateway:acme:cs:LOCAL-LAB");
    assert_eq!(
        codings[1],
        json!({"system": "http://loinc.org", "code": "3016-3", "display": "Thyrotropin [Units/volume] in Serum or Plasma"})
    );
    let unmapped = ctx.unmapped.snapshot();
    assert_eq!(
        unmapped.get(&("LOCAL-MICRO".to_string(), "LOCNEG".to_string())),
        Some(&1)
    );
    assert!(!unmapped.contains_key(&("LOCAL-LAB".to_string(), "LOCALTSH".to_string())));
    assert!(!unmapped.keys().any(|(s, _)| s == "LN"));
}

#[test]
fn conditional_mode_writes_identifier_searches() {
    let mut ctx = MapContext::new("acme");
    ctx.update_mode = UpdateMode::Conditional;
    let b = translate(&support::own("adt_a04_same_patient.hl7"), &ctx);
    let entry = b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["resource"]["resourceType"] == "Patient")
        .unwrap();
    assert_eq!(entry["request"]["method"], "PUT");
    assert_eq!(entry["request"]["url"], "Patient?identifier=urn:clinic-gateway:acme:id:ECW%262.16.840.1.113883.3.999.1%26ISO|MRN1004".replace("urn:clinic-gateway:acme:id:ECW%262.16.840.1.113883.3.999.1%26ISO", "urn:oid:2.16.840.1.113883.3.999.1"));
    assert!(entry["resource"].get("id").is_none());
    let enc = one(&b, "Encounter");
    assert_eq!(enc["subject"]["reference"], entry["fullUrl"]);
}

fn error_of(raw: &str) -> String {
    let msg = Message::parse(raw.as_bytes()).unwrap();
    fhir_map::translate(&msg, &MapContext::new("acme"))
        .unwrap_err()
        .to_string()
}

#[test]
fn map_errors_name_segment_field_and_reason_without_phi() {
    let e = error_of("MSH|^~\\&|A|B|C|D|20240101||ADT^A04|1|P|2.5.1\rPID|1||^^^ECW^MR||Secretname^Pat\rPV1|1|O\r");
    assert_eq!(e, "PID-3 is empty: cannot identify the patient");
    assert!(!e.contains("Secretname"));
    let e = error_of("MSH|^~\\&|A|B|C|D|20240101||ADT^A04|1|P|2.5.1\rEVN|A04\r");
    assert_eq!(e, "PID is missing: cannot identify the patient");
    let e = error_of("MSH|^~\\&|A|B|C|D|20240101||BAR^P01|1|P|2.5.1\rPID|1||1\r");
    assert_eq!(
        e,
        "MSH-9 is BAR^P01: not a message type the fhir transform maps"
    );
    let e = error_of("MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5.1\rPID|1||1\rOBR|1||F1|\rOBX|1|NM|2093-3^Chol^LN||5\r");
    assert_eq!(e, "OBR(1)-4 is empty: cannot name the report");
    let e = error_of("MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5.1\rPID|1||1\rOBR|1||F1|X^Y^LN\rOBX|1|NM|||5\rOBX|2|NM|||6\r");
    assert_eq!(e, "OBX(1)-3 is empty: cannot identify the observation");
    let e = error_of("MSH|^~\\&|A|B|C|D|20240101||SIU^S12|1|P|2.5.1\rSCH|||\rPID|1||1\r");
    assert_eq!(
        e,
        "SCH-1 and SCH-2 are empty: cannot identify the appointment"
    );
    let e =
        error_of("MSH|^~\\&|A|B|C|D|20240101||VXU^V04|1|P|2.5.1\rPID|1||1\rRXA|0|1|20240101||\r");
    assert_eq!(e, "RXA(1)-5 is empty: cannot name the vaccine");
    let e = error_of("MSH|^~\\&|A|B|C|D|20240101||DFT^P03|1|P|2.5.1\rPID|1||1\rFT1|1\r");
    assert_eq!(
        e,
        "FT1(1)-7 is empty and so is FT1-25: cannot name the charge"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Arbitrary edits of real messages: translate returns a Bundle or a
    /// MapError, never panics.
    #[test]
    fn translate_never_panics(file in 0usize..8, edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..12)) {
        let names = ["oru_r01_value_types.hl7", "adt_a01_1.hl7", "vxu_v04_1.hl7", "siu_s12_1.hl7",
                     "mdm_t02_pdf.hl7", "dft_p03_1.hl7", "orm_o01_1.hl7", "oru_r01_multi_obr.hl7"];
        let mut raw = support::own(names[file]);
        let delims = b"|^~\\&\r0123456789+-.<>:/ ";
        for (pos, byte) in edits {
            let at = pos % raw.len();
            raw[at] = delims[usize::from(byte) % delims.len()];
        }
        if let Ok(msg) = Message::parse(&raw) {
            let ctx = MapContext::new("p");
            if let Ok(b) = fhir_map::translate(&msg, &ctx) {
                prop_assert_eq!(&b["resourceType"], "Bundle");
            }
        }
    }
}
