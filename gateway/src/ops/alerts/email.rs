//! Alert mails for people: one mail when an alert fires, a reminder every
//! `alerts.reminder` while it lasts, one when it is resolved (the board
//! decides those, and keeps them across restarts). Inside office hours
//! they go to the clinic's contacts, outside to the MSP's, critical ones
//! to both ([`super::office_hours`]).
//!
//! Subject and body say in plain words what is wrong and what to do: the
//! texts the status page shows (title, affected, action). They carry
//! names of destinations, feeds and files, counts and times only: no PHI.
//! Mails wait in a bounded queue and are sent in order, each retried with
//! backoff; failures are logged with the alert id and the SMTP reply.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use tokio::sync::{mpsc, watch};

use super::alert::{Alert, Severity};
use super::board::Event;
use super::office_hours::{self, Audience, OfficeHours};
use super::smtp::{self, Server, SmtpError};
use crate::auth::AuthConfig;
use crate::config::EmailConfig;
use crate::ops::clock;

/// One mail to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Mail {
    pub alert_id: String,
    pub event: Event,
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
}

/// What a mail says about its box.
pub struct Sender<'a> {
    pub box_id: &'a str,
    pub site: &'a str,
    pub hours: Option<&'a OfficeHours>,
    pub reminder: Duration,
}

/// The mail for one board event, or `None` when nobody is to be told
/// (no address on the side it is for). Resolved mails go to whoever was
/// told when it fired and whoever is on duty now.
pub fn mail_for(
    email: &EmailConfig,
    s: &Sender<'_>,
    event: Event,
    a: &Alert,
    now_ms: u64,
) -> Option<Mail> {
    let mut audience = office_hours::audience(s.hours, a, now_ms);
    if event == Event::Resolved {
        audience = audience.union(office_hours::audience(s.hours, a, a.since_ms));
    }
    let mut to: Vec<String> = Vec::new();
    let clinic = email.clinic.iter().filter(|_| audience.clinic());
    let msp = email.msp.iter().filter(|_| audience.msp());
    for addr in clinic.chain(msp) {
        // One copy for an address on both lists.
        if !to.iter().any(|t| t.eq_ignore_ascii_case(addr)) {
            to.push(addr.clone());
        }
    }
    if to.is_empty() {
        return None;
    }
    let (subject, body) = compose(s, event, a, audience, now_ms);
    Some(Mail {
        alert_id: a.id.clone(),
        event,
        to,
        subject,
        body,
    })
}

/// Subject and body, plain text. Pure.
pub fn compose(
    s: &Sender<'_>,
    event: Event,
    a: &Alert,
    audience: Audience,
    now_ms: u64,
) -> (String, String) {
    let place = if s.site.is_empty() {
        format!("gateway {}", s.box_id)
    } else {
        format!("gateway {} at {}", s.box_id, s.site)
    };
    let urgent = a.severity == Severity::Critical;
    let subject = match event {
        Event::Fired if urgent => format!("URGENT: {} ({place})", a.title),
        Event::Fired => format!("Attention: {} ({place})", a.title),
        Event::Reminder => format!("Still not fixed: {} ({place})", a.title),
        Event::Resolved => format!("Resolved: {} ({place})", a.title),
    };
    let since = when(s.hours, a.since_ms);
    let mut b = String::new();
    match event {
        Event::Resolved => {
            b += &format!("This is fixed now: {}.\n\n", a.title);
            b += &format!("It had been going on since {since}; it cleared by {}.\nNothing needs to be done.\n\n", when(s.hours, now_ms));
            b += &format!("What was affected: {}\n", a.affected);
        }
        _ => {
            if event == Event::Reminder {
                b += "This problem is still going on.\n\n";
            }
            b += &format!("What is wrong: {}\n", a.title);
            b += &format!("What is affected: {}\n", a.affected);
            b += &format!("Since: {since}\n");
            b += &format!(
                "How serious: {}\n\n",
                if urgent {
                    "critical: patient information may not be reaching where it should"
                } else {
                    "a warning: nothing is lost yet"
                }
            );
            b += &format!("What to do: {}\n\n", a.action);
            b += &format!(
                "You will be reminded every {} while it lasts, and told when it is resolved.\n",
                hours_text(s.reminder)
            );
        }
    }
    b += &format!(
        "\nSent to {} by the Clinic Gateway {} (alert {}).\n",
        match audience {
            Audience::Clinic => "the clinic's contacts (inside office hours)",
            Audience::Msp => "the IT provider's on-call (outside office hours)",
            Audience::Both => "the clinic's contacts and the IT provider's on-call",
        },
        s.box_id,
        a.id
    );
    b += "This mail carries no patient information; the gateway's status page shows the details.\n";
    (subject, b)
}

