//! Exact decimal amounts for reconciliation: X12 `R` values (`-12.5`,
//! `100`, `.75`) as a scaled integer, never a float.

use std::cmp::Ordering;

/// A decimal number: `units / 10^scale`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Decimal {
    units: i128,
    scale: u8,
}

/// At most this many digits after the point (X12 R values have at most
/// 18 significant digits).
const MAX_SCALE: u8 = 18;

impl Decimal {
    /// Zero.
    pub const ZERO: Decimal = Decimal { units: 0, scale: 0 };

    /// Parses an X12 decimal: optional `-`, digits, optional `.` and
    /// digits; at least one digit. `None` for anything else.
    pub fn parse(v: &[u8]) -> Option<Decimal> {
        let (neg, digits) = match v.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, v),
        };
        let mut units: i128 = 0;
        let mut scale: u8 = 0;
        let mut seen_point = false;
        let mut seen_digit = false;
        for &b in digits {
            match b {
                b'0'..=b'9' => {
                    seen_digit = true;
                    units = units.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
                    if seen_point {
                        scale += 1;
                        if scale > MAX_SCALE {
                            return None;
                        }
                    }
                }
                b'.' if !seen_point => seen_point = true,
                _ => return None,
            }
        }
        if !seen_digit || digits.len() > 40 {
            return None;
        }
        Some(Decimal {
            units: if neg { -units } else { units },
            scale,
        })
    }

    fn rescale(self, scale: u8) -> Option<i128> {
        let mut u = self.units;
        for _ in self.scale..scale {
            u = u.checked_mul(10)?;
        }
        Some(u)
    }

    /// `self + other`, `None` on overflow.
    pub fn checked_add(self, other: Decimal) -> Option<Decimal> {
        let scale = self.scale.max(other.scale);
        Some(Decimal {
            units: self.rescale(scale)?.checked_add(other.rescale(scale)?)?,
            scale,
        })
    }

    /// `self - other`, `None` on overflow.
    pub fn checked_sub(self, other: Decimal) -> Option<Decimal> {
        self.checked_add(Decimal {
            units: other.units.checked_neg()?,
            scale: other.scale,
        })
    }

    /// True when zero.
    pub fn is_zero(self) -> bool {
        self.units == 0
    }
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Decimal {}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        let scale = self.scale.max(other.scale);
        match (self.rescale(scale), other.rescale(scale)) {
            (Some(a), Some(b)) => a.cmp(&b),
            // Rescaling overflows only for huge values; compare by sign.
            _ => self.units.signum().cmp(&other.units.signum()),
        }
    }
}

impl std::fmt::Display for Decimal {
    /// At least two decimals (money), more when the value has them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scale = self.scale.max(2);
        let units = self.rescale(scale).unwrap_or(self.units);
        let neg = units < 0;
        let digits = units.unsigned_abs().to_string();
        let scale = usize::from(scale);
        let digits = if digits.len() <= scale {
            format!("{}{digits}", "0".repeat(scale + 1 - digits.len()))
        } else {
            digits
        };
        let (int, frac) = digits.split_at(digits.len() - scale);
        write!(f, "{}{int}.{frac}", if neg { "-" } else { "" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn parse_and_print() {
        assert_eq!(d("100").to_string(), "100.00");
        assert_eq!(d("-12.5").to_string(), "-12.50");
        assert_eq!(d(".75").to_string(), "0.75");
        assert_eq!(d("0.001").to_string(), "0.001");
        assert_eq!(d("-0.05").to_string(), "-0.05");
        for bad in ["", "-", ".", "1.2.3", "+1", "1e5", "12a"] {
            assert!(Decimal::parse(bad.as_bytes()).is_none(), "{bad}");
        }
    }

    #[test]
    fn exact_arithmetic() {
        // 0.1 + 0.2 is exactly 0.3 here.
        assert_eq!(d("0.1").checked_add(d("0.2")).unwrap(), d("0.30"));
        assert_eq!(d("945").checked_sub(d("945.00")).unwrap(), Decimal::ZERO);
        assert!(d("1.10") > d("1.09"));
        assert_eq!(
            d("123456789012345.67")
                .checked_add(d("0.01"))
                .unwrap()
                .to_string(),
            "123456789012345.68"
        );
    }
}
