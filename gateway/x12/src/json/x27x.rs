//! 276 claim status request, 277 claim status response and 277CA claim
//! acknowledgment → JSON: the BHT header, then the HL tree (information
//! source, receiver, provider, subscriber/dependent or patient), each node
//! with its entities and its TRN-led loops: per claim (levels 22, 23, PT)
//! `"claims"`, elsewhere `"traces"`; each loop has its STC statuses with
//! category meanings and a `verdict`, and its SVC service lines.

use super::common::{
    amounts, dates, entities, pick, procedure, references, split_at, status, verdict, write_tree,
    Hierarchy,
};
use super::writer::JsonWriter;
use crate::document::TransactionSet;
use crate::reader::Segment;

fn level_name(level: &[u8]) -> Option<&'static str> {
    Some(match level {
        b"20" => "information_source",
        b"21" => "information_receiver",
        b"19" => "provider_of_service",
        b"22" => "subscriber",
        b"23" => "dependent",
        b"PT" => "patient",
        _ => return None,
    })
}

/// Writes the BHT header as `"header"`.
pub fn header(w: &mut JsonWriter, pre: &[Segment<'_>]) {
    if let Some(bht) = pre.iter().find(|s| s.id() == b"BHT") {
        let e = bht.elements();
        w.object_field("header");
        w.field("structure", e.get(1));
        w.field("purpose", e.get(2));
        w.field("reference", e.get(3));
        w.field_date("date", e.get(4));
        w.field("time", e.get(5));
        w.field("type", e.get(6));
        w.end_object();
    }
}

/// Writes the 276/277/277CA fields into the open transaction object.
pub fn write(w: &mut JsonWriter, set: &TransactionSet<'_>) {
    let tree = Hierarchy::new(set.body().collect());
    header(w, &tree.segments[..tree.first_hl]);
    write_tree(w, &tree, level_name, &mut |w, level, segs| {
        let (pre, loops) = split_at(segs, b"TRN");
        entities(w, pre);
        dates(w, &pick(pre, b"DTP"));
        let key = if matches!(level, b"22" | b"23" | b"PT") {
            "claims"
        } else {
            "traces"
        };
        w.array_field(key);
        for l in loops {
            write_loop(w, l);
        }
        w.end_array();
    });
}

fn write_loop(w: &mut JsonWriter, l: &[Segment<'_>]) {
    let (main, lines) = split_at(l, b"SVC");
    w.begin_object();
    if let Some(trn) = main.first() {
        let e = trn.elements();
        w.field_number("segment", trn.pos.segment);
        w.object_field("trace");
        w.field("type", e.get(1));
        w.field("number", e.get(2));
        w.field("originator", e.get(3));
        w.end_object();
    }
    statuses(w, main);
    references(w, &pick(main, b"REF"));
    amounts(w, &pick(main, b"AMT"));
    quantities(w, main);
    dates(w, &pick(main, b"DTP"));
    w.array_field("service_lines");
    for line in lines {
        let Some(svc) = line.first() else { continue };
        let e = svc.elements();
        w.begin_object();
        procedure(w, "procedure", &e, 1);
        w.field("charge", e.get(2));
        w.field("paid", e.get(3));
        w.field("revenue_code", e.get(4));
        w.field("units", e.get(5));
        statuses(w, line);
        references(w, &pick(line, b"REF"));
        dates(w, &pick(line, b"DTP"));
        w.end_object();
    }
    w.end_array();
    w.end_object();
}

fn statuses(w: &mut JsonWriter, segs: &[Segment<'_>]) {
    let stcs = pick(segs, b"STC");
    if stcs.is_empty() {
        return;
    }
    w.array_field("statuses");
    for s in &stcs {
        status(w, s);
    }
    w.end_array();
    w.field("verdict", verdict(stcs.iter()).as_bytes());
}

fn quantities(w: &mut JsonWriter, segs: &[Segment<'_>]) {
    let q = pick(segs, b"QTY");
    if q.is_empty() {
        return;
    }
    w.array_field("quantities");
    for s in &q {
        w.begin_object();
        w.field("qualifier", s.element(1));
        w.field("quantity", s.element(2));
        w.end_object();
    }
    w.end_array();
}
