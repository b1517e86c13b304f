//! The results poller: every `interval`, a FHIR search (the configured URL
//! plus `_lastUpdated=ge<cursor>`) fetches new DiagnosticReports with their
//! results; each report becomes one ORU^R01 v2.5.1 (`fhir_map::results_to_oru`)
//! that goes through the same accept path (`crate::accept`) as a message an
//! MLLP listener received: routed (routes name the poller in `from`),
//! journaled, delivered, retried and dead-lettered the same way.
//!
//! No result is lost or doubled across crashes: the cursor (the newest
//! `lastUpdated` fully journaled) is written durably only after every
//! report up to it is in the journal, so a crash re-fetches; and a report
//! version always makes the same ORU bytes (MSH-10 and MSH-7 derive from
//! its id, version and lastUpdated), which the journal's de-duplication
//! stores once. A report that cannot be mapped is quarantined with the map
//! error and counted; it does not stop the others. Network and server
//! errors are retried at the next interval with the log summarised.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::results::{hl7_ts, next_link, split_reports};
use crate::accept::{Accept, Disposition, Inbound, Kind, Origin, Role};
use crate::auth::TokenProvider;
use crate::config::PollerConfig;
use crate::ops::clock::unix_ms;
use crate::ops::watchdog::Heartbeat;
use fhir_map::{results_to_oru, ToHl7Context};
use journal::Quarantined;

/// What a poller reports for `gateway status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PollerState {
    pub name: String,
    /// "fhir" or "sftp" ("" read from an older daemon: fhir).
    #[serde(default)]
    pub kind: String,
    pub polls: u64,
    pub last_poll_ms: Option<u64>,
    pub last_success_ms: Option<u64>,
    /// Reports journaled as new ORU messages.
    pub stored: u64,
    /// Reports already journaled (re-fetched).
    pub duplicates: u64,
    /// Reports that could not be mapped (quarantined with the reason);
    /// sftp: X12 files refused (quarantined, left on the server).
    pub unmappable: u64,
    pub cursor: Option<String>,
    pub last_error: Option<String>,
    /// sftp: files over max_file_bytes, or refused, left on the server (last listing).
    #[serde(default)]
    pub left_on_server: u64,
    /// sftp: the last refused file, its reason, and where its TA1/999 went.
    #[serde(default)]
    pub last_refused: Option<String>,
}

pub struct Poller {
    pub cfg: PollerConfig,
    /// The accept path every report's ORU goes through (its journal also
    /// keeps the reports that cannot be mapped).
    pub accept: Accept,
    /// Where the cursor file lives (`<data_dir>/pollers`).
    pub state_dir: PathBuf,
    pub heartbeat: Heartbeat,
    pub state: Arc<Mutex<PollerState>>,
}

enum PollError {
    /// Try again next interval.
    Retry(String),
}

async fn token(auth: Option<&TokenProvider>) -> Result<Option<HeaderValue>, PollError> {
    match auth {
        None => Ok(None),
        Some(p) => p
            .authorization()
            .await
            .map_err(|e| PollError::Retry(format!("cannot get an access token: {}", e.message()))),
    }
}

impl Poller {
    fn cursor_file(&self) -> String {
        format!("{}.cursor", self.cfg.name)
    }

