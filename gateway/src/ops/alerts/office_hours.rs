//! A site's office hours (its time zone, weekly hours, holidays) and who
//! an alert is for at a given instant: inside the hours the clinic's
//! contacts, outside them the MSP's on-call, and the critical rules (lab
//! results not flowing, the disk nearly full, a certificate expiring
//! within a day) both, always.
//!
//! Pure but for the time zone: [`OfficeHours::new`] reads the zone from
//! the system's tz database (`/usr/share/zoneinfo`, through `jiff`, which
//! was already in the tree through the updater). Every decision takes the
//! instant as an argument, so tests walk a fake clock through it.

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::alert::{Alert, Rule, Severity};

/// Who an alert goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Clinic,
    Msp,
    Both,
}

impl Audience {
    pub fn as_str(self) -> &'static str {
        match self {
            Audience::Clinic => "clinic",
            Audience::Msp => "msp",
            Audience::Both => "both",
        }
    }

    pub fn clinic(self) -> bool {
        self != Audience::Msp
    }

    pub fn msp(self) -> bool {
        self != Audience::Clinic
    }

    /// Both sides that either was told.
    pub fn union(self, other: Audience) -> Audience {
        match (self.clinic() || other.clinic(), self.msp() || other.msp()) {
            (true, true) => Audience::Both,
            (true, false) => Audience::Clinic,
            _ => Audience::Msp,
        }
    }
}

/// Weekdays in the order the config names them (`monday` … `sunday`).
pub const DAYS: [(&str, Weekday); 7] = [
    ("monday", Weekday::Monday),
    ("tuesday", Weekday::Tuesday),
    ("wednesday", Weekday::Wednesday),
    ("thursday", Weekday::Thursday),
    ("friday", Weekday::Friday),
    ("saturday", Weekday::Saturday),
    ("sunday", Weekday::Sunday),
];

/// One opening on a day, in minutes after local midnight: `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub from: u16,
    pub to: u16,
}

/// Closed days, inclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holiday {
    pub first: Date,
    pub last: Date,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OfficeHours {
    tz: TimeZone,
    /// Indexed by `Weekday::to_monday_zero_offset`.
    week: [Vec<Span>; 7],
    holidays: Vec<Holiday>,
}

impl OfficeHours {
    /// `time_zone` is an IANA name ("America/New_York") from the system's
    /// tz database. The error says what is wrong with the name.
    pub fn new(
        time_zone: &str,
        week: [Vec<Span>; 7],
        holidays: Vec<Holiday>,
    ) -> Result<OfficeHours, String> {
        let tz = TimeZone::get(time_zone).map_err(|e| {
            format!("'{time_zone}' is not a time zone of the system's tz database ({e}); use a name such as \"America/New_York\" (see `timedatectl list-timezones`)")
        })?;
        Ok(OfficeHours { tz, week, holidays })
    }

    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// Is the clinic open at `at_ms` (unix ms)? A holiday is closed all day.
    pub fn is_open(&self, at_ms: u64) -> bool {
        let Ok(ts) = Timestamp::from_millisecond(at_ms.min(i64::MAX as u64) as i64) else {
            return false;
        };
        let local = ts.to_zoned(self.tz.clone());
        if self.closed_on(local.date()) {
            return false;
        }
        let minute = local.hour() as u16 * 60 + local.minute() as u16;
        self.week[local.weekday().to_monday_zero_offset() as usize]
            .iter()
            .any(|s| s.from <= minute && minute < s.to)
    }

    /// The instant (unix ms) at which the clinic will have been open for
    /// `open_ms` counted from `from_ms`: time outside the weekly hours and
    /// on holidays does not count, so a quiet night or holiday adds
    /// nothing and the count resumes when the office opens. `None` if the
    /// clinic is not open that long within the next 400 days.
    pub fn after_open_for(&self, from_ms: u64, open_ms: u64) -> Option<u64> {
        let start = Timestamp::from_millisecond(from_ms.min(i64::MAX as u64) as i64).ok()?;
        let mut date = start.to_zoned(self.tz.clone()).date();
        let mut left = open_ms;
        for _ in 0..400 {
            if !self.closed_on(date) {
                for s in &self.week[date.weekday().to_monday_zero_offset() as usize] {
                    let from = self.instant(date, s.from)?.max(from_ms);
                    let to = self.instant(date, s.to)?;
                    if to <= from {
                        continue;
                    }
                    if to - from >= left {
                        return Some(from + left);
                    }
                    left -= to - from;
                }
            }
            date = date.tomorrow().ok()?;
        }
        None
    }

    /// A holiday: closed all day.
    fn closed_on(&self, date: Date) -> bool {
        self.holidays
            .iter()
            .any(|h| h.first <= date && date <= h.last)
    }

