//! X12 005010 for the clinic gateway: a pure, zero-copy reader, the
//! envelope checks, TA1/999 builders, the x12-json transform and 835
//! reconciliation. No I/O, clocks or randomness: callers pass bytes in, and
//! the control numbers and time for acknowledgments. No input panics
//! (property-tested); every error carries its position and X12 code.
//!
//! # API for the integrator
//!
//! - **Check a file**: [`check`]`(bytes, &CheckOptions { expected_usage },
//!   &seen)` → [`Document`]: the interchanges/groups/sets as borrowed
//!   slices, and every [`EnvelopeError`] at its level.
//!   [`Document::is_clean`] says whether the file may be sent on (a good
//!   file is forwarded as its original bytes, never re-serialized). `seen`
//!   is the journal's record of earlier interchanges
//!   ([`SeenInterchanges`], keyed by [`InterchangeKey`]: sender, receiver,
//!   ISA13; remember [`InterchangeKey::to_owned_key`] of each accepted
//!   interchange).
//! - **Build TA1/999**: [`acknowledgments`]`(&doc, || AckHeader { .. })`
//!   → [`Ack`]s (a TA1 `R` for an interchange with interchange-level
//!   errors; else a TA1 `A` when ISA14 = 1, and a 999 for its groups), or
//!   [`ack::ta1()`] / [`ack::ack_999()`] per interchange. [`Stamp::from_unix`]
//!   turns the caller's clock reading into ISA/GS dates.
//! - **JSON of a file**: [`to_json`]`(&doc)` (always; errors listed), or
//!   [`check_and_map`] (refuses a file with envelope errors). Schema:
//!   `docs/x12-json.md`. To write it to a file or socket, prefer
//!   [`write_json`]`(&doc, 64 * 1024, &mut |chunk| ...)`: the same bytes in
//!   chunks, so a 50 MB 835 never becomes 230 MB of JSON in memory.
//!   [`reconcile_835`] balances an 835 set.
//! - **Benchmark**: [`bench::generate_835`], [`bench::run`] (module `bench`),
//!   [`bench::table`] / [`bench::json`]. `examples/x12_profile.rs` runs one
//!   check and transform for instruction counts under valgrind.
//!
//! # Design
//!
//! **Separators come from the ISA itself** ([`isa`]): it is exactly 106
//! characters; the element separator is byte 3, the repetition separator
//! ISA11 (byte 82; none in 004010, and a legacy `U` in 005010 is read as
//! none), the component separator ISA16 (byte 104) and the segment
//! terminator byte 105, optionally followed by CR/LF. Each interchange in a
//! file may declare its own. A trimmed ISA is still read (by counting
//! separators) so the rest can be reported, and is rejected with the TA105
//! code of the element whose width is wrong.
//!
//! **One pass, borrowed slices** ([`reader`], [`document`]): segments are
//! split with a SIMD search for the terminator; a UTF-8 BOM, CR/LF,
//! spaces and tabs between segments are skipped; a segment keeps its
//! 1-based number in the file and its byte offset. Elements, components
//! and repetitions are split only when read, and a mapper splits a
//! segment's elements once ([`Segment::elements`]: a fixed array of 16-bit
//! boundaries on the stack).
//!
//! **JSON without a second look at the bytes** ([`json`]): the writer
//! appends to one buffer (or hands 64 KB chunks to a sink); a set body is
//! checked for bytes that need a JSON escape in one vectorized pass, and
//! the values read from a clean body are copied as they are; amounts stay
//! borrowed slices, and the 835 balances are exact decimals summed while
//! the claim is written. Structural faults (missing
//! trailers, nested or misplaced envelopes, garbage before/between
//! interchanges, truncation) are recorded where found, with recovery that
//! gives one error per fault.
//!
//! **Envelope checks** ([`envelope`]): ISA length, values and separators;
//! ISA13 = IEA02; IEA01 = groups; GS06 = GE02; GE01 = sets; ST02 = SE02;
//! SE01 = segments ST..SE; GS08 a known guide ([`guide`]: 005010X222A1
//! 837P, X223A2 837I, X221A1 835, X231A1 999, X214 277CA, X279A1 270/271,
//! X212 276/277, their errata and 004010 predecessors) with GS01 and ST01
//! fitting it and ST03, when present, equal to it (ST03 is optional: the
//! 835 guide marks it not used); ISA15 against the connection's mode;
//! duplicate ISA13 per sender/receiver pair, within the file and against
//! the caller's record; duplicate GS06 and ST02.
//!
//! **Error codes** ([`error`], [`codes`]): interchange errors map to TA105
//! (001 control numbers, 021 group count, 023 truncated / IEA missing, 024
//! misplaced segments, 025 duplicate, 020 usage, 026/027/004 separators,
//! 005-019 ISA elements), group errors to AK905 (1 functional id, 2
//! version, 3 GE missing, 4 control numbers, 5 set count, 6 bad GS06, 19
//! duplicate), set errors to IK502 (1 unsupported, 2 SE missing, 3 control
//! numbers, 4 segment count, 6 ST01, 7 bad ST02, 19 ST03, 23 duplicate)
//! and segment errors to IK304 (1 bad segment id, 8 empty segment) with
//! IK502 5.
//!
//! Modules: [`reader`] (segments), [`isa`], [`document`] (splitting),
//! [`envelope`] (checks), [`error`], [`guide`], [`codes`], [`ack`] (TA1,
//! 999), [`json`] (one module per transaction), [`decimal`], [`reconcile`],
//! [`mod@bench`].

pub mod ack;
pub mod bench;
pub mod codes;
pub mod decimal;
pub mod document;
pub mod envelope;
pub mod error;
pub mod guide;
pub mod isa;
pub mod json;
pub mod reader;
pub mod reconcile;

pub use ack::{acknowledgments, Ack, AckHeader, AckKind, Stamp};
pub use document::{split, Document, Group, Interchange, TransactionSet};
pub use envelope::{
    check, CheckOptions, InterchangeKey, OwnedInterchangeKey, SeenInterchanges, Usage,
};
pub use error::{Code, EnvelopeError, ErrorKind, Level};
pub use guide::Kind;
pub use json::{check_and_map, to_json, write_json};
pub use reader::{Elements, Position, Segment, Separators};
pub use reconcile::{reconcile_835, Reconciliation};
