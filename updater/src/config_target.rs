//! Signed configuration targets: `gateway.toml` and credentials for one box
//! or a group of boxes, shipped through the same TUF repository as images
//! (`updater repo add-config`). Pure: parsing, validation and the choice of
//! which target applies; [`crate::config_apply`] applies it.
//!
//! A config target is a small JSON bundle whose `custom.clinic_gateway_config`
//! says whom it is for and its version:
//!
//! ```json
//! { "config_version": 7, "box": "0c1a...", "published": "2026-11-23T14:00:00Z" }
//! { "config_version": 3, "group": "clinic-west", "published": "..." }
//! ```
//!
//! and whose bytes are
//!
//! ```json
//! { "gateway_toml": "data_dir = ...", "credentials": { "clearinghouse-password": "<hex>" } }
//! ```
//!
//! Only those two things can be in a bundle: a config target cannot write
//! anywhere else on the box. Credentials are added or replaced by name
//! (a rotation ships only the one that changed); none is ever deleted.

use crate::hash::Sha256;
use crate::state::ConfigState;
use crate::target::{valid_name, ImageMeta, UpdateTarget, MIN_CHUNK_SIZE};
use crate::{Error, Result};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The key under `custom` in targets.json.
pub const CONFIG_KEY: &str = "clinic_gateway_config";
/// Largest bundle (it is fetched as one verified piece).
pub const MAX_BUNDLE: u64 = 1 << 20;

/// Whom a config target is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// One box, by its box id.
    Box(String),
    /// Every box provisioned with this group (`box-group`).
    Group(String),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Box(id) => write!(f, "box {id}"),
            Scope::Group(g) => write!(f, "group {g}"),
        }
    }
}

impl Scope {
    /// The target name `updater repo add-config` gives it: one target per
    /// scope, so a new version replaces the old one.
    pub fn target_name(&self) -> String {
        match self {
            Scope::Box(id) => format!("config-box-{id}.json"),
            Scope::Group(g) => format!("config-group-{g}.json"),
        }
    }
}

/// The JSON under `custom.clinic_gateway_config`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigMeta {
    pub config_version: u64,
    #[serde(default, rename = "box", skip_serializing_if = "Option::is_none")]
    pub box_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub published: Timestamp,
}

/// A signed, validated config target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigTarget {
    pub name: String,
    pub length: u64,
    pub sha256: Sha256,
    pub version: u64,
    pub scope: Scope,
    pub published: Timestamp,
}

/// Box ids and group names: plain (they become target names).
fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

impl ConfigTarget {
    /// Whether a signed target's custom object marks it as a config target.
    pub fn is_config(custom: &std::collections::HashMap<String, serde_json::Value>) -> bool {
        custom.contains_key(CONFIG_KEY)
    }

    pub fn from_signed(
        name: &str,
        length: u64,
        sha256: &[u8],
        custom: Option<&serde_json::Value>,
    ) -> Result<ConfigTarget> {
        let bad = |reason: String| Error::Target {
            name: name.to_string(),
            reason,
        };
        let custom = custom.ok_or_else(|| bad(format!("no custom.{CONFIG_KEY} object")))?;
        let meta: ConfigMeta = serde_json::from_value(custom.clone())
            .map_err(|e| bad(format!("custom.{CONFIG_KEY}: {e}")))?;
        let sha256: Sha256 = sha256
            .try_into()
            .map_err(|_| bad("hashes.sha256 is not 32 bytes".into()))?;
        Self::from_meta(name, length, sha256, meta)
    }

    pub fn from_meta(
        name: &str,
        length: u64,
        sha256: Sha256,
        meta: ConfigMeta,
    ) -> Result<ConfigTarget> {
        let bad = |reason: String| Error::Target {
            name: name.to_string(),
            reason,
        };
        if !valid_name(name) {
            return Err(bad("not a plain target name".into()));
        }
        let scope = match (meta.box_id, meta.group) {
            (Some(b), None) if valid_id(&b) => Scope::Box(b),
            (None, Some(g)) if valid_id(&g) => Scope::Group(g),
            (Some(_), Some(_)) | (None, None) => {
                return Err(bad(format!(
                    "custom.{CONFIG_KEY} must name exactly one of \"box\" and \"group\""
                )))
            }
            _ => {
                return Err(bad(format!(
                    "custom.{CONFIG_KEY}: box ids and group names are 1-64 characters of A-Z a-z 0-9 _ -"
                )))
            }
        };
        if length == 0 || length > MAX_BUNDLE {
            return Err(bad(format!(
                "a config bundle is 1..={MAX_BUNDLE} bytes, not {length}"
            )));
        }
        Ok(ConfigTarget {
            name: name.to_string(),
            length,
            sha256,
            version: meta.config_version,
            scope,
            published: meta.published,
        })
    }