    /// `minute` after local midnight of `date` (1440: the next midnight),
    /// as unix ms; a time skipped by daylight saving moves forward.
    fn instant(&self, date: Date, minute: u16) -> Option<u64> {
        let (day, minute) = if minute >= 24 * 60 {
            (date.tomorrow().ok()?, 0)
        } else {
            (date, minute)
        };
        let at = day.at((minute / 60) as i8, (minute % 60) as i8, 0, 0);
        let ms = at
            .to_zoned(self.tz.clone())
            .ok()?
            .timestamp()
            .as_millisecond();
        u64::try_from(ms).ok()
    }

    /// Who `a` is for at `at_ms`.
    pub fn audience(&self, a: &Alert, at_ms: u64) -> Audience {
        if always_both(a) {
            Audience::Both
        } else if self.is_open(at_ms) {
            Audience::Clinic
        } else {
            Audience::Msp
        }
    }
}

/// Who hears of `a` at `at_ms`; without office hours, both sides always.
pub fn audience(hours: Option<&OfficeHours>, a: &Alert, at_ms: u64) -> Audience {
    hours.map_or(Audience::Both, |h| h.audience(a, at_ms))
}

/// The critical rules that reach both sides whatever the hour: lab
/// results (or any critical feed) not flowing, the disk nearly full, a
/// certificate expired or within its last day (the `1` stage of
/// `alerts.cert_warn_days`, there by default).
pub fn always_both(a: &Alert) -> bool {
    match a.rule {
        Rule::Silence | Rule::Disk => a.severity == Severity::Critical,
        Rule::Certificate => {
            a.title.starts_with("TLS certificate expired")
                || a.title.contains("expires within 1 day(s)")
        }
        _ => false,
    }
}

/// `"08:00-12:00, 13:00-17:30"` (24-hour local time, `24:00` for
/// midnight at the end); `""` is closed. Ranges may not overlap.
pub fn parse_spans(text: &str) -> Result<Vec<Span>, String> {
    let mut spans = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part
            .split_once('-')
            .ok_or_else(|| format!("'{part}' is not a range such as \"08:00-17:00\""))?;
        let from = minutes(a.trim()).ok_or_else(|| bad_time(a))?;
        let to = minutes(b.trim()).ok_or_else(|| bad_time(b))?;
        if from >= to {
            return Err(format!(
                "'{part}' ends before it starts (ranges stay within one day: use \"20:00-24:00\" and \"00:00-06:00\" on the next day)"
            ));
        }
        spans.push(Span { from, to });
    }
    spans.sort_by_key(|s| s.from);
    if let Some(w) = spans.windows(2).find(|w| w[1].from < w[0].to) {
        return Err(format!(
            "the ranges {} and {} overlap",
            show(w[0]),
            show(w[1])
        ));
    }
    Ok(spans)
}

fn bad_time(t: &str) -> String {
    format!(
        "'{}' is not a time of day such as \"08:00\" (00:00 to 24:00)",
        t.trim()
    )
}

