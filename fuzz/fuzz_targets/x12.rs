//! The X12 ingest path (`gateway::accept::x12`): `x12::check` (reader and
//! every envelope check), the TA1/999 acknowledgments, the x12-json
//! transform (whole and streamed in chunks), and the 835 reconciliation.
//! Checks: no panic, the JSON parses, the streamed JSON is the same bytes,
//! and every acknowledgment reads back as a clean X12 interchange (unless
//! the interchange it answers has a broken ISA: sender, receiver, length).
#![no_main]

use gateway_fuzz::chunked;
use libfuzzer_sys::fuzz_target;
use x12::{
    acknowledgments, check, reconcile_835, to_json, write_json, AckHeader, CheckOptions, ErrorKind,
    Kind, Stamp,
};

fuzz_target!(|data: &[u8]| {
    let (chunk, input) = chunked(data);
    let doc = check(
        input,
        &CheckOptions {
            expected_usage: None,
        },
        &(),
    );
    let json = to_json(&doc);
    serde_json::from_slice::<serde_json::Value>(&json).expect("x12-json is not JSON");
    let mut streamed = Vec::new();
    write_json(&doc, chunk, &mut |b| streamed.extend_from_slice(b));
    assert!(
        streamed == json,
        "write_json in chunks of {chunk} differs from to_json"
    );
    for (_, _, set) in doc.sets() {
        if set.kind == Some(Kind::Remittance835) {
            let r = reconcile_835(set);
            let _ = (r.balanced(), r.mismatches());
        }
    }
    let mut n = 0;
    let acks = acknowledgments(&doc, || {
        n += 1;
        AckHeader::numbered(n, Stamp::from_unix(1_700_000_000))
    });
    for ack in acks {
        // An interchange whose own ISA is unreadable, of the wrong length
        // or with a blank or broken ISA05-08 cannot be answered with a clean ack: the
        // ack is addressed back to what it says (docs/fuzzing.md).
        let ic = &doc.interchanges[ack.interchange];
        // The ack copies ISA06/08 with control characters and its own
        // separators (`* : ^ ~`, which need not be the received ones) made
        // spaces (`ack/writer.rs`, `clean`).
        let blank = |n| {
            !ic.isa
                .element(n)
                .iter()
                .any(|b| b.is_ascii_graphic() && !b"*:^~".contains(b))
        };
        let blank_party = blank(6) || blank(8);
        let unaddressable = blank_party
            || ic.errors.iter().any(|e| {
                matches!(
                    e.kind,
                    ErrorKind::IsaUnreadable
                        | ErrorKind::IsaLength { .. }
                        | ErrorKind::BadSeparator { .. }
                        | ErrorKind::IsaValue { element: 5..=8, .. }
                )
            });
        if unaddressable {
            continue;
        }
        let back = check(
            &ack.bytes,
            &CheckOptions {
                expected_usage: None,
            },
            &(),
        );
        assert!(
            back.is_clean(),
            "our own {:?} is not clean X12: {:?}",
            ack.kind,
            back.errors().next()
        );
    }
});
