//! HL7 v2 → FHIR R4 (US Core) transaction Bundles, and FHIR lab results →
//! ORU^R01 for the EHR. Pure: no I/O, no clocks, no randomness, no panics;
//! everything the mapping needs comes in through [`MapContext`] (or
//! [`ToHl7Context`] for the reverse) and the message itself.
//!
//! # What maps to what
//!
//! | message | resources |
//! | --- | --- |
//! | ADT (every trigger of FHIR-Converter's samples: A01–A16, A25–A29, A31, A38, A40, A41, A45, A47, A60) | Patient (PID, PD1), Encounter (PV1/PV2; status per trigger, see [`encounter`]; none for A28/A29/A31/A40/A47), RelatedPerson (NK1), Coverage (IN1/IN2), AllergyIntolerance (AL1; IAM/IAR for A60), Condition (DG1); A40/A47 merges in [`merge`] |
//! | ORU R01 | DiagnosticReport per OBR (status OBR-25), Observation per OBX, Specimen (SPM, or OBR-15), ServiceRequest per order (placer/filler), NTE → `note` |
//! | OUL R22/R23/R24 | as ORU, with OUL's grouping ([`oul`]) |
//! | ORM O01, OMG O19, OML O21 | ServiceRequest per ORC/OBR (status ORC-5/ORC-1, intent ORC-1, requester, code OBR-4, reason DG1); OMG/OML: Specimen (SPM) |
//! | RDE O11/O25, RDS O13 | MedicationRequest per order (RXE/RXO/RXR/TQ1); RDS: MedicationDispense per RXD ([`pharmacy`]) |
//! | REF I12/I14 | referral ServiceRequest (RF1) with PRD Practitioners, Conditions (DG1), Observations (OBX) ([`referral`]) |
//! | VXU V04 | Immunization per RXA (+RXR, OBX funding/eligibility) |
//! | SIU S12/S13/S14/S15/S16/S17/S26 | Appointment (status per trigger and SCH-25; timing SCH-11, TQ1, AIS/AIG/AIL/AIP), participants AIP/AIL + patient |
//! | MDM T01–T06, T09, T10 | DocumentReference (addenda `appends`, replacements `replaces` the TXA-13 original) |
//! | DFT P03/P11 | ChargeItem per FT1, Account (PID-18), Coverage (IN1) |
//! | BAR P01/P02/P12 | Account (PID-18), Procedure (PR1), Condition, Coverage; P02: Accounts inactive ([`bar`]) |
//! | PPR PC1/PC2/PC3 | problem-list Condition per PRB ([`problem`]) |
//!
//! Every Bundle also carries one Provenance ([`provenance`]; a destination
//! may turn it off with [`TranslateOptions::provenance`]).
//!
//! Every message also gives the Practitioners (XCN), Organizations (XON,
//! IN1-3/4) and Locations (PL) it names, each once.
//!
//! Module by module: [`datatypes`] (v2 data types → FHIR data types),
//! [`shared`] (Practitioner, Organization, Location), [`patient`],
//! [`encounter`], [`adt`], [`merge`], [`oru`] (with [`observation`] for OBX
//! values), [`oul`], [`orm`], [`pharmacy`], [`referral`], [`vxu`], [`siu`],
//! [`mdm`], [`dft`], [`bar`], [`problem`], [`provenance`], [`tables`] (fixed v2 table
//! maps), [`codes`] (per-tenant CSV code maps and unmapped-code counts),
//! [`systems`] (code system and identifier system URIs), [`ids`]
//! (deterministic ids), [`bundle`] (entries, requests, clean-up),
//! [`json`] (the JSON tree resources are built in), [`to_hl7`] (the
//! reverse ORU), [`bench_messages`] (the messages translation speed is
//! measured with).
//!
//! # Output
//!
//! [`translate_to_bytes`] writes the Bundle's JSON straight from that tree
//! (the bytes for the FHIR destination to send; [`translate_pretty`] is the
//! same, indented, for people); [`translate`] gives the same Bundle as a
//! `serde_json::Value` (tests, tools). All come from one mapping. The bytes
//! equal `serde_json::to_vec(&translate(..)?)` (keys sorted, as
//! `serde_json::Map` writes them) except in one respect: decimals
//! (`tests/it/exact_decimals.rs` checks it over both corpora).
//!
//! # Exact decimals
//!
//! A FHIR decimal carries its precision: a lab's `5.50` is not `5.5`. OBX-5
//! numbers (NM, SN), reference ranges (OBX-7) and quantities (RXA-6, FT1-10,
//! FT1-11, RXE/RXD amounts) are written in the bytes exactly as received,
//! never through f64, after the normalising JSON requires
//! ([`datatypes::decimal`]: `+` and leading zeros dropped, `.5` → `0.5`).
//! An exponent (`1e3`) is not an HL7 NM: such a value stays text
//! (`valueString`, a reference range's `text`). The `serde_json::Value` of
//! [`translate`] cannot hold `5.50` without serde_json's
//! `arbitrary_precision`, which would change serde_json for the whole
//! workspace: there a decimal is the nearest f64 (equal as a JSON number,
//! not always as text). Tests compare the two that way.
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
//! | Appointment | SCH-2 filler (else SCH-1 placer) appointment id |
//! | MedicationRequest | ORC-2 placer (else ORC-3 filler, RXE-15 prescription number, MSH-10 + order) |
//! | MedicationDispense | its order's key + RXD-1 |
//! | ServiceRequest (referral) | RF1-6 originating referral id (else RF1-11, else MSH-10) |
//! | Condition (problem) | PRB-4 problem instance id (else patient + PRB-3) |
//! | Procedure | patient + PR1-3 code + PR1-5 time |
//! | Provenance | MSH-3 + MSH-4 + MSH-10 (the journal's de-duplication key) |
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
//! # Who owns the Patient; what a PUT may clear
//!
//! ADT messages own demographics: their Patient entry replaces the
//! server's ([`patient::patient_write`]). Every other family writes its
//! Patient create-only (conditional mode: `POST` + `ifNoneExist`; PUT mode:
//! listed in [`Translation::create_only`] for the daemon), so a result or an
//! order never thins a Patient and never undoes a merge.
//!
//! A PUT replaces the whole resource, so an A08 that carries fewer fields
//! clears the others: every Patient element mapped from PID/PD1/NK1 (names,
//! birth date, gender, addresses, telecoms, language, marital status,
//! race/ethnicity, general practitioner, managing organization; the
//! RelatedPersons are separate resources and stay) and every Encounter
//! element mapped from PV1/PV2. Never cleared: the id and the keying
//! identifier (both come from PID-3 / PV1-19). `active` and `link` after a
//! merge are cleared too by an ADT PUT for either MRN: the daemon's merge
//! update mode (read, merge, write with `If-Match`, to come) keeps them with
//! [`merge::preserve_merge_state`].
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
//!   S13–S26 set the status per trigger; without a placeable start and end
//!   the Appointment is `proposed` ([`siu`]).
//! - **ADT A29** (delete person): the Patient with `active` = false, nothing
//!   deleted. **A41/A45** (account merge, visit move): Patient and Encounter
//!   only. **A47** (identifier change): a merge ([`merge`]).
//! - **OUL**, **BAR**, **PPR**, **REF**, pharmacy: see [`oul`], [`bar`],
//!   [`problem`], [`referral`], [`pharmacy`].
//!
//! # Known limits
//!
//! - A time without an offset is cut to its date unless
//!   [`MapContext::default_utc_offset`] is set (FHIR requires the offset).
//! - The IG's MessageHeader is not produced (the journal keeps the
//!   original message; the Provenance names it).
//! - A message with several PV1 (BAR P01, A45) maps the first visit.

