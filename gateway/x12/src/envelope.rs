//! The envelope check: control numbers, counts, separators, ISA values,
//! the GS08/ST01/ST03 consistency with the known guides, the usage
//! indicator against the connection's mode, and duplicate interchanges
//! (within the file and against the caller's record of earlier files).
//!
//! [`check`] splits ([`crate::document::split`]) and then adds these errors
//! to the levels they belong to. Pure: the "seen" record is the caller's.

use std::collections::HashSet;

use crate::document::{split, Document, Group, Interchange, TransactionSet};
use crate::error::{shown, EnvelopeError, ErrorKind};
use crate::guide;
use crate::isa::{trim, Isa};
use crate::reader::Separators;

/// The ISA15 a connection expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    /// `T`: test data.
    Test,
    /// `P`: production data.
    Production,
}

impl Usage {
    /// The ISA15 byte.
    pub fn byte(self) -> u8 {
        match self {
            Usage::Test => b'T',
            Usage::Production => b'P',
        }
    }
}

/// What the caller knows about the connection.
#[derive(Clone, Copy, Debug, Default)]
pub struct CheckOptions {
    /// ISA15 must be this (`None`: either `T` or `P` is accepted).
    pub expected_usage: Option<Usage>,
}

/// The identity of an interchange for duplicate detection: sender and
/// receiver (qualifier and id, padding trimmed) and ISA13.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InterchangeKey<'a> {
    /// ISA05.
    pub sender_qualifier: &'a [u8],
    /// ISA06, trimmed.
    pub sender: &'a [u8],
    /// ISA07.
    pub receiver_qualifier: &'a [u8],
    /// ISA08, trimmed.
    pub receiver: &'a [u8],
    /// ISA13.
    pub control_number: &'a [u8],
}

impl InterchangeKey<'_> {
    /// The key of an ISA.
    pub fn of<'a>(isa: &Isa<'a>) -> InterchangeKey<'a> {
        InterchangeKey {
            sender_qualifier: isa.trimmed(5),
            sender: isa.trimmed(6),
            receiver_qualifier: isa.trimmed(7),
            receiver: isa.trimmed(8),
            control_number: isa.trimmed(13),
        }
    }

    /// An owned copy, for a journal to remember.
    pub fn to_owned_key(&self) -> OwnedInterchangeKey {
        OwnedInterchangeKey {
            sender_qualifier: self.sender_qualifier.to_vec(),
            sender: self.sender.to_vec(),
            receiver_qualifier: self.receiver_qualifier.to_vec(),
            receiver: self.receiver.to_vec(),
            control_number: self.control_number.to_vec(),
        }
    }
}

/// An owned [`InterchangeKey`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnedInterchangeKey {
    /// ISA05.
    pub sender_qualifier: Vec<u8>,
    /// ISA06, trimmed.
    pub sender: Vec<u8>,
    /// ISA07.
    pub receiver_qualifier: Vec<u8>,
    /// ISA08, trimmed.
    pub receiver: Vec<u8>,
    /// ISA13.
    pub control_number: Vec<u8>,
}

/// The caller's record of interchanges already received (the journal's).
pub trait SeenInterchanges {
    /// True when this sender already sent this control number to this
    /// receiver.
    fn contains(&self, key: &InterchangeKey<'_>) -> bool;
}

/// Nothing seen before.
impl SeenInterchanges for () {
    fn contains(&self, _: &InterchangeKey<'_>) -> bool {
        false
    }
}

impl SeenInterchanges for HashSet<OwnedInterchangeKey> {
    fn contains(&self, key: &InterchangeKey<'_>) -> bool {
        HashSet::contains(self, &key.to_owned_key())
    }
}

/// Splits `input` and checks every envelope. The result holds every
/// error at its level; [`Document::is_clean`] says whether the file may be
/// sent on.
pub fn check<'a>(
    input: &'a [u8],
    options: &CheckOptions,
    seen: &dyn SeenInterchanges,
) -> Document<'a> {
    let mut doc = split(input);
    let mut keys: Vec<(InterchangeKey<'a>, crate::reader::Position)> = Vec::new();
    for ic in &mut doc.interchanges {
        check_interchange(ic, options);
        let key = InterchangeKey::of(&ic.isa);
        let earlier = keys.iter().find(|(k, _)| *k == key).map(|(_, p)| *p);
        if earlier.is_some() || seen.contains(&key) {
            ic.errors.push(EnvelopeError::new(
                ErrorKind::DuplicateInterchange {
                    control_number: shown(key.control_number),
                    earlier,
                },
                ic.isa.pos,
            ));
        }
        keys.push((key, ic.isa.pos));
    }
    doc
}

