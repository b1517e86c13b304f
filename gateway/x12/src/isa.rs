//! The ISA segment: a fixed-width header that carries the separators.
//!
//! An ISA is exactly 106 characters: `ISA`, 16 elements of fixed width
//! (2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1, 1) each after an element
//! separator, and the segment terminator. So the element separator is the
//! byte at index 3, the repetition separator ISA11 is at index 82 (005010;
//! 004010 has the standards identifier `U` there, and a `U` in a 005010 ISA
//! is read the same way: no repetition separator), the component separator
//! ISA16 is at index 104, and the segment terminator at index 105 (optional
//! CR/LF after it are filler).
//!
//! A sender that trims the padding (a common bug) produces a shorter ISA.
//! Then the fixed positions are wrong; [`read_isa`] falls back to counting
//! 16 element separators so the rest of the interchange can still be split
//! for the error report, and records the first element whose width is
//! wrong: the interchange is rejected with that element's TA105 note code.

use crate::reader::{Position, Separators};

/// Width of ISA01..ISA16.
pub const WIDTHS: [usize; 16] = [2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1, 1];

/// The length of a well-formed ISA including its terminator.
pub const ISA_LEN: usize = 106;

/// The TA105 note code for a wrong value in ISA01..ISA16 (I18 code list):
/// 010 authorization qualifier, 011 authorization, 012 security qualifier,
/// 013 security, 005/006 sender qualifier/id, 007/008 receiver
/// qualifier/id, 014 date, 015 time, 022 repetition separator (005010 has
/// no own code, per X12 RFI 1497), 017 version, 018 control number, 019
/// acknowledgment requested, 020 usage indicator, 027 component separator.
pub const NOTE_CODES: [&str; 16] = [
    "010", "011", "012", "013", "005", "006", "007", "008", "014", "015", "022", "017", "018",
    "019", "020", "027",
];

/// A read ISA segment.
#[derive(Clone, Copy, Debug)]
pub struct Isa<'a> {
    /// The ISA's bytes without the terminator.
    pub raw: &'a [u8],
    /// Separators declared by this ISA.
    pub seps: Separators,
    /// Where it starts.
    pub pos: Position,
    /// Offset just after the terminator.
    pub end: usize,
    elements: [&'a [u8]; 16],
    /// The first element (1-based) whose width is wrong, with the width
    /// found; `None` for a 106-character ISA.
    pub width_error: Option<(usize, usize)>,
}

impl<'a> Isa<'a> {
    /// ISA element `n` (1..=16) as written, padding included.
    pub fn element(&self, n: usize) -> &'a [u8] {
        match n {
            1..=16 => self.elements[n - 1],
            _ => &[],
        }
    }

    /// ISA element `n` with its space padding removed.
    pub fn trimmed(&self, n: usize) -> &'a [u8] {
        trim(self.element(n))
    }

    /// The length in characters, terminator included (106 when sound).
    pub fn len(&self) -> usize {
        self.raw.len() + 1
    }

    /// Never true: an ISA has at least its id (clippy's len/is_empty pair).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// ISA12 says 00402 or later, where ISA11 is the repetition separator.
    pub fn has_repetition_separator(&self) -> bool {
        version_has_repetition(self.element(12))
    }
}

fn version_has_repetition(v: &[u8]) -> bool {
    v.len() == 5 && v.iter().all(u8::is_ascii_digit) && v >= b"00402".as_slice()
}

/// Strips leading and trailing spaces.
pub fn trim(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| *b != b' ').unwrap_or(v.len());
    let end = v.iter().rposition(|b| *b != b' ').map_or(start, |e| e + 1);
    &v[start..end]
}

/// Why no ISA could be read at an offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IsaUnreadable {
    /// The bytes do not start with `ISA` and a separator.
    NotIsa,
    /// Fewer than 16 element separators, or no component separator and
    /// terminator after them, within 512 bytes: the file ends or the
    /// header is mangled beyond reading.
    Truncated,
}

/// Reads the ISA starting at `data[at]`, numbered `number` in the file.
pub fn read_isa(data: &[u8], at: usize, number: usize) -> Result<Isa<'_>, IsaUnreadable> {
    let rest = data.get(at..).ok_or(IsaUnreadable::NotIsa)?;
    if rest.len() < 4 || &rest[..3] != b"ISA" {
        return Err(IsaUnreadable::NotIsa);
    }
    let e = rest[3];
    if e.is_ascii_alphanumeric() || e == b' ' {
        return Err(IsaUnreadable::NotIsa);
    }
    let pos = Position {
        segment: number,
        offset: at,
    };
    if let Some(isa) = read_fixed(rest, e, at, pos) {
        return Ok(isa);
    }
    read_counted(rest, e, at, pos)
}

