//! Byte spans in one JSON text, for edits that leave every other byte as
//! it was (a resource's decimals, unknown extensions and key order stay
//! byte-identical). Pure and panic-free on any input: a malformed text is
//! an `Err`, never an index out of range. It does not validate numbers or
//! UTF-8 (the line check's full parse, `ndjson::check_line`, does); it
//! only finds where values begin and end.

use std::borrow::Cow;
use std::ops::Range;

/// Why a text could not be scanned, with the byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanError {
    pub offset: usize,
    pub reason: &'static str,
}

pub type Scan<T> = Result<T, ScanError>;

fn err<T>(offset: usize, reason: &'static str) -> Scan<T> {
    Err(ScanError { offset, reason })
}

/// Nesting deeper than this is refused (no stack overflow on hostile input).
const MAX_DEPTH: usize = 128;

pub fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// `i` at a `"`: the index after the closing quote.
pub fn skip_string(b: &[u8], i: usize) -> Scan<usize> {
    if b.get(i) != Some(&b'"') {
        return err(i, "expected a string");
    }
    let mut j = i + 1;
    loop {
        match b.get(j) {
            None => return err(i, "unterminated string"),
            Some(b'"') => return Ok(j + 1),
            Some(b'\\') => j += 2,
            Some(_) => j += 1,
        }
    }
}

/// The end of the value starting at `i` (after leading whitespace).
pub fn skip_value(b: &[u8], i: usize) -> Scan<usize> {
    skip_value_depth(b, skip_ws(b, i), 0)
}

fn skip_value_depth(b: &[u8], i: usize, depth: usize) -> Scan<usize> {
    if depth > MAX_DEPTH {
        return err(i, "nested too deeply");
    }
    match b.get(i) {
        None => err(i, "expected a value"),
        Some(b'"') => skip_string(b, i),
        Some(b'{') => {
            let mut j = skip_ws(b, i + 1);
            if b.get(j) == Some(&b'}') {
                return Ok(j + 1);
            }
            loop {
                j = skip_string(b, j)?;
                j = skip_ws(b, j);
                if b.get(j) != Some(&b':') {
                    return err(j, "expected ':'");
                }
                j = skip_value_depth(b, skip_ws(b, j + 1), depth + 1)?;
                j = skip_ws(b, j);
                match b.get(j) {
                    Some(b',') => j = skip_ws(b, j + 1),
                    Some(b'}') => return Ok(j + 1),
                    _ => return err(j, "expected ',' or '}'"),
                }
            }
        }
        Some(b'[') => {
            let mut j = skip_ws(b, i + 1);
            if b.get(j) == Some(&b']') {
                return Ok(j + 1);
            }
            loop {
                j = skip_value_depth(b, j, depth + 1)?;
                j = skip_ws(b, j);
                match b.get(j) {
                    Some(b',') => j = skip_ws(b, j + 1),
                    Some(b']') => return Ok(j + 1),
                    _ => return err(j, "expected ',' or ']'"),
                }
            }
        }
        Some(_) => {
            // Number or literal: up to the next delimiter.
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            {
                j += 1;
            }
            if j == i {
                return err(i, "expected a value");
            }
            Ok(j)
        }
    }
}

/// One member of an object: the key's span (quotes included) and the
/// value's span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub key: Range<usize>,
    pub value: Range<usize>,
}

impl Member {
    /// The key, unescaped.
    pub fn name<'a>(&self, b: &'a [u8]) -> Cow<'a, str> {
        string_value(&b[self.key.clone()]).unwrap_or(Cow::Borrowed(""))
    }

    pub fn is(&self, b: &[u8], name: &str) -> bool {
        let raw = &b[self.key.start + 1..self.key.end - 1];
        if !raw.contains(&b'\\') {
            return raw == name.as_bytes();
        }
        self.name(b) == name
    }
}

