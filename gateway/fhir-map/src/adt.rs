//! ADT → Patient, Encounter, and the patient's RelatedPersons (NK1),
//! Coverages (IN1/IN2), AllergyIntolerances (AL1, and IAM for A60) and
//! Conditions (DG1). The Coverage and Condition maps are shared with DFT,
//! BAR and ORM.
//!
//! | trigger | what |
//! | --- | --- |
//! | A01 A02 A03 A04 A05 A06 A07 A08 A09 A10 A11 A12 A13 A14 A15 A16 A25 A26 A27 A38 | Patient + Encounter (status per [`super::encounter::trigger_status`]) + the rest |
//! | A41 (merge account), A45 (move visit) | the same: the Patient and the Encounter of the PV1; the account move itself has no Patient effect (Account resources come from DFT/BAR) |
//! | A28 (add person), A31 (update person) | Patient, no Encounter |
//! | A29 (delete person) | Patient with `active` = false (a PUT: nothing is deleted on the server) |
//! | A40 (merge patient), A47 (change identifier) | [`super::merge`] |
//! | A60 (adverse reactions) | Patient, Encounter when PV1 is sent, AllergyIntolerance per IAM |

use super::json::{json, Map, Value};

use super::bundle::{Rid, Write};
use super::datatypes::{
    codeable_concept, concept, date, date_time, fhir_code, identifier, identifier_pair, put, text,
    text_cow,
};
use super::encounter::map_encounter;
use super::shared::{meta, organization_in, practitioner};
use super::tables::{allergy_category, allergy_criticality, subscriber_relationship};
use super::{MapError, Mapper};
use hl7::Segment;

pub const US_CORE_ALLERGY: &str =
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-allergyintolerance";
pub const US_CORE_CONDITION: &str =
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-condition-encounter-diagnosis";
pub const US_CORE_COVERAGE: &str =
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-coverage";

pub fn map(m: &mut Mapper<'_, '_, '_>, trigger: &str) -> Result<(), MapError> {
    if matches!(trigger, "A40" | "A47") {
        return super::merge::map(m, trigger);
    }
    let patient = m.require_patient()?;
    if trigger == "A29" {
        if let Some(p) = m.bundle.resource_mut(&patient) {
            p.insert("active", Value::Bool(false));
        }
    }
    if !matches!(trigger, "A28" | "A29" | "A31") {
        map_encounter(m, trigger)?;
    }
    map_allergies(m);
    map_adverse_reactions(m);
    map_conditions(m);
    map_coverages(m);
    Ok(())
}

/// Every AL1 → AllergyIntolerance, keyed by patient + allergen code.
pub fn map_allergies(m: &mut Mapper<'_, '_, '_>) {
    let Some(patient) = m.patient.clone() else {
        return;
    };
    let al1s: Vec<Segment<'_, '_>> = m.msg.segments_named("AL1").collect();
    for al1 in al1s {
        let Some((rid, mut allergy)) = allergy(m, &patient, &al1, ("confirmed", "Confirmed"), true)
        else {
            continue;
        };
        put(
            &mut allergy,
            "onsetDateTime",
            date_time(&text_cow(&al1.field(6).component(1)), m.ctx),
        );
        m.bundle.insert(rid, allergy, None, Write::Upsert);
    }
}

/// What AL1 and IAM share (the same fields): type 2 → category, allergen
/// 3 → code (and the key: patient + allergen), severity 4 → criticality,
/// reactions 5. `None` without an allergen.
fn allergy(
    m: &mut Mapper<'_, '_, '_>,
    patient: &Rid,
    seg: &Segment<'_, '_>,
    verification: (&'static str, &'static str),
    active: bool,
) -> Option<(Rid, Map)> {
    let allergen = seg.field(3).repetition(1);
    let code = codeable_concept(&allergen, m.ctx)?;
    let rid = m.bundle.shared_rid(
        "AllergyIntolerance",
        &[
            &patient.id,
            &text_cow(&allergen.component(3)),
            &text_cow(&allergen.component(1)),
            &text_cow(&allergen.component(2)),
        ],
    );
    let mut allergy = Map::new();
    allergy.insert("meta", meta(US_CORE_ALLERGY));
    if active {
        allergy.insert(
            "clinicalStatus",
            concept(
                "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                "active",
                "Active",
            ),
        );
    }
    allergy.insert(
        "verificationStatus",
        concept(
            "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
            verification.0,
            verification.1,
        ),
    );
    allergy.insert("code", code);
    allergy.insert("patient", m.bundle.reference(patient));
    if let Some(category) = allergy_category(&text_cow(&seg.field(2).component(1))) {
        allergy.insert("category", json!([category]));
    }
    if let Some(criticality) = allergy_criticality(&text_cow(&seg.field(4).component(1))) {
        allergy.insert("criticality", Value::from(criticality));
    }
    let reactions: Vec<Value> = seg
        .field(5)
        .repetitions()
        .map(|r| r.text().trim().to_string())
        .filter(|t| !t.is_empty())
        .map(|t| json!({ "manifestation": [{ "text": t }] }))
        .collect();
    put(&mut allergy, "reaction", reactions);
    Some((rid, allergy))
}

