//! The TA1 interchange acknowledgment: `ISA`, `TA1`, `IEA*0`.
//!
//! TA101-103 echo the received ISA13, ISA09 and ISA10; TA104 is `A` (no
//! interchange-level error) or `R`; TA105 is the note code of the first
//! interchange-level error (000 when none). The crate never writes `E`
//! ("accepted, errors noted"): the gateway forwards no interchange with an
//! envelope error, so telling the sender it was accepted would be false.
//! A received ISA13/09/10 that is not 9/6/4 digits cannot be echoed
//! validly; the TA1 then carries zeros / the acknowledgment's own date and
//! time there, and TA105 says which ISA element was wrong.

use super::writer::{write_iea, write_isa, SegmentWriter};
use super::AckHeader;
use crate::document::Interchange;
use crate::error::Code;

/// TA104.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ta1Code {
    /// Accepted, no errors.
    Accepted,
    /// Rejected because of errors.
    Rejected,
}

impl Ta1Code {
    /// The TA104 value.
    pub fn as_str(self) -> &'static str {
        match self {
            Ta1Code::Accepted => "A",
            Ta1Code::Rejected => "R",
        }
    }
}

/// The TA104 and TA105 an interchange gets.
pub fn verdict(ic: &Interchange<'_>) -> (Ta1Code, &'static str) {
    match ic.errors.iter().map(|e| e.code()).find_map(|c| match c {
        Code::Ta105(n) => Some(n),
        _ => None,
    }) {
        Some(note) => (Ta1Code::Rejected, note),
        None => (Ta1Code::Accepted, "000"),
    }
}

/// True when the interchange has interchange-level errors, or its ISA14
/// asks for a TA1.
pub fn needs_ta1(ic: &Interchange<'_>) -> bool {
    !ic.errors.is_empty() || ic.isa.element(14) == b"1"
}

/// The TA1 interchange for `ic`.
pub fn ta1(ic: &Interchange<'_>, h: &AckHeader) -> Vec<u8> {
    let (code, note) = verdict(ic);
    let digits = |v: &[u8], n: usize| v.len() == n && v.iter().all(u8::is_ascii_digit);
    let isa13 = ic.isa.element(13);
    let isa13 = if digits(isa13, 9) {
        isa13.to_vec()
    } else {
        b"000000000".to_vec()
    };
    let date = if digits(ic.isa.element(9), 6) {
        ic.isa.element(9).to_vec()
    } else {
        h.stamp.date6().into_bytes()
    };
    let time = if digits(ic.isa.element(10), 4) {
        ic.isa.element(10).to_vec()
    } else {
        h.stamp.time4().into_bytes()
    };
    let mut w = SegmentWriter::new();
    write_isa(&mut w, &ic.isa, h);
    w.segment(
        "TA1",
        &[
            &isa13,
            &date,
            &time,
            code.as_str().as_bytes(),
            note.as_bytes(),
        ],
    );
    write_iea(&mut w, 0, h);
    w.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::Stamp;
    use crate::envelope::{check, CheckOptions};

    const ISA: &str = "ISA*00*          *00*          *ZZ*SUBMITTER      *ZZ*RECEIVER       *240102*1230*^*00501*000000905*1*T*:~";

    fn header() -> AckHeader {
        AckHeader {
            interchange_control_number: 42,
            group_control_number: 7,
            stamp: Stamp::new(2024, 3, 4, 5, 6).unwrap(),
            usage: None,
        }
    }

    #[test]
    fn rejected_with_first_note_code() {
        let s = format!("{ISA}IEA*1*000000906~");
        let d = check(s.as_bytes(), &CheckOptions::default(), &());
        let ic = &d.interchanges[0];
        assert!(needs_ta1(ic));
        let out = String::from_utf8(ta1(ic, &header())).unwrap();
        assert_eq!(
            out,
            "ISA*00*          *00*          *ZZ*RECEIVER       *ZZ*SUBMITTER      *240304*0506*^*00501*000000042*0*T*:~\n\
             TA1*000000905*240102*1230*R*001~\n\
             IEA*0*000000042~\n"
        );
    }

    #[test]
    fn accepted_when_requested() {
        let s = format!("{ISA}IEA*0*000000905~");
        let d = check(s.as_bytes(), &CheckOptions::default(), &());
        let ic = &d.interchanges[0];
        assert_eq!(verdict(ic), (Ta1Code::Accepted, "000"));
        assert!(needs_ta1(ic));
        let out = String::from_utf8(ta1(ic, &header())).unwrap();
        assert!(out.contains("TA1*000000905*240102*1230*A*000~"), "{out}");
    }
}
