//! FHIR lab results → ORU^R01 v2.5.1 for eCW's inbound interface.
//!
//! Input: a Bundle (transaction, collection or searchset) holding
//! DiagnosticReports and the Observations, Patient and ServiceRequests
//! they reference, or a bare DiagnosticReport with contained resources.
//! References resolve by `Type/id` (relative or absolute), by `urn:uuid:`
//! fullUrl, or to contained resources (`#id`).
//!
//! Output, eCW's conventions:
//! - `PID-3` is the MRN: the Patient identifier typed `MR`, else the first;
//! - per report: `ORC|RE`, `OBR-2` placer / `OBR-3` filler order numbers
//!   (identifiers typed PLAC/FILL on the report or its ServiceRequest),
//!   `OBR-4` code, `OBR-7` effective, `OBR-22` issued, `OBR-25` status;
//!   the report's conclusion as an NTE;
//! - an `OBX` per result whose value type follows value[x]: Quantity → NM
//!   (SN when it has a comparator), string → ST (TX when long or
//!   multi-line), CodeableConcept → CWE, dateTime → DTM, Range/Ratio → SN,
//!   integer → NM, boolean → ST; OBX-6 units (UCUM), OBX-7 range, OBX-8
//!   interpretation, OBX-11 status, OBX-14 effective; notes as NTEs.
//!
//! Pure: MSH-7 and MSH-10 come from [`ToHl7Context`].

use std::collections::HashMap;

use serde_json::Value;

use super::MapError;
use hl7::{EncodingChars, OwnedField, OwnedMessage, OwnedSegment, Terminator};

/// What the caller decides for the outbound header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToHl7Context {
    pub sending_application: String,
    pub sending_facility: String,
    pub receiving_application: String,
    pub receiving_facility: String,
    /// MSH-10.
    pub control_id: String,
    /// MSH-7, an HL7 TS such as `20240102030405-0500`.
    pub timestamp: String,
    /// MSH-11: `P` (production), `T` (test), `D` (debug).
    pub processing_id: String,
}

impl Default for ToHl7Context {
    fn default() -> ToHl7Context {
        ToHl7Context {
            sending_application: "CLINIC-GATEWAY".into(),
            sending_facility: String::new(),
            receiving_application: "ECW".into(),
            receiving_facility: String::new(),
            control_id: "1".into(),
            timestamp: "19700101000000+0000".into(),
            processing_id: "P".into(),
        }
    }
}

/// The resources of the input, findable by reference.
struct Resources<'v> {
    all: Vec<&'v Value>,
    by_type_id: HashMap<(String, String), &'v Value>,
    by_full_url: HashMap<String, &'v Value>,
}

impl<'v> Resources<'v> {
    fn new(input: &'v Value) -> Resources<'v> {
        let mut r = Resources {
            all: Vec::new(),
            by_type_id: HashMap::new(),
            by_full_url: HashMap::new(),
        };
        if input.get("resourceType").and_then(Value::as_str) == Some("Bundle") {
            for entry in input
                .get("entry")
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice)
            {
                if let Some(res) = entry.get("resource") {
                    r.add(res);
                    if let Some(url) = entry.get("fullUrl").and_then(Value::as_str) {
                        r.by_full_url.insert(url.to_string(), res);
                    }
                }
            }
        } else {
            r.add(input);
        }
        r
    }

    fn add(&mut self, res: &'v Value) {
        let rtype = res
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or("");
        if let Some(id) = res.get("id").and_then(Value::as_str) {
            self.by_type_id
                .insert((rtype.to_string(), id.to_string()), res);
        }
        self.all.push(res);
    }

