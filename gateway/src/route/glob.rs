//! Shell-style globs for route matching: `*` any run, `?` one character,
//! everything else literal (case-sensitive, as HL7 codes are). Pure.

/// A compiled glob pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: Vec<char>,
    source: String,
}

impl Glob {
    pub fn new(pattern: &str) -> Glob {
        Glob {
            pattern: pattern.chars().collect(),
            source: pattern.to_string(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Iterative match with single-star backtracking: O(len(p) * len(s)).
    pub fn matches(&self, text: &str) -> bool {
        let s: Vec<char> = text.chars().collect();
        let p = &self.pattern;
        let (mut pi, mut si) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            match p.get(pi) {
                Some('*') => {
                    star = Some((pi, si));
                    pi += 1;
                }
                Some(&c) if c == '?' || c == s[si] => {
                    pi += 1;
                    si += 1;
                }
                _ => match star {
                    Some((sp, ss)) => {
                        pi = sp + 1;
                        si = ss + 1;
                        star = Some((sp, ss + 1));
                    }
                    None => return false,
                },
            }
        }
        p[pi.min(p.len())..].iter().all(|&c| c == '*')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hl7_type_globs() {
        assert!(Glob::new("ADT^*").matches("ADT^A08"));
        assert!(Glob::new("ADT^*").matches("ADT^"));
        assert!(!Glob::new("ADT^*").matches("ORU^R01"));
        assert!(Glob::new("ORU^R01").matches("ORU^R01"));
        assert!(!Glob::new("ORU^R01").matches("ORU^R011"));
        assert!(Glob::new("*").matches(""));
        assert!(Glob::new("SIU^S1?").matches("SIU^S14"));
        assert!(!Glob::new("SIU^S1?").matches("SIU^S1"));
        assert!(Glob::new("*^A0*").matches("ADT^A04"));
        assert!(Glob::new("a*b*c").matches("axxbyyc"));
        assert!(!Glob::new("a*b*c").matches("axxbyy"));
        assert!(Glob::new("LAB*").matches("LAB"));
        assert!(!Glob::new("lab").matches("LAB"));
    }
}
