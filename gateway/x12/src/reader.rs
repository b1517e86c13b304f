//! Segments as borrowed slices: the separators, a segment's elements,
//! components and repetitions, and the iterator that splits bytes on the
//! segment terminator (skipping CR/LF, spaces and tabs between segments).
//!
//! Nothing here allocates or copies; every accessor returns a sub-slice of
//! the input, and a missing position is an empty slice, never a panic.

/// The four delimiters of an interchange, read from its ISA segment
/// (see [`crate::isa`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Separators {
    /// Data element separator: the byte right after `ISA` (index 3).
    pub element: u8,
    /// Component element separator: ISA16 (index 104).
    pub component: u8,
    /// Repetition separator: ISA11 (index 82) in 005010; none in 004010,
    /// where ISA11 is the standards identifier `U`.
    pub repetition: Option<u8>,
    /// Segment terminator: the byte after ISA16 (index 105).
    pub segment: u8,
}

impl Separators {
    /// The separators most senders use: `*`, `:`, `^`, `~`.
    pub const DEFAULT: Separators = Separators {
        element: b'*',
        component: b':',
        repetition: Some(b'^'),
        segment: b'~',
    };

    /// True when `b` is one of the four delimiters (a value that contains
    /// it cannot be written without breaking the segment).
    pub fn is_delimiter(&self, b: u8) -> bool {
        b == self.element || b == self.component || b == self.segment || Some(b) == self.repetition
    }
}

/// Where a segment is: its 1-based number in the file (blank lines and
/// whitespace between segments are not counted) and the byte offset of its
/// first character (after a UTF-8 BOM, if any, the offset still counts the
/// BOM: it is an offset into the bytes as given).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, PartialOrd, Ord)]
pub struct Position {
    /// 1-based segment number in the file.
    pub segment: usize,
    /// Byte offset of the segment's first character in the input.
    pub offset: usize,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "segment {} (byte {})", self.segment, self.offset)
    }
}

/// One segment: the bytes between two terminators, without the terminator.
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a> {
    raw: &'a [u8],
    seps: Separators,
    /// Where the segment starts.
    pub pos: Position,
    /// False only for a last segment that ran into the end of the input.
    pub terminated: bool,
}

/// How many element boundaries [`Elements`] keeps on the stack; positions
/// past it are found by scanning (X12 segments rarely exceed 30 elements).
const MAX_INDEXED: usize = 40;

impl<'a> Segment<'a> {
    /// A segment over `raw` (no terminator) with the given separators.
    pub fn new(raw: &'a [u8], seps: Separators, pos: Position) -> Self {
        Segment {
            raw,
            seps,
            pos,
            terminated: true,
        }
    }

    /// The segment's bytes as sent, without the terminator.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The separators this segment was split with.
    pub fn separators(&self) -> Separators {
        self.seps
    }

    /// The segment id: the bytes before the first element separator.
    pub fn id(&self) -> &'a [u8] {
        let end = self
            .raw
            .iter()
            .take(4)
            .position(|b| *b == self.seps.element);
        match end {
            Some(i) => &self.raw[..i],
            // Ids are at most 3 characters: a longer run has no separator
            // there, so look further only for the (invalid) long id.
            None => match memchr::memchr(self.seps.element, self.raw) {
                Some(i) => &self.raw[..i],
                None => self.raw,
            },
        }
    }

    /// True when the id is 2 or 3 upper-case letters or digits starting
    /// with a letter (the X12 syntax for a segment id).
    pub fn id_is_valid(&self) -> bool {
        let id = self.id();
        (2..=3).contains(&id.len())
            && id[0].is_ascii_uppercase()
            && id
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    }

    /// Element `n` (1-based, `ISA01` is 1), empty when absent.
    pub fn element(&self, n: usize) -> &'a [u8] {
        if n == 0 {
            return self.id();
        }
        let mut rest = self.raw;
        let mut i = 0;
        loop {
            match memchr::memchr(self.seps.element, rest) {
                Some(at) => {
                    rest = &rest[at + 1..];
                    i += 1;
                    if i == n {
                        return match memchr::memchr(self.seps.element, rest) {
                            Some(end) => &rest[..end],
                            None => rest,
                        };
                    }
                }
                None => return &[],
            }
        }
    }

    /// All elements split once, for mappers that read many positions.
    pub fn elements(&self) -> Elements<'a> {
        Elements::split(self.raw, self.seps)
    }

    /// Number of elements after the id (trailing empty elements count).
    pub fn element_count(&self) -> usize {
        memchr::memchr_iter(self.seps.element, self.raw).count()
    }
}

