//! ACK/NAK: building our acknowledgments and reading the ones we receive.
//!
//! [`build_ack`] answers an inbound message (by its [`HeaderSummary`]):
//!
//! - Payload only: segments joined by CR, with a trailing CR; no MLLP framing.
//! - MSH uses the inbound's delimiters and version (MSH-12; 2.5.1 when
//!   unknown) and charset (MSH-18 echoed), swaps the applications (ACK
//!   MSH-3/4 = inbound MSH-5/6 byte for byte, MSH-5/6 = inbound MSH-3/4),
//!   sets MSH-7 and MSH-10 from the arguments, MSH-9 to `ACK` (v2.3.x and
//!   older) or `ACK^<trigger>^ACK` (v2.4 on; `ACK^^ACK` when the trigger is unknown), and
//!   MSH-11 to the inbound processing id (`P` when absent).
//! - Original mode (MSH-15 and MSH-16 empty): AA / AE / AR.
//!   Enhanced mode (either present): this is the accept (commit) ACK, CA /
//!   CE / CR, sent only when MSH-15 asks: AL (or empty, or an unknown value)
//!   always, NE never, ER only for CE/CR, SU only for CA.
//! - `MSA|<code>|<inbound MSH-10>|<text>`.
//! - Every non-AA/CA ACK has an ERR segment. Up to v2.4: ERR-1 (ELD)
//!   `segment^sequence^field^code&text&HL70357`. From v2.5: ERR-2 location
//!   (ERL), ERR-3 `code^description^HL70357`, ERR-4 `E`, ERR-8 the text.
//!   The location comes from the outcome text when it starts with a path
//!   such as `MSH-9: ...` (as [`ParseError`]'s Display does).
//! - No usable inbound MSH: a generic header from `CLINICGW`, version 2.5.1,
//!   an empty MSA-2, always AR with an ERR saying why.
//!
//! Echoed raw fields are checked: one that would break the ACK (it holds
//! the field separator, CR, LF or an MLLP framing byte, or the inbound
//! delimiters are unusable) is escaped as text instead of copied.

use super::charset::Charset;
use super::escape::escape_into;
use super::header::{EncodingChars, HeaderSummary};
use super::parse::{err_code, Message, ParseError};
use super::path::Path;
use super::version::Version;

/// MSH-3 of ACKs we send when the inbound message has no usable header.
pub const OUR_APPLICATION: &str = "CLINICGW";
/// The version of ACKs to messages whose version we do not know.
pub const DEFAULT_VERSION: &str = "2.5.1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    /// AE / CE: we could not take it now (e.g. journal full, ERR 207).
    Error {
        code: u16,
        text: String,
    },
    /// AR / CR: we will never take it as sent (unparseable, oversized...).
    Rejected {
        code: u16,
        text: String,
    },
}

impl Outcome {
    /// The rejection for a message that failed to parse: its code and
    /// "location: reason" text (the location then fills the ERR location).
    pub fn from_parse_error(e: &ParseError) -> Outcome {
        Outcome::Rejected {
            code: e.err_code,
            text: e.to_string(),
        }
    }

    fn error(&self) -> Option<(u16, &str)> {
        match self {
            Outcome::Accepted => None,
            Outcome::Error { code, text } | Outcome::Rejected { code, text } => Some((*code, text)),
        }
    }
}

/// Writes one segment field by field, escaping text on request.
struct SegmentWriter<'e> {
    out: Vec<u8>,
    enc: &'e EncodingChars,
    charset: Charset,
}

impl SegmentWriter<'_> {
    fn start(&mut self, id: &str) {
        if !self.out.is_empty() {
            self.out.push(b'\r');
        }
        self.out.extend_from_slice(id.as_bytes());
    }
    fn sep(&mut self) {
        self.out.push(self.enc.field);
    }
    fn text(&mut self, s: &str) {
        escape_into(s, self.enc, self.charset, &mut self.out);
    }
    /// Text field (separator first).
    fn field(&mut self, s: &str) {
        self.sep();
        self.text(s);
    }
    fn comp(&mut self) {
        self.out.push(self.enc.component);
    }
    fn sub(&mut self) {
        self.out.push(self.enc.subcomponent);
    }
    /// An inbound raw field, echoed byte for byte when that is safe.
    fn echo(&mut self, raw: &str, delimiters_ok: bool) {
        self.sep();
        let mut bytes = Vec::with_capacity(raw.len());
        self.charset.encode_into(raw, &mut bytes);
        let breaks = |b: &u8| *b == self.enc.field || matches!(b, b'\r' | b'\n' | 0x0B | 0x1C);
        if delimiters_ok && !bytes.iter().any(breaks) {
            self.out.extend_from_slice(&bytes);
        } else {
            self.text(raw);
        }
    }
    fn finish(mut self) -> Vec<u8> {
        self.out.push(b'\r');
        self.out
    }
}

