//! The tenant tag: every exported resource carries
//! `meta.tag = {system: "urn:clinic-gateway:tenant", code: <tenant>}`.
//! The tag is spliced into the line's bytes; nothing else is re-serialized,
//! so decimals ("1.50"), unknown extensions and key order stay as the
//! server wrote them. It joins an existing top-level `meta` (and an
//! existing `meta.tag` array) and never writes a second `meta` or `tag`
//! key; `contained` resources, with their own `meta`, are not touched.
//! A line that already carries this tenant's tag is returned unchanged.
//! Pure.

use super::json_check::{check_object, TopLevel};
use super::json_scan::{self, elements, find, members, quote, string_value};

/// The `meta.tag` system of the tenant tag.
pub const TENANT_TAG_SYSTEM: &str = "urn:clinic-gateway:tenant";

/// Why a line could not be tagged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagError(pub String);

impl From<json_scan::ScanError> for TagError {
    fn from(e: json_scan::ScanError) -> TagError {
        TagError(format!("byte {}: {}", e.offset, e.reason))
    }
}

/// The tag for one tenant, its insertions prepared once per file: a line
/// is tagged from the spans [`check_object`] found, appended to a buffer
/// the caller reuses (no allocation per line).
pub struct Tagger {
    tenant: String,
    /// `{"system":...,"code":...}`, and with a leading `,`.
    tag: String,
    comma_tag: String,
    /// `"meta":{"tag":[TAG]}` as a new member, alone or followed by `,`.
    meta_alone: String,
    meta_first: String,
    /// `"tag":[TAG]` as a new member of `meta`, alone or followed by `,`.
    tag_alone: String,
    tag_first: String,
}

impl Tagger {
    pub fn new(tenant: &str) -> Tagger {
        let tag = format!(
            "{{\"system\":\"{TENANT_TAG_SYSTEM}\",\"code\":{}}}",
            quote(tenant)
        );
        Tagger {
            tenant: tenant.to_string(),
            comma_tag: format!(",{tag}"),
            meta_alone: format!("\"meta\":{{\"tag\":[{tag}]}}"),
            meta_first: format!("\"meta\":{{\"tag\":[{tag}]}},"),
            tag_alone: format!("\"tag\":[{tag}]"),
            tag_first: format!("\"tag\":[{tag}],"),
            tag,
        }
    }

    /// Append `line` with the tenant tag to `out`; on an error nothing is
    /// appended. `top` is what [`check_object`] found in `line`.
    pub fn tag_into(&self, line: &[u8], top: &TopLevel, out: &mut Vec<u8>) -> Result<(), TagError> {
        let Splice { at, insert } = self.splice(line, top)?;
        out.reserve(line.len() + insert.len());
        out.extend_from_slice(&line[..at]);
        out.extend_from_slice(insert);
        out.extend_from_slice(&line[at..]);
        Ok(())
    }

    /// Where the tag goes in `line`: the tagged line is `line[..at]`,
    /// `insert`, `line[at..]` (a writer can send those three pieces
    /// without copying the line first).
    pub fn splice(&self, line: &[u8], top: &TopLevel) -> Result<Splice<'_>, TagError> {
        if top.duplicate == Some("meta") {
            return Err(TagError("the resource has two \"meta\" keys".into()));
        }
        let (at, insert) = match &top.meta {
            // No meta: a new first member.
            None if top.members == 0 => (top.open + 1, &self.meta_alone),
            None => (top.open + 1, &self.meta_first),
            Some(meta) => {
                if line.get(meta.start) != Some(&b'{') {
                    return Err(TagError("\"meta\" is not an object".into()));
                }
                let (mm, _) = members(line, meta.start)?;
                let (tags, dup) = find(line, &mm, "tag");
                if dup {
                    return Err(TagError("\"meta\" has two \"tag\" keys".into()));
                }
                match tags {
                    None if mm.is_empty() => (meta.start + 1, &self.tag_alone),
                    None => (meta.start + 1, &self.tag_first),
                    Some(tags) => {
                        if line.get(tags.value.start) != Some(&b'[') {
                            return Err(TagError("\"meta.tag\" is not an array".into()));
                        }
                        let (items, tags_close) = elements(line, tags.value.start)?;
                        for item in &items {
                            if has_tenant_tag(&line[item.clone()], &self.tenant)? {
                                return Ok(Splice {
                                    at: line.len(),
                                    insert: b"",
                                });
                            }
                        }
                        let insert = if items.is_empty() {
                            &self.tag
                        } else {
                            &self.comma_tag
                        };
                        (tags_close, insert)
                    }
                }
            }
        };
        Ok(Splice {
            at,
            insert: insert.as_bytes(),
        })
    }
}

/// What [`Tagger::splice`] found: insert `insert` at byte `at` (empty: the
/// line already carries the tag).
pub struct Splice<'t> {
    pub at: usize,
    pub insert: &'t [u8],
}

/// `line` (one resource) with the tenant tag, or why not (a line that is
/// not one valid JSON object is refused).
pub fn tag_tenant(line: &[u8], tenant: &str) -> Result<Vec<u8>, TagError> {
    let top = check_object(line)?;
    let mut out = Vec::with_capacity(line.len() + 96);
    Tagger::new(tenant).tag_into(line, &top, &mut out)?;
    Ok(out)
}

