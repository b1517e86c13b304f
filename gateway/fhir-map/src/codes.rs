//! Per-tenant code maps (local code → LOINC, SNOMED CT, ICD-10-CM, CPT,
//! HCPCS, CVX, UCUM) and the count of local codes that no map covers.
//!
//! Code maps are CSV files (see `config/codemaps/example.csv`):
//!
//! ```text
//! local_system,local_code,target_system,target_code,display
//! LOCAL-LAB,GLU,LOINC,2345-7,Glucose [Mass/volume] in Serum or Plasma
//! ```
//!
//! `local_system` is the coding system name as the sender writes it in
//! CWE-3 (compared without case); `target_system` is one of `LOINC`,
//! `SNOMED`, `ICD10CM`, `CPT`, `HCPCS`, `CVX`, `UCUM` (or a URI). Blank lines
//! and lines starting with `#` are skipped; fields may be double-quoted.
//!
//! The mapper keeps the original coding and adds the mapped one beside it.
//! A local code with no mapping is kept (with its tenant-local system) and
//! counted in [`UnmappedCodes`] per (system, code), so operators can see
//! what still needs mapping. This module is pure: it parses CSV *text*
//! ([`CodeMaps::from_csv`], [`CodeMaps::add_csv`]); reading the files of a
//! directory is the gateway's job (`deliver::fhir_context::load_code_maps`).
//! Reloading is swapping the `Arc<CodeMaps>` in the [`super::MapContext`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use super::systems::target_system_uri;

/// Why a code-map CSV text does not load: the file (as named by the caller)
/// and, for a bad line, its number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeMapError {
    #[error("{source_name}:{line}: {what}")]
    Line {
        source_name: String,
        line: usize,
        what: String,
    },
    #[error("{source_name}: no header line: the file is empty")]
    Empty { source_name: String },
}

/// One target coding a local code maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedCode {
    pub system: String,
    pub code: String,
    pub display: String,
}

/// Local (system, code) → standard codings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodeMaps {
    /// Key: (local system upper-cased, local code as sent).
    map: HashMap<(String, String), Vec<MappedCode>>,
}

const HEADER: [&str; 4] = ["local_system", "local_code", "target_system", "target_code"];

impl CodeMaps {
    pub fn new() -> CodeMaps {
        CodeMaps::default()
    }

    /// Number of local codes mapped.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Adds one mapping (more than one target per local code is allowed).
    pub fn insert(&mut self, local_system: &str, local_code: &str, target: MappedCode) {
        let entry = self
            .map
            .entry((
                local_system.trim().to_ascii_uppercase(),
                local_code.trim().to_string(),
            ))
            .or_default();
        if !entry.contains(&target) {
            entry.push(target);
        }
    }

    /// The standard codings for a local code, if mapped.
    pub fn lookup(&self, local_system: &str, local_code: &str) -> &[MappedCode] {
        if self.map.is_empty() {
            return &[];
        }
        self.map
            .get(&(
                local_system.trim().to_ascii_uppercase(),
                local_code.trim().to_string(),
            ))
            .map_or(&[], Vec::as_slice)
    }

    /// Parses one CSV file's text. `source_name` names the file in errors,
    /// which read `NAME:LINE: what is wrong`.
    pub fn from_csv(text: &str, source_name: &str) -> Result<CodeMaps, CodeMapError> {
        let mut maps = CodeMaps::new();
        maps.add_csv(text, source_name)?;
        Ok(maps)
    }

    /// Adds the mappings of one CSV text (see [`CodeMaps::from_csv`]).
    pub fn add_csv(&mut self, text: &str, source_name: &str) -> Result<(), CodeMapError> {
        let mut header_seen = false;
        for (index, line) in text.lines().enumerate() {
            let line_no = index + 1;
            let err = |what: String| CodeMapError::Line {
                source_name: source_name.to_string(),
                line: line_no,
                what,
            };
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let fields = split_csv_line(trimmed).map_err(|e| err(e.to_string()))?;
            if !header_seen {
                let names: Vec<String> = fields.iter().map(|f| f.trim().to_lowercase()).collect();
                let ok = HEADER
                    .iter()
                    .enumerate()
                    .all(|(i, h)| names.get(i).map(String::as_str) == Some(*h));
                if !ok {
                    return Err(err(format!(
                        "the first line must be the header {},display",
                        HEADER.join(",")
                    )));
                }
                header_seen = true;
                continue;
            }
            if fields.len() < 4 || fields.len() > 5 {
                return Err(err(format!(
                    "expected 4 or 5 columns (local_system,local_code,target_system,target_code[,display]), found {}",
                    fields.len()
                )));
            }
            let get = |i: usize| fields.get(i).map_or("", |s| s.trim());
            let (local_system, local_code, target_system, target_code) =
                (get(0), get(1), get(2), get(3));
            for (name, value) in [
                ("local_system", local_system),
                ("local_code", local_code),
                ("target_system", target_system),
                ("target_code", target_code),
            ] {
                if value.is_empty() {
                    return Err(err(format!("{name} is empty")));
                }
            }
            let system = match target_system_uri(target_system) {
                Some(uri) => uri.to_string(),
                None if target_system.contains(':') && !target_system.contains(' ') => {
                    target_system.to_string()
                }
                None => {
                    return Err(err(format!(
                        "unknown target_system '{target_system}' (use LOINC, SNOMED, ICD10CM, CPT, HCPCS, CVX, UCUM or a URI)"
                    )))
                }
            };
            self.insert(
                local_system,
                local_code,
                MappedCode {
                    system,
                    code: target_code.to_string(),
                    display: get(4).to_string(),
                },
            );
        }
        if !header_seen {
            return Err(CodeMapError::Empty {
                source_name: source_name.to_string(),
            });
        }
        Ok(())
    }
}