/// Where an error is, read from the "location: reason" outcome text.
fn location_of(text: &str) -> Option<Path> {
    let (loc, _) = text.split_once(": ")?;
    Path::parse(loc.trim()).ok()
}

/// The ACK payload (segments joined by CR, no MLLP framing), or `None` when
/// the inbound MSH-15 (enhanced mode) asks for no ACK for this outcome.
pub fn build_ack(
    inbound: Option<&HeaderSummary>,
    outcome: &Outcome,
    control_id: &str,
    timestamp: &str,
) -> Option<Vec<u8>> {
    let Some(h) = inbound else {
        return Some(generic_nak(outcome, control_id, timestamp));
    };
    let delimiters_ok = h.encoding.validate().is_ok();
    let enc = if delimiters_ok {
        h.encoding
    } else {
        EncodingChars::default()
    };
    let charset = Charset::from_msh18(&h.charset);
    let version = if h.version.trim().is_empty() {
        DEFAULT_VERSION
    } else {
        h.version.trim()
    };
    // An unreadable version gets the current layout.
    let v = Version::parse(version).unwrap_or(Version::V2_5_1);

    let enhanced =
        !h.accept_ack_type.trim().is_empty() || !h.application_ack_type.trim().is_empty();
    let accepted = matches!(outcome, Outcome::Accepted);
    let code = match (enhanced, outcome) {
        (false, Outcome::Accepted) => "AA",
        (false, Outcome::Error { .. }) => "AE",
        (false, Outcome::Rejected { .. }) => "AR",
        (true, Outcome::Accepted) => "CA",
        (true, Outcome::Error { .. }) => "CE",
        (true, Outcome::Rejected { .. }) => "CR",
    };
    if enhanced {
        let send = match h.accept_ack_type.trim().to_ascii_uppercase().as_str() {
            "NE" => false,
            "ER" => !accepted,
            "SU" => accepted,
            _ => true,
        };
        if !send {
            return None;
        }
    }

    let mut w = SegmentWriter {
        out: Vec::with_capacity(256),
        enc: &enc,
        charset,
    };
    w.start("MSH");
    w.sep();
    w.out.extend_from_slice(&enc.msh2());
    w.echo(&h.receiving_application_raw, delimiters_ok);
    w.echo(&h.receiving_facility_raw, delimiters_ok);
    w.echo(&h.sending_application_raw, delimiters_ok);
    w.echo(&h.sending_facility_raw, delimiters_ok);
    w.field(timestamp);
    w.sep(); // MSH-8
    w.field("ACK");
    if v >= Version::V2_4 {
        // MSH-9.3 names the ACK structure even when the trigger is unknown
        // (`ACK^^ACK`): strict v2.4+ readers resolve the structure from it.
        w.comp();
        w.text(&h.trigger_event);
        w.comp();
        w.text("ACK");
    }
    w.field(control_id);
    let processing = h.processing_id.trim();
    w.field(if processing.is_empty() {
        "P"
    } else {
        processing
    });
    w.field(version);
    if !h.charset.is_empty() {
        for _ in 13..18 {
            w.sep();
        }
        w.echo(&h.charset, delimiters_ok);
    }
    write_msa_err(&mut w, code, &h.control_id, outcome.error(), v);
    Some(w.finish())
}

/// MSA, and ERR for a negative outcome.
fn write_msa_err(
    w: &mut SegmentWriter<'_>,
    code: &str,
    acked: &str,
    error: Option<(u16, &str)>,
    v: Version,
) {
    w.start("MSA");
    w.field(code);
    w.field(acked);
    let Some((err, text)) = error else { return };
    w.field(text);
    let loc = location_of(text);
    w.start("ERR");
    if v < Version::V2_5 {
        // ERR-1 (ELD): segment^sequence^field^code&text&HL70357
        w.sep();
        if let Some(p) = &loc {
            w.text(&String::from_utf8_lossy(&p.segment));
            w.comp();
            w.text(&p.occurrence.to_string());
            w.comp();
            w.text(&p.field.field.to_string());
        } else {
            w.comp();
            w.comp();
        }
        w.comp();
        w.text(&err.to_string());
        w.sub();
        w.text(text);
        w.sub();
        w.text("HL70357");
    } else {
        w.sep(); // ERR-1, backward compatibility only
        w.sep(); // ERR-2 (ERL)
        if let Some(p) = &loc {
            w.text(&String::from_utf8_lossy(&p.segment));
            w.comp();
            w.text(&p.occurrence.to_string());
            w.comp();
            w.text(&p.field.field.to_string());
            if let Some(c) = p.field.component {
                w.comp();
                w.text(&p.field.repetition.unwrap_or(1).to_string());
                w.comp();
                w.text(&c.to_string());
                if let Some(s) = p.field.subcomponent {
                    w.comp();
                    w.text(&s.to_string());
                }
            } else if let Some(r) = p.field.repetition {
                w.comp();
                w.text(&r.to_string());
            }
        }
        w.field(&err.to_string()); // ERR-3
        w.comp();
        w.text(err_code::description(err));
        w.comp();
        w.text("HL70357");
        w.field("E"); // ERR-4 severity
        for _ in 5..8 {
            w.sep();
        }
        w.field(text); // ERR-8 user message
    }
}