pub mod adt;
pub mod bar;
pub mod bench_messages;
pub mod bundle;
pub mod codes;
pub mod datatypes;
pub mod dft;
pub mod encounter;
pub mod ids;
pub mod json;
pub mod json_write;
pub mod mdm;
pub mod merge;
pub mod observation;
pub mod orm;
pub mod oru;
pub mod oul;
pub mod patient;
pub mod pharmacy;
pub mod problem;
pub mod provenance;
pub mod referral;
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

use bundle::{BundleBuilder, Pruning};
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
        (
            "ADT",
            "A01"
                | "A02"
                | "A03"
                | "A04"
                | "A05"
                | "A06"
                | "A07"
                | "A08"
                | "A09"
                | "A10"
                | "A11"
                | "A12"
                | "A13"
                | "A14"
                | "A15"
                | "A16"
                | "A25"
                | "A26"
                | "A27"
                | "A28"
                | "A29"
                | "A31"
                | "A38"
                | "A40"
                | "A41"
                | "A45"
                | "A47"
                | "A60"
        ) | ("ORU", "R01")
            | ("ORM", "O01")
            | ("OMG", "O19")
            | ("OML", "O21")
            | ("OUL", "R22" | "R23" | "R24")
            | ("RDE", "O11" | "O25")
            | ("RDS", "O13")
            | ("REF", "I12" | "I14")
            | ("VXU", "V04")
            | ("SIU", "S12" | "S13" | "S14" | "S15" | "S16" | "S17" | "S26")
            | (
                "MDM",
                "T01" | "T02" | "T03" | "T04" | "T05" | "T06" | "T09" | "T10"
            )
            | ("DFT", "P03" | "P11")
            | ("BAR", "P01" | "P02" | "P12")
            | ("PPR", "PC1" | "PC2" | "PC3")
    )
}

