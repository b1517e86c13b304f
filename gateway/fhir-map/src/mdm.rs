//! MDM → DocumentReference. T01 (original document notification), T02
//! (original with content), T03/T05 (status change / addendum notification),
//! T04/T06 (addendum with content), T09/T10 (replacement notification /
//! with content): the notifications carry no content, and the document
//! says so (content is required in R4). DocumentReference: type TXA-2, docStatus TXA-17, date TXA-4
//! (else TXA-6), authors TXA-9/TXA-5, authenticator TXA-10/TXA-22, the
//! encounter (PV1), and the content: ED OBX as attachments, text OBX
//! (TX/ST/FT) joined into one `text/plain` attachment. An addendum
//! (T03–T06) `relatesTo` (`appends`), a replacement (T09/T10) `replaces`,
//! the DocumentReference of its parent document TXA-13 (by id in PUT mode,
//! by identifier in conditional mode).
//!
//! Key: TXA-12 unique document number (also the masterIdentifier), else
//! TXA-16 filler order number, else MSH-10.

use super::json::{json, Map, Value};

use super::bundle::{is_empty_value, Write};
use super::datatypes::{
    base64_encode, date_time, entity_identifier, identifier_pair, instant, put, table_concept,
    text, text_cow,
};
use super::encounter::map_encounter;
use super::observation::obx_attachment;
use super::shared::{meta, practitioners};
use super::tables::document_doc_status;
use super::{MapError, Mapper};
use hl7::{Repetition, Segment};

pub const US_CORE_DOCUMENT_REFERENCE: &str =
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-documentreference";

/// The key of a document number (EI): namespace + value.
fn document_key(ei: &Repetition<'_>) -> Option<[String; 2]> {
    let value = text(&ei.component(1));
    (!value.is_empty()).then(|| [text(&ei.component(2)), value])
}

pub fn map(m: &mut Mapper<'_, '_, '_>, trigger: &str) -> Result<(), MapError> {
    let Some(txa) = m.msg.segment("TXA") else {
        return Err(MapError::new(
            "TXA",
            "is missing: cannot identify the document",
        ));
    };
    m.require_patient()?;
    map_encounter(m, trigger)?;
    let unique = txa.field(12).repetition(1);
    let rid = match document_key(&unique) {
        Some([ns, value]) => m
            .bundle
            .shared_rid("DocumentReference", &["document", &ns, &value]),
        None => match document_key(&txa.field(16).repetition(1)) {
            Some([ns, value]) => m
                .bundle
                .shared_rid("DocumentReference", &["filler", &ns, &value]),
            None => {
                let control_id = m.control_id();
                m.bundle
                    .shared_rid("DocumentReference", &["message", &control_id])
            }
        },
    };
    let mut doc = Map::new();
    let completion = text(&txa.field(17).component(1));
    doc.insert(
        "status",
        Value::from(if completion.eq_ignore_ascii_case("CA") {
            "entered-in-error"
        } else {
            "current"
        }),
    );
    put(&mut doc, "docStatus", document_doc_status(&completion));
    let mut match_id = None;
    if let Some(id) = entity_identifier(&unique, "", m.ctx) {
        match_id = identifier_pair(&id);
        doc.insert("masterIdentifier", Value::Object(id.clone()));
        doc.insert("identifier", json!([id]));
    }
    let doc_type = table_concept(&txa.field(2).repetition(1), "0270", m.ctx)
        .unwrap_or_else(|| json!({ "text": "Clinical document" }));
    doc.insert("type", doc_type);
    doc.insert(
        "category",
        json!([{ "coding": [{
            "system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
            "code": "clinical-note",
            "display": "Clinical Note",
        }]}]),
    );
    doc.insert("subject", m.patient_ref());
    let when = instant(&text_cow(&txa.field(4).component(1)), m.ctx)
        .or_else(|| instant(&text_cow(&txa.field(6).component(1)), m.ctx));
    put(&mut doc, "date", when);
    let mut authors = practitioners(m, &txa.field(9));
    for a in practitioners(m, &txa.field(5)) {
        if !authors.contains(&a) {
            authors.push(a);
        }
    }
    put(&mut doc, "author", authors);
    let authenticator = practitioners(m, &txa.field(10))
        .into_iter()
        .next()
        .or_else(|| practitioners(m, &txa.field(22)).into_iter().next());
    put(&mut doc, "authenticator", authenticator);
    // Addenda append to, replacements replace, the document of TXA-13.
    let relation = match trigger {
        "T03" | "T04" | "T05" | "T06" => Some("appends"),
        "T09" | "T10" => Some("replaces"),
        _ => None,
    };
    if let Some(code) = relation {
        let parent_number = txa.field(13).repetition(1);
        if let Some([ns, value]) = document_key(&parent_number) {
            // The original is not in this bundle: in PUT mode its id is
            // ours to compute; in conditional mode the server chose it, so
            // the addendum names it by its identifier instead.
            let target = match m.ctx.update_mode {
                super::UpdateMode::Put => {
                    let parent = m
                        .bundle
                        .shared_rid("DocumentReference", &["document", &ns, &value]);
                    m.bundle.reference(&parent)
                }
                super::UpdateMode::Conditional => {
                    let id = entity_identifier(&parent_number, "", m.ctx).map(Value::Object);
                    json!({ "type": "DocumentReference", "identifier": id })
                }
            };
            doc.insert("relatesTo", json!([{ "code": code, "target": target }]));
        }
    }
    let mut context = Map::new();
    if let Some(e) = m.encounter.clone() {
        context.insert("encounter", json!([m.bundle.reference(&e)]));
    }
    if let Some(start) = date_time(&text_cow(&txa.field(4).component(1)), m.ctx) {
        context.insert("period", json!({ "start": start }));
    }
    put(&mut doc, "context", context);
    let content = content(m);
    // US Core (us-core-6) needs an attachment with data or a url: a
    // notification without content does not claim the profile.
    if content.iter().any(|c| {
        ["data", "url"]
            .iter()
            .any(|k| !is_empty_value(&c["attachment"][*k]))
    }) {
        doc.insert("meta", meta(US_CORE_DOCUMENT_REFERENCE));
    }
    doc.insert("content", Value::Array(content));
    m.bundle.insert(rid, doc, match_id, Write::Upsert);
    Ok(())
}

/// The document's content: ED/RP OBX as attachments, text OBX joined.
fn content(m: &Mapper<'_, '_, '_>) -> Vec<Value> {
    let msg = m.msg;
    let obxs: Vec<Segment<'_, '_>> = msg.segments_named("OBX").collect();
    let mut attachments = Vec::new();
    let mut lines = Vec::new();
    for obx in &obxs {
        if let Some(a) = obx_attachment(obx) {
            attachments.push(json!({ "attachment": a }));
            continue;
        }
        let kind = text(&obx.field(2).component(1)).to_ascii_uppercase();
        if matches!(kind.as_str(), "TX" | "ST" | "FT" | "CE" | "CWE" | "") {
            for rep in obx.field(5).repetitions() {
                lines.push(rep.text().into_owned());
            }
        }
    }
    let text_body = lines.join("\n");
    if !text_body.trim().is_empty() {
        attachments.push(json!({ "attachment": {
            "contentType": "text/plain; charset=utf-8",
            "data": base64_encode(text_body.as_bytes()),
        }}));
    }
    if attachments.is_empty() {
        // content is required: say honestly that the message carried none.
        attachments.push(json!({ "attachment": {
            "contentType": "text/plain",
            "title": "The HL7 message carried no document content",
        }}));
    }
    attachments
}
