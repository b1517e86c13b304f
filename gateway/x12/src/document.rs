//! Splitting a file into interchanges, functional groups and transaction
//! sets, in one pass, recording structural errors (missing trailers,
//! nesting, garbage) where they are found. Values are checked afterwards by
//! [`crate::envelope`].
//!
//! Recovery is chosen so that one mistake gives one error: a GS inside an
//! open group closes it (GE missing) and opens the next; an ISA inside an
//! open interchange closes it (IEA missing) and is read as the next one,
//! with its own separators; a run of segments outside any set is reported
//! once; bytes outside any interchange are reported once per run.

use crate::error::{shown, EnvelopeError, ErrorKind};
use crate::guide::Kind;
use crate::isa::{read_isa, Isa, IsaUnreadable};
use crate::reader::{is_filler, Position, Segment, SegmentIter, Separators};

/// At most this many segment-level errors are kept per set (the rest are
/// counted in [`TransactionSet::segment_errors_dropped`]), so a hostile
/// file cannot make the report unbounded.
pub const MAX_SEGMENT_ERRORS: usize = 100;

/// A whole input: its interchanges and the errors outside them.
#[derive(Debug)]
pub struct Document<'a> {
    /// The bytes as given.
    pub input: &'a [u8],
    /// Interchanges in file order.
    pub interchanges: Vec<Interchange<'a>>,
    /// File-level errors (no ISA, unreadable ISA, bytes between
    /// interchanges).
    pub errors: Vec<EnvelopeError>,
}

/// One ISA..IEA interchange.
#[derive(Debug)]
pub struct Interchange<'a> {
    /// The ISA.
    pub isa: Isa<'a>,
    /// TA1 segments (an interchange acknowledgment carries them).
    pub ta1: Vec<Segment<'a>>,
    /// Functional groups in order.
    pub groups: Vec<Group<'a>>,
    /// The IEA, when present.
    pub iea: Option<Segment<'a>>,
    /// Interchange-level errors.
    pub errors: Vec<EnvelopeError>,
    /// Byte range of the interchange in the input (ISA up to after IEA).
    pub span: (usize, usize),
}

/// One GS..GE functional group.
#[derive(Debug)]
pub struct Group<'a> {
    /// The GS.
    pub gs: Segment<'a>,
    /// The GE, when present.
    pub ge: Option<Segment<'a>>,
    /// Transaction sets in order.
    pub sets: Vec<TransactionSet<'a>>,
    /// Group-level errors.
    pub errors: Vec<EnvelopeError>,
}

/// One ST..SE transaction set.
#[derive(Debug)]
pub struct TransactionSet<'a> {
    /// The ST.
    pub st: Segment<'a>,
    /// The SE, when present.
    pub se: Option<Segment<'a>>,
    /// Segments from ST to SE inclusive (to the last one read when SE is
    /// missing): what SE01 must say.
    pub segment_count: usize,
    /// The transaction (from GS08 and ST01), when the pair is known.
    pub kind: Option<Kind>,
    /// Set-level and segment-level errors.
    pub errors: Vec<EnvelopeError>,
    /// Segment-level errors beyond [`MAX_SEGMENT_ERRORS`].
    pub segment_errors_dropped: usize,
    input: &'a [u8],
    body: (usize, usize),
    /// Where each body segment is, as the split found it (so a mapper
    /// does not look for the terminators again); `None` when they were
    /// not recorded (an input over 4 GiB, or an unterminated last segment),
    /// and the body is split again.
    spans: Option<Vec<Span>>,
}

/// A body segment's bytes: `input[start..start + len]`, without the
/// terminator (8 bytes per segment, recorded by the split).
#[derive(Clone, Copy, Debug)]
struct Span {
    start: u32,
    len: u32,
}

/// The segments of a set's body: replayed from the split's [`Span`]s, or
/// split again when they were not recorded.
#[derive(Clone)]
pub struct Body<'s, 'a> {
    inner: BodyInner<'s, 'a>,
}

#[derive(Clone)]
enum BodyInner<'s, 'a> {
    Recorded {
        input: &'a [u8],
        spans: std::slice::Iter<'s, Span>,
        seps: Separators,
        next_number: usize,
    },
    Split(SegmentIter<'a>),
}

impl<'a> Iterator for Body<'_, 'a> {
    type Item = Segment<'a>;

