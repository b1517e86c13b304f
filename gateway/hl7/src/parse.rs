//! The parser: one pass over the bytes that finds segments and field
//! boundaries, checks the header, and keeps byte ranges into the input.
//! Everything below fields (repetitions, components, subcomponents, escapes,
//! charset) is decoded on access by the views in [`super::value`].

use std::borrow::Cow;
use std::fmt;

use super::charset::Charset;
use super::encoding::DelimiterError;
use super::header::{EncodingChars, HeaderSummary, PatientId};
use super::path::{FieldPath, Path};
use super::value::{Ctx, Field, Value};

/// Why a message could not be read: where, why, and the HL7 table 0357 code for the NAK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// "MSH-9", "PID-3.4", "segment 4", "frame" ...
    pub location: String,
    pub reason: String,
    /// HL7 table 0357 error code (100, 101, 102, 200, 203, 207 ...).
    pub err_code: u16,
}

impl ParseError {
    pub fn new(
        location: impl Into<String>,
        reason: impl Into<String>,
        err_code: u16,
    ) -> ParseError {
        ParseError {
            location: location.into(),
            reason: reason.into(),
            err_code,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.reason)
    }
}
impl std::error::Error for ParseError {}

/// HL7 table 0357 codes used here.
pub mod err_code {
    pub const ACCEPTED: u16 = 0;
    pub const SEGMENT_SEQUENCE: u16 = 100;
    pub const REQUIRED_FIELD_MISSING: u16 = 101;
    pub const DATA_TYPE: u16 = 102;
    pub const TABLE_VALUE_NOT_FOUND: u16 = 103;
    pub const UNSUPPORTED_MESSAGE_TYPE: u16 = 200;
    pub const UNSUPPORTED_EVENT: u16 = 201;
    pub const UNSUPPORTED_PROCESSING_ID: u16 = 202;
    pub const UNSUPPORTED_VERSION: u16 = 203;
    pub const UNKNOWN_KEY: u16 = 204;
    pub const DUPLICATE_KEY: u16 = 205;
    pub const RECORD_LOCKED: u16 = 206;
    pub const INTERNAL_ERROR: u16 = 207;

    /// The table 0357 description of a code ("" for codes not in the table).
    pub fn description(code: u16) -> &'static str {
        match code {
            0 => "Message accepted",
            100 => "Segment sequence error",
            101 => "Required field missing",
            102 => "Data type error",
            103 => "Table value not found",
            200 => "Unsupported message type",
            201 => "Unsupported event code",
            202 => "Unsupported processing id",
            203 => "Unsupported version id",
            204 => "Unknown key identifier",
            205 => "Duplicate key identifier",
            206 => "Application record locked",
            207 => "Application internal error",
            _ => "",
        }
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
}

#[derive(Debug, Clone, Copy)]
struct SegSpan {
    span: Span,
    /// Index in `Message::fields` of this segment's id; field n follows at `first + n`.
    first: usize,
    /// Entries in `Message::fields` (the id plus the fields).
    count: usize,
}

/// A parsed HL7 v2 message: byte ranges into the input.
///
/// The first segment is always MSH. Field numbering follows the standard,
/// also for MSH: `field(1)` is the field separator and `field(2)` the
/// encoding characters (both literal), `field(3)` the sending application.
pub struct Message<'a> {
    raw: &'a [u8],
    enc: EncodingChars,
    charset: Charset,
    segments: Vec<SegSpan>,
    /// Per segment: the id, then fields 1, 2, ... (for MSH, field 1 is the
    /// one-byte separator itself).
    fields: Vec<Span>,
}

impl fmt::Debug for Message<'_> {
    // No field contents: they may be PHI.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("bytes", &self.raw.len())
            .field("segments", &self.segments.len())
            .field("encoding", &self.enc)
            .field("charset", &self.charset)
            .finish()
    }
}

/// Non-blank lines: segments split on CR or LF (so CRLF works, and blank
/// lines, a trailing terminator or lines of only spaces/tabs are skipped).
struct Lines<'a> {
    raw: &'a [u8],
    pos: usize,
}

