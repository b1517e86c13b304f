//! What goes on the wire for one message on one destination: the route's
//! transform applied to the stored message, encoded for the destination
//! kind. Pure: a transform that cannot map a message returns the reason,
//! and the deliverer dead-letters it with that text. A FHIR Bundle's
//! Provenance takes the journal's received time and id, never the clock at
//! delivery, so every retry sends the same bytes.

use bytes::Bytes;

use crate::config::HttpFormat;
use fhir_map::{MapContext, TranslateOptions};
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
    /// FHIR: `Type/id` of the entries to write only if absent (read first
    /// in PUT mode: `fhir_update`).
    pub create_only: Vec<String>,
    /// A RESTful write of one resource instead of a POSTed Bundle (a bulk
    /// export's resources: `transform = "fhir-resource"`).
    pub rest: Option<RestWrite>,
}

/// `PUT [base]/<path>` with the body, or `DELETE [base]/<path>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestWrite {
    pub delete: bool,
    /// `Type/id`.
    pub path: String,
}

/// What a bulk export journals for its `to` destinations (`source::export::journal_sink`).
pub const KIND_FHIR_RESOURCE: &str = "fhir+resource";
pub const KIND_FHIR_DELETE: &str = "fhir+delete";
/// The outbox transform of those messages.
pub const TRANSFORM_FHIR_RESOURCE: &str = "fhir-resource";

/// `Type/id` with a FHIR type name and id: safe to append to the base URL.
fn is_type_and_id(path: &str) -> bool {
    let Some((ty, id)) = path.split_once('/') else {
        return false;
    };
    ty.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && ty.chars().all(|c| c.is_ascii_alphanumeric())
        && (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
}

/// A journaled export resource or tombstone as a RESTful write.
fn fhir_resource(mut p: Prepared, msg: StoredMessage) -> Result<Prepared, String> {
    let delete = match msg.meta.kind.as_str() {
        KIND_FHIR_RESOURCE => false,
        KIND_FHIR_DELETE => true,
        other => {
            return Err(format!(
                "transform \"fhir-resource\" takes resources of a bulk export; this message is {other} {}",
                msg.meta.message_type
            ))
        }
    };
    if !is_type_and_id(&msg.meta.control_id) {
        return Err(format!(
            "cannot write {:?}: not Type/id",
            msg.meta.control_id
        ));
    }
    p.rest = Some(RestWrite {
        delete,
        path: msg.meta.control_id,
    });
    if !delete {
        // The stored bytes move into the body: no copy.
        p.body = Bytes::from(msg.raw);
    }
    Ok(p)
}

/// A fhir destination's mapping inputs.
#[derive(Debug, Clone, Copy)]
pub struct FhirTarget<'a> {
    pub ctx: &'a MapContext,
    /// One Provenance per Bundle (the destination's `provenance`).
    pub provenance: bool,
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

/// The x12-json of a stored X12 message (accept journals only clean files;
/// a message of another kind, or one that no longer checks, is refused
/// with the reason).
fn x12_json(msg: &StoredMessage) -> Result<Vec<u8>, String> {
    if msg.meta.kind != crate::accept::x12::KIND_X12 {
        return Err(format!(
            "transform \"x12-json\" takes X12 files; this message is {} {}: route only X12 sources (pickups of format = \"x12\") with it",
            msg.meta.kind, msg.meta.message_type
        ));
    }
    let doc = x12::check(&msg.raw, &x12::CheckOptions::default(), &());
    let first_error = doc.errors().next().map(|e| e.to_string());
    match first_error {
        None => Ok(x12::to_json(&doc)),
        Some(e) => Err(format!("cannot map to x12-json: {e}")),
    }
}

/// Apply `transform` ("none", "fhir", "x12-json", "fhir-resource") and encode for `wire`. `fhir` is the
/// destination's mapping inputs (fhir destinations).
pub fn prepare(
    msg: StoredMessage,
    transform: &str,
    wire: Wire,
    fhir: Option<FhirTarget<'_>>,
) -> Result<Prepared, String> {
    let base = |msg: &StoredMessage, body: Vec<u8>, content_type| Prepared {
        message_id: msg.id,
        control_id: msg.meta.control_id.clone(),
        message_type: msg.meta.message_type.clone(),
        received_at_ms: msg.received_at_ms,
        body: Bytes::from(body),
        content_type,
        create_only: Vec::new(),
        rest: None,
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
            let target = fhir.ok_or("this destination has no FHIR mapping settings")?;
            let parsed = Message::parse(&msg.raw)
                .map_err(|e| format!("cannot map to FHIR: the stored message does not parse: {e}"))?;
            let journal_id = msg.id.to_string();
            let received = crate::ops::clock::iso8601(msg.received_at_ms);
            let options = TranslateOptions {
                provenance: target.provenance,
                journal_id: Some(&journal_id),
                received: Some(&received),
            };
            let t = fhir_map::translate_with(&parsed, target.ctx, &options)
                .map_err(|e| format!("cannot map to FHIR: {e}"))?;
            let mut p = base(&msg, t.bytes, "application/fhir+json");
            if target.ctx.update_mode == fhir_map::UpdateMode::Put {
                p.create_only = t.create_only;
            }
            Ok(p)
        }
        (TRANSFORM_FHIR_RESOURCE, Wire::Fhir) => {
            let p = base(&msg, Vec::new(), "application/fhir+json");
            fhir_resource(p, msg)
        }
        ("x12-json", Wire::Hl7 | Wire::Json) => {
            let body = x12_json(&msg)?;
            Ok(base(&msg, body, "application/json"))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(kind: &str, control_id: &str, raw: &[u8]) -> StoredMessage {
        StoredMessage {
            id: 7,
            received_at_ms: 0,
            source: "acme-nightly".into(),
            peer: String::new(),
            meta: journal::MessageMeta {
                kind: kind.into(),
                control_id: control_id.into(),
                message_type: "Patient".into(),
                ..Default::default()
            },
            raw: raw.to_vec(),
            ack: Vec::new(),
        }
    }

    #[test]
    fn an_export_resource_is_a_put_and_a_tombstone_a_delete() {
        let body = br#"{"resourceType":"Patient","id":"p1","x":1.50}"#;
        let p = prepare(
            stored(KIND_FHIR_RESOURCE, "Patient/p1", body),
            TRANSFORM_FHIR_RESOURCE,
            Wire::Fhir,
            None,
        )
        .unwrap();
        assert_eq!(
            p.rest,
            Some(RestWrite {
                delete: false,
                path: "Patient/p1".into()
            })
        );
        assert_eq!(&p.body[..], body, "sent as stored, byte for byte");
        let p = prepare(
            stored(KIND_FHIR_DELETE, "Patient/p1", b"Patient/p1"),
            TRANSFORM_FHIR_RESOURCE,
            Wire::Fhir,
            None,
        )
        .unwrap();
        assert!(p.rest.unwrap().delete);
        assert!(p.body.is_empty());
        // Anything else is refused with the reason (dead-lettered, not sent).
        for (kind, id) in [
            (KIND_FHIR_RESOURCE, "Patient/../x"),
            (KIND_FHIR_RESOURCE, "patient/1"),
            ("hl7v2", "Patient/1"),
        ] {
            assert!(prepare(
                stored(kind, id, b"{}"),
                TRANSFORM_FHIR_RESOURCE,
                Wire::Fhir,
                None
            )
            .is_err());
        }
        assert!(prepare(
            stored(KIND_FHIR_RESOURCE, "Patient/1", b"{}"),
            TRANSFORM_FHIR_RESOURCE,
            Wire::Hl7,
            None
        )
        .is_err());
    }
}
