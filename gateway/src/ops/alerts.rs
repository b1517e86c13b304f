//! Alerts: pure rules over a status snapshot ([`evaluate`]), a board that
//! tracks which alerts are active and decides what to announce ([`Board`]:
//! fired once, reminded every `reminder`, resolved once), and the task
//! that runs them and delivers announcements to the journal and an optional
//! webhook ([`run`]).
//!
//! Alert texts carry names, counts and times only: never message content,
//! and never a destination's last error (a server's diagnostics may quote
//! the message).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use super::admin::{StatusReport, StatusSource};
use super::certs::CertInfo;
use super::clock;
use crate::config::{AlertsConfig, WebhookConfig};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Alert {
    /// Stable while the condition lasts, e.g. "destination_down/cloud-fhir".
    pub id: String,
    /// The rule: pending_depth, oldest_pending, destination_down,
    /// dead_letters, disk, restarted, certificate.
    pub rule: String,
    /// "warning" or "critical".
    pub severity: String,
    pub title: String,
    /// What is affected (a destination, a certificate file, the disk).
    pub affected: String,
    /// Since when (unix ms) and the same as ISO 8601.
    pub since_ms: u64,
    pub since: String,
    /// What to do about it.
    pub action: String,
}

/// Why the previous run ended, found at start (see [`previous_stop`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartInfo {
    pub at_ms: u64,
    pub watchdog: bool,
    pub detail: String,
}