impl Iterator for Lines<'_> {
    type Item = Span;
    fn next(&mut self) -> Option<Span> {
        loop {
            let rest = self.raw.get(self.pos..)?;
            if rest.is_empty() {
                return None;
            }
            let len = rest
                .iter()
                .position(|&b| b == b'\r' || b == b'\n')
                .unwrap_or(rest.len());
            let span = Span {
                start: self.pos,
                end: self.pos + len,
            };
            self.pos += len + 1;
            let line = rest.get(..len).unwrap_or_default();
            if !line.iter().all(|&b| b == b' ' || b == b'\t') {
                return Some(span);
            }
        }
    }
}

fn slice(raw: &[u8], s: Span) -> &[u8] {
    raw.get(s.start..s.end).unwrap_or_default()
}

/// A segment id shown in an error, without letting arbitrary bytes (or a
/// long line of PHI) through.
fn show_id(id: &[u8]) -> String {
    let shown: String = id
        .iter()
        .take(8)
        .flat_map(|b| b.escape_ascii())
        .map(char::from)
        .collect();
    if id.len() > 8 {
        format!("{shown}...")
    } else {
        shown
    }
}

fn delimiter_error(e: DelimiterError) -> ParseError {
    use DelimiterError::*;
    match e {
        BadFieldSeparator(_) => ParseError::new("MSH-1", e.to_string(), err_code::DATA_TYPE),
        MissingEncodingChars => {
            ParseError::new("MSH-2", e.to_string(), err_code::REQUIRED_FIELD_MISSING)
        }
        _ => ParseError::new("MSH-2", e.to_string(), err_code::DATA_TYPE),
    }
}