/// Every IAM (A60 patient adverse reaction information) →
/// AllergyIntolerance: allergen IAM-3, category IAM-2, severity IAM-4 →
/// criticality, reaction IAM-5 and the IAR segments after it (IAR-1
/// manifestation, IAR-2 severity), onset IAM-11, reported IAM-13 →
/// recordedDate, verification IAM-17 (table 0438: C confirmed, else
/// unconfirmed). IAM-6 action D (delete) → `entered-in-error`. Keyed like
/// AL1 (patient + allergen), so an AL1 and an IAM for one allergy are one
/// resource; IAM-7 unique identifier is its identifier.
pub fn map_adverse_reactions(m: &mut Mapper<'_, '_, '_>) {
    let Some(patient) = m.patient.clone() else {
        return;
    };
    let msg = m.msg;
    let segments: Vec<Segment<'_, '_>> = msg.segments().collect();
    for (i, iam) in segments.iter().enumerate() {
        if iam.id() != "IAM" {
            continue;
        }
        // The IAR reactions after it, up to the next IAM.
        let iars: Vec<&Segment<'_, '_>> = segments
            .iter()
            .skip(i + 1)
            .take_while(|s| s.id() != "IAM")
            .filter(|s| s.id() == "IAR")
            .collect();
        let deleted = text_cow(&iam.field(6).component(1)).eq_ignore_ascii_case("D");
        let verification = match (deleted, text_cow(&iam.field(17).component(1)).as_ref()) {
            (true, _) => ("entered-in-error", "Entered in Error"),
            (false, "C" | "c") => ("confirmed", "Confirmed"),
            _ => ("unconfirmed", "Unconfirmed"),
        };
        let Some((rid, mut allergy)) = allergy(m, &patient, iam, verification, !deleted) else {
            continue;
        };
        if let Some(id) =
            super::datatypes::entity_identifier(&iam.field(7).repetition(1), "", m.ctx)
        {
            allergy.insert("identifier", json!([id]));
        }
        let mut reactions = match allergy.get("reaction") {
            Some(Value::Array(list)) => list.clone(),
            _ => Vec::new(),
        };
        for iar in iars {
            let Some(manifestation) = codeable_concept(&iar.field(1).repetition(1), m.ctx) else {
                continue;
            };
            let severity = match text_cow(&iar.field(2).component(1))
                .to_ascii_uppercase()
                .as_str()
            {
                "MI" => "mild",
                "MO" => "moderate",
                "SV" => "severe",
                _ => "",
            };
            reactions.push(json!({ "manifestation": [manifestation], "severity": severity }));
        }
        put(&mut allergy, "reaction", reactions);
        put(
            &mut allergy,
            "onsetDateTime",
            date_time(&text_cow(&iam.field(11).component(1)), m.ctx),
        );
        put(
            &mut allergy,
            "recordedDate",
            date_time(&text_cow(&iam.field(13).component(1)), m.ctx),
        );
        m.bundle.insert(rid, allergy, None, Write::Upsert);
    }
}

/// A Condition made from a DG1, for links from FT1-19 and ORM reasons.
pub struct ConditionLink {
    /// Index of the DG1 in the message.
    pub segment_index: usize,
    /// DG1-3.1, as a FHIR code.
    pub code: String,
    pub reference: Value,
}

/// What every Condition has: its category (condition-category), code and
/// subject.
pub fn condition_basics(
    condition: &mut Map,
    category: &'static str,
    display: &'static str,
    code: Value,
    subject: Value,
) {
    condition.insert(
        "category",
        json!([concept(
            "http://terminology.hl7.org/CodeSystem/condition-category",
            category,
            display
        )]),
    );
    condition.insert("code", code);
    condition.insert("subject", subject);
}

