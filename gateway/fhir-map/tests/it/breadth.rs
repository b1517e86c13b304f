//! Every one of FHIR-Converter's 139 samples gives a Bundle, in PUT and in
//! conditional mode: no family of the shared corpus is refused. (Their
//! validity is `invariants.rs`'s.)

use crate::support::*;
use hl7::Message;

#[test]
fn every_shared_sample_translates() {
    let files = shared_corpus();
    assert_eq!(files.len(), 139, "FHIR-Converter's samples");
    let mut refused = Vec::new();
    for f in &files {
        let raw = read(f);
        let msg = Message::parse(&raw).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let h = msg.header();
        assert!(
            fhir_map::supported(&h.message_code, &h.trigger_event),
            "{}: {}^{} not supported",
            f.display(),
            h.message_code,
            h.trigger_event
        );
        for (mode, ctx) in contexts() {
            if let Err(e) = fhir_map::translate(&msg, &ctx) {
                refused.push(format!("{} ({mode}): {e}", f.display()));
            }
        }
    }
    assert!(refused.is_empty(), "refused:\n{}", refused.join("\n"));
}