/// A segment's elements, split once. `get(n)` is 1-based like the
/// standard's reference designators (`CLP03` is `get(3)`).
#[derive(Clone, Copy)]
pub struct Elements<'a> {
    raw: &'a [u8],
    seps: Separators,
    /// `starts[k]` is the offset of element k+1 (after its separator).
    starts: [u32; MAX_INDEXED],
    indexed: usize,
    /// Set when the segment has more elements than `MAX_INDEXED`.
    overflow: bool,
}

impl<'a> Elements<'a> {
    fn split(raw: &'a [u8], seps: Separators) -> Self {
        let mut starts = [0u32; MAX_INDEXED];
        let mut indexed = 0;
        let mut overflow = false;
        // A plain loop: segments are short, where memchr's setup costs more
        // than it saves.
        for at in raw
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == seps.element)
            .map(|(i, _)| i)
        {
            if indexed == MAX_INDEXED {
                overflow = true;
                break;
            }
            // Inputs are far below 4 GiB per segment; clamp defensively.
            starts[indexed] = u32::try_from(at + 1).unwrap_or(u32::MAX);
            indexed += 1;
        }
        Elements {
            raw,
            seps,
            starts,
            indexed,
            overflow,
        }
    }

    /// Element `n` (1-based), empty when absent.
    pub fn get(&self, n: usize) -> &'a [u8] {
        if n == 0 {
            let end = if self.indexed > 0 {
                self.starts[0] as usize - 1
            } else {
                self.raw.len()
            };
            return self.raw.get(..end).unwrap_or(&[]);
        }
        if n > self.indexed {
            if self.overflow {
                return Segment::new(self.raw, self.seps, Position::default()).element(n);
            }
            return &[];
        }
        let start = self.starts[n - 1] as usize;
        let end = if n < self.indexed {
            self.starts[n] as usize - 1
        } else if self.overflow {
            match memchr::memchr(self.seps.element, self.raw.get(start..).unwrap_or(&[])) {
                Some(e) => start + e,
                None => self.raw.len(),
            }
        } else {
            self.raw.len()
        };
        self.raw.get(start..end).unwrap_or(&[])
    }

    /// Component `c` (1-based) of element `n`: `CLP` has none, `SVC01-2`
    /// is `component(1, 2)`. An element without component separators is its
    /// own first component.
    pub fn component(&self, n: usize, c: usize) -> &'a [u8] {
        nth_part(self.get(n), self.seps.component, c)
    }

    /// The repetitions of element `n` (one item for a non-repeating value;
    /// none for an empty element).
    pub fn repetitions(&self, n: usize) -> Parts<'a> {
        let value = self.get(n);
        Parts::new(value, self.seps.repetition)
    }

    /// The components of element `n`.
    pub fn components(&self, n: usize) -> Parts<'a> {
        Parts::new(self.get(n), Some(self.seps.component))
    }

    /// Number of elements after the id.
    pub fn len(&self) -> usize {
        if self.overflow {
            memchr::memchr_iter(self.seps.element, self.raw).count()
        } else {
            self.indexed
        }
    }

    /// True when the segment has no element after its id.
    pub fn is_empty(&self) -> bool {
        self.indexed == 0
    }

    /// The separators the segment was split with.
    pub fn separators(&self) -> Separators {
        self.seps
    }
}

/// Part `c` (1-based) of `value` split on `sep`.
pub fn nth_part(value: &[u8], sep: u8, c: usize) -> &[u8] {
    if c == 0 {
        return &[];
    }
    let mut rest = value;
    for _ in 1..c {
        match memchr::memchr(sep, rest) {
            Some(at) => rest = &rest[at + 1..],
            None => return &[],
        }
    }
    match memchr::memchr(sep, rest) {
        Some(end) => &rest[..end],
        None => rest,
    }
}

/// An iterator over the parts of a value split on one separator.
#[derive(Clone)]
pub struct Parts<'a> {
    rest: Option<&'a [u8]>,
    sep: Option<u8>,
}

impl<'a> Parts<'a> {
    fn new(value: &'a [u8], sep: Option<u8>) -> Self {
        Parts {
            rest: if value.is_empty() { None } else { Some(value) },
            sep,
        }
    }
}