fn minutes(t: &str) -> Option<u16> {
    let (h, m) = t.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(24 * 60),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

fn show(s: Span) -> String {
    format!(
        "{:02}:{:02}-{:02}:{:02}",
        s.from / 60,
        s.from % 60,
        s.to / 60,
        s.to % 60
    )
}

/// `"2026-12-25"`, or `"2026-12-24/2026-12-26"` for several days.
pub fn parse_holiday(text: &str) -> Result<Holiday, String> {
    let date = |t: &str| {
        t.trim()
            .parse::<Date>()
            .map_err(|_| format!("'{}' is not a date such as \"2026-12-25\"", t.trim()))
    };
    let (first, last) = match text.split_once('/') {
        None => (date(text)?, date(text)?),
        Some((a, b)) => (date(a)?, date(b)?),
    };
    if last < first {
        return Err(format!("'{text}' ends before it starts"));
    }
    Ok(Holiday { first, last })
}

/// The first two holidays (by index) that share a day, if any.
pub fn overlapping(holidays: &[Holiday]) -> Option<(usize, usize)> {
    for (i, a) in holidays.iter().enumerate() {
        for (j, b) in holidays.iter().enumerate().skip(i + 1) {
            if a.first <= b.last && b.first <= a.last {
                return Some((i, j));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::alerts::alert::Finding;

    fn ms(iso: &str) -> u64 {
        iso.parse::<Timestamp>().unwrap().as_millisecond() as u64
    }

    /// Mon–Fri 08:00–17:00, Sat 09:00–12:00, in New York; closed on
    /// 2026-12-25 and 2026-12-31/2027-01-01.
    fn clinic() -> OfficeHours {
        let mut week: [Vec<Span>; 7] = Default::default();
        for d in week.iter_mut().take(5) {
            *d = parse_spans("08:00-17:00").unwrap();
        }
        week[5] = parse_spans("09:00-12:00").unwrap();
        OfficeHours::new(
            "America/New_York",
            week,
            vec![
                parse_holiday("2026-12-25").unwrap(),
                parse_holiday("2026-12-31/2027-01-01").unwrap(),
            ],
        )
        .unwrap()
    }

    fn alert(rule: Rule, severity: Severity, title: &str) -> Alert {
        rule.alert(Finding {
            key: "k".into(),
            severity,
            title: title.into(),
            affected: "a".into(),
            since_ms: 0,
            action: "x".into(),
        })
    }

    #[test]
    fn a_fake_clock_walks_through_a_week() {
        let h = clinic();
        let down = alert(Rule::DestinationDown, Severity::Critical, "down");
        // (UTC instant, New York local, expected audience)
        let walk = [
            ("2026-12-07T12:59:00Z", "Mon 07:59 EST", Audience::Msp),
            ("2026-12-07T13:00:00Z", "Mon 08:00", Audience::Clinic),
            ("2026-12-07T21:59:59Z", "Mon 16:59:59", Audience::Clinic),
            ("2026-12-07T22:00:00Z", "Mon 17:00", Audience::Msp),
            ("2026-12-08T07:00:00Z", "Tue 02:00", Audience::Msp),
            ("2026-12-12T15:00:00Z", "Sat 10:00", Audience::Clinic),
            ("2026-12-12T17:00:00Z", "Sat 12:00", Audience::Msp),
            ("2026-12-13T15:00:00Z", "Sun 10:00", Audience::Msp),
            (
                "2026-12-25T15:00:00Z",
                "Fri 10:00, a holiday",
                Audience::Msp,
            ),
            ("2026-12-24T15:00:00Z", "Thu 10:00", Audience::Clinic),
            (
                "2027-01-01T15:00:00Z",
                "Fri 10:00, 2nd day of a holiday",
                Audience::Msp,
            ),
            ("2027-01-04T15:00:00Z", "Mon 10:00", Audience::Clinic),
        ];
        for (at, local, want) in walk {
            assert_eq!(h.audience(&down, ms(at)), want, "{at} ({local})");
        }
    }

    #[test]
    fn open_time_skips_nights_weekends_and_holidays() {
        let h = clinic();
        let hour = 3_600_000;
        // Mon 16:00 EST + 2 h of office time: 1 h on Monday, the night
        // does not count, 1 h on Tuesday → Tue 09:00.
        let from = ms("2026-12-07T21:00:00Z");
        assert_eq!(
            h.after_open_for(from, 2 * hour),
            Some(ms("2026-12-08T14:00:00Z"))
        );
        // Inside the hours it is wall time.
        let from = ms("2026-12-08T14:00:00Z");
        assert_eq!(
            h.after_open_for(from, 2 * hour),
            Some(ms("2026-12-08T16:00:00Z"))
        );
        // Fri 16:30 + 2 h: 30 min Friday, Sat 09:00–10:30 (Saturday opens 3 h).
        let from = ms("2026-12-11T21:30:00Z");
        assert_eq!(
            h.after_open_for(from, 2 * hour),
            Some(ms("2026-12-12T15:30:00Z"))
        );
        // Sat 11:00 + 2 h: 1 h Saturday, Sunday closed, Mon 09:00.
        let from = ms("2026-12-12T16:00:00Z");
        assert_eq!(
            h.after_open_for(from, 2 * hour),
            Some(ms("2026-12-14T14:00:00Z"))
        );
        // Thu 2026-12-24 16:00 + 2 h: the 25th is a holiday, Sat 26th 10:00.
        let from = ms("2026-12-24T21:00:00Z");
        assert_eq!(
            h.after_open_for(from, 2 * hour),
            Some(ms("2026-12-26T15:00:00Z"))
        );
        // Starting at night: counts from the opening.
        let from = ms("2026-12-08T03:00:00Z");
        assert_eq!(
            h.after_open_for(from, hour),
            Some(ms("2026-12-08T14:00:00Z"))
        );
        // Never open: never due.
        let closed = OfficeHours::new("UTC", Default::default(), vec![]).unwrap();
        assert_eq!(closed.after_open_for(from, hour), None);
    }

    #[test]
    fn the_hours_follow_the_sites_daylight_saving_time() {
        let h = clinic();
        let a = alert(Rule::PendingDepth, Severity::Warning, "many");
        // 12:30 UTC is 07:30 EST before 2026-03-08 and 08:30 EDT after.
        assert_eq!(h.audience(&a, ms("2026-03-06T12:30:00Z")), Audience::Msp);
        assert_eq!(h.audience(&a, ms("2026-03-09T12:30:00Z")), Audience::Clinic);
        // 21:30 UTC is 17:30 EDT before 2026-11-01 and 16:30 EST after.
        assert_eq!(h.audience(&a, ms("2026-10-30T21:30:00Z")), Audience::Msp);
        assert_eq!(h.audience(&a, ms("2026-11-02T21:30:00Z")), Audience::Clinic);
    }

    #[test]
    fn critical_rules_reach_both_always() {
        let h = clinic();
        let night = ms("2026-12-08T07:00:00Z");
        let day = ms("2026-12-08T15:00:00Z");
        let lab = alert(Rule::Silence, Severity::Critical, "no lab results");
        let adt = alert(Rule::Silence, Severity::Warning, "no ADT");
        let disk = alert(Rule::Disk, Severity::Critical, "The data disk is 91% full");
        let cert1 = alert(
            Rule::Certificate,
            Severity::Critical,
            "TLS certificate expires within 1 day(s): listener ehr (server)",
        );
        let cert7 = alert(
            Rule::Certificate,
            Severity::Critical,
            "TLS certificate expires within 7 day(s): listener ehr (server)",
        );
        let gone = alert(
            Rule::Certificate,
            Severity::Critical,
            "TLS certificate expired: listener ehr (server)",
        );
        for a in [&lab, &disk, &cert1, &gone] {
            assert_eq!(h.audience(a, night), Audience::Both, "{}", a.title);
            assert_eq!(h.audience(a, day), Audience::Both, "{}", a.title);
        }
        for a in [&adt, &cert7] {
            assert_eq!(h.audience(a, night), Audience::Msp, "{}", a.title);
            assert_eq!(h.audience(a, day), Audience::Clinic, "{}", a.title);
        }
        assert_eq!(audience(None, &adt, night), Audience::Both);
    }

    #[test]
    fn the_real_rules_texts_are_recognised() {
        // always_both reads the certificate rule's title: keep them in step.
        use crate::config::{AlertsConfig, StorageConfig};
        use crate::ops::certs::CertInfo;
        let cfg = AlertsConfig::defaults(&StorageConfig::default());
        let now = 1_800_000_000_000u64;
        let cert = |days: i64| CertInfo {
            owner_kind: "listener".into(),
            owner: "ehr".into(),
            role: "server".into(),
            path: "/etc/gateway/ehr.pem".into(),
            not_after: Some((now / 1000) as i64 + days * 86_400 - 60),
            error: None,
        };
        let within_1 = super::super::rules::certificate(&cfg, &cert(1), now).unwrap();
        let within_7 = super::super::rules::certificate(&cfg, &cert(5), now).unwrap();
        let expired = super::super::rules::certificate(&cfg, &cert(-2), now).unwrap();
        assert!(always_both(&within_1), "{}", within_1.title);
        assert!(always_both(&expired), "{}", expired.title);
        assert!(!always_both(&within_7), "{}", within_7.title);
    }

    #[test]
    fn spans_and_holidays_say_what_is_wrong() {
        assert_eq!(
            parse_spans("08:00-12:00, 13:00-24:00").unwrap(),
            vec![
                Span { from: 480, to: 720 },
                Span {
                    from: 780,
                    to: 1440
                }
            ]
        );
        assert!(parse_spans("").unwrap().is_empty());
        let e = parse_spans("17:00-08:00").unwrap_err();
        assert!(e.contains("ends before it starts"), "{e}");
        let e = parse_spans("08:00-25:00").unwrap_err();
        assert!(e.contains("'25:00' is not a time of day"), "{e}");
        let e = parse_spans("8-17").unwrap_err();
        assert!(e.contains("'8' is not a time of day"), "{e}");
        let e = parse_spans("08:00-12:00,11:00-13:00").unwrap_err();
        assert!(e.contains("08:00-12:00 and 11:00-13:00 overlap"), "{e}");
        let e = parse_holiday("2026-13-01").unwrap_err();
        assert!(e.contains("'2026-13-01' is not a date"), "{e}");
        let e = parse_holiday("2026-12-26/2026-12-24").unwrap_err();
        assert!(e.contains("ends before it starts"), "{e}");
        let hs = [
            parse_holiday("2026-07-03").unwrap(),
            parse_holiday("2026-12-24/2026-12-26").unwrap(),
            parse_holiday("2026-12-26").unwrap(),
        ];
        assert_eq!(overlapping(&hs), Some((1, 2)));
        assert_eq!(overlapping(&hs[..2]), None);
        let e = OfficeHours::new("Mars/Olympus", Default::default(), vec![]).unwrap_err();
        assert!(e.contains("'Mars/Olympus' is not a time zone"), "{e}");
    }
}
