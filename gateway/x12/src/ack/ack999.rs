//! The 999 implementation acknowledgment (005010X231A1): one interchange,
//! one `GS*FA` group, and one 999 transaction set per received functional
//! group:
//!
//! ```text
//! ST*999*0001*005010X231A1
//!   AK1  GS01, GS06, GS08 of the received group
//!   AK2  ST01, ST02, ST03 of each received set
//!     IK3  segment id, position in the set (ST = 1), IK304 code
//!       IK4  element position, reference number, IK403 code, bad value
//!     IK5  A | R, IK502..IK506 codes
//!   AK9  A | P | R, sets declared (GE01), received, accepted, AK905.. codes
//! SE
//! ```
//!
//! Each IK5 reports the set's own errors; AK901 is `R` when the group has
//! group-level errors or every set was rejected, `P` when some were, else
//! `A`. Groups that are themselves acknowledgments (GS01 `FA`) are not
//! acknowledged. A segment error whose id cannot be copied into IK301
//! (empty, or not letters/digits) is reported by IK502 `5` alone.

use super::writer::{clean, write_iea, write_isa, SegmentWriter};
use super::AckHeader;
use crate::document::{Group, Interchange, TransactionSet};
use crate::error::{Code, EnvelopeError, ErrorKind};

const GUIDE: &[u8] = b"005010X231A1";

/// The 999 interchange for `ic`, `None` when it has no group to
/// acknowledge.
pub fn ack_999(ic: &Interchange<'_>, h: &AckHeader) -> Option<Vec<u8>> {
    let groups: Vec<&Group<'_>> = ic
        .groups
        .iter()
        .filter(|g| g.gs.element(1) != b"FA")
        .collect();
    let first = groups.first()?;
    let mut w = SegmentWriter::new();
    write_isa(&mut w, &ic.isa, h);
    let gs06 = (h.group_control_number % 1_000_000_000).max(1).to_string();
    let gs = first.gs.elements();
    w.segment(
        "GS",
        &[
            b"FA",
            &non_blank(&clean(gs.get(3), 15)),
            &non_blank(&clean(gs.get(2), 15)),
            h.stamp.date8().as_bytes(),
            h.stamp.time4().as_bytes(),
            gs06.as_bytes(),
            b"X",
            GUIDE,
        ],
    );
    for (n, g) in groups.iter().enumerate() {
        write_set(&mut w, g, n + 1);
    }
    w.segment(
        "GE",
        &[groups.len().to_string().as_bytes(), gs06.as_bytes()],
    );
    write_iea(&mut w, 1, h);
    Some(w.out)
}

fn non_blank(v: &[u8]) -> Vec<u8> {
    let t = crate::isa::trim(v);
    if t.is_empty() {
        b"UNKNOWN".to_vec()
    } else {
        t.to_vec()
    }
}

fn write_set(w: &mut SegmentWriter, g: &Group<'_>, number: usize) {
    let st02 = format!("{number:04}");
    w.reset_count();
    w.segment("ST", &[b"999", st02.as_bytes(), GUIDE]);
    let gs = g.gs.elements();
    w.segment(
        "AK1",
        &[
            &clean(gs.get(1), 2),
            &clean(gs.get(6), 9),
            &clean(gs.get(8), 12),
        ],
    );
    let mut accepted = 0;
    for s in &g.sets {
        if write_set_response(w, s) {
            accepted += 1;
        }
    }
    let group_codes = distinct_codes(&g.errors, |c| match c {
        Code::Ak905(v) => Some(v),
        _ => None,
    });
    let ak901: &[u8] = if !group_codes.is_empty() || (accepted == 0 && !g.sets.is_empty()) {
        b"R"
    } else if accepted < g.sets.len() {
        b"P"
    } else {
        b"A"
    };
    let declared =
        g.ge.map(|ge| ge.element(1))
            .filter(|v| (1..=6).contains(&v.len()) && v.iter().all(u8::is_ascii_digit))
            .map_or_else(|| g.sets.len().to_string().into_bytes(), <[u8]>::to_vec);
    let received = g.sets.len().to_string();
    let accepted = accepted.to_string();
    let mut ak9: Vec<&[u8]> = vec![ak901, &declared, received.as_bytes(), accepted.as_bytes()];
    ak9.extend(group_codes.iter().map(|c| c.as_bytes()));
    w.segment("AK9", &ak9);
    let count = (w.count + 1).to_string();
    w.segment("SE", &[count.as_bytes(), st02.as_bytes()]);
}

