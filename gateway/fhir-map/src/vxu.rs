//! VXU^V04 → an Immunization per RXA (with the RXR and OBX after it):
//! vaccine RXA-5 (CVX), occurrence RXA-3, dose RXA-6/7, lot RXA-15,
//! expiration RXA-16, manufacturer RXA-17 (MVX → Organization), performers
//! RXA-10 (administering) and ORC-12 (ordering), location RXA-27/RXA-11,
//! route RXR-1, site RXR-2, status from RXA-20/21 with the refusal reason
//! RXA-18 (a refusal or a dose not given is `not-done`, never dropped),
//! funding source (OBX 30963-3) and program eligibility (OBX 64994-7).
//!
//! Key: ORC-3 filler order number when sent (the registry's id for the
//! dose), else patient + RXA-3 date + RXA-5 vaccine code.

use super::json::{json, Map, Value};

use super::bundle::Write;
use super::datatypes::{
    codeable_concept, date, date_time, decimal, entity_identifier, identifier_pair, put, sub,
    table_concept, text, text_cow,
};
use super::encounter::map_encounter;
use super::shared::{location, meta, organization, practitioner};
use super::systems::coding_system_uri;
use super::tables::immunization_status;
use super::{MapError, Mapper};
use hl7::Segment;

pub const US_CORE_IMMUNIZATION: &str =
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-immunization";
const FUNCTION_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v2-0443";

pub fn map(m: &mut Mapper<'_, '_, '_>) -> Result<(), MapError> {
    let patient = m.require_patient()?;
    map_encounter(m, "V04")?;
    let msg = m.msg;
    let segments: Vec<Segment<'_, '_>> = msg.segments().collect();
    let mut orc: Option<Segment<'_, '_>> = None;
    let mut rxa_number = 0;
    let mut i = 0;
    while let Some(seg) = segments.get(i) {
        i += 1;
        match seg.id() {
            "ORC" => orc = Some(*seg),
            "RXA" => {
                rxa_number += 1;
                // The RXR and OBX that follow, up to the next ORC/RXA.
                let mut rxr = None;
                let mut obxs = Vec::new();
                while let Some(next) = segments.get(i) {
                    match next.id() {
                        "ORC" | "RXA" => break,
                        "RXR" if rxr.is_none() => rxr = Some(*next),
                        "OBX" => obxs.push(*next),
                        _ => {}
                    }
                    i += 1;
                }
                map_rxa(
                    m,
                    &patient.id,
                    orc.as_ref(),
                    seg,
                    rxr.as_ref(),
                    &obxs,
                    rxa_number,
                )?;
            }
            _ => {}
        }
    }
    if rxa_number == 0 {
        return Err(MapError::new(
            "RXA",
            "is missing: a VXU needs at least one administration",
        ));
    }
    Ok(())
}

