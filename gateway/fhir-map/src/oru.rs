//! ORU^R01 → per order group (ORC? OBR NTE* (OBX NTE*)* SPM*): a
//! DiagnosticReport (status OBR-25, code OBR-4, results, presentedForm from
//! ED/RP OBX), an Observation per OBX, Specimens (SPM, else OBR-15), and a
//! ServiceRequest for the order (placer/filler numbers) carrying the
//! order-level NTEs — R4's DiagnosticReport has no `note`.
//!
//! The order key, which every id in the group derives from, is the filler
//! order number OBR-3 (else placer OBR-2, ORC-3, ORC-2; else MSH-10 +
//! OBR-1), with its namespace: a corrected result (OBX-11 = C) re-sent for
//! the same order updates the same Observation and DiagnosticReport.

use super::json::{json, Map, Value};

use super::bundle::Write;
use super::datatypes::{
    codeable_concept, date_time, instant, put, sub, table_concept, text, text_cow,
};
use super::encounter::map_encounter;
use super::observation::{map_obx, ObxLinks, ObxResult};
use super::orm::service_request;
use super::shared::meta;
use super::tables::report_status;
use super::{MapError, Mapper};
use hl7::{Repetition, Segment};

pub const US_CORE_DIAGNOSTIC_REPORT_LAB: &str =
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-diagnosticreport-lab";
pub const US_CORE_SPECIMEN: &str =
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-specimen";

/// One OBR and what belongs to it.
pub struct OrderGroup<'m, 'a> {
    pub orc: Option<Segment<'m, 'a>>,
    /// `None` for an ORC with no OBR (an ORM diet or supply order).
    pub obr: Option<Segment<'m, 'a>>,
    /// 1-based occurrence of this OBR in the message (for error locations).
    pub obr_number: usize,
    pub notes: Vec<String>,
    /// Each OBX with its occurrence number and the NTE texts after it.
    pub results: Vec<(Segment<'m, 'a>, usize, Vec<String>)>,
    pub specimens: Vec<Segment<'m, 'a>>,
    /// Segment indexes of DG1s inside the group (ORM reasons).
    pub diagnoses: Vec<usize>,
}

/// Splits a message into order groups. An ORC applies to the OBR after it
/// (and to later OBRs until the next ORC, as in ORM's order detail); an ORC
/// followed by no OBR is a group of its own.
pub fn order_groups<'m, 'a>(segments: &[Segment<'m, 'a>]) -> Vec<OrderGroup<'m, 'a>> {
    let mut groups: Vec<OrderGroup<'m, 'a>> = Vec::new();
    let mut orc: Option<Segment<'m, 'a>> = None;
    let mut obr_count = 0;
    let mut obx_count = 0;
    for seg in segments {
        match seg.id() {
            "ORC" => {
                orc = Some(*seg);
                groups.push(OrderGroup {
                    orc,
                    obr: None,
                    obr_number: obr_count,
                    notes: Vec::new(),
                    results: Vec::new(),
                    specimens: Vec::new(),
                    diagnoses: Vec::new(),
                });
            }
            "OBR" => {
                obr_count += 1;
                // The group the ORC opened takes its first OBR.
                if let Some(g) = groups.last_mut() {
                    if g.obr.is_none() && g.orc.is_some() && g.results.is_empty() {
                        g.obr = Some(*seg);
                        g.obr_number = obr_count;
                        continue;
                    }
                }
                groups.push(OrderGroup {
                    orc,
                    obr: Some(*seg),
                    obr_number: obr_count,
                    notes: Vec::new(),
                    results: Vec::new(),
                    specimens: Vec::new(),
                    diagnoses: Vec::new(),
                });
            }
            "OBX" => {
                obx_count += 1;
                if let Some(g) = groups.last_mut() {
                    g.results.push((*seg, obx_count, Vec::new()));
                }
            }
            "NTE" => add_note(groups.last_mut(), seg),
            "SPM" => {
                if let Some(g) = groups.last_mut() {
                    g.specimens.push(*seg);
                }
            }
            "DG1" => {
                if let Some(g) = groups.last_mut() {
                    g.diagnoses.push(seg.index());
                }
            }
            _ => {}
        }
    }
    groups
}

/// An NTE's text (repetitions joined by newlines) to the group's last
/// result, else to the group itself.
pub fn add_note(group: Option<&mut OrderGroup<'_, '_>>, nte: &Segment<'_, '_>) {
    let note = nte
        .field(3)
        .repetitions()
        .map(|r| r.text().into_owned())
        .collect::<Vec<_>>()
        .join("\n");
    if note.trim().is_empty() {
        return;
    }
    if let Some(g) = group {
        match g.results.last_mut() {
            Some((_, _, notes)) => notes.push(note),
            None => g.notes.push(note),
        }
    }
}

