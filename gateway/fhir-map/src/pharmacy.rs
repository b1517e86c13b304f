//! RDE^O11 / RDE^O25 (pharmacy encoded order, and its refill) →
//! MedicationRequest; RDS^O13 (dispense) → MedicationDispense per RXD,
//! naming the MedicationRequest of its order (`authorizingPrescription`).
//! After the IG's RXE → MedicationRequest, RXO → MedicationRequest and
//! RXD → MedicationDispense segment maps.
//!
//! One order per ORC (with the RXO, RXE, RXR, TQ1, RXC, RXD and NTE after
//! it). MedicationRequest: medication RXE-2 (else RXO-1), status ORC-5
//! (else ORC-1), intent `order`, requester ORC-12, authoredOn ORC-9,
//! identifiers ORC-2 placer / ORC-3 filler / RXE-15 prescription number,
//! dosage text RXE-7 (else RXO-7), dose RXE-3 + RXE-5 units, route RXR-1,
//! timing TQ1-3 repeat pattern and TQ1-7/8 bounds, dispense quantity
//! RXE-10/11, refills RXE-12, reason RXE-27, NTE → note. Amounts are exact
//! decimals. MedicationDispense: medication RXD-2, quantity RXD-4/5,
//! whenHandedOver RXD-3, performer RXD-10, prescription number RXD-7,
//! RXD-9 instructions → note; status `completed` (`cancelled` when the
//! order is).
//!
//! Keys: the MedicationRequest like a ServiceRequest (placer, else filler,
//! else RXE-15 prescription number, else MSH-10 + order number); a
//! MedicationDispense is its order's key + RXD-1 dispense counter.

use super::json::{json, Map, Value};

use super::bundle::{Rid, Write};
use super::datatypes::{
    codeable_concept, codeable_concepts, date_time, decimal, entity_identifier, identifier_pair,
    put, sub, table_concept, text, text_cow,
};
use super::encounter::map_encounter;
use super::observation::quantity;
use super::shared::{meta, practitioner};
use super::tables::service_request_status;
use super::{MapError, Mapper};
use hl7::Segment;

pub const US_CORE_MEDICATION_REQUEST: &str =
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-medicationrequest";

/// One pharmacy order: its ORC and the segments after it.
#[derive(Default)]
struct Order<'m, 'a> {
    orc: Option<Segment<'m, 'a>>,
    rxo: Option<Segment<'m, 'a>>,
    rxe: Option<Segment<'m, 'a>>,
    rxr: Option<Segment<'m, 'a>>,
    tq1: Option<Segment<'m, 'a>>,
    dispenses: Vec<Segment<'m, 'a>>,
    notes: Vec<String>,
}

pub fn map(m: &mut Mapper<'_, '_, '_>) -> Result<(), MapError> {
    m.require_patient()?;
    map_encounter(m, "O11")?;
    let msg = m.msg;
    let segments: Vec<Segment<'_, '_>> = msg.segments().collect();
    let mut orders: Vec<Order<'_, '_>> = Vec::new();
    for seg in &segments {
        let id = seg.id();
        if id == "ORC" || orders.is_empty() && matches!(id, "RXO" | "RXE" | "RXD") {
            orders.push(Order::default());
        }
        let Some(o) = orders.last_mut() else {
            continue;
        };
        match id {
            "ORC" => o.orc = Some(*seg),
            "RXO" => o.rxo = Some(*seg),
            "RXE" => o.rxe = Some(*seg),
            // The route of the encoded order wins over the requested one.
            "RXR" if o.rxr.is_none() || (o.rxe.is_some() && o.dispenses.is_empty()) => {
                o.rxr = Some(*seg)
            }
            "TQ1" if o.tq1.is_none() || o.rxe.is_some() => o.tq1 = Some(*seg),
            "RXD" => o.dispenses.push(*seg),
            "NTE" => {
                let note = seg.field(3).text().trim().to_string();
                if !note.is_empty() {
                    o.notes.push(note);
                }
            }
            _ => {}
        }
    }
    if orders.is_empty() {
        return Err(MapError::new(
            "RXE",
            "is missing: a pharmacy message needs at least one order",
        ));
    }
    for (n, order) in orders.iter().enumerate() {
        let request = medication_request(m, order, n + 1)?;
        for rxd in &order.dispenses {
            medication_dispense(m, order, rxd, request.as_ref(), n + 1)?;
        }
    }
    Ok(())
}

