//! PV1/PV2 → Encounter, after the IG's PV1→Encounter map. The status
//! comes from the trigger ([`trigger_status`], after the IG's table 0003
//! → EncounterStatus map); other messages derive it from PV1-44 (admit) and
//! PV1-45 (discharge).
//!
//! Cancels correct the Encounter they cancel, never make a new one: A11
//! (cancel admit) and A27 (cancel pending admit) set it `cancelled`, A12
//! (cancel transfer) puts the patient back in PV1-3, A13 (cancel
//! discharge) makes it `in-progress` again and drops `period.end`; A25/A26
//! (cancel pending discharge/transfer) keep it `in-progress`. As every
//! message writes the whole Encounter, the last message wins: A01 → A11 →
//! A01 is one Encounter, `in-progress`. A cancel must name its visit
//! (PV1-19, else PV1-44 admit time): one that does not is refused, since
//! the Encounter it corrects cannot be found.
//!
//! Locations: PV1-3 (`active`, `completed` once finished) and, after a
//! transfer, PV1-6 prior location (`completed`).

use super::json::{json, Map, Value};

use super::bundle::{Rid, Write};
use super::datatypes::{
    authority_key, codeable_concept, date_time, identifier, identifier_pair, put, table_concept,
    text, text_cow, v2_0203,
};
use super::shared::{location, meta, practitioners};
use super::tables::{encounter_class, V3_ACT_CODE};
use super::{MapError, Mapper};

pub const US_CORE_ENCOUNTER: &str =
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-encounter";

const PARTICIPATION_TYPE: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";

