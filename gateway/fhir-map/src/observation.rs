//! OBX → Observation, after the IG's OBX→Observation map. The value type
//! (OBX-2) picks value[x]:
//!
//! | OBX-2 | value |
//! | --- | --- |
//! | NM | `valueQuantity` (UCUM system and code when OBX-6 is UCUM or maps to it); not a number → `valueString` |
//! | SN | `valueQuantity` with comparator, `valueRange` (`^1^-^5`) or `valueRatio` (`^1^:^2`, `^1^/^2`) |
//! | ST, TX, FT | `valueString`, repetitions joined by newlines |
//! | CE, CWE, CNE | `valueCodeableConcept` |
//! | DT, TS, DTM | `valueDateTime` |
//! | ED, RP | no Observation: an Attachment for `DiagnosticReport.presentedForm` / `DocumentReference` |
//! | other | `valueString` |
//!
//! OBX-7 → referenceRange, OBX-8 → interpretation (v3
//! ObservationInterpretation), OBX-11 → status, OBX-14 → effective (else
//! OBR-7), OBX-15/16/23 → performer, OBX-17 → method, NTE → note.

use super::json::{json, Map, Value};

use super::bundle::{Rid, Write};
use super::datatypes::{
    attachment_from_ed, attachment_from_rp, codeable_concept, codeable_concepts, date_time,
    decimal, fhir_code, put, text, text_cow,
};
use super::shared::{meta, organization, organization_from_xon, practitioners};
use super::systems::coding_system_uri;
use super::tables::{interpretation, observation_status, V3_INTERPRETATION};
use super::{MapContext, MapError, Mapper};
use hl7::{Field, Repetition, Segment};

pub const US_CORE_OBSERVATION_LAB: &str =
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab";
const UCUM: &str = "http://unitsofmeasure.org";

/// What an OBX became.
pub enum ObxResult {
    Observation(Rid),
    /// ED/RP content: an Attachment for the report or document.
    Attachment(Value),
    /// Nothing to map (no code and no value).
    Nothing,
}

/// The links an Observation gets from its order group.
pub struct ObxLinks<'k> {
    /// The order's business key (see [`super::oru`]).
    pub order_key: &'k [String],
    /// "laboratory" for ORU results; `None` elsewhere.
    pub category: Option<&'static str>,
    /// OBR-7, used when OBX-14 is empty.
    pub fallback_effective: String,
    pub specimen: Option<Value>,
    pub based_on: Option<Value>,
}

/// The Attachment an ED/RP OBX carries, for callers that only want that.
pub fn obx_attachment(obx: &Segment<'_, '_>) -> Option<Value> {
    let value = obx.field(5).repetition(1);
    match text(&obx.field(2).component(1))
        .to_ascii_uppercase()
        .as_str()
    {
        "ED" => attachment_from_ed(&value),
        "RP" => attachment_from_rp(&value),
        _ => None,
    }
}

