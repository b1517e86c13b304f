//! MSH-1 / MSH-2: reading and checking the delimiters a message declares.

use super::header::EncodingChars;

/// Why a declared set of delimiters cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DelimiterError {
    /// MSH-1 is not usable as a separator (e.g. a letter, CR, LF).
    BadFieldSeparator(u8),
    /// MSH-2 is empty.
    MissingEncodingChars,
    /// MSH-2 is not 4 or 5 characters long.
    WrongEncodingLength(usize),
    /// A delimiter is a letter, digit, space, CR/LF, MLLP framing byte or non-ASCII.
    BadEncodingChar(u8),
    /// Two delimiters are the same character.
    DuplicateDelimiter(u8),
}

/// A byte may serve as an HL7 delimiter when it is printable ASCII
/// punctuation: not a letter, digit, space, control character or non-ASCII.
pub fn is_valid_delimiter(b: u8) -> bool {
    b.is_ascii_punctuation()
}

impl EncodingChars {
    /// The delimiters in MSH-2 order: component, repetition, escape,
    /// subcomponent, then the truncation character when declared.
    pub fn msh2(&self) -> Vec<u8> {
        let mut v = vec![
            self.component,
            self.repetition,
            self.escape,
            self.subcomponent,
        ];
        if let Some(t) = self.truncation {
            v.push(t);
        }
        v
    }

    /// Reads MSH-1 (`field`) and MSH-2 (`msh2`, the bytes between the first
    /// and second field separator).
    pub fn from_msh(field: u8, msh2: &[u8]) -> Result<EncodingChars, DelimiterError> {
        if !is_valid_delimiter(field) {
            return Err(DelimiterError::BadFieldSeparator(field));
        }
        let (component, repetition, escape, subcomponent, truncation) = match *msh2 {
            [] => return Err(DelimiterError::MissingEncodingChars),
            [c, r, e, s] => (c, r, e, s, None),
            [c, r, e, s, t] => (c, r, e, s, Some(t)),
            _ => return Err(DelimiterError::WrongEncodingLength(msh2.len())),
        };
        let enc = EncodingChars {
            field,
            component,
            repetition,
            escape,
            subcomponent,
            truncation,
        };
        enc.validate()?;
        Ok(enc)
    }

    /// Checks that every delimiter is valid and that they are all distinct.
    pub fn validate(&self) -> Result<(), DelimiterError> {
        if !is_valid_delimiter(self.field) {
            return Err(DelimiterError::BadFieldSeparator(self.field));
        }
        let all = self.all();
        for (i, &b) in all.iter().enumerate() {
            let Some(b) = b else { continue };
            if i > 0 && !is_valid_delimiter(b) {
                return Err(DelimiterError::BadEncodingChar(b));
            }
            if all.iter().take(i).any(|&o| o == Some(b)) {
                return Err(DelimiterError::DuplicateDelimiter(b));
            }
        }
        Ok(())
    }

    /// True when `b` is one of the structural delimiters or the escape or
    /// truncation character: a byte that must be escaped in text.
    pub fn is_special(&self, b: u8) -> bool {
        self.all().contains(&Some(b))
    }

    fn all(&self) -> [Option<u8>; 6] {
        [
            Some(self.field),
            Some(self.component),
            Some(self.repetition),
            Some(self.escape),
            Some(self.subcomponent),
            self.truncation,
        ]
    }
}

/// A byte shown in an error message: printable ASCII as itself, else hex.
pub(crate) fn show_byte(b: u8) -> String {
    if b.is_ascii_graphic() || b == b' ' {
        format!("'{}'", b as char)
    } else {
        format!("0x{b:02X}")
    }
}

impl std::fmt::Display for DelimiterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DelimiterError::BadFieldSeparator(b) => {
                write!(
                    f,
                    "field separator {} is not a valid delimiter",
                    show_byte(*b)
                )
            }
            DelimiterError::MissingEncodingChars => write!(f, "encoding characters are missing"),
            DelimiterError::WrongEncodingLength(n) => {
                write!(f, "expected 4 or 5 encoding characters, found {n}")
            }
            DelimiterError::BadEncodingChar(b) => {
                write!(
                    f,
                    "encoding character {} is not a valid delimiter",
                    show_byte(*b)
                )
            }
            DelimiterError::DuplicateDelimiter(b) => {
                write!(f, "delimiter {} is declared twice", show_byte(*b))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_and_odd_delimiters() {
        assert_eq!(
            EncodingChars::from_msh(b'|', b"^~\\&").unwrap(),
            EncodingChars::default()
        );
        let e = EncodingChars::from_msh(b'#', b"*@!%").unwrap();
        assert_eq!(
            (e.field, e.component, e.repetition, e.escape, e.subcomponent),
            (b'#', b'*', b'@', b'!', b'%')
        );
        assert_eq!(e.truncation, None);
        let t = EncodingChars::from_msh(b'|', b"^~\\&#").unwrap();
        assert_eq!(t.truncation, Some(b'#'));
        assert_eq!(t.msh2(), b"^~\\&#");
    }

    #[test]
    fn rejects_bad_delimiters() {
        use DelimiterError::*;
        assert_eq!(
            EncodingChars::from_msh(b'A', b"^~\\&"),
            Err(BadFieldSeparator(b'A'))
        );
        assert_eq!(
            EncodingChars::from_msh(b'|', b""),
            Err(MissingEncodingChars)
        );
        assert_eq!(
            EncodingChars::from_msh(b'|', b"^~\\"),
            Err(WrongEncodingLength(3))
        );
        assert_eq!(
            EncodingChars::from_msh(b'|', b"^~\\&#!"),
            Err(WrongEncodingLength(6))
        );
        assert_eq!(
            EncodingChars::from_msh(b'|', b"^~\\^"),
            Err(DuplicateDelimiter(b'^'))
        );
        assert_eq!(
            EncodingChars::from_msh(b'|', b"^~|&"),
            Err(DuplicateDelimiter(b'|'))
        );
        assert_eq!(
            EncodingChars::from_msh(b'|', b"^~ &"),
            Err(BadEncodingChar(b' '))
        );
        assert_eq!(
            EncodingChars::from_msh(b'|', b"^~\r&"),
            Err(BadEncodingChar(b'\r'))
        );
    }
}
