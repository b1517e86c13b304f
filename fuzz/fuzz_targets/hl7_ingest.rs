//! What the ingest path (`gateway::accept`, `accept_hl7`) does with one
//! inbound HL7 v2 message before the journal: parse, header summary, the
//! journal's meta, the route decision and patient lane, and the ACK or NAK
//! (with the salvaged header when the parse fails). The journal append and
//! the clock are I/O and stay out; the ACK's control id and time are fixed.
#![no_main]

use std::sync::OnceLock;

use gateway::accept::hl7_meta;
use gateway::config::{RouteConfig, Transform};
use gateway::route::{lane, Glob, Router};
use hl7::{build_ack, parse_ack, salvage_header, Message, Outcome};
use libfuzzer_sys::fuzz_target;

fn route(
    name: &str,
    to: &str,
    types: &[&str],
    facilities: &[&str],
    receivers: &[&str],
) -> RouteConfig {
    let globs = |v: &[&str]| v.iter().map(|g| Glob::new(g)).collect();
    RouteConfig {
        name: name.into(),
        from: vec!["mllp".into()],
        to: vec![to.into()],
        transform: Transform::None,
        message_types: globs(types),
        sending_facilities: globs(facilities),
        receiving_applications: globs(receivers),
    }
}

fn router() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| {
        Router::new(vec![
            route("adt", "fhir", &["ADT^*"], &[], &[]),
            route("labs", "fhir", &["ORU^R01", "OUL^*"], &["LAB*"], &[]),
            route("ecw", "mllp-out", &[], &["*CLINIC*"], &["ECW"]),
            route("all", "archive", &[], &[], &[]),
        ])
    })
}

/// The ACK we build must itself read as an ACK.
fn check_ack(ack: Option<Vec<u8>>) {
    if let Some(bytes) = ack {
        parse_ack(&bytes).expect("our own ACK does not parse");
    }
}

fuzz_target!(|data: &[u8]| {
    match Message::parse(data) {
        Ok(msg) => {
            let header = msg.header();
            let _ = hl7_meta(&header);
            let _ = router().destinations_for("mllp", &header);
            let _ = router().matching_routes("mllp", &header);
            let own = lane::patient_lane(&header);
            let _ = lane::merged_lanes(&msg, own);
            check_ack(build_ack(
                Some(&header),
                &Outcome::Accepted,
                "ACK1",
                "20240101000000",
            ));
            let refused = Outcome::Error {
                code: 207,
                text: "journal full".into(),
            };
            check_ack(build_ack(Some(&header), &refused, "ACK2", "20240101000000"));
            // Every segment and field the mappers may read.
            for seg in msg.segments() {
                for f in seg.fields() {
                    let _ = f;
                }
            }
        }
        Err(e) => {
            let salvaged = salvage_header(data);
            let outcome = Outcome::from_parse_error(&e);
            check_ack(build_ack(
                salvaged.as_ref(),
                &outcome,
                "NAK1",
                "20240101000000",
            ));
            let _ = Message::parse_lenient(data);
        }
    }
});
