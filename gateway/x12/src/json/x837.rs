//! 837P / 837I claims → JSON for a data warehouse: the BHT header and the
//! submitter/receiver, then the HL tree (billing provider, subscriber,
//! patient), each node with its entities, SBR/PAT information and its
//! claims: CLM fields, CL1 (837I), dates, references, amounts, diagnoses
//! and other HI codes, claim-level providers, other payers (2320 SBR
//! loops with their CAS), and service lines (SV1 for 837P, SV2 for 837I)
//! with dates, drug (LIN/CTP) and line adjudications (SVD + CAS).

use super::common::{
    adjustments, amounts, dates, entities, pick, procedure, references, split_at, write_tree,
    Hierarchy,
};
use super::writer::JsonWriter;
use super::x27x::header;
use crate::document::TransactionSet;
use crate::reader::{Elements, Segment};

fn level_name(level: &[u8]) -> Option<&'static str> {
    Some(match level {
        b"20" => "billing_provider",
        b"22" => "subscriber",
        b"23" => "patient",
        _ => return None,
    })
}

/// HI qualifiers that carry diagnoses (ICD-10-CM / ICD-9-CM: principal,
/// other, admitting, patient reason for visit, external cause).
fn is_diagnosis(q: &[u8]) -> bool {
    matches!(
        q,
        b"ABK" | b"ABF" | b"ABJ" | b"APR" | b"ABN" | b"BK" | b"BF" | b"BJ" | b"PR" | b"BN"
    )
}

/// Writes the 837 fields into the open transaction object.
pub fn write(w: &mut JsonWriter, set: &TransactionSet<'_>) {
    let tree = Hierarchy::new(set.body().collect());
    let pre = &tree.segments[..tree.first_hl];
    header(w, pre);
    entities(w, pre);
    write_tree(w, &tree, level_name, &mut |w, _level, segs| {
        let (pre, claims) = split_at(segs, b"CLM");
        if let Some(sbr) = pre.iter().find(|s| s.id() == b"SBR") {
            w.object_field("subscriber_info");
            sbr_fields(w, &sbr.elements());
            w.end_object();
        }
        if let Some(pat) = pre.iter().find(|s| s.id() == b"PAT") {
            let e = pat.elements();
            w.object_field("patient_info");
            w.field("relationship", e.get(1));
            w.field_date("death_date", e.get(6));
            w.field("weight", e.get(8));
            w.field("pregnant", e.get(9));
            w.end_object();
        }
        entities(w, pre);
        w.array_field("claims");
        for c in claims {
            write_claim(w, c);
        }
        w.end_array();
    });
}

fn sbr_fields(w: &mut JsonWriter, e: &Elements<'_>) {
    w.field("payer_responsibility", e.get(1));
    w.field("relationship", e.get(2));
    w.field("group_number", e.get(3));
    w.field("group_name", e.get(4));
    w.field("insurance_type", e.get(5));
    w.field("filing_indicator", e.get(9));
}

