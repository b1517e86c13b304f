//! HL7 v2 → FHIR R4 (US Core) transaction Bundles, and FHIR lab results →
//! ORU^R01 for the EHR. Pure: no I/O, no clocks, no randomness, no panics;
//! everything the mapping needs comes in through [`MapContext`] (or
//! [`ToHl7Context`] for the reverse) and the message itself.
//!
//! # What maps to what
//!
//! | message | resources |
//! | --- | --- |
//! | ADT A01/A04/A03/A08/A31 | Patient (PID, PD1), Encounter (PV1/PV2; not for A31), RelatedPerson (NK1), Coverage (IN1/IN2), AllergyIntolerance (AL1), Condition (DG1) |
//! | ORU R01 | DiagnosticReport per OBR (status OBR-25), Observation per OBX, Specimen (SPM, or OBR-15), ServiceRequest per order (placer/filler), NTE → `note` |
//! | ORM O01 | ServiceRequest per ORC/OBR (status ORC-5/ORC-1, intent ORC-1, requester, code OBR-4, reason DG1) |
//! | VXU V04 | Immunization per RXA (+RXR, OBX funding/eligibility) |
//! | SIU S12/S14/S15 | Appointment (booked/booked/cancelled), participants AIP/AIL/AIS/AIG + patient |
//! | MDM T02/T04 | DocumentReference (T04 `relatesTo` the original via TXA-13) |
//! | DFT P03 | ChargeItem per FT1, Account (PID-18), Coverage (IN1) |
//!
//! Every message also gives the Practitioners (XCN), Organizations (XON,
//! IN1-3/4) and Locations (PL) it names, each once.
//!
//! Module by module: [`datatypes`] (v2 data types → FHIR data types),
//! [`shared`] (Practitioner, Organization, Location), [`patient`],
//! [`encounter`], [`adt`], [`oru`] (with [`observation`] for OBX values),
//! [`orm`], [`vxu`], [`siu`], [`mdm`], [`dft`], [`tables`] (fixed v2 table
//! maps), [`codes`] (per-tenant CSV code maps and unmapped-code counts),
//! [`systems`] (code system and identifier system URIs), [`ids`]
//! (deterministic ids), [`bundle`] (entries, requests, clean-up),
//! [`json`] (the JSON tree resources are built in), [`to_hl7`] (the
//! reverse ORU).
//!
//! # Output
//!
//! [`translate_to_bytes`] writes the Bundle's JSON straight from that tree
//! (the bytes for the FHIR destination to send); [`translate`] gives the same Bundle
//! as a `serde_json::Value` (`gateway translate`, tests). Both come from
//! one mapping, and the bytes equal `serde_json::to_vec(&translate(..)?)`
//! (keys sorted, as `serde_json::Map` writes them): `tests/it/bytes.rs`
//! checks it over both corpora.
//!
//! # Identity: replay never duplicates
//!
//! Each resource id is [`ids::resource_id`]`(tenant, type, business key)`:
//! SHA-256, 32 hex digits. Keys, never whole segment text:
//!
//! | resource | key |
//! | --- | --- |
//! | Patient | PID-3 (first repetition with a value; an `MR` one preferred): value + assigning authority |
//! | Encounter | PV1-19 visit number + authority; else patient + PV1-44 admit time; else patient + MSH-10 |
//! | DiagnosticReport | the order: OBR-3 filler (else OBR-2 placer, ORC-3, ORC-2; else MSH-10 + OBR-1) |
//! | Observation | order + OBX-3 code + OBX-4 sub-id (a repeat in one message gets its occurrence number) |
//! | ServiceRequest | ORC-2/OBR-2 placer number (else ORC-3/OBR-3 filler) + namespace |
//! | Specimen | SPM-2 (else order + "specimen" + SPM-1 / OBR-15) |
//! | Immunization | patient + RXA-3 date + RXA-5 vaccine code (ORC-3 filler when sent) |
//! | Appointment | SCH-1 placer / SCH-2 filler appointment id |
//! | DocumentReference | TXA-12 unique document number (else TXA-16 filler order, else MSH-10) |
//! | ChargeItem | FT1-2 transaction id; else FT1-1 set id + visit (PV1-19) + FT1-4 date |
//! | Account | PID-18 account number |
//! | Coverage | IN1-3 plan/company id + IN1-2 plan + IN1-36 policy number + patient |
//! | Practitioner | XCN-1 + XCN-9 authority; else the name |
//! | Organization / Location | the id (XON-10) or the name parts |
//!
//! An OBX-11 = C correction therefore updates the Observation the first
//! result created, and an A08 updates the Patient its A04 created. Entries
//! are `PUT Type/id` ([`UpdateMode::Put`]); [`UpdateMode::Conditional`]
//! writes `PUT Type?identifier=system|value` (and `POST` + `ifNoneExist` for
//! shared reference data) for servers that refuse client-chosen ids, with
//! `urn:uuid:` references the server resolves inside the transaction.
//!
//! # Choices where the V2-to-FHIR IG has no map
//!
//! - **ADT A03** (discharge): as A01, with Encounter.status `finished` and
//!   period.end from PV1-45 (else EVN-2, the event time).
//! - **ADT A08/A31**: A08 maps Encounter.status from PV1 (PV1-45 → finished,
//!   PV1-44 → in-progress, else unknown); A31 (person update) has no visit
//!   and makes no Encounter.
//! - **DFT P03**: one ChargeItem per FT1 (code FT1-25, else FT1-7; CPT
//!   modifiers FT1-26 in an extension, as R4 ChargeItem has no modifier
//!   element), an Account from PID-18 naming the Coverages (IN1), and the
//!   DG1 Conditions linked from each ChargeItem whose FT1-19 names their
//!   code. Details in [`dft`].
//! - **SIU**: the Appointment only; a PV1 in an SIU makes no Encounter.
//!
//! # Known limits
//!
//! - Decimal values go through `f64`: "5.50" is written 5.5 (significant
//!   trailing zeros are lost; serde_json without `arbitrary_precision`).
//! - A time without an offset is cut to its date unless
//!   [`MapContext::default_utc_offset`] is set (FHIR requires the offset).
//! - The IG's Provenance and MessageHeader resources are not produced: the
//!   journal keeps the original message.