    /// Resolves a Reference from `from` (whose contained resources count).
    fn resolve(&self, from: &'v Value, reference: &Value) -> Option<&'v Value> {
        let r = reference.get("reference")?.as_str()?;
        if let Some(local) = r.strip_prefix('#') {
            return from
                .get("contained")?
                .as_array()?
                .iter()
                .find(|c| c.get("id").and_then(Value::as_str) == Some(local));
        }
        if let Some(res) = self.by_full_url.get(r) {
            return Some(res);
        }
        // Type/id, possibly absolute and possibly with _history/n.
        let path = r.split("/_history/").next().unwrap_or(r);
        let mut parts = path.rsplit('/');
        let id = parts.next()?;
        let rtype = parts.next()?;
        self.by_type_id
            .get(&(rtype.to_string(), id.to_string()))
            .copied()
    }
}

fn s<'v>(v: &'v Value, key: &str) -> &'v str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn arr<'v>(v: &'v Value, key: &str) -> &'v [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
}

/// One field from component texts (trailing empty components dropped).
fn comps(parts: &[&str]) -> OwnedField {
    let mut rep: Vec<Vec<String>> = parts.iter().map(|p| vec![p.to_string()]).collect();
    while rep.last().is_some_and(|c| c.iter().all(String::is_empty)) {
        rep.pop();
    }
    if rep.is_empty() {
        Vec::new()
    } else {
        vec![rep]
    }
}

fn set(seg: &mut OwnedSegment, n: usize, field: OwnedField) {
    if let Some(i) = n.checked_sub(1) {
        if seg.fields.len() <= i {
            seg.fields.resize(i + 1, Vec::new());
        }
        if let Some(f) = seg.fields.get_mut(i) {
            *f = field;
        }
    }
}

/// FHIR date/dateTime/instant → HL7 DTM (`YYYYMMDDHHMMSS.s+ZZZZ`).
pub fn hl7_timestamp(fhir: &str) -> String {
    let (date_part, time_part) = match fhir.split_once('T') {
        Some((d, t)) => (d, t),
        None => (fhir, ""),
    };
    let mut out: String = date_part.chars().filter(char::is_ascii_digit).collect();
    if time_part.is_empty() {
        return out;
    }
    let (clock, offset) = match time_part.find(['+', '-', 'Z']) {
        Some(i) => (
            time_part.get(..i).unwrap_or(""),
            time_part.get(i..).unwrap_or(""),
        ),
        None => (time_part, ""),
    };
    let (hms, fraction) = match clock.split_once('.') {
        Some((h, f)) => (h, f),
        None => (clock, ""),
    };
    out.extend(hms.chars().filter(char::is_ascii_digit));
    if !fraction.is_empty() {
        out.push('.');
        out.extend(fraction.chars().take(4));
    }
    match offset {
        "Z" => out.push_str("+0000"),
        "" => {}
        o => out.extend(o.chars().filter(|c| *c != ':')),
    }
    out
}

/// A code system URI → the v2 name eCW expects in CWE-3.
fn system_name(uri: &str) -> String {
    match uri {
        "http://loinc.org" => "LN".into(),
        "http://snomed.info/sct" => "SCT".into(),
        "http://unitsofmeasure.org" => "UCUM".into(),
        "http://hl7.org/fhir/sid/icd-10-cm" => "I10".into(),
        "http://www.ama-assn.org/go/cpt" => "C4".into(),
        "http://hl7.org/fhir/sid/cvx" => "CVX".into(),
        "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation" => "HL70078".into(),
        u => match u.rsplit_once(":cs:") {
            // Our tenant-local systems carry the sender's own name.
            Some((_, name)) if u.starts_with(super::systems::GATEWAY_URN) => name.into(),
            _ => match u.strip_prefix("http://terminology.hl7.org/CodeSystem/v2-") {
                Some(table) => format!("HL7{table}"),
                None => "L".into(),
            },
        },
    }
}

/// CodeableConcept → CWE components: code ^ text ^ system (first coding)
/// ^ alternate code ^ text ^ system (second coding) ^^^ original text.
fn cwe(cc: &Value) -> OwnedField {
    let codings = arr(cc, "coding");
    let first = codings.first();
    let second = codings.get(1);
    let name = |c: Option<&Value>| c.map(|c| system_name(s(c, "system"))).unwrap_or_default();
    let code = |c: Option<&Value>| c.map(|c| s(c, "code").to_string()).unwrap_or_default();
    let display = |c: Option<&Value>| c.map(|c| s(c, "display").to_string()).unwrap_or_default();
    let (c1, d1, n1) = (code(first), display(first), name(first));
    let (c2, d2, n2) = (code(second), display(second), name(second));
    let text = s(cc, "text");
    let d1 = if d1.is_empty() { text.to_string() } else { d1 };
    comps(&[&c1, &d1, &n1, &c2, &d2, &n2, "", "", text])
}

/// CodeableConcept → CE (v2.5.1 OBR-4, OBX-3: six components, no
/// original text).
fn ce(cc: &Value) -> OwnedField {
    let mut field = cwe(cc);
    for rep in &mut field {
        rep.truncate(6);
    }
    field
}

fn number(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => String::new(),
    }
}

