//! Logging for a destination that is failing, without flooding: one line
//! when it goes down, one summary a minute while it stays down, one line
//! when it comes back; per-message failures while it is up are limited to
//! one line per interval with a count of the ones not shown. Lines carry
//! the destination, counts and the error's class (e.g. "HTTP 503",
//! "cannot connect"), never a server's diagnostic text, which may quote PHI.

use std::time::{Duration, Instant};

pub const SUMMARY_EVERY: Duration = Duration::from_secs(60);
const FAILURE_LINE_EVERY: Duration = Duration::from_secs(10);

/// The first part of an error, before any server-supplied text.
pub fn error_class(reason: &str) -> &str {
    let head = reason.split(": ").next().unwrap_or(reason);
    // Keep it short even for odd errors.
    match head.char_indices().nth(80) {
        Some((i, _)) => &head[..i],
        None => head,
    }
}

#[derive(Debug)]
pub struct OutageLog {
    destination: String,
    last_summary: Option<Instant>,
    failures_since_summary: u64,
    last_failure_line: Option<Instant>,
    suppressed: u64,
}

impl OutageLog {
    pub fn new(destination: &str) -> OutageLog {
        OutageLog {
            destination: destination.to_string(),
            last_summary: None,
            failures_since_summary: 0,
            last_failure_line: None,
            suppressed: 0,
        }
    }

    pub fn went_down(&mut self, now: Instant, reason: &str, probe_every: Duration, pending: u64) {
        self.last_summary = Some(now);
        self.failures_since_summary = 0;
        log::warn!(
            target: "gateway::deliver",
            destination = &*self.destination,
            outcome = "down";
            "destination {} is down ({}): holding {pending} pending message(s); one probe every {} s until it answers",
            self.destination,
            error_class(reason),
            probe_every.as_secs().max(1)
        );
    }

    /// A failed attempt while down (probes) or up (single messages).
    pub fn failed(&mut self, now: Instant, down_for: Option<Duration>, reason: &str) {
        self.failures_since_summary += 1;
        match down_for {
            Some(d) => {
                if self
                    .last_summary
                    .is_none_or(|t| now.duration_since(t) >= SUMMARY_EVERY)
                {
                    log::warn!(
                        target: "gateway::deliver",
                        destination = &*self.destination,
                        outcome = "still_down";
                        "destination {} still down after {}: {} failed attempt(s) in the last interval, last error {}",
                        self.destination,
                        human(d),
                        self.failures_since_summary,
                        error_class(reason)
                    );
                    self.last_summary = Some(now);
                    self.failures_since_summary = 0;
                }
            }
            None => {
                if self
                    .last_failure_line
                    .is_none_or(|t| now.duration_since(t) >= FAILURE_LINE_EVERY)
                {
                    let extra = if self.suppressed > 0 {
                        format!(" ({} more failure(s) not shown)", self.suppressed)
                    } else {
                        String::new()
                    };
                    log::warn!(
                        target: "gateway::deliver",
                        destination = &*self.destination,
                        outcome = "retry";
                        "destination {}: attempt failed ({}), will retry with backoff{extra}",
                        self.destination,
                        error_class(reason)
                    );
                    self.last_failure_line = Some(now);
                    self.suppressed = 0;
                } else {
                    self.suppressed += 1;
                }
            }
        }
    }

    pub fn came_back(&mut self, down_for: Duration, pending: u64) {
        log::info!(
            target: "gateway::deliver",
            destination = &*self.destination,
            outcome = "back";
            "destination {} is back after {}: delivering {pending} pending message(s)",
            self.destination,
            human(down_for)
        );
        self.failures_since_summary = 0;
    }
}

/// "4m 05s", "2h 03m", "12s".
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h {:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_and_durations() {
        assert_eq!(
            error_class("HTTP 400: OperationOutcome: error at Patient.name: John"),
            "HTTP 400"
        );
        assert_eq!(
            error_class("cannot connect: Connection refused"),
            "cannot connect"
        );
        assert_eq!(human(Duration::from_secs(245)), "4m 05s");
        assert_eq!(human(Duration::from_secs(7380)), "2h 03m");
        assert_eq!(human(Duration::from_secs(12)), "12s");
    }
}