impl<'a> Message<'a> {
    /// Parses a message (payload only, no MLLP framing). Strict about the
    /// header and segment ids, lenient about terminators, a leading BOM,
    /// blank lines and bytes that are not valid in the declared charset.
    ///
    /// Errors, with their location and table 0357 code:
    /// - `segment 1`: message does not start with MSH (100)
    /// - `MSH-1`: field separator missing (101) or not a valid delimiter (102)
    /// - `MSH-2`: encoding characters missing (101), wrong count, invalid or duplicated (102)
    /// - `MSH-9`, `MSH-9.1`, `MSH-10`, `MSH-12`: empty (101)
    /// - `segment N`: segment id is not 3 alphanumeric characters (100)
    pub fn parse(raw: &'a [u8]) -> Result<Message<'a>, ParseError> {
        let msg = Self::index(raw, true)?;
        msg.check_header()?;
        Ok(msg)
    }

    /// Like [`Message::parse`] but lenient, as [`salvage_header`] is: the
    /// first MSH line anywhere, default delimiters when MSH-2 is broken, bad
    /// segments skipped, no required header fields. For reading peers'
    /// ACKs and for diagnostics, not for accepting messages.
    pub fn parse_lenient(raw: &'a [u8]) -> Result<Message<'a>, ParseError> {
        Self::index(raw, false)
    }

    /// Splits into segments and fields. `strict`: fail on a bad first line,
    /// bad delimiters or a bad segment id; otherwise find the first MSH
    /// anywhere, fall back to default delimiters and skip bad segments.
    fn index(raw: &'a [u8], strict: bool) -> Result<Message<'a>, ParseError> {
        let start = if raw.starts_with(BOM) { BOM.len() } else { 0 };
        let mut lines = Lines { raw, pos: start };
        let no_msh = || {
            ParseError::new(
                "segment 1",
                "message does not start with MSH",
                err_code::SEGMENT_SEQUENCE,
            )
        };
        let msh = loop {
            match lines.next() {
                None => return Err(no_msh()),
                Some(l) if slice(raw, l).starts_with(b"MSH") => break l,
                Some(_) if strict => return Err(no_msh()),
                Some(_) => {}
            }
        };
        let line = slice(raw, msh);
        let Some(&sep) = line.get(3) else {
            return Err(ParseError::new(
                "MSH-1",
                "field separator is missing",
                err_code::REQUIRED_FIELD_MISSING,
            ));
        };
        let after = line.get(4..).unwrap_or_default();
        let msh2 = after
            .get(..after.iter().position(|&b| b == sep).unwrap_or(after.len()))
            .unwrap_or_default();
        let enc = match EncodingChars::from_msh(sep, msh2) {
            Ok(e) => e,
            Err(e) if strict => return Err(delimiter_error(e)),
            Err(e) => {
                let fallback = EncodingChars {
                    field: sep,
                    ..EncodingChars::default()
                };
                if fallback.validate().is_err() {
                    return Err(delimiter_error(e));
                }
                fallback
            }
        };

        let mut msg = Message {
            raw,
            enc,
            charset: Charset::Default,
            segments: Vec::with_capacity(16),
            fields: Vec::with_capacity(128),
        };
        msg.add_segment(msh, 1, strict)?;
        for (i, l) in lines.enumerate() {
            msg.add_segment(l, i + 2, strict)?;
        }
        let msh18 = msg.msh().field(18).repetition(1).component(1);
        msg.charset = Charset::from_msh18(&msh18.text());
        Ok(msg)
    }

    fn add_segment(&mut self, span: Span, number: usize, strict: bool) -> Result<(), ParseError> {
        let sep = self.enc.field;
        let line = slice(self.raw, span);
        let id_len = line.iter().position(|&b| b == sep).unwrap_or(line.len());
        let id = line.get(..id_len).unwrap_or_default();
        if id.len() != 3 || !id.iter().all(u8::is_ascii_alphanumeric) {
            if strict {
                return Err(ParseError::new(
                    format!("segment {number}"),
                    format!(
                        "segment id '{}' is not 3 alphanumeric characters",
                        show_id(id)
                    ),
                    err_code::SEGMENT_SEQUENCE,
                ));
            }
            return Ok(());
        }
        let first = self.fields.len();
        self.fields.push(Span {
            start: span.start,
            end: span.start + 3,
        });
        if id_len < line.len() {
            if id == b"MSH" {
                // MSH-1 is the separator itself.
                self.fields.push(Span {
                    start: span.start + 3,
                    end: span.start + 4,
                });
            }
            let mut s = span.start + id_len + 1;
            let mut rest = line.get(id_len + 1..).unwrap_or_default();
            loop {
                match rest.iter().position(|&b| b == sep) {
                    Some(i) => {
                        self.fields.push(Span {
                            start: s,
                            end: s + i,
                        });
                        s += i + 1;
                        rest = rest.get(i + 1..).unwrap_or_default();
                    }
                    None => {
                        self.fields.push(Span {
                            start: s,
                            end: span.end,
                        });
                        break;
                    }
                }
            }
        }
        self.segments.push(SegSpan {
            span,
            first,
            count: self.fields.len() - first,
        });
        Ok(())
    }

    fn check_header(&self) -> Result<(), ParseError> {
        let msh = self.msh();
        let missing = |loc: &str, what: &str| {
            Err(ParseError::new(
                loc,
                format!("{what} is empty"),
                err_code::REQUIRED_FIELD_MISSING,
            ))
        };
        if msh.field(9).is_empty() {
            return missing("MSH-9", "message type");
        }
        if msh.field(9).component(1).is_empty() {
            return missing("MSH-9.1", "message code");
        }
        if msh.field(10).is_empty() {
            return missing("MSH-10", "message control id");
        }
        if msh.field(12).component(1).is_empty() {
            return missing("MSH-12", "version");
        }
        Ok(())
    }

    /// The input bytes, as given (BOM included if there was one).
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The delimiters from MSH-1 and MSH-2.
    pub fn encoding(&self) -> &EncodingChars {
        &self.enc
    }

    /// The character set from MSH-18.
    pub fn charset(&self) -> Charset {
        self.charset
    }

    /// The MSH segment (always the first).
    pub fn msh(&self) -> Segment<'_, 'a> {
        Segment {
            msg: self,
            index: 0,
        }
    }

    /// MSH-12.1, e.g. "2.5.1". Versions are not checked: see [`super::version`].
    pub fn version(&self) -> Cow<'a, str> {
        self.msh().field(12).component(1).text()
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// All segments in order.
    pub fn segments(&self) -> impl ExactSizeIterator<Item = Segment<'_, 'a>> + '_ {
        (0..self.segments.len()).map(move |index| Segment { msg: self, index })
    }

    /// The segments with this id, in order.
    pub fn segments_named<'s>(&'s self, id: &'s str) -> impl Iterator<Item = Segment<'s, 'a>> + 's {
        self.segments()
            .filter(move |s| s.id_bytes() == id.as_bytes())
    }

    /// The first segment with this id.
    pub fn segment(&self, id: &str) -> Option<Segment<'_, 'a>> {
        self.segments().find(|s| s.id_bytes() == id.as_bytes())
    }

    /// The segment at `index` (0-based; 0 is MSH).
    pub fn segment_at(&self, index: usize) -> Option<Segment<'_, 'a>> {
        (index < self.segments.len()).then_some(Segment { msg: self, index })
    }

    /// The value at a path such as `PID-3[1].4.1` (see [`super::path`]);
    /// `None` when the path is malformed, the segment is not there or the
    /// value is empty.
    pub fn get(&self, path: &str) -> Option<Value<'a>> {
        self.get_path(&Path::parse(path).ok()?)
    }

    /// Decoded text at a path; `None` as for [`Message::get`].
    pub fn text(&self, path: &str) -> Option<Cow<'a, str>> {
        self.get(path).map(|v| v.text())
    }

