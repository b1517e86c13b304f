//! The alert rules: one pure function per [`Rule`] over the status report,
//! the certificate list and the restart verdict. The caller passes the time.

use super::alert::{Alert, Finding, Rule, Severity};
use crate::config::AlertsConfig;
use crate::ops::admin::{DestinationStatus, StatusReport};
use crate::ops::certs::CertInfo;
use crate::ops::clock;
use crate::ops::restart_markers::RestartInfo;
use crate::source::export::job::ExportStatus;

/// The alerts `report` warrants now: per destination `destination_down`,
/// `pending_depth`, `oldest_pending`, `dead_letters`; then `disk`,
/// `restarted` and one `certificate` alert per certificate file.
/// `since_ms` is the condition's own start where it has one, else `now_ms`
/// (the [`super::Board`] then keeps the first time it saw it).
pub fn evaluate(
    cfg: &AlertsConfig,
    report: &StatusReport,
    certs: &[CertInfo],
    restart: Option<&RestartInfo>,
    now_ms: u64,
) -> Vec<Alert> {
    let mut out = Vec::new();
    for d in &report.destinations {
        out.extend(destination_down(cfg, d, now_ms));
        out.extend(pending_depth(cfg, d, now_ms));
        out.extend(oldest_pending(cfg, d, now_ms));
        out.extend(dead_letters(cfg, d, now_ms));
    }
    out.extend(disk(cfg, report, now_ms));
    out.extend(audit_trail_size(report, now_ms));
    out.extend(restart.and_then(|r| restarted(cfg, r, now_ms)));
    out.extend(certs.iter().filter_map(|c| certificate(cfg, c, now_ms)));
    out.extend(
        report
            .pickups
            .iter()
            .filter_map(|p| pickup_rejected(p, now_ms)),
    );
    let started_ms = now_ms.saturating_sub(report.uptime_secs * 1000);
    out.extend(
        report
            .exports
            .iter()
            .filter_map(|e| export_stale(e, started_ms, now_ms)),
    );
    out.extend(report.feeds.iter().filter_map(|f| {
        let office = cfg
            .silence
            .iter()
            .any(|r| r.name == f.name && r.office_hours);
        silence(f, cfg.office_hours.as_ref().filter(|_| office), now_ms)
    }));
    out
}

/// A feed gone quiet: no message of the rule's type from its source for
/// `max` (counted from the daemon's start before the first one). When eCW
/// stops sending, every queue is empty and the box looks green: this is
/// the alert that says so. With `office` (the rule's `hours = "office"`)
/// only time inside the office hours counts: a lab feed quiet overnight or
/// on a holiday does not alert, and the count resumes when the office opens.
pub fn silence(
    f: &crate::ops::feeds::FeedStatus,
    office: Option<&super::OfficeHours>,
    now_ms: u64,
) -> Option<Alert> {
    let max_ms = f.max_secs.saturating_mul(1000);
    let due_ms = match office {
        None => f.last_ms.saturating_add(max_ms),
        Some(h) => h.after_open_for(f.last_ms, max_ms)?,
    };
    if now_ms < due_ms {
        return None;
    }
    let of_hours = if office.is_some() {
        " of office hours"
    } else {
        ""
    };
    let severity = if f.critical {
        Severity::Critical
    } else {
        Severity::Warning
    };
    Some(Rule::Silence.alert(Finding {
        key: f.name.clone(),
        severity,
        title: format!(
            "{}: no {} from {} for more than {}{of_hours}",
            f.name,
            f.message_type,
            f.source,
            human(f.max_secs)
        ),
        affected: format!("source {}", f.source),
        since_ms: due_ms,
        action: format!(
            "Check that the sending system still sends {} to {}: its interface engine and outbound connection, and the network between them. The gateway is up and takes what arrives; `gateway status` shows when the feed last delivered.",
            f.message_type, f.source
        ),
    }))
}

