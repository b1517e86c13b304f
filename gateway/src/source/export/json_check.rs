//! The line check's single pass over a resource line: a strict JSON
//! (RFC 8259) validation of the whole text — UTF-8, string escapes and
//! control characters, number grammar, literals, nesting, nothing after the
//! object — that also records where the top-level object is and the value
//! spans of the three members the check and the tenant tag read
//! (`resourceType`, `id`, `meta`). The tag is then spliced from those spans
//! without scanning the line again (only the small `meta` value is looked
//! into). No allocation on the common path (a key written with escapes is
//! decoded to be compared). Pure and panic-free on any input.

use std::ops::Range;

use super::json_scan::{err, skip_string_escaped, skip_value_depth, skip_ws, string_value, Scan};

/// The reason given for bytes that are not UTF-8 (`offset`: the first bad byte).
pub const NOT_UTF8: &str = "not UTF-8";

/// What the pass found in a valid line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopLevel {
    /// Index of the object's `{` and of its `}`.
    pub open: usize,
    pub close: usize,
    /// How many members the object has.
    pub members: usize,
    /// Value spans (of the first occurrence).
    pub resource_type: Option<Range<usize>>,
    pub id: Option<Range<usize>>,
    pub meta: Option<Range<usize>>,
    /// One of those three keys when it occurs twice (readers disagree on
    /// which one counts, so such a line is refused by its users).
    pub duplicate: Option<&'static str>,
}

/// Validate `b` as one JSON object (whitespace around it allowed) and find
/// its top-level `resourceType`, `id` and `meta`.
pub fn check_object(b: &[u8]) -> Scan<TopLevel> {
    if let Err(e) = std::str::from_utf8(b) {
        return err(e.valid_up_to(), NOT_UTF8);
    }
    let open = skip_ws(b, 0);
    if b.get(open) != Some(&b'{') {
        return err(open, "not a JSON object");
    }
    let mut top = TopLevel {
        open,
        ..TopLevel::default()
    };
    let mut j = skip_ws(b, open + 1);
    if b.get(j) == Some(&b'}') {
        top.close = j;
    } else {
        loop {
            let key_start = j;
            let escaped;
            (j, escaped) = skip_string_escaped(b, j)?;
            let key = key_start..j;
            j = skip_ws(b, j);
            if b.get(j) != Some(&b':') {
                return err(j, "expected ':'");
            }
            let v = skip_ws(b, j + 1);
            j = skip_value_depth(b, v, 1)?;
            top.members += 1;
            if let Some((name, slot)) = known(b, key, escaped, &mut top) {
                if slot.is_some() {
                    top.duplicate.get_or_insert(name);
                } else {
                    *slot = Some(v..j);
                }
            }
            j = skip_ws(b, j);
            match b.get(j) {
                Some(b',') => j = skip_ws(b, j + 1),
                Some(b'}') => {
                    top.close = j;
                    break;
                }
                _ => return err(j, "expected ',' or '}'"),
            }
        }
    }
    let end = skip_ws(b, top.close + 1);
    if end != b.len() {
        return err(end, "more after the object");
    }
    Ok(top)
}

/// The slot of a key the check reads, if `key` (quotes included; with an
/// escape if `escaped`) is one.
fn known<'t>(
    b: &[u8],
    key: Range<usize>,
    escaped: bool,
    top: &'t mut TopLevel,
) -> Option<(&'static str, &'t mut Option<Range<usize>>)> {
    let raw = &b[key.start + 1..key.end - 1];
    let decoded;
    let name: &[u8] = if escaped {
        decoded = string_value(&b[key])?;
        decoded.as_bytes()
    } else {
        raw
    };
    match name {
        b"resourceType" => Some(("resourceType", &mut top.resource_type)),
        b"id" => Some(("id", &mut top.id)),
        b"meta" => Some(("meta", &mut top.meta)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn finds_the_members_the_check_reads() {
        let b = br#" {"resourceType":"Patient","meta":{"versionId":"1"},"x":[1,-2.5e+3,true,null,{}],"id":"p1"} "#;
        let top = check_object(b).unwrap();
        assert_eq!(&b[top.resource_type.clone().unwrap()], br#""Patient""#);
        assert_eq!(&b[top.id.clone().unwrap()], br#""p1""#);
        assert_eq!(&b[top.meta.clone().unwrap()], br#"{"versionId":"1"}"#);
        assert_eq!((top.open, b[top.close], top.members), (1, b'}', 4));
        assert_eq!(top.duplicate, None);
        assert!(check_object(r#"{"a":"\ud83d\ude00 é"}"#.as_bytes()).is_ok());
        let top = check_object(br#"{"\u0069d":"a","id":"b"}"#).unwrap();
        assert_eq!(top.duplicate, Some("id"));
        assert_eq!(top.id, Some(11..14));
    }

    #[test]
    fn refuses_what_json_refuses() {
        for bad in [
            &br#"{"a":01}"#[..],
            br#"{"a":1.}"#,
            br#"{"a":.5}"#,
            br#"{"a":+1}"#,
            br#"{"a":1e}"#,
            br#"{"a":tru}"#,
            br#"{"a":"\x"}"#,
            br#"{"a":"\u12g4"}"#,
            br#"{"a":"\ud800"}"#,
            br#"{"a":"\udc00\ud800"}"#,
            br#"{"a":"\ud800\u0041"}"#,
            b"{\"a\":\"tab\there\"}",
            br#"{"a":1,}"#,
            br#"{"a":[1,]}"#,
            br#"{"a" 1}"#,
            br#"{"a":1} {}"#,
            br#"{"a":1"#,
            b"[1]",
            b"",
            b"{\"a\":\"\xff\"}",
        ] {
            assert!(
                check_object(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
        assert!(check_object(deep.as_bytes()).is_err());
        let ok = format!("{{\"a\":{}{}}}", "[".repeat(100), "]".repeat(100));
        assert!(check_object(ok.as_bytes()).is_ok());
    }

    /// Any JSON value serde_json writes, inside a resource: accepted, and
    /// for any bytes our verdict is serde_json's (for an object at the top).
    fn json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
            ".{0,8}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map(".{0,4}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn accepts_what_serde_writes(v in json()) {
            let line = serde_json::json!({"resourceType": "X", "v": v, "id": "i"}).to_string();
            let top = check_object(line.as_bytes()).unwrap();
            prop_assert!(top.resource_type.is_some() && top.id.is_some());
        }

        #[test]
        fn agrees_with_serde_on_any_bytes(b in proptest::collection::vec(any::<u8>(), 0..80), v in json()) {
            // Mutations of a valid line: cut, a byte changed.
            let line = serde_json::json!({"v": v}).to_string().into_bytes();
            for cand in [b.clone(), line[..line.len() / 2].to_vec(), {
                let mut l = line.clone();
                if let Some(x) = b.first() { let k = *x as usize % l.len(); l[k] = b.get(1).copied().unwrap_or(b'"'); }
                l
            }] {
                let ours = check_object(&cand).is_ok();
                let theirs = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&cand).is_ok()
                    || (std::str::from_utf8(&cand).is_ok()
                        && serde_json::from_slice::<serde::de::IgnoredAny>(&cand).is_ok()
                        && cand.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'{'));
                prop_assert_eq!(ours, theirs, "{:?}", String::from_utf8_lossy(&cand));
            }
        }
    }
}