/// An ISA05-08 value: not blank, printable ASCII (X12's basic and extended
/// character sets), and none of the interchange's own separators (which
/// would make it mean something else). A control character or a stray
/// separator here is a damaged header, and an acknowledgment copying it
/// back would not be sound X12 either.
fn is_party(v: &[u8], seps: Separators) -> bool {
    !trim(v).is_empty()
        && v.iter()
            .all(|&b| (b.is_ascii_graphic() || b == b' ') && !seps.is_delimiter(b))
}

fn is_digits(v: &[u8], min: usize, max: usize) -> bool {
    (min..=max).contains(&v.len()) && v.iter().all(u8::is_ascii_digit)
}

fn check_separators(seps: Separators, five_010: bool) -> Option<ErrorKind> {
    let bad = |b: u8| b.is_ascii_alphanumeric() || b == b' ';
    if bad(seps.element) {
        return Some(ErrorKind::BadSeparator {
            which: "element",
            byte: seps.element,
        });
    }
    if bad(seps.component) || seps.component == seps.element {
        return Some(ErrorKind::BadSeparator {
            which: "component",
            byte: seps.component,
        });
    }
    if bad(seps.segment) || seps.segment == seps.element || seps.segment == seps.component {
        return Some(ErrorKind::BadSeparator {
            which: "segment terminator",
            byte: seps.segment,
        });
    }
    if five_010 {
        match seps.repetition {
            Some(r) if bad(r) || r == seps.element || r == seps.component || r == seps.segment => {
                return Some(ErrorKind::BadSeparator {
                    which: "repetition",
                    byte: r,
                })
            }
            _ => {}
        }
    }
    None
}

fn check_interchange(ic: &mut Interchange<'_>, options: &CheckOptions) {
    let isa = ic.isa;
    let mut errors = Vec::new();
    let at = isa.pos;
    if let Some((element, width)) = isa.width_error {
        errors.push(EnvelopeError::new(
            ErrorKind::IsaLength {
                element,
                width,
                length: isa.len(),
            },
            at,
        ));
    }
    let has_rep = isa.has_repetition_separator();
    if let Some(kind) = check_separators(isa.seps, has_rep) {
        errors.push(EnvelopeError::new(kind, at));
    }
    let value = |element: usize, ok: bool, expected: &'static str| {
        (!ok).then(|| EnvelopeError::new(ErrorKind::IsaValue { element, expected }, at))
    };
    // The parties are what an acknowledgment is addressed back to.
    let party = |n: usize| is_party(isa.element(n), isa.seps);
    let checks = [
        value(
            5,
            party(5),
            "a sender id qualifier (e.g. ZZ, 30; printable, no separator)",
        ),
        value(
            6,
            party(6),
            "the sender id (not blank; printable, no separator)",
        ),
        value(
            7,
            party(7),
            "a receiver id qualifier (e.g. ZZ, 30; printable, no separator)",
        ),
        value(
            8,
            party(8),
            "the receiver id (not blank; printable, no separator)",
        ),
        value(9, is_digits(isa.element(9), 6, 6), "a date YYMMDD"),
        value(10, is_digits(isa.element(10), 4, 4), "a time HHMM"),
        value(
            12,
            matches!(isa.element(12), b"00501" | b"00401"),
            "00501 (or 00401)",
        ),
        value(13, is_digits(isa.element(13), 9, 9), "9 digits"),
        value(14, matches!(isa.element(14), b"0" | b"1"), "0 or 1"),
        value(
            15,
            matches!(isa.element(15), b"T" | b"P"),
            "T (test) or P (production)",
        ),
    ];
    // A width error already names its element; do not repeat it.
    let width_element = isa.width_error.map(|(e, _)| e);
    errors.extend(checks.into_iter().flatten().filter(|e| match e.kind {
        ErrorKind::IsaValue { element, .. } => Some(element) != width_element,
        _ => true,
    }));
    if let (Some(expected), [found]) = (options.expected_usage, isa.element(15)) {
        if matches!(*found, b'T' | b'P') && *found != expected.byte() {
            errors.push(EnvelopeError::new(
                ErrorKind::UsageMismatch {
                    found: *found,
                    expected: expected.byte(),
                },
                at,
            ));
        }
    }
    if let Some(iea) = ic.iea {
        let e = iea.elements();
        if e.get(2) != isa.element(13) {
            errors.push(EnvelopeError::new(
                ErrorKind::IeaControlMismatch {
                    isa13: shown(isa.element(13)),
                    iea02: shown(e.get(2)),
                },
                iea.pos,
            ));
        }
        if parse_count(e.get(1)) != Some(ic.groups.len()) {
            errors.push(EnvelopeError::new(
                ErrorKind::GroupCount {
                    declared: shown(e.get(1)),
                    actual: ic.groups.len(),
                },
                iea.pos,
            ));
        }
    }
    // Structural errors found while splitting come after the ISA's own.
    errors.append(&mut ic.errors);
    ic.errors = errors;

    let mut group_numbers: Vec<&[u8]> = Vec::new();
    for g in &mut ic.groups {
        check_group(g);
        let gs06 = g.gs.element(6);
        if group_numbers.contains(&gs06) {
            g.errors.push(EnvelopeError::new(
                ErrorKind::DuplicateGroup { gs06: shown(gs06) },
                g.gs.pos,
            ));
        }
        group_numbers.push(gs06);
    }
}

