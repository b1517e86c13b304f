//! Writing messages: a parsed [`Message`] back to bytes, and an owned,
//! decoded tree ([`OwnedMessage`]) that can be edited or built from scratch
//! and written with every value re-escaped.
//!
//! Round trip: for a parsed message `m`,
//! `Message::parse(&m.to_owned_message().to_bytes(t)?)` gives back the same
//! tree, and `m.to_bytes(t)` is `m`'s segments verbatim (BOM and blank lines
//! dropped) with the chosen terminator.

use super::charset::Charset;
use super::escape::escape_into;
use super::header::EncodingChars;
use super::parse::{err_code, Message, ParseError};

/// The segment terminator to write. HL7 says CR; the others are for files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Terminator {
    #[default]
    Cr,
    Lf,
    CrLf,
}

impl Terminator {
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            Terminator::Cr => b"\r",
            Terminator::Lf => b"\n",
            Terminator::CrLf => b"\r\n",
        }
    }
}

/// Subcomponents of one component, decoded text.
pub type OwnedComponent = Vec<String>;
/// Components of one repetition.
pub type OwnedRepetition = Vec<OwnedComponent>;
/// Repetitions of one field; empty for an empty field.
pub type OwnedField = Vec<OwnedRepetition>;

/// One segment as decoded text. `fields[0]` is field 1. For MSH, fields 1
/// and 2 (the delimiters) are ignored when writing: they come from
/// [`OwnedMessage::encoding`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedSegment {
    pub id: String,
    pub fields: Vec<OwnedField>,
}

impl OwnedSegment {
    pub fn new(id: &str) -> OwnedSegment {
        OwnedSegment {
            id: id.to_string(),
            fields: Vec::new(),
        }
    }

    /// Sets field `n` (1-based) to one plain text value, adding empty fields
    /// before it as needed. `n == 0` does nothing.
    pub fn set(&mut self, n: usize, text: &str) -> &mut Self {
        if let Some(i) = n.checked_sub(1) {
            if self.fields.len() <= i {
                self.fields.resize(i + 1, Vec::new());
            }
            if let Some(f) = self.fields.get_mut(i) {
                *f = if text.is_empty() {
                    Vec::new()
                } else {
                    vec![vec![vec![text.to_string()]]]
                };
            }
        }
        self
    }
}

/// A whole message as decoded text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedMessage {
    pub encoding: EncodingChars,
    pub segments: Vec<OwnedSegment>,
}

impl OwnedMessage {
    /// The charset MSH-18 declares (used to encode text when writing).
    pub fn charset(&self) -> Charset {
        let msh18 = self
            .segments
            .first()
            .and_then(|s| s.fields.get(17))
            .and_then(|f| f.first())
            .and_then(|r| r.first())
            .and_then(|c| c.first());
        Charset::from_msh18(msh18.map_or("", String::as_str))
    }

    /// Writes the message: segments joined and ended by `term`, every value
    /// escaped and encoded in the declared charset. Fails when the
    /// delimiters are invalid, the first segment is not MSH, or a segment id
    /// is not 3 letters or digits.
    pub fn to_bytes(&self, term: Terminator) -> Result<Vec<u8>, ParseError> {
        let enc = &self.encoding;
        enc.validate()
            .map_err(|e| ParseError::new("MSH-2", e.to_string(), err_code::DATA_TYPE))?;
        if self.segments.first().map(|s| s.id.as_str()) != Some("MSH") {
            return Err(ParseError::new(
                "segment 1",
                "message does not start with MSH",
                err_code::SEGMENT_SEQUENCE,
            ));
        }
        let charset = self.charset();
        let mut out = Vec::with_capacity(256 * self.segments.len());
        for (i, seg) in self.segments.iter().enumerate() {
            let id = seg.id.as_bytes();
            if id.len() != 3 || !id.iter().all(u8::is_ascii_alphanumeric) {
                return Err(ParseError::new(
                    format!("segment {}", i + 1),
                    "segment id is not 3 alphanumeric characters",
                    err_code::SEGMENT_SEQUENCE,
                ));
            }
            out.extend_from_slice(id);
            let skip = if id == b"MSH" {
                out.push(enc.field);
                out.extend_from_slice(&enc.msh2());
                2
            } else {
                0
            };
            for field in seg.fields.iter().skip(skip) {
                out.push(enc.field);
                write_field(field, enc, charset, &mut out);
            }
            out.extend_from_slice(term.as_bytes());
        }
        Ok(out)
    }
}