/// Maps one OBX (with the NTEs after it) to an Observation entry.
pub fn map_obx(
    m: &mut Mapper<'_, '_, '_>,
    obx: &Segment<'_, '_>,
    obx_number: usize,
    notes: &[String],
    links: &ObxLinks<'_>,
) -> Result<ObxResult, MapError> {
    let value_type = text(&obx.field(2).component(1)).to_ascii_uppercase();
    if value_type == "ED" || value_type == "RP" {
        if let Some(a) = obx_attachment(obx) {
            return Ok(ObxResult::Attachment(a));
        }
    }
    let code_rep = obx.field(3).repetition(1);
    let Some(code) = codeable_concept(&code_rep, m.ctx) else {
        if obx.field(5).is_empty() {
            return Ok(ObxResult::Nothing);
        }
        return Err(MapError::new(
            format!("OBX({obx_number})-3"),
            "is empty: cannot identify the observation",
        ));
    };
    let mut key: Vec<&str> = links.order_key.iter().map(String::as_str).collect();
    let code_system = text(&code_rep.component(3));
    let code_value = text(&code_rep.component(1));
    let code_text = text(&code_rep.component(2));
    let sub_id = text(&obx.field(4).component(1));
    key.extend_from_slice(&[
        "obx",
        &code_system,
        &code_value,
        if code_value.is_empty() {
            &code_text
        } else {
            ""
        },
        &sub_id,
    ]);
    let rid = m.bundle.new_rid("Observation", &key);

    let mut obs = Map::new();
    if let Some(category) = links.category {
        obs.insert("meta", meta(US_CORE_OBSERVATION_LAB));
        obs.insert(
            "category",
            json!([{ "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                "code": category,
            }]}]),
        );
    }
    obs.insert(
        "status",
        Value::from(observation_status(&text_cow(&obx.field(11).component(1)))),
    );
    obs.insert("code", code);
    put(&mut obs, "subject", m.patient_ref());
    put(&mut obs, "encounter", m.encounter_ref());
    if let Some(sr) = &links.based_on {
        obs.insert("basedOn", json!([sr]));
    }
    if let Some(s) = &links.specimen {
        obs.insert("specimen", s.clone());
    }
    let mut effective = date_time(&text_cow(&obx.field(14).component(1)), m.ctx);
    if effective.is_none() {
        effective = date_time(&links.fallback_effective, m.ctx);
    }
    put(&mut obs, "effectiveDateTime", effective);

    let units = obx.field(6).repetition(1);
    let (value_key, value) = observation_value(&value_type, &obx.field(5), &units, m.ctx);
    match value {
        Some(v) => {
            obs.insert(value_key, v);
        }
        None => {
            obs.insert(
                "dataAbsentReason",
                json!({ "coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                    "code": "unknown",
                    "display": "Unknown",
                }]}),
            );
        }
    }
    if let Some(range) = reference_range(&text_cow(&obx.field(7).component(1)), &units, m.ctx) {
        obs.insert("referenceRange", json!([range]));
    }
    let interpretations: Vec<Value> = obx
        .field(8)
        .repetitions()
        .filter_map(|r| {
            let code = text(&r.component(1));
            match interpretation(&code) {
                Some((c, d)) => Some(json!({
                    "coding": [{ "system": V3_INTERPRETATION, "code": c, "display": d }]
                })),
                None => codeable_concept(&r, m.ctx),
            }
        })
        .collect();
    put(&mut obs, "interpretation", interpretations);
    if let Some(method) = codeable_concept(&obx.field(17).repetition(1), m.ctx) {
        obs.insert("method", method);
    }
    let mut performers = practitioners(m, &obx.field(16));
    if let Some(org) = obx
        .field(23)
        .repetitions()
        .find_map(|r| organization_from_xon(m, &r))
    {
        performers.push(org);
    } else {
        let producer = obx.field(15).repetition(1);
        let name = text(&producer.component(2));
        let id = text(&producer.component(1));
        let name = if name.is_empty() { id } else { name };
        if let Some(org) = organization(m, &name, None) {
            performers.push(org);
        }
    }
    put(&mut obs, "performer", performers);
    let notes: Vec<Value> = notes.iter().map(|n| json!({ "text": n })).collect();
    put(&mut obs, "note", notes);
    m.bundle.insert(rid.clone(), obs, None, Write::Upsert);
    Ok(ObxResult::Observation(rid))
}

/// OBX-5 by OBX-2 → ("valueX", value); `None` when there is no value.
pub fn observation_value(
    value_type: &str,
    field: &Field<'_>,
    units: &Repetition<'_>,
    ctx: &MapContext,
) -> (&'static str, Option<Value>) {
    let first = field.repetition(1);
    match value_type {
        "NM" => {
            let raw = text(&first.component(1));
            match decimal(&raw) {
                Some(n) => ("valueQuantity", Some(quantity(n, units, ctx, None))),
                None => string_value(field),
            }
        }
        "SN" => structured_numeric(&first, units, ctx).unwrap_or_else(|| string_value(field)),
        "CE" | "CWE" | "CNE" | "CF" => (
            "valueCodeableConcept",
            codeable_concepts(field, ctx).into_iter().next(),
        ),
        "DT" | "TS" | "DTM" => match date_time(&text_cow(&first.component(1)), ctx) {
            Some(d) => ("valueDateTime", Some(Value::from(d))),
            None => string_value(field),
        },
        _ => string_value(field),
    }
}

