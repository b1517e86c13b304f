//! Tenant id namespacing: two tenants' `Patient/123` must not collide where
//! their resources meet (a shared FHIR destination). A resource's `id` and
//! every relative `reference` (`Type/id`, `Type/id/_history/v`) become
//! [`namespaced_id`] = hex SHA-256 of (tenant, type, id): 64 characters,
//! within FHIR's id rule `[A-Za-z0-9\-\.]{1,64}`, the same on every run, so
//! a replayed export PUTs the same ids. The edit is a span edit over
//! [`json_scan`]: every other byte (decimals, unknown extensions, key
//! order, whitespace) stays as the server sent it. Contained resources'
//! ids and local references (`#c1`), absolute URLs and `urn:` references
//! are left alone: they do not name a resource of this tenant's server by
//! type and id. Pure.

use std::ops::Range;

use super::json_scan::{self, elements, find, members, string_value};

/// Why a line could not be namespaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceError(pub String);

impl From<json_scan::ScanError> for NamespaceError {
    fn from(e: json_scan::ScanError) -> NamespaceError {
        NamespaceError(format!("byte {}: {}", e.offset, e.reason))
    }
}

/// Nesting deeper than the scanner allows is already refused there; this
/// bounds our own recursion the same way.
const MAX_DEPTH: usize = 128;

