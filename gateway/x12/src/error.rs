//! Envelope errors: what is wrong, where (segment number and byte offset),
//! and the X12 code an acknowledgment reports it with.
//!
//! | level | reported in | code list |
//! | --- | --- | --- |
//! | file (nothing to acknowledge: no readable ISA) | the report only | — |
//! | interchange (ISA/IEA, structure) | TA1, TA104 `R` | TA105 (I18) |
//! | functional group (GS/GE) | 999 AK9, AK901 `R` | AK905 (716) |
//! | transaction set (ST/SE) | 999 IK5, IK501 `R` | IK502 (718) |
//! | segment inside a set | 999 IK3 (+ IK4), IK502 `5` | IK304 (620), IK403 (621) |
//!
//! Messages carry ids, control numbers, counts and positions, never the
//! content of business segments (no names, identifiers or amounts).

use crate::isa::{NOTE_CODES, WIDTHS};
use crate::reader::Position;

/// Which envelope an error belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// The file as a whole: no interchange could be read.
    File,
    /// One interchange (ISA..IEA): a TA1 error.
    Interchange,
    /// One functional group (GS..GE): a 999 AK9 error.
    Group,
    /// One transaction set (ST..SE): a 999 IK5 error.
    Set,
    /// One segment inside a set: a 999 IK3 error.
    Segment,
}

/// The X12 code that reports an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// No acknowledgment can carry it (file-level).
    None,
    /// TA105 Interchange Note Code.
    Ta105(&'static str),
    /// AK905 Functional Group Syntax Error Code.
    Ak905(&'static str),
    /// IK502 Transaction Set Syntax Error Code.
    Ik502(&'static str),
    /// IK304 Segment Syntax Error Code.
    Ik304(&'static str),
}

impl Code {
    /// The element that carries it (`"TA105"`, `"AK905"`, ...).
    pub fn element(self) -> &'static str {
        match self {
            Code::None => "",
            Code::Ta105(_) => "TA105",
            Code::Ak905(_) => "AK905",
            Code::Ik502(_) => "IK502",
            Code::Ik304(_) => "IK304",
        }
    }

    /// The code value (`"022"`, `"4"`).
    pub fn value(self) -> &'static str {
        match self {
            Code::None => "",
            Code::Ta105(c) | Code::Ak905(c) | Code::Ik502(c) | Code::Ik304(c) => c,
        }
    }

    /// The code list's text for it.
    pub fn text(self) -> &'static str {
        let t = match self {
            Code::None => None,
            Code::Ta105(c) => crate::codes::ta105_text(c.as_bytes()),
            Code::Ak905(c) => crate::codes::ak905_text(c.as_bytes()),
            Code::Ik502(c) => crate::codes::ik502_text(c.as_bytes()),
            Code::Ik304(c) => crate::codes::ik304_text(c.as_bytes()),
        };
        t.unwrap_or("")
    }
}