    #[inline]
    fn next(&mut self) -> Option<Segment<'a>> {
        match &mut self.inner {
            BodyInner::Recorded {
                input,
                spans,
                seps,
                next_number,
            } => {
                let span = spans.next()?;
                let start = span.start as usize;
                let raw = input.get(start..start + span.len as usize).unwrap_or(&[]);
                let pos = Position {
                    segment: *next_number,
                    offset: start,
                };
                *next_number += 1;
                Some(Segment::new(raw, *seps, pos))
            }
            BodyInner::Split(it) => it.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.inner {
            BodyInner::Recorded { spans, .. } => spans.size_hint(),
            BodyInner::Split(it) => it.size_hint(),
        }
    }
}

impl<'a> TransactionSet<'a> {
    /// The segments between ST and SE (both excluded), with their file
    /// positions.
    pub fn body(&self) -> Body<'_, 'a> {
        let first_number = self.st.pos.segment + 1;
        let inner = match &self.spans {
            Some(spans) => BodyInner::Recorded {
                input: self.input,
                spans: spans.iter(),
                seps: self.st.separators(),
                next_number: first_number,
            },
            None => BodyInner::Split(SegmentIter::new(
                self.input,
                self.body.0,
                self.body.1,
                self.st.separators(),
                first_number,
            )),
        };
        Body { inner }
    }

    /// The bytes between ST and SE (what [`TransactionSet::body`] splits).
    pub fn body_bytes(&self) -> &'a [u8] {
        let end = self.body.1.min(self.input.len());
        self.input.get(self.body.0.min(end)..end).unwrap_or(&[])
    }

    /// ST02.
    pub fn control_number(&self) -> &'a [u8] {
        self.st.element(2)
    }

    /// The separators of the interchange.
    pub fn separators(&self) -> Separators {
        self.st.separators()
    }
}

impl<'a> Document<'a> {
    /// Every error, file-level first, then per interchange in order.
    pub fn errors(&self) -> impl Iterator<Item = &EnvelopeError> {
        self.errors
            .iter()
            .chain(self.interchanges.iter().flat_map(|ic| {
                ic.errors.iter().chain(ic.groups.iter().flat_map(|g| {
                    g.errors
                        .iter()
                        .chain(g.sets.iter().flat_map(|s| s.errors.iter()))
                }))
            }))
    }

    /// True when no envelope error was found anywhere.
    pub fn is_clean(&self) -> bool {
        self.errors().next().is_none()
    }

    /// Every transaction set with its group and interchange.
    pub fn sets(
        &self,
    ) -> impl Iterator<Item = (&Interchange<'a>, &Group<'a>, &TransactionSet<'a>)> {
        self.interchanges.iter().flat_map(|ic| {
            ic.groups
                .iter()
                .flat_map(move |g| g.sets.iter().map(move |s| (ic, g, s)))
        })
    }
}

/// Splits `input` into its envelopes. Never fails and never panics: what
/// cannot be read is an error in the result.
pub fn split(input: &[u8]) -> Document<'_> {
    let mut doc = Document {
        input,
        interchanges: Vec::new(),
        errors: Vec::new(),
    };
    let mut at = if input.starts_with(b"\xEF\xBB\xBF") {
        3
    } else {
        0
    };
    let mut number = 1;
    let mut saw_isa = false;
    loop {
        while at < input.len() && is_filler(input[at]) {
            at += 1;
        }
        if at >= input.len() {
            break;
        }
        match read_isa(input, at, number) {
            Ok(isa) => {
                saw_isa = true;
                let (ic, next_at, next_number) = read_interchange(input, isa);
                doc.interchanges.push(ic);
                at = next_at;
                number = next_number;
            }
            Err(IsaUnreadable::Truncated) => {
                saw_isa = true;
                doc.errors.push(EnvelopeError::new(
                    ErrorKind::IsaUnreadable,
                    Position {
                        segment: number,
                        offset: at,
                    },
                ));
                break;
            }
            Err(IsaUnreadable::NotIsa) => {
                let next = next_isa(input, at + 1);
                let end = next.unwrap_or(input.len());
                doc.errors.push(EnvelopeError::new(
                    ErrorKind::OutsideInterchange { bytes: end - at },
                    Position {
                        segment: number,
                        offset: at,
                    },
                ));
                at = end;
            }
        }
    }
    if !saw_isa {
        doc.errors.clear();
        doc.errors.push(EnvelopeError::new(
            ErrorKind::NoInterchange,
            Position {
                segment: 1,
                offset: 0,
            },
        ));
    }
    doc
}

