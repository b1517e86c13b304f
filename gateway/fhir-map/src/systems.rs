//! Systems: which URI names a code system or an identifier's assigning
//! authority.
//!
//! - Coding systems sent in CWE-3 (`LN`, `SCT`, `I10`, `HL70078` ...) map to
//!   their canonical FHIR URIs ([`coding_system_uri`]); anything else is a
//!   local system and gets a stable tenant-local URI
//!   (`urn:clinic-gateway:{tenant}:cs:{name}`).
//! - Assigning authorities (CX-4, XCN-9, EI-2/3) map through the per-tenant
//!   [`IdentifierSystems`] table; an OID becomes `urn:oid:`; anything
//!   unmapped becomes `urn:clinic-gateway:{tenant}:id:{authority}`. Never
//!   random: the same authority always gives the same system.

use std::borrow::Cow;
use std::collections::BTreeMap;

/// Prefix of every URI the gateway mints.
pub const GATEWAY_URN: &str = "urn:clinic-gateway";

/// The canonical URI of a well-known HL7 v2 coding system name (HL7 table
/// 0396 and common local spellings; `HL7nnnn` is the v2 table nnnn), or
/// `None` for a local system.
pub fn coding_system_uri(name: &str) -> Option<Cow<'static, str>> {
    // Upper-cased in a stack buffer: this runs for every coding. Every
    // known name is shorter than the buffer; a longer one is local.
    let name = name.trim();
    let mut buf = [0u8; 16];
    let upper = buf.get_mut(..name.len())?;
    upper.copy_from_slice(name.as_bytes());
    upper.make_ascii_uppercase();
    let upper = std::str::from_utf8(upper).ok()?;
    let uri = match upper {
        "LN" | "LOINC" => "http://loinc.org",
        "SCT" | "SNM" | "SNOMED" | "SNOMEDCT" | "SNOMED CT" | "SCT2" => "http://snomed.info/sct",
        "I10" | "I10C" | "ICD10CM" | "ICD-10-CM" | "ICD10" => "http://hl7.org/fhir/sid/icd-10-cm",
        "I9" | "I9C" | "I9CM" | "ICD9CM" | "I9M" => "http://hl7.org/fhir/sid/icd-9-cm",
        "I10P" | "ICD10PCS" => "http://www.cms.gov/Medicare/Coding/ICD10",
        "C4" | "CPT" | "CPT4" | "CPT-4" => "http://www.ama-assn.org/go/cpt",
        "C5" | "HCPCS" | "HCPCS II" | "HCPC" => "urn:oid:2.16.840.1.113883.6.285",
        "CVX" => "http://hl7.org/fhir/sid/cvx",
        "MVX" => "http://terminology.hl7.org/CodeSystem/MVX",
        "UCUM" => "http://unitsofmeasure.org",
        "NDC" => "http://hl7.org/fhir/sid/ndc",
        "RXNORM" | "RXN" => "http://www.nlm.nih.gov/research/umls/rxnorm",
        "CDCREC" => "urn:oid:2.16.840.1.113883.6.238",
        "NCIT" => "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl",
        "NPI" => "http://hl7.org/fhir/sid/us-npi",
        "CDCPHINVS" => "urn:oid:2.16.840.1.114222.4.5.274",
        "DCM" => "http://dicom.nema.org/resources/ontology/DCM",
        "ISO3166" | "ISO3166_1" => "urn:iso:std:iso:3166",
        "ISO+" | "ANS+" => "http://unitsofmeasure.org",
        _ => return hl7_table_uri(upper).map(Cow::Owned),
    };
    Some(Cow::Borrowed(uri))
}

/// Canonical target systems a code map may name.
pub fn target_system_uri(name: &str) -> Option<&'static str> {
    match name.trim().to_ascii_uppercase().as_str() {
        "LOINC" => Some("http://loinc.org"),
        "SNOMED" | "SNOMEDCT" | "SNOMED CT" | "SCT" => Some("http://snomed.info/sct"),
        "ICD10CM" | "ICD-10-CM" => Some("http://hl7.org/fhir/sid/icd-10-cm"),
        "CPT" => Some("http://www.ama-assn.org/go/cpt"),
        "HCPCS" => Some("urn:oid:2.16.840.1.113883.6.285"),
        "CVX" => Some("http://hl7.org/fhir/sid/cvx"),
        "UCUM" => Some("http://unitsofmeasure.org"),
        _ => None,
    }
}

/// `HL7nnnn` (four digits) → the v2 code system of table nnnn.
fn hl7_table_uri(upper: &str) -> Option<String> {
    let digits = upper.strip_prefix("HL7")?;
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(format!("http://terminology.hl7.org/CodeSystem/v2-{digits}"))
}

