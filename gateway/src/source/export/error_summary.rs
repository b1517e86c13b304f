//! The manifest's `error` files, summarised: each line is an
//! OperationOutcome; its issues are counted by `severity/code` (e.g.
//! `error/processing: 2`) for status, metrics-free logs and the `done`
//! marker. Only the coded values are kept, each bounded and reduced to
//! `[a-z-]`: a server's `diagnostics` text (which may quote PHI) never
//! leaves the error file itself (kept as sent under `errors/`). Pure.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Issues by `severity/code`.
pub type IssueCounts = BTreeMap<String, u64>;

/// Longest severity or code kept; anything longer or odd is `other`.
const MAX_TOKEN: usize = 32;

#[derive(Deserialize)]
struct Outcome {
    #[serde(rename = "resourceType")]
    resource_type: Option<String>,
    #[serde(default)]
    issue: Vec<Issue>,
}

#[derive(Deserialize)]
struct Issue {
    severity: Option<serde_json::Value>,
    code: Option<serde_json::Value>,
}

/// A coded value as a safe token: `[a-z-]{1,32}`, else `other`.
fn token(v: Option<&serde_json::Value>) -> String {
    match v {
        None | Some(serde_json::Value::Null) => "none".to_string(),
        Some(serde_json::Value::String(s))
            if !s.is_empty()
                && s.len() <= MAX_TOKEN
                && s.bytes().all(|c| c.is_ascii_lowercase() || c == b'-') =>
        {
            s.clone()
        }
        Some(_) => "other".to_string(),
    }
}

/// Count the issues of one error-file line into `into`; `Err` if it is not
/// an OperationOutcome.
pub fn count_issues(line: &[u8], into: &mut IssueCounts) -> Result<(), String> {
    let o: Outcome = serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
    if o.resource_type.as_deref() != Some("OperationOutcome") {
        return Err("an error file line that is not an OperationOutcome".into());
    }
    if o.issue.is_empty() {
        *into.entry("none/none".into()).or_insert(0) += 1;
    }
    for i in &o.issue {
        let key = format!("{}/{}", token(i.severity.as_ref()), token(i.code.as_ref()));
        *into.entry(key).or_insert(0) += 1;
    }
    Ok(())
}

/// Add `b` into `a`.
pub fn merge(a: &mut IssueCounts, b: &IssueCounts) {
    for (k, n) in b {
        *a.entry(k.clone()).or_insert(0) += n;
    }
}

/// `error/processing 2, warning/incomplete 1` (most first), or `none`.
pub fn describe(c: &IssueCounts) -> String {
    if c.is_empty() {
        return "none".into();
    }
    let mut v: Vec<(&String, &u64)> = c.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_severity_and_code_and_keeps_no_text() {
        let mut c = IssueCounts::new();
        count_issues(br#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"processing","diagnostics":"Patient John Smith MRN 123 not found"}]}"#, &mut c).unwrap();
        count_issues(br#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"processing"},{"severity":"warning","code":"incomplete","details":{"text":"x"}}]}"#, &mut c).unwrap();
        count_issues(br#"{"resourceType":"OperationOutcome","issue":[{"severity":"fatal","code":"John Smith"},{"code":7}]}"#, &mut c).unwrap();
        count_issues(br#"{"resourceType":"OperationOutcome"}"#, &mut c).unwrap();
        assert_eq!(
            describe(&c),
            "error/processing 2, fatal/other 1, none/none 1, none/other 1, warning/incomplete 1"
        );
        assert!(!describe(&c).contains("Smith"));
        assert!(count_issues(br#"{"resourceType":"Patient"}"#, &mut c).is_err());
        assert!(count_issues(b"nope", &mut c).is_err());
        let mut total = IssueCounts::new();
        merge(&mut total, &c);
        merge(&mut total, &c);
        assert_eq!(total["error/processing"], 4);
        assert_eq!(describe(&IssueCounts::new()), "none");
    }
}
