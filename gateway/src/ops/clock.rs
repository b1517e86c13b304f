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

/// `--since`: a duration ago, or a UTC date `YYYY-MM-DD`.
pub fn parse_since(s: &str) -> Result<u64, String> {
    if let Ok(d) = crate::config::parse_duration(s) {
        return Ok(unix_ms().saturating_sub(d.as_millis() as u64));
    }
    let p: Vec<&str> = s.split('-').collect();
    let num = |x: &str| x.parse::<i64>().ok();
    match p.as_slice() {
        [y, m, d] if y.len() == 4 => match (num(y), num(m), num(d)) {
            (Some(y), Some(m @ 1..=12), Some(d @ 1..=31)) => {
                Ok((days_from_civil(y, m, d).max(0) as u64) * 86_400_000)
            }
            _ => Err(format!("{s:?}: not a date (YYYY-MM-DD)")),
        },
        _ => Err(format!(
            "{s:?}: give a duration ago (\"24h\", \"7d\") or a UTC date (\"2026-01-31\")"
        )),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `--since`/`--until`: a duration ago ("2h"), a UTC date, or a UTC time
/// `YYYY-MM-DDTHH:MM[:SS]Z`.
pub fn parse_time(s: &str) -> Result<u64, String> {
    let Some((date, time)) = s.split_once('T') else {
        return parse_since(s);
    };
    let day = parse_since(date)?;
    let hms: Vec<&str> = time.trim_end_matches('Z').split(':').collect();
    let n = |x: Option<&&str>, max: u64| x.and_then(|v| v.parse::<u64>().ok()).filter(|v| *v < max);
    let (h, m) = (n(hms.first(), 24), n(hms.get(1), 60));
    let sec = if hms.len() > 2 {
        n(hms.get(2), 60)
    } else {
        Some(0)
    };
    match (h, m, sec, time.ends_with('Z'), hms.len() <= 3) {
        (Some(h), Some(m), Some(sec), true, true) => Ok(day + ((h * 60 + m) * 60 + sec) * 1000),
        _ => Err(format!(
            "{s:?}: give a duration ago (\"2h\"), a UTC date (\"2026-12-01\") or a UTC time (\"2026-12-01T08:30:00Z\")"
        )),
    }
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

    #[test]
    fn since_takes_a_date_or_a_duration() {
        assert_eq!(parse_since("1970-01-02"), Ok(86_400_000));
        assert_eq!(parse_since("2000-03-01"), Ok(11_017 * 86_400_000));
        assert!(parse_since("7d").unwrap() < crate::ops::clock::unix_ms());
        assert!(parse_since("2026-13-01").is_err());
        assert!(parse_since("yesterday")
            .unwrap_err()
            .contains("duration ago"));
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("1970-01-02"), Ok(86_400_000));
        assert_eq!(
            parse_time("1970-01-02T01:02:03Z"),
            Ok(86_400_000 + 3_723_000)
        );
        assert_eq!(parse_time("1970-01-01T00:01Z"), Ok(60_000));
        assert!(parse_time("1970-01-01T25:00Z").is_err());
        assert!(parse_time("1970-01-01T01:00").is_err(), "no zone: refused");
        assert!(parse_time("2h").is_ok());
    }
}
