//! The completion manifest of a Bulk Data export (IG STU3 §"Response -
//! Complete Status"), read tolerantly: STU2 and the STU4 draft too (`error`
//! may be called `outcome`; a missing `error` means none, as some HAPI
//! versions send; `extension` may be an object or an array; `deleted` and a
//! `link` to the next page of a partial manifest are read). Pure.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which list of the manifest a file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    Output,
    Error,
    Deleted,
}

impl FileKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Output => "output",
            FileKind::Error => "error",
            FileKind::Deleted => "deleted",
        }
    }
}

/// One file of the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub kind: FileKind,
    /// The resource type the file holds (`OperationOutcome` for errors,
    /// `Bundle` for deleted).
    #[serde(rename = "type")]
    pub resource_type: String,
    pub url: String,
    /// Resources in the file, when the server says.
    pub count: Option<u64>,
}

/// One page of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub transaction_time: String,
    pub requires_access_token: bool,
    pub files: Vec<FileEntry>,
    /// The next page of a partial manifest (`link` relation `next`).
    pub next: Option<String>,
}

/// Why a manifest is unusable; names the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError(pub String);

fn entries(
    doc: &Value,
    key: &str,
    kind: FileKind,
    out: &mut Vec<FileEntry>,
) -> Result<(), ManifestError> {
    let list = match doc.get(key) {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(ManifestError(format!("\"{key}\" is not an array"))),
    };
    for (i, e) in list.iter().enumerate() {
        let url = e
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| ManifestError(format!("{key}[{i}].url is missing or not a string")))?;
        let ty = match (kind, e.get("type").and_then(Value::as_str)) {
            (_, Some(t)) => t.to_string(),
            (FileKind::Error, None) => "OperationOutcome".into(),
            (FileKind::Deleted, None) => "Bundle".into(),
            (FileKind::Output, None) => {
                return Err(ManifestError(format!("{key}[{i}].type is missing")))
            }
        };
        let count = e.get("count").and_then(Value::as_u64);
        out.push(FileEntry {
            kind,
            resource_type: ty,
            url: url.to_string(),
            count,
        });
    }
    Ok(())
}

/// Parse one manifest page.
pub fn parse_manifest(body: &[u8]) -> Result<Manifest, ManifestError> {
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| ManifestError(format!("the manifest is not JSON: {e}")))?;
    if !doc.is_object() {
        return Err(ManifestError("the manifest is not a JSON object".into()));
    }
    let transaction_time = doc
        .get("transactionTime")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ManifestError("transactionTime is missing".into()))?
        .to_string();
    let requires_access_token = match doc.get("requiresAccessToken") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ManifestError("requiresAccessToken is not a boolean".into())),
    };
    let mut files = Vec::new();
    entries(&doc, "output", FileKind::Output, &mut files)?;
    // STU4 draft renames `error` to `outcome`; read both.
    entries(&doc, "error", FileKind::Error, &mut files)?;
    entries(&doc, "outcome", FileKind::Error, &mut files)?;
    entries(&doc, "deleted", FileKind::Deleted, &mut files)?;
    let next = match doc.get("link") {
        Some(Value::Array(links)) => links
            .iter()
            .find(|l| l.get("relation").and_then(Value::as_str) == Some("next"))
            .and_then(|l| l.get("url"))
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    };
    Ok(Manifest {
        transaction_time,
        requires_access_token,
        files,
        next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stu3_manifest() {
        let m = parse_manifest(
            br#"{"transactionTime":"2026-01-01T00:00:00Z","request":"x","requiresAccessToken":true,
            "output":[{"type":"Patient","url":"http://a/1","count":3},{"type":"Observation","url":"http://a/2"}],
            "error":[{"type":"OperationOutcome","url":"http://a/e"}],
            "deleted":[{"type":"Bundle","url":"http://a/d"}],
            "extension":{"x":1},
            "link":[{"relation":"next","url":"http://a/page2"}]}"#,
        )
        .unwrap();
        assert!(m.requires_access_token);
        assert_eq!(m.files.len(), 4);
        assert_eq!(m.files[0].count, Some(3));
        assert_eq!(m.files[2].kind, FileKind::Error);
        assert_eq!(m.files[3].kind, FileKind::Deleted);
        assert_eq!(m.next.as_deref(), Some("http://a/page2"));
    }

    #[test]
    fn hapi_without_error_and_stu4_outcome() {
        let m = parse_manifest(br#"{"transactionTime":"t","output":[]}"#).unwrap();
        assert!(m.files.is_empty() && !m.requires_access_token && m.next.is_none());
        let m = parse_manifest(
            br#"{"transactionTime":"t","output":[],"outcome":[{"url":"http://a/e"}],"extension":[{"url":"u"}]}"#,
        )
        .unwrap();
        assert_eq!(m.files[0].kind, FileKind::Error);
        assert_eq!(m.files[0].resource_type, "OperationOutcome");
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        assert!(parse_manifest(br#"{"output":[]}"#).is_err());
        assert!(parse_manifest(br#"{"transactionTime":"t","output":[{"url":"u"}]}"#).is_err());
        assert!(parse_manifest(br#"{"transactionTime":"t","output":{}}"#).is_err());
        assert!(parse_manifest(b"[]").is_err());
        assert!(parse_manifest(b"{").is_err());
    }

    proptest! {
        #[test]
        fn never_panics(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_manifest(&b);
        }
    }
}
