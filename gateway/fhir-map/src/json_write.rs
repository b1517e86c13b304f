//! Compact JSON bytes of a [`Value`] tree, written straight into a `Vec`:
//! the same bytes as `serde_json::to_vec`, without serde's per-call
//! overhead.
//!
//! Why by hand: with serde_json writing the Bundle, string escaping alone
//! was 18 % of an ADT translation's instructions, most of it spent on
//! keys and short constants (each written as three `write_all` calls and
//! scanned byte by byte through a table). Here a string with nothing to
//! escape — nearly every one — is one scan and one copy.

use super::bundle::is_empty_value;
use super::json::{Map, Value};

/// Appends `v` as compact JSON to `out`.
pub fn write_compact(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        // serde_json writes a Number as its Display (itoa / ryu).
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        // Validated JSON number text, written verbatim.
        Value::Decimal(d) => out.extend_from_slice(d.as_str().as_bytes()),
        Value::String(s) => write_str(s, out),
        Value::Array(list) => {
            out.push(b'[');
            for (i, item) in list.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_compact(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(map, out),
    }
}

/// A transaction Bundle finished with [`Pruning::WhenWritten`]: as
/// [`write_compact`], with each entry's resource (but the Provenance, built
/// without empty values) written as [`prune`] would leave it. The same
/// bytes as pruning the tree first and writing it.
///
/// [`Pruning::WhenWritten`]: super::bundle::Pruning::WhenWritten
/// [`prune`]: super::bundle::prune
pub fn write_bundle(bundle: &Value, out: &mut Vec<u8>) {
    let Value::Object(map) = bundle else {
        return write_compact(bundle, out);
    };
    out.push(b'{');
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_key(key, out);
        match (key, value) {
            ("entry", Value::Array(entries)) => {
                out.push(b'[');
                for (j, entry) in entries.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    write_entry(entry, out);
                }
                out.push(b']');
            }
            _ => write_compact(value, out),
        }
    }
    out.push(b'}');
}

fn write_entry(entry: &Value, out: &mut Vec<u8>) {
    let Value::Object(map) = entry else {
        return write_compact(entry, out);
    };
    out.push(b'{');
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_key(key, out);
        let provenance = value["resourceType"] == "Provenance";
        if key == "resource" && !provenance {
            // The resource itself stays even when empty, as with `prune`.
            if !write_pruned(value, out) {
                out.extend_from_slice(b"{}");
            }
        } else {
            write_compact(value, out);
        }
    }
    out.push(b'}');
}

/// Writes `v` without its empty values (nulls, blank strings, empty arrays
/// and objects, depth first: an object of empty members is empty), or
/// nothing at all when `v` itself ends up empty; says whether it wrote.
fn write_pruned(v: &Value, out: &mut Vec<u8>) -> bool {
    match v {
        Value::Object(map) => {
            write_pruned_members(map.iter().map(|(k, v)| (Some(k), v)), b"{}", out)
        }
        Value::Array(list) => write_pruned_members(list.iter().map(|v| (None, v)), b"[]", out),
        other if is_empty_value(other) => false,
        other => {
            write_compact(other, out);
            true
        }
    }
}

/// The members of an object (with keys) or an array, pruned, between
/// `brackets`; nothing when none is left.
fn write_pruned_members<'v>(
    members: impl Iterator<Item = (Option<&'static str>, &'v Value)>,
    brackets: &[u8; 2],
    out: &mut Vec<u8>,
) -> bool {
    let start = out.len();
    out.push(brackets[0]);
    let mut written = false;
    for (key, value) in members {
        let mark = out.len();
        if written {
            out.push(b',');
        }
        if let Some(key) = key {
            write_key(key, out);
        }
        if write_pruned(value, out) {
            written = true;
        } else {
            out.truncate(mark);
        }
    }
    if !written {
        out.truncate(start);
        return false;
    }
    out.push(brackets[1]);
    true
}

fn write_object(map: &Map, out: &mut Vec<u8>) {
    out.push(b'{');
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_key(key, out);
        write_compact(value, out);
    }
    out.push(b'}');
}

