//! Acknowledgments the crate writes: a TA1 for interchange-level errors
//! ([`mod@ta1`]) and a 999 per functional group ([`ack999`]), each as a whole
//! interchange of its own, following 005010X231A1.
//!
//! The caller passes what must not be invented here ([`AckHeader`]): the
//! ISA13 and GS06 control numbers to use (from its own counter) and the
//! time ([`Stamp`]), so building is pure and repeatable. The ack goes from
//! the original receiver to the original sender (ISA05-08 swapped), with
//! the original ISA15, and is written with the default separators
//! `* : ^ ~` (each segment followed by a line feed, which X12 readers skip);
//! copied values never contain them.
//!
//! [`acknowledgments`] applies the usual policy to a checked document: an
//! interchange with interchange-level errors gets a TA1 `R` and no 999 (its
//! content was not processed); otherwise a TA1 `A` when ISA14 asks for one,
//! and a 999 covering its groups.

pub mod ack999;
pub mod ta1;
mod writer;

pub use ack999::ack_999;
pub use ta1::{needs_ta1, ta1, Ta1Code};

use crate::document::{Document, Interchange};
use crate::envelope::Usage;

/// A date and time for ISA09/10, GS04/05 and the like: UTC or local, as
/// the caller decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    year: u16,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
}

impl Stamp {
    /// A stamp, `None` when a field is out of range (the day is checked
    /// against the month, leap years included).
    pub fn new(year: u16, month: u8, day: u8, hour: u8, minute: u8) -> Option<Stamp> {
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let days = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return None,
        };
        ((1000..=9999).contains(&year) && (1..=days).contains(&day) && hour < 24 && minute < 60)
            .then_some(Stamp {
                year,
                month,
                day,
                hour,
                minute,
            })
    }

    /// The UTC stamp of a Unix time in seconds (the caller reads the clock).
    pub fn from_unix(seconds: i64) -> Stamp {
        let days = seconds.div_euclid(86_400);
        let secs = seconds.rem_euclid(86_400);
        // Civil-from-days (H. Hinnant's algorithm), proleptic Gregorian.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Stamp {
            year: year.clamp(1000, 9999) as u16,
            month: month as u8,
            day: day as u8,
            hour: (secs / 3600) as u8,
            minute: (secs % 3600 / 60) as u8,
        }
    }

    /// `CCYYMMDD`.
    pub fn date8(&self) -> String {
        format!("{:04}{:02}{:02}", self.year, self.month, self.day)
    }

    /// `YYMMDD`.
    pub fn date6(&self) -> String {
        format!("{:02}{:02}{:02}", self.year % 100, self.month, self.day)
    }

    /// `HHMM`.
    pub fn time4(&self) -> String {
        format!("{:02}{:02}", self.hour, self.minute)
    }
}

/// What the caller supplies for one acknowledgment interchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AckHeader {
    /// ISA13/IEA02 of the acknowledgment (0..=999 999 999; larger values
    /// wrap modulo 10^9).
    pub interchange_control_number: u32,
    /// GS06/GE02 of the 999's group (1..=999 999 999).
    pub group_control_number: u32,
    /// ISA09/10 and GS04/05.
    pub stamp: Stamp,
    /// ISA15 of the acknowledgment; `None` copies the received ISA15.
    pub usage: Option<Usage>,
}

impl AckHeader {
    /// The header most callers want: `control` as both ISA13 and GS06,
    /// stamped `stamp`, ISA15 copied from the received interchange.
    pub fn numbered(control: u32, stamp: Stamp) -> Self {
        AckHeader {
            interchange_control_number: control,
            group_control_number: control,
            stamp,
            usage: None,
        }
    }
}

/// Which acknowledgment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckKind {
    /// A TA1 interchange acknowledgment.
    Ta1,
    /// A 999 implementation acknowledgment.
    Ack999,
}

/// One acknowledgment interchange, ready to write to a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    /// TA1 or 999.
    pub kind: AckKind,
    /// Index of the acknowledged interchange in [`Document::interchanges`].
    pub interchange: usize,
    /// The ISA13 it was built with.
    pub control_number: u32,
    /// The X12 bytes.
    pub bytes: Vec<u8>,
}

/// The acknowledgments for a checked document, in order; `next_header` is
/// called once per acknowledgment for its control numbers and stamp.
pub fn acknowledgments(doc: &Document<'_>, mut next_header: impl FnMut() -> AckHeader) -> Vec<Ack> {
    let mut out = Vec::new();
    for (i, ic) in doc.interchanges.iter().enumerate() {
        if needs_ta1(ic) {
            let h = next_header();
            out.push(Ack {
                kind: AckKind::Ta1,
                interchange: i,
                control_number: h.interchange_control_number,
                bytes: ta1(ic, &h),
            });
        }
        if !ic.errors.is_empty() {
            continue;
        }
        if has_groups_to_acknowledge(ic) {
            let h = next_header();
            if let Some(bytes) = ack_999(ic, &h) {
                out.push(Ack {
                    kind: AckKind::Ack999,
                    interchange: i,
                    control_number: h.interchange_control_number,
                    bytes,
                });
            }
        }
    }
    out
}

fn has_groups_to_acknowledge(ic: &Interchange<'_>) -> bool {
    ic.groups.iter().any(|g| g.gs.element(1) != b"FA")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps() {
        let s = Stamp::from_unix(1_704_198_600); // 2024-01-02 12:30 UTC
        assert_eq!(s.date8(), "20240102");
        assert_eq!(s.date6(), "240102");
        assert_eq!(s.time4(), "1230");
        assert_eq!(Stamp::from_unix(951_782_400).date8(), "20000229");
        assert_eq!(Stamp::from_unix(0).date8(), "19700101");
        assert!(Stamp::new(2023, 2, 29, 0, 0).is_none());
        assert!(Stamp::new(2024, 2, 29, 23, 59).is_some());
        assert!(Stamp::new(2024, 13, 1, 0, 0).is_none());
    }
}