/// Maps the first PV1, if any, to an Encounter; sets `m.encounter`.
/// Needs the patient mapped first (the key may fall back to it).
pub fn map_encounter(m: &mut Mapper<'_, '_, '_>, trigger: &str) -> Result<Option<Rid>, MapError> {
    let Some(pv1) = m.msg.segment("PV1") else {
        return Ok(None);
    };
    let Some(patient) = m.patient.clone() else {
        return Ok(None);
    };
    let visit = pv1.field(19).repetition(1);
    let visit_number = text(&visit.component(1));
    let admit = text(&pv1.field(44).component(1));
    let discharge = text(&pv1.field(45).component(1));
    let cancel = matches!(
        trigger,
        "A11" | "A12" | "A13" | "A25" | "A26" | "A27" | "A38"
    );
    if cancel && visit_number.is_empty() && admit.is_empty() {
        return Err(MapError::new(
            "PV1-19",
            "and PV1-44 are empty: a cancel must name the visit it corrects",
        ));
    }
    let rid = if !visit_number.is_empty() {
        let auth = authority_key(&visit.component(4));
        m.bundle
            .shared_rid("Encounter", &["visit", &auth, &visit_number])
    } else if !admit.is_empty() {
        m.bundle
            .shared_rid("Encounter", &["patient", &patient.id, "admit", &admit])
    } else {
        let control_id = m.control_id();
        m.bundle.shared_rid(
            "Encounter",
            &["patient", &patient.id, "message", &control_id],
        )
    };

    let status = match trigger_status(trigger) {
        Some(s) => s,
        None if !discharge.is_empty() => "finished",
        None if !admit.is_empty() => "in-progress",
        None => "unknown",
    };
    let (class_code, class_display) = encounter_class(&text_cow(&pv1.field(2).component(1)));
    let mut enc = Map::new();
    enc.insert("status", Value::from(status));
    enc.insert(
        "class",
        json!({ "system": V3_ACT_CODE, "code": class_code, "display": class_display }),
    );
    enc.insert("subject", m.bundle.reference(&patient));
    let mut match_id = None;
    if let Some(mut id) = identifier(&visit, m.ctx) {
        id.insert("type", v2_0203("VN"));
        match_id = identifier_pair(&id);
        enc.insert("identifier", json!([id]));
    }
    let types: Vec<Value> = table_concept(&pv1.field(4).repetition(1), "0007", m.ctx)
        .into_iter()
        .collect();
    if !types.is_empty() {
        enc.insert("meta", meta(US_CORE_ENCOUNTER));
    }
    put(&mut enc, "type", types);
    if let Some(service) = table_concept(&pv1.field(10).repetition(1), "0069", m.ctx) {
        enc.insert("serviceType", service);
    }
    let mut participants = Vec::new();
    for (field, code, display) in [
        (7, "ATND", "attender"),
        (8, "REF", "referrer"),
        (9, "CON", "consultant"),
        (17, "ADM", "admitter"),
    ] {
        for individual in practitioners(m, &pv1.field(field)) {
            participants.push(json!({
                "type": [{ "coding": [{ "system": PARTICIPATION_TYPE, "code": code, "display": display }] }],
                "individual": individual,
            }));
        }
    }
    put(&mut enc, "participant", participants);
    // A cancelled admit and a cancelled discharge have no end.
    let mut end = if matches!(status, "in-progress" | "cancelled" | "planned" | "arrived")
        && trigger_status(trigger).is_some()
    {
        String::new()
    } else {
        discharge.clone()
    };
    if trigger == "A03" && end.is_empty() {
        if let Some(evn) = m.msg.segment("EVN") {
            end = text(&evn.field(6).component(1));
            if end.is_empty() {
                end = text(&evn.field(2).component(1));
            }
        }
    }
    let start = date_time(&admit, m.ctx);
    let mut end = date_time(&end, m.ctx);
    if let (Some(s), Some(e)) = (&start, &end) {
        // Same precision compares as text; a discharge before the admit is
        // dropped rather than written as an invalid period.
        if s.len() == e.len() && e < s {
            end = None;
        }
    }
    enc.insert("period", json!({ "start": start, "end": end }));
    let location_status = if status == "finished" {
        "completed"
    } else {
        "active"
    };
    let mut locations = Vec::new();
    if let Some(loc) = location(m, &pv1.field(3).repetition(1)) {
        locations.push(json!({ "location": loc, "status": location_status }));
    }
    if let Some(prior) = location(m, &pv1.field(6).repetition(1)) {
        if !locations.iter().any(|l| l["location"] == prior) {
            locations.push(json!({ "location": prior, "status": "completed" }));
        }
    }
    put(&mut enc, "location", locations);
    let mut hospitalization = Map::new();
    if let Some(source) = table_concept(&pv1.field(14).repetition(1), "0023", m.ctx) {
        hospitalization.insert("admitSource", source);
    }
    if let Some(disposition) = table_concept(&pv1.field(36).repetition(1), "0112", m.ctx) {
        hospitalization.insert("dischargeDisposition", disposition);
    }
    put(&mut enc, "hospitalization", hospitalization);
    if let Some(pv2) = m.msg.segment("PV2") {
        if let Some(reason) = codeable_concept(&pv2.field(3).repetition(1), m.ctx) {
            enc.insert("reasonCode", json!([reason]));
        }
    }
    m.bundle.insert(rid.clone(), enc, match_id, Write::Upsert);
    m.encounter = Some(rid.clone());
    Ok(Some(rid))
}

/// The Encounter.status an ADT trigger sets (the IG's table 0003 map;
/// A04 stays `arrived`, as the patient is registered and present). `None`:
/// derived from PV1-44/45 (A08, A09, A10, results, orders, ...).
pub fn trigger_status(trigger: &str) -> Option<&'static str> {
    Some(match trigger {
        "A01" | "A02" | "A06" | "A07" | "A12" | "A13" | "A15" | "A16" | "A25" | "A26" => {
            "in-progress"
        }
        "A03" => "finished",
        "A04" => "arrived",
        "A05" | "A14" => "planned",
        "A11" | "A27" | "A38" => "cancelled",
        _ => return None,
    })
}