    pub fn sha256_hex(&self) -> String {
        crate::hash::to_hex(&self.sha256)
    }

    /// The same bytes seen as a one-chunk image target, so the image
    /// downloaders (HTTP ranges, `--from DIR`) fetch and verify it.
    pub fn as_download(&self) -> Result<UpdateTarget> {
        let chunk = self.length.div_ceil(MIN_CHUNK_SIZE) * MIN_CHUNK_SIZE;
        UpdateTarget::from_meta(
            &self.name,
            self.length,
            self.sha256,
            ImageMeta {
                version: self.version.to_string(),
                epoch: 0,
                chunk_size: chunk,
                chunks: vec![self.sha256_hex()],
                recall: false,
                published: self.published,
                waves: vec![],
            },
        )
    }
}

/// The bundle's bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    pub gateway_toml: String,
    /// Credential name -> its bytes, hex-encoded.
    #[serde(default)]
    pub credentials: BTreeMap<String, String>,
}

impl Bundle {
    /// Parses and checks a bundle: the credential names are plain file
    /// names, the values hex. Returns the credentials decoded.
    pub fn parse(bytes: &[u8]) -> Result<(String, BTreeMap<String, Vec<u8>>)> {
        let b: Bundle = serde_json::from_slice(bytes)
            .map_err(|e| Error::State(format!("config bundle: not valid JSON: {e}")))?;
        if b.gateway_toml.trim().is_empty() {
            return Err(Error::State("config bundle: gateway_toml is empty".into()));
        }
        let mut creds = BTreeMap::new();
        for (name, hex_value) in b.credentials {
            if !valid_name(&name) {
                return Err(Error::State(format!(
                    "config bundle: credential name {name:?}: use A-Z a-z 0-9 . _ - (not starting with '.')"
                )));
            }
            let v = hex::decode(&hex_value).map_err(|e| {
                Error::State(format!("config bundle: credential {name}: not hex: {e}"))
            })?;
            creds.insert(name, v);
        }
        Ok((b.gateway_toml, creds))
    }
}