/// Files waiting in a pickup folder's `.rejected/`: someone must look at
/// them (the reason is beside each one). Clears when they are removed.
pub fn pickup_rejected(p: &crate::source::pickup::PickupState, now_ms: u64) -> Option<Alert> {
    if p.rejected_waiting == 0 {
        return None;
    }
    Some(Rule::PickupRejected.alert(Finding {
        key: p.name.clone(),
        severity: Severity::Warning,
        title: format!("{} file(s) in pickup {} were not accepted", p.rejected_waiting, p.name),
        affected: format!("pickup {}", p.name),
        since_ms: now_ms,
        action: format!(
            "They were not sent. Each is in the folder's .rejected/ with a .reason.txt beside it (X12: its TA1/999 is in the ack folder). Fix and drop the file again, then remove it from .rejected/; `gateway status` shows pickup {}.",
            p.name
        ),
    }))
}

/// A tenant's export has not succeeded within its `alert_after` (default
/// 48 h), counted from its last success, or from the start of the daemon
/// if it never succeeded.
pub fn export_stale(e: &ExportStatus, started_ms: u64, now_ms: u64) -> Option<Alert> {
    let from = e.history.last_success_ms.unwrap_or(started_ms);
    let age = now_ms.saturating_sub(from);
    if e.alert_after_secs == 0 || age < e.alert_after_secs * 1000 {
        return None;
    }
    let last = e
        .history
        .last_error
        .as_deref()
        .map(|m| format!(" The last error: {m}."))
        .unwrap_or_default();
    Some(Rule::ExportStale.alert(Finding {
        key: e.name.clone(),
        severity: Severity::Warning,
        title: format!("The export {} (tenant {}) has not succeeded for {}", e.name, e.tenant, human(age / 1000)),
        affected: format!("export {} (tenant {})", e.name, e.tenant),
        since_ms: from + e.alert_after_secs * 1000,
        action: format!("The partner's data is getting old.{last} Run `gateway export status {}` on the box; `gateway export run {}` starts a job now.", e.name, e.name),
    }))
}

fn affected(d: &DestinationStatus) -> String {
    format!("destination {} ({})", d.name, d.kind)
}

/// Whether the condition behind alert `id` is positively known to be
/// gone, for an alert restored after a restart and not raised again: a
/// destination is known up only once it has delivered since the start; a
/// silent feed cannot be known to flow again before a message comes (the
/// rule raises it again if not); the other rules read state that is
/// complete from the start.
pub fn known_clear(report: &StatusReport, id: &str) -> bool {
    match id.split_once('/') {
        Some(("destination_down", name)) => report
            .destinations
            .iter()
            .find(|d| d.name == name)
            .is_none_or(|d| d.live.circuit == "closed" && d.live.delivered_since_start > 0),
        Some(("silence", _)) => false,
        _ => true,
    }
}

/// Circuit not closed for at least `destination_down_max`; dates from when it went down.
pub fn destination_down(cfg: &AlertsConfig, d: &DestinationStatus, now_ms: u64) -> Option<Alert> {
    let down = d.live.down_since_ms?;
    let for_ms = now_ms.saturating_sub(down);
    if d.live.circuit == "closed" || for_ms < cfg.destination_down_max.as_millis() as u64 {
        return None;
    }
    Some(Rule::DestinationDown.alert(Finding {
        key: d.name.clone(),
        severity: Severity::Critical,
        title: format!("{} cannot be reached", d.name),
        affected: affected(d),
        since_ms: down,
        action: format!(
            "Messages for {} are kept safely and will be sent when it is back. Check the internet connection and whether {} is up; `gateway status` on the box shows the last error.",
            d.name, d.name
        ),
    }))
}

/// More than `pending_max` messages waiting.
pub fn pending_depth(cfg: &AlertsConfig, d: &DestinationStatus, now_ms: u64) -> Option<Alert> {
    if d.pending <= cfg.pending_max {
        return None;
    }
    Some(Rule::PendingDepth.alert(Finding {
        key: d.name.clone(),
        severity: Severity::Warning,
        title: format!("{} messages waiting for {}", d.pending, d.name),
        affected: affected(d),
        since_ms: now_ms,
        action: format!(
            "More than {} messages are waiting. If {} is down this clears when it is back; otherwise check its speed and `gateway status`.",
            cfg.pending_max, d.name
        ),
    }))
}

