//! What goes on the wire for one message on one destination: the route's
//! transform applied to the stored message, encoded for the destination
//! kind. Pure: a transform that cannot map a message returns the reason,
//! and the deliverer dead-letters it with that text.

use bytes::Bytes;

use crate::config::HttpFormat;
use fhir_map::MapContext;
use hl7::Message;
use journal::StoredMessage;

/// A message ready to send.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub message_id: u64,
    pub control_id: String,
    pub message_type: String,
    /// When the journal took it (file names are made from it, never from the send time).
    pub received_at_ms: u64,
    /// Shared, so retries and the HTTP client do not copy it.
    pub body: Bytes,
    pub content_type: &'static str,
}

/// The body shape a destination wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// The HL7 message itself (MLLP, folder, http format = "hl7").
    Hl7,
    /// http format = "json": the message in a small JSON envelope.
    Json,
    /// A FHIR transaction Bundle (fhir destinations).
    Fhir,
}

impl From<HttpFormat> for Wire {
    fn from(f: HttpFormat) -> Wire {
        match f {
            HttpFormat::Hl7 => Wire::Hl7,
            HttpFormat::Json => Wire::Json,
        }
    }
}

/// Apply `transform` ("none", "fhir") and encode for `wire`. `fhir` is the
/// destination's mapping context (fhir destinations).
pub fn prepare(
    msg: StoredMessage,
    transform: &str,
    wire: Wire,
    fhir: Option<&MapContext>,
) -> Result<Prepared, String> {
    let base = |msg: &StoredMessage, body: Vec<u8>, content_type| Prepared {
        message_id: msg.id,
        control_id: msg.meta.control_id.clone(),
        message_type: msg.meta.message_type.clone(),
        received_at_ms: msg.received_at_ms,
        body: Bytes::from(body),
        content_type,
    };
    match (transform, wire) {
        ("none", Wire::Hl7) => {
            let mut p = base(&msg, Vec::new(), "application/hl7-v2");
            // The stored bytes move into the body: no copy.
            p.body = Bytes::from(msg.raw);
            Ok(p)
        }
        ("none", Wire::Json) => {
            let body = serde_json::json!({
                "id": msg.id,
                "control_id": msg.meta.control_id,
                "type": msg.meta.message_type.clone(),
                "received_at": crate::ops::clock::iso8601(msg.received_at_ms),
                "hl7": String::from_utf8_lossy(&msg.raw),
            });
            Ok(base(&msg, body.to_string().into_bytes(), "application/json"))
        }
        ("fhir", Wire::Fhir) => {
            let ctx = fhir.ok_or("this destination has no FHIR mapping settings")?;
            let parsed = Message::parse(&msg.raw)
                .map_err(|e| format!("cannot map to FHIR: the stored message does not parse: {e}"))?;
            let body = fhir_map::translate_to_bytes(&parsed, ctx)
                .map_err(|e| format!("cannot map to FHIR: {e}"))?;
            Ok(base(&msg, body, "application/fhir+json"))
        }
        ("none", Wire::Fhir) => Err(
            "this fhir destination got an untransformed HL7 message: give its route transform = \"fhir\""
                .into(),
        ),
        (other, _) => Err(format!(
            "transform \"{other}\" is not available in this build"
        )),
    }
}
