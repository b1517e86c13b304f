//! PPR^PC1 (problem add), PC2 (problem update) and PC3 (problem delete)
//! → a Condition per PRB, category `problem-list-item`, after the IG's
//! PRB → Condition segment map:
//!
//! | field | Condition |
//! | --- | --- |
//! | PRB-3 problem id (CWE) | code |
//! | PRB-4 problem instance id (EI) | identifier, and the key (else patient + PRB-3) |
//! | PRB-7 established date | recordedDate |
//! | PRB-9 actual resolution date | abatementDateTime (clinicalStatus `resolved`) |
//! | PRB-14 life cycle status | clinicalStatus (active, inactive, resolved, remission, recurrence, relapse) |
//! | PRB-16 onset date | onsetDateTime |
//! | PRB-1 action DE / PC3 | verificationStatus `entered-in-error`, no clinicalStatus (R4's con-5) |
//! | NTE | note |
//!
//! PC1/PC2/PC3 are v2's triggers for add/update/delete; PRB-1 (AD, UP,
//! DE) says the same per problem, and a delete in either wins.

use super::json::{json, Map, Value};

use super::adt::condition_basics;
use super::bundle::Write;
use super::datatypes::{
    codeable_concept, concept, date_time, entity_identifier, put, text, text_cow,
};
use super::{MapError, Mapper};
use hl7::Segment;

pub fn map(m: &mut Mapper<'_, '_, '_>, trigger: &str) -> Result<(), MapError> {
    let patient = m.require_patient()?;
    let msg = m.msg;
    let segments: Vec<Segment<'_, '_>> = msg.segments().collect();
    let mut problems = 0;
    for (i, prb) in segments.iter().enumerate() {
        if prb.id() != "PRB" {
            continue;
        }
        problems += 1;
        let code_rep = prb.field(3).repetition(1);
        let Some(code) = codeable_concept(&code_rep, m.ctx) else {
            return Err(MapError::new(
                format!("PRB({problems})-3"),
                "is empty: cannot name the problem",
            ));
        };
        let instance = prb.field(4).repetition(1);
        let instance_id = text(&instance.component(1));
        let rid = if instance_id.is_empty() {
            m.bundle.shared_rid(
                "Condition",
                &[
                    &patient.id,
                    "problem",
                    &text_cow(&code_rep.component(3)),
                    &text_cow(&code_rep.component(1)),
                ],
            )
        } else {
            m.bundle.shared_rid(
                "Condition",
                &["problem", &text_cow(&instance.component(2)), &instance_id],
            )
        };
        let deleted =
            trigger == "PC3" || text_cow(&prb.field(1).component(1)).eq_ignore_ascii_case("DE");
        let resolved = date_time(&text_cow(&prb.field(9).component(1)), m.ctx);
        let mut condition = Map::new();
        if deleted {
            condition.insert(
                "verificationStatus",
                concept(
                    "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "entered-in-error",
                    "Entered in Error",
                ),
            );
        } else {
            let lifecycle = text(&prb.field(14).component(1)).to_ascii_lowercase();
            let status = match lifecycle.as_str() {
                _ if resolved.is_some() => ("resolved", "Resolved"),
                "inactive" => ("inactive", "Inactive"),
                "resolved" => ("resolved", "Resolved"),
                "remission" => ("remission", "Remission"),
                "recurrence" => ("recurrence", "Recurrence"),
                "relapse" => ("relapse", "Relapse"),
                _ => ("active", "Active"),
            };
            condition.insert(
                "clinicalStatus",
                concept(
                    "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    status.0,
                    status.1,
                ),
            );
            put(&mut condition, "abatementDateTime", resolved);
        }
        condition_basics(
            &mut condition,
            "problem-list-item",
            "Problem List Item",
            code,
            m.bundle.reference(&patient),
        );
        if let Some(id) = entity_identifier(&instance, "", m.ctx) {
            condition.insert("identifier", json!([id]));
        }
        put(
            &mut condition,
            "recordedDate",
            date_time(&text_cow(&prb.field(7).component(1)), m.ctx),
        );
        put(
            &mut condition,
            "onsetDateTime",
            date_time(&text_cow(&prb.field(16).component(1)), m.ctx),
        );
        let notes: Vec<Value> = segments
            .iter()
            .skip(i + 1)
            .take_while(|s| s.id() == "NTE")
            .map(|s| s.field(3).text().trim().to_string())
            .filter(|t| !t.is_empty())
            .map(|t| json!({ "text": t }))
            .collect();
        put(&mut condition, "note", notes);
        m.bundle.insert(rid, condition, None, Write::Upsert);
    }
    if problems == 0 {
        return Err(MapError::new(
            "PRB",
            "is missing: a problem message needs at least one problem",
        ));
    }
    Ok(())
}
