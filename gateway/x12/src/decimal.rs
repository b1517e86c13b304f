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
        // One pass checks the syntax and, for up to 19 digits (which a
        // u64 holds: every amount in practice), computes the value without
        // 128-bit overflow checks; longer values are summed again below.
        let mut short: u64 = 0;
        let mut count = 0;
        let mut point = None;
        for (i, &b) in digits.iter().enumerate() {
            match b {
                b'0'..=b'9' => {
                    short = short.wrapping_mul(10).wrapping_add(u64::from(b - b'0'));
                    count += 1;
                }
                b'.' if point.is_none() => point = Some(i),
                _ => return None,
            }
        }
        let scale = point.map_or(0, |p| digits.len() - p - 1);
        if count == 0 || digits.len() > 40 || scale > usize::from(MAX_SCALE) {
            return None;
        }
        let units = if count <= 19 {
            i128::from(short)
        } else {
            digits
                .iter()
                .filter(|b| **b != b'.')
                .try_fold(0i128, |u, d| {
                    u.checked_mul(10)?.checked_add(i128::from(d - b'0'))
                })?
        };
        Some(Decimal {
            units: if neg { -units } else { units },
            // At most MAX_SCALE, checked above.
            scale: scale as u8,
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
        // Amounts of one file nearly always share their scale (or one side
        // is the zero a sum starts from): no rescaling then.
        if self.scale == other.scale {
            return Some(Decimal {
                units: self.units.checked_add(other.units)?,
                scale: self.scale,
            });
        }
        if self.units == 0 && self.scale < other.scale {
            return Some(other);
        }
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
        let magnitude = units.unsigned_abs();
        let mut at = buf.len();
        // Digits from the right, the point after `scale` of them, and at
        // least one digit before the point; in 64 bits when the value fits
        // (every amount in practice: 128-bit division is a library call).
        let mut written = 0;
        let mut digit = |at: &mut usize, written: &mut usize, d: u8| {
            if *written == scale {
                *at -= 1;
                buf[*at] = b'.';
            }
            *at -= 1;
            buf[*at] = b'0' + d;
            *written += 1;
        };
        match u64::try_from(magnitude) {
            Ok(mut m) => loop {
                // `m % 10` is below 10.
                digit(&mut at, &mut written, (m % 10) as u8);
                m /= 10;
                if m == 0 && written > scale {
                    break;
                }
            },
            Err(_) => {
                let mut m = magnitude;
                loop {
                    // `m % 10` is below 10.
                    digit(&mut at, &mut written, (m % 10) as u8);
                    m /= 10;
                    if m == 0 && written > scale {
                        break;
                    }
                }
            }
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
    fn parse_follows_the_syntax() {
        let max = i128::MAX;
        for (v, expected) in [
            ("0", Some((0, 0))),
            ("-0", Some((0, 0))),
            ("12.5", Some((125, 1))),
            ("-12.50", Some((-1250, 2))),
            (".75", Some((75, 2))),
            ("-.75", Some((-75, 2))),
            ("1.", Some((1, 0))),
            // The longest value of the u64 path, and the first past it.
            ("9999999999999999999", Some((9_999_999_999_999_999_999, 0))),
            (
                "99999999999999999999",
                Some((99_999_999_999_999_999_999, 0)),
            ),
            (
                "1234567890123456789.0",
                Some((12_345_678_901_234_567_890, 1)),
            ),
            (".999999999999999999", Some((999_999_999_999_999_999, 18))),
            (".9999999999999999999", None),
            ("-0.000000000000000001", Some((-1, 18))),
            ("170141183460469231731687303715884105727", Some((max, 0))),
            ("170141183460469231731687303715884105728", None),
            ("1234567890123456789012345678901234567890", None),
            ("1.2.3", None),
            ("", None),
            ("-", None),
            (".", None),
            ("1-", None),
            ("--1", None),
            ("+1", None),
            (" 1", None),
        ] {
            let got = Decimal::parse(v.as_bytes()).map(|d| (d.units, d.scale));
            assert_eq!(got, expected, "{v}");
        }
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