fn read_fixed(rest: &[u8], e: u8, at: usize, pos: Position) -> Option<Isa<'_>> {
    if rest.len() < ISA_LEN {
        return None;
    }
    let mut elements: [&[u8]; 16] = [&[]; 16];
    let mut sep_at = 3;
    for (k, w) in WIDTHS.iter().enumerate() {
        if rest[sep_at] != e {
            return None;
        }
        elements[k] = &rest[sep_at + 1..sep_at + 1 + w];
        sep_at += 1 + w;
    }
    // sep_at is now 105: the terminator.
    let terminator = rest[sep_at];
    // ISA16 itself must not be the element separator, nor elements contain
    // it (a shorter ISA followed by data could line up by accident).
    if elements.iter().any(|v| v.contains(&e)) {
        return None;
    }
    Some(finish(rest, at, pos, elements, terminator, ISA_LEN, None))
}

fn read_counted(rest: &[u8], e: u8, at: usize, pos: Position) -> Result<Isa<'_>, IsaUnreadable> {
    let window = &rest[..rest.len().min(512)];
    let mut elements: [&[u8]; 16] = [&[]; 16];
    let mut start = 4;
    for slot in elements.iter_mut().take(15) {
        let tail = window.get(start..).ok_or(IsaUnreadable::Truncated)?;
        let len = memchr::memchr(e, tail).ok_or(IsaUnreadable::Truncated)?;
        *slot = &tail[..len];
        start += len + 1;
    }
    // ISA16 is one byte, then the terminator.
    let component = window
        .get(start..start + 1)
        .ok_or(IsaUnreadable::Truncated)?;
    let terminator = *window.get(start + 1).ok_or(IsaUnreadable::Truncated)?;
    elements[15] = component;
    let total = start + 2;
    let width_error = elements
        .iter()
        .zip(WIDTHS)
        .enumerate()
        .find(|(_, (v, w))| v.len() != *w)
        .map(|(k, (v, _))| (k + 1, v.len()));
    Ok(finish(
        rest,
        at,
        pos,
        elements,
        terminator,
        total,
        width_error,
    ))
}

fn finish<'a>(
    rest: &'a [u8],
    at: usize,
    pos: Position,
    elements: [&'a [u8]; 16],
    terminator: u8,
    total: usize,
    width_error: Option<(usize, usize)>,
) -> Isa<'a> {
    // Many 005010 senders still write 004010's `U` in ISA11 (pyx12 and
    // most clearinghouses accept it): read it as "no repetition separator"
    // rather than splitting values on a letter.
    let repetition = if version_has_repetition(elements[11]) && elements[10] != b"U" {
        elements[10].first().copied()
    } else {
        None
    };
    let seps = Separators {
        element: rest[3],
        component: elements[15].first().copied().unwrap_or(b':'),
        repetition,
        segment: terminator,
    };
    Isa {
        raw: &rest[..total - 1],
        seps,
        pos,
        end: at + total,
        elements,
        width_error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISA: &[u8] = b"ISA*00*          *00*          *ZZ*SUBMITTER      *ZZ*RECEIVER       *240102*1230*^*00501*000000001*0*T*:~";

    #[test]
    fn fixed_isa() {
        assert_eq!(ISA.len(), 106);
        let isa = read_isa(ISA, 0, 1).unwrap();
        assert_eq!(isa.seps.element, b'*');
        assert_eq!(isa.seps.component, b':');
        assert_eq!(isa.seps.repetition, Some(b'^'));
        assert_eq!(isa.seps.segment, b'~');
        assert_eq!(isa.trimmed(6), b"SUBMITTER");
        assert_eq!(isa.element(13), b"000000001");
        assert_eq!(isa.width_error, None);
        assert_eq!(isa.end, 106);
        assert_eq!(isa.len(), 106);
    }

    #[test]
    fn trimmed_padding_is_read_and_flagged() {
        let short = b"ISA*00*          *00*          *ZZ*SUBMITTER*ZZ*RECEIVER       *240102*1230*^*00501*000000001*0*T*:~GS";
        let isa = read_isa(short, 0, 1).unwrap();
        assert_eq!(isa.width_error, Some((6, 9)));
        assert_eq!(isa.seps.segment, b'~');
        assert_eq!(isa.trimmed(8), b"RECEIVER");
        assert_eq!(&short[isa.end..], b"GS");
    }

    #[test]
    fn version_4010_has_no_repetition() {
        let v4 = b"ISA*00*          *00*          *ZZ*SUBMITTER      *ZZ*RECEIVER       *240102*1230*U*00401*000000001*0*T*:~";
        let isa = read_isa(v4, 0, 1).unwrap();
        assert_eq!(isa.seps.repetition, None);
    }

    #[test]
    fn unreadable() {
        assert_eq!(read_isa(b"GS*HC", 0, 1).unwrap_err(), IsaUnreadable::NotIsa);
        assert_eq!(
            read_isa(b"ISA*00*   *00", 0, 1).unwrap_err(),
            IsaUnreadable::Truncated
        );
    }
}