/// The members of the object whose `{` is at `open` (after whitespace), in
/// order, and the index of its closing `}`.
pub fn members(b: &[u8], open: usize) -> Scan<(Vec<Member>, usize)> {
    let open = skip_ws(b, open);
    if b.get(open) != Some(&b'{') {
        return err(open, "expected an object");
    }
    let mut out = Vec::new();
    let mut j = skip_ws(b, open + 1);
    if b.get(j) == Some(&b'}') {
        return Ok((out, j));
    }
    loop {
        let key_start = j;
        j = skip_string(b, j)?;
        let key = key_start..j;
        j = skip_ws(b, j);
        if b.get(j) != Some(&b':') {
            return err(j, "expected ':'");
        }
        let v = skip_ws(b, j + 1);
        j = skip_value_depth(b, v, 1)?;
        out.push(Member { key, value: v..j });
        j = skip_ws(b, j);
        match b.get(j) {
            Some(b',') => j = skip_ws(b, j + 1),
            Some(b'}') => return Ok((out, j)),
            _ => return err(j, "expected ',' or '}'"),
        }
    }
}

/// The spans of the elements of the array whose `[` is at `open`, and the
/// index of its closing `]`.
pub fn elements(b: &[u8], open: usize) -> Scan<(Vec<Range<usize>>, usize)> {
    let open = skip_ws(b, open);
    if b.get(open) != Some(&b'[') {
        return err(open, "expected an array");
    }
    let mut out = Vec::new();
    let mut j = skip_ws(b, open + 1);
    if b.get(j) == Some(&b']') {
        return Ok((out, j));
    }
    loop {
        let start = j;
        j = skip_value_depth(b, j, 1)?;
        out.push(start..j);
        j = skip_ws(b, j);
        match b.get(j) {
            Some(b',') => j = skip_ws(b, j + 1),
            Some(b']') => return Ok((out, j)),
            _ => return err(j, "expected ',' or ']'"),
        }
    }
}

/// A JSON string's value (the span includes the quotes); `None` if it is
/// not a string.
pub fn string_value(raw: &[u8]) -> Option<Cow<'_, str>> {
    if raw.len() < 2 || raw[0] != b'"' || raw[raw.len() - 1] != b'"' {
        return None;
    }
    let inner = &raw[1..raw.len() - 1];
    if !inner.contains(&b'\\') {
        return std::str::from_utf8(inner).ok().map(Cow::Borrowed);
    }
    serde_json::from_slice::<String>(raw).ok().map(Cow::Owned)
}

/// `s` as a JSON string literal, quotes included.
pub fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// The first member named `name`, and whether a second one exists (a
/// duplicate key, which a resource must not have).
pub fn find<'m>(b: &[u8], ms: &'m [Member], name: &str) -> (Option<&'m Member>, bool) {
    let mut found = ms.iter().filter(|m| m.is(b, name));
    let first = found.next();
    (first, found.next().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_and_elements() {
        let b = br#" { "a" : [1, {"x":"}"}] , "b\u0022":"q\"", "c":true } "#;
        let (ms, close) = members(b, 0).unwrap();
        assert_eq!(ms.len(), 3);
        assert_eq!(&b[ms[0].value.clone()], br#"[1, {"x":"}"}]"#);
        assert_eq!(ms[1].name(b), "b\"");
        assert_eq!(&b[ms[2].value.clone()], b"true");
        assert_eq!(b[close], b'}');
        let (es, _) = elements(b, ms[0].value.start).unwrap();
        assert_eq!(es.len(), 2);
        assert_eq!(&b[es[1].clone()], br#"{"x":"}"}"#);
    }

    #[test]
    fn malformed_is_an_error_not_a_panic() {
        for t in [
            &b"{"[..],
            b"{\"a\"",
            b"{\"a\":",
            b"{\"a\":1,",
            b"[1,",
            b"\"abc",
            b"{\"a\":\"\\",
            b"",
        ] {
            assert!(members(t, 0).is_err() || skip_value(t, 0).is_err(), "{t:?}");
        }
        let deep = "[".repeat(10_000);
        assert!(skip_value(deep.as_bytes(), 0).is_err());
    }
}
