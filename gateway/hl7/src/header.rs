//! The header summary: the few MSH/PID fields the rest of the gateway needs
//! (routing, de-duplication, ACKs, logs), extracted once at ingest and stored
//! with the message in the journal.

use serde::{Deserialize, Serialize};

/// MSH-1 and MSH-2: the delimiters a message declares for itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodingChars {
    pub field: u8,
    pub component: u8,
    pub repetition: u8,
    pub escape: u8,
    pub subcomponent: u8,
    /// v2.7+ truncation character; kept only when MSH-2 declared one.
    pub truncation: Option<u8>,
}

impl Default for EncodingChars {
    fn default() -> Self {
        EncodingChars {
            field: b'|',
            component: b'^',
            repetition: b'~',
            escape: b'\\',
            subcomponent: b'&',
            truncation: None,
        }
    }
}

/// The first PID-3 repetition: the patient identifier and who assigned it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatientId {
    /// PID-3.1, decoded.
    pub id: String,
    /// PID-3.4 (HD), namespace id or universal id, decoded; empty when absent.
    pub assigning_authority: String,
}

/// The header fields of one inbound message.
///
/// `*_raw` fields hold the field exactly as it appeared on the wire (still
/// escaped, components joined with the message's own separators) so that an
/// ACK can echo them byte for byte. The other strings are decoded text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HeaderSummary {
    pub encoding: EncodingChars,
    /// MSH-3, raw.
    pub sending_application_raw: String,
    /// MSH-4, raw.
    pub sending_facility_raw: String,
    /// MSH-5, raw.
    pub receiving_application_raw: String,
    /// MSH-6, raw.
    pub receiving_facility_raw: String,
    /// MSH-7, as sent.
    pub timestamp: String,
    /// MSH-9.1, e.g. "ADT".
    pub message_code: String,
    /// MSH-9.2, e.g. "A01"; empty when absent.
    pub trigger_event: String,
    /// MSH-9.3, e.g. "ADT_A01"; empty when absent.
    pub message_structure: String,
    /// MSH-10.
    pub control_id: String,
    /// MSH-11.1, e.g. "P".
    pub processing_id: String,
    /// MSH-12.1, e.g. "2.5.1".
    pub version: String,
    /// MSH-15 (AL/NE/ER/SU); empty when absent.
    pub accept_ack_type: String,
    /// MSH-16 (AL/NE/ER/SU); empty when absent.
    pub application_ack_type: String,
    /// MSH-18 first repetition, e.g. "UNICODE UTF-8"; empty when absent.
    pub charset: String,
    /// First repetition of PID-3, when the message has a PID segment whose
    /// PID-3 has an id or an assigning authority; `None` otherwise.
    pub patient_id: Option<PatientId>,
}

impl HeaderSummary {
    /// "ADT^A01" style type used in logs, metrics and route matching.
    pub fn message_type(&self) -> String {
        if self.trigger_event.is_empty() {
            self.message_code.clone()
        } else {
            format!("{}^{}", self.message_code, self.trigger_event)
        }
    }
}
