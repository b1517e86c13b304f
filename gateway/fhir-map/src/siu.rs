//! SIU S12 (new), S14 (modification), S15 (cancellation) → Appointment
//! with status booked, booked, cancelled. Start and end from TQ1-7/8, else
//! SCH-11.4/5 (v2.3–2.5), else the first AIS/AIL/AIP start + duration.
//! Participants: the patient, AIP personnel (Practitioner), AIL locations
//! (Location). AIS-3 → serviceType, SCH-7 → reasonCode, SCH-8 →
//! appointmentType, SCH-6 → cancelationReason (S15), NTE → comment.
//!
//! Key: SCH-2 filler appointment id (the scheduling system's own id),
//! else SCH-1 placer id, with its namespace. Start and end are FHIR
//! `instant`s: a time without offset needs `default_utc_offset`.

use super::json::{json, Map, Value};

use super::bundle::Write;
use super::datatypes::{
    codeable_concept, entity_identifier, identifier_pair, instant, put, table_concept, text,
    text_cow,
};
use super::shared::{location, practitioner};
use super::{MapError, Mapper};
use hl7::Segment;

pub fn map(m: &mut Mapper<'_, '_, '_>, trigger: &str) -> Result<(), MapError> {
    let Some(sch) = m.msg.segment("SCH") else {
        return Err(MapError::new(
            "SCH",
            "is missing: cannot identify the appointment",
        ));
    };
    let placer = sch.field(1).repetition(1);
    let filler = sch.field(2).repetition(1);
    let (key_rep, kind) = if !text(&filler.component(1)).is_empty() {
        (filler, "filler")
    } else if !text(&placer.component(1)).is_empty() {
        (placer, "placer")
    } else {
        return Err(MapError::new(
            "SCH-1",
            "and SCH-2 are empty: cannot identify the appointment",
        ));
    };
    m.require_patient()?;
    let rid = m.bundle.shared_rid(
        "Appointment",
        &[
            kind,
            &text_cow(&key_rep.component(2)),
            &text_cow(&key_rep.component(1)),
        ],
    );
    let (status, participant_status) = match trigger {
        "S15" => ("cancelled", "declined"),
        _ => ("booked", "accepted"),
    };
    let mut appt = Map::new();
    appt.insert("status", Value::from(status));
    let mut identifiers = Vec::new();
    let mut match_id = None;
    for (rep, code) in [(&filler, "FILL"), (&placer, "PLAC")] {
        if let Some(id) = entity_identifier(rep, code, m.ctx) {
            if match_id.is_none() {
                match_id = identifier_pair(&id);
            }
            identifiers.push(Value::Object(id));
        }
    }
    put(&mut appt, "identifier", identifiers);
    if trigger == "S15" {
        put(
            &mut appt,
            "cancelationReason",
            codeable_concept(&sch.field(6).repetition(1), m.ctx),
        );
    }
    if let Some(reason) = codeable_concept(&sch.field(7).repetition(1), m.ctx) {
        appt.insert("reasonCode", json!([reason]));
    }
    put(
        &mut appt,
        "appointmentType",
        table_concept(&sch.field(8).repetition(1), "0277", m.ctx),
    );
    let msg = m.msg;
    let segments: Vec<Segment<'_, '_>> = msg.segments().collect();
    let ais: Vec<&Segment<'_, '_>> = segments.iter().filter(|s| s.id() == "AIS").collect();
    let services: Vec<Value> = ais
        .iter()
        .filter_map(|s| codeable_concept(&s.field(3).repetition(1), m.ctx))
        .collect();
    put(&mut appt, "serviceType", services);

    let (start, end) = appointment_times(m, &sch, &segments);
    put(&mut appt, "start", start);
    put(&mut appt, "end", end);
    let minutes = minutes(
        &text_cow(&sch.field(9).component(1)),
        &text_cow(&sch.field(10).component(1)),
    );
    put(&mut appt, "minutesDuration", minutes);

    let mut participants = vec![json!({
        "actor": m.patient_ref(),
        "required": "required",
        "status": participant_status,
    })];
    for seg in segments.iter() {
        match seg.id() {
            "AIP" => {
                for rep in seg.field(3).repetitions() {
                    if let Some(actor) = practitioner(m, &rep) {
                        let role = codeable_concept(&seg.field(4).repetition(1), m.ctx);
                        participants.push(json!({
                            "type": role.map(|r| vec![r]).unwrap_or_default(),
                            "actor": actor,
                            "status": participant_status,
                        }));
                    }
                }
            }
            "AIL" => {
                if let Some(actor) = location(m, &seg.field(3).repetition(1)) {
                    participants.push(json!({ "actor": actor, "status": participant_status }));
                }
            }
            _ => {}
        }
    }
    appt.insert("participant", Value::Array(participants));
    // NTEs right after SCH (before PID) are the appointment's comments.
    let comments: Vec<String> = segments
        .iter()
        .skip_while(|s| s.id() != "SCH")
        .skip(1)
        .take_while(|s| matches!(s.id(), "NTE" | "TQ1" | "TQ2"))
        .filter(|s| s.id() == "NTE")
        .map(|s| s.field(3).text().trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    put(&mut appt, "comment", comments.join("\n"));
    m.bundle.insert(rid, appt, match_id, Write::Upsert);
    Ok(())
}

fn appointment_times(
    m: &Mapper<'_, '_, '_>,
    sch: &Segment<'_, '_>,
    segments: &[Segment<'_, '_>],
) -> (Option<String>, Option<String>) {
    if let Some(tq1) = segments.iter().find(|s| s.id() == "TQ1") {
        let start = instant_or_minute(&text_cow(&tq1.field(7).component(1)), m);
        if start.is_some() {
            return (
                start,
                instant_or_minute(&text_cow(&tq1.field(8).component(1)), m),
            );
        }
    }
    let tq = sch.field(11).repetition(1);
    let start = instant_or_minute(&text_cow(&tq.component(4)), m);
    if start.is_some() {
        return (start, instant_or_minute(&text_cow(&tq.component(5)), m));
    }
    for seg in segments {
        // The start date/time field of each resource segment.
        let field = match seg.id() {
            "AIS" => 4,
            "AIG" => 8,
            "AIL" | "AIP" => 6,
            _ => continue,
        };
        if let Some(start) = instant_or_minute(&text_cow(&seg.field(field).component(1)), m) {
            return (Some(start), None);
        }
    }
    (None, None)
}

/// An `instant` from a TS precise to the minute or better (seconds are
/// filled with 00: schedules are kept to the minute).
fn instant_or_minute(raw: &str, m: &Mapper<'_, '_, '_>) -> Option<String> {
    if let Some(i) = instant(raw, m.ctx) {
        return Some(i);
    }
    let digits = raw.trim().bytes().take_while(u8::is_ascii_digit).count();
    if digits == 12 {
        let (d, rest) = raw.trim().split_at(12);
        return instant(&format!("{d}00{rest}"), m.ctx);
    }
    None
}

/// SCH-9/10 duration in minutes (units MIN, H, or none = minutes).
fn minutes(amount: &str, units: &str) -> Option<i64> {
    let n: i64 = amount.trim().parse().ok()?;
    if n <= 0 {
        return None;
    }
    match units.trim().to_ascii_uppercase().as_str() {
        "" | "MIN" | "M" | "MINUTES" => Some(n),
        "H" | "HR" | "HOURS" => Some(n * 60),
        _ => None,
    }
}
