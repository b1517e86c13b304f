//! NDJSON lines: the splitter a download streams through (bounded line
//! length, constant memory) and the check every line gets (a full JSON
//! validation, not a prefix sniff, in one pass with [`json_check`]:
//! `resourceType` must equal the manifest entry's type and the resource
//! must have a string `id`). Pure.
//!
//! [`json_check`]: super::json_check

use super::json_check::{check_object, TopLevel, NOT_UTF8};
use super::json_scan::string_value;

/// What a good line told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineInfo {
    pub id: String,
}

/// Why a line is refused (no PHI: the reason never quotes the line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError(pub String);

/// Check one line (without its `\n`) of a file the manifest says holds
/// `expected_type` resources. `expected_type` empty: any type.
pub fn check_line(line: &[u8], expected_type: &str) -> Result<LineInfo, LineError> {
    let line = trim_cr(line);
    let top = check(line, expected_type)?;
    let id = top
        .id
        .and_then(|r| string_value(&line[r]).map(|s| s.into_owned()))
        .unwrap_or_default();
    Ok(LineInfo { id })
}

/// The check in one pass over the line, without allocating: what it found
/// is what the tenant tag ([`super::tag::Tagger`]) splices from.
pub fn check(line: &[u8], expected_type: &str) -> Result<TopLevel, LineError> {
    let top = check_object(line).map_err(|e| match e.reason {
        NOT_UTF8 => LineError(format!("not UTF-8 (byte {})", e.offset + 1)),
        why => LineError(format!("not a JSON object (byte {}: {why})", e.offset + 1)),
    })?;
    if let Some(key) = top.duplicate {
        return Err(LineError(format!("the resource has two {key:?} keys")));
    }
    let text = |r: &Option<std::ops::Range<usize>>| r.clone().map(|r| string_value(&line[r]));
    let rt = match text(&top.resource_type) {
        Some(Some(s)) => s,
        Some(None) => return Err(LineError("resourceType is not a string".into())),
        None => return Err(LineError("no resourceType".into())),
    };
    if !expected_type.is_empty() && rt != expected_type {
        return Err(LineError(format!(
            "resourceType {rt:?} in a file the manifest lists as {expected_type:?}"
        )));
    }
    match text(&top.id) {
        Some(Some(id)) if !id.is_empty() => Ok(top),
        Some(_) => Err(LineError("id is not a non-empty string".into())),
        None => Err(LineError("no id".into())),
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A line the splitter hands out.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// A whole line, without `\n` (and without a trailing `\r`).
    Line(&'a [u8]),
    /// A line longer than the limit: its bytes were dropped as they came;
    /// `len` is how long it was.
    TooLong { len: usize },
}

/// Splits a byte stream into lines of at most `max` bytes, holding at most
/// `max` bytes of a partial line (an over-long line is skipped as it
/// streams, and reported once at its end). Blank lines are skipped.
pub struct LineSplitter {
    max: usize,
    partial: Vec<u8>,
    /// Bytes of the current over-long line seen so far (0: not in one).
    overflow: usize,
}

impl LineSplitter {
    pub fn new(max: usize) -> LineSplitter {
        LineSplitter {
            max: max.max(1),
            partial: Vec::new(),
            overflow: 0,
        }
    }

    /// Feed `chunk`; `each` gets every line it completes, in order.
    pub fn push<E>(
        &mut self,
        mut chunk: &[u8],
        each: &mut impl FnMut(Piece<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        while !chunk.is_empty() {
            let nl = memchr::memchr(b'\n', chunk);
            let (part, rest, ended) = match nl {
                Some(i) => (&chunk[..i], &chunk[i + 1..], true),
                None => (chunk, &[][..], false),
            };
            chunk = rest;
            if self.overflow > 0 || self.partial.len() + part.len() > self.max {
                self.overflow += self.partial.len() + part.len();
                self.partial.clear();
                if ended {
                    let len = std::mem::take(&mut self.overflow);
                    each(Piece::TooLong { len })?;
                }
                continue;
            }
            if !ended {
                self.partial.extend_from_slice(part);
                continue;
            }
            if self.partial.is_empty() {
                emit(part, each)?;
            } else {
                self.partial.extend_from_slice(part);
                let line = std::mem::take(&mut self.partial);
                emit(&line, each)?;
                self.partial = line;
                self.partial.clear();
            }
        }
        Ok(())
    }

    /// The end of the stream: a last line without `\n` counts too.
    pub fn finish<E>(
        &mut self,
        each: &mut impl FnMut(Piece<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.overflow > 0 {
            let len = std::mem::take(&mut self.overflow);
            self.partial.clear();
            return each(Piece::TooLong { len });
        }
        let line = std::mem::take(&mut self.partial);
        emit(&line, each)
    }
}

fn emit<E>(line: &[u8], each: &mut impl FnMut(Piece<'_>) -> Result<(), E>) -> Result<(), E> {
    let line = trim_cr(line);
    if line.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(());
    }
    each(Piece::Line(line))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_check_parses_the_whole_line() {
        let ok = br#"{"resourceType":"Patient","id":"p1","x":[1,2.50]}"#;
        assert_eq!(check_line(ok, "Patient").unwrap().id, "p1");
        // A prefix sniff would accept this: the tail is broken.
        assert!(check_line(br#"{"resourceType":"Patient","id":"p1","x":[1,"#, "Patient").is_err());
        assert!(check_line(
            br#"{"resourceType":"Patient","id":"p1"} trailing"#,
            "Patient"
        )
        .is_err());
        let e = check_line(br#"{"resourceType":"Observation","id":"o"}"#, "Patient").unwrap_err();
        assert!(e.0.contains("Observation"), "{e:?}");
        assert!(check_line(br#"{"resourceType":"Patient"}"#, "Patient").is_err());
        assert!(check_line(br#"{"resourceType":"Patient","id":""}"#, "Patient").is_err());
        assert!(check_line(br#"{"resourceType":"Patient","id":7}"#, "Patient").is_err());
        assert!(check_line(br#"{"id":"x"}"#, "").is_err());
        assert!(check_line(b"[1]", "").is_err());
        assert_eq!(
            check_line(b"{\"resourceType\":\"A\",\"id\":\"i\"}\r", "A")
                .unwrap()
                .id,
            "i"
        );
    }

    #[test]
    fn a_line_that_is_not_utf8_is_refused_even_in_a_field_serde_skips() {
        // fuzz/findings/export_ndjson: the 0xFF sat in a field the check
        // skips; the line then went out as "JSON" that is not.
        let line = b"{\"resourceType\":\"Patient\",\"id\":\"p\",\"\":{\"\":[{\"\":\"\xff\"}]}}";
        let e = check_line(line, "Patient").unwrap_err();
        assert!(e.0.contains("not UTF-8 (byte 49)"), "{e:?}");
        assert!(check_line(b"{\"resourceType\":\"Patient\",\"id\":\"p\xc3\"}", "").is_err());
        assert!(check_line("{\"resourceType\":\"Patient\",\"id\":\"é\"}".as_bytes(), "").is_ok());
    }

    fn split(input: &[&[u8]], max: usize) -> Vec<Result<Vec<u8>, usize>> {
        let mut out = Vec::new();
        let mut s = LineSplitter::new(max);
        let mut each = |p: Piece<'_>| -> Result<(), ()> {
            out.push(match p {
                Piece::Line(l) => Ok(l.to_vec()),
                Piece::TooLong { len } => Err(len),
            });
            Ok(())
        };
        for c in input {
            s.push(c, &mut each).unwrap();
        }
        s.finish(&mut each).unwrap();
        out
    }

    #[test]
    fn splits_across_chunks_and_skips_long_lines() {
        let got = split(&[b"ab", b"c\nde\n\nf", b"g\r\n", b"0123456789abc\nxy"], 8);
        assert_eq!(
            got,
            vec![
                Ok(b"abc".to_vec()),
                Ok(b"de".to_vec()),
                Ok(b"fg".to_vec()),
                Err(13),
                Ok(b"xy".to_vec())
            ]
        );
        assert_eq!(split(&[b"0123", b"4567", b"89"], 8), vec![Err(10)]);
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_same_lines(
            lines in proptest::collection::vec("[a-z{}\":,]{1,20}", 0..20),
            cuts in proptest::collection::vec(0usize..400, 0..10),
        ) {
            let text = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
            let bytes = text.as_bytes();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort();
            let mut chunks = Vec::new();
            let mut at = 0;
            for c in cuts { chunks.push(&bytes[at..c]); at = c; }
            chunks.push(&bytes[at..]);
            let got = split(&chunks, 16);
            let want: Vec<Result<Vec<u8>, usize>> = lines.iter().map(|l| if l.len() > 16 { Err(l.len()) } else { Ok(l.as_bytes().to_vec()) }).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn the_check_never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = check_line(&b, "Patient");
        }
    }
}