/// `ms` in the site's time zone when it has one, else UTC.
fn when(hours: Option<&OfficeHours>, ms: u64) -> String {
    let Some(h) = hours else {
        return clock::iso8601(ms).replace('T', " ").replace('Z', " UTC");
    };
    match jiff::Timestamp::from_millisecond(ms.min(i64::MAX as u64) as i64) {
        Ok(t) => t
            .to_zoned(h.time_zone().clone())
            .strftime("%a %Y-%m-%d %H:%M %Z")
            .to_string(),
        Err(_) => clock::iso8601(ms),
    }
}

fn hours_text(d: Duration) -> String {
    if d.as_secs() < 60 {
        return format!("{} s", d.as_secs());
    }
    let m = d.as_secs() / 60;
    match (m / 60, m % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

/// The whole message: headers and a text/plain body. `Auto-Submitted`
/// keeps out-of-office replies away; a non-ASCII subject is an RFC 2047
/// encoded word, a non-ASCII body base64.
pub fn message(from: &str, m: &Mail, date: &str, message_id: &str) -> String {
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let subject = if m.subject.is_ascii() && m.subject.len() < 900 {
        m.subject.clone()
    } else {
        // Encoded words of at most 75 characters, folded.
        let mut words = Vec::new();
        let mut chunk = String::new();
        for c in m.subject.chars() {
            if chunk.len() + c.len_utf8() > 45 {
                words.push(format!("=?UTF-8?B?{}?=", b64(chunk.as_bytes())));
                chunk.clear();
            }
            chunk.push(c);
        }
        if !chunk.is_empty() {
            words.push(format!("=?UTF-8?B?{}?=", b64(chunk.as_bytes())));
        }
        words.join("\r\n ")
    };
    let mut out = format!(
        "From: Clinic Gateway <{from}>\r\nTo: {}\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: <{message_id}>\r\nAuto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n",
        m.to.join(", ")
    );
    let plain = m.body.is_ascii() && m.body.lines().all(|l| l.len() <= 900);
    if plain {
        out += "Content-Transfer-Encoding: 7bit\r\n\r\n";
        out += &m.body;
    } else {
        out += "Content-Transfer-Encoding: base64\r\n\r\n";
        let text = b64(m.body.as_bytes());
        for line in text.as_bytes().chunks(76) {
            out += std::str::from_utf8(line).unwrap_or("");
            out += "\r\n";
        }
    }
    out
}

/// Mails waiting; beyond this they are dropped (and logged).
pub const QUEUE: usize = 256;
/// Tries per mail: the first retry after 2 s, doubling up to 5 min.
const ATTEMPTS: u32 = 8;
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// The relay, ready to send.
pub struct Mailer {
    server: Server,
    from: String,
    box_id: String,
}

impl Mailer {
    pub fn new(
        e: &EmailConfig,
        box_id: &str,
    ) -> Result<Mailer, crate::net::https_client::HttpsClientError> {
        let tls = crate::net::https_client::rustls_client_config(&e.tls)?;
        let login = match &e.auth {
            Some(AuthConfig::Basic { username, password }) => {
                Some((username.clone(), password.clone()))
            }
            _ => None,
        };
        // EHLO takes a domain; a box id that is not one is replaced.
        let helo = if !box_id.is_empty()
            && box_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            box_id.to_string()
        } else {
            "clinic-gateway".to_string()
        };
        Ok(Mailer {
            server: Server {
                host: e.host.clone(),
                port: e.port,
                security: e.security,
                tls: Arc::new(tls),
                login,
                helo,
                connect_timeout: e.tls.connect_timeout,
                reply_timeout: e.tls.request_timeout,
            },
            from: e.from.clone(),
            box_id: box_id.to_string(),
        })
    }

    async fn send(&self, m: &Mail, seq: u64) -> Result<Vec<String>, SmtpError> {
        let now = clock::unix_ms();
        let date = jiff::Timestamp::from_millisecond(now as i64)
            .ok()
            .and_then(|t| jiff::fmt::rfc2822::to_string(&t.to_zoned(jiff::tz::TimeZone::UTC)).ok())
            .unwrap_or_default();
        let domain = self.from.rsplit('@').next().unwrap_or("localhost");
        let id = format!("{now}.{seq}.{}@{domain}", self.server.helo);
        let text = message(&self.from, m, &date, &id);
        smtp::send(&self.server, &self.from, &m.to, &text).await
    }
}

/// Send mails in order until shutdown; a mail in flight or waiting for its
/// retry does not hold up the shutdown.
pub async fn send_in_order(
    mailer: Option<Mailer>,
    mut rx: mpsc::Receiver<Mail>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(mailer) = mailer else { return };
    let mut seq = 0u64;
    loop {
        let m = tokio::select! {
            m = rx.recv() => match m { Some(m) => m, None => return },
            _ = shutdown.changed() => return,
        };
        let mut delay = Duration::from_secs(2);
        for attempt in 1..=ATTEMPTS {
            seq += 1;
            let sent = tokio::select! {
                r = mailer.send(&m, seq) => r,
                _ = shutdown.changed() => return,
            };
            let (id, event) = (m.alert_id.as_str(), event_name(m.event));
            match sent {
                Ok(refused) => {
                    log::info!(target: "gateway::alerts", event = "alert_email_sent", alert = id, mail = event; "alert e-mail ({event}) for {id} sent to {} recipient(s) through {} (box {})", m.to.len() - refused.len(), mailer.server.host, mailer.box_id);
                    if !refused.is_empty() {
                        log::warn!(target: "gateway::alerts", event = "alert_email_failed", alert = id; "the SMTP server refused {} of the alert e-mail's recipients ({}): check alerts.email clinic/msp", refused.len(), refused.join(", "));
                    }
                    break;
                }
                Err(e) if e.permanent() || attempt == ATTEMPTS => {
                    log::error!(target: "gateway::alerts", event = "alert_email_failed", alert = id, mail = event; "alert e-mail ({event}) for {id} not sent after {attempt} attempt(s): {e}");
                    break;
                }
                Err(e) => {
                    log::warn!(target: "gateway::alerts", event = "alert_email_retry", alert = id, mail = event; "alert e-mail ({event}) for {id}: attempt {attempt} failed: {e}; trying again in {} s", delay.as_secs());
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.changed() => return,
                    }
                    delay = (delay * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}

fn event_name(e: Event) -> &'static str {
    match e {
        Event::Fired => "fired",
        Event::Reminder => "reminder",
        Event::Resolved => "resolved",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::https_client::HttpsClientConfig;
    use crate::ops::alerts::alert::{Finding, Rule};
    use crate::ops::alerts::office_hours::{parse_spans, Span};

    fn cfg() -> EmailConfig {
        EmailConfig {
            host: "smtp.example.org".into(),
            port: 587,
            security: smtp::Security::StartTls,
            from: "gw@clinic.example".into(),
            clinic: vec!["manager@clinic.example".into()],
            msp: vec!["oncall@msp.example".into()],
            auth: None,
            tls: HttpsClientConfig::default(),
        }
    }

    fn hours() -> OfficeHours {
        let mut week: [Vec<Span>; 7] = Default::default();
        for d in week.iter_mut().take(5) {
            *d = parse_spans("08:00-17:00").unwrap();
        }
        OfficeHours::new("Europe/Berlin", week, vec![]).unwrap()
    }

    fn down(since_ms: u64) -> Alert {
        Rule::DestinationDown.alert(Finding {
            key: "cloud-fhir".into(),
            severity: Severity::Critical,
            title: "cloud-fhir cannot be reached".into(),
            affected: "destination cloud-fhir (3 pending)".into(),
            since_ms,
            action: "Check the network.".into(),
        })
    }

    fn ms(iso: &str) -> u64 {
        iso.parse::<jiff::Timestamp>().unwrap().as_millisecond() as u64
    }

    #[test]
    fn routed_by_the_hours_and_resolved_to_both_who_were_told() {
        let h = hours();
        let s = Sender {
            box_id: "box-7",
            site: "main-street",
            hours: Some(&h),
            reminder: Duration::from_secs(4 * 3600),
        };
        let e = cfg();
        // Monday 16:30 Berlin (CET = UTC+1): the clinic.
        let fired_at = ms("2026-12-07T15:30:00Z");
        let a = down(fired_at);
        let m = mail_for(&e, &s, Event::Fired, &a, fired_at).unwrap();
        assert_eq!(m.to, vec!["manager@clinic.example"]);
        assert_eq!(
            m.subject,
            "URGENT: cloud-fhir cannot be reached (gateway box-7 at main-street)"
        );
        assert!(
            m.body.contains("What to do: Check the network."),
            "{}",
            m.body
        );
        assert!(m.body.contains("Mon 2026-12-07 16:30 CET"), "{}", m.body);
        assert!(m.body.contains("every 4 h"), "{}", m.body);
        // 20:30: the reminder goes to the MSP ...
        let night = ms("2026-12-07T19:30:00Z");
        let r = mail_for(&e, &s, Event::Reminder, &a, night).unwrap();
        assert_eq!(r.to, vec!["oncall@msp.example"]);
        assert!(r.subject.starts_with("Still not fixed: "), "{}", r.subject);
        // ... and the resolve to both, the clinic having been told first.
        let done = mail_for(&e, &s, Event::Resolved, &a, night).unwrap();
        assert_eq!(
            done.to,
            vec!["manager@clinic.example", "oncall@msp.example"]
        );
        assert!(done.subject.starts_with("Resolved: "), "{}", done.subject);
        // No one on that side: no mail.
        let only_clinic = EmailConfig {
            msp: vec![],
            ..cfg()
        };
        assert!(mail_for(&only_clinic, &s, Event::Reminder, &a, night).is_none());
    }

    #[test]
    fn the_message_is_well_formed() {
        let m = Mail {
            alert_id: "disk/data".into(),
            event: Event::Fired,
            to: vec!["a@x.example".into(), "b@y.example".into()],
            subject: "Plain".into(),
            body: "line one\nline two\n".into(),
        };
        let t = message(
            "gw@x.example",
            &m,
            "Mon, 7 Dec 2026 15:30:00 +0000",
            "1.1@gw",
        );
        assert!(t.contains("\r\nTo: a@x.example, b@y.example\r\n"), "{t}");
        assert!(t.contains("\r\nSubject: Plain\r\n"), "{t}");
        assert!(t.contains("Auto-Submitted: auto-generated"), "{t}");
        assert!(t.ends_with("\r\n\r\nline one\nline two\n"), "{t}");
        let u = Mail {
            subject: "Dépôt — disque plein à 91 % sur le serveur de la clinique".into(),
            body: "é".into(),
            ..m
        };
        let t = message("gw@x.example", &u, "d", "i");
        assert!(t.contains("Subject: =?UTF-8?B?"), "{t}");
        assert!(t.contains("?=\r\n =?UTF-8?B?"), "folded: {t}");
        assert!(
            t.contains("Content-Transfer-Encoding: base64\r\n\r\nw6k=\r\n"),
            "{t}"
        );
    }
}
