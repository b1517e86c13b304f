//! REF^I12 (referral) and REF^I14 (cancel referral) → a ServiceRequest of
//! category referral (SNOMED 3457005), with its Practitioners (PRD), the
//! Patient, the Encounter (PV1), Coverages (IN1), AllergyIntolerances
//! (AL1) and Conditions (DG1, the referral's reasons). The V2-to-FHIR IG's
//! segment maps: RF1 → ServiceRequest, PRD → Practitioner.
//!
//! | field | ServiceRequest |
//! | --- | --- |
//! | RF1-1 status (table 0283) | status: A accepted → active, P pending → draft, R rejected / I14 → revoked, E expired → completed, else active |
//! | RF1-2 priority (0280) | priority (S → stat, A → asap, R → routine) |
//! | RF1-3 type, RF1-5 category | code (RF1-3), category + referral |
//! | RF1-6 originating referral id (EI), RF1-11 external id | identifier (the key: RF1-6, else RF1-11, else MSH-10) |
//! | RF1-7 effective date, RF1-8 expiration | occurrencePeriod |
//! | RF1-9 process date | authoredOn |
//! | RF1-10 reason (CWE) | reasonCode; DG1 Conditions → reasonReference |
//! | PRD role RP (referring) / RT (referred to) / other | requester / performer |
//! | OBR/OBX | supportingInfo: the Observations |
//! | NTE | note |

use super::json::{json, Map, Value};

use super::adt::{map_allergies, map_conditions, map_coverages};
use super::bundle::Write;
use super::datatypes::{
    address, codeable_concept, contact_point, date_time, entity_identifier, human_name,
    identifier_pair, put, text, text_cow,
};
use super::encounter::map_encounter;
use super::observation::{map_obx, ObxLinks, ObxResult};
use super::shared::{meta, US_CORE_PRACTITIONER};
use super::tables::request_priority;
use super::{MapError, Mapper};
use hl7::Segment;

pub fn map(m: &mut Mapper<'_, '_, '_>, trigger: &str) -> Result<(), MapError> {
    let Some(rf1) = m.msg.segment("RF1") else {
        return Err(MapError::new(
            "RF1",
            "is missing: cannot identify the referral",
        ));
    };
    m.require_patient()?;
    map_encounter(m, trigger)?;
    map_allergies(m);
    map_coverages(m);
    let conditions = map_conditions(m);
    let (kind, id_rep) = if !text(&rf1.field(6).component(1)).is_empty() {
        ("originating", rf1.field(6).repetition(1))
    } else {
        ("external", rf1.field(11).repetition(1))
    };
    let key_value = text(&id_rep.component(1));
    let control_id = m.control_id();
    let ns = text(&id_rep.component(2));
    let key: [&str; 3] = if key_value.is_empty() {
        ["message", "", &control_id]
    } else {
        [kind, &ns, &key_value]
    };
    let rid = m.bundle.shared_rid("ServiceRequest", &key);
    let status = if trigger == "I14" {
        "revoked"
    } else {
        match text_cow(&rf1.field(1).component(1))
            .to_ascii_uppercase()
            .as_str()
        {
            "P" => "draft",
            "R" => "revoked",
            "E" => "completed",
            _ => "active",
        }
    };
    let mut sr = Map::new();
    sr.insert("status", Value::from(status));
    sr.insert("intent", Value::from("order"));
    let mut categories = vec![json!({ "coding": [{
        "system": "http://snomed.info/sct",
        "code": "3457005",
        "display": "Patient referral",
    }]})];
    if let Some(c) = codeable_concept(&rf1.field(5).repetition(1), m.ctx) {
        categories.push(c);
    }
    sr.insert("category", Value::Array(categories));
    put(
        &mut sr,
        "code",
        codeable_concept(&rf1.field(3).repetition(1), m.ctx),
    );
    put(
        &mut sr,
        "priority",
        request_priority(&text_cow(&rf1.field(2).component(1))),
    );
    sr.insert("subject", m.patient_ref());
    put(&mut sr, "encounter", m.encounter_ref());
    let mut identifiers = Vec::new();
    let mut match_id = None;
    for field in [6, 11] {
        if let Some(id) = entity_identifier(&rf1.field(field).repetition(1), "", m.ctx) {
            match_id = match_id.or_else(|| identifier_pair(&id));
            identifiers.push(Value::Object(id));
        }
    }
    put(&mut sr, "identifier", identifiers);
    let start = date_time(&text_cow(&rf1.field(7).component(1)), m.ctx);
    let end = date_time(&text_cow(&rf1.field(8).component(1)), m.ctx);
    let end = match (&start, end) {
        (Some(s), Some(e)) if e.len() == s.len() && e < *s => None,
        (_, e) => e,
    };
    put(
        &mut sr,
        "occurrencePeriod",
        json!({ "start": start, "end": end }),
    );
    put(
        &mut sr,
        "authoredOn",
        date_time(&text_cow(&rf1.field(9).component(1)), m.ctx),
    );
    let reasons: Vec<Value> = rf1
        .field(10)
        .repetitions()
        .filter_map(|r| codeable_concept(&r, m.ctx))
        .collect();
    put(&mut sr, "reasonCode", reasons);
    let reason_refs: Vec<Value> = conditions.into_iter().map(|c| c.reference).collect();
    put(&mut sr, "reasonReference", reason_refs);
    let msg = m.msg;
    let segments: Vec<Segment<'_, '_>> = msg.segments().collect();
    let mut performers = Vec::new();
    for prd in segments.iter().filter(|s| s.id() == "PRD") {
        let Some(who) = provider(m, prd) else {
            continue;
        };
        match text_cow(&prd.field(1).component(1))
            .to_ascii_uppercase()
            .as_str()
        {
            "RP" if !sr.contains_key("requester") => {
                sr.insert("requester", who);
            }
            _ => performers.push(who),
        }
    }
    put(&mut sr, "performer", performers);
    let order_key: Vec<String> = key.iter().map(|k| k.to_string()).collect();
    let mut supporting = Vec::new();
    let mut obx_number = 0;
    for seg in &segments {
        if seg.id() != "OBX" {
            continue;
        }
        obx_number += 1;
        let links = ObxLinks {
            order_key: &order_key,
            category: None,
            fallback_effective: String::new(),
            specimen: None,
            based_on: None,
        };
        if let ObxResult::Observation(o) = map_obx(m, seg, obx_number, &[], &links)? {
            supporting.push(m.bundle.reference(&o));
        }
    }
    put(&mut sr, "supportingInfo", supporting);
    let notes: Vec<Value> = segments
        .iter()
        .filter(|s| s.id() == "NTE")
        .map(|s| s.field(3).text().trim().to_string())
        .filter(|t| !t.is_empty())
        .map(|t| json!({ "text": t }))
        .collect();
    put(&mut sr, "note", notes);
    m.bundle.insert(rid, sr, match_id, Write::Upsert);
    Ok(())
}

