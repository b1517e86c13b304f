//! docs/mappings/<MESSAGE>.md, one per message type: the segment/field →
//! FHIR path table, the id rule and one example in and out. This test is
//! their source: it writes them with `UPDATE_MAPPING_DOCS=1` and otherwise
//! fails when a committed page differs from what it would write (so a page
//! cannot drift from the code), and every FHIR path in a table must have a
//! value in the page's example Bundle (so a row cannot claim a mapping the
//! code does not make).
//!
//! `cargo test -p fhir-map --test it -- mapping_docs` checks;
//! `UPDATE_MAPPING_DOCS=1 cargo test -p fhir-map --test it -- mapping_docs`
//! rewrites the pages after a mapping change.

use crate::support::*;
use fhir_map::MapContext;
use hl7::Message;
use serde_json::Value;

struct Page {
    message: &'static str,
    title: &'static str,
    /// The own-corpus file shown in and out.
    example: &'static str,
    /// Where the mapping's module doc (the full story) is.
    module: &'static str,
    id_rule: &'static str,
    /// (HL7 v2 segment-field, FHIR path `Type.element.child`).
    rows: &'static [(&'static str, &'static str)],
}

const PAGES: &[Page] = &[
    Page {
        message: "ADT",
        title: "ADT (admit, discharge, transfer, registration, updates, cancels, merges)",
        example: "adt_a01_visit.hl7",
        module: "adt.rs, encounter.rs, patient.rs, merge.rs",
        id_rule: "Patient: PID-3 (the `MR` repetition, else the first) value + assigning authority. Encounter: PV1-19 visit number + authority, else patient + PV1-44 admit time, else patient + MSH-10. A40/A47: the MRG-1 Patient is keyed the same way.",
        rows: &[
            ("PID-3", "Patient.identifier"),
            ("PID-5", "Patient.name"),
            ("PID-7", "Patient.birthDate"),
            ("PID-8", "Patient.gender"),
            ("PID-11", "Patient.address"),
            ("PID-13", "Patient.telecom"),
            ("MSH-9.2 trigger (table 0003)", "Encounter.status"),
            ("PV1-2", "Encounter.class"),
            ("PV1-3", "Encounter.location.location"),
            ("PV1-4", "Encounter.type"),
            ("PV1-7", "Encounter.participant.individual"),
            ("PV1-19", "Encounter.identifier"),
            ("PV1-44", "Encounter.period.start"),
            ("MSH-3, MSH-4, MSH-10", "Provenance.agent, Provenance.entity"),
        ],
    },
    Page {
        message: "ORU",
        title: "ORU^R01 (observation results)",
        example: "oru_r01_lipid_1.hl7",
        module: "oru.rs, observation.rs",
        id_rule: "The order key: OBR-3 filler (else OBR-2 placer, ORC-3, ORC-2; else MSH-10 + OBR-1) with its namespace. DiagnosticReport: order + OBR-4. Observation: order + OBX-3 + OBX-4 sub-id. ServiceRequest: placer (else filler) number.",
        rows: &[
            ("OBR-4", "DiagnosticReport.code"),
            ("OBR-25", "DiagnosticReport.status"),
            ("OBR-22", "DiagnosticReport.issued"),
            ("OBX-3", "Observation.code"),
            ("OBX-5 (NM), OBX-6", "Observation.valueQuantity"),
            ("OBX-7", "Observation.referenceRange"),
            ("OBX-8", "Observation.interpretation"),
            ("OBX-11", "Observation.status"),
            ("OBX-14", "Observation.effectiveDateTime"),
            ("OBX-16", "Observation.performer"),
            ("ORC-2/OBR-2, ORC-3/OBR-3", "ServiceRequest.identifier"),
        ],
    },
    Page {
        message: "ORM",
        title: "ORM^O01 (orders)",
        example: "orm_o01_1.hl7",
        module: "orm.rs",
        id_rule: "ServiceRequest: ORC-2/OBR-2 placer number (else ORC-3/OBR-3 filler) + namespace.",
        rows: &[
            ("ORC-1, ORC-5", "ServiceRequest.status"),
            ("ORC-1", "ServiceRequest.intent"),
            ("OBR-4", "ServiceRequest.code"),
            ("ORC-2, ORC-3", "ServiceRequest.identifier"),
        ],
    },
    Page {
        message: "OML",
        title: "OML^O21 (laboratory orders)",
        example: "oml_o21_1.hl7",
        module: "orm.rs (with oru.rs's specimens)",
        id_rule: "ServiceRequest as ORM. Specimen: SPM-2 (filler, else placer) id, else order + SPM-1.",
        rows: &[
            ("OBR-4", "ServiceRequest.code"),
            ("ORC-12", "ServiceRequest.requester"),
            ("SPM", "ServiceRequest.specimen"),
            ("SPM-2", "Specimen.identifier"),
            ("SPM-4", "Specimen.type"),
            ("SPM-17", "Specimen.collection.collectedDateTime"),
        ],
    },
    Page {
        message: "OMG",
        title: "OMG^O19 (general clinical orders)",
        example: "omg_o19_1.hl7",
        module: "orm.rs",
        id_rule: "ServiceRequest as ORM.",
        rows: &[
            ("OBR-4", "ServiceRequest.code"),
            ("ORC-1", "ServiceRequest.status"),
            ("ORC-12", "ServiceRequest.requester"),
            ("NTE", "ServiceRequest.note"),
        ],
    },
    Page {
        message: "OUL",
        title: "OUL^R22/R23/R24 (unsolicited laboratory results)",
        example: "oul_r22_1.hl7",
        module: "oul.rs (grouping), oru.rs (resources)",
        id_rule: "As ORU: the order key (OBR-3 filler, else placer ...).",
        rows: &[
            ("SPM (before or after its OBR)", "DiagnosticReport.specimen"),
            ("OBR-4", "DiagnosticReport.code"),
            ("OBX-5, OBX-6", "Observation.valueQuantity"),
            ("OBX-7", "Observation.referenceRange"),
            ("SPM-4", "Specimen.type"),
        ],
    },
    Page {
        message: "VXU",
        title: "VXU^V04 (vaccination updates)",
        example: "vxu_v04_1.hl7",
        module: "vxu.rs",
        id_rule: "Immunization: ORC-3 filler order number when sent, else patient + RXA-3 + RXA-5.",
        rows: &[
            ("RXA-5", "Immunization.vaccineCode"),
            ("RXA-3", "Immunization.occurrenceDateTime"),
            ("RXA-6, RXA-7", "Immunization.doseQuantity"),
            ("RXA-15", "Immunization.lotNumber"),
            ("RXA-17", "Immunization.manufacturer"),
            ("RXA-20, RXA-21", "Immunization.status"),
        ],
    },
    Page {
        message: "SIU",
        title: "SIU (scheduling: S12-S17, S26)",
        example: "siu_s12_sch11_only.hl7",
        module: "siu.rs",
        id_rule: "Appointment: SCH-2 filler appointment id, else SCH-1 placer, with its namespace.",
        rows: &[
            ("MSH-9.2 trigger, SCH-25", "Appointment.status"),
            ("SCH-11.4 (else TQ1-7, AIS-4 ...)", "Appointment.start"),
            ("SCH-11.5 (else TQ1-8, start + duration)", "Appointment.end"),
            ("SCH-9, SCH-10", "Appointment.minutesDuration"),
            ("SCH-7", "Appointment.reasonCode"),
            ("SCH-8", "Appointment.appointmentType"),
            ("AIS-3", "Appointment.serviceType"),
            ("AIL-3", "Appointment.participant.actor"),
        ],
    },
    Page {
        message: "MDM",
        title: "MDM (documents: T01-T06, T09, T10)",
        example: "mdm_t02_1.hl7",
        module: "mdm.rs",
        id_rule: "DocumentReference: TXA-12 unique document number, else TXA-16 filler order, else MSH-10.",
        rows: &[
            ("TXA-2", "DocumentReference.type"),
            ("TXA-12", "DocumentReference.masterIdentifier"),
            ("TXA-17", "DocumentReference.docStatus"),
            ("TXA-9 / TXA-5", "DocumentReference.author"),
            ("OBX-5", "DocumentReference.content.attachment"),
        ],
    },
    Page {
        message: "DFT",
        title: "DFT^P03/P11 (financial transactions)",
        example: "dft_p03_1.hl7",
        module: "dft.rs",
        id_rule: "ChargeItem: FT1-2 transaction id, else FT1-1 + PV1-19 + FT1-4. Account: PID-18.",
        rows: &[
            ("FT1-25 / FT1-7", "ChargeItem.code"),
            ("FT1-10", "ChargeItem.quantity"),
            ("FT1-11", "ChargeItem.priceOverride"),
            ("FT1-4", "ChargeItem.occurrenceDateTime"),
            ("PID-18", "Account.identifier"),
        ],
    },
    Page {
        message: "BAR",
        title: "BAR^P01/P02/P12 (billing accounts)",
        example: "bar_p01_1.hl7",
        module: "bar.rs",
        id_rule: "Account: PID-18 + authority. Procedure: patient + PR1-3 + PR1-5.",
        rows: &[
            ("PID-18", "Account.identifier"),
            ("MSH-9.2 (P02: inactive)", "Account.status"),
            ("PR1-3", "Procedure.code"),
            ("PR1-5", "Procedure.performedDateTime"),
            ("DG1-3", "Condition.code"),
        ],
    },
    Page {
        message: "RDE",
        title: "RDE^O11/O25 (pharmacy encoded orders)",
        example: "rde_o11_1.hl7",
        module: "pharmacy.rs",
        id_rule: "MedicationRequest: ORC-2 placer, else ORC-3 filler, else RXE-15 prescription number, else MSH-10 + order number.",
        rows: &[
            ("RXE-2 (else RXO-1)", "MedicationRequest.medicationCodeableConcept"),
            ("ORC-5 / ORC-1", "MedicationRequest.status"),
            ("ORC-12", "MedicationRequest.requester"),
            ("ORC-9", "MedicationRequest.authoredOn"),
            ("RXE-3, RXE-5", "MedicationRequest.dosageInstruction.doseAndRate.doseQuantity"),
            ("RXR-1", "MedicationRequest.dosageInstruction.route"),
            ("TQ1-3, TQ1-7/8", "MedicationRequest.dosageInstruction.timing"),
            ("RXE-10, RXE-11", "MedicationRequest.dispenseRequest.quantity"),
        ],
    },
    Page {
        message: "RDS",
        title: "RDS^O13 (pharmacy dispense)",
        example: "rds_o13_1.hl7",
        module: "pharmacy.rs",
        id_rule: "MedicationDispense: the order's key + RXD-1 dispense counter.",
        rows: &[
            ("RXD-2", "MedicationDispense.medicationCodeableConcept"),
            ("RXD-3", "MedicationDispense.whenHandedOver"),
            ("RXD-4, RXD-5", "MedicationDispense.quantity"),
            ("RXD-7", "MedicationDispense.identifier"),
            ("ORC/RXE", "MedicationDispense.authorizingPrescription"),
        ],
    },
    Page {
        message: "REF",
        title: "REF^I12/I14 (referrals)",
        example: "ref_i12_1.hl7",
        module: "referral.rs",
        id_rule: "ServiceRequest: RF1-6 originating referral id, else RF1-11 external id, else MSH-10. Practitioner (PRD): PRD-7 id + type, else the name.",
        rows: &[
            ("RF1-1 (I14: revoked)", "ServiceRequest.status"),
            ("RF1-3", "ServiceRequest.code"),
            ("RF1-6", "ServiceRequest.identifier"),
            ("RF1-7, RF1-8", "ServiceRequest.occurrencePeriod"),
            ("RF1-10", "ServiceRequest.reasonCode"),
            ("PRD (RP)", "ServiceRequest.requester"),
            ("PRD (RT)", "ServiceRequest.performer"),
            ("DG1", "ServiceRequest.reasonReference"),
        ],
    },
    Page {
        message: "PPR",
        title: "PPR^PC1/PC2/PC3 (problems)",
        example: "ppr_pc1_1.hl7",
        module: "problem.rs",
        id_rule: "Condition: PRB-4 problem instance id + namespace, else patient + PRB-3.",
        rows: &[
            ("PRB-3", "Condition.code"),
            ("PRB-4", "Condition.identifier"),
            ("PRB-14 (PC3 / PRB-1 DE: entered-in-error)", "Condition.clinicalStatus"),
            ("PRB-7", "Condition.recordedDate"),
            ("PRB-16", "Condition.onsetDateTime"),
        ],
    },
];