/// The order's business key: kind, namespace, number.
pub fn order_key(m: &Mapper<'_, '_, '_>, g: &OrderGroup<'_, '_>) -> Vec<String> {
    let ei = |r: Repetition<'_>| {
        let value = text(&r.component(1));
        let ns = text(&r.component(2));
        let ns = if ns.is_empty() {
            text(&r.component(3))
        } else {
            ns
        };
        (value, ns)
    };
    let mut candidates = Vec::new();
    if let Some(obr) = &g.obr {
        candidates.push(("filler", ei(obr.field(3).repetition(1))));
        candidates.push(("placer", ei(obr.field(2).repetition(1))));
    }
    if let Some(orc) = &g.orc {
        candidates.push(("filler", ei(orc.field(3).repetition(1))));
        candidates.push(("placer", ei(orc.field(2).repetition(1))));
    }
    for (kind, (value, ns)) in candidates {
        if !value.is_empty() {
            return vec![kind.to_string(), ns, value];
        }
    }
    vec![
        "message".to_string(),
        m.control_id(),
        format!("OBR-{}", g.obr_number),
    ]
}

pub fn map(m: &mut Mapper<'_, '_, '_>) -> Result<(), MapError> {
    m.require_patient()?;
    map_encounter(m, "R01")?;
    let msg = m.msg;
    let segments: Vec<Segment<'_, '_>> = msg.segments().collect();
    let groups: Vec<OrderGroup<'_, '_>> = order_groups(&segments)
        .into_iter()
        .filter(|g| g.obr.is_some())
        .collect();
    if groups.is_empty() {
        return Err(MapError::new(
            "OBR",
            "is missing: an ORU needs at least one order",
        ));
    }
    for g in &groups {
        map_order_group(m, g)?;
    }
    Ok(())
}

pub fn map_order_group(m: &mut Mapper<'_, '_, '_>, g: &OrderGroup<'_, '_>) -> Result<(), MapError> {
    let key = order_key(m, g);
    let Some(obr) = &g.obr else {
        return Ok(());
    };
    let service_request = service_request(m, g, &key, &[])?.map(|(_, reference)| reference);
    let specimens = map_specimens(m, g, &key);
    let specimen_ref = specimens.first().cloned();
    let mut results = Vec::new();
    let mut presented = Vec::new();
    for (obx, number, notes) in &g.results {
        let links = ObxLinks {
            order_key: &key,
            category: Some("laboratory"),
            fallback_effective: text(&obr.field(7).component(1)),
            specimen: specimen_ref.clone(),
            based_on: service_request.clone(),
        };
        match map_obx(m, obx, *number, notes, &links)? {
            ObxResult::Observation(rid) => results.push(m.bundle.reference(&rid)),
            ObxResult::Attachment(a) => presented.push(a),
            ObxResult::Nothing => {}
        }
    }
    let code_rep = obr.field(4).repetition(1);
    let Some(code) = codeable_concept(&code_rep, m.ctx) else {
        return Err(MapError::new(
            format!("OBR({})-4", g.obr_number),
            "is empty: cannot name the report",
        ));
    };
    let mut rkey: Vec<&str> = key.iter().map(String::as_str).collect();
    let code_system = text(&code_rep.component(3));
    let code_value = text(&code_rep.component(1));
    rkey.extend_from_slice(&["report", &code_system, &code_value]);
    let rid = m.bundle.new_rid("DiagnosticReport", &rkey);
    let mut report = Map::new();
    report.insert("meta", meta(US_CORE_DIAGNOSTIC_REPORT_LAB));
    report.insert(
        "status",
        Value::from(report_status(&text_cow(&obr.field(25).component(1)))),
    );
    let mut categories = vec![json!({ "coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/v2-0074",
        "code": "LAB",
        "display": "Laboratory",
    }]})];
    if let Some(section) = table_concept(&obr.field(24).repetition(1), "0074", m.ctx) {
        if section != categories[0] {
            categories.push(section);
        }
    }
    report.insert("category", Value::Array(categories));
    report.insert("code", code);
    put(&mut report, "subject", m.patient_ref());
    put(&mut report, "encounter", m.encounter_ref());
    let mut identifiers = Vec::new();
    for (field, type_code) in [(3, "FILL"), (2, "PLAC")] {
        if let Some(id) =
            super::datatypes::entity_identifier(&obr.field(field).repetition(1), type_code, m.ctx)
        {
            identifiers.push(Value::Object(id));
        }
    }
    put(&mut report, "identifier", identifiers);
    if let Some(sr) = service_request {
        report.insert("basedOn", json!([sr]));
    }
    let start = date_time(&text_cow(&obr.field(7).component(1)), m.ctx);
    let end = date_time(&text_cow(&obr.field(8).component(1)), m.ctx);
    match (start, end) {
        (Some(s), Some(e)) if s.len() == e.len() && s < e => {
            report.insert("effectivePeriod", json!({ "start": s, "end": e }));
        }
        (Some(s), _) => {
            report.insert("effectiveDateTime", Value::from(s));
        }
        _ => {}
    }
    put(
        &mut report,
        "issued",
        instant(&text_cow(&obr.field(22).component(1)), m.ctx),
    );
    // OBR-32 principal result interpreter: NDL whose first component is
    // id & family & given.
    let interpreter = obr.field(32).component(1);
    let (id, family, given) = (
        sub(&interpreter, 1),
        sub(&interpreter, 2),
        sub(&interpreter, 3),
    );
    if !id.is_empty() || !family.is_empty() {
        let rid = m
            .bundle
            .shared_rid("Practitioner", &["interpreter", &id, &family, &given]);
        let mut p = Map::new();
        if !id.is_empty() {
            let system =
                m.ctx
                    .identifier_systems
                    .system_for(&m.ctx.tenant, &sub(&interpreter, 9), "", "");
            p.insert("identifier", json!([{ "system": system, "value": id }]));
        }
        p.insert("name", json!([{ "family": family, "given": [given] }]));
        report.insert("resultsInterpreter", json!([m.bundle.reference(&rid)]));
        m.bundle.insert(rid, p, None, Write::CreateOnly);
    }
    put(&mut report, "specimen", specimens);
    put(&mut report, "result", results);
    put(&mut report, "presentedForm", presented);
    m.bundle.insert(rid, report, None, Write::Upsert);
    Ok(())
}