/// The (type, OBX-5, OBX-6) of an Observation's value[x].
fn obx_value(obs: &Value) -> (&'static str, OwnedField, OwnedField) {
    let units = |q: &Value| -> OwnedField {
        let unit = s(q, "unit");
        let code = s(q, "code");
        if s(q, "system") == "http://unitsofmeasure.org" && !code.is_empty() {
            comps(&[code, unit, "UCUM"])
        } else if !unit.is_empty() || !code.is_empty() {
            comps(&[if code.is_empty() { unit } else { code }, unit])
        } else {
            Vec::new()
        }
    };
    if let Some(q) = obs.get("valueQuantity") {
        let value = number(q.get("value").unwrap_or(&Value::Null));
        let comparator = s(q, "comparator");
        return if comparator.is_empty() {
            ("NM", comps(&[&value]), units(q))
        } else {
            ("SN", comps(&[comparator, &value]), units(q))
        };
    }
    if let Some(cc) = obs.get("valueCodeableConcept") {
        return ("CWE", cwe(cc), Vec::new());
    }
    if let Some(text) = obs.get("valueString").and_then(Value::as_str) {
        let kind = if text.contains('\n') || text.chars().count() > 199 {
            "TX"
        } else {
            "ST"
        };
        return (kind, comps(&[text]), Vec::new());
    }
    if let Some(dt) = obs.get("valueDateTime").and_then(Value::as_str) {
        return ("DTM", comps(&[&hl7_timestamp(dt)]), Vec::new());
    }
    if let Some(r) = obs.get("valueRange") {
        let low = r
            .get("low")
            .map(|q| number(q.get("value").unwrap_or(&Value::Null)));
        let high = r
            .get("high")
            .map(|q| number(q.get("value").unwrap_or(&Value::Null)));
        let unit_of = r
            .get("low")
            .or_else(|| r.get("high"))
            .map(units)
            .unwrap_or_default();
        return match (low, high) {
            (Some(l), Some(h)) => ("SN", comps(&["", &l, "-", &h]), unit_of),
            (Some(l), None) => ("SN", comps(&[">=", &l]), unit_of),
            (None, Some(h)) => ("SN", comps(&["<=", &h]), unit_of),
            (None, None) => ("ST", Vec::new(), Vec::new()),
        };
    }
    if let Some(r) = obs.get("valueRatio") {
        let n = r
            .get("numerator")
            .map(|q| number(q.get("value").unwrap_or(&Value::Null)))
            .unwrap_or_default();
        let d = r
            .get("denominator")
            .map(|q| number(q.get("value").unwrap_or(&Value::Null)))
            .unwrap_or_default();
        return ("SN", comps(&["", &n, ":", &d]), Vec::new());
    }
    if let Some(i) = obs.get("valueInteger") {
        return ("NM", comps(&[&number(i)]), Vec::new());
    }
    if let Some(b) = obs.get("valueBoolean").and_then(Value::as_bool) {
        return ("ST", comps(&[if b { "true" } else { "false" }]), Vec::new());
    }
    ("ST", Vec::new(), Vec::new())
}

fn observation_status_code(status: &str) -> &'static str {
    match status {
        "final" => "F",
        "preliminary" => "P",
        "corrected" | "amended" => "C",
        "cancelled" => "X",
        "entered-in-error" => "W",
        "registered" => "I",
        // Unknown: results entered, not verified.
        _ => "R",
    }
}

fn report_status_code(status: &str) -> &'static str {
    match status {
        "final" => "F",
        "preliminary" => "P",
        "corrected" | "amended" | "appended" => "C",
        "partial" => "A",
        "registered" => "I",
        "cancelled" | "entered-in-error" => "X",
        _ => "",
    }
}

/// The identifier typed `type_code` (PLAC, FILL, MR), else `None`.
fn typed_identifier<'v>(resource: &'v Value, type_code: &str) -> Option<&'v Value> {
    arr(resource, "identifier").iter().find(|id| {
        id.get("type")
            .map(|t| arr(t, "coding"))
            .unwrap_or_default()
            .iter()
            .any(|c| s(c, "code") == type_code)
    })
}

/// EI components from an Identifier: value ^ namespace ^ universal id ^ type.
fn ei(id: Option<&Value>) -> OwnedField {
    let Some(id) = id else {
        return Vec::new();
    };
    let system = s(id, "system");
    match system.strip_prefix("urn:oid:") {
        Some(oid) => comps(&[s(id, "value"), "", oid, "ISO"]),
        None => comps(&[s(id, "value"), &namespace_of(system)]),
    }
}

