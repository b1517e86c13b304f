//! MSH-12 versions. The parser accepts any version; callers decide what to
//! do with those outside the range the gateway is built for (2.3 to 2.5.1),
//! and the ACK builder uses the version to pick the ACK layout.

/// A version such as 2.5.1, compared numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u16,
    pub minor: u16,
    pub patch: u16,
}

impl Version {
    pub const V2_3: Version = Version {
        major: 2,
        minor: 3,
        patch: 0,
    };
    pub const V2_4: Version = Version {
        major: 2,
        minor: 4,
        patch: 0,
    };
    pub const V2_5: Version = Version {
        major: 2,
        minor: 5,
        patch: 0,
    };
    pub const V2_5_1: Version = Version {
        major: 2,
        minor: 5,
        patch: 1,
    };

    /// Reads "2", "2.5" or "2.5.1" (surrounding spaces ignored); `None` for anything else.
    pub fn parse(s: &str) -> Option<Version> {
        let mut parts = s.trim().split('.');
        let mut num = |required: bool| match parts.next() {
            Some(p) if !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u16>().ok()
            }
            None if !required => Some(0),
            _ => None,
        };
        let v = Version {
            major: num(true)?,
            minor: num(false)?,
            patch: num(false)?,
        };
        parts.next().is_none().then_some(v)
    }
}

/// True for the versions the gateway is built and tested for: 2.3 to 2.5.1.
pub fn is_supported(version: &str) -> bool {
    Version::parse(version).is_some_and(|v| (Version::V2_3..=Version::V2_5_1).contains(&v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_compare() {
        assert_eq!(
            Version::parse("2.3.1"),
            Some(Version {
                major: 2,
                minor: 3,
                patch: 1
            })
        );
        assert_eq!(Version::parse("2.4"), Some(Version::V2_4));
        assert!(Version::parse("2.3.1") < Version::parse("2.4"));
        assert!(Version::parse("2.10") > Version::parse("2.9"));
        for bad in ["", "x", "2.", "2.5.1.1", "2.a", ".5"] {
            assert_eq!(Version::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn supported_range() {
        for v in ["2.3", "2.3.1", "2.4", "2.5", "2.5.1"] {
            assert!(is_supported(v), "{v}");
        }
        for v in ["2.2", "2.6", "2.7", "2.8", "3", "", "junk"] {
            assert!(!is_supported(v), "{v}");
        }
    }
}
