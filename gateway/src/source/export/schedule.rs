//! When an export runs by itself: `"daily HH:MM"` (UTC) or `"every N{m,h,d}"`
//! (counted from the last start), or `"manual"` (only `gateway export run`).
//! Pure: the clock is passed in.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Every day at this many minutes after 00:00 UTC.
    Daily {
        minute_of_day: u32,
    },
    Every(Duration),
    Manual,
}

const DAY_MS: u64 = 86_400_000;

/// Parse a schedule; the error says what is accepted.
pub fn parse_schedule(s: &str) -> Result<Schedule, String> {
    let s = s.trim();
    let hint = "use \"daily HH:MM\" (UTC), \"every 6h\" (m, h or d) or \"manual\"";
    if s == "manual" {
        return Ok(Schedule::Manual);
    }
    if let Some(t) = s.strip_prefix("daily ") {
        let (h, m) = t
            .trim()
            .split_once(':')
            .ok_or_else(|| format!("schedule {s:?}: {hint}"))?;
        let (h, m) = match (h.parse::<u32>(), m.parse::<u32>()) {
            (Ok(h), Ok(m)) if h < 24 && m < 60 && m_len_ok(t) => (h, m),
            _ => {
                return Err(format!(
                    "schedule {s:?}: the time must be HH:MM, 00:00 to 23:59"
                ))
            }
        };
        return Ok(Schedule::Daily {
            minute_of_day: h * 60 + m,
        });
    }
    if let Some(t) = s.strip_prefix("every ") {
        let t = t.trim();
        let (n, unit) = t.split_at(t.len().saturating_sub(1));
        let n: u64 = n
            .trim()
            .parse()
            .map_err(|_| format!("schedule {s:?}: {hint}"))?;
        let secs = match unit {
            "m" => n * 60,
            "h" => n * 3600,
            "d" => n * 86_400,
            _ => return Err(format!("schedule {s:?}: {hint}")),
        };
        if secs < 300 {
            return Err(format!(
                "schedule {s:?}: at least every 5m (a bulk export is a heavy job for the server)"
            ));
        }
        return Ok(Schedule::Every(Duration::from_secs(secs)));
    }
    Err(format!("schedule {s:?}: {hint}"))
}

fn m_len_ok(t: &str) -> bool {
    t.trim().split_once(':').is_some_and(|(_, m)| m.len() == 2)
}

impl Schedule {
    /// The next start (ms since the epoch) after `now_ms`, given the last
    /// start; `None` for manual.
    pub fn next_run(&self, last_start_ms: Option<u64>, now_ms: u64) -> Option<u64> {
        match *self {
            Schedule::Manual => None,
            Schedule::Every(d) => {
                let every = d.as_millis() as u64;
                // A start that is already due is due now.
                Some(last_start_ms.map_or(now_ms, |l| l + every))
            }
            Schedule::Daily { minute_of_day } => {
                let at = minute_of_day as u64 * 60_000;
                let today = now_ms - now_ms % DAY_MS + at;
                // Today's slot, unless it has passed or already ran.
                if today > now_ms {
                    Some(today)
                } else if last_start_ms.is_none_or(|l| l >= today) {
                    // Ran today already, or a fresh box: tomorrow's slot.
                    Some(today + DAY_MS)
                } else {
                    // Missed today's slot (the box was off): run now.
                    Some(now_ms)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    #[test]
    fn parses() {
        assert_eq!(
            parse_schedule("daily 02:00"),
            Ok(Schedule::Daily { minute_of_day: 120 })
        );
        assert_eq!(
            parse_schedule("every 6h"),
            Ok(Schedule::Every(Duration::from_secs(21_600)))
        );
        assert_eq!(
            parse_schedule("every 30m"),
            Ok(Schedule::Every(Duration::from_secs(1800)))
        );
        assert_eq!(parse_schedule("manual"), Ok(Schedule::Manual));
        for bad in [
            "daily 24:00",
            "daily 2:0",
            "daily",
            "every 1m",
            "every 6x",
            "hourly",
            "",
        ] {
            assert!(parse_schedule(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn next_runs() {
        let daily = Schedule::Daily { minute_of_day: 120 };
        let two = T0 + 2 * 3_600_000;
        // Before 02:00: today at 02:00.
        assert_eq!(daily.next_run(None, T0 + 1000), Some(two));
        // Ran at 02:00 today: tomorrow.
        assert_eq!(daily.next_run(Some(two), two + 5000), Some(two + DAY_MS));
        // Never ran and it is past 02:00: tomorrow (a fresh box does not start at once).
        assert_eq!(daily.next_run(None, two + 5000), Some(two + DAY_MS));
        // Last ran yesterday, and today's slot passed while the box was off: now.
        assert_eq!(
            daily.next_run(Some(two - DAY_MS), two + 5000),
            Some(two + 5000)
        );
        let every = Schedule::Every(Duration::from_secs(3600));
        assert_eq!(every.next_run(None, T0), Some(T0));
        assert_eq!(every.next_run(Some(T0), T0 + 10), Some(T0 + 3_600_000));
        assert_eq!(Schedule::Manual.next_run(None, T0), None);
    }
}
