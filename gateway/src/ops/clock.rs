//! Wall-clock helpers: HL7 timestamps and unique ACK control ids.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// HL7 DTM in UTC for `ms` since the epoch: `YYYYMMDDHHMMSS+0000`.
pub fn hl7_timestamp(ms: u64) -> String {
    let (y, mo, d, h, mi, s) = utc_fields(ms);
    format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}+0000")
}

/// ISO 8601 UTC for `ms` since the epoch, for status output.
pub fn iso8601(ms: u64) -> String {
    let (y, mo, d, h, mi, s) = utc_fields(ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// (year, month, day, hour, minute, second) in UTC for `ms` since the epoch.
fn utc_fields(ms: u64) -> (i64, u32, u32, u64, u64, u64) {
    let secs = ms / 1000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A new ACK control id (MSH-10), unique across restarts: a counter seeded
/// from the start time in microseconds-ish units, so a restart always starts
/// above every id the previous run could have issued at ≤1000 ACKs/ms.
pub fn next_control_id() -> String {
    static COUNTER: OnceLock<AtomicU64> = OnceLock::new();
    let c = COUNTER.get_or_init(|| AtomicU64::new(unix_ms().saturating_mul(1000)));
    format!("CG{}", c.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(hl7_timestamp(0), "19700101000000+0000");
        // 2024-02-29T13:45:07Z
        assert_eq!(hl7_timestamp(1_709_214_307_000), "20240229134507+0000");
        assert_eq!(iso8601(1_709_214_307_999), "2024-02-29T13:45:07Z");
    }

    #[test]
    fn control_ids_are_unique_and_short() {
        let a = next_control_id();
        let b = next_control_id();
        assert_ne!(a, b);
        assert!(a.len() <= 20, "{a}");
    }
}