/// The id that (tenant, type, id) gets: hex SHA-256 over the three, each
/// length-prefixed so no field can forge a boundary.
pub fn namespaced_id(tenant: &str, rtype: &str, id: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [tenant, rtype, id] {
        ctx.update(&(part.len() as u32).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    let digest = ctx.finish();
    let mut out = String::with_capacity(64);
    for b in digest.as_ref() {
        out.push(char::from(HEX[(b >> 4) as usize]));
        out.push(char::from(HEX[(b & 15) as usize]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn is_type_name(t: &str) -> bool {
    let mut c = t.chars();
    c.next().is_some_and(|f| f.is_ascii_uppercase()) && c.all(|c| c.is_ascii_alphanumeric())
}

fn is_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
}

/// A relative reference's new text, or `None` to leave it alone.
pub fn namespaced_reference(tenant: &str, reference: &str) -> Option<String> {
    let mut parts = reference.splitn(3, '/');
    let ty = parts.next()?;
    let id = parts.next()?;
    let rest = parts.next();
    if !is_type_name(ty) || !is_id(id) {
        return None;
    }
    match rest {
        None => Some(format!("{ty}/{}", namespaced_id(tenant, ty, id))),
        Some(r) if r.starts_with("_history/") => {
            Some(format!("{ty}/{}/{r}", namespaced_id(tenant, ty, id)))
        }
        Some(_) => None,
    }
}

/// The resource's type and id (as sent), if it has both as strings.
pub fn type_and_id(line: &[u8]) -> Option<(String, String)> {
    let (top, _) = members(line, 0).ok()?;
    let field = |name| {
        find(line, &top, name)
            .0
            .and_then(|m| string_value(&line[m.value.clone()]).map(|s| s.into_owned()))
    };
    Some((field("resourceType")?, field("id")?))
}

/// `line` (one resource) with its `id` and every relative `reference`
/// namespaced for `tenant`, or why not.
pub fn namespace_ids(line: &[u8], tenant: &str) -> Result<Vec<u8>, NamespaceError> {
    let (top, _) = members(line, 0)?;
    let (rt, dup_rt) = find(line, &top, "resourceType");
    let (id, dup_id) = find(line, &top, "id");
    if dup_rt || dup_id {
        return Err(NamespaceError(
            "the resource has two \"resourceType\" or \"id\" keys".into(),
        ));
    }
    let rtype = rt
        .and_then(|m| string_value(&line[m.value.clone()]))
        .ok_or_else(|| NamespaceError("no \"resourceType\" string".into()))?;
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    if let Some(m) = id {
        let v = string_value(&line[m.value.clone()])
            .ok_or_else(|| NamespaceError("\"id\" is not a string".into()))?;
        edits.push((
            m.value.clone(),
            format!("\"{}\"", namespaced_id(tenant, &rtype, &v)),
        ));
    }
    for m in &top {
        references(line, m, tenant, 0, &mut edits)?;
    }
    edits.sort_by_key(|(r, _)| r.start);
    let mut out = Vec::with_capacity(line.len() + edits.len() * 64);
    let mut at = 0;
    for (r, text) in edits {
        out.extend_from_slice(&line[at..r.start]);
        out.extend_from_slice(text.as_bytes());
        at = r.end;
    }
    out.extend_from_slice(&line[at..]);
    Ok(out)
}

/// Collect the edits of every `reference` member at or under `m`.
fn references(
    b: &[u8],
    m: &json_scan::Member,
    tenant: &str,
    depth: usize,
    edits: &mut Vec<(Range<usize>, String)>,
) -> Result<(), NamespaceError> {
    if m.is(b, "reference") {
        if let Some(new) =
            string_value(&b[m.value.clone()]).and_then(|r| namespaced_reference(tenant, &r))
        {
            edits.push((m.value.clone(), json_scan::quote(&new)));
        }
        return Ok(());
    }
    value(b, m.value.start, tenant, depth + 1, edits)
}

fn value(
    b: &[u8],
    at: usize,
    tenant: &str,
    depth: usize,
    edits: &mut Vec<(Range<usize>, String)>,
) -> Result<(), NamespaceError> {
    if depth > MAX_DEPTH {
        return Err(NamespaceError("nested too deeply".into()));
    }
    match b.get(at) {
        Some(b'{') => {
            let (ms, _) = members(b, at)?;
            for m in &ms {
                references(b, m, tenant, depth, edits)?;
            }
        }
        Some(b'[') => {
            let (es, _) = elements(b, at)?;
            for e in es {
                value(b, e.start, tenant, depth + 1, edits)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    const T: &str = "acme";

    fn ns(line: &str) -> String {
        String::from_utf8(namespace_ids(line.as_bytes(), T).unwrap()).unwrap()
    }

    #[test]
    fn the_id_is_a_stable_hash_of_tenant_type_and_id() {
        let a = namespaced_id("acme", "Patient", "123");
        assert_eq!(a.len(), 64);
        assert!(is_id(&a));
        assert_eq!(a, namespaced_id("acme", "Patient", "123"));
        assert_ne!(a, namespaced_id("beta", "Patient", "123"));
        assert_ne!(a, namespaced_id("acme", "Observation", "123"));
        // Length prefixes: no boundary can be forged.
        assert_ne!(
            namespaced_id("ab", "Patient", "c"),
            namespaced_id("a", "bPatient", "c")
        );
    }

    #[test]
    fn id_and_references_change_and_nothing_else() {
        let line = r##"{"resourceType":"Observation", "id":"o1","subject":{"reference":"Patient/p1","display":"x"},"valueQuantity":{"value":1.50},"extension":[{"url":"u","valueReference":{"reference":"Encounter/e-9/_history/2"}}],"hasMember":[{"reference":"#c1"},{"reference":"https://other.example/fhir/Patient/p1"},{"reference":"urn:uuid:1"}]}"##;
        let out = ns(line);
        let o1 = namespaced_id(T, "Observation", "o1");
        let p1 = namespaced_id(T, "Patient", "p1");
        let e9 = namespaced_id(T, "Encounter", "e-9");
        let want = line
            .replace("\"o1\"", &format!("\"{o1}\""))
            .replace("\"Patient/p1\"", &format!("\"Patient/{p1}\""))
            .replace("Encounter/e-9/", &format!("Encounter/{e9}/"));
        assert_eq!(out, want);
        assert!(out.contains(r#""value":1.50"#));
    }

    #[test]
    fn contained_ids_stay_and_their_references_change() {
        let line = r##"{"resourceType":"Observation","id":"o","contained":[{"resourceType":"Practitioner","id":"c1","partOf":{"reference":"Organization/9"}}],"performer":[{"reference":"#c1"}]}"##;
        let v: Value = serde_json::from_str(&ns(line)).unwrap();
        assert_eq!(v["contained"][0]["id"], "c1");
        assert_eq!(
            v["contained"][0]["partOf"]["reference"],
            format!("Organization/{}", namespaced_id(T, "Organization", "9"))
        );
        assert_eq!(v["performer"][0]["reference"], "#c1");
    }

    #[test]
    fn refuses_what_it_cannot_namespace() {
        assert!(namespace_ids(br#"{"id":"x"}"#, T).is_err());
        assert!(namespace_ids(br#"{"resourceType":"Patient","id":7}"#, T).is_err());
        assert!(namespace_ids(br#"{"resourceType":"Patient","id":"a","id":"b"}"#, T).is_err());
        assert!(namespace_ids(b"[1]", T).is_err());
        let deep = format!(
            "{{\"resourceType\":\"Patient\",\"a\":{}1{}}}",
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(namespace_ids(deep.as_bytes(), T).is_err());
    }

    /// A resource and, built alongside it, exactly the bytes the edit must
    /// give: ids, references of every kind, decimals written oddly,
    /// whitespace and nesting.
    fn resource() -> impl Strategy<Value = (String, String)> {
        let rel = ("(Patient|Encounter|Organization)", "[a-z0-9.-]{1,8}").prop_map(|(t, id)| {
            (
                format!("{t}/{id}"),
                format!("{t}/{}", namespaced_id(T, &t, &id)),
            )
        });
        let hist = ("[a-z0-9]{1,4}", "[0-9]").prop_map(|(id, v)| {
            (
                format!("Patient/{id}/_history/{v}"),
                format!("Patient/{}/_history/{v}", namespaced_id(T, "Patient", &id)),
            )
        });
        let same = prop_oneof![
            "#[a-z]{1,3}",
            "https://x\\.example/Patient/[0-9]{1,3}",
            "urn:uuid:[0-9a-f]{8}",
            "[a-z ]{0,6}",
        ]
        .prop_map(|r| (r.clone(), r));
        let reference = prop_oneof![rel, hist, same];
        let leaf = prop_oneof![
            reference.prop_map(|(a, b)| (
                format!("{{\"reference\" : \"{a}\"}}"),
                format!("{{\"reference\" : \"{b}\"}}")
            )),
            // JSON numbers (no leading zero: the span walk is strict).
            "-?(0|[1-9][0-9]{0,2})\\.[0-9]{1,3}0(e[0-9])?".prop_map(|d| (d.clone(), d)),
            "[a-z]{0,5}".prop_map(|s| (format!("\"{s}\""), format!("\"{s}\""))),
            Just(("null".to_string(), "null".to_string())),
        ];
        let value = leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(|v| {
                    let (a, b): (Vec<String>, Vec<String>) = v.into_iter().unzip();
                    (
                        format!("[ {} ]", a.join(" ,")),
                        format!("[ {} ]", b.join(" ,")),
                    )
                }),
                prop::collection::vec(("[a-z]{1,6}", inner), 0..4).prop_map(|v| {
                    let (a, b): (Vec<String>, Vec<String>) = v
                        .into_iter()
                        .map(|(k, (a, b))| (format!("\"x{k}\":{a}"), format!("\"x{k}\":{b}")))
                        .unzip();
                    (
                        format!("{{{}}}", a.join(",")),
                        format!("{{{}}}", b.join(",")),
                    )
                }),
            ]
        });
        (
            "(Patient|Observation)",
            proptest::option::of("[A-Za-z0-9.-]{1,12}"),
            prop::collection::vec(("[a-z]{1,6}", value), 0..5),
        )
            .prop_map(|(ty, id, ms)| {
                let head = format!("\"resourceType\":\"{ty}\"");
                let (mut a, mut b) = (vec![head.clone()], vec![head]);
                if let Some(id) = id {
                    a.push(format!("\"id\": \"{id}\""));
                    b.push(format!("\"id\": \"{}\"", namespaced_id(T, &ty, &id)));
                }
                for (k, (x, y)) in ms {
                    a.push(format!("\"y{k}\":{x}"));
                    b.push(format!("\"y{k}\":{y}"));
                }
                (
                    format!("{{ {} }}", a.join(",")),
                    format!("{{ {} }}", b.join(",")),
                )
            })
    }

    proptest! {
        #[test]
        fn ids_and_references_change_and_every_other_byte_stays((line, want) in resource()) {
            let out = namespace_ids(line.as_bytes(), T).unwrap();
            prop_assert_eq!(String::from_utf8(out).unwrap(), want);
        }

        #[test]
        fn never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = namespace_ids(&bytes, T);
        }
    }
}