/// Per-destination and per-message inputs of a translation besides the
/// message and the [`MapContext`].
#[derive(Debug, Clone, Copy)]
pub struct TranslateOptions<'o> {
    /// One Provenance per Bundle (see [`provenance`]). On by default; a
    /// destination may turn it off.
    pub provenance: bool,
    /// The journal's id of the message (a Provenance entity).
    pub journal_id: Option<&'o str>,
    /// The journal's received time, an `instant` (`2024-03-12T09:30:00Z`):
    /// Provenance.recorded. `None`: MSH-7, when it is an instant.
    pub received: Option<&'o str>,
}

impl Default for TranslateOptions<'_> {
    fn default() -> Self {
        TranslateOptions {
            provenance: true,
            journal_id: None,
            received: None,
        }
    }
}

/// What [`translate_with`] gives the daemon: the bytes to send and what the
/// delivery needs to know about them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translation {
    /// The Bundle, as [`translate_to_bytes`] writes it.
    pub bytes: Vec<u8>,
    /// `Type/id` of the entries to write only if absent (shared reference
    /// data, and the Patient of non-ADT messages: see [`merge`]). Conditional
    /// mode already writes them as `POST` + `ifNoneExist`; in PUT mode R4 has
    /// no create-if-absent for a client-chosen id, so a destination that
    /// must not overwrite them reads first.
    pub create_only: Vec<String>,
    /// Every patient the message touches, the subject first (an A40 names
    /// both): the patient lanes it belongs on ([`merge::patient_keys`]).
    pub patient_keys: Vec<merge::PatientKey>,
}

/// One HL7 v2 message → one FHIR R4 transaction Bundle (identifier MSH-10),
/// as a `serde_json::Value` (tests, tools); decimals are the nearest f64
/// here (see the crate doc): what is sent is [`translate_to_bytes`].
pub fn translate(msg: &Message<'_>, ctx: &MapContext) -> Result<serde_json::Value, MapError> {
    Ok(bundle_tree(
        msg,
        ctx,
        &TranslateOptions::default(),
        false,
        Pruning::InTree,
    )?
    .0
    .into_serde())
}

/// The same Bundle as [`translate`], written straight to JSON bytes (for
/// the FHIR destination to send): no `serde_json::Value` in between. The bytes
/// are those of `serde_json::to_vec(&translate(..)?)`, decimals aside
/// (exact here). Default [`TranslateOptions`].
pub fn translate_to_bytes(msg: &Message<'_>, ctx: &MapContext) -> Result<Vec<u8>, MapError> {
    let (bundle, _) = bundle_tree(
        msg,
        ctx,
        &TranslateOptions::default(),
        false,
        Pruning::WhenWritten,
    )?;
    Ok(bundle_bytes(&bundle))
}

/// The JSON bytes of a Bundle finished with [`Pruning::WhenWritten`].
fn bundle_bytes(bundle: &json::Value) -> Vec<u8> {
    let entries = bundle.get("entry").and_then(json::Value::as_array);
    // About 1.2 KB per entry (ORU^R01: 21.3 KB for 18): one allocation for
    // most Bundles, no regrow-and-copy of a 20 KB buffer.
    let mut out = Vec::with_capacity(512 + 1280 * entries.map_or(0, Vec::len));
    json_write::write_bundle(bundle, &mut out);
    out
}

