//! The custom metadata each signed image target carries, and its validation.
//!
//! A TUF target is the whole image: `length` and `hashes.sha256` cover it.
//! Its `custom.clinic_gateway` object adds what the updater needs:
//!
//! ```json
//! { "version": "1.4.2", "epoch": 3, "chunk_size": 4194304,
//!   "chunks": ["<sha256 hex of chunk 0>", ...],
//!   "recall": false,
//!   "published": "2026-11-23T14:00:00Z",
//!   "waves": [{"start": "2026-11-24T02:00:00Z", "percent": 10}, ...] }
//! ```
//!
//! Everything here is signed by the targets role, so it is trusted once
//! `trust::load` returns; this module only checks that it is coherent.

use crate::hash::{from_hex, Sha256};
use crate::{Error, Result};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;

/// The key under `custom` in targets.json.
pub const CUSTOM_KEY: &str = "clinic_gateway";
/// Largest chunk: a chunk is held in memory while it is verified.
pub const MAX_CHUNK_SIZE: u64 = 4 * 1024 * 1024;
/// Smallest chunk (one page; keeps the chunk list bounded).
pub const MIN_CHUNK_SIZE: u64 = 4096;

/// A dotted numeric version: `1.4.2`. Compared numerically, field by field.
/// Trailing zeros do not count: `1.2` equals `1.2.0`.
#[derive(Debug, Clone)]
pub struct Version(Vec<u64>);

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Version {}

impl Version {
    pub fn parse(s: &str) -> Option<Version> {
        if s.is_empty() {
            return None;
        }
        s.split('.')
            .map(|p| {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    None
                } else {
                    p.parse().ok()
                }
            })
            .collect::<Option<Vec<u64>>>()
            .map(Version)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.0.len().max(other.0.len());
        for i in 0..n {
            let a = self.0.get(i).copied().unwrap_or(0);
            let b = other.0.get(i).copied().unwrap_or(0);
            match a.cmp(&b) {
                Ordering::Equal => continue,
                o => return o,
            }
        }
        Ordering::Equal
    }
}
impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|p| p.to_string()).collect();
        f.write_str(&parts.join("."))
    }
}

/// One step of a rollout: from `start`, devices whose position is below
/// `percent` (cumulative) may install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wave {
    pub start: Timestamp,
    pub percent: u8,
}

/// The JSON under `custom.clinic_gateway`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageMeta {
    pub version: String,
    pub epoch: u64,
    pub chunk_size: u64,
    pub chunks: Vec<String>,
    #[serde(default)]
    pub recall: bool,
    pub published: Timestamp,
    #[serde(default)]
    pub waves: Vec<Wave>,
}

/// Target names become file names and URL path segments: keep them plain.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A signed, validated image target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateTarget {
    /// The TUF target name, e.g. `gateway-x86_64-1.4.2.img`.
    pub name: String,
    pub length: u64,
    pub sha256: Sha256,
    pub version: Version,
    pub epoch: u64,
    pub chunk_size: u64,
    pub chunks: Vec<Sha256>,
    pub recall: bool,
    pub published: Timestamp,
    pub waves: Vec<Wave>,
}

impl UpdateTarget {
    /// Validates a target from verified TUF metadata: its `custom` object,
    /// length and SHA-256 (`trust` unpacks tough's types).
    pub fn from_signed(
        name: &str,
        length: u64,
        sha256: &[u8],
        custom: Option<&serde_json::Value>,
    ) -> Result<UpdateTarget> {
        let bad = |reason: String| Error::Target {
            name: name.to_string(),
            reason,
        };
        let custom = custom.ok_or_else(|| {
            bad(format!(
                "no custom.{CUSTOM_KEY} object (add images with `updater repo add`)"
            ))
        })?;
        let meta: ImageMeta = serde_json::from_value(custom.clone())
            .map_err(|e| bad(format!("custom.{CUSTOM_KEY}: {e}")))?;
        let sha256: Sha256 = sha256
            .try_into()
            .map_err(|_| bad("hashes.sha256 is not 32 bytes".into()))?;
        Self::from_meta(name, length, sha256, meta)
    }

