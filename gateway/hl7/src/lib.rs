//! HL7 v2: a zero-copy parser over bytes, escape and character-set decoding,
//! the header summary, a serializer, the ACK/NAK builder, and the MLLP
//! framing codec ([`mllp`]). Everything here
//! is pure: no I/O, no clocks (callers pass timestamps and ids in), and no
//! panics on any input (no unchecked indexing, unwrap or expect on data).
//!
//! # Design
//!
//! **Zero-copy ranges.** [`Message::parse`] makes one pass over the input:
//! it strips a UTF-8 BOM, splits segments on CR, LF or CRLF (skipping blank
//! lines), reads the delimiters from MSH-1/MSH-2 (any valid set, e.g.
//! `MSH#*@!%`, with an optional 5th truncation character), checks every
//! segment id, and records the byte range of every field. Nothing is copied
//! or decoded. A message is the input slice plus two small vectors of ranges.
//!
//! **Decoding on access.** [`Segment::field`] returns a [`Field`] view (a
//! byte range plus the delimiters and charset). Repetitions, components and
//! subcomponents are split lazily from that range; `text()` decodes escape
//! sequences ([`escape`]) and the MSH-18 charset ([`charset`]) and borrows
//! the input when there is nothing to decode; `raw()` is always the bytes as
//! sent. Positions are 1-based and match the standard, including MSH (MSH-1
//! is the field separator, MSH-2 the encoding characters). Missing positions
//! give empty views, so access chains never fail. Paths ([`path`]):
//! `msg.get("PID-3[1].4.1")`, `msg.text("OBX(2)-5")`, or the numeric
//! `msg.value("PID", 3, 1, 4, 1)`; pre-parse a [`Path`] for hot loops.
//!
//! ```
//! use hl7::Message;
//! let raw = b"MSH|^~\\&|LAB|HOSP|GW|CLINIC|20240101||ORU^R01|42|P|2.5.1\r\
//!             PID|1||123^^^MRN&1.2.3&ISO||Doe^Jane\r\
//!             OBX|1|TX|X^Y||A \\T\\ B\\.br\\next\r";
//! let msg = Message::parse(raw).unwrap();
//! assert_eq!(msg.header().control_id, "42");
//! let pid = msg.segment("PID").unwrap();
//! assert_eq!(pid.field(3).component(4).subcomponent(2).text(), "1.2.3");
//! assert_eq!(msg.text("PID-5.2").unwrap(), "Jane");
//! for obx in msg.segments_named("OBX") {
//!     assert_eq!(obx.field(5).text(), "A & B\nnext");
//! }
//! ```
//!
//! **Errors.** Parsing is strict where a wrong guess would mislead routing
//! or de-duplication: the message must start with MSH, the delimiters must
//! be valid and distinct, every segment id must be 3 letters or digits, and
//! MSH-9, MSH-10 and MSH-12 must be valued. A [`ParseError`] names the
//! location (`MSH-9`, `segment 3`), the reason, and the HL7 table 0357 code
//! for the NAK; its Display is "location: reason". It is lenient where
//! nothing is lost: bytes invalid in the declared charset (decoded as
//! Latin-1), unknown escapes (kept literally), unknown versions (parsed;
//! see [`version::is_supported`]). [`salvage_header`] reads what it can of a
//! broken message so that the NAK can still echo its control id.
//!
//! **Writing.** [`Message::to_bytes`] writes the segments verbatim with a
//! chosen [`Terminator`]; [`OwnedMessage`] is a decoded, editable tree whose
//! [`OwnedMessage::to_bytes`] re-escapes every value ([`escape()`]).
//! [`build_ack`] writes ACK/NAK payloads and [`parse_ack`] reads them.
//!
//! Modules: [`encoding`] (delimiters), [`escape`], [`charset`], [`value`]
//! (views), [`path`], [`parse`] (the parser and [`Segment`]), [`header`],
//! [`version`], [`serialize`], [`ack`], [`mllp`] (framing).

pub mod ack;
pub mod charset;
pub mod encoding;
pub mod escape;
pub mod header;
pub mod mllp;
pub mod parse;
pub mod path;
pub mod serialize;
pub mod value;
pub mod version;

pub use ack::{build_ack, parse_ack, AckSummary, Outcome};
pub use charset::Charset;
pub use escape::{decode_text, escape, unescape};
pub use header::{EncodingChars, HeaderSummary, PatientId};
pub use parse::{salvage_header, Message, ParseError, Segment};
pub use path::{FieldPath, Path};
pub use serialize::{OwnedField, OwnedMessage, OwnedSegment, Terminator};
pub use value::{Component, Field, Repetition, Subcomponent, Value};
