//! Patient merges: ADT A40 (merge patient, MRG-1 into PID-3) and A47
//! (change patient identifier: the identifier MRG-1 becomes PID-3, which,
//! with ids made from the MRN, is a merge of the old Patient into a new
//! one). After the IG's ADT_A40 map (MRG → the merged Patient):
//!
//! - the survivor (PID) is written in full, with `active` = true and a
//!   `link` of type `replaces` to each non-surviving Patient;
//! - each non-surviving Patient (MRG-1, keyed like any Patient: its `MR`
//!   identifier and authority) is written with its MRG-1 identifiers, the
//!   MRG-7 prior name when sent, `active` = false and a `link` of type
//!   `replaced-by` to the survivor (R4's pat-... rule: a replaced Patient
//!   names its replacement). Both are PUTs of deterministic ids: an A40
//!   sent twice writes the same two resources, changing nothing.
//! - Every PID/MRG pair of the message is one merge (A40 may carry many).
//!
//! **The merged Patient's other resources** (Encounters, Observations,
//! Conditions ...) are not rewritten: the gateway does not know them (it
//! keeps no copy of the server) and a FHIR server has no standard bulk
//! re-point. They keep pointing at the non-surviving Patient, which now
//! says `replaced-by` the survivor, and a reader follows that link (R4's
//! Patient.link semantics). Messages after the merge use the survivor.
//!
//! **Order and later messages.** An A40 touches two patients:
//! [`patient_keys`] gives every PID-3 and MRG-1 key of a message, so that
//! the router can put a merge on both lanes and deliver it only after the
//! earlier messages of each (daemon side). A later message for either MRN
//! must not clear `active` or `link`:
//!
//! - results, orders, schedules, documents and the other non-ADT families
//!   write their Patient create-only ([`super::patient::patient_write`]): in
//!   conditional mode `POST` + `ifNoneExist`, which never touches an
//!   existing Patient; in PUT mode R4 has no create-if-absent for a
//!   client-chosen id, so [`super::Translation::create_only`] lists those
//!   entries for the daemon (read first, write only if absent);
//! - an ADT for either MRN replaces the Patient (PUT of the whole resource)
//!   and would drop what the message does not carry: the daemon's merge
//!   update mode keeps the server's merge state with
//!   [`preserve_merge_state`] (links kept, a replaced Patient stays
//!   inactive).

use super::json::{json, Map, Value};

use super::bundle::Write;
use super::datatypes::{human_name, identifier, identifier_pair, put};
use super::patient::{key_identifier, map_patient_segment, patient_key};
use super::{MapError, Mapper};
use hl7::{Message, Segment};

pub fn map(m: &mut Mapper<'_, '_, '_>, trigger: &str) -> Result<(), MapError> {
    let msg = m.msg;
    let segments: Vec<Segment<'_, '_>> = msg.segments().collect();
    let mut merges = 0;
    let mut pid: Option<Segment<'_, '_>> = None;
    let mut first_survivor = None;
    for seg in &segments {
        match seg.id() {
            "PID" => pid = Some(*seg),
            "MRG" => {
                let Some(p) = pid else {
                    return Err(MapError::new(
                        "MRG",
                        "comes before any PID: whose merge is it?",
                    ));
                };
                merges += 1;
                let survivor = map_patient_segment(m, &p, Write::Upsert)?;
                first_survivor.get_or_insert_with(|| survivor.clone());
                merge_into(m, &survivor, seg, merges, trigger)?;
            }
            _ => {}
        }
    }
    if merges == 0 {
        return Err(MapError::new(
            "MRG",
            "is missing: a merge must name the patient merged away",
        ));
    }
    m.patient = first_survivor;
    Ok(())
}