/// A count element: digits only (leading zeros allowed), at most 10.
fn parse_count(v: &[u8]) -> Option<usize> {
    if !is_digits(v, 1, 10) {
        return None;
    }
    v.iter().try_fold(0usize, |n, d| {
        n.checked_mul(10)?.checked_add(usize::from(d - b'0'))
    })
}

fn check_group(g: &mut Group<'_>) {
    let gs = g.gs.elements();
    let (gs01, gs06, gs08) = (gs.get(1), gs.get(6), gs.get(8));
    let mut errors = Vec::new();
    let at = g.gs.pos;
    if !is_digits(gs06, 1, 9) {
        errors.push(EnvelopeError::new(
            ErrorKind::GroupControlInvalid { gs06: shown(gs06) },
            at,
        ));
    }
    let known = guide::is_known(gs08);
    if !known {
        errors.push(EnvelopeError::new(
            ErrorKind::UnknownVersion { gs08: shown(gs08) },
            at,
        ));
    } else if !guide::functional_id_fits(gs08, gs01) {
        errors.push(EnvelopeError::new(
            ErrorKind::FunctionalIdMismatch {
                gs01: shown(gs01),
                gs08: shown(gs08),
            },
            at,
        ));
    }
    if let Some(ge) = g.ge {
        let e = ge.elements();
        if e.get(2) != gs06 {
            errors.push(EnvelopeError::new(
                ErrorKind::GeControlMismatch {
                    gs06: shown(gs06),
                    ge02: shown(e.get(2)),
                },
                ge.pos,
            ));
        }
        if parse_count(e.get(1)) != Some(g.sets.len()) {
            errors.push(EnvelopeError::new(
                ErrorKind::SetCount {
                    declared: shown(e.get(1)),
                    actual: g.sets.len(),
                },
                ge.pos,
            ));
        }
    }
    errors.append(&mut g.errors);
    g.errors = errors;

    let mut set_numbers: Vec<&[u8]> = Vec::new();
    for s in &mut g.sets {
        check_set(s, gs01, gs08, known);
        let st02 = s.st.element(2);
        if set_numbers.contains(&st02) {
            let mut e = EnvelopeError::new(ErrorKind::DuplicateSet { st02: shown(st02) }, s.st.pos);
            e.set_position = Some(1);
            s.errors.insert(0, e);
        }
        set_numbers.push(st02);
    }
}

