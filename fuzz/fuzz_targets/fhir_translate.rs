//! The HL7 v2 → FHIR R4 transform as the FHIR destination runs it:
//! `fhir_map::translate_with` on every message that parses. Checks: no
//! panic, and the bytes it would send are one JSON Bundle.
#![no_main]

use std::sync::OnceLock;

use fhir_map::{translate_with, MapContext, TranslateOptions};
use hl7::Message;
use libfuzzer_sys::fuzz_target;

fn context() -> &'static MapContext {
    static CTX: OnceLock<MapContext> = OnceLock::new();
    CTX.get_or_init(|| MapContext::new("fuzz-clinic"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = Message::parse(data) else {
        return;
    };
    let options = TranslateOptions {
        provenance: true,
        journal_id: Some("00000000000000000001"),
        received: Some("2024-03-12T09:30:00Z"),
    };
    if let Ok(t) = translate_with(&msg, context(), &options) {
        let bundle: serde_json::Value =
            serde_json::from_slice(&t.bytes).expect("the Bundle is not JSON");
        assert_eq!(bundle["resourceType"], "Bundle");
    }
});