pub mod adt;
pub mod bundle;
pub mod codes;
pub mod datatypes;
pub mod dft;
pub mod encounter;
pub mod ids;
pub mod json;
pub mod mdm;
pub mod observation;
pub mod orm;
pub mod oru;
pub mod patient;
pub mod shared;
pub mod siu;
pub mod systems;
pub mod tables;
pub mod to_hl7;
pub mod vxu;

use std::sync::Arc;

pub use bundle::Rid;
pub use codes::{CodeMapError, CodeMaps, MappedCode, UnmappedCodes};
pub use systems::IdentifierSystems;
pub use to_hl7::{results_to_oru, ToHl7Context};

use bundle::BundleBuilder;
use hl7::Message;
use json::Value;

/// How entries are written to the FHIR server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpdateMode {
    /// `PUT Type/id` with our deterministic ids.
    #[default]
    Put,
    /// `PUT Type?identifier=system|value` (and `POST` + `ifNoneExist` for
    /// create-only resources): the server chooses ids.
    Conditional,
}

/// Everything a translation needs besides the message. Cheap to clone
/// (the maps are shared): the lead swaps `code_maps` on reload.
#[derive(Debug, Clone)]
pub struct MapContext {
    /// Part of every id and of tenant-local URIs.
    pub tenant: String,
    /// Assigning authority → identifier system URI.
    pub identifier_systems: IdentifierSystems,
    pub code_maps: Arc<CodeMaps>,
    pub update_mode: UpdateMode,
    /// Where local codes without a mapping are counted.
    pub unmapped: Arc<UnmappedCodes>,
    /// `+hh:mm` offset assumed for times sent without one; `None` cuts such
    /// times to their date.
    pub default_utc_offset: Option<String>,
}

impl MapContext {
    pub fn new(tenant: &str) -> MapContext {
        MapContext {
            tenant: tenant.to_string(),
            identifier_systems: IdentifierSystems::default(),
            code_maps: Arc::new(CodeMaps::default()),
            update_mode: UpdateMode::Put,
            unmapped: Arc::new(UnmappedCodes::default()),
            default_utc_offset: None,
        }
    }
}

impl Default for MapContext {
    fn default() -> MapContext {
        MapContext::new("default")
    }
}

/// Why a message could not be mapped: where (segment and field) and why.
/// Never carries values from the message (they may be PHI).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location} {reason}")]
pub struct MapError {
    /// "PID-3", "OBR(2)-4", "MSH-9" ...
    pub location: String,
    pub reason: String,
}

impl MapError {
    pub fn new(location: impl Into<String>, reason: impl Into<String>) -> MapError {
        MapError {
            location: location.into(),
            reason: reason.into(),
        }
    }
}

/// The message types and triggers [`translate`] maps.
pub fn supported(msg_type: &str, trigger: &str) -> bool {
    matches!(
        (msg_type, trigger),
        ("ADT", "A01" | "A03" | "A04" | "A08" | "A31")
            | ("ORU", "R01")
            | ("ORM", "O01")
            | ("VXU", "V04")
            | ("SIU", "S12" | "S14" | "S15")
            | ("MDM", "T02" | "T04")
            | ("DFT", "P03")
    )
}

