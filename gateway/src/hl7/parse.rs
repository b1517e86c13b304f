//! SKELETON: the hl7 helper replaces this file.
use super::HeaderSummary;

/// Why a message could not be read: where, why, and the HL7 table 0357 code for the NAK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// "MSH-9", "PID-3.4", "segment 4", "frame" ...
    pub location: String,
    pub reason: String,
    /// HL7 table 0357 error code (100, 101, 102, 200, 203, 207 ...).
    pub err_code: u16,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.location, self.reason)
    }
}
impl std::error::Error for ParseError {}

pub struct Message<'a> {
    _raw: &'a [u8],
}

impl<'a> Message<'a> {
    pub fn parse(_raw: &'a [u8]) -> Result<Message<'a>, ParseError> {
        todo!()
    }
    pub fn header(&self) -> HeaderSummary {
        todo!()
    }
}

/// Best effort: whatever header fields can be read from an unparseable message, so a NAK can echo them.
pub fn salvage_header(_raw: &[u8]) -> Option<HeaderSummary> {
    todo!()
}