fn map_rxa(
    m: &mut Mapper<'_, '_, '_>,
    patient_id: &str,
    orc: Option<&Segment<'_, '_>>,
    rxa: &Segment<'_, '_>,
    rxr: Option<&Segment<'_, '_>>,
    obxs: &[Segment<'_, '_>],
    rxa_number: usize,
) -> Result<(), MapError> {
    let vaccine_rep = rxa.field(5).repetition(1);
    let Some(vaccine) = codeable_concept(&vaccine_rep, m.ctx) else {
        return Err(MapError::new(
            format!("RXA({rxa_number})-5"),
            "is empty: cannot name the vaccine",
        ));
    };
    let administered = text(&rxa.field(3).component(1));
    let Some(occurrence) = date_time(&administered, m.ctx) else {
        return Err(MapError::new(
            format!("RXA({rxa_number})-3"),
            "is empty or not a date: an immunization needs its date",
        ));
    };
    let filler = orc.map(|o| o.field(3).repetition(1));
    let filler_value = filler.map(|f| text(&f.component(1))).unwrap_or_default();
    let vaccine_code = text(&vaccine_rep.component(1));
    let rid = if filler_value.is_empty() {
        m.bundle
            .new_rid("Immunization", &[patient_id, &administered, &vaccine_code])
    } else {
        let ns = filler.map(|f| text(&f.component(2))).unwrap_or_default();
        m.bundle.new_rid(
            "Immunization",
            &["filler", &ns, &filler_value, &vaccine_code],
        )
    };
    let completion = text(&rxa.field(20).component(1));
    let status = immunization_status(&completion, &text_cow(&rxa.field(21).component(1)));
    let mut imm = Map::new();
    imm.insert("status", Value::from(status));
    if status == "not-done" {
        let reason = codeable_concept(&rxa.field(18).repetition(1), m.ctx).unwrap_or_else(|| {
            if completion.eq_ignore_ascii_case("RE") {
                json!({ "coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                    "code": "PATOBJ",
                    "display": "patient objection",
                }]})
            } else {
                Value::Null
            }
        });
        put(&mut imm, "statusReason", reason);
    }
    imm.insert("vaccineCode", vaccine);
    imm.insert("patient", m.patient_ref());
    put(&mut imm, "encounter", m.encounter_ref());
    imm.insert("occurrenceDateTime", Value::from(occurrence));
    let mut match_id = None;
    if let Some(f) = &filler {
        if let Some(id) = entity_identifier(f, "FILL", m.ctx) {
            match_id = identifier_pair(&id);
            imm.insert("identifier", json!([id]));
        }
    }
    // RXA-9: 00 = new record (primary source), 01.. = historical.
    let source = text(&rxa.field(9).component(1));
    if !source.is_empty() {
        imm.insert("primarySource", Value::Bool(source == "00"));
        if source != "00" {
            put(
                &mut imm,
                "reportOrigin",
                table_concept(&rxa.field(9).repetition(1), "NIP001", m.ctx),
            );
        }
    }
    // US Core Immunization needs primarySource (1..1): claimed only with it.
    if imm.contains_key("primarySource") {
        imm.insert("meta", meta(US_CORE_IMMUNIZATION));
    }
    put(&mut imm, "lotNumber", text(&rxa.field(15).component(1)));
    put(
        &mut imm,
        "expirationDate",
        date(&text_cow(&rxa.field(16).component(1))),
    );
    let mvx = rxa.field(17).repetition(1);
    let mvx_code = text(&mvx.component(1));
    let mvx_name = text(&mvx.component(2));
    let mvx_system = coding_system_uri(&text_cow(&mvx.component(3))).unwrap_or(
        std::borrow::Cow::Borrowed("http://terminology.hl7.org/CodeSystem/MVX"),
    );
    let identifier = (!mvx_code.is_empty()).then(|| (mvx_system.into_owned(), mvx_code.clone()));
    put(
        &mut imm,
        "manufacturer",
        organization(m, &mvx_name, identifier),
    );
    // RXA-6 999 means "unknown amount".
    let amount = text(&rxa.field(6).component(1));
    if amount != "999" {
        if let Some(value) = decimal(&amount) {
            let units = rxa.field(7).repetition(1);
            let mut dose = Map::new();
            dose.insert("value", value);
            let unit_code = text(&units.component(1));
            put(&mut dose, "unit", {
                let t = text(&units.component(2));
                if t.is_empty() {
                    unit_code.clone()
                } else {
                    t
                }
            });
            if coding_system_uri(&text_cow(&units.component(3))).as_deref()
                == Some("http://unitsofmeasure.org")
                && !unit_code.is_empty()
            {
                dose.insert("system", Value::from("http://unitsofmeasure.org"));
                dose.insert("code", Value::from(unit_code));
            }
            imm.insert("doseQuantity", Value::Object(dose));
        }
    }
    if completion.eq_ignore_ascii_case("PA") {
        imm.insert("isSubpotent", Value::Bool(true));
    }
    if let Some(rxr) = rxr {
        put(
            &mut imm,
            "route",
            table_concept(&rxr.field(1).repetition(1), "0162", m.ctx),
        );
        put(
            &mut imm,
            "site",
            table_concept(&rxr.field(2).repetition(1), "0163", m.ctx),
        );
    }
    let mut performers = Vec::new();
    for (actor, code, display) in [
        (
            practitioner(m, &rxa.field(10).repetition(1)),
            "AP",
            "Administering Provider",
        ),
        (
            orc.and_then(|o| practitioner(m, &o.field(12).repetition(1))),
            "OP",
            "Ordering Provider",
        ),
    ] {
        if let Some(actor) = actor {
            performers.push(json!({
                "function": { "coding": [{ "system": FUNCTION_SYSTEM, "code": code, "display": display }] },
                "actor": actor,
            }));
        }
    }
    put(&mut imm, "performer", performers);
    let place = location(m, &rxa.field(27).repetition(1)).or_else(|| {
        // RXA-11 (LA2) in v2.5: point of care ^ room ^ bed ^ facility (HD) ...
        let la2 = rxa.field(11).repetition(1);
        if sub(&la2.component(4), 1).is_empty() && text(&la2.component(1)).is_empty() {
            None
        } else {
            location(m, &la2)
        }
    });
    put(&mut imm, "location", place);
    for obx in obxs {
        let code = text(&obx.field(3).component(1));
        let value = codeable_concept(&obx.field(5).repetition(1), m.ctx);
        match code.as_str() {
            "30963-3" => put(&mut imm, "fundingSource", value),
            "64994-7" => {
                if let Some(v) = value {
                    imm.insert("programEligibility", json!([v]));
                }
            }
            _ => {}
        }
    }
    m.bundle.insert(rid, imm, match_id, Write::Upsert);
    Ok(())
}
