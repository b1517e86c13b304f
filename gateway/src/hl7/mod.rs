//! HL7 v2: a zero-copy parser over bytes, escape and character-set decoding,
//! the header summary, and the ACK/NAK builder. Everything here is pure: no
//! I/O, no clocks (callers pass timestamps and ids in).

pub mod ack;
pub mod header;
pub mod parse;

pub use ack::{build_ack, parse_ack, AckSummary, Outcome};
pub use header::{EncodingChars, HeaderSummary, PatientId};
pub use parse::{salvage_header, Message, ParseError};
