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
        if digits.len() <= 19 {
            return Self::parse_short(neg, digits);
        }
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

    /// [`Decimal::parse`] of at most 19 characters (so at most 19 digits,
    /// which a `u64` holds), without 128-bit arithmetic: amounts are
    /// short, and the transform parses every one of them.
    fn parse_short(neg: bool, digits: &[u8]) -> Option<Decimal> {
        let mut units: u64 = 0;
        let mut scale: u8 = 0;
        let mut seen_point = false;
        let mut seen_digit = false;
        for &b in digits {
            match b {
                b'0'..=b'9' => {
                    seen_digit = true;
                    units = units * 10 + u64::from(b - b'0');
                    scale += u8::from(seen_point);
                }
                b'.' if !seen_point => seen_point = true,
                _ => return None,
            }
        }
        if !seen_digit {
            return None;
        }
        let units = i128::from(units);
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

impl Decimal {
    /// The longest text [`Decimal::write_to`] writes: a sign, 39 digits of
    /// an `i128`, a point, and leading zeros up to 18 decimals.
    pub const MAX_TEXT: usize = 48;

    /// The text of `self` (at least two decimals: money; more when the
    /// value has them), written into `buf` without allocating.
    pub fn write_to(self, buf: &mut [u8; Self::MAX_TEXT]) -> &[u8] {
        let scale = self.scale.max(2);
        let units = self.rescale(scale).unwrap_or(self.units);
        let scale = usize::from(scale);
        let mut magnitude = units.unsigned_abs();
        let mut at = buf.len();
        // Digits from the right, the point after `scale` of them, and at
        // least one digit before the point.
        let mut written = 0;
        while magnitude > 0 || written <= scale {
            if written == scale {
                at -= 1;
                buf[at] = b'.';
            }
            at -= 1;
            // `magnitude % 10` is below 10.
            buf[at] = b'0' + (magnitude % 10) as u8;
            magnitude /= 10;
            written += 1;
        }
        if units < 0 {
            at -= 1;
            buf[at] = b'-';
        }
        &buf[at..]
    }
}

impl std::fmt::Display for Decimal {
    /// At least two decimals (money), more when the value has them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut buf = [0u8; Self::MAX_TEXT];
        // Only ASCII digits, `-` and `.` are written.
        f.write_str(std::str::from_utf8(self.write_to(&mut buf)).unwrap_or_default())
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
    fn short_and_long_parses_agree() {
        for v in [
            "0",
            "-0",
            "12",
            "12.5",
            "-12.50",
            ".75",
            "-.75",
            "1.",
            "9999999999999999999",
            "999999999999999999.9",
            ".999999999999999999",
            "1.2.3",
            "",
            "-",
            ".",
            "1-",
            "12345678901234567890",
            "1234567890123456789.0",
            "-0.0000000000000000001",
        ] {
            let neg = v.starts_with('-');
            let digits = v.strip_prefix('-').unwrap_or(v).as_bytes();
            let short = Decimal::parse_short(neg, digits);
            if digits.len() <= 19 {
                assert_eq!(short.map(|d| (d.units, d.scale)), parse_long(v), "{v}");
            }
            assert_eq!(
                Decimal::parse(v.as_bytes()).map(|d| (d.units, d.scale)),
                parse_long(v),
                "{v}"
            );
        }
    }

    /// The general parse (128-bit, any length).
    fn parse_long(v: &str) -> Option<(i128, u8)> {
        let (neg, digits) = match v.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, v),
        };
        let (int, frac) = match digits.split_once('.') {
            Some((i, f)) => (i, f),
            None => (digits, ""),
        };
        if int.len() + frac.len() == 0
            || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit())
            || frac.len() > 18
            || digits.len() > 40
        {
            return None;
        }
        let units: i128 = format!("{int}{frac}").parse().ok()?;
        Some((if neg { -units } else { units }, frac.len() as u8))
    }

    #[test]
    fn text_of_large_and_small_values() {
        let big = Decimal {
            units: i128::MAX,
            scale: 0,
        };
        // Rescaling overflows: the units are printed with two decimals.
        assert_eq!(big.to_string(), "1701411834604692317316873037158841057.27");
        let min = Decimal {
            units: i128::MIN,
            scale: 18,
        };
        assert_eq!(min.to_string(), "-170141183460469231731.687303715884105728");
        assert_eq!(Decimal::ZERO.to_string(), "0.00");
        assert_eq!(d("-0.5").to_string(), "-0.50");
        assert_eq!(
            d("0.000000000000000001").to_string(),
            "0.000000000000000001"
        );
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
