//! Escape sequences: decoding `\F\`-style sequences in received values and
//! escaping text for output. The escape character shown here as `\` is the
//! one the message declares in MSH-2.
//!
//! Decoding ([`unescape`]), sequence by sequence:
//!
//! | sequence                 | decoded to                                         |
//! | ------------------------ | -------------------------------------------------- |
//! | `\F\` `\S\` `\T\` `\R\` `\E\` | the field, component, subcomponent, repetition, escape character |
//! | `\P\`                    | the truncation character, when MSH-2 declares one (else kept literally) |
//! | `\Xhhhh..\`              | the bytes given by the hex pairs (then decoded with the message charset) |
//! | `\.br\`                  | a newline                                          |
//! | `\.sp\`, `\.sp n\`       | n newlines (default 1, at most 99)                 |
//! | `\.fi\` `\.nf\` `\.in n\` `\.ti n\` `\.sk n\` `\.ce\` | removed (layout hints only)  |
//! | `\H\` `\N\`              | removed (start/end highlighting)                   |
//! | `\Cxxyy\` `\Mxxyyzz\` `\Zxx\` and anything else | kept literally, escape characters included: we do not switch character sets mid-value and do not know local escapes, so we pass them on rather than lose them |
//! | an escape character with no closing one | kept literally                      |
//!
//! Escaping ([`escape`]): the five (or six) delimiters become `\F\ \S\ \R\
//! \E\ \T\ (\P\)`, a newline becomes `\.br\` (or `\X0A\` when `.` is one
//! of the message's delimiters), and CR and the MLLP framing
//! bytes 0x0B and 0x1C become `\X0D\`, `\X0B\`, `\X1C\` (they would otherwise
//! end a segment or a frame). For every text `t`, `unescape(escape(t)) == t`.

use std::borrow::Cow;

use super::charset::Charset;
use super::header::EncodingChars;

/// The most newlines one `\.sp n\` expands to (bounds output size).
const MAX_SP: usize = 99;

/// Decodes the escape sequences in `raw` into bytes (still in the message's
/// character set). Borrows when there is nothing to decode.
pub fn unescape<'a>(raw: &'a [u8], enc: &EncodingChars) -> Cow<'a, [u8]> {
    let esc = enc.escape;
    let Some(first) = raw.iter().position(|&b| b == esc) else {
        return Cow::Borrowed(raw);
    };
    let mut out = Vec::with_capacity(raw.len());
    out.extend_from_slice(raw.get(..first).unwrap_or_default());
    let mut rest = raw.get(first..).unwrap_or_default();
    while let Some((&b, after)) = rest.split_first() {
        if b != esc {
            out.push(b);
            rest = after;
            continue;
        }
        match after.iter().position(|&c| c == esc) {
            None => {
                // No closing escape character: keep the rest literally.
                out.extend_from_slice(rest);
                break;
            }
            Some(len) => {
                let body = after.get(..len).unwrap_or_default();
                let whole = rest.get(..len + 2).unwrap_or(rest);
                if !decode_sequence(body, enc, &mut out) {
                    out.extend_from_slice(whole);
                }
                rest = rest.get(len + 2..).unwrap_or_default();
            }
        }
    }
    Cow::Owned(out)
}

/// Unescapes and decodes a value to text with the message's charset.
pub fn decode_text<'a>(raw: &'a [u8], enc: &EncodingChars, charset: Charset) -> Cow<'a, str> {
    match unescape(raw, enc) {
        Cow::Borrowed(b) => charset.decode(b),
        Cow::Owned(v) => Cow::Owned(charset.decode_owned(v)),
    }
}