fn write_claim(w: &mut JsonWriter, claim: &[Segment<'_>]) {
    let Some(clm) = claim.first() else { return };
    let e = clm.elements();
    let (head, lines) = split_at(claim, b"LX");
    let (main, other_payers) = split_at(head, b"SBR");
    w.begin_object();
    w.field_number("segment", clm.pos.segment);
    w.field("claim_id", e.get(1));
    w.field("charge", e.get(2));
    w.field("place_of_service", e.component(5, 1));
    w.field("facility_code_qualifier", e.component(5, 2));
    w.field("frequency", e.component(5, 3));
    w.field("provider_signature", e.get(6));
    w.field("assignment", e.get(7));
    w.field("benefits_assigned", e.get(8));
    w.field("release_of_information", e.get(9));
    w.field("patient_signature_source", e.get(10));
    if !e.get(11).is_empty() {
        w.array_field("related_causes");
        for c in e.components(11) {
            if !c.is_empty() {
                w.string(c);
            }
        }
        w.end_array();
    }
    w.field("special_program", e.get(12));
    w.field("delay_reason", e.get(20));
    if let Some(cl1) = main.iter().find(|s| s.id() == b"CL1") {
        let c = cl1.elements();
        w.object_field("institutional");
        w.field("admission_type", c.get(1));
        w.field("admission_source", c.get(2));
        w.field("patient_status", c.get(3));
        w.end_object();
    }
    dates(w, &pick(main, b"DTP"));
    references(w, &pick(main, b"REF"));
    amounts(w, &pick(main, b"AMT"));
    health_care_codes(w, &pick(main, b"HI"));
    entities(w, main);
    w.array_field("other_payers");
    for op in other_payers {
        let Some(sbr) = op.first() else { continue };
        w.begin_object();
        sbr_fields(w, &sbr.elements());
        adjustments(w, &pick(op, b"CAS"));
        amounts(w, &pick(op, b"AMT"));
        entities(w, op);
        w.end_object();
    }
    w.end_array();
    w.array_field("service_lines");
    for line in lines {
        write_line(w, line);
    }
    w.end_array();
    w.end_object();
}

fn health_care_codes(w: &mut JsonWriter, his: &[Segment<'_>]) {
    let mut diagnoses: Vec<(Elements<'_>, usize)> = Vec::new();
    let mut other: Vec<(Elements<'_>, usize)> = Vec::new();
    for hi in his {
        let e = hi.elements();
        for n in 1..=12 {
            let q = e.component(n, 1);
            if q.is_empty() {
                continue;
            }
            if is_diagnosis(q) {
                diagnoses.push((e, n));
            } else {
                other.push((e, n));
            }
        }
    }
    for (key, list) in [("diagnoses", &diagnoses), ("other_codes", &other)] {
        if list.is_empty() {
            continue;
        }
        w.array_field(key);
        for (e, n) in list {
            let q = e.component(*n, 1);
            w.begin_object();
            w.field("qualifier", q);
            w.field("code", e.component(*n, 2));
            if key == "diagnoses" {
                w.field_bool("principal", matches!(q, b"ABK" | b"BK"));
            }
            super::common::date_value(w, e.component(*n, 3), e.component(*n, 4));
            w.field("amount", e.component(*n, 5));
            w.field("present_on_admission", e.component(*n, 9));
            w.end_object();
        }
        w.end_array();
    }
}

fn write_line(w: &mut JsonWriter, line: &[Segment<'_>]) {
    let (main, adjudications) = split_at(line, b"SVD");
    w.begin_object();
    if let Some(lx) = main.first() {
        w.field_number("segment", lx.pos.segment);
        w.field("line_number", lx.element(1));
    }
    if let Some(sv1) = main.iter().find(|s| s.id() == b"SV1") {
        let e = sv1.elements();
        procedure(w, "procedure", &e, 1);
        w.field("charge", e.get(2));
        w.field("unit_basis", e.get(3));
        w.field("units", e.get(4));
        w.field("place_of_service", e.get(5));
        let pointers: Vec<&[u8]> = e.components(7).filter(|p| !p.is_empty()).collect();
        if !pointers.is_empty() {
            w.array_field("diagnosis_pointers");
            for p in pointers {
                w.string(p);
            }
            w.end_array();
        }
        w.field("emergency", e.get(9));
    }
    if let Some(sv2) = main.iter().find(|s| s.id() == b"SV2") {
        let e = sv2.elements();
        w.field("revenue_code", e.get(1));
        if !e.get(2).is_empty() {
            procedure(w, "procedure", &e, 2);
        }
        w.field("charge", e.get(3));
        w.field("unit_basis", e.get(4));
        w.field("units", e.get(5));
        w.field("non_covered_charge", e.get(7));
    }
    if let Some(lin) = main.iter().find(|s| s.id() == b"LIN") {
        let e = lin.elements();
        w.object_field("drug");
        w.field("qualifier", e.get(2));
        w.field("code", e.get(3));
        if let Some(ctp) = main.iter().find(|s| s.id() == b"CTP") {
            let c = ctp.elements();
            w.field("quantity", c.get(4));
            w.field("unit", c.component(5, 1));
        }
        w.end_object();
    }
    dates(w, &pick(main, b"DTP"));
    let refs = pick(main, b"REF");
    if let Some(r) = refs.iter().find(|r| r.element(1) == b"6R") {
        w.field("control_number", r.element(2));
    }
    references(w, &refs);
    amounts(w, &pick(main, b"AMT"));
    entities(w, main);
    w.array_field("adjudications");
    for a in adjudications {
        let Some(svd) = a.first() else { continue };
        let e = svd.elements();
        w.begin_object();
        w.field("payer", e.get(1));
        w.field("paid", e.get(2));
        procedure(w, "procedure", &e, 3);
        w.field("units", e.get(5));
        adjustments(w, &pick(a, b"CAS"));
        dates(w, &pick(a, b"DTP"));
        w.end_object();
    }
    w.end_array();
    w.end_object();
}