/// Writes AK2..IK5 for one set; true when it is accepted.
fn write_set_response(w: &mut SegmentWriter, s: &TransactionSet<'_>) -> bool {
    let st = s.st.elements();
    w.segment(
        "AK2",
        &[
            &clean(st.get(1), 3),
            &clean(st.get(2), 9),
            &clean(st.get(3), 35),
        ],
    );
    let mut segment_errors = false;
    for e in &s.errors {
        segment_errors |= write_ik3(w, e);
    }
    let mut codes = distinct_codes(&s.errors, |c| match c {
        Code::Ik502(v) => Some(v),
        _ => None,
    });
    if (segment_errors || s.errors.iter().any(|e| matches!(e.code(), Code::Ik304(_))))
        && !codes.contains(&"5")
    {
        codes.push("5");
    }
    codes.truncate(5);
    let accepted = codes.is_empty();
    let mut ik5: Vec<&[u8]> = vec![if accepted { b"A" } else { b"R" }];
    ik5.extend(codes.iter().map(|c| c.as_bytes()));
    w.segment("IK5", &ik5);
    accepted
}

/// Writes the IK3 (and IK4) for an error that points into a segment; true
/// when it wrote one.
fn write_ik3(w: &mut SegmentWriter, e: &EnvelopeError) -> bool {
    let position = e.set_position.unwrap_or(1).to_string();
    match &e.kind {
        ErrorKind::BadSegmentId { id } => {
            let id = id.as_bytes();
            let id = &id[..id.len().min(3)];
            if id.len() < 2 || !id.iter().all(u8::is_ascii_alphanumeric) {
                return false;
            }
            w.segment("IK3", &[id, position.as_bytes(), b"", b"1"]);
            true
        }
        ErrorKind::GuideMismatch { st03, .. } => {
            w.segment("IK3", &[b"ST", position.as_bytes(), b"", b"8"]);
            w.segment("IK4", &[b"3", b"1705", b"7", &clean(st03.as_bytes(), 35)]);
            true
        }
        _ => false,
    }
}

fn distinct_codes(
    errors: &[EnvelopeError],
    pick: impl Fn(Code) -> Option<&'static str>,
) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for c in errors.iter().filter_map(|e| pick(e.code())) {
        if !out.contains(&c) && out.len() < 5 {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::Stamp;
    use crate::envelope::{check, CheckOptions};

    const ISA: &str = "ISA*00*          *00*          *ZZ*SUBMITTER      *ZZ*RECEIVER       *240102*1230*^*00501*000000905*0*T*:~";

    #[test]
    fn accepted_and_rejected_sets() {
        let s = format!(
            "{ISA}GS*HC*SENDER*RECEIVER*20240102*1230*17*X*005010X222A1~\
             ST*837*0001*005010X222A1~BHT*0019~SE*3*0001~\
             ST*837*0002*005010X222A1~BHT*0019~nm1*X~SE*3*0002~\
             GE*2*17~IEA*1*000000905~"
        );
        let d = check(s.as_bytes(), &CheckOptions::default(), &());
        let h = AckHeader {
            interchange_control_number: 1,
            group_control_number: 2,
            stamp: Stamp::new(2024, 3, 4, 5, 6).unwrap(),
            usage: None,
        };
        let out = String::from_utf8(ack_999(&d.interchanges[0], &h).unwrap()).unwrap();
        let body: Vec<&str> = out.lines().skip(1).collect();
        assert_eq!(
            body,
            vec![
                "GS*FA*RECEIVER*SENDER*20240304*0506*2*X*005010X231A1~",
                "ST*999*0001*005010X231A1~",
                "AK1*HC*17*005010X222A1~",
                "AK2*837*0001*005010X222A1~",
                "IK5*A~",
                "AK2*837*0002*005010X222A1~",
                "IK3*nm1*3**1~",
                "IK5*R*4*5~",
                "AK9*P*2*2*1~",
                "SE*9*0001~",
                "GE*1*2~",
                "IEA*1*000000001~",
            ]
        );
    }
}