/// PRD (role ^ name XPN ^ address ^ location ^ phone ^ ^ identifiers
/// (PRD-7: id ^ type)) → a Practitioner; a Reference to it.
fn provider(m: &mut Mapper<'_, '_, '_>, prd: &Segment<'_, '_>) -> Option<Value> {
    let name = human_name(&prd.field(2).repetition(1));
    let id_rep = prd.field(7).repetition(1);
    let id_value = text(&id_rep.component(1));
    let id_type = text(&id_rep.component(2));
    let family = text(&prd.field(2).component(1));
    let given = text(&prd.field(2).component(2));
    let rid = if !id_value.is_empty() {
        m.bundle
            .shared_rid("Practitioner", &["prd", &id_type, &id_value])
    } else if name.is_some() {
        m.bundle
            .shared_rid("Practitioner", &["name", &family, &given, ""])
    } else {
        return None;
    };
    let reference = m.bundle.reference(&rid);
    if m.bundle.contains(&rid) {
        return Some(reference);
    }
    let mut p = Map::new();
    let mut match_id = None;
    if !id_value.is_empty() {
        let system = m
            .ctx
            .identifier_systems
            .system_for(&m.ctx.tenant, &id_type, "", "");
        match_id = Some((system.clone(), id_value.clone()));
        p.insert(
            "identifier",
            json!([{ "system": system, "value": id_value }]),
        );
        if name.is_some() {
            p.insert("meta", meta(US_CORE_PRACTITIONER));
        }
    }
    put(&mut p, "name", name.map(|n| vec![n]).unwrap_or_default());
    let addresses: Vec<Value> = prd
        .field(3)
        .repetitions()
        .filter_map(|r| address(&r))
        .collect();
    put(&mut p, "address", addresses);
    let telecom: Vec<Value> = prd
        .field(5)
        .repetitions()
        .filter_map(|r| contact_point(&r))
        .collect();
    put(&mut p, "telecom", telecom);
    m.bundle.insert(rid, p, match_id, Write::CreateOnly);
    Some(reference)
}
