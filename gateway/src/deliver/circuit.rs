//! A circuit breaker per destination. While a destination is down, the
//! outbox costs one probe per interval, not one failed request (and one log
//! line) per message. Pure: callers pass the time in.
//!
//! Closed → (N consecutive transient failures) → Open until T → at T one
//! probe attempt may start (HalfOpen) → its success closes the circuit and
//! every lane resumes at once; its failure opens it again for another
//! interval. A server's Retry-After (429/503) pauses the destination the
//! same way, for the time it asked.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

impl State {
    pub fn label(&self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half-open",
        }
    }
}

/// May an attempt start now?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Yes, normally.
    Go,
    /// Yes, as the one probe of a half-open circuit.
    Probe,
    /// No; ask again at this instant.
    Wait(Instant),
}

#[derive(Debug, Clone)]
pub struct Circuit {
    threshold: u32,
    interval: Duration,
    state: State,
    consecutive_failures: u32,
    open_until: Option<Instant>,
    probe_in_flight: bool,
    /// When the current outage began (first failure of the streak that opened it).
    down_since: Option<Instant>,
    streak_started: Option<Instant>,
    probes: u64,
}

impl Circuit {
    pub fn new(threshold: u32, interval: Duration) -> Circuit {
        Circuit {
            threshold: threshold.max(1),
            interval,
            state: State::Closed,
            consecutive_failures: 0,
            open_until: None,
            probe_in_flight: false,
            down_since: None,
            streak_started: None,
            probes: 0,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn down_since(&self) -> Option<Instant> {
        self.down_since
    }

    /// Probes started since creation.
    pub fn probes(&self) -> u64 {
        self.probes
    }

    pub fn permit(&mut self, now: Instant) -> Permit {
        match self.state {
            State::Closed => Permit::Go,
            State::Open => match self.open_until {
                Some(t) if now < t => Permit::Wait(t),
                _ => {
                    self.state = State::HalfOpen;
                    self.probe_in_flight = true;
                    self.probes += 1;
                    Permit::Probe
                }
            },
            State::HalfOpen => {
                if self.probe_in_flight {
                    // The probe's answer decides; check back after an interval at most.
                    Permit::Wait(now + self.interval)
                } else {
                    self.probe_in_flight = true;
                    self.probes += 1;
                    Permit::Probe
                }
            }
        }
    }

    /// An attempt succeeded. Returns true if this closed an open circuit.
    pub fn on_success(&mut self) -> bool {
        let was_down = self.state != State::Closed;
        self.state = State::Closed;
        self.consecutive_failures = 0;
        self.open_until = None;
        self.probe_in_flight = false;
        self.down_since = None;
        self.streak_started = None;
        was_down
    }

    /// An attempt failed transiently. `pause` is a server-requested wait
    /// (Retry-After) that applies to the whole destination. Returns true if
    /// this opened the circuit (the outage starts now).
    pub fn on_failure(&mut self, now: Instant, pause: Option<Duration>) -> bool {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.streak_started.get_or_insert(now);
        self.probe_in_flight = false;
        let trip = self.state != State::Closed
            || self.consecutive_failures >= self.threshold
            || pause.is_some();
        if !trip {
            return false;
        }
        let opened = self.state == State::Closed;
        self.state = State::Open;
        let wait = pause.unwrap_or(self.interval);
        self.open_until = Some(now + wait);
        if opened {
            self.down_since = self.streak_started;
        }
        opened
    }

    /// A probe ended without telling us about the destination (e.g. the
    /// message was rejected as invalid, which proves the server is up).
    pub fn on_neutral(&mut self) {
        if self.state == State::HalfOpen {
            self.on_success();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_then_probes_once_per_interval() {
        let t0 = Instant::now();
        let iv = Duration::from_secs(10);
        let mut c = Circuit::new(3, iv);
        assert_eq!(c.permit(t0), Permit::Go);
        assert!(!c.on_failure(t0, None));
        assert!(!c.on_failure(t0, None));
        assert!(c.on_failure(t0 + Duration::from_secs(1), None));
        assert_eq!(c.state(), State::Open);
        assert_eq!(c.down_since(), Some(t0));
        assert_eq!(
            c.permit(t0 + Duration::from_secs(5)),
            Permit::Wait(t0 + Duration::from_secs(11))
        );
        // At the deadline exactly one probe is allowed.
        let t1 = t0 + Duration::from_secs(11);
        assert_eq!(c.permit(t1), Permit::Probe);
        assert!(matches!(c.permit(t1), Permit::Wait(_)));
        // Probe fails: open for another interval.
        assert!(!c.on_failure(t1, None));
        assert_eq!(c.permit(t1 + Duration::from_secs(9)), Permit::Wait(t1 + iv));
        assert_eq!(c.permit(t1 + iv), Permit::Probe);
        assert!(c.on_success());
        assert_eq!(c.permit(t1 + iv), Permit::Go);
        assert_eq!(c.down_since(), None);
        assert_eq!(c.probes(), 2);
    }

    #[test]
    fn retry_after_pauses_at_once() {
        let t0 = Instant::now();
        let mut c = Circuit::new(5, Duration::from_secs(10));
        assert!(c.on_failure(t0, Some(Duration::from_secs(120))));
        assert_eq!(
            c.permit(t0 + Duration::from_secs(60)),
            Permit::Wait(t0 + Duration::from_secs(120))
        );
    }

    #[test]
    fn success_resets_the_streak() {
        let t0 = Instant::now();
        let mut c = Circuit::new(2, Duration::from_secs(1));
        c.on_failure(t0, None);
        assert!(!c.on_success());
        assert!(!c.on_failure(t0, None));
        assert_eq!(c.state(), State::Closed);
    }
}