fn human(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 2 * 86_400 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

/// The alerts `report` warrants now. Pure: the caller passes the time.
/// `since_ms` is the condition's own start where it has one, else `now_ms`
/// (the [`Board`] then keeps the first time it saw it).
pub fn evaluate(
    cfg: &AlertsConfig,
    report: &StatusReport,
    certs: &[CertInfo],
    restart: Option<&RestartInfo>,
    now_ms: u64,
) -> Vec<Alert> {
    let mut out = Vec::new();
    let mut push = |rule: &str,
                    key: &str,
                    sev: &str,
                    title: String,
                    affected: String,
                    since_ms: u64,
                    action: String| {
        out.push(Alert {
            id: format!("{rule}/{key}"),
            rule: rule.to_string(),
            severity: sev.to_string(),
            title,
            affected,
            since_ms,
            since: clock::iso8601(since_ms),
            action,
        });
    };
    for d in &report.destinations {
        let affected = format!("destination {} ({})", d.name, d.kind);
        if let Some(down) = d.live.down_since_ms {
            let for_ms = now_ms.saturating_sub(down);
            if d.live.circuit != "closed" && for_ms >= cfg.destination_down_max.as_millis() as u64 {
                push(
                    "destination_down",
                    &d.name,
                    "critical",
                    format!("{} cannot be reached", d.name),
                    affected.clone(),
                    down,
                    format!(
                        "Messages for {} are kept safely and will be sent when it is back. Check the internet connection and whether {} is up; `gateway status` on the box shows the last error.",
                        d.name, d.name
                    ),
                );
            }
        }
        if d.pending > cfg.pending_max {
            push(
                "pending_depth",
                &d.name,
                "warning",
                format!("{} messages waiting for {}", d.pending, d.name),
                affected.clone(),
                now_ms,
                format!(
                    "More than {} messages are waiting. If {} is down this clears when it is back; otherwise check its speed and `gateway status`.",
                    cfg.pending_max, d.name
                ),
            );
        }
        if let Some(age) = d.oldest_pending_age_secs {
            let max = cfg.oldest_pending_max.as_secs();
            if age > max {
                push(
                    "oldest_pending",
                    &d.name,
                    "warning",
                    format!("A message has waited {} for {}", human(age), d.name),
                    affected.clone(),
                    now_ms.saturating_sub((age - max) * 1000),
                    format!(
                        "The oldest message for {} is older than {}. Check that {} is reachable; `gateway status` shows its last error.",
                        d.name,
                        human(max),
                        d.name
                    ),
                );
            }
        }
        if cfg.dead_letters && d.dead_letters > 0 {
            push(
                "dead_letters",
                &d.name,
                "warning",
                format!("{} message(s) for {} could not be delivered", d.dead_letters, d.name),
                affected,
                now_ms,
                format!(
                    "They are kept in the dead-letter queue. Ask your IT provider to run `gateway dlq list --destination {}`, fix the cause, then `gateway dlq replay --all --destination {}`.",
                    d.name, d.name
                ),
            );
        }
    }
    let disk = report.journal.disk_percent_used;
    if disk >= cfg.disk_warn_percent {
        push(
            "disk",
            "data",
            "critical",
            format!("The data disk is {disk}% full"),
            format!("data disk ({})", report.data_dir),
            now_ms,
            "At the refuse watermark ([storage] refuse_at_percent) the gateway answers new messages with AE and the EHR must resend them. Make sure the destinations are up (delivered messages are pruned after the retention period), purge dead letters that are no longer needed, or give the box a larger disk.".to_string(),
        );
    }
    if let Some(r) = restart {
        if now_ms.saturating_sub(r.at_ms) < cfg.restart_alert_for.as_millis() as u64 {
            let title = if r.watchdog {
                "The watchdog restarted the gateway".to_string()
            } else {
                "The gateway restarted after a failure".to_string()
            };
            push(
                "restarted",
                "service",
                "warning",
                title,
                format!("the gateway service ({})", r.detail),
                r.at_ms,
                "It is running again and nothing acknowledged was lost. If this repeats, send `journalctl -u gateway` from the box to your IT provider.".to_string(),
            );
        }
    }
    let now_secs = (now_ms / 1000) as i64;
    for c in certs {
        let Some(days) = c.days_left(now_secs) else {
            continue;
        };
        // The smallest configured threshold that the days left are under.
        let Some(stage) = cfg
            .cert_warn_days
            .iter()
            .copied()
            .filter(|t| days < i64::from(*t))
            .min()
        else {
            continue;
        };
        let who = if c.owner_kind == c.owner {
            c.owner_kind.replace('_', " ")
        } else {
            format!("{} {}", c.owner_kind.replace('_', " "), c.owner)
        };
        let what = format!("the {} certificate of {who}", c.role);
        let (sev, title) = if days < 0 {
            (
                "critical",
                format!("TLS certificate expired: {who} ({})", c.role),
            )
        } else {
            (
                if stage <= 7 { "critical" } else { "warning" },
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
        push(
            "certificate",
            &format!("{}/{}/{}", c.owner_kind, c.owner, c.role),
            sev,
            title,
            format!("{what}: {} (expires {expires}, {days} day(s) left)", c.path),
            now_ms,
            format!("Renew {} and replace the file, then restart the gateway (`systemctl restart gateway`).", c.path),
        );
    }
    out
}

/// What to announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    Fired,
    Reminder,
    Resolved,
}

#[derive(Debug, Clone)]
struct Tracked {
    alert: Alert,
    first_seen_ms: u64,
    last_sent_ms: u64,
}

/// Active alerts, de-duplicated.
#[derive(Debug, Default)]
pub struct Board {
    active: Mutex<BTreeMap<String, Tracked>>,
}

impl Board {
    /// Take the alerts of one evaluation; return what to announce.
    /// A new id fires; an id whose title changed (e.g. a certificate went
    /// from 30 to 7 days) fires again; an id still active after `reminder`
    /// since it was last sent is reminded; an id gone is resolved.
    pub fn update(&self, now: Vec<Alert>, now_ms: u64, reminder: Duration) -> Vec<(Event, Alert)> {
        let mut events = Vec::new();
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = BTreeMap::new();
        for mut a in now {
            match active.remove(&a.id) {
                None => {
                    events.push((Event::Fired, a.clone()));
                    next.insert(
                        a.id.clone(),
                        Tracked {
                            first_seen_ms: a.since_ms.min(now_ms),
                            alert: a,
                            last_sent_ms: now_ms,
                        },
                    );
                }
                Some(mut t) => {
                    // Rules without their own start report "now": keep the first sighting.
                    a.since_ms = a.since_ms.min(t.first_seen_ms);
                    a.since = clock::iso8601(a.since_ms);
                    if a.title != t.alert.title {
                        events.push((Event::Fired, a.clone()));
                        t.last_sent_ms = now_ms;
                    } else if now_ms.saturating_sub(t.last_sent_ms) >= reminder.as_millis() as u64 {
                        events.push((Event::Reminder, a.clone()));
                        t.last_sent_ms = now_ms;
                    }
                    t.alert = a;
                    next.insert(t.alert.id.clone(), t);
                }
            }
        }
        for (_, t) in std::mem::take(&mut *active) {
            events.push((Event::Resolved, t.alert));
        }
        *active = next;
        events
    }

    pub fn active(&self) -> Vec<Alert> {
        let active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<Alert> = active.values().map(|t| t.alert.clone()).collect();
        v.sort_by(|a, b| (b.severity.as_str(), a.since_ms).cmp(&(a.severity.as_str(), b.since_ms)));
        v
    }
}

/// Marker written at a clean shutdown and removed at start.
pub const CLEAN_STOP_MARKER: &str = "stopped-cleanly";
/// Written by `gateway record-stop` (the unit's `ExecStopPost=`) with
/// systemd's `$SERVICE_RESULT`, `$EXIT_CODE` and `$EXIT_STATUS`.
pub const LAST_STOP_FILE: &str = "last-stop";

/// How the previous run ended, from the markers in `data_dir` (then removed).
/// `None` on a first start or after a clean stop.
pub fn previous_stop(data_dir: &Path, had_journal: bool, now_ms: u64) -> Option<RestartInfo> {
    let clean = data_dir.join(CLEAN_STOP_MARKER);
    let last = data_dir.join(LAST_STOP_FILE);
    let was_clean = clean.exists();
    let recorded = std::fs::read_to_string(&last).ok();
    let _ = std::fs::remove_file(&clean);
    let _ = std::fs::remove_file(&last);
    if let Some(text) = recorded {
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
                .unwrap_or("")
                .trim()
                .to_string()
        };
        let result = field("SERVICE_RESULT");
        if result == "watchdog" {
            return Some(RestartInfo {
                at_ms: now_ms,
                watchdog: true,
                detail: "systemd stopped it: no watchdog ping (a critical loop was stuck)".into(),
            });
        }
        if !result.is_empty() && result != "success" {
            return Some(RestartInfo {
                at_ms: now_ms,
                watchdog: false,
                detail: format!(
                    "systemd result {result}, {} {}",
                    field("EXIT_CODE"),
                    field("EXIT_STATUS")
                )
                .trim_end()
                .to_string(),
            });
        }
        if result == "success" {
            return None;
        }
    }
    (had_journal && !was_clean).then(|| RestartInfo {
        at_ms: now_ms,
        watchdog: false,
        detail: "the previous run did not stop cleanly: crash, kill or power loss".into(),
    })
}

/// Mark a clean stop (the next start will not raise the restart alert).
pub fn mark_clean_stop(data_dir: &Path) {
    let _ = journal::durable_fs::write_atomically(data_dir, CLEAN_STOP_MARKER, b"clean\n");
}

/// `gateway record-stop`: store systemd's verdict on the run that just ended.
pub fn record_stop(data_dir: &Path) -> Result<(), String> {
    let mut text = String::new();
    for k in ["SERVICE_RESULT", "EXIT_CODE", "EXIT_STATUS"] {
        text += &format!("{k}={}\n", std::env::var(k).unwrap_or_default());
    }
    journal::durable_fs::write_atomically(data_dir, LAST_STOP_FILE, text.as_bytes()).map_err(|e| {
        format!(
            "cannot write {}: {e}",
            data_dir.join(LAST_STOP_FILE).display()
        )
    })
}

/// The webhook's JSON body for one announcement.
pub fn webhook_body(box_id: &str, event: Event, a: &Alert, now_ms: u64) -> serde_json::Value {
    serde_json::json!({
        "box_id": box_id,
        "event": event,
        "at": clock::iso8601(now_ms),
        "alert": a,
    })
}

/// Shared inputs of the alert task.
pub struct AlertTask {
    pub cfg: AlertsConfig,
    pub box_id: String,
    pub board: Arc<Board>,
    pub status: StatusSource,
    pub certs: Arc<Mutex<Vec<CertInfo>>>,
    pub config: Arc<crate::config::Config>,
    pub restart: Option<RestartInfo>,
}

const CERT_REREAD: Duration = Duration::from_secs(600);

/// Evaluate every `evaluate_every` until shutdown.
pub async fn run(t: AlertTask, mut shutdown: watch::Receiver<bool>) {
    let webhook = match &t.cfg.webhook {
        None => None,
        Some(w) => match Webhook::new(w) {
            Ok(hook) => {
                let (tx, rx) = mpsc::channel::<serde_json::Value>(256);
                tokio::spawn(hook.run(rx, shutdown.clone()));
                Some(tx)
            }
            Err(e) => {
                log::error!(target: "gateway::alerts", "alerts.webhook_url: cannot set up the HTTPS client: {e}; alerts go to the journal only");
                None
            }
        },
    };
    let mut tick = tokio::time::interval(t.cfg.evaluate_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut certs_read_ms = clock::unix_ms();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let now = clock::unix_ms();
        if now.saturating_sub(certs_read_ms) >= CERT_REREAD.as_millis() as u64 {
            let cfg = t.config.clone();
            if let Ok(c) = tokio::task::spawn_blocking(move || super::certs::collect(&cfg)).await {
                *t.certs.lock().unwrap_or_else(|e| e.into_inner()) = c;
            }
            certs_read_ms = now;
        }
        let report = (t.status)();
        let certs = t.certs.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let alerts = evaluate(&t.cfg, &report, &certs, t.restart.as_ref(), now);
        for (event, a) in t.board.update(alerts, now, t.cfg.reminder) {
            log_event(event, &a);
            if let Some(tx) = &webhook {
                if tx
                    .try_send(webhook_body(&t.box_id, event, &a, now))
                    .is_err()
                {
                    log::warn!(target: "gateway::alerts", event = "alert_webhook_failed"; "alert webhook queue is full; dropped the {event:?} notice for {}", a.id);
                }
            }
        }
    }
}

fn log_event(event: Event, a: &Alert) {
    match event {
        Event::Fired => {
            log::warn!(target: "gateway::alerts", event = "alert_fired", alert = a.id.as_str(), severity = a.severity.as_str(); "ALERT {}: {} — affected: {}; since {}; what to do: {}", a.severity, a.title, a.affected, a.since, a.action)
        }
        Event::Reminder => {
            log::warn!(target: "gateway::alerts", event = "alert_reminder", alert = a.id.as_str(), severity = a.severity.as_str(); "ALERT still active since {}: {}", a.since, a.title)
        }
        Event::Resolved => {
            log::info!(target: "gateway::alerts", event = "alert_resolved", alert = a.id.as_str(); "RESOLVED: {} (active since {})", a.title, a.since)
        }
    }
}

struct Webhook {
    url: String,
    client: reqwest::Client,
    auth: Option<crate::auth::TokenProvider>,
}

impl Webhook {
    fn new(w: &WebhookConfig) -> Result<Webhook, String> {
        let client = crate::net::https_client::reqwest_client(&w.tls)?;
        let auth = w
            .auth
            .clone()
            .map(|a| crate::auth::TokenProvider::new(a, client.clone()));
        Ok(Webhook {
            url: w.url.clone(),
            client,
            auth,
        })
    }

    /// Send notices in order; each is tried up to 5 times (1, 2, 4, 8 s apart).
    async fn run(
        self,
        mut rx: mpsc::Receiver<serde_json::Value>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let body = tokio::select! {
                b = rx.recv() => match b { Some(b) => b, None => return },
                _ = shutdown.changed() => return,
            };
            let mut delay = Duration::from_secs(1);
            for attempt in 1..=5 {
                match post_json(&self.client, self.auth.as_ref(), &self.url, &body).await {
                    Ok(()) => break,
                    Err(e) if attempt == 5 => {
                        log::warn!(target: "gateway::alerts", event = "alert_webhook_failed"; "alert webhook: gave up after 5 attempts: {e}");
                    }
                    Err(_) => {
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = shutdown.changed() => return,
                        }
                        delay *= 2;
                    }
                }
            }
        }
    }
}

