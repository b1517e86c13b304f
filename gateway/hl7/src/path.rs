//! Value paths: `PID-3`, `PID-3.1`, `PID-3[2].4.1`, `OBX(2)-5`.
//!
//! ```text
//! path     = segment [ "(" occurrence ")" ] "-" field-part
//! field-part = field [ "[" repetition "]" ] [ "." component [ "." subcomponent ] ]
//! ```
//!
//! All numbers are 1-based. `occurrence` picks the nth segment with that id
//! (default 1). Without `[repetition]`, a path that names a component means
//! the first repetition (`PID-3.1` = `PID-3[1].1`), and a path that stops
//! at the field means the whole field, all repetitions. Parse a path once
//! with [`Path::parse`] and reuse it in hot loops.

use std::fmt;

/// A parsed path to a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    /// Segment id, e.g. `*b"PID"`.
    pub segment: [u8; 3],
    /// Which segment with that id, 1-based.
    pub occurrence: usize,
    pub field: FieldPath,
}

/// The part of a path inside one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldPath {
    pub field: usize,
    pub repetition: Option<usize>,
    pub component: Option<usize>,
    pub subcomponent: Option<usize>,
}

/// Why a path string is not a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathError {
    pub path: String,
    pub reason: &'static str,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad path '{}': {}", self.path, self.reason)
    }
}
impl std::error::Error for PathError {}

/// A small cursor over the path text.
struct Cursor<'s> {
    rest: &'s [u8],
}

impl Cursor<'_> {
    fn eat(&mut self, c: u8) -> bool {
        match self.rest.split_first() {
            Some((&b, r)) if b == c => {
                self.rest = r;
                true
            }
            _ => false,
        }
    }

    /// A positive number of at most 6 digits.
    fn number(&mut self) -> Result<usize, &'static str> {
        let n = self.rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 {
            return Err("expected a number");
        }
        if n > 6 {
            return Err("number too large");
        }
        let (digits, rest) = self.rest.split_at(n);
        self.rest = rest;
        let v = digits
            .iter()
            .fold(0usize, |acc, d| acc * 10 + usize::from(d - b'0'));
        if v == 0 {
            return Err("positions start at 1");
        }
        Ok(v)
    }

    fn field_part(&mut self) -> Result<FieldPath, &'static str> {
        let field = self.number()?;
        let repetition = if self.eat(b'[') {
            let r = self.number()?;
            if !self.eat(b']') {
                return Err("expected ']'");
            }
            Some(r)
        } else {
            None
        };
        let mut component = None;
        let mut subcomponent = None;
        if self.eat(b'.') {
            component = Some(self.number()?);
            if self.eat(b'.') {
                subcomponent = Some(self.number()?);
            }
        }
        if !self.rest.is_empty() {
            return Err("unexpected text after the path");
        }
        Ok(FieldPath {
            field,
            repetition,
            component,
            subcomponent,
        })
    }
}

impl Path {
    /// Parses `SEG(n)-F[r].C.S`; see the module doc.
    pub fn parse(s: &str) -> Result<Path, PathError> {
        let err = |reason| PathError {
            path: s.to_string(),
            reason,
        };
        let b = s.as_bytes();
        let (id, rest) = b.split_at(b.len().min(3));
        let segment: [u8; 3] = match <[u8; 3]>::try_from(id) {
            Ok(a) if a.iter().all(u8::is_ascii_alphanumeric) => a,
            _ => return Err(err("segment id must be 3 letters or digits")),
        };
        let mut c = Cursor { rest };
        let occurrence = if c.eat(b'(') {
            let n = c.number().map_err(err)?;
            if !c.eat(b')') {
                return Err(err("expected ')'"));
            }
            n
        } else {
            1
        };
        if !c.eat(b'-') {
            return Err(err("expected '-' after the segment id"));
        }
        let field = c.field_part().map_err(err)?;
        Ok(Path {
            segment,
            occurrence,
            field,
        })
    }
}

impl FieldPath {
    /// Parses the part after `SEG-`: `F[r].C.S`.
    pub fn parse(s: &str) -> Result<FieldPath, PathError> {
        Cursor { rest: s.as_bytes() }
            .field_part()
            .map_err(|reason| PathError {
                path: s.to_string(),
                reason,
            })
    }
}

impl std::str::FromStr for Path {
    type Err = PathError;
    fn from_str(s: &str) -> Result<Path, PathError> {
        Path::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(field: usize, r: Option<usize>, c: Option<usize>, s: Option<usize>) -> FieldPath {
        FieldPath {
            field,
            repetition: r,
            component: c,
            subcomponent: s,
        }
    }

    #[test]
    fn parses() {
        assert_eq!(
            Path::parse("PID-3[2].4.1").unwrap(),
            Path {
                segment: *b"PID",
                occurrence: 1,
                field: fp(3, Some(2), Some(4), Some(1))
            }
        );
        assert_eq!(
            Path::parse("OBX(12)-5").unwrap(),
            Path {
                segment: *b"OBX",
                occurrence: 12,
                field: fp(5, None, None, None)
            }
        );
        assert_eq!(
            Path::parse("MSH-9.2").unwrap().field,
            fp(9, None, Some(2), None)
        );
        assert_eq!(
            FieldPath::parse("3[1]").unwrap(),
            fp(3, Some(1), None, None)
        );
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "PI-3",
            "PID",
            "PID-",
            "PID-0",
            "PID-3.",
            "PID-3[",
            "PID-3[1",
            "PID(0)-1",
            "PID-3.1.1.1",
            "PID-3x",
            "PID-1234567",
            "PÏD-1",
        ] {
            assert!(Path::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Path::parse("PID-0").unwrap_err().to_string(),
            "bad path 'PID-0': positions start at 1"
        );
    }
}
