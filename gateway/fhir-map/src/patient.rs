//! PID (+PD1) → Patient, NK1 → RelatedPerson, after the IG's PID→Patient
//! and NK1→RelatedPerson maps, with US Core race and ethnicity extensions.
//!
//! The patient's id comes from PID-3: the first repetition whose CX-5 is
//! `MR` (the MRN, eCW's convention), else the first one with a value, with
//! its assigning authority. No PID-3 value is a [`MapError`]: a resource
//! nobody can find again must not be created.

use super::json::{json, Map, Value};

use super::bundle::{Rid, Write};
use super::datatypes::{
    address, authority_key, codeable_concept, concept, contact_point, date, date_time, fhir_code,
    human_name, identifier, identifier_pair, put, text, text_cow, v2_0203,
};
use super::shared::{meta, organization_from_xon, practitioners};
use super::tables::{
    gender, marital_status, omb_ethnicity, omb_race, relationship, CDC_RACE_ETHNICITY,
    US_CORE_ETHNICITY, US_CORE_RACE, V3_MARITAL, V3_ROLE_CODE,
};
use super::{MapError, Mapper};
use hl7::{Field, Repetition, Segment};

pub const US_CORE_PATIENT: &str = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient";
pub const US_CORE_RELATED_PERSON: &str =
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-relatedperson";

/// How a message writes its Patient. The ADT family owns demographics
/// and replaces the Patient ([`Write::Upsert`]); every other message
/// (results, orders, schedules, documents, ...) only makes sure it exists
/// ([`Write::CreateOnly`]: `POST` + `ifNoneExist` in conditional mode), so
/// that a late result can neither thin the Patient nor undo a merge
/// (`active`, `link`: see [`super::merge`]).
pub fn patient_write(msg_type: &str) -> Write {
    match msg_type {
        "ADT" => Write::Upsert,
        _ => Write::CreateOnly,
    }
}

/// The CX of a PID-3 (or MRG-1) list that keys the Patient: the first
/// repetition with a value whose CX-5 is `MR`, else the first with a value.
pub fn key_identifier<'f>(list: &Field<'f>) -> Option<Repetition<'f>> {
    list.repetitions()
        .filter(|r| !text(&r.component(1)).is_empty())
        .find(|r| text(&r.component(5)).eq_ignore_ascii_case("MR"))
        .or_else(|| {
            list.repetitions()
                .find(|r| !text(&r.component(1)).is_empty())
        })
}

/// The business key of a Patient: (authority, value) of [`key_identifier`].
pub fn patient_key(cx: &Repetition<'_>) -> (String, String) {
    (authority_key(&cx.component(4)), text(&cx.component(1)))
}

/// Maps the first PID to a Patient entry and returns its id.
pub fn map_patient(m: &mut Mapper<'_, '_, '_>) -> Result<Rid, MapError> {
    let Some(pid) = m.msg.segment("PID") else {
        return Err(MapError::new(
            "PID",
            "is missing: cannot identify the patient",
        ));
    };
    let write = patient_write(&m.msg_type);
    map_patient_segment(m, &pid, write)
}