/// A short namespace for a system URI: our own `...:id:NAME`, else empty.
fn namespace_of(system: &str) -> String {
    match system.rsplit_once(":id:") {
        Some((_, name)) if system.starts_with(super::systems::GATEWAY_URN) => name.to_string(),
        _ => String::new(),
    }
}

fn nte(set_id: usize, text: &str) -> OwnedSegment {
    let mut seg = OwnedSegment::new("NTE");
    seg.set(1, &set_id.to_string());
    seg.set(3, text);
    seg
}

/// Builds an ORU^R01 v2.5.1 (segments ended by CR) from FHIR results.
pub fn results_to_oru(input: &Value, ctx: &ToHl7Context) -> Result<Vec<u8>, MapError> {
    let resources = Resources::new(input);
    let reports: Vec<&Value> = resources
        .all
        .iter()
        .copied()
        .filter(|r| s(r, "resourceType") == "DiagnosticReport")
        .collect();
    let Some(first) = reports.first() else {
        return Err(MapError::new(
            "DiagnosticReport",
            "is missing: the input has no report to send",
        ));
    };
    let patient = first
        .get("subject")
        .and_then(|r| resources.resolve(first, r))
        .filter(|p| s(p, "resourceType") == "Patient")
        .ok_or_else(|| {
            MapError::new(
                "DiagnosticReport.subject",
                "does not resolve to a Patient in the input: cannot fill PID-3",
            )
        })?;
    let mrn = typed_identifier(patient, "MR").or_else(|| arr(patient, "identifier").first());
    let mrn_value = mrn.map(|i| s(i, "value")).unwrap_or("");
    if mrn_value.is_empty() {
        return Err(MapError::new(
            "Patient.identifier",
            "is empty: cannot fill PID-3 (the MRN)",
        ));
    }

    let mut msh = OwnedSegment::new("MSH");
    msh.set(3, &ctx.sending_application)
        .set(4, &ctx.sending_facility)
        .set(5, &ctx.receiving_application)
        .set(6, &ctx.receiving_facility)
        .set(7, &ctx.timestamp);
    set(&mut msh, 9, comps(&["ORU", "R01", "ORU_R01"]));
    msh.set(10, &ctx.control_id)
        .set(11, &ctx.processing_id)
        .set(12, "2.5.1");

    let mut pid = OwnedSegment::new("PID");
    pid.set(1, "1");
    let mrn_system = mrn.map(|i| s(i, "system")).unwrap_or("");
    let pid3 = match mrn_system.strip_prefix("urn:oid:") {
        Some(oid) => vec![vec![
            vec![mrn_value.to_string()],
            vec![String::new()],
            vec![String::new()],
            vec![String::new(), oid.to_string(), "ISO".to_string()],
            vec!["MR".to_string()],
        ]],
        None => comps(&[mrn_value, "", "", &namespace_of(mrn_system), "MR"]),
    };
    set(&mut pid, 3, pid3);
    if let Some(name) = arr(patient, "name").first() {
        let given = arr(name, "given");
        let g1 = given.first().and_then(Value::as_str).unwrap_or("");
        let rest: Vec<&str> = given.iter().skip(1).filter_map(Value::as_str).collect();
        let suffix = arr(name, "suffix")
            .first()
            .and_then(Value::as_str)
            .unwrap_or("");
        let prefix = arr(name, "prefix")
            .first()
            .and_then(Value::as_str)
            .unwrap_or("");
        set(
            &mut pid,
            5,
            comps(&[s(name, "family"), g1, &rest.join(" "), suffix, prefix]),
        );
    }
    pid.set(7, &hl7_timestamp(s(patient, "birthDate")));
    let sex = match s(patient, "gender") {
        "male" => "M",
        "female" => "F",
        "other" => "O",
        "unknown" => "U",
        _ => "",
    };
    pid.set(8, sex);
    if let Some(a) = arr(patient, "address").first() {
        let lines = arr(a, "line");
        let l1 = lines.first().and_then(Value::as_str).unwrap_or("");
        let l2 = lines.get(1).and_then(Value::as_str).unwrap_or("");
        set(
            &mut pid,
            11,
            comps(&[
                l1,
                l2,
                s(a, "city"),
                s(a, "state"),
                s(a, "postalCode"),
                s(a, "country"),
            ]),
        );
    }

    let mut segments = vec![msh, pid];
    for (r, report) in reports.iter().enumerate() {
        let based_on: Vec<&Value> = arr(report, "basedOn")
            .iter()
            .filter_map(|b| resources.resolve(report, b))
            .collect();
        let placer = typed_identifier(report, "PLAC")
            .or_else(|| based_on.iter().find_map(|sr| typed_identifier(sr, "PLAC")))
            .or_else(|| based_on.iter().find_map(|sr| arr(sr, "identifier").first()));
        let filler = typed_identifier(report, "FILL")
            .or_else(|| based_on.iter().find_map(|sr| typed_identifier(sr, "FILL")))
            .or_else(|| {
                arr(report, "identifier")
                    .iter()
                    .find(|i| i.get("type").is_none())
            });
        let status = report_status_code(s(report, "status"));
        let mut orc = OwnedSegment::new("ORC");
        orc.set(1, "RE");
        set(&mut orc, 2, ei(placer));
        set(&mut orc, 3, ei(filler));
        orc.set(5, if status == "F" { "CM" } else { "IP" });
        segments.push(orc);

        let mut obr = OwnedSegment::new("OBR");
        obr.set(1, &(r + 1).to_string());
        set(&mut obr, 2, ei(placer));
        set(&mut obr, 3, ei(filler));
        let code = report.get("code").ok_or_else(|| {
            MapError::new(
                format!("DiagnosticReport[{r}].code"),
                "is missing: cannot fill OBR-4",
            )
        })?;
        set(&mut obr, 4, ce(code));
        let effective = report
            .get("effectiveDateTime")
            .and_then(Value::as_str)
            .or_else(|| report.get("effectivePeriod").map(|p| s(p, "start")))
            .unwrap_or("");
        obr.set(7, &hl7_timestamp(effective));
        obr.set(22, &hl7_timestamp(s(report, "issued")));
        obr.set(25, status);
        segments.push(obr);
        let conclusion = s(report, "conclusion");
        if !conclusion.is_empty() {
            segments.push(nte(1, conclusion));
        }
        for (n, reference) in arr(report, "result").iter().enumerate() {
            let Some(obs) = resources
                .resolve(report, reference)
                .filter(|o| s(o, "resourceType") == "Observation")
            else {
                return Err(MapError::new(
                    format!("DiagnosticReport[{r}].result[{n}]"),
                    "does not resolve to an Observation in the input",
                ));
            };
            let (kind, value, units) = obx_value(obs);
            let mut obx = OwnedSegment::new("OBX");
            obx.set(1, &(n + 1).to_string());
            obx.set(2, if value.is_empty() { "" } else { kind });
            let code = obs.get("code").ok_or_else(|| {
                MapError::new(
                    format!("DiagnosticReport[{r}].result[{n}].code"),
                    "is missing: cannot fill OBX-3",
                )
            })?;
            set(&mut obx, 3, ce(code));
            set(&mut obx, 5, value);
            set(&mut obx, 6, units);
            if let Some(range) = arr(obs, "referenceRange").first() {
                let low = range
                    .get("low")
                    .map(|q| number(q.get("value").unwrap_or(&Value::Null)));
                let high = range
                    .get("high")
                    .map(|q| number(q.get("value").unwrap_or(&Value::Null)));
                let text = match (low, high) {
                    (Some(l), Some(h)) => format!("{l}-{h}"),
                    (Some(l), None) => format!(">{l}"),
                    (None, Some(h)) => format!("<{h}"),
                    (None, None) => s(range, "text").to_string(),
                };
                obx.set(7, &text);
            }
            if let Some(code) = arr(obs, "interpretation")
                .first()
                .and_then(|i| arr(i, "coding").first())
                .map(|c| s(c, "code"))
            {
                obx.set(8, code);
            }
            obx.set(11, observation_status_code(s(obs, "status")));
            obx.set(14, &hl7_timestamp(s(obs, "effectiveDateTime")));
            segments.push(obx);
            for (k, note) in arr(obs, "note").iter().enumerate() {
                let text = s(note, "text");
                if !text.is_empty() {
                    segments.push(nte(k + 1, text));
                }
            }
        }
    }
    let message = OwnedMessage {
        encoding: EncodingChars::default(),
        segments,
    };
    message
        .to_bytes(Terminator::Cr)
        .map_err(|e| MapError::new(e.location, e.reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(hl7_timestamp("2024-01-02"), "20240102");
        assert_eq!(
            hl7_timestamp("2024-01-02T13:04:05-05:00"),
            "20240102130405-0500"
        );
        assert_eq!(
            hl7_timestamp("2024-01-02T13:04:05.25Z"),
            "20240102130405.25+0000"
        );
    }
}