/// The oldest pending message older than `oldest_pending_max`; dates from
/// when it crossed the threshold.
pub fn oldest_pending(cfg: &AlertsConfig, d: &DestinationStatus, now_ms: u64) -> Option<Alert> {
    let age = d.oldest_pending_age_secs?;
    let max = cfg.oldest_pending_max.as_secs();
    if age <= max {
        return None;
    }
    Some(Rule::OldestPending.alert(Finding {
        key: d.name.clone(),
        severity: Severity::Warning,
        title: format!("A message has waited {} for {}", human(age), d.name),
        affected: affected(d),
        since_ms: now_ms.saturating_sub((age - max) * 1000),
        action: format!(
            "The oldest message for {} is older than {}. Check that {} is reachable; `gateway status` shows its last error.",
            d.name,
            human(max),
            d.name
        ),
    }))
}

/// A non-empty dead-letter queue (unless `dead_letters = false`).
/// Dates from now: the board keeps the first sighting.
pub fn dead_letters(cfg: &AlertsConfig, d: &DestinationStatus, now_ms: u64) -> Option<Alert> {
    if !cfg.dead_letters || d.dead_letters == 0 {
        return None;
    }
    Some(Rule::DeadLetters.alert(Finding {
        key: d.name.clone(),
        severity: Severity::Warning,
        title: format!("{} message(s) for {} could not be delivered", d.dead_letters, d.name),
        affected: affected(d),
        since_ms: now_ms,
        action: format!(
            "They are kept in the dead-letter queue. Ask your IT provider to run `gateway dlq list --destination {}`, fix the cause, then `gateway dlq replay --all --destination {}`.",
            d.name, d.name
        ),
    }))
}

/// The data disk at or over `disk_warn_percent`.
pub fn disk(cfg: &AlertsConfig, report: &StatusReport, now_ms: u64) -> Option<Alert> {
    let used = report.journal.disk_percent_used;
    if used < cfg.disk_warn_percent {
        return None;
    }
    Some(Rule::Disk.alert(Finding {
        key: "data".into(),
        severity: Severity::Critical,
        title: format!("The data disk is {used}% full"),
        affected: format!("data disk ({})", report.data_dir),
        since_ms: now_ms,
        action: "At the refuse watermark ([storage] refuse_at_percent) the gateway answers new messages with AE and the EHR must resend them. Make sure the destinations are up (delivered messages are pruned after the retention period), purge dead letters that are no longer needed, or give the box a larger disk.".into(),
    }))
}

/// Percent of `[audit] max_mb` at which `audit_trail_size` fires.
pub const AUDIT_WARN_PERCENT: u64 = 80;

/// The audit trail nears its size cap: past it, the oldest events are
/// pruned before their retention (HIPAA asks for six years).
pub fn audit_trail_size(report: &StatusReport, now_ms: u64) -> Option<Alert> {
    let a = &report.journal.audit;
    if a.max_bytes == 0
        || a.bytes.saturating_mul(100) < a.max_bytes.saturating_mul(AUDIT_WARN_PERCENT)
    {
        return None;
    }
    let pct = a.bytes.saturating_mul(100) / a.max_bytes;
    Some(Rule::AuditTrailSize.alert(Finding {
        key: "audit".into(),
        severity: if pct >= 100 { Severity::Critical } else { Severity::Warning },
        title: format!("The audit trail is at {pct}% of its size cap"),
        affected: format!("audit trail ({} events, [audit] max_mb = {})", a.events, a.max_bytes / (1024 * 1024)),
        since_ms: now_ms,
        action: "At the cap the oldest audit events are pruned before their retention_days. Export them first (gateway audit export > file, kept by the practice for six years), then raise [audit] max_mb if the disk allows.".into(),
    }))
}