/// Repetitions joined by newlines, as valueString.
fn string_value(field: &Field<'_>) -> (&'static str, Option<Value>) {
    let joined: Vec<String> = field
        .repetitions()
        .map(|r| r.text().into_owned())
        .filter(|s| !s.trim().is_empty())
        .collect();
    let s = joined.join("\n");
    if s.trim().is_empty() {
        ("valueString", None)
    } else {
        ("valueString", Some(Value::from(s)))
    }
}

/// A Quantity with the OBX-6 unit; UCUM when OBX-6 says so (or a code map
/// maps the local unit to UCUM).
pub fn quantity(
    value: Value,
    units: &Repetition<'_>,
    ctx: &MapContext,
    comparator: Option<&'static str>,
) -> Value {
    let mut q = Map::new();
    q.insert("value", value);
    if let Some(c) = comparator {
        q.insert("comparator", Value::from(c));
    }
    let unit_code = fhir_code(&text_cow(&units.component(1)));
    let unit_text = text(&units.component(2));
    let unit_system = text(&units.component(3));
    put(
        &mut q,
        "unit",
        if unit_text.is_empty() {
            unit_code.clone()
        } else {
            unit_text
        },
    );
    if !unit_code.is_empty() {
        if coding_system_uri(&unit_system).as_deref() == Some(UCUM) {
            q.insert("system", Value::from(UCUM));
            q.insert("code", Value::from(unit_code));
        } else if let Some(mapped) = ctx
            .code_maps
            .lookup(&unit_system, &unit_code)
            .iter()
            .find(|c| c.system == UCUM)
        {
            q.insert("system", Value::from(UCUM));
            q.insert("code", Value::from(&mapped.code));
        }
    }
    Value::Object(q)
}

/// SN: comparator ^ num1 ^ separator ^ num2.
fn structured_numeric(
    sn: &Repetition<'_>,
    units: &Repetition<'_>,
    ctx: &MapContext,
) -> Option<(&'static str, Option<Value>)> {
    let comparator = text(&sn.component(1));
    let num1 = decimal(&text_cow(&sn.component(2)));
    let separator = text(&sn.component(3));
    let num2 = decimal(&text_cow(&sn.component(4)));
    match (separator.as_str(), num1, num2) {
        (":" | "/", Some(a), Some(b)) => Some((
            "valueRatio",
            Some(json!({ "numerator": { "value": a }, "denominator": { "value": b } })),
        )),
        ("-", Some(a), Some(b)) => Some((
            "valueRange",
            Some(json!({
                "low": quantity(a, units, ctx, None),
                "high": quantity(b, units, ctx, None),
            })),
        )),
        ("", Some(a), None) => {
            let comparator = match comparator.as_str() {
                "" | "=" => None,
                "<" => Some("<"),
                "<=" => Some("<="),
                ">=" => Some(">="),
                ">" => Some(">"),
                _ => return None,
            };
            Some(("valueQuantity", Some(quantity(a, units, ctx, comparator))))
        }
        _ => None,
    }
}

/// OBX-7: `low-high`, `<high`, `<=high`, `>low`, `>=low`, else text.
fn reference_range(raw: &str, units: &Repetition<'_>, ctx: &MapContext) -> Option<Value> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    let q = |s: &str| decimal(s).map(|n| quantity(n, units, ctx, None));
    let range = if let Some(rest) = raw.strip_prefix("<=").or_else(|| raw.strip_prefix('<')) {
        q(rest).map(|h| json!({ "high": h }))
    } else if let Some(rest) = raw.strip_prefix(">=").or_else(|| raw.strip_prefix('>')) {
        q(rest).map(|l| json!({ "low": l }))
    } else {
        // Split on the '-' that is not a leading minus sign.
        raw.char_indices()
            .skip(1)
            .find(|&(_, c)| c == '-')
            .and_then(|(i, _)| {
                let (low, high) = (raw.get(..i)?, raw.get(i + 1..)?);
                Some(json!({ "low": q(low)?, "high": q(high)? }))
            })
    };
    let mut range = range.unwrap_or_else(|| json!({}));
    if let Value::Object(map) = &mut range {
        map.insert("text", Value::from(raw.to_string()));
    }
    Some(range)
}