/// Whether `coding` is this tenant's tag. A tag entry with two `system` or
/// `code` keys is refused: readers disagree on which one counts (the first
/// here, the last in serde_json), so it could be one tenant's tag to us
/// and another's downstream (found by fuzzing).
fn has_tenant_tag(coding: &[u8], tenant: &str) -> Result<bool, TagError> {
    let Ok((ms, _)) = members(coding, 0) else {
        return Ok(false);
    };
    let field = |name: &str| -> Result<Option<String>, TagError> {
        let (m, dup) = find(coding, &ms, name);
        if dup {
            return Err(TagError(format!(
                "a \"meta.tag\" entry has two \"{name}\" keys"
            )));
        }
        Ok(m.and_then(|m| string_value(&coding[m.value.clone()]).map(|s| s.into_owned())))
    };
    Ok(field("system")?.as_deref() == Some(TENANT_TAG_SYSTEM)
        && field("code")?.as_deref() == Some(tenant))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const T: &str = "acme";

    fn tagged(line: &str) -> String {
        String::from_utf8(tag_tenant(line.as_bytes(), T).unwrap()).unwrap()
    }

    fn tags_of(v: &Value) -> Vec<Value> {
        v["meta"]["tag"].as_array().cloned().unwrap_or_default()
    }

    #[test]
    fn a_tag_entry_with_two_codes_is_refused() {
        // fuzz/findings/export_ndjson: the first "code" is another tenant,
        // the last (what serde_json reads) is ours; tagging it gave a line
        // with our tag twice downstream.
        let line = r#"{"resourceType":"Patient","id":"p3","meta":{"tag":[{"system":"urn:clinic-gateway:tenant","code":"other","code":"acme"}]}}"#;
        let e = tag_tenant(line.as_bytes(), T).unwrap_err();
        assert!(e.0.contains("two \"code\" keys"), "{e:?}");
        let line = r#"{"resourceType":"Patient","id":"p","meta":{"tag":[{"system":"a","system":"urn:clinic-gateway:tenant","code":"acme"}]}}"#;
        assert!(tag_tenant(line.as_bytes(), T).is_err());
    }

    #[test]
    fn a_number_beyond_f64_is_kept_byte_for_byte() {
        // fuzz/findings/export_ndjson (number-beyond-f64): valid JSON whose
        // exponent overflows f64; serde_json refuses it ("number out of
        // range") but it is the server's data: tagging must not touch it.
        let out = tagged(r#"{"resourceType":"Patient","id":"p3","x":111111110e111111111111}"#);
        assert_eq!(
            out,
            r#"{"meta":{"tag":[{"system":"urn:clinic-gateway:tenant","code":"acme"}]},"resourceType":"Patient","id":"p3","x":111111110e111111111111}"#
        );
    }

    #[test]
    fn without_meta_adds_one() {
        let out =
            tagged(r#"{"resourceType":"Observation","id":"o1","valueQuantity":{"value":1.50}}"#);
        assert_eq!(
            out,
            r#"{"meta":{"tag":[{"system":"urn:clinic-gateway:tenant","code":"acme"}]},"resourceType":"Observation","id":"o1","valueQuantity":{"value":1.50}}"#
        );
    }

    #[test]
    fn joins_meta_and_its_tags_without_a_second_key() {
        let out = tagged(r#"{"resourceType":"Patient","meta":{"versionId":"3"},"id":"p"}"#);
        assert_eq!(
            out,
            r#"{"resourceType":"Patient","meta":{"tag":[{"system":"urn:clinic-gateway:tenant","code":"acme"}],"versionId":"3"},"id":"p"}"#
        );
        let out = tagged(
            r#"{"resourceType":"Patient","meta":{"tag":[{"system":"x","code":"y"}]},"id":"p"}"#,
        );
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(tags_of(&v).len(), 2);
        assert_eq!(out.matches("\"meta\"").count(), 1);
        assert_eq!(out.matches("\"tag\"").count(), 1);
        let out = tagged(r#"{"resourceType":"Patient","meta":{"tag":[]},"id":"p"}"#);
        assert_eq!(tags_of(&serde_json::from_str(&out).unwrap()).len(), 1);
        // Already tagged: unchanged.
        assert_eq!(tagged(&out), out);
    }

    #[test]
    fn contained_meta_is_left_alone() {
        let line = r#"{"resourceType":"Observation","contained":[{"resourceType":"Patient","id":"c","meta":{"tag":[{"code":"z"}]}}],"id":"o"}"#;
        let out = tagged(line);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(tags_of(&v)[0]["code"], "acme");
        assert_eq!(
            v["contained"][0]["meta"]["tag"].as_array().unwrap().len(),
            1
        );
        assert!(out.contains(
            r#""contained":[{"resourceType":"Patient","id":"c","meta":{"tag":[{"code":"z"}]}}]"#
        ));
    }

    #[test]
    fn refuses_duplicates_and_odd_meta() {
        assert!(tag_tenant(br#"{"meta":{},"meta":{}}"#, T).is_err());
        assert!(tag_tenant(br#"{"meta":[]}"#, T).is_err());
        assert!(tag_tenant(br#"{"meta":{"tag":{}}}"#, T).is_err());
        assert!(tag_tenant(br#"{"meta":{"tag":[],"tag":[]}}"#, T).is_err());
        assert!(tag_tenant(b"[1]", T).is_err());
    }
}
