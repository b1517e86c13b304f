//! SKELETON: the hl7 helper replaces this file.
use super::HeaderSummary;
use super::parse::ParseError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    /// AE / CE: we could not take it now (e.g. journal full, ERR 207).
    Error { code: u16, text: String },
    /// AR / CR: we will never take it as sent (unparseable, oversized...).
    Rejected { code: u16, text: String },
}

/// The ACK payload (segments joined by CR, no MLLP framing), or `None` when
/// the inbound MSH-15 (enhanced mode) asks for no ACK for this outcome.
pub fn build_ack(_inbound: Option<&HeaderSummary>, _outcome: &Outcome, _control_id: &str, _timestamp: &str) -> Option<Vec<u8>> {
    todo!()
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

pub fn parse_ack(_raw: &[u8]) -> Result<AckSummary, ParseError> {
    todo!()
}
