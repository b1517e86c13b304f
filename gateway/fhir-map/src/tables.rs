//! Fixed HL7 v2 table → FHIR code maps, after the V2-to-FHIR IG's
//! vocabulary maps. Unknown input gives the FHIR "unknown" code where the
//! element is required, or `None` where it may be left out.

/// Table 0001 administrative sex → `AdministrativeGender`.
pub fn gender(v2: &str) -> Option<&'static str> {
    match v2.trim().to_ascii_uppercase().as_str() {
        "M" => Some("male"),
        "F" => Some("female"),
        "O" | "A" | "N" | "X" => Some("other"),
        "U" => Some("unknown"),
        _ => None,
    }
}

/// Table 0002 marital status → v3 MaritalStatus code and display.
pub fn marital_status(v2: &str) -> Option<(&'static str, &'static str)> {
    Some(match v2.trim().to_ascii_uppercase().as_str() {
        "A" => ("L", "Legally Separated"),
        "D" => ("D", "Divorced"),
        "M" => ("M", "Married"),
        "S" => ("S", "Never Married"),
        "W" => ("W", "Widowed"),
        "C" | "P" => ("T", "Domestic partner"),
        "N" | "I" => ("I", "Interlocutory"),
        "U" => ("UNK", "unknown"),
        _ => return None,
    })
}

pub const V3_MARITAL: &str = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus";
pub const V3_NULL_FLAVOR: &str = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor";

/// OMB race categories (CDC Race & Ethnicity code set, urn:oid:2.16.840.1.113883.6.238).
pub fn omb_race(code: &str) -> bool {
    matches!(code, "1002-5" | "2028-9" | "2054-5" | "2076-8" | "2106-3")
}

/// OMB ethnicity categories; HL7 table 0189's H/N map to them.
pub fn omb_ethnicity(code: &str) -> Option<(&'static str, &'static str)> {
    match code.trim().to_ascii_uppercase().as_str() {
        "2135-2" | "H" => Some(("2135-2", "Hispanic or Latino")),
        "2186-5" | "N" => Some(("2186-5", "Not Hispanic or Latino")),
        _ => None,
    }
}

pub const CDC_RACE_ETHNICITY: &str = "urn:oid:2.16.840.1.113883.6.238";
pub const US_CORE_RACE: &str = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race";
pub const US_CORE_ETHNICITY: &str =
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity";

/// PV1-2 patient class (table 0004) → v3 ActCode encounter class.
pub fn encounter_class(v2: &str) -> (&'static str, &'static str) {
    match v2.trim().to_ascii_uppercase().as_str() {
        "I" => ("IMP", "inpatient encounter"),
        "E" => ("EMER", "emergency"),
        "O" | "R" | "B" | "C" => ("AMB", "ambulatory"),
        "P" => ("PRENC", "pre-admission"),
        _ => ("AMB", "ambulatory"),
    }
}

pub const V3_ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";

/// OBX-11 (table 0085) → Observation.status.
pub fn observation_status(v2: &str) -> &'static str {
    match v2.trim().to_ascii_uppercase().as_str() {
        "C" => "corrected",
        "D" | "W" => "entered-in-error",
        "F" | "U" => "final",
        "I" | "O" => "registered",
        "P" | "R" | "S" => "preliminary",
        "X" | "N" => "cancelled",
        "A" => "amended",
        _ => "unknown",
    }
}

/// OBR-25 (table 0123) → DiagnosticReport.status.
pub fn report_status(v2: &str) -> &'static str {
    match v2.trim().to_ascii_uppercase().as_str() {
        "O" | "I" | "S" => "registered",
        "A" | "R" => "partial",
        "P" => "preliminary",
        "C" => "corrected",
        "M" => "amended",
        "F" => "final",
        "X" => "cancelled",
        "D" => "entered-in-error",
        _ => "unknown",
    }
}

/// OBX-8 (table 0078) → v3 ObservationInterpretation code and display.
pub fn interpretation(v2: &str) -> Option<(&'static str, &'static str)> {
    Some(match v2.trim() {
        "L" => ("L", "Low"),
        "H" => ("H", "High"),
        "LL" => ("LL", "Critical low"),
        "HH" => ("HH", "Critical high"),
        "LU" => ("LU", "Significantly low"),
        "HU" => ("HU", "Significantly high"),
        "<" => ("<", "Off scale low"),
        ">" => (">", "Off scale high"),
        "N" => ("N", "Normal"),
        "A" => ("A", "Abnormal"),
        "AA" => ("AA", "Critical abnormal"),
        "U" => ("U", "Significant change up"),
        "D" => ("D", "Significant change down"),
        "B" => ("B", "Better"),
        "W" => ("W", "Worse"),
        "S" => ("S", "Susceptible"),
        "R" => ("R", "Resistant"),
        "I" => ("I", "Intermediate"),
        "MS" => ("MS", "moderately susceptible"),
        "VS" => ("VS", "very susceptible"),
        "POS" => ("POS", "Positive"),
        "NEG" => ("NEG", "Negative"),
        "IND" => ("IND", "Indeterminate"),
        "DET" => ("DET", "Detected"),
        "ND" => ("ND", "Not detected"),
        "E" => ("E", "Equivocal"),
        "EX" => ("EX", "outside threshold"),
        "NR" => ("NR", "Non-reactive"),
        "RR" => ("RR", "Reactive"),
        "WR" => ("WR", "Weakly reactive"),
        "IE" => ("IE", "Insufficient evidence"),
        _ => return None,
    })
}