/// The previous run ended badly, for `restart_alert_for` after the start.
pub fn restarted(cfg: &AlertsConfig, r: &RestartInfo, now_ms: u64) -> Option<Alert> {
    if now_ms.saturating_sub(r.at_ms) >= cfg.restart_alert_for.as_millis() as u64 {
        return None;
    }
    let title = if r.watchdog {
        "The watchdog restarted the gateway"
    } else {
        "The gateway restarted after a failure"
    };
    Some(Rule::Restarted.alert(Finding {
        key: "service".into(),
        severity: Severity::Warning,
        title: title.into(),
        affected: format!("the gateway service ({})", r.detail),
        since_ms: r.at_ms,
        action: "It is running again and nothing acknowledged was lost. If this repeats, send `journalctl -u gateway` from the box to your IT provider.".into(),
    }))
}

/// A certificate under one of `cert_warn_days`: its stage is the
/// smallest threshold crossed, so it re-fires as it escalates; critical
/// from 7 days and once expired.
pub fn certificate(cfg: &AlertsConfig, c: &CertInfo, now_ms: u64) -> Option<Alert> {
    let days = c.days_left((now_ms / 1000) as i64)?;
    let stage = cfg
        .cert_warn_days
        .iter()
        .copied()
        .filter(|t| days < i64::from(*t))
        .min()?;
    let who = if c.owner_kind == c.owner {
        c.owner_kind.replace('_', " ")
    } else {
        format!("{} {}", c.owner_kind.replace('_', " "), c.owner)
    };
    let (severity, title) = if days < 0 {
        (
            Severity::Critical,
            format!("TLS certificate expired: {who} ({})", c.role),
        )
    } else {
        (
            if stage <= 7 {
                Severity::Critical
            } else {
                Severity::Warning
            },
            format!(
                "TLS certificate expires within {stage} day(s): {who} ({})",
                c.role
            ),
        )
    };
    let expires = c
        .not_after
        .map(|t| clock::iso8601((t.max(0) as u64) * 1000))
        .unwrap_or_default();
    let step = if days < 0 {
        "expired".to_string()
    } else {
        format!("{stage}d")
    };
    Some(Rule::Certificate.staged_alert(
        Finding {
        key: format!("{}/{}/{}", c.owner_kind, c.owner, c.role),
        severity,
        title,
        affected: format!(
            "the {} certificate of {who}: {} (expires {expires}, {days} day(s) left)",
            c.role, c.path
        ),
        since_ms: now_ms,
        action: format!(
            "Renew {} and replace the file, then restart the gateway (`systemctl restart gateway`).",
            c.path
        ),
    },
        step,
    ))
}

