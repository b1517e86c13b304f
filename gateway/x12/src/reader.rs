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
    /// Length of the id (the bytes before the first element separator),
    /// found once: every consumer asks for it.
    id_len: usize,
    /// The id packed in 32 bits ([`tag_of`]), so that filtering segments
    /// by id is one integer compare.
    tag: u32,
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
        let id_len = id_len(raw, seps.element);
        Segment {
            raw,
            id_len,
            tag: segment_tag(raw, id_len),
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
    #[inline]
    pub fn id(&self) -> &'a [u8] {
        self.raw.get(..self.id_len).unwrap_or(self.raw)
    }

    /// True when the id is `id` (an integer compare for ids of up to 3
    /// bytes, which every X12 segment id is).
    #[inline(always)]
    pub fn has_id<const N: usize>(&self, id: &[u8; N]) -> bool {
        if N <= 3 {
            self.tag == tag_of(id)
        } else {
            self.id() == id
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
        // A plain loop: segments are short, where memchr's setup costs more
        // than it saves.
        let mut seen = 0;
        let mut start = 0;
        for (i, &b) in self.raw.iter().enumerate() {
            if b == self.seps.element {
                seen += 1;
                if seen == n {
                    start = i + 1;
                } else if seen > n {
                    return self.raw.get(start..i).unwrap_or(&[]);
                }
            }
        }
        if seen == n {
            self.raw.get(start..).unwrap_or(&[])
        } else {
            &[]
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
    /// `ends[k]` is the offset where element k ends (the id is element 0):
    /// the separator after it, or the end of the segment for the last one.
    /// 16 bits keep the whole split small enough to stay in registers and
    /// cache lines; a longer segment is not indexed (see `overflow`).
    ends: [u16; MAX_INDEXED + 1],
    /// Elements after the id that are indexed (`ends[indexed]` is the end
    /// of the last one).
    indexed: usize,
    /// Set when the segment has more elements than `MAX_INDEXED`, or is
    /// too long for 16-bit offsets: elements past the index are found by
    /// scanning.
    overflow: bool,
}

impl<'a> Elements<'a> {
    #[inline]
    fn split(raw: &'a [u8], seps: Separators) -> Self {
        let mut e = Elements {
            raw,
            seps,
            ends: [0; MAX_INDEXED + 1],
            indexed: 0,
            overflow: true,
        };
        let Ok(len) = u16::try_from(raw.len()) else {
            // Not indexed: every element (the id too) is found by scanning.
            return e;
        };
        // A plain loop: segments are short, where memchr's setup costs more
        // than it saves. Offsets are below `len`, so they fit 16 bits.
        for (i, &b) in raw.iter().enumerate() {
            if b == seps.element {
                e.ends[e.indexed] = i as u16;
                if e.indexed == MAX_INDEXED {
                    // The last indexed element ends here.
                    return e;
                }
                e.indexed += 1;
            }
        }
        e.ends[e.indexed] = len;
        e.overflow = false;
        e
    }

    /// Element `n` (1-based), empty when absent.
    #[inline]
    pub fn get(&self, n: usize) -> &'a [u8] {
        if n > self.indexed || (self.overflow && self.indexed == 0) {
            return if self.overflow {
                self.get_unindexed(n)
            } else {
                &[]
            };
        }
        let start = match n.checked_sub(1) {
            Some(before) => self.ends[before] as usize + 1,
            None => 0,
        };
        self.raw.get(start..self.ends[n] as usize).unwrap_or(&[])
    }

    /// Element `n` past the index of a long segment, found by scanning.
    #[cold]
    fn get_unindexed(&self, n: usize) -> &'a [u8] {
        Segment::new(self.raw, self.seps, Position::default()).element(n)
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
        self.len() == 0
    }

    /// The separators the segment was split with.
    pub fn separators(&self) -> Separators {
        self.seps
    }
}

/// The length of a segment's id: up to the first element separator (ids
/// are at most 3 characters, so the first 4 bytes nearly always say).
fn id_len(raw: &[u8], element: u8) -> usize {
    match raw.iter().take(4).position(|b| *b == element) {
        Some(i) => i,
        None => memchr::memchr(element, raw).unwrap_or(raw.len()),
    }
}