/// Whether `path` (`Type.a.b`, arrays looked through) has a value in any
/// resource of that type in `bundle`.
fn has_path(bundle: &Value, path: &str) -> bool {
    let mut parts = path.split('.');
    let rtype = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    resources(bundle, rtype).into_iter().any(|r| {
        let mut nodes = vec![r];
        for key in &rest {
            nodes = nodes
                .into_iter()
                .flat_map(|n| match &n[*key] {
                    Value::Array(a) => a.iter().collect::<Vec<_>>(),
                    Value::Null => Vec::new(),
                    other => vec![other],
                })
                .collect();
        }
        !nodes.is_empty()
    })
}

fn render(page: &Page) -> String {
    let raw = own(page.example);
    let msg = Message::parse(&raw).unwrap();
    let ctx = MapContext::new("acme");
    let pretty = fhir_map::translate_pretty(&msg, &ctx).unwrap();
    let bundle: Value = serde_json::from_slice(&pretty).unwrap();
    for (field, path) in page.rows {
        for p in path.split(", ") {
            assert!(
                has_path(&bundle, p),
                "{}: row {field} → {p} has no value in {}",
                page.message,
                page.example
            );
        }
    }
    let mut out = String::new();
    out.push_str(&format!("# {}\n\n", page.title));
    out.push_str(
        "Generated by `gateway/fhir-map/tests/it/mapping_docs.rs` from the mapping and its golden \
         example; do not edit by hand (`UPDATE_MAPPING_DOCS=1 cargo test -p fhir-map --test \
         it -- mapping_docs` rewrites it).\n\n",
    );
    out.push_str(&format!(
        "Code: `gateway/fhir-map/src/` {} (its module doc has every rule and the choices where \
         the HL7 V2-to-FHIR IG has no map).\n\n",
        page.module
    ));
    out.push_str(&format!("**Ids.** {}\n\n", page.id_rule));
    out.push_str("| HL7 v2 | FHIR R4 |\n| --- | --- |\n");
    for (field, path) in page.rows {
        out.push_str(&format!("| {field} | `{path}` |\n"));
    }
    out.push_str(&format!(
        "\n## Example\n\nIn (`gateway/fhir-map/tests/corpus/{}`, segments one per line):\n\n```text\n",
        page.example
    ));
    let text = String::from_utf8_lossy(&raw);
    for segment in text.split(['\r', '\n']).filter(|s| !s.is_empty()) {
        out.push_str(segment);
        out.push('\n');
    }
    out.push_str("```\n\nOut (tenant `acme`, PUT mode, default options):\n\n```json\n");
    out.push_str(&String::from_utf8(pretty).unwrap());
    out.push_str("\n```\n");
    out
}

#[test]
fn mapping_pages_match_the_code() {
    let dir = repo_root().join("docs/mappings");
    let update = std::env::var("UPDATE_MAPPING_DOCS").is_ok_and(|v| v == "1");
    if update {
        std::fs::create_dir_all(&dir).unwrap();
    }
    let mut stale = Vec::new();
    for page in PAGES {
        let path = dir.join(format!("{}.md", page.message));
        let want = render(page);
        if update {
            std::fs::write(&path, &want).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(want.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale mapping pages (run UPDATE_MAPPING_DOCS=1 cargo test -p fhir-map --test it -- mapping_docs): {stale:?}"
    );
}

#[test]
fn every_mapped_message_type_has_a_page() {
    for msg_type in [
        "ADT", "ORU", "ORM", "OML", "OMG", "OUL", "VXU", "SIU", "MDM", "DFT", "BAR", "RDE", "RDS",
        "REF", "PPR",
    ] {
        assert!(
            PAGES.iter().any(|p| p.message == msg_type),
            "no page for {msg_type}"
        );
    }
}
