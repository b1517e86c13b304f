//! SIU → Appointment, after the IG's SIU_S12 message map (the other
//! triggers change the same Appointment):
//!
//! | trigger | Appointment.status |
//! | --- | --- |
//! | S12 new, S13 reschedule, S14 modification | SCH-25 filler status when sent (table 0278), else `booked` |
//! | S15 cancellation, S16 discontinuation | `cancelled` |
//! | S17 deletion | `entered-in-error` |
//! | S26 no-show | `noshow` |
//!
//! Participants: the patient, AIP personnel (Practitioner), AIL locations
//! (Location). AIS-3 → serviceType, SCH-7 → reasonCode, SCH-8 →
//! appointmentType, SCH-6 → cancelationReason (only when cancelled or
//! no-show: R4's app-4), NTE → comment.
//!
//! Timing, the first source that has a start wins, in this order: SCH-11
//! (TQ: start 11.4, end 11.5, duration 11.3), TQ1 (start TQ1-7, end
//! TQ1-8, duration TQ1-6), then the first AIS/AIG/AIL/AIP with a start
//! (AIS-4 + AIS-7/8, AIG-8 + 11/12, AIL-6 + 9/10, AIP-6 + 9/10). A missing
//! end is start + that source's duration, else + SCH-9/10. Start and end
//! are FHIR `instant`s: a time without offset needs `default_utc_offset`.
//!
//! R4's app-2/app-3 allow no start or end only for proposed, cancelled and
//! waitlist appointments. When the message gives no placeable start and
//! end, what is known goes to `requestedPeriod` and the status becomes
//! `proposed` (a booked, pending, arrived or fulfilled one) or
//! `cancelled` (a no-show or a deletion): a server that validates on write
//! takes it, and a later message with times books it again.
//!
//! Key: SCH-2 filler appointment id (the scheduling system's own id),
//! else SCH-1 placer id, with its namespace.

use super::json::{json, Map, Value};