/// What is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    // ---- file ----
    /// The input holds no `ISA` at all.
    NoInterchange,
    /// An `ISA` whose 16 elements cannot be read: the rest of the input
    /// cannot be split and is not read.
    IsaUnreadable,
    /// Bytes outside any interchange (before the first ISA, between IEA
    /// and the next ISA, or after the last IEA).
    OutsideInterchange {
        /// How many bytes.
        bytes: usize,
    },

    // ---- interchange (TA105) ----
    /// The ISA is not 106 characters: ISA`element` is `width` wide.
    IsaLength {
        /// 1-based ISA element with the wrong width.
        element: usize,
        /// Its width as sent.
        width: usize,
        /// The ISA's length as sent (terminator included).
        length: usize,
    },
    /// A separator that is a letter, digit or space, or equal to another.
    BadSeparator {
        /// Which separator (`"element"`, `"component"`, `"repetition"`,
        /// `"segment terminator"`).
        which: &'static str,
        /// Its byte.
        byte: u8,
    },
    /// A coded ISA value outside its code list or format.
    IsaValue {
        /// 1-based ISA element.
        element: usize,
        /// What it must be.
        expected: &'static str,
    },
    /// ISA15 is not the mode this connection expects.
    UsageMismatch {
        /// ISA15 as sent.
        found: u8,
        /// The expected `T` or `P`.
        expected: u8,
    },
    /// No IEA before the end of the input (or before the next ISA).
    IeaMissing,
    /// IEA02 differs from ISA13.
    IeaControlMismatch {
        /// ISA13.
        isa13: String,
        /// IEA02.
        iea02: String,
    },
    /// IEA01 is not the number of groups.
    GroupCount {
        /// IEA01 as sent.
        declared: String,
        /// Groups counted.
        actual: usize,
    },
    /// ISA13 was already used by this sender for this receiver.
    DuplicateInterchange {
        /// ISA13.
        control_number: String,
        /// The earlier interchange in this file, or `None` when the
        /// caller's record of earlier files has it.
        earlier: Option<Position>,
    },
    /// The input ends inside a segment (no terminator).
    Unterminated,
    /// An envelope segment where it cannot be (GE without GS, SE without
    /// ST, a segment between envelopes, a TA1 inside a group).
    Misplaced {
        /// The segment id (lossy, at most 8 characters).
        id: String,
        /// Why it is misplaced.
        context: &'static str,
    },

    // ---- group (AK905) ----
    /// No GE before IEA / the next GS / the end.
    GeMissing,
    /// GE02 differs from GS06.
    GeControlMismatch {
        /// GS06.
        gs06: String,
        /// GE02.
        ge02: String,
    },
    /// GE01 is not the number of sets.
    SetCount {
        /// GE01 as sent.
        declared: String,
        /// Sets counted.
        actual: usize,
    },
    /// GS06 is not 1 to 9 digits.
    GroupControlInvalid {
        /// GS06.
        gs06: String,
    },
    /// GS06 repeats within the interchange.
    DuplicateGroup {
        /// GS06.
        gs06: String,
    },
    /// GS08 names no guide this crate knows.
    UnknownVersion {
        /// GS08.
        gs08: String,
    },
    /// GS01 does not fit GS08.
    FunctionalIdMismatch {
        /// GS01.
        gs01: String,
        /// GS08.
        gs08: String,
    },

    // ---- set (IK502) ----
    /// No SE before GE / the next ST / the end.
    SeMissing,
    /// SE02 differs from ST02.
    SeControlMismatch {
        /// ST02.
        st02: String,
        /// SE02.
        se02: String,
    },
    /// SE01 is not the number of segments from ST to SE inclusive.
    SegmentCount {
        /// SE01 as sent.
        declared: String,
        /// Segments counted.
        actual: usize,
    },
    /// ST02 is not 4 to 9 characters.
    SetControlInvalid {
        /// ST02.
        st02: String,
    },
    /// ST02 repeats within the group.
    DuplicateSet {
        /// ST02.
        st02: String,
    },
    /// ST01 is no transaction this crate knows.
    UnsupportedSet {
        /// ST01.
        st01: String,
    },
    /// ST01 does not fit GS08 (or GS01).
    SetIdMismatch {
        /// ST01.
        st01: String,
        /// GS08.
        gs08: String,
    },
    /// ST03 differs from GS08.
    GuideMismatch {
        /// ST03.
        st03: String,
        /// GS08.
        gs08: String,
    },

    // ---- segment (IK304) ----
    /// A segment id that is not 2-3 upper-case letters/digits.
    BadSegmentId {
        /// The id (lossy, at most 8 characters shown).
        id: String,
    },
    /// An empty segment (two terminators in a row).
    EmptySegment,
}

/// One envelope error with its position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeError {
    /// What is wrong.
    pub kind: ErrorKind,
    /// The segment it was found at.
    pub pos: Position,
    /// For set and segment errors: the segment's position in its set
    /// (ST is 1), as IK302 reports it.
    pub set_position: Option<usize>,
}

impl EnvelopeError {
    /// An error at `pos`.
    pub fn new(kind: ErrorKind, pos: Position) -> Self {
        EnvelopeError {
            kind,
            pos,
            set_position: None,
        }
    }

    /// Which envelope it belongs to.
    pub fn level(&self) -> Level {
        use ErrorKind::*;
        match self.kind {
            NoInterchange | IsaUnreadable | OutsideInterchange { .. } => Level::File,
            IsaLength { .. }
            | BadSeparator { .. }
            | IsaValue { .. }
            | UsageMismatch { .. }
            | IeaMissing
            | IeaControlMismatch { .. }
            | GroupCount { .. }
            | DuplicateInterchange { .. }
            | Unterminated
            | Misplaced { .. } => Level::Interchange,
            GeMissing
            | GeControlMismatch { .. }
            | SetCount { .. }
            | GroupControlInvalid { .. }
            | DuplicateGroup { .. }
            | UnknownVersion { .. }
            | FunctionalIdMismatch { .. } => Level::Group,
            SeMissing
            | SeControlMismatch { .. }
            | SegmentCount { .. }
            | SetControlInvalid { .. }
            | DuplicateSet { .. }
            | UnsupportedSet { .. }
            | SetIdMismatch { .. }
            | GuideMismatch { .. } => Level::Set,
            BadSegmentId { .. } | EmptySegment => Level::Segment,
        }
    }

