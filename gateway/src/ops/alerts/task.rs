//! The alerts task: every `evaluate_every`, evaluate the rules, update the
//! board, log each announcement and queue it for the webhook and e-mail.
//! The webhook and mail senders run inside the same task (no task of their
//! own to lose), sending in order with retries.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::alert::Alert;
use super::alertmanager::Forwarder;
use super::board::{Board, Event};
use super::email::{self, Mail, Mailer};
use super::rules::evaluate;
use super::saved;
use crate::config::{AlertsConfig, Config};
use crate::ops::admin::StatusSource;
use crate::ops::certs::{self, CertInfo};
use crate::ops::clock;
use crate::ops::restart_markers::RestartInfo;
use crate::ops::webhook::Poster;

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
    pub config: Arc<Config>,
    pub restart: Option<RestartInfo>,
    /// Where the board is kept across restarts.
    pub journal: journal::Journal,
}

const CERT_REREAD: Duration = Duration::from_secs(600);
/// Notices waiting for the webhook; beyond this they are dropped (and logged).
const QUEUE: usize = 256;
/// Tries per notice, the first retry after 1 s, doubling.
const ATTEMPTS: u32 = 5;

/// How long an alert restored after a restart is kept without being seen
/// again before it counts as resolved: long enough for the destinations'
/// first attempts and for `destination_down_max` to pass again.
fn restore_settle(cfg: &AlertsConfig) -> Duration {
    cfg.destination_down_max + cfg.evaluate_every * 2 + Duration::from_secs(30)
}

/// Evaluate every `evaluate_every` until shutdown.
pub async fn run(t: AlertTask, shutdown: watch::Receiver<bool>) {
    match saved::load(&t.journal) {
        Ok(before) if !before.is_empty() => {
            log::info!(target: "gateway::alerts", "{} alert(s) were active before the restart: they are not announced again, and resolved if they cleared", before.len());
            t.board
                .restore(before, clock::unix_ms(), restore_settle(&t.cfg));
        }
        Ok(_) => {}
        Err(e) => {
            log::warn!(target: "gateway::alerts", "cannot read the alerts active before the restart ({e}): those still active are announced again");
        }
    }
    let poster = t.cfg.webhook.as_ref().and_then(|w| {
        Poster::new(&w.url, &w.tls, w.auth.as_ref())
            .map_err(|e| log::error!(target: "gateway::alerts", "alerts.webhook_url: cannot set up the HTTPS client: {e}; alerts go to the journal only"))
            .ok()
    });
    let alertmanager = t.cfg.alertmanager.as_ref().and_then(|w| {
        let url = format!("{}/api/v2/alerts", w.url.trim_end_matches('/'));
        Poster::new(&url, &w.tls, w.auth.as_ref())
            .map_err(|e| log::error!(target: "gateway::alerts", "alerts.alertmanager_url: cannot set up the HTTPS client: {e}; alerts are not sent to Alertmanager"))
            .ok()
            .map(|p| {
                Forwarder::new(p, t.box_id.clone(), t.cfg.site.clone())
                    .with_office_hours(t.cfg.office_hours.clone())
            })
    });
    let mailer = t.cfg.email.as_ref().and_then(|e| {
        Mailer::new(e, &t.box_id)
            .map_err(|e| log::error!(target: "gateway::alerts", "alerts.email tls: cannot set up TLS: {e}; alerts are not e-mailed"))
            .ok()
    });
    let (tx, rx) = mpsc::channel(QUEUE);
    let (mail_tx, mail_rx) = mpsc::channel(email::QUEUE);
    let senders = Senders {
        webhook: poster.is_some().then_some(tx),
        mail: mailer.is_some().then_some(mail_tx),
    };
    tokio::join!(
        evaluate_loop(&t, senders, alertmanager, shutdown.clone()),
        send_in_order(poster, rx, shutdown.clone()),
        email::send_in_order(mailer, mail_rx, shutdown),
    );
}

/// Where each announcement is queued, besides the journal.
struct Senders {
    webhook: Option<mpsc::Sender<serde_json::Value>>,
    mail: Option<mpsc::Sender<Mail>>,
}

