//! FHIR results → ORU^R01 v2.5.1 that hl7apy validates (STRICT), with
//! eCW's conventions: PID-3 the MRN, OBR-2/3 placer/filler, OBX value
//! types following the Observation's value[x].

use fhir_map::{MapContext, ToHl7Context};
use hl7::Message;
use serde_json::{json, Value};

use crate::support;

fn ctx() -> ToHl7Context {
    ToHl7Context {
        sending_application: "CLOUDLAB".into(),
        sending_facility: "LAB".into(),
        receiving_application: "ECW".into(),
        receiving_facility: "CLINIC01".into(),
        control_id: "RT0001".into(),
        timestamp: "20240312100000-0500".into(),
        processing_id: "P".into(),
    }
}

/// hl7apy's verdict (STRICT validation) on the ORU files.
fn hl7apy_validates(files: &[std::path::PathBuf]) -> Option<String> {
    support::validator("validate_oru.py", &["hl7apy"], files)
}

/// A cloud lab's searchset: absolute references, a contained-free Patient,
/// the ServiceRequest with the placer number.
fn searchset() -> Value {
    let base = "https://fhir.lab.example/R4";
    json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"fullUrl": format!("{base}/DiagnosticReport/dr1"), "resource": {
                "resourceType": "DiagnosticReport", "id": "dr1", "status": "final",
                "identifier": [{"system": "https://lab.example/filler", "value": "LAB-778",
                                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "FILL"}]}}],
                "basedOn": [{"reference": format!("{base}/ServiceRequest/sr1")}],
                "code": {"coding": [{"system": "http://loinc.org", "code": "24331-1", "display": "Lipid panel"}]},
                "subject": {"reference": "Patient/p1"},
                "effectiveDateTime": "2024-03-11T08:00:00-05:00",
                "issued": "2024-03-11T12:00:00.000-05:00",
                "conclusion": "Borderline lipids",
                "result": [{"reference": "Observation/o1"}, {"reference": "Observation/o2"},
                           {"reference": "Observation/o3"}, {"reference": "Observation/o4"}]}},
            {"fullUrl": format!("{base}/ServiceRequest/sr1"), "resource": {
                "resourceType": "ServiceRequest", "id": "sr1", "status": "completed", "intent": "order",
                "subject": {"reference": "Patient/p1"},
                "identifier": [{"value": "ORD-42", "system": "urn:clinic-gateway:acme:id:ECW",
                                "type": {"coding": [{"code": "PLAC"}]}}]}},
            {"fullUrl": format!("{base}/Patient/p1"), "resource": {
                "resourceType": "Patient", "id": "p1",
                "identifier": [{"system": "urn:oid:2.16.840.1.113883.3.999.1", "value": "SSN-NOT-THIS"},
                               {"system": "urn:clinic-gateway:acme:id:ECW", "value": "MRN1001",
                                "type": {"coding": [{"code": "MR"}]}}],
                "name": [{"family": "Testperson", "given": ["Alpha", "Q"]}],
                "gender": "female", "birthDate": "1980-01-15"}},
            {"resource": {"resourceType": "Observation", "id": "o1", "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "2093-3", "display": "Cholesterol"}]},
                "valueQuantity": {"value": 201, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"},
                "referenceRange": [{"high": {"value": 200}}],
                "interpretation": [{"coding": [{"code": "H"}]}],
                "effectiveDateTime": "2024-03-11T08:00:00-05:00",
                "note": [{"text": "Repeat in 3 months"}]}},
            {"resource": {"resourceType": "Observation", "id": "o2", "status": "corrected",
                "code": {"coding": [{"system": "http://loinc.org", "code": "5196-1", "display": "HBsAg"}]},
                "valueQuantity": {"value": 0.5, "comparator": "<", "unit": "IU/mL"}}},
            {"resource": {"resourceType": "Observation", "id": "o3", "status": "preliminary",
                "code": {"coding": [{"system": "http://loinc.org", "code": "600-7"}]},
                "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "112283007", "display": "Escherichia coli"}]}}},
            {"resource": {"resourceType": "Observation", "id": "o4", "status": "final",
                "code": {"text": "Comment"},
                "valueString": "Line one\nLine two | with ^ delimiters"}}
        ]
    })
}