/// SPM segments of the group (or OBR-15 when there are none) → Specimens.
pub fn map_specimens(
    m: &mut Mapper<'_, '_, '_>,
    g: &OrderGroup<'_, '_>,
    key: &[String],
) -> Vec<Value> {
    let mut out = Vec::new();
    for spm in &g.specimens {
        let eip = spm.field(2).repetition(1);
        // EIP: placer EI ^ filler EI; the filler's id wins.
        let filler = sub(&eip.component(2), 1);
        let placer = sub(&eip.component(1), 1);
        let set_id = text(&spm.field(1).component(1));
        let mut skey: Vec<&str> = Vec::new();
        let specimen_id = if !filler.is_empty() {
            filler.clone()
        } else {
            placer.clone()
        };
        if specimen_id.is_empty() {
            skey.extend(key.iter().map(String::as_str));
            skey.extend_from_slice(&["specimen", &set_id]);
        } else {
            skey.extend_from_slice(&["id", &specimen_id]);
        }
        let rid = m.bundle.new_rid("Specimen", &skey);
        let mut specimen = Map::new();
        if !specimen_id.is_empty() {
            let ns = sub(&eip.component(if filler.is_empty() { 1 } else { 2 }), 2);
            let uid = sub(&eip.component(if filler.is_empty() { 1 } else { 2 }), 3);
            let system = m
                .ctx
                .identifier_systems
                .system_for(&m.ctx.tenant, &ns, &uid, "");
            specimen.insert(
                "identifier",
                json!([{ "system": system, "value": specimen_id }]),
            );
        }
        put(
            &mut specimen,
            "type",
            codeable_concept(&spm.field(4).repetition(1), m.ctx),
        );
        put(&mut specimen, "subject", m.patient_ref());
        let collected = date_time(&text_cow(&spm.field(17).component(1)), m.ctx);
        let mut collection = Map::new();
        put(&mut collection, "collectedDateTime", collected);
        put(
            &mut collection,
            "bodySite",
            codeable_concept(&spm.field(8).repetition(1), m.ctx),
        );
        put(&mut specimen, "collection", collection);
        put(
            &mut specimen,
            "receivedTime",
            date_time(&text_cow(&spm.field(18).component(1)), m.ctx),
        );
        // US Core Specimen needs type and subject (1..1).
        if specimen.contains_key("type") && specimen.contains_key("subject") {
            specimen.insert("meta", meta(US_CORE_SPECIMEN));
        }
        out.push(m.bundle.reference(&rid));
        m.bundle.insert(rid, specimen, None, Write::Upsert);
    }
    if out.is_empty() {
        // OBR-15 (v2.3–2.6 SPS): source name (code & text & system) ^ additives ^ ... ^ body site.
        let Some(obr) = &g.obr else {
            return out;
        };
        let sps = obr.field(15).repetition(1);
        let source = sps.component(1);
        let (code, display, system) = (sub(&source, 1), sub(&source, 2), sub(&source, 3));
        if !code.is_empty() || !display.is_empty() {
            let mut skey: Vec<&str> = key.iter().map(String::as_str).collect();
            skey.extend_from_slice(&["obr-15", &code, &display]);
            let rid = m.bundle.new_rid("Specimen", &skey);
            let mut codings = Vec::new();
            super::datatypes::push_codings(&mut codings, &code, &display, &system, m.ctx);
            let mut specimen = Map::new();
            specimen.insert("meta", meta(US_CORE_SPECIMEN));
            specimen.insert("type", json!({ "coding": codings, "text": display }));
            put(&mut specimen, "subject", m.patient_ref());
            let collected = date_time(&text_cow(&obr.field(7).component(1)), m.ctx);
            let mut collection = Map::new();
            put(&mut collection, "collectedDateTime", collected);
            let site = text(&sps.component(4));
            if !site.is_empty() {
                collection.insert("bodySite", json!({ "text": site }));
            }
            put(&mut specimen, "collection", collection);
            out.push(m.bundle.reference(&rid));
            m.bundle.insert(rid, specimen, None, Write::Upsert);
        }
    }
    out
}
