//! Byte spans in one JSON text, for edits that leave every other byte as
//! it was (a resource's decimals, unknown extensions and key order stay
//! byte-identical). Pure and panic-free on any input: a malformed text is
//! an `Err`, never an index out of range. Its walk is the one strict walk
//! (RFC 8259 grammar: escapes and surrogate pairs, control characters,
//! numbers, literals, nesting up to 128) that the line check
//! (`json_check::check_object`) runs over a whole line; UTF-8 is checked
//! there, once per line, not here.

use std::borrow::Cow;
use std::ops::Range;

/// Why a text could not be scanned, with the byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanError {
    pub offset: usize,
    pub reason: &'static str,
}

pub type Scan<T> = Result<T, ScanError>;

pub(super) fn err<T>(offset: usize, reason: &'static str) -> Scan<T> {
    Err(ScanError { offset, reason })
}

/// Nesting deeper than this is refused (serde_json's limit too; no stack
/// overflow on hostile input).
const MAX_DEPTH: usize = 128;

/// Bytes that end the fast run through a string: `"`, `\` and the control
/// characters JSON forbids unescaped.
const STRING_STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = true;
        c += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

pub fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// The first index from `j` holding a [`STRING_STOP`] byte (or `b.len()`):
/// eight bytes at a time, the stop found in its word without a byte loop;
/// the last few bytes one by one.
#[inline]
fn string_run(b: &[u8], mut j: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(word) = b.get(j..j + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        let w = u64::from_le_bytes(w);
        let quote = w ^ (ONES * u64::from(b'"'));
        let backslash = w ^ (ONES * u64::from(b'\\'));
        // A byte is flagged if it is 0 (after the xor) or below 0x20; a
        // borrow only flags bytes above one already flagged, so a word
        // without a stop byte is never flagged, one with it always is, and
        // its lowest flagged byte (little-endian: the first) is a stop.
        let stop = ((quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (w.wrapping_sub(ONES * 0x20) & !w))
            & HIGH;
        if stop != 0 {
            return j + stop.trailing_zeros() as usize / 8;
        }
        j += 8;
    }
    while j < b.len() && !STRING_STOP[b[j] as usize] {
        j += 1;
    }
    j
}

/// `i` at a `"`: the index after the closing quote; the string validated
/// (escapes, surrogate pairs, no raw control characters).
pub fn skip_string(b: &[u8], i: usize) -> Scan<usize> {
    skip_string_escaped(b, i).map(|(end, _)| end)
}

/// [`skip_string`], and whether the string has an escape (its bytes are
/// its value when it has none).
pub fn skip_string_escaped(b: &[u8], i: usize) -> Scan<(usize, bool)> {
    if b.get(i) != Some(&b'"') {
        return err(i, "expected a string");
    }
    let mut j = i + 1;
    let mut escaped = false;
    loop {
        j = string_run(b, j);
        match b.get(j) {
            None => return err(i, "unterminated string"),
            Some(b'"') => return Ok((j + 1, escaped)),
            Some(b'\\') => {
                escaped = true;
                match b.get(j + 1) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => j += 2,
                    Some(b'u') => match hex4(b, j + 2) {
                        // A UTF-16 pair, as serde_json and other readers decode
                        // it: a lone surrogate is no character (it would fail
                        // them downstream).
                        Some(0xD800..=0xDBFF) => match (b.get(j + 6..j + 8), hex4(b, j + 8)) {
                            (Some(b"\\u"), Some(0xDC00..=0xDFFF)) => j += 12,
                            _ => return err(j, "a lone surrogate in a \\u escape"),
                        },
                        Some(0xDC00..=0xDFFF) => return err(j, "a lone surrogate in a \\u escape"),
                        Some(_) => j += 6,
                        None => return err(j, "a bad \\u escape"),
                    },
                    _ => return err(j, "a bad escape"),
                }
            }
            Some(_) => return err(j, "a control character in a string"),
        }
    }
}

/// The 4 hex digits at `i`, if they are there.
fn hex4(b: &[u8], i: usize) -> Option<u16> {
    let hex = std::str::from_utf8(b.get(i..i + 4)?).ok()?;
    if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(hex, 16).ok()
}

fn digits(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    i
}

/// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
fn number(b: &[u8], i: usize) -> Scan<usize> {
    let mut j = i + usize::from(b.get(i) == Some(&b'-'));
    j = match b.get(j) {
        Some(b'0') => j + 1,
        Some(b'1'..=b'9') => digits(b, j + 1),
        _ => return err(j, "a bad number"),
    };
    if b.get(j) == Some(&b'.') {
        let k = digits(b, j + 1);
        if k == j + 1 {
            return err(j, "a bad number");
        }
        j = k;
    }
    if matches!(b.get(j), Some(b'e' | b'E')) {
        let s = j + 1 + usize::from(matches!(b.get(j + 1), Some(b'+' | b'-')));
        let k = digits(b, s);
        if k == s {
            return err(j, "a bad number");
        }
        j = k;
    }
    Ok(j)
}

fn literal(b: &[u8], i: usize, word: &[u8]) -> Scan<usize> {
    if b.get(i..i + word.len()) == Some(word) {
        Ok(i + word.len())
    } else {
        err(i, "expected a value")
    }
}

/// The end of the value starting at `i` (after leading whitespace), validated.
pub fn skip_value(b: &[u8], i: usize) -> Scan<usize> {
    skip_value_depth(b, skip_ws(b, i), 0)
}

/// The end of the value at `i` (no leading whitespace), validated; `depth`
/// containers already open around it.
pub fn skip_value_depth(b: &[u8], i: usize, depth: usize) -> Scan<usize> {
    match b.get(i) {
        Some(b'"') => skip_string(b, i),
        Some(b'{' | b'[') if depth >= MAX_DEPTH => err(i, "nested too deeply"),
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
        Some(b't') => literal(b, i, b"true"),
        Some(b'f') => literal(b, i, b"false"),
        Some(b'n') => literal(b, i, b"null"),
        Some(b'-' | b'0'..=b'9') => number(b, i),
        _ => err(i, "expected a value"),
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
        // The one strict walk: what the line check refuses, spans refuse too.
        for t in [
            &b"[01]"[..],
            b"1.",
            b"tru",
            b"\"\\x\"",
            b"\"\\ud800\"",
            b"[1,]",
            b"\"a\tb\"",
        ] {
            assert!(skip_value(t, 0).is_err(), "{t:?}");
        }
        assert_eq!(skip_value(b" -1.5e+3,", 0), Ok(8));
    }

    #[test]
    fn the_word_at_a_time_run_stops_where_the_byte_loop_does() {
        // Every stop byte at every offset of a long ASCII / UTF-8 run.
        let base = "abcdefgh\u{e9}\u{1F600}ijklmnopqrstuvwxyz0123456789".as_bytes();
        for stop in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
            for at in 0..base.len() {
                let mut t = base.to_vec();
                t[at] = stop;
                let want = t.iter().position(|c| STRING_STOP[*c as usize]);
                assert_eq!(string_run(&t, 0), want.unwrap_or(t.len()), "{stop} at {at}");
            }
        }
        assert_eq!(string_run(base, 3), base.len());
        for c in [0x20u8, 0x21, 0x7f, 0x80, 0xa2, 0xdc, 0xff, b'!', b'#', b'['] {
            assert_eq!(string_run(&[c; 19], 0), 19, "{c:#x}");
        }
    }
}
