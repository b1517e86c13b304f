//! BAR (billing account) — the V2-to-FHIR IG has no BAR map; this follows
//! the DFT and ADT maps it shares segments with:
//!
//! - **P01** (add patient accounts), **P12** (update diagnosis/procedure):
//!   the Patient (create-only, as every non-ADT message), the Encounter of
//!   the first PV1, an Account from PID-18 with the Coverages (IN1), the
//!   Conditions (DG1), the AllergyIntolerances (AL1) and a Procedure per
//!   PR1 (code PR1-3, performed PR1-5, the encounter).
//! - **P02** (purge patient accounts): every PID of the message gives its
//!   Account with `status` = inactive (nothing is deleted on the server).

use super::json::{Map, Value};

use super::adt::{map_allergies, map_conditions, map_coverages};
use super::bundle::Write;
use super::datatypes::{codeable_concept, date_time, put, text_cow};
use super::dft::map_account;
use super::encounter::map_encounter;
use super::patient::{map_patient_segment, patient_write};
use super::{MapError, Mapper};
use hl7::Segment;

pub fn map(m: &mut Mapper<'_, '_, '_>, trigger: &str) -> Result<(), MapError> {
    if trigger == "P02" {
        return purge(m);
    }
    m.require_patient()?;
    map_encounter(m, trigger)?;
    map_allergies(m);
    map_conditions(m);
    map_procedures(m);
    let coverages = map_coverages(m);
    if let Some(pid) = m.msg.segment("PID") {
        map_account(m, &pid, &coverages, "active");
    }
    Ok(())
}

/// P02: each PID's Account, inactive.
fn purge(m: &mut Mapper<'_, '_, '_>) -> Result<(), MapError> {
    let msg = m.msg;
    let pids: Vec<Segment<'_, '_>> = msg.segments_named("PID").collect();
    if pids.is_empty() {
        return Err(MapError::new(
            "PID",
            "is missing: cannot identify the patient",
        ));
    }
    let mut first = None;
    for pid in &pids {
        let patient = map_patient_segment(m, pid, patient_write(&m.msg_type))?;
        first.get_or_insert(patient.clone());
        m.patient = Some(patient);
        map_account(m, pid, &[], "inactive");
    }
    m.patient = first;
    Ok(())
}

/// Every PR1 → a completed Procedure, keyed by patient + code + time.
pub fn map_procedures(m: &mut Mapper<'_, '_, '_>) {
    let Some(patient) = m.patient.clone() else {
        return;
    };
    let pr1s: Vec<Segment<'_, '_>> = m.msg.segments_named("PR1").collect();
    for pr1 in pr1s {
        let code_rep = pr1.field(3).repetition(1);
        let Some(code) = codeable_concept(&code_rep, m.ctx) else {
            continue;
        };
        let when = text_cow(&pr1.field(5).component(1)).into_owned();
        let rid = m.bundle.shared_rid(
            "Procedure",
            &[
                &patient.id,
                &text_cow(&code_rep.component(3)),
                &text_cow(&code_rep.component(1)),
                &when,
            ],
        );
        let mut procedure = Map::new();
        procedure.insert("status", Value::from("completed"));
        procedure.insert("code", code);
        procedure.insert("subject", m.bundle.reference(&patient));
        put(&mut procedure, "encounter", m.encounter_ref());
        put(&mut procedure, "performedDateTime", date_time(&when, m.ctx));
        m.bundle.insert(rid, procedure, None, Write::Upsert);
    }
}