impl<'a> Iterator for Parts<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        let Some(sep) = self.sep else {
            self.rest = None;
            return Some(rest);
        };
        match memchr::memchr(sep, rest) {
            Some(at) => {
                self.rest = Some(&rest[at + 1..]);
                Some(&rest[..at])
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

/// Bytes allowed between segments: CR, LF, space and tab.
pub fn is_filler(b: u8) -> bool {
    matches!(b, b'\r' | b'\n' | b' ' | b'\t')
}

/// Splits `data[start..end]` into segments with the given separators.
#[derive(Clone)]
pub struct SegmentIter<'a> {
    data: &'a [u8],
    at: usize,
    end: usize,
    seps: Separators,
    next_number: usize,
}

impl<'a> SegmentIter<'a> {
    /// Segments of `data[start..end]`; the first one gets number
    /// `first_number`. `data` is the whole input, so offsets are absolute.
    pub fn new(
        data: &'a [u8],
        start: usize,
        end: usize,
        seps: Separators,
        first_number: usize,
    ) -> Self {
        let end = end.min(data.len());
        SegmentIter {
            data,
            at: start.min(end),
            end,
            seps,
            next_number: first_number,
        }
    }

    /// The offset where the next segment (or filler) starts.
    pub fn offset(&self) -> usize {
        self.at
    }

    /// The number the next segment will get.
    pub fn next_number(&self) -> usize {
        self.next_number
    }

    /// The separators in use.
    pub fn separators(&self) -> Separators {
        self.seps
    }
}

impl<'a> Iterator for SegmentIter<'a> {
    type Item = Segment<'a>;

    fn next(&mut self) -> Option<Segment<'a>> {
        let data = &self.data[..self.end];
        let mut at = self.at;
        // Filler between segments is skipped, even when the terminator is
        // itself a line feed (a blank line is not a segment). Two visible
        // terminators in a row (`~~`) still give an empty segment.
        while at < data.len() && is_filler(data[at]) {
            at += 1;
        }
        if at >= data.len() {
            self.at = at;
            return None;
        }
        let start = at;
        let (raw, next, terminated) = match memchr::memchr(self.seps.segment, &data[start..]) {
            Some(i) => (&data[start..start + i], start + i + 1, true),
            None => (&data[start..], data.len(), false),
        };
        self.at = next;
        let pos = Position {
            segment: self.next_number,
            offset: start,
        };
        self.next_number += 1;
        // With a `\n` terminator, a CR before it belongs to the line ending.
        let raw = if self.seps.segment == b'\n' {
            raw.strip_suffix(b"\r").unwrap_or(raw)
        } else {
            raw
        };
        Some(Segment {
            raw,
            seps: self.seps,
            pos,
            terminated,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(raw: &[u8]) -> Segment<'_> {
        Segment::new(raw, Separators::DEFAULT, Position::default())
    }

    #[test]
    fn elements_and_components() {
        let s = seg(b"SVC*HC:99213:25*100.00*80.00**1");
        assert_eq!(s.id(), b"SVC");
        assert_eq!(s.element(1), b"HC:99213:25");
        assert_eq!(s.element(5), b"1");
        assert_eq!(s.element(6), b"");
        let e = s.elements();
        assert_eq!(e.get(0), b"SVC");
        assert_eq!(e.component(1, 2), b"99213");
        assert_eq!(e.component(1, 3), b"25");
        assert_eq!(e.component(1, 4), b"");
        assert_eq!(e.component(2, 1), b"100.00");
        assert_eq!(e.get(4), b"");
        assert_eq!(e.len(), 5);
    }

    #[test]
    fn many_elements_overflow_the_index() {
        let mut raw = b"XX".to_vec();
        for i in 0..60 {
            raw.extend_from_slice(format!("*{i}").as_bytes());
        }
        let s = seg(&raw);
        let e = s.elements();
        assert_eq!(e.get(40), b"39");
        assert_eq!(e.get(41), b"40");
        assert_eq!(e.get(60), b"59");
        assert_eq!(e.get(61), b"");
        assert_eq!(e.len(), 60);
    }

    #[test]
    fn iterator_skips_line_endings() {
        let data = b"ST*835*1~\r\nBPR*I~\n\nSE*3*1~";
        let v: Vec<_> = SegmentIter::new(data, 0, data.len(), Separators::DEFAULT, 1).collect();
        assert_eq!(v.len(), 3);
        assert_eq!(v[1].raw(), b"BPR*I");
        assert_eq!(
            v[1].pos,
            Position {
                segment: 2,
                offset: 11
            }
        );
        assert_eq!(v[2].pos.segment, 3);
        assert!(v[2].terminated);
    }

    #[test]
    fn newline_terminator_with_crlf() {
        let seps = Separators {
            segment: b'\n',
            ..Separators::DEFAULT
        };
        let data = b"ST*835*1\r\nSE*2*1\r\n";
        let v: Vec<_> = SegmentIter::new(data, 0, data.len(), seps, 1).collect();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].raw(), b"ST*835*1");
        assert_eq!(v[1].raw(), b"SE*2*1");
    }

    #[test]
    fn repetitions() {
        let s = seg(b"EB*1**30^1^33");
        let e = s.elements();
        let r: Vec<_> = e.repetitions(3).collect();
        assert_eq!(r, vec![&b"30"[..], b"1", b"33"]);
        assert_eq!(e.repetitions(2).count(), 0);
    }
}
