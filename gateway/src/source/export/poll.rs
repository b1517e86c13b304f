//! When to poll a status URL again, and what a failed poll means. Pure:
//! the clock and the randomness are passed in.
//!
//! - `Retry-After` is honoured in seconds or as an HTTP-date, clamped to
//!   `[floor, ceiling]` (default 5 s to 300 s): never faster than the
//!   floor. A number large enough to be epoch seconds is a server mistake
//!   and is clamped like any other.
//! - Without `Retry-After`: 30 s, then ×1.5 per poll, up to the ceiling.
//! - An OperationOutcome answer is retried only if every `issue.code` is
//!   `transient`; otherwise the job failed, with the server's text.
//! - Network errors and 5xx without an outcome: capped exponential
//!   backoff with full jitter.

use std::time::Duration;

/// The clamp range of poll intervals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollBounds {
    pub floor: Duration,
    pub ceiling: Duration,
}

impl Default for PollBounds {
    fn default() -> Self {
        PollBounds {
            floor: Duration::from_secs(5),
            ceiling: Duration::from_secs(300),
        }
    }
}

impl PollBounds {
    fn clamp(&self, d: Duration) -> Duration {
        d.max(self.floor).min(self.ceiling.max(self.floor))
    }
}

/// The first interval without `Retry-After`.
pub const DEFAULT_FIRST_POLL: Duration = Duration::from_secs(30);

/// The wait a `Retry-After` value asks for, given the time now (ms since
/// the epoch); `None` if it is neither seconds nor an HTTP-date.
pub fn retry_after(value: &[u8], now_ms: u64) -> Option<Duration> {
    let s = std::str::from_utf8(value).ok()?.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(s).ok()?;
    let when_ms = when.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as u64;
    Some(Duration::from_millis(when_ms.saturating_sub(now_ms)))
}

/// The wait before the next poll: the server's `Retry-After` (parsed by
/// [`retry_after`]) clamped, else `previous` ×1.5 (the first:
/// [`DEFAULT_FIRST_POLL`]), clamped.
pub fn next_poll(asked: Option<Duration>, previous: Option<Duration>, b: PollBounds) -> Duration {
    match (asked, previous) {
        (Some(d), _) => b.clamp(d),
        (None, None) => b.clamp(DEFAULT_FIRST_POLL),
        (None, Some(p)) => b.clamp(p.mul_f64(1.5)),
    }
}

/// Capped exponential backoff with full jitter for failure `attempt`
/// (1 = the first): uniform in `[floor, min(ceiling, floor × 2^attempt)]`,
/// `unit` in `[0, 1)` being the random draw.
pub fn backoff(attempt: u32, unit: f64, b: PollBounds) -> Duration {
    let cap = b
        .floor
        .saturating_mul(1u32 << attempt.min(16))
        .min(b.ceiling.max(b.floor));
    let span = cap.saturating_sub(b.floor);
    b.floor + span.mul_f64(unit.clamp(0.0, 1.0))
}

/// What an error answer with a body means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every issue is `transient`: poll again.
    Transient(String),
    /// The job failed: the server's text.
    Fatal(String),
    /// Not an OperationOutcome: decide by the status code.
    NotAnOutcome,
}

/// Classify an error answer's body.
pub fn classify_outcome(body: &[u8]) -> Outcome {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Outcome::NotAnOutcome;
    };
    if v.get("resourceType").and_then(|t| t.as_str()) != Some("OperationOutcome") {
        return Outcome::NotAnOutcome;
    }
    let issues = v
        .get("issue")
        .and_then(|i| i.as_array())
        .cloned()
        .unwrap_or_default();
    let text = issues
        .iter()
        .map(|i| {
            let code = i.get("code").and_then(|c| c.as_str()).unwrap_or("?");
            let said = i
                .get("diagnostics")
                .and_then(|d| d.as_str())
                .or_else(|| i.pointer("/details/text").and_then(|d| d.as_str()))
                .unwrap_or("");
            // The server's words, bounded: they go to status and the log.
            let said: String = said.chars().take(300).collect();
            if said.is_empty() {
                code.to_string()
            } else {
                format!("{code}: {said}")
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
    let all_transient = !issues.is_empty()
        && issues
            .iter()
            .all(|i| i.get("code").and_then(|c| c.as_str()) == Some("transient"));
    if all_transient {
        Outcome::Transient(text)
    } else {
        Outcome::Fatal(if text.is_empty() {
            "an OperationOutcome without issues".into()
        } else {
            text
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(retry_after(b"12", NOW), Some(Duration::from_secs(12)));
        assert_eq!(
            retry_after(b"Thu, 01 Jan 2026 00:01:00 GMT", NOW),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            retry_after(b"Wed, 31 Dec 2025 23:00:00 GMT", NOW),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(b"soon", NOW), None);
        let b = PollBounds::default();
        // Epoch seconds by mistake: clamped to the ceiling.
        let epoch = retry_after(b"1767225600", NOW);
        assert_eq!(next_poll(epoch, None, b), Duration::from_secs(300));
        // Never under the floor.
        assert_eq!(
            next_poll(Some(Duration::ZERO), None, b),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn default_schedule_grows_by_half() {
        let b = PollBounds::default();
        let mut d = next_poll(None, None, b);
        assert_eq!(d, Duration::from_secs(30));
        d = next_poll(None, Some(d), b);
        assert_eq!(d, Duration::from_secs(45));
        for _ in 0..20 {
            d = next_poll(None, Some(d), b);
        }
        assert_eq!(d, Duration::from_secs(300));
    }

    #[test]
    fn outcomes() {
        let t = br#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient","diagnostics":"busy"}]}"#;
        assert_eq!(
            classify_outcome(t),
            Outcome::Transient("transient: busy".into())
        );
        let f = br#"{"resourceType":"OperationOutcome","issue":[{"code":"transient"},{"code":"processing","details":{"text":"bad _typeFilter"}}]}"#;
        assert_eq!(
            classify_outcome(f),
            Outcome::Fatal("transient; processing: bad _typeFilter".into())
        );
        assert!(matches!(
            classify_outcome(br#"{"resourceType":"OperationOutcome"}"#),
            Outcome::Fatal(_)
        ));
        assert_eq!(classify_outcome(b"<html>"), Outcome::NotAnOutcome);
    }

    proptest! {
        #[test]
        fn polls_stay_in_bounds(asked in proptest::option::of(0u64..10_000_000), prev in proptest::option::of(0u64..10_000)) {
            let b = PollBounds::default();
            let d = next_poll(asked.map(Duration::from_secs), prev.map(Duration::from_secs), b);
            prop_assert!(d >= b.floor && d <= b.ceiling);
        }

        #[test]
        fn backoff_stays_in_bounds(attempt in 0u32..100, unit in 0.0f64..1.0) {
            let b = PollBounds::default();
            let d = backoff(attempt, unit, b);
            prop_assert!(d >= b.floor && d <= b.ceiling);
        }

        #[test]
        fn parsers_never_panic(v in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = retry_after(&v, NOW);
            let _ = classify_outcome(&v);
        }
    }
}
