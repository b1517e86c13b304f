//! Pure helpers of the results poller: split a FHIR searchset into one
//! input per DiagnosticReport (each becomes one ORU^R01), derive a stable
//! MSH-10 and MSH-7 from the report's id and version, and find the next
//! page link.

use serde_json::{json, Value};

/// One report to send: its own collection Bundle (the report plus every
/// non-report resource of the page, so its references resolve), a stable
/// control id, and its `meta.lastUpdated`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportInput {
    pub report_id: String,
    pub control_id: String,
    pub last_updated: Option<String>,
    pub bundle: Value,
}

/// FNV-1a 64 (stable across builds): a short id for MSH-10.
fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// MSH-10 for a report version: "FR" + 16 hex digits of a hash of the
/// report's id, versionId and lastUpdated. The same version polled twice
/// gives the same control id (and the same bytes), so the journal's
/// de-duplication stores it once; a corrected report gets a new one.
pub fn control_id(report: &Value) -> String {
    let id = report["id"].as_str().unwrap_or("");
    let version = report["meta"]["versionId"].as_str().unwrap_or("");
    let updated = report["meta"]["lastUpdated"].as_str().unwrap_or("");
    format!("FR{:016X}", fnv1a(&format!("{id}|{version}|{updated}")))
}

/// FHIR instant → HL7 TS (`2024-01-02T03:04:05.678-05:00` → `20240102030405.678-0500`).
pub fn hl7_ts(instant: &str) -> Option<String> {
    let (date, rest) = instant.split_once('T')?;
    let d: String = date.chars().filter(|c| c.is_ascii_digit()).collect();
    if d.len() != 8 {
        return None;
    }
    let (time, offset) = match rest.find(['+', '-', 'Z']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let t: String = hms.chars().filter(|c| c.is_ascii_digit()).collect();
    let mut out = format!("{d}{t}");
    if !frac.is_empty() {
        out.push('.');
        out.extend(frac.chars().take(4));
    }
    match offset {
        "" => {}
        "Z" => out.push_str("+0000"),
        o => out.push_str(&o.replace(':', "")),
    }
    Some(out)
}

/// The page's reports, oldest `lastUpdated` first.
pub fn split_reports(page: &Value) -> Vec<ReportInput> {
    let entries: Vec<&Value> = page["entry"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let others: Vec<Value> = entries
        .iter()
        .filter(|e| e["resource"]["resourceType"] != "DiagnosticReport")
        .map(|e| (*e).clone())
        .collect();
    let mut out: Vec<ReportInput> = entries
        .iter()
        .filter(|e| e["resource"]["resourceType"] == "DiagnosticReport")
        .map(|e| {
            let report = &e["resource"];
            let mut entry = vec![(*e).clone()];
            entry.extend(others.iter().cloned());
            ReportInput {
                report_id: report["id"].as_str().unwrap_or("").to_string(),
                control_id: control_id(report),
                last_updated: report["meta"]["lastUpdated"].as_str().map(str::to_string),
                bundle: json!({"resourceType": "Bundle", "type": "collection", "entry": entry}),
            }
        })
        .collect();
    // RFC 3339 instants with the same offset sort as text; servers send UTC.
    out.sort_by(|a, b| a.last_updated.cmp(&b.last_updated));
    out
}

/// The searchset's `next` link, if any.
pub fn next_link(page: &Value) -> Option<String> {
    page["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == "next")
        .and_then(|l| l["url"].as_str())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> Value {
        json!({
            "resourceType": "Bundle", "type": "searchset",
            "link": [{"relation": "self", "url": "a"}, {"relation": "next", "url": "https://x/p2"}],
            "entry": [
                {"resource": {"resourceType": "DiagnosticReport", "id": "r2", "meta": {"versionId": "1", "lastUpdated": "2024-01-02T00:00:00Z"}}},
                {"resource": {"resourceType": "Observation", "id": "o1"}},
                {"resource": {"resourceType": "DiagnosticReport", "id": "r1", "meta": {"versionId": "3", "lastUpdated": "2024-01-01T00:00:00Z"}}},
            ]
        })
    }

    #[test]
    fn splits_per_report_oldest_first_with_shared_resources() {
        let r = split_reports(&page());
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].report_id, "r1");
        assert_eq!(r[1].report_id, "r2");
        let entries = r[0].bundle["entry"].as_array().unwrap();
        assert_eq!(entries.len(), 2, "the report and the observation");
        assert_eq!(next_link(&page()).as_deref(), Some("https://x/p2"));
    }

    #[test]
    fn control_ids_are_stable_per_version() {
        let a = json!({"id": "r1", "meta": {"versionId": "1", "lastUpdated": "t"}});
        let b = json!({"id": "r1", "meta": {"versionId": "2", "lastUpdated": "t2"}});
        assert_eq!(control_id(&a), control_id(&a.clone()));
        assert_ne!(control_id(&a), control_id(&b));
        assert_eq!(control_id(&a).len(), 18);
    }

    #[test]
    fn instants_become_hl7_timestamps() {
        assert_eq!(
            hl7_ts("2024-01-02T03:04:05.678-05:00").as_deref(),
            Some("20240102030405.678-0500")
        );
        assert_eq!(
            hl7_ts("2024-01-02T03:04:05Z").as_deref(),
            Some("20240102030405+0000")
        );
        assert_eq!(hl7_ts("yesterday"), None);
    }
}
