//! ORM^O01, OMG^O19 (general clinical order) and OML^O21 (laboratory
//! order) → a ServiceRequest per order (ORC + OBR), with the order's
//! Specimens (SPM, OML) as `specimen`: status from ORC-5
//! (else ORC-1), intent from ORC-1, code OBR-4, requester ORC-12 / OBR-16,
//! reasons from OBR-31 and the DG1s of the order (as Conditions), notes
//! from NTE, supporting OBX as Observations. ORU reuses
//! [`service_request`] so that a result points at the order it answers.
//!
//! Key: the placer order number (ORC-2, else OBR-2) with its namespace,
//! else the filler number (ORC-3, else OBR-3): the same order in an ORM and
//! in the ORU that answers it is one ServiceRequest.

use super::json::{json, Map, Value};

use super::adt::map_conditions;
use super::bundle::{Rid, Write};
use super::datatypes::{
    codeable_concept, codeable_concepts, date_time, entity_identifier, identifier_pair, put, text,
    text_cow,
};
use super::encounter::map_encounter;
use super::observation::{map_obx, ObxLinks, ObxResult};
use super::oru::{map_specimens, order_groups, order_key, OrderGroup};
use super::shared::{meta, practitioner};
use super::tables::{request_priority, service_request_intent, service_request_status};
use super::{MapError, Mapper};
use hl7::{Repetition, Segment};

pub const US_CORE_SERVICE_REQUEST: &str =
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-servicerequest";

pub fn map(m: &mut Mapper<'_, '_, '_>) -> Result<(), MapError> {
    m.require_patient()?;
    map_encounter(m, "O01")?;
    let conditions = map_conditions(m);
    let msg = m.msg;
    let segments: Vec<Segment<'_, '_>> = msg.segments().collect();
    let groups = order_groups(&segments);
    if groups.is_empty() {
        return Err(MapError::new(
            "OBR",
            "is missing: an ORM needs at least one order",
        ));
    }
    for g in &groups {
        let reasons: Vec<Value> = conditions
            .iter()
            .filter(|c| g.diagnoses.contains(&c.segment_index))
            .map(|c| c.reference.clone())
            .collect();
        let key = order_key(m, g);
        let sr = service_request(m, g, &key, &reasons)?;
        // OML (lab orders) and OMG send the specimens of the order.
        let specimens = if m.msg_type == "ORM" {
            Vec::new()
        } else {
            map_specimens(m, g, &key)
        };
        if let (Some((rid, _)), false) = (&sr, specimens.is_empty()) {
            if let Some(resource) = m.bundle.resource_mut(rid) {
                resource.insert("specimen", Value::Array(specimens));
            }
        }
        let mut supporting = Vec::new();
        for (obx, number, notes) in &g.results {
            let links = ObxLinks {
                order_key: &key,
                category: None,
                fallback_effective: String::new(),
                specimen: None,
                based_on: None,
            };
            if let ObxResult::Observation(rid) = map_obx(m, obx, *number, notes, &links)? {
                supporting.push(m.bundle.reference(&rid));
            }
        }
        if let (Some((rid, _)), false) = (sr, supporting.is_empty()) {
            if let Some(resource) = m.bundle.resource_mut(&rid) {
                resource.insert("supportingInfo", Value::Array(supporting));
            }
        }
    }
    Ok(())
}

/// The ORC number when valued, else the OBR one.
fn pick<'a>(orc_rep: Option<Repetition<'a>>, obr_rep: Repetition<'a>) -> Repetition<'a> {
    match orc_rep {
        Some(r) if !text(&r.component(1)).is_empty() => r,
        _ => obr_rep,
    }
}