    /// The value at a pre-parsed path.
    pub fn get_path(&self, path: &Path) -> Option<Value<'a>> {
        let seg = self
            .segments()
            .filter(|s| s.id_bytes() == path.segment)
            .nth(path.occurrence.checked_sub(1)?)?;
        seg.get_field_path(&path.field)
    }

    /// Subcomponent `sub` of component `comp` of repetition `rep` of field
    /// `field` of the first `segment`: `value("PID", 3, 1, 4, 1)` is
    /// `PID-3[1].4.1`. All 1-based; `None` when absent or empty.
    pub fn value(
        &self,
        segment: &str,
        field: usize,
        rep: usize,
        comp: usize,
        sub: usize,
    ) -> Option<Value<'a>> {
        let v = self
            .segment(segment)?
            .field(field)
            .repetition(rep)
            .component(comp)
            .subcomponent(sub)
            .as_value();
        (!v.is_empty()).then_some(v)
    }

    /// The header fields the gateway stores with the message.
    pub fn header(&self) -> HeaderSummary {
        let msh = self.msh();
        let raw = |n: usize| self.charset.decode(msh.field(n).raw()).into_owned();
        let text = |n: usize, c: usize| msh.field(n).component(c).text().into_owned();
        let patient_id = self.segment("PID").and_then(|pid| {
            let cx = pid.field(3).repetition(1);
            let hd = cx.component(4);
            let id = cx.component(1).text().into_owned();
            let namespace = hd.subcomponent(1);
            let authority = if namespace.is_empty() {
                hd.subcomponent(2)
            } else {
                namespace
            };
            let assigning_authority = authority.text().into_owned();
            (!id.is_empty() || !assigning_authority.is_empty()).then_some(PatientId {
                id,
                assigning_authority,
            })
        });
        HeaderSummary {
            encoding: self.enc,
            sending_application_raw: raw(3),
            sending_facility_raw: raw(4),
            receiving_application_raw: raw(5),
            receiving_facility_raw: raw(6),
            timestamp: raw(7),
            message_code: text(9, 1),
            trigger_event: text(9, 2),
            message_structure: text(9, 3),
            control_id: msh.field(10).text().into_owned(),
            processing_id: text(11, 1),
            version: text(12, 1),
            accept_ack_type: msh.field(15).text().into_owned(),
            application_ack_type: msh.field(16).text().into_owned(),
            charset: msh.field(18).repetition(1).text().into_owned(),
            patient_id,
        }
    }
}