/// The non-surviving Patient of one MRG, and the links both ways.
fn merge_into(
    m: &mut Mapper<'_, '_, '_>,
    survivor: &super::Rid,
    mrg: &Segment<'_, '_>,
    number: usize,
    trigger: &str,
) -> Result<(), MapError> {
    let mrg1 = mrg.field(1);
    let Some(key_rep) = key_identifier(&mrg1) else {
        return Err(MapError::new(
            format!("MRG({number})-1"),
            "is empty: cannot identify the patient merged away",
        ));
    };
    let (authority, value) = patient_key(&key_rep);
    let old = m.bundle.shared_rid("Patient", &[&authority, &value]);
    if old == *survivor {
        return Err(MapError::new(
            format!("MRG({number})-1"),
            format!("names the patient of PID-3 ({trigger} of a patient into itself)"),
        ));
    }
    let identifiers: Vec<Value> = mrg1
        .repetitions()
        .filter_map(|r| identifier(&r, m.ctx))
        .map(Value::Object)
        .collect();
    let match_id = identifier(&key_rep, m.ctx)
        .as_ref()
        .and_then(identifier_pair);
    let mut patient = Map::new();
    put(&mut patient, "identifier", identifiers);
    patient.insert("active", Value::Bool(false));
    let names: Vec<Value> = mrg
        .field(7)
        .repetitions()
        .filter_map(|r| human_name(&r))
        .collect();
    put(&mut patient, "name", names);
    patient.insert(
        "link",
        json!([{ "other": m.bundle.reference(survivor), "type": "replaced-by" }]),
    );
    m.bundle
        .insert(old.clone(), patient, match_id, Write::Upsert);
    let replaces = json!({ "other": m.bundle.reference(&old), "type": "replaces" });
    if let Some(p) = m.bundle.resource_mut(survivor) {
        p.insert("active", Value::Bool(true));
        match p.get_mut("link") {
            Some(Value::Array(links)) => links.push(replaces),
            _ => {
                p.insert("link", Value::Array(vec![replaces]));
            }
        }
    }
    Ok(())
}

/// A patient a message is about: assigning authority and identifier of
/// the keying CX (what the Patient id is made from).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PatientKey {
    pub authority: String,
    pub value: String,
}

/// Every patient a message touches, the subject first: each PID-3 key, and
/// each MRG-1 key (a merge's non-surviving patient). The router puts a
/// message on the lane of each, so that an A40 is delivered only after the
/// earlier messages of both patients.
pub fn patient_keys(msg: &Message<'_>) -> Vec<PatientKey> {
    let mut keys: Vec<PatientKey> = Vec::new();
    for seg in msg.segments() {
        let field = match seg.id() {
            "PID" => seg.field(3),
            "MRG" => seg.field(1),
            _ => continue,
        };
        if let Some(cx) = key_identifier(&field) {
            let (authority, value) = patient_key(&cx);
            let key = PatientKey { authority, value };
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    keys
}

/// The update rule that keeps a merge: `incoming` is a Patient a later
/// message writes in full, `server` the Patient the server has. The result
/// is `incoming` with the server's `link`s added (none dropped, none
/// twice) and, when the server's Patient is `replaced-by` another, `active`
/// = false. For the daemon's read-merge-write update mode; pure.
pub fn preserve_merge_state(
    server: &serde_json::Value,
    incoming: &serde_json::Value,
) -> serde_json::Value {
    let mut out = incoming.clone();
    let Some(obj) = out.as_object_mut() else {
        return out;
    };
    let server_links = server["link"].as_array().cloned().unwrap_or_default();
    let mut links = obj
        .get("link")
        .and_then(serde_json::Value::as_array)
        .cloned()
        .unwrap_or_default();
    for l in server_links {
        if !links.contains(&l) {
            links.push(l);
        }
    }
    let replaced = links.iter().any(|l| l["type"] == "replaced-by");
    if !links.is_empty() {
        obj.insert("link".into(), serde_json::Value::Array(links));
    }
    if replaced {
        obj.insert("active".into(), serde_json::Value::Bool(false));
    }
    out
}