/// Maps one PID (with the PD1 and NK1 of the message) to a Patient entry.
pub fn map_patient_segment(
    m: &mut Mapper<'_, '_, '_>,
    pid: &Segment<'_, '_>,
    write: Write,
) -> Result<Rid, MapError> {
    let pid = *pid;
    let Some(key_rep) = key_identifier(&pid.field(3)) else {
        return Err(MapError::new(
            "PID-3",
            "is empty: cannot identify the patient",
        ));
    };
    let (key_authority, key_value) = patient_key(&key_rep);
    let rid = m
        .bundle
        .shared_rid("Patient", &[&key_authority, &key_value]);
    let match_id = identifier(&key_rep, m.ctx)
        .as_ref()
        .and_then(identifier_pair);

    let mut identifiers: Vec<Value> = Vec::new();
    for field in [pid.field(3), pid.field(2), pid.field(4)] {
        for rep in field.repetitions() {
            if let Some(id) = identifier(&rep, m.ctx) {
                let id = Value::Object(id);
                if !identifiers.contains(&id) {
                    identifiers.push(id);
                }
            }
        }
    }
    let ssn = text(&pid.field(19).component(1));
    if !ssn.is_empty() {
        identifiers.push(json!({
            "system": "http://hl7.org/fhir/sid/us-ssn",
            "value": ssn,
            "type": v2_0203("SS"),
        }));
    }

    let names: Vec<Value> = pid
        .field(5)
        .repetitions()
        .filter_map(|r| human_name(&r))
        .collect();
    let gender = gender(&text_cow(&pid.field(8).component(1)));

    let mut patient = Map::new();
    if gender.is_some() && !names.is_empty() {
        patient.insert("meta", meta(US_CORE_PATIENT));
    }
    let mut extensions = Vec::new();
    if let Some(race) = race_extension(&pid.field(10)) {
        extensions.push(race);
    }
    if let Some(ethnicity) = ethnicity_extension(&pid.field(22)) {
        extensions.push(ethnicity);
    }
    put(&mut patient, "extension", extensions);
    put(&mut patient, "identifier", identifiers);
    put(&mut patient, "name", names);
    if let Some(g) = gender {
        patient.insert("gender", Value::from(g));
    }
    put(
        &mut patient,
        "birthDate",
        date(&text_cow(&pid.field(7).component(1))),
    );
    let addresses: Vec<Value> = pid
        .field(11)
        .repetitions()
        .filter_map(|r| address(&r))
        .collect();
    put(&mut patient, "address", addresses);
    let mut telecom: Vec<Value> = pid
        .field(13)
        .repetitions()
        .filter_map(|r| contact_point(&r))
        .collect();
    for rep in pid.field(14).repetitions() {
        if let Some(mut cp) = contact_point(&rep) {
            if let Value::Object(map) = &mut cp {
                if map
                    .get("use")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .is_empty()
                {
                    map.insert("use", Value::from("work"));
                }
            }
            telecom.push(cp);
        }
    }
    put(&mut patient, "telecom", telecom);
    if let Some(language) = language(&pid, m) {
        patient.insert(
            "communication",
            json!([{ "language": language, "preferred": true }]),
        );
    }
    if let Some((code, display)) = marital_status(&text_cow(&pid.field(16).component(1))) {
        patient.insert("maritalStatus", concept(V3_MARITAL, code, display));
    }
    let birth_order = text(&pid.field(25).component(1));
    match (
        birth_order.parse::<i64>(),
        text(&pid.field(24).component(1)).as_str(),
    ) {
        (Ok(n), _) if n > 0 => {
            patient.insert("multipleBirthInteger", Value::from(n));
        }
        (_, "Y") => {
            patient.insert("multipleBirthBoolean", Value::Bool(true));
        }
        (_, "N") => {
            patient.insert("multipleBirthBoolean", Value::Bool(false));
        }
        _ => {}
    }
    let death = date_time(&text_cow(&pid.field(29).component(1)), m.ctx);
    match (death, text(&pid.field(30).component(1)).as_str()) {
        (Some(when), _) => {
            patient.insert("deceasedDateTime", Value::from(when));
        }
        (None, "Y") => {
            patient.insert("deceasedBoolean", Value::Bool(true));
        }
        (None, "N") => {
            patient.insert("deceasedBoolean", Value::Bool(false));
        }
        _ => {}
    }
    if let Some(pd1) = m.msg.segment("PD1") {
        let gps = practitioners(m, &pd1.field(4));
        put(&mut patient, "generalPractitioner", gps);
        if let Some(org) = pd1
            .field(3)
            .repetitions()
            .find_map(|r| organization_from_xon(m, &r))
        {
            patient.insert("managingOrganization", org);
        }
    }
    m.bundle.insert(rid.clone(), patient, match_id, write);
    m.patient = Some(rid.clone());
    map_related_persons(m, &rid, &key_authority, &key_value);
    Ok(rid)
}

/// PID-15 → a CodeableConcept in BCP 47 (ISO 639-2 three-letter codes of
/// common languages become their two-letter tags).
fn language(pid: &Segment<'_, '_>, m: &Mapper<'_, '_, '_>) -> Option<Value> {
    let rep = pid.field(15).repetition(1);
    let code = fhir_code(&text_cow(&rep.component(1)));
    if code.is_empty() {
        return None;
    }
    let lower = code.to_ascii_lowercase();
    let tag = match lower.as_str() {
        "eng" => "en",
        "spa" => "es",
        "fra" | "fre" => "fr",
        "deu" | "ger" => "de",
        "zho" | "chi" => "zh",
        "vie" => "vi",
        "kor" => "ko",
        "rus" => "ru",
        "ara" => "ar",
        "por" => "pt",
        "ita" => "it",
        "jpn" => "ja",
        "pol" => "pl",
        "hin" => "hi",
        "tgl" => "tl",
        other => other,
    };
    let bcp47 = tag.len() >= 2
        && tag
            .split('-')
            .all(|p| !p.is_empty() && p.len() <= 8 && p.bytes().all(|b| b.is_ascii_alphanumeric()))
        && tag.split('-').next().is_some_and(|p| p.len() <= 3);
    if bcp47 {
        Some(json!({
            "coding": [{ "system": "urn:ietf:bcp:47", "code": tag.to_string() }],
            "text": text(&rep.component(2)),
        }))
    } else {
        codeable_concept(&rep, m.ctx)
    }
}

