//! SIU: one message per timing style (SCH-11 only, TQ1 only, AIS only),
//! the order between them, what happens without a placeable time (R4's
//! app-2/app-3), and the status of each trigger.

use crate::support::*;
use fhir_map::MapContext;

fn appointment(name: &str, ctx: &MapContext) -> serde_json::Value {
    let b = bundle(&own(name), ctx);
    let list = resources(&b, "Appointment");
    assert_eq!(list.len(), 1, "{name}");
    list[0].clone()
}

#[test]
fn each_timing_style_gives_start_and_end() {
    let ctx = MapContext::new("acme");
    let a = appointment("siu_s12_sch11_only.hl7", &ctx);
    assert_eq!(a["status"], "booked");
    assert_eq!(a["start"], "2026-07-10T09:30:00-05:00");
    assert_eq!(a["end"], "2026-07-10T09:50:00-05:00");
    assert_eq!(a["minutesDuration"], 20);
    let a = appointment("siu_s12_tq1_only.hl7", &ctx);
    assert_eq!(a["status"], "booked");
    assert_eq!(a["start"], "2026-07-11T14:00:00-05:00");
    assert_eq!(a["end"], "2026-07-11T14:30:00-05:00");
    // AIS-4 start + AIS-7/8 duration.
    let a = appointment("siu_s12_ais_only.hl7", &ctx);
    assert_eq!(a["status"], "booked");
    assert_eq!(a["start"], "2026-07-12T08:15:00-05:00");
    assert_eq!(a["end"], "2026-07-12T09:00:00-05:00");
}

#[test]
fn sch11_comes_before_tq1_and_ais() {
    // siu_s14_5 carries SCH-11 (14:00) and AIS-4 (10:00).
    let a = appointment("siu_s14_5.hl7", &MapContext::new("acme"));
    assert_eq!(a["start"], "2024-03-20T14:00:00-05:00");
    assert_eq!(a["end"], "2024-03-20T14:30:00-05:00");
    // siu_s12_1 has TQ1 (10:00-10:30) and AIS: TQ1 wins over AIS.
    let a = appointment("siu_s12_1.hl7", &MapContext::new("acme"));
    assert_eq!(a["start"], "2024-03-20T10:00:00-05:00");
}

#[test]
fn without_a_placeable_time_the_appointment_is_proposed() {
    // eCW's times without an offset and none configured: no instant.
    let a = appointment("siu_s12_sch11_no_offset.hl7", &MapContext::new("acme"));
    assert_eq!(a["status"], "proposed");
    assert!(a.get("start").is_none() && a.get("end").is_none());
    assert_eq!(a["requestedPeriod"][0]["start"], "2026-07-10");
    assert_eq!(a["participant"][0]["status"], "needs-action");
    // With the site's offset configured the same message is booked.
    let mut ctx = MapContext::new("acme");
    ctx.default_utc_offset = Some("-05:00".into());
    let a = appointment("siu_s12_sch11_no_offset.hl7", &ctx);
    assert_eq!(a["status"], "booked");
    assert_eq!(a["start"], "2026-07-10T09:30:00-05:00");
    assert_eq!(a["end"], "2026-07-10T09:50:00-05:00");
    // No time at all.
    let a = appointment("siu_s12_no_times.hl7", &MapContext::new("acme"));
    assert_eq!(a["status"], "proposed");
    assert!(a.get("requestedPeriod").is_none());
}

#[test]
fn triggers_set_the_status_of_the_same_appointment() {
    let ctx = MapContext::new("acme");
    let booked = appointment("siu_s13_1.hl7", &ctx);
    assert_eq!(booked["status"], "booked", "S13 reschedules");
    assert_eq!(booked["start"], "2026-07-10T10:00:00-05:00");
    assert!(booked.get("cancelationReason").is_none());
    let dc = appointment("siu_s16_1.hl7", &ctx);
    assert_eq!(dc["status"], "cancelled");
    assert_eq!(dc["cancelationReason"]["coding"][0]["code"], "NOSHOW");
    let deleted = appointment("siu_s17_1.hl7", &ctx);
    assert_eq!(deleted["status"], "entered-in-error");
    assert!(deleted.get("cancelationReason").is_none(), "app-4");
    let noshow = appointment("siu_s26_1.hl7", &ctx);
    assert_eq!(noshow["status"], "noshow");
    for a in [&dc, &deleted, &noshow] {
        assert_eq!(a["id"], booked["id"], "one Appointment per SCH-2");
    }
}