/// The NAK for a message without a usable MSH.
fn generic_nak(outcome: &Outcome, control_id: &str, timestamp: &str) -> Vec<u8> {
    let enc = EncodingChars::default();
    let mut w = SegmentWriter {
        out: Vec::with_capacity(256),
        enc: &enc,
        charset: Charset::Default,
    };
    w.start("MSH");
    w.sep();
    w.out.extend_from_slice(&enc.msh2());
    w.field(OUR_APPLICATION);
    for _ in 4..7 {
        w.sep();
    }
    w.field(timestamp);
    w.sep();
    w.field("ACK");
    w.comp();
    w.comp();
    w.text("ACK");
    w.field(control_id);
    w.field("P");
    w.field(DEFAULT_VERSION);
    let (code, text) = outcome.error().unwrap_or((
        err_code::SEGMENT_SEQUENCE,
        "message has no usable MSH segment",
    ));
    write_msa_err(&mut w, "AR", "", Some((code, text)), Version::V2_5_1);
    w.finish()
}

/// What a received ACK says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckSummary {
    /// MSA-1: AA AE AR CA CE CR.
    pub code: String,
    /// MSA-2: the control id being acknowledged.
    pub acked_control_id: String,
    /// MSA-3 text plus ERR diagnostics, joined; empty when none.
    pub text: String,
}

impl AckSummary {
    /// AA or CA.
    pub fn is_positive(&self) -> bool {
        self.code == "AA" || self.code == "CA"
    }
}

/// Reads an ACK (payload only). Lenient about the header (an ACK from a
/// peer need not be perfect), strict about MSA-1. The text is MSA-3 and,
/// for each ERR, ERR-8, else ERR-3.2, else each ERR-1 repetition's
/// ELD.4.2; empty and repeated texts are dropped, the rest joined by "; ".
pub fn parse_ack(raw: &[u8]) -> Result<AckSummary, ParseError> {
    let m = Message::parse_lenient(raw)?;
    let msa = m.segment("MSA").ok_or_else(|| {
        ParseError::new(
            "MSA",
            "acknowledgment has no MSA segment",
            err_code::SEGMENT_SEQUENCE,
        )
    })?;
    let code = msa.field(1).text().trim().to_string();
    if code.is_empty() {
        return Err(ParseError::new(
            "MSA-1",
            "acknowledgment code is empty",
            err_code::REQUIRED_FIELD_MISSING,
        ));
    }
    if !["AA", "AE", "AR", "CA", "CE", "CR"].contains(&code.as_str()) {
        let shown: String = code
            .chars()
            .take(8)
            .flat_map(char::escape_default)
            .collect();
        return Err(ParseError::new(
            "MSA-1",
            format!("unknown acknowledgment code '{shown}'"),
            err_code::TABLE_VALUE_NOT_FOUND,
        ));
    }
    let mut texts: Vec<String> = vec![msa.field(3).text().into_owned()];
    for err in m.segments_named("ERR") {
        let e8 = err.field(8).text();
        let e3 = err.field(3).component(2).text();
        if !e8.is_empty() {
            texts.push(e8.into_owned());
        } else if !e3.is_empty() {
            texts.push(e3.into_owned());
        } else {
            texts.extend(
                err.field(1)
                    .repetitions()
                    .map(|r| r.component(4).subcomponent(2).text().into_owned()),
            );
        }
    }
    let mut unique: Vec<String> = Vec::new();
    for t in texts {
        let t = t.trim().to_string();
        if !t.is_empty() && !unique.contains(&t) {
            unique.push(t);
        }
    }
    Ok(AckSummary {
        code,
        acked_control_id: msa.field(2).text().into_owned(),
        text: unique.join("; "),
    })
}
