//! The x12-json transform: a checked [`Document`] as stable JSON (schema in
//! `docs/x12-json.md`, version [`SCHEMA_VERSION`]).
//!
//! Shape: `{"x12_json":1, "clean":bool, "errors":[...], "interchanges":[{
//! envelope fields, "ta1":[...], "groups":[{ envelope fields,
//! "transactions":[{ "transaction":"835", ... }]}]}]}`. Each transaction
//! has its own module: [`x835`], [`x999`], [`x837`], [`x27x`] (276, 277,
//! 277CA), [`x270`] (270, 271). Values are strings exactly as sent
//! (amounts are never re-formatted, except computed totals which are exact
//! decimals); absent elements are omitted; D8 dates become `CCYY-MM-DD`.

pub mod common;
pub mod writer;
pub mod x270;
pub mod x27x;
pub mod x835;
pub mod x837;
pub mod x999;

use crate::codes;
use crate::document::{Document, Group, Interchange, TransactionSet};
use crate::envelope::{check, CheckOptions, SeenInterchanges};
use crate::error::Code;
use crate::guide::Kind;
use crate::isa::trim;
use writer::JsonWriter;

/// The schema version written as `"x12_json"`.
pub const SCHEMA_VERSION: usize = 1;

/// The JSON of a document, whatever its envelope errors (they are listed
/// in `"errors"`; transactions whose structure was read are mapped).
pub fn to_json(doc: &Document<'_>) -> Vec<u8> {
    // The JSON of an 835 is about 4.5 times its size: reserve that once
    // rather than grow (and copy) the buffer step by step.
    let mut w = JsonWriter::with_capacity(doc.input.len().saturating_mul(5) + 4096);
    write_document(&mut w, doc);
    w.into_bytes()
}

/// The bytes of [`to_json`], handed to `sink` in pieces of about `chunk`
/// bytes as they are written (so memory stays one chunk deep, whatever
/// the file's size): for writing the JSON to a file or a socket.
pub fn write_json(doc: &Document<'_>, chunk: usize, sink: &mut dyn FnMut(&[u8])) {
    let mut w = JsonWriter::streaming(chunk, sink);
    write_document(&mut w, doc);
    w.finish();
}

fn write_document(w: &mut JsonWriter<'_>, doc: &Document<'_>) {
    w.begin_object();
    w.field_number("x12_json", SCHEMA_VERSION);
    w.field_bool("clean", doc.is_clean());
    write_errors(w, doc);
    w.array_field("interchanges");
    for ic in &doc.interchanges {
        write_interchange(w, ic);
    }
    w.end_array();
    w.end_object();
}

/// Checks `input` and maps it when its envelopes are sound; otherwise the
/// checked document comes back as the error (its errors say why).
pub fn check_and_map<'a>(
    input: &'a [u8],
    options: &CheckOptions,
    seen: &dyn SeenInterchanges,
) -> Result<Vec<u8>, Document<'a>> {
    let doc = check(input, options, seen);
    if doc.is_clean() {
        Ok(to_json(&doc))
    } else {
        Err(doc)
    }
}

fn write_errors(w: &mut JsonWriter, doc: &Document<'_>) {
    w.array_field("errors");
    for e in doc.errors() {
        w.begin_object();
        w.field(
            "level",
            match e.level() {
                crate::error::Level::File => b"file".as_slice(),
                crate::error::Level::Interchange => b"interchange",
                crate::error::Level::Group => b"group",
                crate::error::Level::Set => b"set",
                crate::error::Level::Segment => b"segment",
            },
        );
        let code = e.code();
        if code != Code::None {
            w.field("code_element", code.element().as_bytes());
            w.field("code", code.value().as_bytes());
            w.field("code_text", code.text().as_bytes());
        }
        w.field_number("segment", e.pos.segment);
        w.field_number("offset", e.pos.offset);
        w.field("message", e.to_string().as_bytes());
        w.end_object();
    }
    w.end_array();
}

fn write_interchange(w: &mut JsonWriter, ic: &Interchange<'_>) {
    let isa = &ic.isa;
    w.begin_object();
    w.field_number("segment", isa.pos.segment);
    w.field("control_number", isa.element(13));
    w.object_field("sender");
    w.field("qualifier", isa.trimmed(5));
    w.field("id", isa.trimmed(6));
    w.end_object();
    w.object_field("receiver");
    w.field("qualifier", isa.trimmed(7));
    w.field("id", isa.trimmed(8));
    w.end_object();
    w.field("date", isa.element(9));
    w.field("time", isa.element(10));
    w.field("version", isa.element(12));
    w.field("usage", isa.element(15));
    w.field("ack_requested", isa.element(14));
    w.array_field("ta1");
    for t in &ic.ta1 {
        let e = t.elements();
        w.begin_object();
        w.field("interchange_control_number", e.get(1));
        w.field("interchange_date", e.get(2));
        w.field("interchange_time", e.get(3));
        w.field("code", e.get(4));
        w.field_text("code_text", codes::ta104_text(e.get(4)));
        w.field("note_code", e.get(5));
        w.field_text("note_text", codes::ta105_text(e.get(5)));
        w.field_bool("accepted", matches!(e.get(4), b"A" | b"E"));
        w.end_object();
    }
    w.end_array();
    w.array_field("groups");
    for g in &ic.groups {
        write_group(w, g);
    }
    w.end_array();
    w.end_object();
}

fn write_group(w: &mut JsonWriter, g: &Group<'_>) {
    let e = g.gs.elements();
    w.begin_object();
    w.field_number("segment", g.gs.pos.segment);
    w.field("functional_id", e.get(1));
    w.field("sender", trim(e.get(2)));
    w.field("receiver", trim(e.get(3)));
    w.field_date("date", e.get(4));
    w.field("time", e.get(5));
    w.field("control_number", e.get(6));
    w.field("version", e.get(8));
    w.array_field("transactions");
    for s in &g.sets {
        write_set(w, s);
    }
    w.end_array();
    w.end_object();
}

fn write_set(w: &mut JsonWriter, s: &TransactionSet<'_>) {
    let e = s.st.elements();
    w.begin_object();
    w.field(
        "transaction",
        s.kind.map_or(e.get(1), |k| k.name().as_bytes()),
    );
    w.field("control_number", e.get(2));
    w.field("guide", e.get(3));
    w.field_number("segment", s.st.pos.segment);
    w.field_number("segment_count", s.segment_count);
    w.trust(s.body_bytes(), s.separators().segment);
    match s.kind {
        Some(Kind::Remittance835) => x835::write(w, s),
        Some(Kind::Ack999) => x999::write(w, s),
        Some(Kind::Claim837P | Kind::Claim837I) => x837::write(w, s),
        Some(Kind::ClaimAck277CA | Kind::Status277 | Kind::Status276) => x27x::write(w, s),
        Some(Kind::Eligibility270 | Kind::Eligibility271) => x270::write(w, s),
        None => w.field_bool("mapped", false),
    }
    w.end_object();
}