/// One HL7 v2 message → one FHIR R4 transaction Bundle (identifier MSH-10),
/// as a `serde_json::Value` (for `gateway translate` and tests).
pub fn translate(msg: &Message<'_>, ctx: &MapContext) -> Result<serde_json::Value, MapError> {
    Ok(bundle_tree(msg, ctx)?.into_serde())
}

/// The same Bundle as [`translate`], written straight to JSON bytes (for
/// the FHIR destination to send): no `serde_json::Value` in between. The bytes
/// are those of `serde_json::to_vec(&translate(..)?)`.
pub fn translate_to_bytes(msg: &Message<'_>, ctx: &MapContext) -> Result<Vec<u8>, MapError> {
    let bundle = bundle_tree(msg, ctx)?;
    let entries = bundle.get("entry").and_then(json::Value::as_array);
    // About 1 KB per entry: one allocation for most Bundles.
    let mut out = Vec::with_capacity(512 + 1024 * entries.map_or(0, Vec::len));
    serde_json::to_writer(&mut out, &bundle)
        .map_err(|e| MapError::new("Bundle", format!("cannot be written as JSON: {e}")))?;
    Ok(out)
}

/// The Bundle as the tree the mappers build.
fn bundle_tree(msg: &Message<'_>, ctx: &MapContext) -> Result<json::Value, MapError> {
    let msh = msg.msh();
    let msh9 = msh.field(9);
    let code = datatypes::text(&msh9.component(1)).to_ascii_uppercase();
    let mut trigger = datatypes::text(&msh9.component(2)).to_ascii_uppercase();
    if trigger.is_empty() {
        // v2.3 senders sometimes leave MSH-9.2 empty and put it in EVN-1.
        if let Some(evn) = msg.segment("EVN") {
            trigger = datatypes::text(&evn.field(1).component(1)).to_ascii_uppercase();
        }
    }
    if !supported(&code, &trigger) {
        return Err(MapError::new(
            "MSH-9",
            format!(
                "is {}^{}: not a message type the fhir transform maps",
                show_code(&code),
                show_code(&trigger)
            ),
        ));
    }
    let mut m = Mapper::new(msg, ctx);
    match code.as_str() {
        "ADT" => adt::map(&mut m, &trigger)?,
        "ORU" => oru::map(&mut m)?,
        "ORM" => orm::map(&mut m)?,
        "VXU" => vxu::map(&mut m)?,
        "SIU" => siu::map(&mut m, &trigger)?,
        "MDM" => mdm::map(&mut m, &trigger)?,
        "DFT" => dft::map(&mut m)?,
        _ => {}
    }
    Ok(m.finish())
}

/// A message type or trigger shown in an error: short, printable ASCII.
fn show_code(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(8)
        .collect()
}

/// The state of one translation: the message, the context, the bundle
/// being built and the resources later segments refer to.
pub struct Mapper<'x, 'm, 'a> {
    pub msg: &'m Message<'a>,
    pub ctx: &'x MapContext,
    pub bundle: BundleBuilder<'x>,
    pub patient: Option<Rid>,
    pub encounter: Option<Rid>,
}

impl<'x, 'm, 'a> Mapper<'x, 'm, 'a> {
    pub fn new(msg: &'m Message<'a>, ctx: &'x MapContext) -> Mapper<'x, 'm, 'a> {
        Mapper {
            msg,
            ctx,
            bundle: BundleBuilder::new(&ctx.tenant, ctx.update_mode),
            patient: None,
            encounter: None,
        }
    }

    /// MSH-10.
    pub fn control_id(&self) -> String {
        datatypes::text(&self.msg.msh().field(10).component(1))
    }

    /// A Reference to the patient, when there is one.
    pub fn patient_ref(&self) -> Value {
        self.patient
            .as_ref()
            .map_or(Value::Null, |p| self.bundle.reference(p))
    }

    pub fn encounter_ref(&self) -> Value {
        self.encounter
            .as_ref()
            .map_or(Value::Null, |e| self.bundle.reference(e))
    }

    /// Maps PID (required) and PD1/NK1; sets `self.patient`.
    pub fn require_patient(&mut self) -> Result<Rid, MapError> {
        let rid = patient::map_patient(self)?;
        self.patient = Some(rid.clone());
        Ok(rid)
    }

    fn finish(self) -> Value {
        let control_id = datatypes::text(&self.msg.msh().field(10).component(1));
        let timestamp = datatypes::instant(
            &datatypes::text(&self.msg.msh().field(7).component(1)),
            self.ctx,
        );
        self.bundle.finish(&control_id, timestamp)
    }
}