    fn read_cursor(&self) -> Option<String> {
        std::fs::read_to_string(self.state_dir.join(self.cursor_file()))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    fn update(&self, f: impl FnOnce(&mut PollerState)) {
        match self.state.lock() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let client = match crate::net::https_client::reqwest_client(&self.cfg.tls) {
            Ok(c) => c,
            Err(e) => {
                log::error!(target: "gateway::poller", "poller {}: cannot set up HTTPS: {e}; it will not run", self.cfg.name);
                return;
            }
        };
        let auth = self
            .cfg
            .auth
            .clone()
            .map(|a| TokenProvider::new(a, client.clone()));
        let cursor = self.read_cursor();
        self.update(|s| {
            s.name = self.cfg.name.clone();
            s.cursor = cursor;
        });
        let mut failing = false;
        loop {
            self.heartbeat.beat();
            let result = self
                .poll_once(&client, auth.as_ref())
                .await
                .map_err(|PollError::Retry(e)| e);
            let (name, interval) = (&self.cfg.name, self.cfg.interval);
            self.update(|s| {
                super::record_round(s, &mut failing, name, interval, "result message(s)", result)
            });
            if !super::sleep_beating(&self.heartbeat, self.cfg.interval, &mut shutdown).await {
                return;
            }
        }
    }

    async fn get(
        &self,
        client: &reqwest::Client,
        auth: Option<&TokenProvider>,
        url: &str,
    ) -> Result<serde_json::Value, PollError> {
        let send = |h: Option<HeaderValue>| {
            let mut req = client.get(url).header(ACCEPT, "application/fhir+json");
            if let Some(h) = h {
                req = req.header(AUTHORIZATION, h);
            }
            req.send()
        };
        let h = token(auth).await?;
        let mut resp = send(h.clone())
            .await
            .map_err(|e| PollError::Retry(crate::deliver::http_sender::describe_reqwest(&e)))?;
        if resp.status().as_u16() == 401 {
            if let (Some(p), Some(sent)) = (auth, &h) {
                p.invalidate_if_current(sent);
                let h = token(auth).await?;
                resp = send(h).await.map_err(|e| {
                    PollError::Retry(crate::deliver::http_sender::describe_reqwest(&e))
                })?;
            }
        }
        let status = resp.status().as_u16();
        let body = resp
            .bytes()
            .await
            .map_err(|e| PollError::Retry(crate::deliver::http_sender::describe_reqwest(&e)))?;
        if !(200..300).contains(&status) {
            return Err(PollError::Retry(format!(
                "HTTP {status}: {}",
                crate::deliver::verdict::error_text(&body)
            )));
        }
        serde_json::from_slice(&body)
            .map_err(|e| PollError::Retry(format!("the search answer is not JSON: {e}")))
    }

    fn search_url(&self, cursor: Option<&str>) -> String {
        match cursor {
            None => self.cfg.url.clone(),
            Some(c) => {
                let sep = if self.cfg.url.contains('?') { '&' } else { '?' };
                // `ge`, not `gt`: a report updated in the cursor's own
                // millisecond is fetched again rather than missed; the
                // journal's de-duplication absorbs the repeat.
                let mut q = String::new();
                for b in c.bytes() {
                    match b {
                        b'+' => q.push_str("%2B"),
                        b':' => q.push_str("%3A"),
                        _ => q.push(b as char),
                    }
                }
                format!("{}{sep}_lastUpdated=ge{q}", self.cfg.url)
            }
        }
    }

    /// One poll: every page, every report journaled; then the cursor.
    async fn poll_once(
        &self,
        client: &reqwest::Client,
        auth: Option<&TokenProvider>,
    ) -> Result<u64, PollError> {
        self.update(|s| {
            s.polls += 1;
            s.last_poll_ms = Some(unix_ms());
        });
        let cursor = self.read_cursor();
        let mut url = self.search_url(cursor.as_deref());
        let mut newest = cursor.clone();
        let mut stored = 0u64;
        let mut complete = false;
        for _ in 0..self.cfg.max_pages {
            let page = self.get(client, auth, &url).await?;
            for r in split_reports(&page) {
                self.heartbeat.beat();
                let ts = r
                    .last_updated
                    .as_deref()
                    .and_then(hl7_ts)
                    .unwrap_or_else(|| crate::ops::clock::hl7_timestamp(unix_ms()));
                let ctx = ToHl7Context {
                    sending_application: self.cfg.sending_application.clone(),
                    sending_facility: self.cfg.sending_facility.clone(),
                    receiving_application: self.cfg.receiving_application.clone(),
                    receiving_facility: self.cfg.receiving_facility.clone(),
                    control_id: r.control_id.clone(),
                    timestamp: ts,
                    processing_id: "P".into(),
                };
                match results_to_oru(&r.bundle, &ctx) {
                    Ok(oru) => {
                        if self.journal_oru(oru).await? {
                            stored += 1;
                        }
                    }
                    Err(e) => {
                        self.quarantine(&r.report_id, &r.bundle, &e.to_string())
                            .await?
                    }
                }
                if r.last_updated > newest {
                    newest = r.last_updated.clone();
                }
            }
            match next_link(&page) {
                Some(n) => url = n,
                None => {
                    complete = true;
                    break;
                }
            }
        }
        if !complete {
            log::warn!(target: "gateway::poller", "poller {}: more than {} pages of results; the cursor stays put until a poll reads them all (add _count or _sort=_lastUpdated to the url)", self.cfg.name, self.cfg.max_pages);
            return Ok(stored);
        }
        if newest != cursor {
            if let Some(c) = &newest {
                let dir = self.state_dir.clone();
                let name = self.cursor_file();
                let bytes = c.clone().into_bytes();
                tokio::task::spawn_blocking(move || {
                    journal::durable_fs::create_dir_all(&dir)?;
                    journal::durable_fs::write_atomically(&dir, &name, &bytes)
                })
                .await
                .map_err(|e| PollError::Retry(format!("cursor task failed: {e}")))?
                .map_err(|e| {
                    PollError::Retry(format!(
                        "cannot save the poll cursor in {}: {e}",
                        self.state_dir.display()
                    ))
                })?;
                self.update(|s| s.cursor = newest.clone());
            }
        }
        Ok(stored)
    }

    /// Journal one ORU through the accept path; true if new (false: a
    /// re-fetched duplicate).
    async fn journal_oru(&self, oru: Vec<u8>) -> Result<bool, PollError> {
        let origin = Origin {
            role: Role::Poller,
            name: &self.cfg.name,
            peer: format!("poller {}", self.cfg.name),
        };
        let answer = self
            .accept
            .accept(Inbound {
                origin: &origin,
                kind: Kind::Hl7v2,
                bytes: oru,
                wants_reply: false,
            })
            .await;
        match answer.disposition {
            Disposition::Stored { id } => {
                self.update(|s| s.stored += 1);
                log::debug!(target: "gateway::poller", "poller {}: stored message {id} {} control id '{}'", self.cfg.name, answer.message_type, answer.control_id);
                Ok(true)
            }
            Disposition::Duplicate { .. } => {
                self.update(|s| s.duplicates += 1);
                Ok(false)
            }
            Disposition::Refused { reason } => Err(PollError::Retry(format!(
                "the ORU made from a report does not parse: {reason}"
            ))),
            Disposition::NotStored { error } => Err(PollError::Retry(format!("journal: {error}"))),
        }
    }

    async fn quarantine(
        &self,
        report_id: &str,
        bundle: &serde_json::Value,
        why: &str,
    ) -> Result<(), PollError> {
        self.update(|s| s.unmappable += 1);
        log::warn!(target: "gateway::poller", "poller {}: a report cannot be mapped to ORU ({}); quarantined", self.cfg.name, crate::deliver::outage_log::error_class(why));
        self.accept
            .journal
            .quarantine(Quarantined {
                source: self.cfg.name.clone(),
                peer: format!("poller {}", self.cfg.name),
                received_at_ms: unix_ms(),
                reason: format!("DiagnosticReport {report_id}: {why}"),
                raw: serde_json::to_vec(bundle).unwrap_or_default(),
            })
            .await
            .map_err(|e| PollError::Retry(format!("journal: {e}")))
    }
}