fn human(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 2 * 86_400 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::DeliveryState;
    use crate::ops::admin::JournalStatus;
    use crate::ops::alerts::{Board, Event};

    fn destination(down_since: Option<u64>, pending: u64, dead: u64) -> DestinationStatus {
        DestinationStatus {
            name: "cloud".into(),
            kind: "fhir".into(),
            pending,
            delivered: 0,
            oldest_pending_age_secs: None,
            dead_letters: dead,
            dead_lettered_total: dead,
            live: DeliveryState {
                circuit: if down_since.is_some() {
                    "open"
                } else {
                    "closed"
                }
                .into(),
                down_since_ms: down_since,
                last_error: Some("Jane Doe 1970-01-01 rejected".into()),
                ..Default::default()
            },
            unmapped_codes: vec![],
            unmapped_distinct: 0,
            unmapped_occurrences: 0,
        }
    }

    fn report(down_since: Option<u64>, pending: u64, dead: u64, disk: u8) -> StatusReport {
        StatusReport {
            version: "1".into(),
            pid: 1,
            config: "c".into(),
            data_dir: "/d".into(),
            started_at: "".into(),
            uptime_secs: 0,
            listeners: vec![],
            destinations: vec![destination(down_since, pending, dead)],
            pollers: vec![],
            pickups: vec![],
            journal: JournalStatus {
                messages: 0,
                duplicates: 0,
                control_id_reuses: 0,
                quarantined: 0,
                bytes_on_disk: 0,
                disk_percent_used: disk,
                pruned: 0,
                format: 2,
                audit: Default::default(),
            },
            box_id: String::new(),
            alerts: vec![],
            certificates: vec![],
            exports: vec![],
            feeds: vec![],
            remote_write: None,
        }
    }

    fn cfg() -> AlertsConfig {
        AlertsConfig::defaults(&crate::config::StorageConfig::default())
    }

    fn cert(now_ms: u64, days: i64) -> CertInfo {
        CertInfo {
            owner_kind: "listener".into(),
            owner: "ehr".into(),
            role: "server".into(),
            path: "/etc/gateway/ehr.pem".into(),
            not_after: Some((now_ms / 1000) as i64 + days * 86_400 + 3600),
            error: None,
        }
    }

    #[test]
    fn down_fires_after_the_threshold_and_resolves() {
        let c = cfg();
        let board = Board::default();
        let t0 = 1_000_000_000;
        // Down 1 minute: below the 5 min default.
        let a = evaluate(&c, &report(Some(t0), 0, 0, 10), &[], None, t0 + 60_000);
        assert!(a.is_empty());
        let a = evaluate(&c, &report(Some(t0), 0, 0, 10), &[], None, t0 + 301_000);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].since_ms, t0);
        assert!(!a[0].title.contains("Jane"), "no last error in alerts");
        let ev = board.update(a.clone(), t0 + 301_000, c.reminder);
        assert_eq!(ev[0].0, Event::Fired);
        // Same again: nothing to announce, until the reminder is due.
        assert!(board.update(a.clone(), t0 + 306_000, c.reminder).is_empty());
        let later = t0 + 301_000 + c.reminder.as_millis() as u64;
        assert_eq!(board.update(a, later, c.reminder)[0].0, Event::Reminder);
        let ev = board.update(vec![], later + 1, c.reminder);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].0, Event::Resolved);
        assert!(board.active().is_empty());
    }

    #[test]
    fn pending_dead_letters_disk_and_restart() {
        let c = cfg();
        let r = report(None, 5000, 2, 85);
        let restart = RestartInfo {
            at_ms: 10,
            watchdog: true,
            detail: "x".into(),
        };
        let a = evaluate(&c, &r, &[], Some(&restart), 1000);
        let rules: Vec<&str> = a.iter().map(|a| a.rule.as_str()).collect();
        assert_eq!(
            rules,
            ["pending_depth", "dead_letters", "disk", "restarted"]
        );
        assert!(a
            .iter()
            .all(|a| !a.action.is_empty() && !a.affected.is_empty()));
        // The restart alert expires.
        let late = 10 + c.restart_alert_for.as_millis() as u64;
        assert!(evaluate(&c, &r, &[], Some(&restart), late)
            .iter()
            .all(|a| a.rule != Rule::Restarted));
    }

    #[test]
    fn oldest_pending_dates_from_when_it_crossed_the_threshold() {
        let c = cfg();
        let mut r = report(None, 3, 0, 1);
        r.destinations[0].oldest_pending_age_secs = Some(c.oldest_pending_max.as_secs() + 60);
        let now = 10_000_000;
        let a = evaluate(&c, &r, &[], None, now);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].id, "oldest_pending/cloud");
        assert_eq!(a[0].since_ms, now - 60_000);
        r.destinations[0].oldest_pending_age_secs = Some(5);
        assert!(evaluate(&c, &r, &[], None, now).is_empty());
    }

    #[test]
    fn certificate_stages_escalate() {
        let c = cfg();
        let now_ms: u64 = 1_700_000_000_000;
        let r = report(None, 0, 0, 1);
        assert!(evaluate(&c, &r, &[cert(now_ms, 100)], None, now_ms).is_empty());
        let a = evaluate(&c, &r, &[cert(now_ms, 45)], None, now_ms);
        assert!(a[0].title.contains("within 60 day"), "{}", a[0].title);
        assert_eq!(a[0].severity, Severity::Warning);
        let b = evaluate(&c, &r, &[cert(now_ms, 5)], None, now_ms);
        assert!(b[0].title.contains("within 7 day"), "{}", b[0].title);
        assert_eq!(b[0].severity, Severity::Critical);
        let board = Board::default();
        board.update(a, now_ms, c.reminder);
        // Escalation re-fires under the same id.
        assert_eq!(board.update(b, now_ms + 1, c.reminder)[0].0, Event::Fired);
        let x = evaluate(&c, &r, &[cert(now_ms, -2)], None, now_ms);
        assert!(x[0].title.contains("expired"));
    }

    // One test per rule, at its threshold, with the exact texts the log,
    // the webhook and the status page show.

    #[test]
    fn destination_down_rule() {
        let c = cfg();
        let max = c.destination_down_max.as_millis() as u64;
        let t0 = 1_000_000;
        let d = destination(Some(t0), 0, 0);
        assert!(destination_down(&c, &d, t0 + max - 1).is_none());
        let a = destination_down(&c, &d, t0 + max).unwrap();
        assert_eq!(a.id, "destination_down/cloud");
        assert_eq!(
            (a.rule, a.severity),
            (Rule::DestinationDown, Severity::Critical)
        );
        assert_eq!(a.title, "cloud cannot be reached");
        assert_eq!(a.affected, "destination cloud (fhir)");
        assert_eq!(a.since_ms, t0);
        assert!(!a.action.contains("Jane"), "{}", a.action);
        // A down_since with a closed circuit (recovering) raises nothing.
        let mut closed = d.clone();
        closed.live.circuit = "closed".into();
        assert!(destination_down(&c, &closed, t0 + 10 * max).is_none());
        assert!(destination_down(&c, &destination(None, 0, 0), t0 + 10 * max).is_none());
    }

    #[test]
    fn pending_depth_rule() {
        let c = cfg();
        assert!(pending_depth(&c, &destination(None, c.pending_max, 0), 5).is_none());
        let a = pending_depth(&c, &destination(None, c.pending_max + 1, 0), 5).unwrap();
        assert_eq!(a.id, "pending_depth/cloud");
        assert_eq!(a.severity, Severity::Warning);
        assert_eq!(a.title, "1001 messages waiting for cloud");
        assert_eq!(a.since_ms, 5);
        assert!(
            a.action.starts_with("More than 1000 messages are waiting."),
            "{}",
            a.action
        );
    }

    #[test]
    fn oldest_pending_rule() {
        let c = cfg();
        let max = c.oldest_pending_max.as_secs();
        let mut d = destination(None, 1, 0);
        d.oldest_pending_age_secs = Some(max);
        assert!(oldest_pending(&c, &d, 10_000_000).is_none());
        d.oldest_pending_age_secs = Some(3 * 3600);
        let a = oldest_pending(&c, &d, 100_000_000).unwrap();
        assert_eq!(a.title, "A message has waited 3 h for cloud");
        assert!(a.action.contains("older than 15 min"), "{}", a.action);
        assert_eq!(a.since_ms, 100_000_000 - (3 * 3600 - max) * 1000);
    }

    #[test]
    fn dead_letters_rule() {
        let mut c = cfg();
        assert!(dead_letters(&c, &destination(None, 0, 0), 9).is_none());
        let a = dead_letters(&c, &destination(None, 0, 3), 9).unwrap();
        assert_eq!(a.id, "dead_letters/cloud");
        assert_eq!(a.title, "3 message(s) for cloud could not be delivered");
        assert!(a
            .action
            .contains("gateway dlq replay --all --destination cloud"));
        c.dead_letters = false;
        assert!(dead_letters(&c, &destination(None, 0, 3), 9).is_none());
    }

    #[test]
    fn disk_rule() {
        let c = cfg();
        let below = report(None, 0, 0, c.disk_warn_percent - 1);
        assert!(disk(&c, &below, 1).is_none());
        let a = disk(&c, &report(None, 0, 0, c.disk_warn_percent), 1).unwrap();
        assert_eq!(a.id, "disk/data");
        assert_eq!(a.severity, Severity::Critical);
        assert_eq!(
            a.title,
            format!("The data disk is {}% full", c.disk_warn_percent)
        );
        assert_eq!(a.affected, "data disk (/d)");
    }

    #[test]
    fn audit_trail_size_rule() {
        let mut r = report(None, 0, 0, 0);
        assert!(audit_trail_size(&r, 1).is_none(), "no cap known: no alert");
        r.journal.audit.max_bytes = 1000;
        r.journal.audit.bytes = 799;
        assert!(audit_trail_size(&r, 1).is_none());
        r.journal.audit.bytes = 800;
        r.journal.audit.events = 7;
        let a = audit_trail_size(&r, 1).unwrap();
        assert_eq!(a.id, "audit_trail_size/audit");
        assert_eq!(a.severity, Severity::Warning);
        assert_eq!(a.title, "The audit trail is at 80% of its size cap");
        r.journal.audit.bytes = 1000;
        assert_eq!(
            audit_trail_size(&r, 1).unwrap().severity,
            Severity::Critical
        );
        // The evaluation runs it.
        assert!(evaluate(&cfg(), &r, &[], None, 1)
            .iter()
            .any(|a| a.rule == Rule::AuditTrailSize));
    }

    #[test]
    fn restarted_rule() {
        let c = cfg();
        let crash = RestartInfo {
            at_ms: 1000,
            watchdog: false,
            detail: "the previous run did not stop cleanly".into(),
        };
        let a = restarted(&c, &crash, 2000).unwrap();
        assert_eq!(a.id, "restarted/service");
        assert_eq!(a.title, "The gateway restarted after a failure");
        assert_eq!(
            a.affected,
            "the gateway service (the previous run did not stop cleanly)"
        );
        assert_eq!(a.since_ms, 1000);
        let dog = RestartInfo {
            watchdog: true,
            ..crash.clone()
        };
        assert_eq!(
            restarted(&c, &dog, 2000).unwrap().title,
            "The watchdog restarted the gateway"
        );
        let over = 1000 + c.restart_alert_for.as_millis() as u64;
        assert!(restarted(&c, &crash, over - 1).is_some());
        assert!(restarted(&c, &crash, over).is_none());
    }

    #[test]
    fn silence_counts_office_hours_only_when_asked() {
        use crate::ops::alerts::office_hours::{parse_holiday, parse_spans, Span};
        let ms = |iso: &str| iso.parse::<jiff::Timestamp>().unwrap().as_millisecond() as u64;
        let mut week: [Vec<Span>; 7] = Default::default();
        for d in week.iter_mut().take(5) {
            *d = parse_spans("08:00-17:00").unwrap();
        }
        let hours = crate::ops::alerts::OfficeHours::new(
            "America/New_York",
            week,
            vec![parse_holiday("2026-12-25").unwrap()],
        )
        .unwrap();
        let feed = |last: &str| crate::ops::feeds::FeedStatus {
            name: "lab results".into(),
            source: "ehr".into(),
            message_type: "ORU^R01".into(),
            max_secs: 2 * 3600,
            critical: true,
            last_ms: ms(last),
            seen: 1,
        };
        // Last result Thu 2026-12-24 16:00 EST; Christmas is closed, then the weekend.
        let f = feed("2026-12-24T21:00:00Z");
        for (now, wall, office) in [
            ("2026-12-24T22:30:00Z", false, false), // Thu 17:30: 1.5 h wall, 1 h office
            ("2026-12-25T03:00:00Z", true, false),  // overnight
            ("2026-12-25T18:00:00Z", true, false),  // the holiday
            ("2026-12-27T18:00:00Z", true, false),  // Sunday
            ("2026-12-28T13:59:00Z", true, false),  // Mon 08:59: the office clock resumes
            ("2026-12-28T14:00:00Z", true, true),   // Mon 09:00: 2 h of office time
        ] {
            assert_eq!(silence(&f, None, ms(now)).is_some(), wall, "{now} wall");
            let a = silence(&f, Some(&hours), ms(now));
            assert_eq!(a.is_some(), office, "{now} office");
            if let Some(a) = a {
                assert_eq!(a.since_ms, ms("2026-12-28T14:00:00Z"));
                assert!(
                    a.title.ends_with("for more than 2 h of office hours"),
                    "{}",
                    a.title
                );
            }
        }
        // Through `evaluate`: the rule's `office_hours` picks the clock.
        let mut c = cfg();
        c.office_hours = Some(hours);
        c.silence.push(crate::config::SilenceRule {
            name: "lab results".into(),
            source: "ehr".into(),
            message_type: "ORU^R01".into(),
            max: std::time::Duration::from_secs(7200),
            critical: true,
            office_hours: true,
        });
        let mut r = report(None, 0, 0, 10);
        r.feeds = vec![f];
        let quiet = |c: &AlertsConfig| {
            evaluate(c, &r, &[], None, ms("2026-12-25T18:00:00Z"))
                .iter()
                .any(|a| a.rule == Rule::Silence)
        };
        assert!(!quiet(&c));
        c.silence[0].office_hours = false;
        assert!(quiet(&c));
    }

    #[test]
    fn export_stale_rule() {
        let day = 86_400_000;
        let mut e = ExportStatus {
            name: "acme-nightly".into(),
            tenant: "acme".into(),
            alert_after_secs: 48 * 3600,
            ..Default::default()
        };
        // Never succeeded: counted from the daemon's start.
        assert!(export_stale(&e, 0, day).is_none());
        let a = export_stale(&e, 0, 3 * day).unwrap();
        assert_eq!(a.rule, Rule::ExportStale);
        assert_eq!(a.id, "export_stale/acme-nightly");
        e.history.last_success_ms = Some(2 * day);
        assert!(export_stale(&e, 0, 3 * day).is_none());
        e.history.last_error = Some("kick-off refused: HTTP 403".into());
        let a = export_stale(&e, 0, 5 * day).unwrap();
        assert!(a.action.contains("HTTP 403"));
        assert_eq!(a.since_ms, 4 * day);
    }

    #[test]
    fn certificate_rule() {
        let c = cfg();
        let now_ms: u64 = 1_700_000_000_000;
        let a = certificate(&c, &cert(now_ms, 20), now_ms).unwrap();
        assert_eq!(a.id, "certificate/listener/ehr/server");
        assert_eq!(
            a.title,
            "TLS certificate expires within 30 day(s): listener ehr (server)"
        );
        assert_eq!(a.severity, Severity::Warning);
        assert!(a
            .affected
            .starts_with("the server certificate of listener ehr: /etc/gateway/ehr.pem (expires "));
        assert!(a.affected.ends_with(", 20 day(s) left)"), "{}", a.affected);
        let expired = certificate(&c, &cert(now_ms, -2), now_ms).unwrap();
        assert_eq!(
            expired.title,
            "TLS certificate expired: listener ehr (server)"
        );
        assert_eq!(expired.severity, Severity::Critical);
        // An owner that is its own kind (the status page) is named once.
        let mut page = cert(now_ms, 0);
        page.owner_kind = "status_page".into();
        page.owner = "status_page".into();
        let p = certificate(&c, &page, now_ms).unwrap();
        assert_eq!(
            p.title,
            "TLS certificate expires within 1 day(s): status page (server)"
        );
        // Unreadable certificates have no date: no alert (the error shows in status).
        page.not_after = None;
        assert!(certificate(&c, &page, now_ms).is_none());
    }
}