/// The order's key: placer, filler, prescription number, else MSH-10 + n.
fn order_key(m: &Mapper<'_, '_, '_>, o: &Order<'_, '_>, number: usize) -> Vec<String> {
    let orc = |f: usize| o.orc.map(|s| s.field(f).repetition(1));
    for (kind, rep) in [("placer", orc(2)), ("filler", orc(3))] {
        if let Some(r) = rep {
            let value = text(&r.component(1));
            if !value.is_empty() {
                return vec![kind.into(), text(&r.component(2)), value];
            }
        }
    }
    let rx = o
        .rxe
        .map(|r| text(&r.field(15).component(1)))
        .unwrap_or_default();
    if !rx.is_empty() {
        return vec!["prescription".into(), rx];
    }
    vec!["message".into(), m.control_id(), number.to_string()]
}

fn medication_request(
    m: &mut Mapper<'_, '_, '_>,
    o: &Order<'_, '_>,
    number: usize,
) -> Result<Option<Rid>, MapError> {
    if o.rxe.is_none() && o.rxo.is_none() {
        return Ok(None);
    }
    let code = o
        .rxe
        .and_then(|r| codeable_concept(&r.field(2).repetition(1), m.ctx))
        .or_else(|| {
            o.rxo
                .and_then(|r| codeable_concept(&r.field(1).repetition(1), m.ctx))
        });
    let Some(code) = code else {
        return Err(MapError::new(
            format!("RXE({number})-2"),
            "is empty and so is RXO-1: cannot name the medication",
        ));
    };
    let key = order_key(m, o, number);
    let key_refs: Vec<&str> = key.iter().map(String::as_str).collect();
    let rid = m.bundle.shared_rid("MedicationRequest", &key_refs);
    let control = o
        .orc
        .map(|s| text(&s.field(1).component(1)))
        .unwrap_or_default();
    let order_status = o
        .orc
        .map(|s| text(&s.field(5).component(1)))
        .unwrap_or_default();
    let status = match service_request_status(&order_status, &control) {
        "revoked" => "cancelled",
        "unknown" => "active",
        other => other,
    };
    let mut mr = Map::new();
    mr.insert("status", Value::from(status));
    mr.insert("intent", Value::from("order"));
    mr.insert("medicationCodeableConcept", code);
    mr.insert("subject", m.patient_ref());
    put(&mut mr, "encounter", m.encounter_ref());
    let mut identifiers = Vec::new();
    let mut match_id = None;
    if let Some(orc) = o.orc {
        for (field, type_code) in [(2, "PLAC"), (3, "FILL")] {
            if let Some(id) = entity_identifier(&orc.field(field).repetition(1), type_code, m.ctx) {
                match_id = match_id.or_else(|| identifier_pair(&id));
                identifiers.push(Value::Object(id));
            }
        }
        put(
            &mut mr,
            "authoredOn",
            date_time(&text_cow(&orc.field(9).component(1)), m.ctx),
        );
        if let Some(requester) = practitioner(m, &orc.field(12).repetition(1)) {
            mr.insert("meta", meta(US_CORE_MEDICATION_REQUEST));
            mr.insert("requester", requester);
        }
    }
    if let Some(rxe) = o.rxe {
        if let Some(id) = entity_identifier(&rxe.field(15).repetition(1), "", m.ctx) {
            match_id = match_id.or_else(|| identifier_pair(&id));
            identifiers.push(Value::Object(id));
        }
        put(
            &mut mr,
            "reasonCode",
            codeable_concepts(&rxe.field(27), m.ctx),
        );
    }
    put(&mut mr, "identifier", identifiers);
    put(&mut mr, "dosageInstruction", dosage(m, o));
    let mut dispense = Map::new();
    let amount = |seg: Option<Segment<'_, '_>>, value: usize, units: usize| {
        seg.and_then(|s| {
            decimal(&text_cow(&s.field(value).component(1)))
                .map(|v| quantity(v, &s.field(units).repetition(1), m.ctx, None))
        })
    };
    put(
        &mut dispense,
        "quantity",
        amount(o.rxe, 10, 11).or_else(|| amount(o.rxo, 11, 12)),
    );
    let refills = o
        .rxe
        .map(|r| text(&r.field(12).component(1)))
        .or_else(|| o.rxo.map(|r| text(&r.field(13).component(1))))
        .and_then(|t| t.parse::<i64>().ok())
        .filter(|n| *n >= 0);
    put(&mut dispense, "numberOfRepeatsAllowed", refills);
    put(&mut mr, "dispenseRequest", dispense);
    let notes: Vec<Value> = o.notes.iter().map(|n| json!({ "text": n })).collect();
    put(&mut mr, "note", notes);
    m.bundle.insert(rid.clone(), mr, match_id, Write::Upsert);
    Ok(Some(rid))
}

