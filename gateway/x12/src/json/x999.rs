//! 999 implementation acknowledgment → JSON: the acknowledged group (AK1),
//! each acknowledged set (AK2) with its verdict (IK5), its error codes and
//! their meaning, segment errors (IK3) with element errors (IK4), and the
//! group verdict (AK9).

use super::writer::JsonWriter;
use crate::codes;
use crate::document::TransactionSet;
use crate::reader::Elements;

fn code_list(
    w: &mut JsonWriter,
    key: &str,
    e: &Elements<'_>,
    from: usize,
    text: fn(&[u8]) -> Option<&'static str>,
) {
    w.array_field(key);
    for n in from..from + 5 {
        let c = e.get(n);
        if c.is_empty() {
            continue;
        }
        w.begin_object();
        w.field("code", c);
        w.field_text("text", text(c));
        w.end_object();
    }
    w.end_array();
}

/// Writes the 999 fields into the open transaction object.
pub fn write(w: &mut JsonWriter, set: &TransactionSet<'_>) {
    let mut in_sets = false;
    let mut in_set = false;
    let mut in_segment = false;
    let close_segment = |w: &mut JsonWriter, in_segment: &mut bool| {
        if *in_segment {
            w.end_array(); // elements
            w.end_object();
            *in_segment = false;
        }
    };
    let close_set = |w: &mut JsonWriter, in_set: &mut bool, in_segment: &mut bool| {
        close_segment(w, in_segment);
        if *in_set {
            w.end_array(); // segment_errors
            w.end_object();
            *in_set = false;
        }
    };
    for seg in set.body() {
        let e = seg.elements();
        match seg.id() {
            // Inside "sets" (an AK1 after an AK2) a key would break the
            // JSON (found by fuzzing): such an AK1 is left out.
            b"AK1" if !in_sets => {
                w.object_field("functional_group");
                w.field("functional_id", e.get(1));
                w.field("control_number", e.get(2));
                w.field("version", e.get(3));
                w.end_object();
            }
            b"AK2" => {
                close_set(w, &mut in_set, &mut in_segment);
                if !in_sets {
                    w.array_field("sets");
                    in_sets = true;
                }
                w.begin_object();
                w.field("transaction_set", e.get(1));
                w.field("control_number", e.get(2));
                w.field("guide", e.get(3));
                w.array_field("segment_errors");
                in_set = true;
            }
            b"IK3" if in_set => {
                close_segment(w, &mut in_segment);
                w.begin_object();
                w.field("segment_id", e.get(1));
                w.field("position", e.get(2));
                w.field("loop", e.get(3));
                w.field("code", e.get(4));
                w.field_text("text", codes::ik304_text(e.get(4)));
                w.array_field("elements");
                in_segment = true;
            }
            b"IK4" if in_segment => {
                w.begin_object();
                w.field("position", e.component(1, 1));
                w.field("component", e.component(1, 2));
                w.field("repetition", e.component(1, 3));
                w.field("reference", e.get(2));
                w.field("code", e.get(3));
                w.field_text("text", codes::ik403_text(e.get(3)));
                w.field("bad_value", e.get(4));
                w.end_object();
            }
            b"IK5" if in_set => {
                close_segment(w, &mut in_segment);
                w.end_array(); // segment_errors
                w.field("status", e.get(1));
                w.field_text("status_text", codes::ik501_text(e.get(1)));
                w.field_bool("accepted", matches!(e.get(1), b"A" | b"E"));
                code_list(w, "errors", &e, 2, codes::ik502_text);
                w.end_object();
                in_set = false;
            }
            b"AK9" => {
                close_set(w, &mut in_set, &mut in_segment);
                if in_sets {
                    w.end_array();
                    in_sets = false;
                }
                w.object_field("group_status");
                w.field("status", e.get(1));
                w.field_text("status_text", codes::ak901_text(e.get(1)));
                w.field("sets_included", e.get(2));
                w.field("sets_received", e.get(3));
                w.field("sets_accepted", e.get(4));
                code_list(w, "errors", &e, 5, codes::ak905_text);
                w.end_object();
            }
            _ => {}
        }
    }
    close_set(w, &mut in_set, &mut in_segment);
    if in_sets {
        w.end_array();
    }
}