/// The ServiceRequest of an order group; a Reference to it. `None` only
/// when the order has neither a placer nor a filler number and no ORC (an
/// ORU's OBR alone).
pub fn service_request(
    m: &mut Mapper<'_, '_, '_>,
    g: &OrderGroup<'_, '_>,
    order_key: &[String],
    reasons: &[Value],
) -> Result<Option<(Rid, Value)>, MapError> {
    let orc = g.orc.as_ref();
    let orc_field = |n: usize| orc.map(|o| o.field(n).repetition(1));
    // An ORC alone (no OBR) reads its numbers from the ORC only.
    let obr = g.obr.as_ref().or(orc);
    let Some(obr) = obr else {
        return Ok(None);
    };
    let obr_present = g.obr.is_some();
    let obr_field = |n: usize| {
        if obr_present {
            obr.field(n)
        } else {
            // No such field: an empty view.
            obr.field(9999)
        }
    };
    let placer = pick(orc_field(2), obr_field(2).repetition(1));
    let filler = pick(orc_field(3), obr_field(3).repetition(1));
    let ns = |r: &Repetition<'_>| {
        let n = text(&r.component(2));
        if n.is_empty() {
            text(&r.component(3))
        } else {
            n
        }
    };
    let key: Vec<String> = if !text(&placer.component(1)).is_empty() {
        vec!["placer".into(), ns(&placer), text(&placer.component(1))]
    } else if !text(&filler.component(1)).is_empty() {
        vec!["filler".into(), ns(&filler), text(&filler.component(1))]
    } else if orc.is_some() && matches!(m.msg_type.as_str(), "ORM" | "OMG" | "OML") {
        order_key.to_vec()
    } else {
        return Ok(None);
    };
    let key_refs: Vec<&str> = key.iter().map(String::as_str).collect();
    let rid = m.bundle.shared_rid("ServiceRequest", &key_refs);
    let reference = m.bundle.reference(&rid);

    let order_control = orc
        .map(|o| text(&o.field(1).component(1)))
        .unwrap_or_default();
    let order_status = orc
        .map(|o| text(&o.field(5).component(1)))
        .unwrap_or_default();
    let mut status = service_request_status(&order_status, &order_control);
    if status == "unknown" && orc.is_none() {
        // An ORU's OBR without ORC: results exist, so the order was acted on.
        status = "active";
    }
    let mut sr = Map::new();
    sr.insert("status", Value::from(status));
    sr.insert(
        "intent",
        Value::from(service_request_intent(&order_control)),
    );
    let code = codeable_concept(&obr_field(4).repetition(1), m.ctx);
    if code.is_some() {
        sr.insert("meta", meta(US_CORE_SERVICE_REQUEST));
    }
    put(&mut sr, "code", code);
    put(&mut sr, "subject", m.patient_ref());
    put(&mut sr, "encounter", m.encounter_ref());
    let mut identifiers = Vec::new();
    let mut match_id = None;
    for (rep, type_code) in [(&placer, "PLAC"), (&filler, "FILL")] {
        if let Some(id) = entity_identifier(rep, type_code, m.ctx) {
            if match_id.is_none() {
                match_id = identifier_pair(&id);
            }
            identifiers.push(Value::Object(id));
        }
    }
    put(&mut sr, "identifier", identifiers);
    let requester = orc
        .and_then(|o| practitioner(m, &o.field(12).repetition(1)))
        .or_else(|| practitioner(m, &obr_field(16).repetition(1)));
    put(&mut sr, "requester", requester);
    put(
        &mut sr,
        "authoredOn",
        orc.and_then(|o| date_time(&text_cow(&o.field(9).component(1)), m.ctx)),
    );
    let occurrence = date_time(&text_cow(&obr_field(6).component(1)), m.ctx)
        .or_else(|| date_time(&text_cow(&obr_field(7).component(1)), m.ctx));
    put(&mut sr, "occurrenceDateTime", occurrence);
    // Priority: OBR-5 (v2.3/2.4), ORC-7.6 / OBR-27.6 (TQ), TQ1-9.
    let tq1_priority = m
        .msg
        .segment("TQ1")
        .map(|t| text(&t.field(9).component(1)))
        .unwrap_or_default();
    let priority = [
        text(&obr_field(5).component(1)),
        orc.map(|o| text(&o.field(7).component(6)))
            .unwrap_or_default(),
        text(&obr_field(27).component(6)),
        tq1_priority,
    ]
    .iter()
    .find_map(|p| request_priority(p));
    put(&mut sr, "priority", priority);
    put(
        &mut sr,
        "reasonCode",
        codeable_concepts(&obr_field(31), m.ctx),
    );
    put(&mut sr, "reasonReference", reasons.to_vec());
    let notes: Vec<Value> = g.notes.iter().map(|n| json!({ "text": n })).collect();
    put(&mut sr, "note", notes);
    m.bundle.insert(rid.clone(), sr, match_id, Write::Upsert);
    Ok(Some((rid, reference)))
}