/// A segment id of up to 3 bytes packed in 32 bits: the bytes, and the
/// length in the top byte; `u32::MAX` (no id's tag) for a longer one.
#[inline(always)]
const fn tag_of(id: &[u8]) -> u32 {
    match *id {
        [] => 0,
        [a] => 1 << 24 | a as u32,
        [a, b] => 2 << 24 | (b as u32) << 8 | a as u32,
        [a, b, c] => 3 << 24 | (c as u32) << 16 | (b as u32) << 8 | a as u32,
        _ => u32::MAX,
    }
}

/// [`tag_of`] the first `id_len` bytes of `raw`, from one 4-byte load
/// when the segment has 4 bytes (nearly all do).
#[inline(always)]
fn segment_tag(raw: &[u8], id_len: usize) -> u32 {
    match raw.first_chunk::<4>() {
        Some(word) if id_len <= 3 => {
            let mask = (1u32 << (8 * id_len)) - 1;
            // `id_len` is at most 3 here.
            u32::from_le_bytes(*word) & mask | (id_len as u32) << 24
        }
        _ => tag_of(raw.get(..id_len).unwrap_or(raw)),
    }
}

/// The first `N` parts of `value` split on `sep`, in one pass (missing
/// parts are empty), for composites whose parts are all read.
pub fn first_parts<const N: usize>(value: &[u8], sep: u8) -> [&[u8]; N] {
    let mut parts: [&[u8]; N] = [&[]; N];
    let mut k = 0;
    let mut start = 0;
    for (i, &b) in value.iter().enumerate() {
        if b == sep {
            if let Some(p) = parts.get_mut(k) {
                *p = value.get(start..i).unwrap_or(&[]);
            }
            k += 1;
            start = i + 1;
            if k >= N {
                return parts;
            }
        }
    }
    if let Some(p) = parts.get_mut(k) {
        *p = value.get(start..).unwrap_or(&[]);
    }
    parts
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
    /// The input up to `end` (offsets stay absolute).
    data: &'a [u8],
    at: usize,
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
            data: &data[..end],
            at: start.min(end),
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
        let data = self.data;
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
        let id_len = id_len(raw, self.seps.element);
        Some(Segment {
            raw,
            id_len,
            tag: segment_tag(raw, id_len),
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
    fn segment_ids_compare_by_tag() {
        for raw in [
            &b"CLP*1"[..],
            b"LX*1",
            b"N1",
            b"N",
            b"",
            b"*X",
            b"ABCD*1",
            b"NM1",
            b"NM1*",
            b"LQ*HE",
        ] {
            let s = seg(raw);
            assert_eq!(s.has_id(b"CLP"), s.id() == b"CLP", "{raw:?}");
            assert_eq!(s.has_id(b"LX"), s.id() == b"LX", "{raw:?}");
            assert_eq!(s.has_id(b"N1"), s.id() == b"N1", "{raw:?}");
            assert_eq!(s.has_id(b"N"), s.id() == b"N", "{raw:?}");
            assert_eq!(s.has_id(b"NM1"), s.id() == b"NM1", "{raw:?}");
            assert_eq!(s.has_id(b"LQ"), s.id() == b"LQ", "{raw:?}");
            assert_eq!(s.has_id(b"ABCD"), s.id() == b"ABCD", "{raw:?}");
            assert_eq!(segment_tag(raw, s.id().len()), tag_of(s.id()), "{raw:?}");
        }
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
    fn element_by_position() {
        let s = seg(b"CLP*A1**200*150");
        let got: Vec<&[u8]> = (0..7).map(|n| s.element(n)).collect();
        assert_eq!(got, [&b"CLP"[..], b"A1", b"", b"200", b"150", b"", b""]);
        assert_eq!(seg(b"LONGID").id(), b"LONGID");
        assert_eq!(seg(b"LONGID*1").id(), b"LONGID");
        assert_eq!(seg(b"").id(), b"");
        assert_eq!(seg(b"*1").element(1), b"1");
    }

    #[test]
    fn parts_in_one_pass() {
        assert_eq!(
            first_parts::<3>(b"HC:99213:25:26", b':'),
            [&b"HC"[..], b"99213", b"25"]
        );
        assert_eq!(first_parts::<3>(b"HC", b':'), [&b"HC"[..], b"", b""]);
        assert_eq!(first_parts::<2>(b"", b':'), [&b""[..], b""]);
        assert_eq!(first_parts::<2>(b"::", b':'), [&b""[..], b""]);
        let v = b"A:B::D:E:F:G:H";
        let all: [&[u8]; 7] = first_parts(v, b':');
        for (c, p) in all.iter().enumerate() {
            assert_eq!(*p, nth_part(v, b':', c + 1));
        }
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
    fn elements_like_element() {
        for raw in [
            &b""[..],
            b"*",
            b"**",
            b"CLP*A1*1*200.00*150.00*20.00*12*TESTICN000000001*11*1",
            b"NM1*QC*1*PATIENT*TEST****MI*TESTMEMBER0000001*",
            b"SVC*HC:99213*120.00*90.00**1",
        ] {
            let s = seg(raw);
            let e = s.elements();
            for n in 0..20 {
                assert_eq!(
                    e.get(n),
                    s.element(n),
                    "{:?} {n}",
                    String::from_utf8_lossy(raw)
                );
            }
            assert_eq!(e.len(), s.element_count());
        }
    }

    #[test]
    fn long_segments_are_read_by_scanning() {
        let mut raw = b"MSG*".to_vec();
        raw.extend(std::iter::repeat_n(b'X', 70_000));
        raw.extend_from_slice(b"*2**4");
        let s = seg(&raw);
        let e = s.elements();
        for n in 0..7 {
            assert_eq!(e.get(n), s.element(n), "{n}");
        }
        assert_eq!(e.get(0), b"MSG");
        assert_eq!(e.get(2), b"2");
        assert_eq!(e.len(), 4);
        assert!(!e.is_empty());
        assert!(seg(b"MSG").elements().is_empty());
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

    /// The splitting rule, one byte at a time.
    fn naive(data: &[u8], seps: Separators) -> Vec<(Vec<u8>, usize, bool)> {
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            while at < data.len() && is_filler(data[at]) {
                at += 1;
            }
            if at >= data.len() {
                return out;
            }
            let start = at;
            while at < data.len() && data[at] != seps.segment {
                at += 1;
            }
            let terminated = at < data.len();
            let mut raw = &data[start..at];
            if seps.segment == b'\n' {
                raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            }
            out.push((raw.to_vec(), start, terminated));
            at += 1;
        }
    }

    #[test]
    fn splits_like_a_byte_loop() {
        // Segments of every length around the 64-byte blocks, with and
        // without line endings, runs of terminators, a line-feed
        // terminator with blank lines, and an unterminated end.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for terminator in [b'~', b'\n'] {
            let seps = Separators {
                segment: terminator,
                ..Separators::DEFAULT
            };
            for _ in 0..300 {
                let mut data = Vec::new();
                for _ in 0..rand(12) {
                    for _ in 0..rand(150) {
                        data.push(b"AB*:\r\n ~"[rand(8) as usize]);
                    }
                    data.push(terminator);
                    if rand(2) == 0 {
                        data.extend_from_slice(b"\r\n");
                    }
                }
                let expected = naive(&data, seps);
                let got: Vec<_> = SegmentIter::new(&data, 0, data.len(), seps, 1)
                    .map(|s| (s.raw().to_vec(), s.pos.offset, s.terminated))
                    .collect();
                assert_eq!(got, expected, "{:?}", String::from_utf8_lossy(&data));
                // A window that starts and ends inside the data.
                if data.len() > 10 {
                    let (from, to) = (3, data.len() - 5);
                    let got: Vec<_> = SegmentIter::new(&data, from, to, seps, 1)
                        .map(|s| (s.raw().to_vec(), s.pos.offset, s.terminated))
                        .collect();
                    let expected: Vec<_> = naive(&data[from..to], seps)
                        .into_iter()
                        .map(|(r, o, t)| (r, o + from, t))
                        .collect();
                    assert_eq!(got, expected);
                }
            }
        }
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
