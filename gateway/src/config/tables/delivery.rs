//! A destination's delivery policy: lanes, concurrency, retry and backoff,
//! the circuit breaker, timeouts. Part of `[[destination]]`.

use std::time::Duration;

use toml::Spanned;

use super::destination::RawDestination;
use crate::config::check::Check;
use crate::config::model::{DeadLetterPolicy, DeliveryPolicy, LaneMode};

pub(super) fn policy(
    name: &str,
    d: &RawDestination,
    defaults: DeliveryPolicy,
    cx: &mut Check<'_>,
) -> Option<DeliveryPolicy> {
    let mut p = defaults;
    let mark = cx.mark();
    let mut dur = |v: &Option<Spanned<String>>, field: &str| -> Option<Duration> {
        let v = v.as_ref()?;
        let x = cx.duration(&format!("destination '{name}': {field}"), v)?;
        if x < Duration::from_millis(1) {
            return cx.fail(
                v,
                format!("destination '{name}': {field} must be at least 1 ms"),
            );
        }
        Some(x)
    };
    if let Some(x) = dur(&d.backoff_initial, "backoff_initial") {
        p.initial_backoff = x;
    }
    if let Some(x) = dur(&d.backoff_max, "backoff_max") {
        p.max_backoff = x;
    }
    p.max_age = dur(&d.max_age, "max_age");
    if let Some(x) = dur(&d.retry_after_max, "retry_after_max") {
        p.retry_after_max = x;
    }
    if let Some(x) = dur(&d.probe_interval, "probe_interval") {
        p.probe_interval = x;
    }
    if let Some(x) = dur(&d.connect_timeout, "connect_timeout") {
        p.connect_timeout = x;
    }
    if let Some(x) = dur(&d.timeout, "timeout") {
        p.timeout = x;
    }
    if p.max_backoff < p.initial_backoff {
        if let Some(at) = d.backoff_max.as_ref().or(d.backoff_initial.as_ref()) {
            cx.error(
                at,
                format!("destination '{name}': backoff_max is below backoff_initial"),
            );
        }
    }
    if let Some(c) = &d.concurrency {
        match *c.get_ref() {
            n @ 1..=1024 => p.concurrency = n as usize,
            _ => cx.error(
                c,
                format!("destination '{name}': concurrency must be 1..=1024"),
            ),
        }
    }
    if let Some(a) = &d.max_attempts {
        match u32::try_from(*a.get_ref()) {
            Ok(n) if n > 0 => p.max_attempts = Some(n),
            _ => cx.error(
                a,
                format!("destination '{name}': max_attempts must be at least 1 (omit it to retry until delivered)"),
            ),
        }
    }
    if let Some(c) = &d.circuit_failures {
        match *c.get_ref() {
            n @ 1..=10_000 => p.circuit_failures = n as u32,
            _ => cx.error(
                c,
                format!("destination '{name}': circuit_failures must be 1..=10000"),
            ),
        }
    }
    if let Some(l) = &d.lane {
        match l.get_ref().as_str() {
            "patient" => p.lane = LaneMode::Patient,
            "destination" => p.lane = LaneMode::Destination,
            "none" => p.lane = LaneMode::None,
            other => cx.error(
                l,
                format!("destination '{name}': lane \"{other}\" is not one of \"patient\", \"destination\", \"none\""),
            ),
        }
    }
    if let Some(o) = &d.on_dead_letter {
        match o.get_ref().as_str() {
            "hold" => p.on_dead_letter = DeadLetterPolicy::Hold,
            "continue" => p.on_dead_letter = DeadLetterPolicy::Continue,
            other => cx.error(
                o,
                format!("destination '{name}': on_dead_letter \"{other}\" is not \"hold\" or \"continue\""),
            ),
        }
    }
    cx.clean_since(mark).then_some(p)
}