async fn evaluate_loop(
    t: &AlertTask,
    senders: Senders,
    mut alertmanager: Option<Forwarder>,
    mut shutdown: watch::Receiver<bool>,
) {
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
            if let Ok(c) = tokio::task::spawn_blocking(move || certs::collect(&cfg)).await {
                *t.certs.lock().unwrap_or_else(|e| e.into_inner()) = c;
            }
            certs_read_ms = now;
        }
        let report = (t.status)();
        let certs = t.certs.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let alerts = evaluate(&t.cfg, &report, &certs, t.restart.as_ref(), now);
        let events = t.board.update_knowing(alerts, now, t.cfg.reminder, &|id| {
            super::rules::known_clear(&report, id)
        });
        if !events.is_empty() {
            if let Err(e) = saved::save(&t.journal, &events, &t.board).await {
                log::warn!(target: "gateway::alerts", "cannot record the alert board ({e}): after a restart these alerts would be announced again");
            }
        }
        if let Some(f) = &mut alertmanager {
            f.tick(&events, &t.board.active(), now).await;
        }
        for (event, a) in events {
            log_event(event, &a);
            if let (Some(tx), Some(e)) = (&senders.mail, &t.cfg.email) {
                let who = email::Sender {
                    box_id: &t.box_id,
                    site: &t.cfg.site,
                    hours: t.cfg.office_hours.as_ref(),
                    reminder: t.cfg.reminder,
                };
                if let Some(m) = email::mail_for(e, &who, event, &a, now) {
                    if tx.try_send(m).is_err() {
                        log::warn!(target: "gateway::alerts", event = "alert_email_failed", alert = a.id.as_str(); "alert e-mail queue is full; dropped the {event:?} mail for {}", a.id);
                    }
                }
            }
            if let Some(tx) = &senders.webhook {
                let mut body = webhook_body(&t.box_id, event, &a, now);
                if let Some(h) = &t.cfg.office_hours {
                    body["audience"] = h.audience(&a, now).as_str().into();
                }
                if tx.try_send(body).is_err() {
                    log::warn!(target: "gateway::alerts", event = "alert_webhook_failed"; "alert webhook queue is full; dropped the {event:?} notice for {}", a.id);
                }
            }
        }
    }
}

fn log_event(event: Event, a: &Alert) {
    let (id, severity) = (a.id.as_str(), a.severity.as_str());
    match event {
        Event::Fired => {
            log::warn!(target: "gateway::alerts", event = "alert_fired", alert = id, severity = severity; "ALERT {}: {} — affected: {}; since {}; what to do: {}", a.severity, a.title, a.affected, a.since, a.action)
        }
        Event::Reminder => {
            log::warn!(target: "gateway::alerts", event = "alert_reminder", alert = id, severity = severity; "ALERT still active since {}: {}", a.since, a.title)
        }
        Event::Resolved => {
            log::info!(target: "gateway::alerts", event = "alert_resolved", alert = id; "RESOLVED: {} (active since {})", a.title, a.since)
        }
    }
}

/// Send notices in order; each is tried up to [`ATTEMPTS`] times (1, 2, 4, 8 s apart).
async fn send_in_order(
    poster: Option<Poster>,
    mut rx: mpsc::Receiver<serde_json::Value>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(poster) = poster else { return };
    loop {
        let body = tokio::select! {
            b = rx.recv() => match b { Some(b) => b, None => return },
            _ = shutdown.changed() => return,
        };
        let mut delay = Duration::from_secs(1);
        for attempt in 1..=ATTEMPTS {
            // A POST in flight does not hold up the shutdown.
            let sent = tokio::select! {
                r = poster.post_json(&body) => r,
                _ = shutdown.changed() => return,
            };
            match sent {
                Ok(()) => break,
                Err(e) if attempt == ATTEMPTS => {
                    log::warn!(target: "gateway::alerts", event = "alert_webhook_failed"; "alert webhook: gave up after {ATTEMPTS} attempts: {e}");
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