    /// The X12 code that reports it.
    pub fn code(&self) -> Code {
        use ErrorKind::*;
        match &self.kind {
            NoInterchange | IsaUnreadable | OutsideInterchange { .. } => Code::None,
            IsaLength { element, .. } => Code::Ta105(isa_note_code(*element)),
            BadSeparator { which, .. } => Code::Ta105(match *which {
                "element" => "026",
                "component" => "027",
                "segment terminator" => "004",
                _ => "022",
            }),
            IsaValue { element, .. } => Code::Ta105(isa_note_code(*element)),
            UsageMismatch { .. } => Code::Ta105("020"),
            IeaMissing | Unterminated => Code::Ta105("023"),
            IeaControlMismatch { .. } => Code::Ta105("001"),
            GroupCount { .. } => Code::Ta105("021"),
            DuplicateInterchange { .. } => Code::Ta105("025"),
            Misplaced { .. } => Code::Ta105("024"),
            GeMissing => Code::Ak905("3"),
            GeControlMismatch { .. } => Code::Ak905("4"),
            SetCount { .. } => Code::Ak905("5"),
            GroupControlInvalid { .. } => Code::Ak905("6"),
            DuplicateGroup { .. } => Code::Ak905("19"),
            UnknownVersion { .. } => Code::Ak905("2"),
            FunctionalIdMismatch { .. } => Code::Ak905("1"),
            SeMissing => Code::Ik502("2"),
            SeControlMismatch { .. } => Code::Ik502("3"),
            SegmentCount { .. } => Code::Ik502("4"),
            SetControlInvalid { .. } => Code::Ik502("7"),
            DuplicateSet { .. } => Code::Ik502("23"),
            UnsupportedSet { .. } => Code::Ik502("1"),
            SetIdMismatch { .. } => Code::Ik502("6"),
            GuideMismatch { .. } => Code::Ik502("19"),
            BadSegmentId { .. } => Code::Ik304("1"),
            EmptySegment => Code::Ik304("8"),
        }
    }
}

fn isa_note_code(element: usize) -> &'static str {
    NOTE_CODES
        .get(element.wrapping_sub(1))
        .copied()
        .unwrap_or("022")
}