/// Splits one CSV line: commas, double-quoted fields with `""` escapes.
fn split_csv_line(line: &str) -> Result<Vec<String>, &'static str> {
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut chars = line.chars().peekable();
    let mut in_quotes = false;
    while let Some(c) = chars.next() {
        match (c, in_quotes) {
            ('"', true) if chars.peek() == Some(&'"') => {
                current.push('"');
                chars.next();
            }
            ('"', true) => in_quotes = false,
            ('"', false) if current.trim().is_empty() => {
                current.clear();
                in_quotes = true;
            }
            (',', false) => fields.push(std::mem::take(&mut current)),
            (c, _) => current.push(c),
        }
    }
    if in_quotes {
        return Err("unterminated quoted field");
    }
    fields.push(current);
    Ok(fields)
}

/// Distinct unmapped (system, code) pairs kept; more are counted together
/// under `("*", "*")` so a flood of junk codes cannot grow memory.
pub const MAX_DISTINCT_UNMAPPED: usize = 10_000;

/// Local codes seen with no mapping, counted per (system, code). Shared
/// between threads; cheap to update.
#[derive(Debug, Default)]
pub struct UnmappedCodes {
    counts: Mutex<BTreeMap<(String, String), u64>>,
}

impl UnmappedCodes {
    pub fn new() -> UnmappedCodes {
        UnmappedCodes::default()
    }

    /// Counts one occurrence of a local code with no mapping.
    pub fn record(&self, system: &str, code: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let key = (system.to_string(), code.to_string());
        if counts.len() >= MAX_DISTINCT_UNMAPPED && !counts.contains_key(&key) {
            *counts.entry(("*".into(), "*".into())).or_insert(0) += 1;
            return;
        }
        *counts.entry(key).or_insert(0) += 1;
    }

    /// A copy of the counts: (system, code) → occurrences.
    pub fn snapshot(&self) -> BTreeMap<(String, String), u64> {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Forgets every count (for example after a reload of the code maps).
    pub fn clear(&self) {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_looks_up() {
        let m = CodeMaps::from_csv(
            "# lab codes\nlocal_system,local_code,target_system,target_code,display\nLAB,GLU,LOINC,2345-7,\"Glucose, serum\"\nlab,NA,loinc,2951-2\n\n",
            "x.csv",
        )
        .unwrap();
        assert_eq!(m.len(), 2);
        let g = m.lookup("Lab", "GLU");
        assert_eq!(g[0].system, "http://loinc.org");
        assert_eq!(g[0].display, "Glucose, serum");
        assert!(m.lookup("LAB", "K").is_empty());
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = CodeMaps::from_csv("a,b\n", "m.csv").unwrap_err();
        assert!(
            e.to_string().starts_with("m.csv:1: the first line must be"),
            "{e}"
        );
        let e = CodeMaps::from_csv(
            "local_system,local_code,target_system,target_code\nL,1,WHATEVER,2\n",
            "m.csv",
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with("m.csv:2: unknown target_system"),
            "{e}"
        );
        let e = CodeMaps::from_csv(
            "local_system,local_code,target_system,target_code\nL,,LOINC,2\n",
            "m.csv",
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "m.csv:2: local_code is empty");
        let e = CodeMaps::from_csv(
            "local_system,local_code,target_system,target_code\nL,\"1,LOINC,2\n",
            "m.csv",
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "m.csv:2: unterminated quoted field");
        assert!(CodeMaps::from_csv("", "e.csv").is_err());
    }

    #[test]
    fn unmapped_counts() {
        let u = UnmappedCodes::new();
        u.record("urn:x", "A");
        u.record("urn:x", "A");
        u.record("urn:x", "B");
        let s = u.snapshot();
        assert_eq!(s.get(&("urn:x".into(), "A".into())), Some(&2));
        assert_eq!(s.len(), 2);
    }
}