/// [`translate_to_bytes`] with the destination's and the journal's inputs.
pub fn translate_with(
    msg: &Message<'_>,
    ctx: &MapContext,
    options: &TranslateOptions<'_>,
) -> Result<Translation, MapError> {
    let (bundle, create_only) = bundle_tree(msg, ctx, options, true, Pruning::WhenWritten)?;
    Ok(Translation {
        bytes: bundle_bytes(&bundle),
        create_only,
        patient_keys: merge::patient_keys(msg),
    })
}

/// [`translate_to_bytes`], indented (for `gateway translate`): exact
/// decimals, unlike pretty-printing [`translate`]'s `serde_json::Value`.
pub fn translate_pretty(msg: &Message<'_>, ctx: &MapContext) -> Result<Vec<u8>, MapError> {
    let (bundle, _) = bundle_tree(
        msg,
        ctx,
        &TranslateOptions::default(),
        false,
        Pruning::InTree,
    )?;
    serde_json::to_vec_pretty(&bundle)
        .map_err(|e| MapError::new("Bundle", format!("cannot be written as JSON: {e}")))
}

/// The Bundle as the tree the mappers build, and (when `create_only`) its
/// create-only entries.
fn bundle_tree(
    msg: &Message<'_>,
    ctx: &MapContext,
    options: &TranslateOptions<'_>,
    create_only: bool,
    pruning: bundle::Pruning,
) -> Result<(json::Value, Vec<String>), MapError> {
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
        "ORM" | "OMG" | "OML" => orm::map(&mut m)?,
        "OUL" => oul::map(&mut m)?,
        "RDE" | "RDS" => pharmacy::map(&mut m)?,
        "REF" => referral::map(&mut m, &trigger)?,
        "BAR" => bar::map(&mut m, &trigger)?,
        "PPR" => problem::map(&mut m, &trigger)?,
        "VXU" => vxu::map(&mut m)?,
        "SIU" => siu::map(&mut m, &trigger)?,
        "MDM" => mdm::map(&mut m, &trigger)?,
        "DFT" => dft::map(&mut m)?,
        _ => {}
    }
    if options.provenance {
        m.add_provenance(&trigger, options);
    }
    let create_only = if create_only {
        m.bundle.create_only_urls()
    } else {
        Vec::new()
    };
    Ok((m.finish(pruning), create_only))
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
    /// MSH-9.1, upper case ("ADT", "ORU", ...).
    pub msg_type: String,
    pub ctx: &'x MapContext,
    pub bundle: BundleBuilder<'x>,
    pub patient: Option<Rid>,
    pub encounter: Option<Rid>,
}

impl<'x, 'm, 'a> Mapper<'x, 'm, 'a> {
    pub fn new(msg: &'m Message<'a>, ctx: &'x MapContext) -> Mapper<'x, 'm, 'a> {
        let msg_type = datatypes::text(&msg.msh().field(9).component(1)).to_ascii_uppercase();
        Mapper {
            msg,
            msg_type,
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

    /// The Provenance of the Bundle, when there is a `recorded` time.
    fn add_provenance(&mut self, trigger: &str, options: &TranslateOptions<'_>) {
        let msh = self.msg.msh();
        let recorded = match options.received {
            Some(r) => Some(r.to_string()),
            None => datatypes::instant(&datatypes::text(&msh.field(7).component(1)), self.ctx),
        };
        let Some(recorded) = recorded else {
            return;
        };
        let application = datatypes::text(&msh.field(3).component(1));
        let facility = datatypes::text(&msh.field(4).component(1));
        let control_id = self.control_id();
        // Keyed like the journal's de-duplication: sender and MSH-10.
        let key = [application.clone(), facility.clone(), control_id.clone()];
        let source = provenance::ProvenanceSource {
            recorded,
            application,
            facility,
            control_id,
            trigger: datatypes::fhir_code(trigger),
            journal_id: options.journal_id.map(str::to_string),
        };
        let key: [&str; 3] = [&key[0], &key[1], &key[2]];
        self.bundle.add_provenance(&key, source);
    }

    fn finish(self, pruning: bundle::Pruning) -> Value {
        let control_id = datatypes::text(&self.msg.msh().field(10).component(1));
        let timestamp = datatypes::instant(
            &datatypes::text(&self.msg.msh().field(7).component(1)),
            self.ctx,
        );
        self.bundle.finish_pruning(&control_id, timestamp, pruning)
    }
}
