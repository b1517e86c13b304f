//! 835 remittance advice → JSON, streaming: the header (payment, trace,
//! payer, payee) is written when the first claim starts, each claim when
//! it ends (so memory stays one claim deep on a 50 MB file), PLB provider
//! adjustments and the reconciled totals last.
//!
//! The balances ([`crate::reconcile`]'s rules) are computed while the
//! claim is written, from the same element reads, and every list is a
//! filter over the claim's segments: nothing is allocated per claim.

use super::common::{
    adjustments_with_totals, amounts, dates, procedure, references, with_id, Entity,
};
use super::writer::JsonWriter;
use crate::codes;
use crate::decimal::Decimal;
use crate::document::TransactionSet;
use crate::reader::Segment;
use crate::reconcile::{ends_claim, plb_total};

/// Writes the 835 fields into the open transaction object.
pub fn write(w: &mut JsonWriter, set: &TransactionSet<'_>) {
    let mut header: Vec<Segment<'_>> = Vec::new();
    // One claim's segments, reused from claim to claim.
    let mut claim: Vec<Segment<'_>> = Vec::with_capacity(64);
    let mut plbs: Vec<Segment<'_>> = Vec::new();
    let mut in_claims = false;
    let mut header_number: &[u8] = &[];
    let mut claims = 0usize;
    let mut claims_paid = Decimal::ZERO;
    let mut all_claims_balanced = true;
    let mut unreadable = Vec::new();
    for seg in set.body() {
        let id = seg.id();
        if ends_claim(id) && !claim.is_empty() {
            all_claims_balanced &= write_claim(w, &claim, header_number);
            claims += 1;
            claim.clear();
        }
        match id {
            b"LX" | b"CLP" if !in_claims => {
                write_header(w, &header);
                w.array_field("claims");
                in_claims = true;
            }
            _ => {}
        }
        match id {
            b"LX" => header_number = seg.element(1),
            b"CLP" => {
                if let Some(s) =
                    Decimal::parse(seg.element(4)).and_then(|p| claims_paid.checked_add(p))
                {
                    claims_paid = s;
                } else {
                    unreadable.push(seg.pos);
                }
                claim.push(seg);
            }
            b"PLB" => plbs.push(seg),
            _ if !claim.is_empty() => claim.push(seg),
            _ if !in_claims => header.push(seg),
            // TS3/TS2 provider summaries and anything between claims.
            _ => {}
        }
    }
    // The last claim ends at SE, which is not part of the body.
    if !claim.is_empty() {
        all_claims_balanced &= write_claim(w, &claim, header_number);
        claims += 1;
    }
    if !in_claims {
        write_header(w, &header);
        w.array_field("claims");
    }
    w.end_array();
    let mut plb_sum = Decimal::ZERO;
    w.array_field("provider_adjustments");
    for p in &plbs {
        plb_sum = plb_sum
            .checked_add(plb_total(p, &mut unreadable))
            .unwrap_or(plb_sum);
        write_plb(w, p);
    }
    w.end_array();
    let payment = header
        .iter()
        .find(|s| s.id() == b"BPR")
        .map(|s| s.element(2));
    let expected = claims_paid.checked_sub(plb_sum).unwrap_or(claims_paid);
    let payment_balanced = payment.and_then(Decimal::parse) == Some(expected);
    w.object_field("totals");
    w.field("payment", payment.unwrap_or(&[]));
    w.field_decimal("claims_paid", claims_paid);
    w.field_decimal("provider_adjustments", plb_sum);
    w.field_decimal("expected_payment", expected);
    w.field_number("claim_count", claims);
    w.field_bool("balanced", payment_balanced && unreadable.is_empty());
    w.end_object();
    w.field_bool(
        "balanced",
        payment_balanced && all_claims_balanced && unreadable.is_empty(),
    );
}