/// The offset of the next `ISA` at or after `from` that reads as an ISA
/// (or is cut short by the end of the input).
fn next_isa(input: &[u8], from: usize) -> Option<usize> {
    let hay = input.get(from..)?;
    memchr::memmem::find_iter(hay, b"ISA")
        .map(|i| from + i)
        .find(|&i| !matches!(read_isa(input, i, 0), Err(IsaUnreadable::NotIsa)))
}

struct OpenSet<'a> {
    st: Segment<'a>,
    count: usize,
    errors: Vec<EnvelopeError>,
    dropped: usize,
    body_start: usize,
    /// The body's segments so far; `None` once one cannot be recorded.
    spans: Option<Vec<Span>>,
}

impl OpenSet<'_> {
    /// Records a body segment (`raw` is a sub-slice of `input`).
    #[inline]
    fn record(&mut self, input: &[u8], seg: &Segment<'_>) {
        let Some(spans) = self.spans.as_mut() else {
            return;
        };
        let start = seg.pos.offset;
        let fits = seg.terminated
            && start + seg.raw().len() <= input.len()
            && u32::try_from(start + seg.raw().len()).is_ok();
        if fits {
            // Both fit 32 bits (checked just above).
            spans.push(Span {
                start: start as u32,
                len: seg.raw().len() as u32,
            });
        } else {
            self.spans = None;
        }
    }
}

impl<'a> OpenSet<'a> {
    fn close(
        self,
        input: &'a [u8],
        se: Option<Segment<'a>>,
        body_end: usize,
        missing_at: Position,
    ) -> TransactionSet<'a> {
        let mut errors = self.errors;
        let mut count = self.count;
        if se.is_some() {
            count += 1;
        } else {
            let mut e = EnvelopeError::new(ErrorKind::SeMissing, missing_at);
            e.set_position = Some(count + 1);
            errors.insert(0, e);
        }
        TransactionSet {
            st: self.st,
            se,
            segment_count: count,
            kind: None,
            errors,
            segment_errors_dropped: self.dropped,
            input,
            body: (self.body_start, body_end),
            spans: self.spans,
        }
    }
}

struct Builder<'a> {
    input: &'a [u8],
    group: Option<Group<'a>>,
    set: Option<OpenSet<'a>>,
    groups: Vec<Group<'a>>,
    errors: Vec<EnvelopeError>,
    /// Inside a run of segments that belong to no set (reported once).
    stray_run: bool,
}

impl<'a> Builder<'a> {
    fn close_set(&mut self, se: Option<Segment<'a>>, body_end: usize, at: Position) {
        if let Some(open) = self.set.take() {
            let set = open.close(self.input, se, body_end, at);
            if let Some(g) = self.group.as_mut() {
                g.sets.push(set);
            }
        }
    }

    fn close_group(&mut self, ge: Option<Segment<'a>>, at: Position) {
        if let Some(mut g) = self.group.take() {
            if ge.is_none() {
                g.errors
                    .insert(0, EnvelopeError::new(ErrorKind::GeMissing, at));
            }
            g.ge = ge;
            self.groups.push(g);
        }
    }

    fn misplaced(&mut self, seg: &Segment<'a>, context: &'static str) {
        self.errors.push(EnvelopeError::new(
            ErrorKind::Misplaced {
                id: shown(&seg.id()[..seg.id().len().min(8)]),
                context,
            },
            seg.pos,
        ));
    }
}