pub const V3_INTERPRETATION: &str =
    "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";

/// ORC-5 order status (table 0038), else ORC-1 order control (table 0119)
/// → ServiceRequest.status.
pub fn service_request_status(order_status: &str, order_control: &str) -> &'static str {
    match order_status.trim().to_ascii_uppercase().as_str() {
        "A" | "IP" | "SC" => return "active",
        "CA" | "DC" | "RP" => return "revoked",
        "CM" => return "completed",
        "ER" => return "entered-in-error",
        "HD" => return "on-hold",
        _ => {}
    }
    match order_control.trim().to_ascii_uppercase().as_str() {
        "NW" | "XO" | "SC" | "RL" | "SN" | "RO" | "OK" | "RE" | "XX" => "active",
        "CA" | "DC" | "OC" | "OD" | "CR" | "DR" => "revoked",
        "HD" | "OH" | "HR" => "on-hold",
        "CM" => "completed",
        _ => "unknown",
    }
}

/// ORC-1 order control → ServiceRequest.intent: a parent order or a
/// filler's own order are both still "order" in US Core's sense, except the
/// filler-originated ones (SN: send number) that are "filler-order".
pub fn service_request_intent(order_control: &str) -> &'static str {
    match order_control.trim().to_ascii_uppercase().as_str() {
        "SN" | "FU" => "filler-order",
        "PA" | "CH" => "instance-order",
        _ => "order",
    }
}

/// OBR-5/ORC-7 priority (table 0027) → request priority.
pub fn request_priority(v2: &str) -> Option<&'static str> {
    match v2.trim().to_ascii_uppercase().as_str() {
        "S" => Some("stat"),
        "A" => Some("asap"),
        "R" | "T" => Some("routine"),
        "P" | "C" => Some("urgent"),
        _ => None,
    }
}

/// TXA-17 completion status (table 0271) → DocumentReference.docStatus.
pub fn document_doc_status(v2: &str) -> Option<&'static str> {
    match v2.trim().to_ascii_uppercase().as_str() {
        "AU" | "LA" => Some("final"),
        "DI" | "DO" | "IP" | "IN" | "PA" => Some("preliminary"),
        "CA" => Some("entered-in-error"),
        _ => None,
    }
}

/// RXA-20 completion status (table 0322) and RXA-21 action code (table
/// 0323) → Immunization.status.
pub fn immunization_status(completion: &str, action: &str) -> &'static str {
    if action.trim().eq_ignore_ascii_case("D") {
        return "entered-in-error";
    }
    match completion.trim().to_ascii_uppercase().as_str() {
        "RE" | "NA" => "not-done",
        _ => "completed",
    }
}

/// FT1-6 transaction type (table 0017) → ChargeItem.status.
pub fn charge_item_status(v2: &str) -> &'static str {
    match v2.trim().to_ascii_uppercase().as_str() {
        "CD" | "CR" => "aborted",
        "PY" | "AJ" => "billed",
        _ => "billable",
    }
}

/// NK1-3 relationship (table 0063) → v3 RoleCode (the common ones).
pub fn relationship(v2: &str) -> Option<(&'static str, &'static str)> {
    Some(match v2.trim().to_ascii_uppercase().as_str() {
        "SPO" => ("SPS", "spouse"),
        "DOM" => ("DOMPART", "domestic partner"),
        "CHD" => ("CHILD", "child"),
        "PAR" => ("PRN", "parent"),
        "MTH" => ("MTH", "mother"),
        "FTH" => ("FTH", "father"),
        "SIB" => ("SIB", "sibling"),
        "BRO" => ("BRO", "brother"),
        "SIS" => ("SIS", "sister"),
        "GRD" => ("GUARD", "guardian"),
        "FND" => ("FRND", "unrelated friend"),
        "SEL" => ("ONESELF", "self"),
        _ => return None,
    })
}

pub const V3_ROLE_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-RoleCode";

/// IN1-17 insured's relationship (table 0063) → subscriber-relationship.
pub fn subscriber_relationship(v2: &str) -> Option<&'static str> {
    match v2.trim().to_ascii_uppercase().as_str() {
        "SEL" | "SELF" => Some("self"),
        "SPO" | "DOM" => Some("spouse"),
        "CHD" | "CHILD" => Some("child"),
        "PAR" | "MTH" | "FTH" => Some("parent"),
        "EMP" | "OTH" | "FND" | "GRD" | "SIB" => Some("other"),
        _ => None,
    }
}

/// AL1-2 allergen type (table 0127) → AllergyIntolerance.category.
pub fn allergy_category(v2: &str) -> Option<&'static str> {
    match v2.trim().to_ascii_uppercase().as_str() {
        "DA" | "MA" => Some("medication"),
        "FA" => Some("food"),
        "EA" | "AA" | "PA" | "LA" => Some("environment"),
        _ => None,
    }
}

/// AL1-4 severity (table 0128) → AllergyIntolerance.criticality.
pub fn allergy_criticality(v2: &str) -> Option<&'static str> {
    match v2.trim().to_ascii_uppercase().as_str() {
        "SV" => Some("high"),
        "MO" | "MI" => Some("low"),
        "U" => Some("unable-to-assess"),
        _ => None,
    }
}