fn write_field(field: &OwnedField, enc: &EncodingChars, charset: Charset, out: &mut Vec<u8>) {
    for (r, rep) in field.iter().enumerate() {
        if r > 0 {
            out.push(enc.repetition);
        }
        for (c, comp) in rep.iter().enumerate() {
            if c > 0 {
                out.push(enc.component);
            }
            for (s, sub) in comp.iter().enumerate() {
                if s > 0 {
                    out.push(enc.subcomponent);
                }
                escape_into(sub, enc, charset, out);
            }
        }
    }
}

impl Message<'_> {
    /// The segments verbatim, each followed by `term`.
    pub fn to_bytes(&self, term: Terminator) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.raw().len() + self.segment_count());
        for seg in self.segments() {
            out.extend_from_slice(seg.raw());
            out.extend_from_slice(term.as_bytes());
        }
        out
    }

    /// Every value decoded into an editable tree.
    pub fn to_owned_message(&self) -> OwnedMessage {
        let segments = self
            .segments()
            .map(|seg| OwnedSegment {
                id: seg.id().to_string(),
                fields: seg
                    .fields()
                    .map(|f| {
                        f.repetitions()
                            .map(|r| {
                                r.components()
                                    .map(|c| {
                                        c.subcomponents().map(|s| s.text().into_owned()).collect()
                                    })
                                    .collect()
                            })
                            .collect()
                    })
                    .collect(),
            })
            .collect();
        OwnedMessage {
            encoding: *self.encoding(),
            segments,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5.1\rPID|1||12\\S\\3^^^H&1.2&ISO~9||Doe^J\\T\\K||\r\r";

    #[test]
    fn verbatim_with_terminators() {
        let m = Message::parse(MSG).unwrap();
        let lf = m.to_bytes(Terminator::Lf);
        assert_eq!(lf, b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5.1\nPID|1||12\\S\\3^^^H&1.2&ISO~9||Doe^J\\T\\K||\n");
        let m2 = Message::parse(&lf).unwrap();
        assert_eq!(m2.to_bytes(Terminator::Cr), m.to_bytes(Terminator::Cr));
        assert_eq!(
            m.to_bytes(Terminator::CrLf)
                .iter()
                .filter(|&&b| b == b'\n')
                .count(),
            2
        );
    }

    #[test]
    fn owned_round_trip_reescapes() {
        let m = Message::parse(MSG).unwrap();
        let owned = m.to_owned_message();
        let pid = &owned.segments[1];
        assert_eq!(pid.fields[2][0][0], vec!["12^3".to_string()]);
        assert_eq!(pid.fields[2][0][3], vec!["H", "1.2", "ISO"]);
        assert_eq!(pid.fields[4][0][1], vec!["J&K".to_string()]);
        assert!(pid.fields[5].is_empty());
        assert_eq!(
            owned.to_bytes(Terminator::Cr).unwrap(),
            m.to_bytes(Terminator::Cr)
        );
    }

    #[test]
    fn build_and_change_delimiters() {
        let mut owned = Message::parse(MSG).unwrap().to_owned_message();
        owned.encoding = EncodingChars::from_msh(b'#', b"*@!%").unwrap();
        owned.segments[1].set(5, "a#b");
        let out = owned.to_bytes(Terminator::Cr).unwrap();
        let m = Message::parse(&out).unwrap();
        assert!(out.starts_with(b"MSH#*@!%#A#B"));
        assert_eq!(m.text("PID-5").unwrap(), "a#b");
        assert_eq!(m.segment("PID").unwrap().field(5).raw(), b"a!F!b");
        assert_eq!(m.text("PID-3[1].1").unwrap(), "12^3");
    }

    #[test]
    fn rejects_unwritable() {
        let mut o = Message::parse(MSG).unwrap().to_owned_message();
        o.segments[1].id = "P D".into();
        assert_eq!(
            o.to_bytes(Terminator::Cr).unwrap_err().location,
            "segment 2"
        );
        o.segments.remove(0);
        assert_eq!(
            o.to_bytes(Terminator::Cr).unwrap_err().location,
            "segment 1"
        );
    }

    #[test]
    fn latin1_is_encoded() {
        let mut o = OwnedMessage {
            encoding: EncodingChars::default(),
            segments: vec![OwnedSegment::new("MSH")],
        };
        o.segments[0]
            .set(9, "ADT")
            .set(10, "1")
            .set(12, "2.5")
            .set(18, "8859/1");
        let mut pid = OwnedSegment::new("PID");
        pid.set(5, "José");
        o.segments.push(pid);
        let out = o.to_bytes(Terminator::Cr).unwrap();
        assert!(out.windows(5).any(|w| w == b"Jos\xE9\r"));
        assert_eq!(Message::parse(&out).unwrap().text("PID-5").unwrap(), "José");
    }
}