/// Every DG1 → Condition (encounter diagnosis), keyed by patient +
/// diagnosis code.
pub fn map_conditions(m: &mut Mapper<'_, '_, '_>) -> Vec<ConditionLink> {
    let mut out = Vec::new();
    let Some(patient) = m.patient.clone() else {
        return out;
    };
    let dg1s: Vec<Segment<'_, '_>> = m.msg.segments_named("DG1").collect();
    for dg1 in dg1s {
        let diagnosis = dg1.field(3).repetition(1);
        let description = text(&dg1.field(4).component(1));
        let code = match codeable_concept(&diagnosis, m.ctx) {
            Some(c) => c,
            None if !description.is_empty() => json!({ "text": &description }),
            None => continue,
        };
        let code_value = fhir_code(&text_cow(&diagnosis.component(1)));
        let rid = m.bundle.shared_rid(
            "Condition",
            &[
                &patient.id,
                &text_cow(&diagnosis.component(3)),
                &code_value,
                if code_value.is_empty() {
                    &description
                } else {
                    ""
                },
            ],
        );
        let verification = match text(&dg1.field(6).component(1))
            .to_ascii_uppercase()
            .as_str()
        {
            "F" => Some(("confirmed", "Confirmed")),
            "A" | "W" => Some(("provisional", "Provisional")),
            _ => None,
        };
        let mut condition = Map::new();
        condition.insert("meta", meta(US_CORE_CONDITION));
        condition.insert(
            "clinicalStatus",
            concept(
                "http://terminology.hl7.org/CodeSystem/condition-clinical",
                "active",
                "Active",
            ),
        );
        if let Some((v, d)) = verification {
            condition.insert(
                "verificationStatus",
                concept(
                    "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    v,
                    d,
                ),
            );
        }
        condition_basics(
            &mut condition,
            "encounter-diagnosis",
            "Encounter Diagnosis",
            code,
            m.bundle.reference(&patient),
        );
        put(&mut condition, "encounter", m.encounter_ref());
        put(
            &mut condition,
            "onsetDateTime",
            date_time(&text_cow(&dg1.field(5).component(1)), m.ctx),
        );
        if let Some(asserter) = practitioner(m, &dg1.field(16).repetition(1)) {
            condition.insert("asserter", asserter);
        }
        let reference = m.bundle.reference(&rid);
        m.bundle.insert(rid, condition, None, Write::Upsert);
        out.push(ConditionLink {
            segment_index: dg1.index(),
            code: code_value,
            reference,
        });
    }
    out
}

/// Every IN1 (+ the IN2 after it) → Coverage with its payor Organization.
/// Returns the Coverage ids.
pub fn map_coverages(m: &mut Mapper<'_, '_, '_>) -> Vec<Rid> {
    let mut out = Vec::new();
    let Some(patient) = m.patient.clone() else {
        return out;
    };
    let in1s: Vec<Segment<'_, '_>> = m.msg.segments_named("IN1").collect();
    for in1 in in1s {
        let company_id = in1.field(3).repetition(1);
        let company_id_value = text(&company_id.component(1));
        let plan = text(&in1.field(2).component(1));
        let policy = text(&in1.field(36).component(1));
        let company_name = text(&in1.field(4).component(1));
        if company_id_value.is_empty()
            && plan.is_empty()
            && policy.is_empty()
            && company_name.is_empty()
        {
            continue;
        }
        let rid = m.bundle.shared_rid(
            "Coverage",
            &[&patient.id, &company_id_value, &plan, &policy],
        );
        let authority = company_id.component(4);
        let ns = authority.subcomponent(1).text();
        let uid = authority.subcomponent(2).text();
        let utype = authority.subcomponent(3).text();
        let payor = organization_in(
            m,
            &company_name,
            &company_id_value,
            (ns.trim(), uid.trim(), utype.trim()),
        )
        .unwrap_or_else(|| m.bundle.reference(&patient));
        let mut coverage = Map::new();
        coverage.insert("status", Value::from("active"));
        coverage.insert("beneficiary", m.bundle.reference(&patient));
        coverage.insert("payor", json!([payor]));
        let mut match_id = None;
        if !policy.is_empty() {
            let system =
                m.ctx
                    .identifier_systems
                    .system_for(&m.ctx.tenant, &company_id_value, "", "");
            match_id = Some((system.clone(), policy.clone()));
            coverage.insert(
                "identifier",
                json!([{ "system": system, "value": &policy,
                         "type": super::datatypes::v2_0203("MB") }]),
            );
            coverage.insert("subscriberId", Value::from(policy));
        }
        if let Some(kind) = codeable_concept(&in1.field(15).repetition(1), m.ctx) {
            coverage.insert("type", kind);
        }
        if let Some(rel) = subscriber_relationship(&text_cow(&in1.field(17).component(1))) {
            coverage.insert(
                "relationship",
                concept(
                    "http://terminology.hl7.org/CodeSystem/subscriber-relationship",
                    rel,
                    rel,
                ),
            );
        }
        // US Core Coverage needs relationship (1..1): claimed only with it.
        if coverage.contains_key("relationship") {
            coverage.insert("meta", meta(US_CORE_COVERAGE));
        }
        let start = date(&text_cow(&in1.field(12).component(1)));
        let end = date(&text_cow(&in1.field(13).component(1)));
        let end = match (&start, end) {
            (Some(s), Some(e)) if e.len() == s.len() && e < *s => None,
            (_, e) => e,
        };
        coverage.insert("period", json!({ "start": start, "end": end }));
        let group = text(&in1.field(8).component(1));
        if !group.is_empty() {
            coverage.insert(
                "class",
                json!([{
                    "type": concept("http://terminology.hl7.org/CodeSystem/coverage-class", "group", "Group"),
                    "value": group,
                    "name": text(&in1.field(9).component(1)),
                }]),
            );
        }
        if let Some(id) = identifier(&in1.field(49).repetition(1), m.ctx) {
            if let Some((_, value)) = identifier_pair(&id) {
                coverage.insert("subscriberId", Value::from(value));
            }
        }
        m.bundle
            .insert(rid.clone(), coverage, match_id, Write::Upsert);
        out.push(rid);
    }
    out
}