fn check_set(s: &mut TransactionSet<'_>, gs01: &[u8], gs08: &[u8], known: bool) {
    let st = s.st.elements();
    let (st01, st02, st03) = (st.get(1), st.get(2), st.get(3));
    let mut errors = Vec::new();
    let at = s.st.pos;
    let mut push = |kind, pos, set_position| {
        let mut e = EnvelopeError::new(kind, pos);
        e.set_position = Some(set_position);
        errors.push(e);
    };
    if !guide::is_known_transaction(st01) {
        push(ErrorKind::UnsupportedSet { st01: shown(st01) }, at, 1);
    } else if known {
        s.kind = guide::kind_of(gs08, st01);
        let fits = s.kind.is_some_and(|k| k.functional_id().as_bytes() == gs01);
        if !fits {
            push(
                ErrorKind::SetIdMismatch {
                    st01: shown(st01),
                    gs08: shown(gs08),
                },
                at,
                1,
            );
        }
    }
    if !(4..=9).contains(&trim(st02).len()) {
        push(ErrorKind::SetControlInvalid { st02: shown(st02) }, at, 1);
    }
    // ST03 is optional: the 835 guide (005010X221A1) marks it "not used"
    // and 837P makes it situational; when present it must equal GS08.
    if !st03.is_empty() && st03 != gs08 {
        push(
            ErrorKind::GuideMismatch {
                st03: shown(st03),
                gs08: shown(gs08),
            },
            at,
            1,
        );
    }
    if let Some(se) = s.se {
        let e = se.elements();
        if e.get(2) != st02 {
            push(
                ErrorKind::SeControlMismatch {
                    st02: shown(st02),
                    se02: shown(e.get(2)),
                },
                se.pos,
                s.segment_count,
            );
        }
        if parse_count(e.get(1)) != Some(s.segment_count) {
            push(
                ErrorKind::SegmentCount {
                    declared: shown(e.get(1)),
                    actual: s.segment_count,
                },
                se.pos,
                s.segment_count,
            );
        }
    }
    errors.append(&mut s.errors);
    s.errors = errors;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;

    const ISA: &str = "ISA*00*          *00*          *ZZ*SUBMITTER      *ZZ*RECEIVER       *240102*1230*^*00501*000000001*0*T*:~";

    fn codes(doc: &Document<'_>) -> Vec<Code> {
        doc.errors().map(|e| e.code()).collect()
    }

    #[test]
    fn clean_835() {
        let s = format!("{ISA}GS*HP*A*B*20240102*1230*1*X*005010X221A1~ST*835*0001*005010X221A1~BPR*I~SE*3*0001~GE*1*1~IEA*1*000000001~");
        let d = check(s.as_bytes(), &CheckOptions::default(), &());
        assert!(d.is_clean(), "{:?}", codes(&d));
        assert_eq!(
            d.interchanges[0].groups[0].sets[0].kind,
            Some(guide::Kind::Remittance835)
        );
    }

    #[test]
    fn parties_with_control_bytes_or_separators_are_named() {
        // fuzz/findings/x12/ta1-to-receiver-of-separators-and-controls: a
        // receiver of the component separator, NULs and a non-ASCII byte
        // passed as "not blank", and the TA1 addressed back to it had a
        // blank sender.
        let body = "GS*HP*A*B*20240102*1230*1*X*005010X221A1~ST*835*0001*005010X221A1~BPR*I~SE*3*0001~GE*1*1~IEA*1*000000001~";
        for (receiver, element) in [
            (&b":\0\0\0\0\0\0\x8c       "[..], 8),
            (&b"RECEIVER^      "[..], 8),
            (&b"RECEIVER\t      "[..], 8),
        ] {
            let mut s = ISA.as_bytes().to_vec();
            s[54..69].copy_from_slice(receiver);
            s.extend_from_slice(body.as_bytes());
            let d = check(&s, &CheckOptions::default(), &());
            let kinds: Vec<_> = d.errors().map(|e| e.kind.clone()).collect();
            assert!(
                kinds
                    .iter()
                    .any(|k| matches!(k, ErrorKind::IsaValue { element: e, .. } if *e == element)),
                "{receiver:?}: {kinds:?}"
            );
        }
        // Punctuation other than the separators is an ordinary id.
        let mut s = ISA.as_bytes().to_vec();
        s[54..69].copy_from_slice(b"RECV-01.A/B    ");
        s.extend_from_slice(body.as_bytes());
        let d = check(&s, &CheckOptions::default(), &());
        assert!(d.is_clean(), "{:?}", codes(&d));
    }

    #[test]
    fn counts_and_control_numbers() {
        let s = format!("{ISA}GS*HP*A*B*20240102*1230*1*X*005010X221A1~ST*835*0001*005010X221A1~BPR*I~SE*4*0002~GE*2*7~IEA*2*000000009~");
        let d = check(s.as_bytes(), &CheckOptions::default(), &());
        assert_eq!(
            codes(&d),
            vec![
                Code::Ta105("001"),
                Code::Ta105("021"),
                Code::Ak905("4"),
                Code::Ak905("5"),
                Code::Ik502("3"),
                Code::Ik502("4"),
            ]
        );
    }

    #[test]
    fn guides_usage_and_duplicates() {
        let s = format!("{ISA}GS*HC*A*B*20240102*1230*1*X*005010X221A1~ST*837*0001*005010X222A1~SE*2*0001~GE*1*1~IEA*1*000000001~{ISA}IEA*0*000000001~");
        let opts = CheckOptions {
            expected_usage: Some(Usage::Production),
        };
        let d = check(s.as_bytes(), &opts, &());
        assert_eq!(
            codes(&d),
            vec![
                Code::Ta105("020"),
                Code::Ak905("1"),
                Code::Ik502("6"),
                Code::Ik502("19"),
                Code::Ta105("020"),
                Code::Ta105("025"),
            ]
        );
        let mut seen = HashSet::new();
        seen.insert(InterchangeKey::of(&d.interchanges[0].isa).to_owned_key());
        let single = format!("{ISA}IEA*0*000000001~");
        let d = check(single.as_bytes(), &CheckOptions::default(), &seen);
        assert_eq!(codes(&d), vec![Code::Ta105("025")]);
    }
}