/// Appends what one escape sequence (between the escape characters) stands
/// for; false when we do not decode it (the caller keeps it literally).
fn decode_sequence(body: &[u8], enc: &EncodingChars, out: &mut Vec<u8>) -> bool {
    match body {
        b"F" => out.push(enc.field),
        b"S" => out.push(enc.component),
        b"T" => out.push(enc.subcomponent),
        b"R" => out.push(enc.repetition),
        b"E" => out.push(enc.escape),
        b"P" => match enc.truncation {
            Some(t) => out.push(t),
            None => return false,
        },
        b"H" | b"N" => {}
        [b'X', hex @ ..] => return decode_hex(hex, out),
        [b'.', cmd @ ..] => return decode_format(cmd, out),
        _ => return false,
    }
    true
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn decode_hex(hex: &[u8], out: &mut Vec<u8>) -> bool {
    if hex.is_empty() || hex.len() % 2 != 0 {
        return false;
    }
    let mut bytes = Vec::with_capacity(hex.len() / 2);
    for pair in hex.chunks_exact(2) {
        match (
            pair.first().copied().and_then(hex_val),
            pair.get(1).copied().and_then(hex_val),
        ) {
            (Some(h), Some(l)) => bytes.push(h << 4 | l),
            _ => return false,
        }
    }
    out.extend_from_slice(&bytes);
    true
}

fn decode_format(cmd: &[u8], out: &mut Vec<u8>) -> bool {
    let (name, arg) = cmd.split_at(cmd.len().min(2));
    let arg_ok = || {
        arg.iter()
            .all(|b| b.is_ascii_digit() || matches!(b, b' ' | b'+' | b'-'))
    };
    match name {
        b"br" if arg.is_empty() => out.push(b'\n'),
        b"sp" if arg_ok() => {
            let digits: Vec<u8> = arg.iter().copied().filter(u8::is_ascii_digit).collect();
            let n = if digits.is_empty() {
                1
            } else {
                std::str::from_utf8(&digits)
                    .ok()
                    .and_then(|s| s.parse::<usize>().ok())
                    .unwrap_or(MAX_SP)
            };
            out.resize(out.len() + n.min(MAX_SP), b'\n');
        }
        b"fi" | b"nf" | b"ce" if arg.is_empty() => {}
        b"in" | b"ti" | b"sk" if arg_ok() => {}
        _ => return false,
    }
    true
}

/// The letter that escapes a delimiter byte, if `b` is one.
fn escape_letter(b: u8, enc: &EncodingChars) -> Option<u8> {
    if b == enc.field {
        Some(b'F')
    } else if b == enc.component {
        Some(b'S')
    } else if b == enc.repetition {
        Some(b'R')
    } else if b == enc.escape {
        Some(b'E')
    } else if b == enc.subcomponent {
        Some(b'T')
    } else if Some(b) == enc.truncation {
        Some(b'P')
    } else {
        None
    }
}

/// Escapes text for use as one value (subcomponent) of a message with these
/// delimiters. The result is UTF-8; see [`escape_into`] for other charsets.
pub fn escape(text: &str, enc: &EncodingChars) -> String {
    let mut out = Vec::with_capacity(text.len() + 8);
    escape_into(text, enc, Charset::Utf8, &mut out);
    // Only ASCII escape sequences were added to valid UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// Escapes `text` and appends it encoded in `charset`: non-ASCII text is
/// written as `\Xhh..\` (its UTF-8 bytes) for ASCII, as Latin-1 bytes for
/// 8859/1 (`?` when Latin-1 cannot hold it), and as UTF-8 otherwise.
pub fn escape_into(text: &str, enc: &EncodingChars, charset: Charset, out: &mut Vec<u8>) {
    let esc = enc.escape;
    let mut plain_start = 0;
    let flush = |out: &mut Vec<u8>, from: usize, to: usize| {
        if let Some(s) = text.get(from..to) {
            charset.encode_into(s, out);
        }
    };
    for (i, original) in text.char_indices() {
        // What Latin-1 cannot hold becomes `?`, which may itself need escaping.
        let c = if charset == Charset::Latin1 && u32::from(original) > 0xFF {
            '?'
        } else {
            original
        };
        let mut utf8 = [0u8; 4];
        let replacement: Option<&[u8]> = if c.is_ascii() {
            let b = c as u8;
            match (escape_letter(b, enc), b) {
                (Some(l), _) => Some(match l {
                    b'F' => b"F",
                    b'S' => b"S",
                    b'R' => b"R",
                    b'E' => b"E",
                    b'T' => b"T",
                    _ => b"P",
                }),
                // `\.br\` would be split apart if `.` is a delimiter.
                (None, b'\n') if enc.is_special(b'.') => Some(b"X0A"),
                (None, b'\n') => Some(b".br"),
                (None, b'\r') => Some(b"X0D"),
                (None, 0x0B) => Some(b"X0B"),
                (None, 0x1C) => Some(b"X1C"),
                _ => None,
            }
        } else if charset == Charset::Ascii {
            flush(out, plain_start, i);
            out.push(esc);
            out.push(b'X');
            for b in c.encode_utf8(&mut utf8).bytes() {
                out.extend_from_slice(format!("{b:02X}").as_bytes());
            }
            out.push(esc);
            plain_start = i + original.len_utf8();
            continue;
        } else {
            None
        };
        if let Some(seq) = replacement {
            flush(out, plain_start, i);
            out.push(esc);
            out.extend_from_slice(seq);
            out.push(esc);
            plain_start = i + original.len_utf8();
        }
    }
    flush(out, plain_start, text.len());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn un(s: &str) -> String {
        decode_text(s.as_bytes(), &EncodingChars::default(), Charset::Default).into_owned()
    }

    #[test]
    fn delimiter_escapes() {
        assert_eq!(un(r"a\F\b\S\c\T\d\R\e\E\f"), r"a|b^c&d~e\f");
        let odd = EncodingChars::from_msh(b'#', b"*@!%").unwrap();
        assert_eq!(
            decode_text(b"a!F!b!S!c!T!d!R!e!E!", &odd, Charset::Default),
            "a#b*c%d@e!"
        );
        // `\` is not the escape character here.
        assert_eq!(decode_text(br"a\F\b", &odd, Charset::Default), r"a\F\b");
    }

    #[test]
    fn truncation_escape() {
        let t = EncodingChars::from_msh(b'|', b"^~\\&#").unwrap();
        assert_eq!(decode_text(br"x\P\y", &t, Charset::Default), "x#y");
        assert_eq!(un(r"x\P\y"), r"x\P\y");
        assert_eq!(escape("1#2", &t), r"1\P\2");
    }

    #[test]
    fn hex_escapes() {
        assert_eq!(un(r"\X41\"), "A");
        assert_eq!(un(r"\X4142430D\"), "ABC\r");
        assert_eq!(un(r"caf\XC3A9\"), "café");
        assert_eq!(un(r"\x41\"), r"\x41\"); // lower-case x is not the hex escape
        assert_eq!(un(r"\X414\"), r"\X414\"); // odd digits: literal
        assert_eq!(un(r"\XZZ\"), r"\XZZ\");
        assert_eq!(un(r"\X\"), r"\X\");
        // Hex bytes are decoded with the message charset.
        assert_eq!(
            decode_text(br"Jos\XE9\", &EncodingChars::default(), Charset::Latin1),
            "José"
        );
    }

    #[test]
    fn formatting_escapes() {
        assert_eq!(un(r"line1\.br\line2"), "line1\nline2");
        assert_eq!(un(r"a\.sp\b"), "a\nb");
        assert_eq!(un(r"a\.sp 3\b"), "a\n\n\nb");
        assert_eq!(un(r"a\.sp+2\b"), "a\n\nb");
        assert_eq!(un(r"a\.sp 100000\b").len(), 2 + MAX_SP);
        assert_eq!(un(r"\.fi\a\.nf\b\.in 4\c\.ti -2\d\.sk 1\e\.ce\"), "abcde");
        assert_eq!(un(r"a\.zz\b"), r"a\.zz\b");
        assert_eq!(un(r"a\.br2\b"), r"a\.br2\b");
    }

    #[test]
    fn highlight_dropped_others_kept() {
        assert_eq!(un(r"\H\bold\N\ plain"), "bold plain");
        assert_eq!(un(r"\C2842\x"), r"\C2842\x");
        assert_eq!(un(r"\M2442\x"), r"\M2442\x");
        assert_eq!(un(r"\Zfoo\x"), r"\Zfoo\x");
        assert_eq!(un(r"C:\Q\R"), r"C:\Q\R");
    }

    #[test]
    fn malformed_kept_literally() {
        assert_eq!(un(r"abc\F"), r"abc\F");
        assert_eq!(un(r"\"), r"\");
        assert_eq!(un(r"a\\b"), r"a\\b");
        assert_eq!(un(r"a\F\b\"), r"a|b\");
    }

    #[test]
    fn borrowed_when_nothing_to_do() {
        assert!(matches!(
            unescape(b"plain", &EncodingChars::default()),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn escape_all_specials() {
        let e = EncodingChars::default();
        assert_eq!(escape("a|b^c~d\\e&f", &e), r"a\F\b\S\c\R\d\E\e\T\f");
        assert_eq!(
            escape("x\ny\rz\u{0B}\u{1C}", &e),
            r"x\.br\y\X0D\z\X0B\\X1C\"
        );
        assert_eq!(escape("plain é", &e), "plain é");
        for t in ["a|b^c~d\\e&f", "x\ny\r\nz", "\u{0B}\u{1C}", "é€", r"\F\"] {
            assert_eq!(un(&escape(t, &e)), t);
        }
    }

    #[test]
    fn newline_when_dot_is_a_delimiter() {
        // Found by proptest: `\.br\` must not be used when `.` splits values.
        let odd = EncodingChars::from_msh(b'#', b"%&'.").unwrap();
        assert_eq!(escape("a\nb", &odd), "a'X0A'b");
        assert_eq!(decode_text(b"a'X0A'b", &odd, Charset::Default), "a\nb");
    }

    #[test]
    fn escape_charsets() {
        let e = EncodingChars::default();
        let mut v = Vec::new();
        escape_into("é|€", &e, Charset::Ascii, &mut v);
        assert_eq!(v, br"\XC3A9\\F\\XE282AC\");
        assert_eq!(decode_text(&v, &e, Charset::Ascii), "é|€");
        v.clear();
        escape_into("é|", &e, Charset::Latin1, &mut v);
        assert_eq!(v, b"\xE9\\F\\");
        assert_eq!(decode_text(&v, &e, Charset::Latin1), "é|");
        // Found by proptest: the `?` standing for an unencodable character
        // must be escaped when `?` is a delimiter.
        let q = EncodingChars::from_msh(b'?', b"^~\\&").unwrap();
        v.clear();
        escape_into("a€b", &q, Charset::Latin1, &mut v);
        assert_eq!(v, br"a\F\b");
    }
}