/// Best effort: whatever header fields can be read from an unparseable
/// message, so a NAK can still echo MSH-10 and the applications. Looks for
/// the first line starting with MSH (after a BOM or garbage lines), falls
/// back to the default encoding characters when MSH-2 is broken, skips
/// segments with bad ids and does not require MSH-9/10/12. `None` when
/// there is no MSH line with a usable field separator.
pub fn salvage_header(raw: &[u8]) -> Option<HeaderSummary> {
    Message::index(raw, false).ok().map(|m| m.header())
}

/// One segment of a [`Message`].
#[derive(Clone, Copy)]
pub struct Segment<'m, 'a> {
    msg: &'m Message<'a>,
    index: usize,
}

impl fmt::Debug for Segment<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Segment({} #{}, {} fields)",
            self.id(),
            self.index,
            self.field_count()
        )
    }
}

impl<'m, 'a> Segment<'m, 'a> {
    fn spans(&self) -> Option<(SegSpan, &'m [Span])> {
        let seg = *self.msg.segments.get(self.index)?;
        let fields = self.msg.fields.get(seg.first..seg.first + seg.count)?;
        Some((seg, fields))
    }

    fn id_bytes(&self) -> &'a [u8] {
        self.spans()
            .and_then(|(_, f)| f.first())
            .map_or(&[], |s| slice(self.msg.raw, *s))
    }

    /// The segment id, e.g. "PID" (always 3 ASCII letters or digits).
    pub fn id(&self) -> &'a str {
        std::str::from_utf8(self.id_bytes()).unwrap_or_default()
    }

    /// Position in the message, 0-based (MSH is 0).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The whole segment as on the wire, without its terminator.
    pub fn raw(&self) -> &'a [u8] {
        self.spans()
            .map_or(&[], |(s, _)| slice(self.msg.raw, s.span))
    }

    /// The highest field number present (trailing empty fields count).
    pub fn field_count(&self) -> usize {
        self.spans().map_or(0, |(_, f)| f.len().saturating_sub(1))
    }

    /// Field `n` (1-based, standard numbering: for MSH, field 1 is the field
    /// separator and field 2 the encoding characters). Empty when absent.
    pub fn field(&self, n: usize) -> Field<'a> {
        let bytes = match self.spans() {
            Some((_, f)) if n > 0 => f.get(n).map_or(&[][..], |s| slice(self.msg.raw, *s)),
            _ => &[],
        };
        let literal = (n == 1 || n == 2) && self.id_bytes() == b"MSH";
        Field::new(
            bytes,
            Ctx {
                enc: self.msg.enc,
                charset: self.msg.charset,
                literal,
            },
        )
    }

    /// Fields 1 to [`Segment::field_count`].
    pub fn fields(&self) -> impl ExactSizeIterator<Item = Field<'a>> + 'm {
        let seg = *self;
        (1..self.field_count() + 1).map(move |n| seg.field(n))
    }

    /// The value at a field path such as `3[1].4.1` (see [`super::path`]).
    pub fn get(&self, path: &str) -> Option<Value<'a>> {
        self.get_field_path(&FieldPath::parse(path).ok()?)
    }

    /// The value at a pre-parsed field path; `None` when empty.
    pub fn get_field_path(&self, p: &FieldPath) -> Option<Value<'a>> {
        let f = self.field(p.field);
        let v = match (p.repetition, p.component, p.subcomponent) {
            (None, None, _) => f.as_value(),
            (Some(r), None, _) => f.repetition(r).as_value(),
            (r, Some(c), None) => f.repetition(r.unwrap_or(1)).component(c).as_value(),
            (r, Some(c), Some(s)) => f
                .repetition(r.unwrap_or(1))
                .component(c)
                .subcomponent(s)
                .as_value(),
        };
        (!v.is_empty()).then_some(v)
    }
}

impl fmt::Display for Segment<'_, '_> {
    /// The segment id only (never contents, which may be PHI).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}