/// The one Dosage of the order (text, timing, route, dose).
fn dosage(m: &mut Mapper<'_, '_, '_>, o: &Order<'_, '_>) -> Vec<Value> {
    let instructions = |seg: Option<Segment<'_, '_>>, field: usize| {
        seg.map(|s| {
            s.field(field)
                .repetitions()
                .map(|r| {
                    let t = text(&r.component(2));
                    if t.is_empty() {
                        text(&r.component(1))
                    } else {
                        t
                    }
                })
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
    };
    let mut text_value = instructions(o.rxe, 7);
    if text_value.is_empty() {
        text_value = instructions(o.rxo, 7);
    }
    let mut d = Map::new();
    put(&mut d, "text", text_value);
    if let Some(tq1) = o.tq1 {
        let mut timing = Map::new();
        let start = date_time(&text_cow(&tq1.field(7).component(1)), m.ctx);
        let end = date_time(&text_cow(&tq1.field(8).component(1)), m.ctx);
        let end = match (&start, end) {
            (Some(s), Some(e)) if e.len() == s.len() && e < *s => None,
            (_, e) => e,
        };
        let mut bounds = Map::new();
        put(&mut bounds, "start", start);
        put(&mut bounds, "end", end);
        if !bounds.is_empty() {
            timing.insert("repeat", json!({ "boundsPeriod": Value::Object(bounds) }));
        }
        // TQ1-3 repeat pattern (RPT): code & text & system.
        let rpt = tq1.field(3).component(1);
        let pattern = match sub(&rpt, 2) {
            t if t.is_empty() => sub(&rpt, 1),
            t => t,
        };
        if !pattern.is_empty() {
            timing.insert("code", json!({ "text": pattern }));
        }
        put(&mut d, "timing", timing);
    }
    if let Some(rxr) = o.rxr {
        put(
            &mut d,
            "route",
            table_concept(&rxr.field(1).repetition(1), "0162", m.ctx),
        );
    }
    if let Some(rxe) = o.rxe {
        if let Some(v) = decimal(&text_cow(&rxe.field(3).component(1))) {
            let dose = quantity(v, &rxe.field(5).repetition(1), m.ctx, None);
            d.insert("doseAndRate", json!([{ "doseQuantity": dose }]));
        }
    }
    if d.is_empty() {
        Vec::new()
    } else {
        vec![Value::Object(d)]
    }
}

fn medication_dispense(
    m: &mut Mapper<'_, '_, '_>,
    o: &Order<'_, '_>,
    rxd: &Segment<'_, '_>,
    request: Option<&Rid>,
    number: usize,
) -> Result<(), MapError> {
    let Some(code) = codeable_concept(&rxd.field(2).repetition(1), m.ctx) else {
        return Err(MapError::new(
            format!("RXD({number})-2"),
            "is empty: cannot name the medication dispensed",
        ));
    };
    let mut key = order_key(m, o, number);
    key.push("dispense".into());
    key.push(text(&rxd.field(1).component(1)));
    let key_refs: Vec<&str> = key.iter().map(String::as_str).collect();
    let rid = m.bundle.new_rid("MedicationDispense", &key_refs);
    let cancelled = o
        .orc
        .is_some_and(|s| matches!(text(&s.field(1).component(1)).as_str(), "CA" | "DC" | "OC"));
    let mut md = Map::new();
    md.insert(
        "status",
        Value::from(if cancelled { "cancelled" } else { "completed" }),
    );
    md.insert("medicationCodeableConcept", code);
    md.insert("subject", m.patient_ref());
    put(&mut md, "context", m.encounter_ref());
    if let Some(r) = request {
        md.insert("authorizingPrescription", json!([m.bundle.reference(r)]));
    }
    if let Some(v) = decimal(&text_cow(&rxd.field(4).component(1))) {
        md.insert(
            "quantity",
            quantity(v, &rxd.field(5).repetition(1), m.ctx, None),
        );
    }
    put(
        &mut md,
        "whenHandedOver",
        date_time(&text_cow(&rxd.field(3).component(1)), m.ctx),
    );
    if let Some(actor) = practitioner(m, &rxd.field(10).repetition(1)) {
        md.insert("performer", json!([{ "actor": actor }]));
    }
    if let Some(id) = entity_identifier(&rxd.field(7).repetition(1), "", m.ctx) {
        md.insert("identifier", json!([id]));
    }
    let instructions = text(&rxd.field(9).component(2));
    let instructions = if instructions.is_empty() {
        text(&rxd.field(9).component(1))
    } else {
        instructions
    };
    if !instructions.is_empty() {
        md.insert("note", json!([{ "text": instructions }]));
    }
    m.bundle.insert(rid, md, None, Write::Upsert);
    Ok(())
}