/// True for a dotted numeric OID such as `2.16.840.1.113883.3.1`.
pub fn is_oid(s: &str) -> bool {
    let s = s.trim();
    !s.is_empty()
        && s.contains('.')
        && s.split('.')
            .all(|arc| !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit()))
}

/// A name made safe to put inside a URN: ASCII letters, digits and `.-_`
/// are kept, anything else is percent-encoded (so distinct names stay
/// distinct and the result has no whitespace).
pub fn urn_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.trim().bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 0xF)]));
        }
    }
    out
}

/// The tenant-local URI for a local code system name.
pub fn local_code_system(tenant: &str, name: &str) -> String {
    let name = if name.trim().is_empty() {
        "local"
    } else {
        name
    };
    format!(
        "{GATEWAY_URN}:{}:cs:{}",
        urn_segment(tenant),
        urn_segment(name)
    )
}

/// Per-tenant table: assigning authority (namespace id or universal id, as
/// sent) → identifier system URI.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentifierSystems {
    by_authority: BTreeMap<String, String>,
}

impl IdentifierSystems {
    pub fn new() -> IdentifierSystems {
        IdentifierSystems::default()
    }

    /// Maps `authority` (compared without case) to `uri`.
    pub fn insert(&mut self, authority: &str, uri: &str) {
        self.by_authority.insert(
            authority.trim().to_ascii_uppercase(),
            uri.trim().to_string(),
        );
    }

    pub fn len(&self) -> usize {
        self.by_authority.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_authority.is_empty()
    }

    fn lookup(&self, authority: &str) -> Option<&str> {
        // Most tenants map few or no authorities: skip the upper-cased copy.
        if self.by_authority.is_empty() || authority.trim().is_empty() {
            return None;
        }
        self.by_authority
            .get(&authority.trim().to_ascii_uppercase())
            .map(String::as_str)
    }

    /// The system URI for an authority given as HD components: namespace id,
    /// universal id and universal id type. Order: the table (namespace, then
    /// universal id); an OID → `urn:oid:`; a URI universal id as is; else the
    /// tenant-local `urn:clinic-gateway:{tenant}:id:{authority}` (`local`
    /// when there is no authority at all).
    pub fn system_for(
        &self,
        tenant: &str,
        namespace: &str,
        universal_id: &str,
        universal_type: &str,
    ) -> String {
        if let Some(uri) = self.lookup(namespace).or_else(|| self.lookup(universal_id)) {
            return uri.to_string();
        }
        let universal_id = universal_id.trim();
        if is_oid(universal_id) {
            return format!("urn:oid:{universal_id}");
        }
        let utype = universal_type.trim().to_ascii_uppercase();
        if (utype == "URI" || utype == "URL")
            && universal_id.contains(':')
            && !universal_id.contains(char::is_whitespace)
        {
            return universal_id.to_string();
        }
        if is_oid(namespace) {
            return format!("urn:oid:{}", namespace.trim());
        }
        let authority = if namespace.trim().is_empty() {
            universal_id
        } else {
            namespace.trim()
        };
        let authority = if authority.is_empty() {
            "local"
        } else {
            authority
        };
        format!(
            "{GATEWAY_URN}:{}:id:{}",
            urn_segment(tenant),
            urn_segment(authority)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coding_systems() {
        assert_eq!(coding_system_uri("LN").as_deref(), Some("http://loinc.org"));
        assert_eq!(
            coding_system_uri("sct").as_deref(),
            Some("http://snomed.info/sct")
        );
        assert_eq!(
            coding_system_uri("HL70277").as_deref(),
            Some("http://terminology.hl7.org/CodeSystem/v2-0277")
        );
        assert_eq!(coding_system_uri("L"), None);
        assert_eq!(coding_system_uri("99zzz"), None);
    }

    #[test]
    fn identifier_systems() {
        let mut t = IdentifierSystems::new();
        t.insert("clinic", "https://clinic.example/mrn");
        assert_eq!(
            t.system_for("acme", "CLINIC", "", ""),
            "https://clinic.example/mrn"
        );
        assert_eq!(
            t.system_for("acme", "LAB", "2.16.840.1", "ISO"),
            "urn:oid:2.16.840.1"
        );
        assert_eq!(
            t.system_for("acme", "Main Lab", "", ""),
            "urn:clinic-gateway:acme:id:Main%20Lab"
        );
        assert_eq!(
            t.system_for("acme", "", "", ""),
            "urn:clinic-gateway:acme:id:local"
        );
        assert!(is_oid("1.2.3"));
        assert!(!is_oid("1..2"));
        assert!(!is_oid("12"));
    }
}