impl std::fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use ErrorKind::*;
        write!(f, "{}: ", self.pos)?;
        match &self.kind {
            NoInterchange => write!(f, "no ISA segment: this is not an X12 interchange"),
            IsaUnreadable => write!(
                f,
                "ISA cannot be read (fewer than 16 elements, or the file ends inside it); the rest of the file is not read"
            ),
            OutsideInterchange { bytes } => write!(
                f,
                "{bytes} bytes outside any ISA..IEA interchange; remove them (only CR/LF may follow an IEA)"
            ),
            IsaLength {
                element,
                width,
                length,
            } => write!(
                f,
                "ISA is {length} characters, not 106: ISA{element:02} is {width} wide, the standard fixes it at {}; pad fixed-width ISA elements with spaces",
                WIDTHS.get(element.wrapping_sub(1)).copied().unwrap_or(0)
            ),
            BadSeparator { which, byte } => write!(
                f,
                "the {which} separator {:?} is a letter, digit or space, or repeats another separator",
                char::from(*byte)
            ),
            IsaValue { element, expected } => write!(f, "ISA{element:02} must be {expected}"),
            UsageMismatch { found, expected } => write!(
                f,
                "ISA15 is {:?} ({}), but this connection expects {:?} ({}); send the file to the matching connection",
                char::from(*found),
                usage_name(*found),
                char::from(*expected),
                usage_name(*expected)
            ),
            IeaMissing => write!(f, "interchange has no IEA trailer (file truncated?)"),
            IeaControlMismatch { isa13, iea02 } => {
                write!(f, "IEA02 {iea02:?} does not match ISA13 {isa13:?}")
            }
            GroupCount { declared, actual } => write!(
                f,
                "IEA01 says {declared:?} functional groups, the interchange has {actual}"
            ),
            DuplicateInterchange {
                control_number,
                earlier,
            } => match earlier {
                Some(p) => write!(
                    f,
                    "ISA13 {control_number:?} repeats the interchange at {p} (same sender and receiver)"
                ),
                None => write!(
                    f,
                    "ISA13 {control_number:?} was already received from this sender for this receiver; a resend needs a new control number"
                ),
            },
            Unterminated => write!(f, "the file ends inside a segment (no segment terminator)"),
            Misplaced { id, context } => write!(f, "{id} segment {context}"),
            GeMissing => write!(f, "functional group has no GE trailer"),
            GeControlMismatch { gs06, ge02 } => {
                write!(f, "GE02 {ge02:?} does not match GS06 {gs06:?}")
            }
            SetCount { declared, actual } => write!(
                f,
                "GE01 says {declared:?} transaction sets, the group has {actual}"
            ),
            GroupControlInvalid { gs06 } => write!(f, "GS06 {gs06:?} must be 1 to 9 digits"),
            DuplicateGroup { gs06 } => {
                write!(f, "GS06 {gs06:?} repeats within the interchange")
            }
            UnknownVersion { gs08 } => write!(
                f,
                "GS08 {gs08:?} names no supported implementation guide (e.g. 005010X222A1 for 837P)"
            ),
            FunctionalIdMismatch { gs01, gs08 } => {
                write!(f, "GS01 {gs01:?} does not fit GS08 {gs08:?}")
            }
            SeMissing => write!(f, "transaction set has no SE trailer"),
            SeControlMismatch { st02, se02 } => {
                write!(f, "SE02 {se02:?} does not match ST02 {st02:?}")
            }
            SegmentCount { declared, actual } => write!(
                f,
                "SE01 says {declared:?} segments, ST..SE inclusive has {actual}"
            ),
            SetControlInvalid { st02 } => write!(f, "ST02 {st02:?} must be 4 to 9 characters"),
            DuplicateSet { st02 } => write!(f, "ST02 {st02:?} repeats within the group"),
            UnsupportedSet { st01 } => write!(f, "ST01 {st01:?} is not a supported transaction set"),
            SetIdMismatch { st01, gs08 } => {
                write!(f, "ST01 {st01:?} does not fit the group's GS08 {gs08:?}")
            }
            GuideMismatch { st03, gs08 } => {
                write!(f, "ST03 {st03:?} differs from GS08 {gs08:?}")
            }
            BadSegmentId { id } => write!(
                f,
                "segment id {id:?} is not 2-3 upper-case letters or digits"
            ),
            EmptySegment => write!(f, "empty segment (two segment terminators in a row)"),
        }?;
        let code = self.code();
        if code != Code::None {
            write!(f, " [{} {}]", code.element(), code.value())?;
        }
        Ok(())
    }
}

fn usage_name(b: u8) -> &'static str {
    match b {
        b'T' => "test",
        b'P' => "production",
        b'I' => "information",
        _ => "unknown",
    }
}

/// A value for an error message: lossy UTF-8, at most 35 characters (the
/// longest envelope value), control characters shown as `?`.
pub fn shown(v: &[u8]) -> String {
    v.iter()
        .take(35)
        .map(|b| {
            if b.is_ascii_graphic() || *b == b' ' {
                char::from(*b)
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_messages() {
        let e = EnvelopeError::new(
            ErrorKind::IsaLength {
                element: 2,
                width: 9,
                length: 105,
            },
            Position {
                segment: 1,
                offset: 0,
            },
        );
        assert_eq!(e.code(), Code::Ta105("011"));
        assert_eq!(e.level(), Level::Interchange);
        let m = e.to_string();
        assert!(m.contains("ISA02 is 9 wide"), "{m}");
        assert!(m.ends_with("[TA105 011]"), "{m}");
        let s = EnvelopeError::new(
            ErrorKind::SegmentCount {
                declared: "25".into(),
                actual: 34,
            },
            Position {
                segment: 40,
                offset: 1200,
            },
        );
        assert_eq!(
            s.code().text(),
            "Number of Included Segments Does Not Match Actual Count"
        );
        assert_eq!(
            s.to_string(),
            "segment 40 (byte 1200): SE01 says \"25\" segments, ST..SE inclusive has 34 [IK502 4]"
        );
    }
}