use super::bundle::Write;
use super::datatypes::days_in_month;
use super::datatypes::{
    codeable_concept, date_time, entity_identifier, identifier_pair, instant, put, table_concept,
    text, text_cow,
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
    let mut status = match trigger {
        "S15" | "S16" => "cancelled",
        "S17" => "entered-in-error",
        "S26" => "noshow",
        _ => filler_status(&text_cow(&sch.field(25).component(1))).unwrap_or("booked"),
    };
    let msg = m.msg;
    let segments: Vec<Segment<'_, '_>> = msg.segments().collect();
    let timing = appointment_times(m, &sch, &segments);
    if timing.start.is_none() || timing.end.is_none() {
        status = match status {
            "proposed" | "cancelled" | "waitlist" => status,
            "noshow" | "entered-in-error" => "cancelled",
            _ => "proposed",
        };
    }
    let participant_status = match status {
        "cancelled" | "entered-in-error" => "declined",
        "proposed" | "pending" | "waitlist" => "needs-action",
        _ => "accepted",
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
    if matches!(status, "cancelled" | "noshow") && matches!(trigger, "S15" | "S16" | "S26") {
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
    let ais: Vec<&Segment<'_, '_>> = segments.iter().filter(|s| s.id() == "AIS").collect();
    let services: Vec<Value> = ais
        .iter()
        .filter_map(|s| codeable_concept(&s.field(3).repetition(1), m.ctx))
        .collect();
    put(&mut appt, "serviceType", services);

    match (timing.start, timing.end) {
        (Some(start), Some(end)) => {
            appt.insert("start", Value::from(start));
            appt.insert("end", Value::from(end));
        }
        _ => {
            let mut period = Map::new();
            put(&mut period, "start", timing.requested_start);
            put(&mut period, "end", timing.requested_end);
            if !period.is_empty() {
                appt.insert("requestedPeriod", json!([Value::Object(period)]));
            }
        }
    }
    put(&mut appt, "minutesDuration", appointment_minutes(&sch));

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

/// SCH-25 filler status (table 0278) → Appointment.status.
fn filler_status(v2: &str) -> Option<&'static str> {
    Some(match v2.trim().to_ascii_uppercase().as_str() {
        "PENDING" => "pending",
        "WAITLIST" => "waitlist",
        "BOOKED" | "OVERBOOK" | "BLOCKED" => "booked",
        "STARTED" => "arrived",
        "COMPLETE" => "fulfilled",
        "CANCELLED" | "DC" => "cancelled",
        "DELETED" => "entered-in-error",
        "NOSHOW" => "noshow",
        _ => return None,
    })
}

/// What the message says about when.
struct Timing {
    /// Both `instant`s, or `None`.
    start: Option<String>,
    end: Option<String>,
    /// `dateTime`s (as precise as placeable) for `requestedPeriod` when
    /// start or end is missing.
    requested_start: Option<String>,
    requested_end: Option<String>,
}

/// SCH-11, TQ1, then the resource segments: see the module doc.
fn appointment_times(
    m: &Mapper<'_, '_, '_>,
    sch: &Segment<'_, '_>,
    segments: &[Segment<'_, '_>],
) -> Timing {
    let tq = sch.field(11).repetition(1);
    let mut sources: Vec<(String, String, Option<i64>)> = vec![(
        text(&tq.component(4)),
        text(&tq.component(5)),
        tq_duration(&text_cow(&tq.component(3))),
    )];
    if let Some(tq1) = segments.iter().find(|s| s.id() == "TQ1") {
        sources.push((
            text(&tq1.field(7).component(1)),
            text(&tq1.field(8).component(1)),
            minutes(
                &text_cow(&tq1.field(6).component(1)),
                &text_cow(&tq1.field(6).component(2)),
            ),
        ));
    }
    for seg in segments {
        // (start, duration, duration units) of each resource segment.
        let (start, duration, units) = match seg.id() {
            "AIS" => (4, 7, 8),
            "AIG" => (8, 11, 12),
            "AIL" | "AIP" => (6, 9, 10),
            _ => continue,
        };
        sources.push((
            text(&seg.field(start).component(1)),
            String::new(),
            minutes(
                &text_cow(&seg.field(duration).component(1)),
                &text_cow(&seg.field(units).component(1)),
            ),
        ));
    }
    let fallback_minutes = appointment_minutes(sch);
    for (raw_start, raw_end, duration) in &sources {
        let Some(start) = instant_or_minute(raw_start, m) else {
            continue;
        };
        let end = instant_or_minute(raw_end, m)
            .filter(|e| later_or_equal(e, &start))
            .or_else(|| {
                duration
                    .or(fallback_minutes)
                    .and_then(|d| add_minutes(&start, d))
            });
        return Timing {
            requested_start: Some(start.clone()),
            requested_end: end.clone(),
            start: end.as_ref().map(|_| start),
            end,
        };
    }
    // Nothing placeable on the time line: the first start sent, as a
    // dateTime (cut to its date without an offset).
    let first = sources
        .iter()
        .find_map(|(s, e, _)| date_time(s, m.ctx).map(|s| (s, date_time(e, m.ctx))));
    let (requested_start, requested_end) = match first {
        Some((s, e)) => {
            let e = e.filter(|e| e.len() != s.len() || e >= &s);
            (Some(s), e)
        }
        None => (None, None),
    };
    Timing {
        start: None,
        end: None,
        requested_start,
        requested_end,
    }
}

/// Two instants written alike (same offset): compared as text.
fn later_or_equal(end: &str, start: &str) -> bool {
    end.len() != start.len() || end.get(19..) != start.get(19..) || end >= start
}

/// SCH-9/10, the appointment's duration.
fn appointment_minutes(sch: &Segment<'_, '_>) -> Option<i64> {
    minutes(
        &text_cow(&sch.field(9).component(1)),
        &text_cow(&sch.field(10).component(1)),
    )
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

/// A duration in minutes from an amount and its units (MIN, H, S, D, or
/// none = minutes). `None` unless positive.
fn minutes(amount: &str, units: &str) -> Option<i64> {
    let n: i64 = amount.trim().parse().ok()?;
    if n <= 0 {
        return None;
    }
    let unit = units.trim().to_ascii_uppercase();
    match unit.as_str() {
        "" | "MIN" | "M" | "MINUTE" | "MINUTES" => Some(n),
        "H" | "HR" | "HOUR" | "HOURS" => n.checked_mul(60),
        "D" | "DAY" | "DAYS" => n.checked_mul(24 * 60),
        // Seconds, rounded up to a whole minute (minutesDuration is a positiveInt).
        "S" | "SEC" | "SECONDS" => Some((n + 59) / 60),
        _ => None,
    }
}

/// TQ-3 duration: `M20`, `H2`, `S90`, `D1` (unit letter first), a bare
/// number (minutes), or `2 hours` / `30 min` as text.
fn tq_duration(raw: &str) -> Option<i64> {
    let raw = raw.trim();
    let letter = raw.get(..1).unwrap_or("");
    if letter.bytes().all(|b| b.is_ascii_alphabetic()) && !letter.is_empty() {
        if let Some(rest) = raw.get(1..) {
            if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
                return minutes(rest, letter);
            }
        }
    }
    match raw.split_once(' ') {
        Some((n, unit)) => minutes(n, unit),
        None => minutes(raw, ""),
    }
}

/// `instant` + minutes, in the same offset (`YYYY-MM-DDThh:mm:ss[.f]±hh:mm`).
fn add_minutes(instant: &str, minutes: i64) -> Option<String> {
    let num = |a: usize, b: usize| instant.get(a..b).and_then(|s| s.parse::<u32>().ok());
    let (mut year, mut month, mut day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let total = i64::from(num(11, 13)?) * 60 + i64::from(num(14, 16)?) + minutes;
    let mut days = total.div_euclid(24 * 60);
    let in_day = total.rem_euclid(24 * 60);
    while days > 0 {
        let month_days = days_in_month(year, month);
        if day < month_days {
            day += 1;
        } else {
            day = 1;
            month += 1;
            if month > 12 {
                month = 1;
                year += 1;
            }
        }
        days -= 1;
    }
    if year > 9999 {
        return None;
    }
    let tail = instant.get(16..)?;
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}{tail}",
        in_day / 60,
        in_day % 60
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(tq_duration("M20"), Some(20));
        assert_eq!(tq_duration("H2"), Some(120));
        assert_eq!(tq_duration("20"), Some(20));
        assert_eq!(tq_duration("2 hours"), Some(120));
        assert_eq!(tq_duration("INDEF"), None);
        assert_eq!(tq_duration(""), None);
        assert_eq!(minutes("60", "s"), Some(1));
        assert_eq!(minutes("70", "Min"), Some(70));
        assert_eq!(minutes("-5", ""), None);
    }

    #[test]
    fn adding_minutes_carries_days_months_and_years() {
        assert_eq!(
            add_minutes("2024-03-20T10:00:00-05:00", 30).as_deref(),
            Some("2024-03-20T10:30:00-05:00")
        );
        assert_eq!(
            add_minutes("2024-02-28T23:50:00.5+02:15", 20).as_deref(),
            Some("2024-02-29T00:10:00.5+02:15")
        );
        assert_eq!(
            add_minutes("2023-12-31T23:00:00Z", 120).as_deref(),
            Some("2024-01-01T01:00:00Z")
        );
        assert_eq!(
            add_minutes("2023-02-28T12:00:00+00:00", 24 * 60).as_deref(),
            Some("2023-03-01T12:00:00+00:00")
        );
    }
}
