//! MSH-18: turning a value's bytes into text, and text back into bytes.
//!
//! | MSH-18                         | decoding                                      |
//! | ------------------------------ | --------------------------------------------- |
//! | `8859/1`                       | ISO 8859-1: every byte is the char U+00xx      |
//! | `UNICODE UTF-8`, `UTF-8`       | UTF-8; a value that is not valid UTF-8 falls back to Latin-1 |
//! | `ASCII`                        | as UTF-8 (so stray high bytes are not lost)   |
//! | absent, or anything else       | as UTF-8 (the default)                        |
//!
//! The Latin-1 fallback is per value (one field, component...), and it is
//! lossless: every byte sequence decodes to some text and nothing becomes
//! U+FFFD. Raw bytes are always available alongside the decoded text.

use std::borrow::Cow;

/// A message's character set, read from MSH-18.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Charset {
    /// MSH-18 empty: UTF-8 with Latin-1 fallback.
    #[default]
    Default,
    /// `ASCII`: decoded like [`Charset::Default`].
    Ascii,
    /// `8859/1`.
    Latin1,
    /// `UNICODE UTF-8` (or `UTF-8`).
    Utf8,
    /// A character set we do not implement (8859/2, ISO IR87, UNICODE ...):
    /// decoded like [`Charset::Default`]; the name is in the header summary.
    Other,
}

impl Charset {
    /// Reads the first repetition of MSH-18 (already decoded text).
    pub fn from_msh18(name: &str) -> Charset {
        let n = name.trim();
        if n.is_empty() {
            Charset::Default
        } else if n.eq_ignore_ascii_case("ASCII") {
            Charset::Ascii
        } else if n.eq_ignore_ascii_case("8859/1") || n.eq_ignore_ascii_case("ISO-8859-1") {
            Charset::Latin1
        } else if n.eq_ignore_ascii_case("UNICODE UTF-8")
            || n.eq_ignore_ascii_case("UTF-8")
            || n.eq_ignore_ascii_case("UTF8")
        {
            Charset::Utf8
        } else {
            Charset::Other
        }
    }

    /// Decodes bytes (already unescaped) to text. Never fails.
    pub fn decode<'a>(self, bytes: &'a [u8]) -> Cow<'a, str> {
        match self {
            Charset::Latin1 => decode_latin1(bytes),
            _ => match std::str::from_utf8(bytes) {
                Ok(s) => Cow::Borrowed(s),
                Err(_) => decode_latin1(bytes),
            },
        }
    }

    /// Like [`Charset::decode`] for an owned buffer, without copying valid UTF-8.
    pub fn decode_owned(self, bytes: Vec<u8>) -> String {
        match self {
            Charset::Latin1 => latin1_string(&bytes),
            _ => String::from_utf8(bytes).unwrap_or_else(|e| latin1_string(e.as_bytes())),
        }
    }

    /// Appends `text` encoded in this character set. Characters Latin-1
    /// cannot hold become `?`; for ASCII, the caller escapes non-ASCII text
    /// as `\Xhh\` (see [`super::escape`]) before it gets here.
    pub fn encode_into(self, text: &str, out: &mut Vec<u8>) {
        match self {
            Charset::Latin1 => out.extend(
                text.chars()
                    .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?')),
            ),
            _ => out.extend_from_slice(text.as_bytes()),
        }
    }
}

fn decode_latin1(bytes: &[u8]) -> Cow<'_, str> {
    if bytes.is_ascii() {
        // ASCII is valid UTF-8.
        match std::str::from_utf8(bytes) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => Cow::Owned(latin1_string(bytes)),
        }
    } else {
        Cow::Owned(latin1_string(bytes))
    }
}

fn latin1_string(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(Charset::from_msh18(""), Charset::Default);
        assert_eq!(Charset::from_msh18("ASCII"), Charset::Ascii);
        assert_eq!(Charset::from_msh18("8859/1"), Charset::Latin1);
        assert_eq!(Charset::from_msh18("UNICODE UTF-8"), Charset::Utf8);
        assert_eq!(Charset::from_msh18("utf-8"), Charset::Utf8);
        assert_eq!(Charset::from_msh18("8859/2"), Charset::Other);
    }

    #[test]
    fn latin1_maps_bytes_to_chars() {
        assert_eq!(Charset::Latin1.decode(b"Jos\xE9"), "José");
        // Valid UTF-8 under 8859/1 is still read as Latin-1: the sender said so.
        assert_eq!(Charset::Latin1.decode("é".as_bytes()), "Ã©");
        assert!(matches!(
            Charset::Latin1.decode(b"plain"),
            Cow::Borrowed("plain")
        ));
    }

    #[test]
    fn utf8_and_fallback() {
        assert!(matches!(
            Charset::Utf8.decode("Zoë".as_bytes()),
            Cow::Borrowed("Zoë")
        ));
        assert_eq!(Charset::Default.decode(b"Jos\xE9"), "José");
        assert_eq!(Charset::Utf8.decode(b"\xFF\xFE"), "ÿþ");
        assert_eq!(Charset::Ascii.decode("Zoë".as_bytes()), "Zoë");
        assert_eq!(Charset::Default.decode_owned(b"Jos\xE9".to_vec()), "José");
        assert_eq!(Charset::Latin1.decode_owned(b"\xE9".to_vec()), "é");
    }

    #[test]
    fn encode() {
        let mut v = Vec::new();
        Charset::Latin1.encode_into("é€", &mut v);
        assert_eq!(v, b"\xE9?");
        v.clear();
        Charset::Utf8.encode_into("é", &mut v);
        assert_eq!(v, "é".as_bytes());
    }
}