fn write_header(w: &mut JsonWriter, header: &[Segment<'_>]) {
    let mut refs = Vec::new();
    let mut dtms = Vec::new();
    let mut payer: Option<Entity<'_>> = None;
    let mut payee: Option<Entity<'_>> = None;
    let mut current: Option<&mut Entity<'_>> = None;
    let mut bpr = None;
    let mut trn = None;
    let mut cur = None;
    for seg in header {
        match seg.id() {
            b"BPR" if bpr.is_none() => bpr = Some(*seg),
            b"TRN" if trn.is_none() => trn = Some(*seg),
            b"CUR" if cur.is_none() => cur = Some(*seg),
            b"N1" => {
                let entity = Entity {
                    name: Some(*seg),
                    ..Entity::default()
                };
                current = match seg.element(1) {
                    b"PR" => Some(payer.insert(entity)),
                    b"PE" => Some(payee.insert(entity)),
                    _ => None,
                };
            }
            _ => {
                let taken = match current.as_mut() {
                    Some(e) => e.take(*seg),
                    None => false,
                };
                if !taken {
                    match seg.id() {
                        b"REF" => refs.push(*seg),
                        b"DTM" => dtms.push(*seg),
                        _ => {}
                    }
                }
            }
        }
    }
    w.object_field("payment");
    if let Some(b) = bpr {
        let e = b.elements();
        w.field("handling", e.get(1));
        w.field("amount", e.get(2));
        w.field("credit_debit", e.get(3));
        w.field("method", e.get(4));
        w.field("format", e.get(5));
        w.field_date("date", e.get(16));
    }
    if let Some(t) = trn {
        let e = t.elements();
        w.object_field("trace");
        w.field("type", e.get(1));
        w.field("number", e.get(2));
        w.field("originator", e.get(3));
        w.field("originator_supplemental", e.get(4));
        w.end_object();
    }
    if let Some(c) = cur {
        w.field("currency", c.element(2));
    }
    w.end_object();
    references(w, &refs);
    dates(w, &dtms);
    for (key, party) in [("payer", &payer), ("payee", &payee)] {
        if let Some(p) = party {
            w.object_field(key);
            p.write_fields(w);
            w.end_object();
        }
    }
}

/// True when `charge − adjustments = paid` (both read), the rule of
/// [`crate::reconcile`] for a claim and for a service line.
fn balances(charge: &[u8], adjustments: Decimal, paid: &[u8]) -> bool {
    match (Decimal::parse(charge), Decimal::parse(paid)) {
        (Some(c), Some(p)) => c.checked_sub(adjustments) == Some(p),
        _ => false,
    }
}

/// Adds a CAS total to a running sum (an overflow leaves the sum, as in
/// [`crate::reconcile::claim_balance`]).
fn add_to(sum: &mut Decimal, total: Decimal) {
    *sum = sum.checked_add(total).unwrap_or(*sum);
}

/// Writes one claim (its CLP first); true when it and each of its lines
/// balance.
fn write_claim(w: &mut JsonWriter, claim: &[Segment<'_>], lx: &[u8]) -> bool {
    let Some(clp) = claim.first() else {
        return true;
    };
    let e = clp.elements();
    w.begin_object();
    w.field_number("segment", clp.pos.segment);
    w.field("header_number", lx);
    w.field("patient_control_number", e.get(1));
    w.field("status", e.get(2));
    w.field_text("status_text", codes::clp02_text(e.get(2)));
    w.field_bool("reversal", e.get(2) == b"22");
    w.field_bool("denied", e.get(2) == b"4");
    w.field("charge", e.get(3));
    w.field("paid", e.get(4));
    w.field("patient_responsibility", e.get(5));
    w.field("filing_indicator", e.get(6));
    w.field("payer_claim_control_number", e.get(7));
    w.field("facility_type", e.get(8));
    w.field("frequency", e.get(9));
    w.field("drg", e.get(11));
    let first_line = claim
        .iter()
        .position(|s| s.has_id(b"SVC"))
        .unwrap_or(claim.len());
    let own = &claim[1..first_line.max(1)];
    for nm1 in with_id(own, b"NM1") {
        let n = nm1.elements();
        let key = match n.get(1) {
            b"QC" => "patient",
            b"IL" => "insured",
            b"74" => "corrected_insured",
            b"82" => "rendering_provider",
            b"TT" => "crossover_carrier",
            b"PR" => "corrected_payer",
            b"GB" => "other_subscriber",
            _ => continue,
        };
        w.object_field(key);
        super::common::nm1_fields(w, &n);
        w.end_object();
    }
    // ΣCAS of the claim: its own adjustments and its lines'.
    let mut adjusted = Decimal::ZERO;
    adjustments_with_totals(w, with_id(own, b"CAS"), |t| add_to(&mut adjusted, t));
    dates(w, with_id(own, b"DTM"));
    references(w, with_id(own, b"REF"));
    amounts(w, with_id(own, b"AMT"));
    w.array_field("service_lines");
    let mut unbalanced_lines = 0;
    let mut start = first_line;
    while start < claim.len() {
        let end = claim[start + 1..]
            .iter()
            .position(|s| s.has_id(b"SVC"))
            .map_or(claim.len(), |p| start + 1 + p);
        if !write_line(w, &claim[start..end], &mut adjusted) {
            unbalanced_lines += 1;
        }
        start = end;
    }
    w.end_array();
    let claim_balanced = balances(e.get(3), adjusted, e.get(4));
    let ok = claim_balanced && unbalanced_lines == 0;
    w.object_field("balance");
    w.field_decimal("adjustments", adjusted);
    w.field_bool("claim_balanced", claim_balanced);
    w.field_number("unbalanced_lines", unbalanced_lines);
    w.end_object();
    w.field_bool("balanced", ok);
    w.end_object();
    ok
}

/// Writes one service line (its SVC first), adding its CAS totals to the
/// claim's `adjusted`; true when SVC02 − ΣCAS = SVC03.
fn write_line(w: &mut JsonWriter, line: &[Segment<'_>], adjusted: &mut Decimal) -> bool {
    let Some(svc) = line.first() else {
        return true;
    };
    let e = svc.elements();
    let rest = &line[1..];
    w.begin_object();
    w.field_number("segment", svc.pos.segment);
    procedure(w, "procedure", &e, 1);
    w.field("charge", e.get(2));
    w.field("paid", e.get(3));
    w.field("revenue_code", e.get(4));
    w.field("units", e.get(5));
    if !e.get(6).is_empty() {
        procedure(w, "original_procedure", &e, 6);
    }
    w.field("original_units", e.get(7));
    dates(w, with_id(rest, b"DTM"));
    let mut line_adjusted = Decimal::ZERO;
    adjustments_with_totals(w, with_id(rest, b"CAS"), |t| {
        add_to(&mut line_adjusted, t);
        add_to(adjusted, t);
    });
    let refs = with_id(rest, b"REF");
    if let Some(r) = refs.clone().find(|r| r.element(1) == b"6R") {
        w.field("control_number", r.element(2));
    }
    references(w, refs);
    amounts(w, with_id(rest, b"AMT"));
    let mut remarks = with_id(rest, b"LQ").peekable();
    if remarks.peek().is_some() {
        w.array_field("remarks");
        for r in remarks {
            w.begin_object();
            w.field("qualifier", r.element(1));
            w.field("code", r.element(2));
            w.end_object();
        }
        w.end_array();
    }
    let balanced = balances(e.get(2), line_adjusted, e.get(3));
    w.field_bool("balanced", balanced);
    w.end_object();
    balanced
}

fn write_plb(w: &mut JsonWriter, plb: &Segment<'_>) {
    let e = plb.elements();
    w.begin_object();
    w.field_number("segment", plb.pos.segment);
    w.field("provider", e.get(1));
    w.field_date("fiscal_period_end", e.get(2));
    w.array_field("adjustments");
    for k in 0..6 {
        let (reason, amount) = (3 + 2 * k, 4 + 2 * k);
        if e.get(reason).is_empty() && e.get(amount).is_empty() {
            continue;
        }
        w.begin_object();
        w.field("reason", e.component(reason, 1));
        w.field("reference", e.component(reason, 2));
        w.field("amount", e.get(amount));
        w.end_object();
    }
    w.end_array();
    w.end_object();
}

#[cfg(test)]
mod tests {
    use crate::envelope::{check, CheckOptions};
    use crate::json::to_json;

    #[test]
    fn the_last_claim_ends_at_se() {
        let s = "ISA*00*          *00*          *ZZ*PAYER          *ZZ*PROVIDER       *240102*1230*^*00501*000000001*0*T*:~\
                 GS*HP*A*B*20240102*1230*1*X*005010X221A1~ST*835*0001~BPR*I*150*C*ACH~\
                 LX*1~CLP*A1*1*200*150**12~CAS*CO*45*50~SVC*HC:99213*200*150~CAS*CO*45*50~\
                 SE*8*0001~GE*1*1~IEA*1*000000001~";
        let doc = check(s.as_bytes(), &CheckOptions::default(), &());
        assert!(doc.is_clean());
        let json = String::from_utf8(to_json(&doc)).unwrap();
        assert!(json.contains("\"patient_control_number\":\"A1\""), "{json}");
        assert!(json.contains("\"claim_count\":1"), "{json}");
    }
}