    pub fn from_meta(name: &str, length: u64, sha256: Sha256, meta: ImageMeta) -> Result<Self> {
        let bad = |reason: String| Error::Target {
            name: name.to_string(),
            reason,
        };
        if !valid_name(name) {
            return Err(bad(
                "target names are 1-200 characters of A-Z a-z 0-9 . _ - (not starting with '.')"
                    .into(),
            ));
        }
        let version = Version::parse(&meta.version).ok_or_else(|| {
            bad(format!(
                "custom.{CUSTOM_KEY}.version {:?} is not a dotted number like 1.4.2",
                meta.version
            ))
        })?;
        if length == 0 {
            return Err(bad("length is 0".into()));
        }
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&meta.chunk_size)
            || meta.chunk_size % MIN_CHUNK_SIZE != 0
        {
            return Err(bad(format!(
                "custom.{CUSTOM_KEY}.chunk_size {} must be a multiple of {MIN_CHUNK_SIZE} and at most {MAX_CHUNK_SIZE}",
                meta.chunk_size
            )));
        }
        let expected = length.div_ceil(meta.chunk_size);
        if meta.chunks.len() as u64 != expected {
            return Err(bad(format!(
                "custom.{CUSTOM_KEY}.chunks lists {} hashes, but length {length} / chunk_size {} needs {expected}",
                meta.chunks.len(),
                meta.chunk_size
            )));
        }
        let chunks = meta
            .chunks
            .iter()
            .enumerate()
            .map(|(i, h)| {
                from_hex(h).ok_or_else(|| {
                    bad(format!(
                        "custom.{CUSTOM_KEY}.chunks[{i}] is not 64 hex digits"
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut last = 0u8;
        for (i, w) in meta.waves.iter().enumerate() {
            if w.percent == 0 || w.percent > 100 || w.percent < last {
                return Err(bad(format!(
                    "custom.{CUSTOM_KEY}.waves[{i}].percent {} must be 1..=100 and not below the wave before",
                    w.percent
                )));
            }
            last = w.percent;
        }
        Ok(UpdateTarget {
            name: name.to_string(),
            length,
            sha256,
            version,
            epoch: meta.epoch,
            chunk_size: meta.chunk_size,
            chunks,
            recall: meta.recall,
            published: meta.published,
            waves: meta.waves,
        })
    }

    /// Byte range of chunk `i`: (offset, length).
    pub fn chunk_range(&self, i: usize) -> (u64, u64) {
        let off = i as u64 * self.chunk_size;
        (off, self.chunk_size.min(self.length - off))
    }

    pub fn sha256_hex(&self) -> String {
        crate::hash::to_hex(&self.sha256)
    }

    /// The file name under the targets URL (TUF consistent snapshot).
    pub fn file_name(&self) -> String {
        format!("{}.{}", self.sha256_hex(), self.name)
    }
}

/// A target for the unit tests of the policy modules.
#[cfg(test)]
pub(crate) fn test_target(
    name: &str,
    version: &str,
    epoch: u64,
    sha256: Sha256,
    waves: Vec<Wave>,
) -> UpdateTarget {
    UpdateTarget::from_meta(
        name,
        4096,
        sha256,
        ImageMeta {
            version: version.into(),
            epoch,
            chunk_size: 4096,
            chunks: vec!["00".repeat(32)],
            recall: false,
            published: Timestamp::UNIX_EPOCH,
            waves,
        },
    )
    .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        let v = |s| Version::parse(s).unwrap();
        assert!(v("1.10") > v("1.9"));
        assert_eq!(v("1.2"), v("1.2.0"));
        assert!(v("2") > v("1.99.99"));
        assert!(Version::parse("1.x").is_none());
        assert!(Version::parse("").is_none());
        assert!(Version::parse("1..2").is_none());
    }

    fn meta(len: u64, chunk: u64, n: usize) -> (u64, ImageMeta) {
        (
            len,
            ImageMeta {
                version: "1.0".into(),
                epoch: 1,
                chunk_size: chunk,
                chunks: vec!["00".repeat(32); n],
                recall: false,
                published: Timestamp::UNIX_EPOCH,
                waves: vec![],
            },
        )
    }

    #[test]
    fn chunk_list_must_match_length() {
        let (len, m) = meta(10_000, 4096, 3);
        let t = UpdateTarget::from_meta("x", len, [0; 32], m).unwrap();
        assert_eq!(t.chunk_range(2), (8192, 10_000 - 8192));
        let (len, m) = meta(10_000, 4096, 2);
        let e = UpdateTarget::from_meta("x", len, [0; 32], m).unwrap_err();
        assert!(e.to_string().contains("needs 3"), "{e}");
    }

    #[test]
    fn names_are_plain() {
        assert!(valid_name("gateway-x86_64-1.4.2.img"));
        for bad in ["", ".hidden", "a/b", "a?b", "a b", "../x", "a#b"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn chunk_size_is_bounded() {
        let (len, m) = meta(16 << 20, 8 << 20, 2);
        let e = UpdateTarget::from_meta("x", len, [0; 32], m).unwrap_err();
        assert!(e.to_string().contains("chunk_size"), "{e}");
    }
}