/// POST `body` as JSON; Ok on 2xx.
pub async fn post_json(
    client: &reqwest::Client,
    auth: Option<&crate::auth::TokenProvider>,
    url: &str,
    body: &serde_json::Value,
) -> Result<(), String> {
    let mut req = client.post(url).json(body);
    if let Some(p) = auth {
        match p.authorization().await {
            Ok(Some(h)) => req = req.header(reqwest::header::AUTHORIZATION, h),
            Ok(None) => {}
            Err(e) => return Err(format!("auth: {}", e.message())),
        }
    }
    let resp = req
        .send()
        .await
        .map_err(|e| crate::net::https_client::error_chain(&e))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
            if let Some(p) = auth {
                p.invalidate();
            }
        }
        Err(format!("HTTP {}", resp.status().as_u16()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::DeliveryState;
    use crate::ops::admin::{DestinationStatus, JournalStatus};

    fn report(down_since: Option<u64>, pending: u64, dead: u64, disk: u8) -> StatusReport {
        StatusReport {
            version: "1".into(),
            pid: 1,
            config: "c".into(),
            data_dir: "/d".into(),
            started_at: "".into(),
            uptime_secs: 0,
            listeners: vec![],
            destinations: vec![DestinationStatus {
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
            }],
            pollers: vec![],
            journal: JournalStatus {
                messages: 0,
                duplicates: 0,
                control_id_reuses: 0,
                quarantined: 0,
                bytes_on_disk: 0,
                disk_percent_used: disk,
                pruned: 0,
            },
            box_id: String::new(),
            alerts: vec![],
            certificates: vec![],
        }
    }

    fn cfg() -> AlertsConfig {
        AlertsConfig::defaults(&crate::config::StorageConfig::default())
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
            .all(|a| a.rule != "restarted"));
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
        let cert = |days: i64| CertInfo {
            owner_kind: "listener".into(),
            owner: "ehr".into(),
            role: "server".into(),
            path: "/etc/gateway/ehr.pem".into(),
            not_after: Some((now_ms / 1000) as i64 + days * 86_400 + 3600),
            error: None,
        };
        let r = report(None, 0, 0, 1);
        assert!(evaluate(&c, &r, &[cert(100)], None, now_ms).is_empty());
        let a = evaluate(&c, &r, &[cert(45)], None, now_ms);
        assert!(a[0].title.contains("within 60 day"), "{}", a[0].title);
        assert_eq!(a[0].severity, "warning");
        let b = evaluate(&c, &r, &[cert(5)], None, now_ms);
        assert!(b[0].title.contains("within 7 day"), "{}", b[0].title);
        assert_eq!(b[0].severity, "critical");
        let board = Board::default();
        board.update(a, now_ms, c.reminder);
        // Escalation re-fires under the same id.
        assert_eq!(board.update(b, now_ms + 1, c.reminder)[0].0, Event::Fired);
        let x = evaluate(&c, &r, &[cert(-2)], None, now_ms);
        assert!(x[0].title.contains("expired"));
    }

    #[test]
    fn previous_stop_markers() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(previous_stop(d.path(), false, 5), None, "first start");
        assert!(previous_stop(d.path(), true, 5).is_some(), "unclean stop");
        mark_clean_stop(d.path());
        assert_eq!(previous_stop(d.path(), true, 5), None);
        std::fs::write(
            d.path().join(LAST_STOP_FILE),
            "SERVICE_RESULT=watchdog\nEXIT_CODE=killed\nEXIT_STATUS=ABRT\n",
        )
        .unwrap();
        assert!(previous_stop(d.path(), true, 5).unwrap().watchdog);
        std::fs::write(d.path().join(LAST_STOP_FILE), "SERVICE_RESULT=success\n").unwrap();
        assert_eq!(previous_stop(d.path(), true, 5), None);
    }
}