/// PID-10 → US Core race extension (OMB categories, detailed codes, text).
fn race_extension(field: &Field<'_>) -> Option<Value> {
    let mut parts = Vec::new();
    let mut texts = Vec::new();
    for rep in field.repetitions() {
        let code = fhir_code(&text_cow(&rep.component(1)));
        let display = text(&rep.component(2));
        let system = text(&rep.component(3)).to_ascii_uppercase();
        if !display.is_empty() {
            texts.push(display.clone());
        } else if !code.is_empty() {
            texts.push(code.clone());
        }
        let cdc = matches!(system.as_str(), "CDCREC" | "HL70005" | "");
        if code.is_empty() || !cdc || !code.contains('-') {
            continue;
        }
        let kind = if omb_race(&code) {
            "ombCategory"
        } else {
            "detailed"
        };
        parts.push(json!({
            "url": kind,
            "valueCoding": { "system": CDC_RACE_ETHNICITY, "code": code, "display": display },
        }));
    }
    if parts.is_empty() && texts.is_empty() {
        return None;
    }
    let text_value = if texts.is_empty() {
        "Unknown".to_string()
    } else {
        texts.join(", ")
    };
    parts.push(json!({ "url": "text", "valueString": text_value }));
    Some(json!({ "url": US_CORE_RACE, "extension": parts }))
}

/// PID-22 → US Core ethnicity extension.
fn ethnicity_extension(field: &Field<'_>) -> Option<Value> {
    let mut parts = Vec::new();
    let mut texts = Vec::new();
    for rep in field.repetitions() {
        let code = text(&rep.component(1));
        let display = text(&rep.component(2));
        if let Some((omb, omb_display)) = omb_ethnicity(&code) {
            parts.push(json!({
                "url": "ombCategory",
                "valueCoding": { "system": CDC_RACE_ETHNICITY, "code": omb, "display": omb_display },
            }));
            texts.push(if display.is_empty() {
                omb_display.to_string()
            } else {
                display
            });
        } else if !display.is_empty() {
            texts.push(display);
        }
    }
    if parts.is_empty() && texts.is_empty() {
        return None;
    }
    parts.push(json!({ "url": "text", "valueString": texts.join(", ") }));
    Some(json!({ "url": US_CORE_ETHNICITY, "extension": parts }))
}

/// Every NK1 → RelatedPerson, keyed by the patient and the person's name
/// and relationship (NK1-1 set ids are renumbered by senders).
fn map_related_persons(
    m: &mut Mapper<'_, '_, '_>,
    patient: &Rid,
    key_authority: &str,
    key_value: &str,
) {
    let nk1s: Vec<Segment<'_, '_>> = m.msg.segments_named("NK1").collect();
    for nk1 in nk1s {
        let name = nk1.field(2).repetitions().find_map(|r| human_name(&r));
        let rel_code = text(&nk1.field(3).component(1));
        let family = text(&nk1.field(2).component(1));
        let given = text(&nk1.field(2).component(2));
        if name.is_none() && rel_code.is_empty() {
            continue;
        }
        let rid = m.bundle.shared_rid(
            "RelatedPerson",
            &[key_authority, key_value, &family, &given, &rel_code],
        );
        let mut relationships = Vec::new();
        if let Some((code, display)) = relationship(&rel_code) {
            relationships.push(concept(V3_ROLE_CODE, code, display));
        } else if let Some(c) = codeable_concept(&nk1.field(3).repetition(1), m.ctx) {
            relationships.push(c);
        }
        if let Some(role) = codeable_concept(&nk1.field(7).repetition(1), m.ctx) {
            relationships.push(role);
        }
        let mut person = Map::new();
        if name.is_some() && !relationships.is_empty() {
            person.insert("meta", meta(US_CORE_RELATED_PERSON));
        }
        person.insert("active", Value::Bool(true));
        person.insert("patient", m.bundle.reference(patient));
        put(&mut person, "relationship", relationships);
        put(
            &mut person,
            "name",
            name.map(|n| vec![n]).unwrap_or_default(),
        );
        let addresses: Vec<Value> = nk1
            .field(4)
            .repetitions()
            .filter_map(|r| address(&r))
            .collect();
        put(&mut person, "address", addresses);
        let telecom: Vec<Value> = [nk1.field(5), nk1.field(6)]
            .iter()
            .flat_map(|f| f.repetitions())
            .filter_map(|r| contact_point(&r))
            .collect();
        put(&mut person, "telecom", telecom);
        let start = date(&text_cow(&nk1.field(8).component(1)));
        let end = date(&text_cow(&nk1.field(9).component(1)));
        if let (Some(s), Some(e)) = (&start, &end) {
            if s > e {
                // A period that ends before it starts is invalid FHIR; keep the start.
                person.insert("period", json!({ "start": s }));
                m.bundle.insert(rid, person, None, Write::Upsert);
                continue;
            }
        }
        person.insert("period", json!({ "start": start, "end": end }));
        m.bundle.insert(rid, person, None, Write::Upsert);
    }
}