/// `"key":`. Keys are the mappers' literals (FHIR element names, letters
/// only), so nothing to escape and no scan; the corpus tests compare the
/// result with serde_json's bytes.
fn write_key(key: &'static str, out: &mut Vec<u8>) {
    debug_assert!(first_escape(key.as_bytes()).is_none(), "key {key:?}");
    out.reserve(key.len() + 3);
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

/// Does `b` have to be escaped inside a JSON string (as serde_json does:
/// the quote, the backslash and the C0 controls; not DEL, not `/`)?
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// The offset of the first byte of `bytes` that needs escaping. Eight
/// bytes at a time (SWAR): a byte-by-byte scan cost more than all the rest
/// of writing the Bundle.
fn first_escape(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Non-zero exactly when some byte of `v` is zero.
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let control = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
        let quote = has_zero(x ^ (ONES * u64::from(b'"')));
        let backslash = has_zero(x ^ (ONES * u64::from(b'\\')));
        if control | quote | backslash != 0 {
            return chunk
                .iter()
                .position(|&b| needs_escape(b))
                .map(|i| offset + i);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| needs_escape(b))
        .map(|i| offset + i)
}

fn write_str(s: &str, out: &mut Vec<u8>) {
    let mut rest = s.as_bytes();
    out.push(b'"');
    while let Some(i) = first_escape(rest) {
        let (clean, tail) = rest.split_at(i);
        out.extend_from_slice(clean);
        let Some((&b, tail)) = tail.split_first() else {
            break;
        };
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0C => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xF)]);
            }
        }
        rest = tail;
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::super::json::{json, Decimal};
    use super::*;

    fn ours(v: &Value) -> String {
        let mut out = Vec::new();
        write_compact(v, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn same_bytes_as_serde_json_for_every_escape() {
        let every_byte: String = (0u8..0x80).map(char::from).collect();
        let v = json!({
            "ascii": every_byte,
            "text": "Ünïcødé \u{2028} / ok",
            "empty": "",
            "list": [1, -7, 2.5, 1e21, 0.1, true, false, null, [], {}],
            "nested": { "b": "x\"y\\z", "a": [{ "k": "\t\r\n" }] },
        });
        assert_eq!(ours(&v), serde_json::to_string(&v).unwrap());
    }

    proptest::proptest! {
        #[test]
        fn any_string_as_serde_json(s in proptest::prelude::any::<String>(), t in "[ -~\\t\\n\\x00-\\x1f\"\\\\]{0,40}") {
            for text in [s, t] {
                let v = Value::from(text.clone());
                proptest::prop_assert_eq!(ours(&v), serde_json::to_string(&text).unwrap());
            }
        }
    }

    #[test]
    fn pruned_writing_equals_pruning_the_tree() {
        let resource = json!({
            "resourceType": "Observation",
            "a": "", "b": [{}, {"c": null}, " ", "x"], "d": {"e": [], "f": {"g": "  "}},
            "h": 0, "i": false, "j": " y ", "k": [[], [null]], "l": {"m": {"n": "z"}},
        });
        let mut pruned = resource.clone();
        super::super::bundle::prune(&mut pruned);
        let mut entry = Map::new();
        entry.insert("resource", resource);
        entry.insert("fullUrl", Value::from("urn:uuid:1"));
        let mut bundle = Map::new();
        bundle.insert("entry", Value::Array(vec![Value::Object(entry.clone())]));
        bundle.insert("type", Value::from("transaction"));
        let mut out = Vec::new();
        write_bundle(&Value::Object(bundle), &mut out);
        entry.insert("resource", pruned);
        let expected = json!({ "entry": [Value::Object(entry)], "type": "transaction" });
        assert_eq!(String::from_utf8(out).unwrap(), ours(&expected));
        // An object whose members are all empty writes as nothing.
        let mut out = Vec::new();
        assert!(!write_pruned(&json!({"a": [{}], "b": ""}), &mut out));
        assert!(out.is_empty());
    }

    #[test]
    fn decimals_verbatim() {
        let d = Decimal::new("1234567890.123456789000".to_string()).unwrap();
        let v = json!({ "value": d });
        assert_eq!(ours(&v), r#"{"value":1234567890.123456789000}"#);
    }
}
