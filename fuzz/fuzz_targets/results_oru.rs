//! The results poller's path from a FHIR searchset page to ORU^R01
//! (`gateway::source::poller`): the page as JSON, `split_reports`, the
//! report's time (`hl7_ts`), `next_link`, and `fhir_map::results_to_oru`.
//! Checks: no panic, and every ORU it builds parses as HL7 v2 with the
//! control id and type it was given (it is journaled as inbound).
#![no_main]

use fhir_map::{results_to_oru, ToHl7Context};
use gateway::source::results::{hl7_ts, next_link, split_reports};
use hl7::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(page) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let _ = next_link(&page);
    for r in split_reports(&page) {
        let ts = r
            .last_updated
            .as_deref()
            .and_then(hl7_ts)
            .unwrap_or_else(|| "20240101000000+0000".into());
        let ctx = ToHl7Context {
            control_id: r.control_id.clone(),
            timestamp: ts,
            ..ToHl7Context::default()
        };
        if let Ok(oru) = results_to_oru(&r.bundle, &ctx) {
            let msg = Message::parse(&oru).expect("the ORU we built does not parse");
            let h = msg.header();
            assert_eq!(h.message_type(), "ORU^R01");
            assert_eq!(h.control_id, r.control_id);
        }
    }
});