/// Reads one interchange after its ISA. Returns it with the offset and
/// segment number where the next thing in the file starts.
fn read_interchange<'a>(input: &'a [u8], isa: Isa<'a>) -> (Interchange<'a>, usize, usize) {
    let mut b = Builder {
        input,
        group: None,
        set: None,
        groups: Vec::new(),
        errors: Vec::new(),
        stray_run: false,
    };
    let mut ta1 = Vec::new();
    let mut iea = None;
    let mut it = SegmentIter::new(input, isa.end, input.len(), isa.seps, isa.pos.segment + 1);
    let (next_at, next_number);
    loop {
        let Some(seg) = it.next() else {
            let at = Position {
                segment: it.next_number(),
                offset: input.len(),
            };
            b.close_set(None, input.len(), at);
            b.close_group(None, at);
            b.errors.push(EnvelopeError::new(ErrorKind::IeaMissing, at));
            next_at = input.len();
            next_number = it.next_number();
            break;
        };
        if !seg.terminated {
            b.errors
                .push(EnvelopeError::new(ErrorKind::Unterminated, seg.pos));
        }
        let id = seg.id();
        let envelope = matches!(id, b"ISA" | b"IEA" | b"GS" | b"GE" | b"ST" | b"SE");
        if envelope {
            b.stray_run = false;
        }
        match id {
            b"ISA" => {
                // The next interchange begins before this one ended.
                b.close_set(None, seg.pos.offset, seg.pos);
                b.close_group(None, seg.pos);
                b.errors
                    .push(EnvelopeError::new(ErrorKind::IeaMissing, seg.pos));
                next_at = seg.pos.offset;
                next_number = seg.pos.segment;
                break;
            }
            b"IEA" => {
                b.close_set(None, seg.pos.offset, seg.pos);
                b.close_group(None, seg.pos);
                iea = Some(seg);
                next_at = it.offset();
                next_number = it.next_number();
                break;
            }
            b"GS" => {
                b.close_set(None, seg.pos.offset, seg.pos);
                b.close_group(None, seg.pos);
                b.group = Some(Group {
                    gs: seg,
                    ge: None,
                    sets: Vec::new(),
                    errors: Vec::new(),
                });
            }
            b"GE" => {
                b.close_set(None, seg.pos.offset, seg.pos);
                if b.group.is_some() {
                    b.close_group(Some(seg), seg.pos);
                } else {
                    b.misplaced(&seg, "without a GS (no open functional group)");
                }
            }
            b"ST" => {
                b.close_set(None, seg.pos.offset, seg.pos);
                if b.group.is_some() {
                    b.set = Some(OpenSet {
                        st: seg,
                        count: 1,
                        errors: Vec::new(),
                        dropped: 0,
                        body_start: it.offset(),
                        spans: Some(Vec::new()),
                    });
                } else {
                    b.misplaced(&seg, "outside a functional group (no GS before it)");
                    b.stray_run = true;
                }
            }
            b"SE" => {
                if b.set.is_some() {
                    b.close_set(Some(seg), seg.pos.offset, seg.pos);
                } else {
                    b.misplaced(&seg, "without an ST (no open transaction set)");
                }
            }
            b"TA1" if b.group.is_none() => ta1.push(seg),
            _ => {
                if let Some(open) = b.set.as_mut() {
                    open.count += 1;
                    open.record(input, &seg);
                    let kind = if seg.raw().is_empty() {
                        Some(ErrorKind::EmptySegment)
                    } else if !seg.id_is_valid() {
                        Some(ErrorKind::BadSegmentId {
                            id: shown(&id[..id.len().min(8)]),
                        })
                    } else {
                        None
                    };
                    if let Some(kind) = kind {
                        if open.errors.len() < MAX_SEGMENT_ERRORS {
                            let mut e = EnvelopeError::new(kind, seg.pos);
                            e.set_position = Some(open.count);
                            open.errors.push(e);
                        } else {
                            open.dropped += 1;
                        }
                    }
                } else if !b.stray_run {
                    let context = if b.group.is_some() {
                        "outside a transaction set (between GS/SE and the next ST/GE)"
                    } else {
                        "outside a functional group (between ISA/GE and the next GS/IEA)"
                    };
                    b.misplaced(&seg, context);
                    b.stray_run = true;
                }
            }
        }
    }
    let ic = Interchange {
        span: (isa.pos.offset, next_at),
        isa,
        ta1,
        groups: b.groups,
        iea,
        errors: b.errors,
    };
    (ic, next_at, next_number)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISA: &str = "ISA*00*          *00*          *ZZ*SUBMITTER      *ZZ*RECEIVER       *240102*1230*^*00501*000000001*0*T*:~";

    fn doc(body: &str) -> String {
        format!("{ISA}{body}")
    }

    #[test]
    fn splits_envelopes() {
        let s = doc("GS*HP*A*B*20240102*1230*1*X*005010X221A1~ST*835*0001*005010X221A1~BPR*I~SE*3*0001~ST*835*0002*005010X221A1~SE*2*0002~GE*2*1~IEA*1*000000001~\r\n");
        let d = split(s.as_bytes());
        assert!(d.errors.is_empty());
        assert_eq!(d.interchanges.len(), 1);
        let ic = &d.interchanges[0];
        assert!(ic.errors.is_empty(), "{:?}", ic.errors);
        assert_eq!(ic.groups.len(), 1);
        let g = &ic.groups[0];
        assert_eq!(g.sets.len(), 2);
        assert_eq!(g.sets[0].segment_count, 3);
        assert_eq!(g.sets[1].segment_count, 2);
        let body: Vec<_> = g.sets[0].body().collect();
        assert_eq!(body.len(), 1);
        assert_eq!(body[0].raw(), b"BPR*I");
        assert_eq!(body[0].pos.segment, 4);
    }

    #[test]
    fn recorded_bodies_match_a_fresh_split() {
        let crlf = "ISA*00*          *00*          *ZZ*SUBMITTER      *ZZ*RECEIVER       *240102*1230*^*00501*000000001*0*T*:\nGS*HP*A*B*20240102*1230*1*X*005010X221A1\r\nST*835*0001\r\nBPR*I\r\n\r\nN1*PR*X\r\nSE*4*0001\r\nGE*1*1\r\nIEA*1*000000001\r\n";
        let tilde = doc("GS*HP*A*B*20240102*1230*1*X*005010X221A1~ST*835*0001~BPR*I~~ N1*PR~SE*5*0001~GE*1*1~IEA*1*000000001~");
        for s in [crlf.to_string(), tilde] {
            let d = split(s.as_bytes());
            let set = &d.interchanges[0].groups[0].sets[0];
            assert!(set.spans.is_some());
            let fresh = SegmentIter::new(
                set.input,
                set.body.0,
                set.body.1,
                set.separators(),
                set.st.pos.segment + 1,
            );
            let replayed: Vec<_> = set.body().map(|g| (g.raw(), g.pos)).collect();
            let split_again: Vec<_> = fresh.map(|g| (g.raw(), g.pos)).collect();
            assert!(!replayed.is_empty());
            assert_eq!(replayed, split_again);
        }
        // An unterminated last segment: nothing recorded, split again.
        let s = doc("GS*HP*A*B*20240102*1230*1*X*005010X221A1~ST*835*0001~BPR*I~N1*PR");
        let d = split(s.as_bytes());
        let set = &d.interchanges[0].groups[0].sets[0];
        assert!(set.spans.is_none());
        let ids: Vec<_> = set.body().map(|g| g.raw()).collect();
        assert_eq!(ids, [&b"BPR*I"[..], b"N1*PR"]);
    }

    #[test]
    fn missing_trailers_and_strays() {
        let s = doc("GS*HP*A*B*20240102*1230*1*X*005010X221A1~ST*835*0001~BPR*I~GS*HP*A*B*20240102*1230*2*X*005010X221A1~GE*0*2~N1*PR~N3*X~");
        let d = split(s.as_bytes());
        let ic = &d.interchanges[0];
        assert_eq!(ic.groups.len(), 2);
        assert_eq!(ic.groups[0].errors[0].kind, ErrorKind::GeMissing);
        assert_eq!(ic.groups[0].sets[0].errors[0].kind, ErrorKind::SeMissing);
        // One error for the stray run, one for the missing IEA.
        assert_eq!(ic.errors.len(), 2, "{:?}", ic.errors);
        assert!(matches!(ic.errors[0].kind, ErrorKind::Misplaced { .. }));
        assert_eq!(ic.errors[1].kind, ErrorKind::IeaMissing);
    }

    #[test]
    fn garbage_and_bom() {
        let s = format!("\u{feff}junk here\n{ISA}IEA*0*000000001~more junk");
        let d = split(s.as_bytes());
        assert_eq!(d.interchanges.len(), 1);
        assert_eq!(d.errors.len(), 2);
        assert_eq!(
            d.errors[0].kind,
            ErrorKind::OutsideInterchange { bytes: 10 }
        );
        assert_eq!(d.errors[0].pos.offset, 3);
    }

    #[test]
    fn nothing_x12() {
        let d = split(b"MSH|^~\\&|\r");
        assert_eq!(d.errors.len(), 1);
        assert_eq!(d.errors[0].kind, ErrorKind::NoInterchange);
        let d = split(b"");
        assert_eq!(d.errors[0].kind, ErrorKind::NoInterchange);
    }

    #[test]
    fn nested_isa_starts_next_interchange() {
        let s = doc(&format!(
            "GS*HP*A*B*20240102*1230*1*X*005010X221A1~{ISA}IEA*0*000000001~"
        ));
        let d = split(s.as_bytes());
        assert_eq!(d.interchanges.len(), 2);
        assert_eq!(d.interchanges[0].errors[0].kind, ErrorKind::IeaMissing);
        assert_eq!(
            d.interchanges[0].groups[0].errors[0].kind,
            ErrorKind::GeMissing
        );
        assert!(d.interchanges[1].errors.is_empty());
    }
}