#[test]
fn searchset_to_oru_follows_ecw_conventions() {
    let oru = fhir_map::results_to_oru(&searchset(), &ctx()).unwrap();
    let msg = Message::parse(&oru).unwrap();
    assert_eq!(msg.text("MSH-9").unwrap(), "ORU^R01^ORU_R01");
    assert_eq!(msg.text("MSH-10").unwrap(), "RT0001");
    assert_eq!(msg.text("MSH-12").unwrap(), "2.5.1");
    assert_eq!(msg.text("PID-3.1").unwrap(), "MRN1001");
    assert_eq!(msg.text("PID-3.4").unwrap(), "ECW");
    assert_eq!(msg.text("PID-5.1").unwrap(), "Testperson");
    assert_eq!(msg.text("PID-7").unwrap(), "19800115");
    assert_eq!(msg.text("OBR-2.1").unwrap(), "ORD-42");
    assert_eq!(msg.text("OBR-3.1").unwrap(), "LAB-778");
    assert_eq!(msg.text("OBR-4.1").unwrap(), "24331-1");
    assert_eq!(msg.text("OBR-4.3").unwrap(), "LN");
    assert_eq!(msg.text("OBR-7").unwrap(), "20240311080000-0500");
    assert_eq!(msg.text("OBR-25").unwrap(), "F");
    assert_eq!(msg.text("OBX(1)-2").unwrap(), "NM");
    assert_eq!(msg.text("OBX(1)-5").unwrap(), "201");
    assert_eq!(msg.text("OBX(1)-6").unwrap(), "mg/dL^mg/dL^UCUM");
    assert_eq!(msg.text("OBX(1)-7").unwrap(), "<200");
    assert_eq!(msg.text("OBX(1)-8").unwrap(), "H");
    assert_eq!(msg.text("OBX(1)-11").unwrap(), "F");
    assert_eq!(msg.text("OBX(2)-2").unwrap(), "SN");
    assert_eq!(msg.text("OBX(2)-5").unwrap(), "<^0.5");
    assert_eq!(msg.text("OBX(2)-11").unwrap(), "C");
    assert_eq!(msg.text("OBX(3)-2").unwrap(), "CWE");
    assert_eq!(msg.text("OBX(3)-5.3").unwrap(), "SCT");
    assert_eq!(msg.text("OBX(4)-2").unwrap(), "TX");
    assert_eq!(
        msg.text("OBX(4)-5").unwrap(),
        "Line one\nLine two | with ^ delimiters"
    );
    assert_eq!(msg.segments_named("NTE").count(), 2);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("searchset.oru");
    std::fs::write(&file, &oru).unwrap();
    hl7apy_validates(&[file]);
}

#[test]
fn our_own_oru_bundles_round_trip_through_hl7apy() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let mut sources: Vec<_> = support::own_corpus()
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("oru_"))
        .collect();
    sources.extend(support::shared_corpus().into_iter().filter(|p| {
        let n = p.file_name().unwrap().to_string_lossy().into_owned();
        n.starts_with("ORU") || n.starts_with("LAB-ORU") || n.starts_with("LRI")
    }));
    sources.sort();
    assert!(sources.len() >= 12, "{}", sources.len());
    for src in &sources {
        let raw = std::fs::read(src).unwrap();
        let bundle =
            fhir_map::translate(&Message::parse(&raw).unwrap(), &MapContext::new("acme")).unwrap();
        let oru = fhir_map::results_to_oru(&bundle, &ctx())
            .unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        // The MRN survives the trip.
        let back = Message::parse(&oru).unwrap();
        assert_eq!(
            back.text("PID-3.1").unwrap(),
            Message::parse(&raw)
                .unwrap()
                .header()
                .patient_id
                .unwrap()
                .id,
            "{}",
            src.display()
        );
        let out = dir.path().join(format!(
            "{}.oru",
            src.file_stem().unwrap().to_string_lossy()
        ));
        std::fs::write(&out, &oru).unwrap();
        files.push(out);
    }
    let Some(report) = hl7apy_validates(&files) else {
        return;
    };
    assert!(
        report.contains(&format!("{} passed, 0 failed", files.len())),
        "{report}"
    );
}

#[test]
fn reverse_errors_name_the_fhir_element() {
    let e = fhir_map::results_to_oru(
        &json!({"resourceType": "Bundle", "type": "searchset"}),
        &ctx(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "DiagnosticReport is missing: the input has no report to send"
    );
    let mut b = searchset();
    b["entry"].as_array_mut().unwrap().remove(2);
    let e = fhir_map::results_to_oru(&b, &ctx()).unwrap_err();
    assert_eq!(e.location, "DiagnosticReport.subject");
    let mut b = searchset();
    b["entry"].as_array_mut().unwrap().remove(3);
    let e = fhir_map::results_to_oru(&b, &ctx()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "DiagnosticReport[0].result[0] does not resolve to an Observation in the input"
    );
}
