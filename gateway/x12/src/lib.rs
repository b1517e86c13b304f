//! X12 (placeholder doc; rewritten below)

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
pub use json::{check_and_map, to_json};
pub use reader::{Elements, Position, Segment, Separators};
pub use reconcile::{reconcile_835, Reconciliation};
