//! 270 eligibility inquiry and 271 eligibility response → JSON: the BHT
//! header, then the HL tree (information source, receiver, subscriber,
//! dependent), each node with its entities, traces (TRN), rejections
//! (AAA), and its inquiries (EQ, 270) or benefits (EB, 271).

use super::common::{
    amounts, dates, entities, pick, procedure, references, split_at, write_tree, Hierarchy,
};
use super::writer::JsonWriter;
use super::x27x::header;
use crate::codes;
use crate::document::TransactionSet;
use crate::reader::{Elements, Segment};

fn level_name(level: &[u8]) -> Option<&'static str> {
    Some(match level {
        b"20" => "information_source",
        b"21" => "information_receiver",
        b"22" => "subscriber",
        b"23" => "dependent",
        _ => return None,
    })
}

/// Writes the 270/271 fields into the open transaction object.
pub fn write(w: &mut JsonWriter, set: &TransactionSet<'_>) {
    let tree = Hierarchy::new(set.body().collect());
    header(w, &tree.segments[..tree.first_hl]);
    write_tree(w, &tree, level_name, &mut |w, _level, segs| {
        let first = segs
            .iter()
            .position(|s| matches!(s.id(), b"EQ" | b"EB"))
            .unwrap_or(segs.len());
        let (pre, rest) = segs.split_at(first);
        entities(w, pre);
        traces(w, pre);
        rejections(w, pre);
        dates(w, &pick(pre, b"DTP"));
        let (_, inquiries) = split_at(rest, b"EQ");
        if !inquiries.is_empty() {
            w.array_field("inquiries");
            for q in inquiries {
                write_inquiry(w, q);
            }
            w.end_array();
        }
        let (_, benefits) = split_at(rest, b"EB");
        if !benefits.is_empty() {
            w.array_field("benefits");
            for b in benefits {
                write_benefit(w, b);
            }
            w.end_array();
        }
    });
}

fn traces(w: &mut JsonWriter, segs: &[Segment<'_>]) {
    let t = pick(segs, b"TRN");
    if t.is_empty() {
        return;
    }
    w.array_field("traces");
    for s in &t {
        let e = s.elements();
        w.begin_object();
        w.field("type", e.get(1));
        w.field("number", e.get(2));
        w.field("originator", e.get(3));
        w.field("originator_supplemental", e.get(4));
        w.end_object();
    }
    w.end_array();
}

fn rejections(w: &mut JsonWriter, segs: &[Segment<'_>]) {
    let a = pick(segs, b"AAA");
    if a.is_empty() {
        return;
    }
    w.array_field("rejections");
    for s in &a {
        let e = s.elements();
        w.begin_object();
        w.field("valid_request", e.get(1));
        w.field("reason", e.get(3));
        w.field("follow_up_action", e.get(4));
        w.end_object();
    }
    w.end_array();
}

fn repetitions(w: &mut JsonWriter, key: &str, e: &Elements<'_>, n: usize) {
    if e.get(n).is_empty() {
        return;
    }
    w.array_field(key);
    for r in e.repetitions(n) {
        w.string(r);
    }
    w.end_array();
}

fn write_inquiry(w: &mut JsonWriter, q: &[Segment<'_>]) {
    let Some(eq) = q.first() else { return };
    let e = eq.elements();
    w.begin_object();
    repetitions(w, "service_types", &e, 1);
    if !e.get(2).is_empty() {
        procedure(w, "procedure", &e, 2);
    }
    w.field("coverage_level", e.get(3));
    w.field("insurance_type", e.get(4));
    amounts(w, &pick(q, b"AMT"));
    references(w, &pick(q, b"REF"));
    dates(w, &pick(q, b"DTP"));
    w.end_object();
}

fn write_benefit(w: &mut JsonWriter, b: &[Segment<'_>]) {
    let Some(eb) = b.first() else { return };
    let e = eb.elements();
    w.begin_object();
    w.field("code", e.get(1));
    w.field_text("code_text", codes::eb01_text(e.get(1)));
    w.field("coverage_level", e.get(2));
    repetitions(w, "service_types", &e, 3);
    w.field("insurance_type", e.get(4));
    w.field("plan", e.get(5));
    w.field("time_period", e.get(6));
    w.field("amount", e.get(7));
    w.field("percent", e.get(8));
    w.field("quantity_qualifier", e.get(9));
    w.field("quantity", e.get(10));
    w.field("authorization_required", e.get(11));
    w.field("in_network", e.get(12));
    if !e.get(13).is_empty() {
        procedure(w, "procedure", &e, 13);
    }
    // Segments of the benefit itself, and the LS..LE related entities.
    let ls = b.iter().position(|s| s.id() == b"LS").unwrap_or(b.len());
    let (own, related) = b.split_at(ls);
    references(w, &pick(own, b"REF"));
    dates(w, &pick(own, b"DTP"));
    rejections(w, own);
    let msgs = pick(own, b"MSG");
    if !msgs.is_empty() {
        w.array_field("messages");
        for m in &msgs {
            w.string(m.element(1));
        }
        w.end_array();
    }
    if !related.is_empty() {
        w.key("related");
        w.begin_object();
        entities(w, related);
        w.end_object();
    }
    w.end_object();
}