/// Which config target, if any, this box should apply now: the highest
/// version addressed to its box id, else the highest addressed to its
/// group; not one it already runs or one that failed here; not an older or
/// equal version of the scope it runs (an MSP goes back by publishing the
/// old content as a new version). `Err` says why nothing applies, for the
/// report.
pub fn pick<'t>(
    targets: &'t [ConfigTarget],
    box_id: Option<&str>,
    group: Option<&str>,
    st: &ConfigState,
) -> std::result::Result<&'t ConfigTarget, String> {
    let best = |want: &dyn Fn(&Scope) -> bool| {
        targets
            .iter()
            .filter(|t| want(&t.scope))
            .max_by_key(|t| t.version)
    };
    let chosen = box_id
        .and_then(|id| best(&|s| matches!(s, Scope::Box(b) if b == id)))
        .or_else(|| group.and_then(|g| best(&|s| matches!(s, Scope::Group(x) if x == g))));
    let Some(t) = chosen else {
        return Err(format!(
            "no config target for this box ({}, {})",
            box_id.map_or("no box id".into(), |b| format!("box {b}")),
            group.map_or("no group".into(), |g| format!("group {g}"))
        ));
    };
    let sha = t.sha256_hex();
    if st.failed.contains(&sha) {
        return Err(format!(
            "config {} version {} failed on this box before: not applied again",
            t.scope, t.version
        ));
    }
    if let Some(a) = &st.applied {
        if a.sha256 == sha {
            return Err(format!(
                "config {} version {} is applied",
                t.scope, t.version
            ));
        }
        if a.scope == t.scope && t.version <= a.version {
            return Err(format!(
                "config {} version {} is not newer than the applied version {}",
                t.scope, t.version, a.version
            ));
        }
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::AppliedConfig;

    fn t(version: u64, scope: Scope, seed: u8) -> ConfigTarget {
        ConfigTarget {
            name: scope.target_name(),
            length: 10,
            sha256: [seed; 32],
            version,
            scope,
            published: Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn the_box_wins_over_its_group_and_the_highest_version_wins() {
        let ts = vec![
            t(9, Scope::Group("west".into()), 1),
            t(2, Scope::Box("b1".into()), 2),
            t(3, Scope::Box("b1".into()), 3),
            t(50, Scope::Box("other".into()), 4),
        ];
        let st = ConfigState::default();
        assert_eq!(pick(&ts, Some("b1"), Some("west"), &st).unwrap().version, 3);
        assert_eq!(pick(&ts, Some("b2"), Some("west"), &st).unwrap().version, 9);
        let e = pick(&ts, Some("b2"), Some("east"), &st).unwrap_err();
        assert!(e.contains("box b2") && e.contains("group east"), "{e}");
    }

    #[test]
    fn applied_failed_and_older_versions_are_not_applied() {
        let ts = vec![t(3, Scope::Box("b1".into()), 3)];
        let mut st = ConfigState {
            applied: Some(AppliedConfig {
                version: 3,
                scope: Scope::Box("b1".into()),
                sha256: crate::hash::to_hex(&[3; 32]),
                at: Timestamp::UNIX_EPOCH,
            }),
            ..Default::default()
        };
        assert!(pick(&ts, Some("b1"), None, &st)
            .unwrap_err()
            .contains("is applied"));
        st.applied.as_mut().unwrap().sha256 = "x".into();
        st.applied.as_mut().unwrap().version = 4;
        assert!(pick(&ts, Some("b1"), None, &st)
            .unwrap_err()
            .contains("not newer"));
        // Another scope (the group's config ran before) may have any version.
        st.applied.as_mut().unwrap().scope = Scope::Group("west".into());
        assert_eq!(pick(&ts, Some("b1"), None, &st).unwrap().version, 3);
        st.failed.push(crate::hash::to_hex(&[3; 32]));
        assert!(pick(&ts, Some("b1"), None, &st)
            .unwrap_err()
            .contains("failed"));
    }

    #[test]
    fn metadata_names_exactly_one_plain_scope() {
        let meta = |b: Option<&str>, g: Option<&str>| ConfigMeta {
            config_version: 1,
            box_id: b.map(str::to_string),
            group: g.map(str::to_string),
            published: Timestamp::UNIX_EPOCH,
        };
        assert_eq!(
            ConfigTarget::from_meta("c.json", 5, [0; 32], meta(Some("ab12"), None))
                .unwrap()
                .scope,
            Scope::Box("ab12".into())
        );
        for (b, g) in [(Some("a"), Some("b")), (None, None), (None, Some("../x"))] {
            assert!(ConfigTarget::from_meta("c.json", 5, [0; 32], meta(b, g)).is_err());
        }
        let e = ConfigTarget::from_meta("c.json", MAX_BUNDLE + 1, [0; 32], meta(None, Some("g")))
            .unwrap_err();
        assert!(e.to_string().contains("config bundle"), "{e}");
    }

    #[test]
    fn bundles_hold_only_a_config_and_plainly_named_credentials() {
        let ok = br#"{"gateway_toml": "data_dir = 'x'", "credentials": {"pw": "6869"}}"#;
        let (toml, creds) = Bundle::parse(ok).unwrap();
        assert_eq!(toml, "data_dir = 'x'");
        assert_eq!(creds["pw"], b"hi");
        for bad in [
            &br#"{"gateway_toml": "x", "credentials": {"../etc/shadow": "00"}}"#[..],
            br#"{"gateway_toml": "x", "credentials": {"pw": "zz"}}"#,
            br#"{"gateway_toml": "  "}"#,
            br#"{"gateway_toml": "x", "path": "/etc/passwd"}"#,
        ] {
            assert!(
                Bundle::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_bundle_downloads_as_one_verified_chunk() {
        let c = ConfigTarget {
            name: "config-group-g.json".into(),
            length: 5000,
            sha256: [7; 32],
            version: 2,
            scope: Scope::Group("g".into()),
            published: Timestamp::UNIX_EPOCH,
        };
        let d = c.as_download().unwrap();
        assert_eq!((d.chunk_size, d.chunks.len()), (8192, 1));
        assert_eq!(d.chunks[0], [7; 32]);
        assert_eq!(d.chunk_range(0), (0, 5000));
    }
}
