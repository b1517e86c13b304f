//! systemd readiness notification (a no-op when not started by systemd).

use sd_notify::NotifyState;

pub fn ready(status: &str) {
    let _ = sd_notify::notify(false, &[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn status(status: &str) {
    let _ = sd_notify::notify(false, &[NotifyState::Status(status)]);
}

pub fn stopping() {
    let _ = sd_notify::notify(
        false,
        &[NotifyState::Stopping, NotifyState::Status("stopping")],
    );
}

/// `EXTEND_TIMEOUT_USEC`: ask systemd for `by` more before the start (or
/// stop) timeout fires, with a status line saying why.
pub fn extend_timeout(by: std::time::Duration, status: &str) {
    let usec = u32::try_from(by.as_micros()).unwrap_or(u32::MAX);
    let _ = sd_notify::notify(
        false,
        &[
            NotifyState::ExtendTimeoutUsec(usec),
            NotifyState::Status(status),
        ],
    );
}

/// The live `STATUS=` line: "3 listeners, 12 pending, cloud-fhir down 4m, 1 alert".
pub fn summary(r: &super::admin::StatusReport, now_ms: u64) -> String {
    let pending: u64 = r.destinations.iter().map(|d| d.pending).sum();
    let mut parts = vec![
        format!(
            "{} listener{}",
            r.listeners.len(),
            if r.listeners.len() == 1 { "" } else { "s" }
        ),
        format!("{pending} pending"),
    ];
    for d in &r.destinations {
        if let Some(t) = d.live.down_since_ms {
            let mins = now_ms.saturating_sub(t) / 60_000;
            parts.push(if mins >= 120 {
                format!("{} down {}h", d.name, mins / 60)
            } else {
                format!("{} down {mins}m", d.name)
            });
        }
    }
    let dead: u64 = r.destinations.iter().map(|d| d.dead_letters).sum();
    if dead > 0 {
        parts.push(format!("{dead} dead-lettered"));
    }
    if !r.alerts.is_empty() {
        parts.push(format!(
            "{} alert{}",
            r.alerts.len(),
            if r.alerts.len() == 1 { "" } else { "s" }
        ));
    }
    parts.join(", ")
}
