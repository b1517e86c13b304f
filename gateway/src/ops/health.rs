//! `[health]`: `/healthz` (the process answers), `/readyz` (it accepts
//! messages; otherwise 503 with the reasons) and `/metrics` (Prometheus).
//! Plain HTTP, meant for loopback (default `127.0.0.1:9090`): a local
//! Prometheus node agent or the image's health check scrapes it.
//!
//! The server starts before the journal is opened, so `/readyz` tells a
//! supervisor why the gateway is not ready yet (e.g. a long recovery).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::admin::StatusSource;
use super::http_server::{self, Request, Response};
use super::metrics;
use super::watchdog::Heartbeats;
use journal::Journal;

/// What `/readyz` and `/metrics` read. Filled in as the daemon starts.
#[derive(Default)]
pub struct HealthState {
    pub journal_open: AtomicBool,
    pub listeners_bound: AtomicBool,
    pub stopping: AtomicBool,
    pub journal: OnceLock<Journal>,
    pub status: OnceLock<StatusSource>,
    pub heartbeats: OnceLock<Arc<Heartbeats>>,
    pub started_ms: u64,
    pub warn_at_percent: u8,
    pub refuse_at_percent: u8,
}

/// A loop that has not beaten for this long makes the gateway not ready.
const STALE: Duration = Duration::from_secs(15);

impl HealthState {
    /// Empty when ready; otherwise every reason it is not.
    pub fn not_ready_reasons(&self) -> Vec<String> {
        let mut why = Vec::new();
        if self.stopping.load(Ordering::Relaxed) {
            why.push("shutting down".to_string());
        }
        if !self.journal_open.load(Ordering::Relaxed) {
            why.push("journal not open yet (starting or recovering)".to_string());
        }
        if !self.listeners_bound.load(Ordering::Relaxed) {
            why.push("listeners not bound yet".to_string());
        }
        if let Some(j) = self.journal.get() {
            let age = j.writer_heartbeat_age();
            if self.journal_open.load(Ordering::Relaxed) && age > STALE {
                why.push(format!("journal writer stuck for {} s", age.as_secs()));
            }
            let used = j.stats().disk_percent_used;
            if used >= self.refuse_at_percent {
                why.push(format!(
                    "disk {used}% used, at or over the refuse watermark ({}%): new messages get AE",
                    self.refuse_at_percent
                ));
            }
        }
        if let Some(h) = self.heartbeats.get() {
            let stale = h.stale(STALE);
            if !stale.is_empty() {
                why.push(format!("stuck: {}", stale.join(", ")));
            }
        }
        why
    }

    fn extra(&self, ready: bool, now_ms: u64) -> metrics::Extra {
        metrics::Extra {
            ready,
            started_unix_secs: self.started_ms / 1000,
            commit_latency: self.journal.get().map(Journal::commit_latency),
            refuse_at_percent: self.refuse_at_percent,
            warn_at_percent: self.warn_at_percent,
            now_unix_secs: (now_ms / 1000) as i64,
        }
    }

    /// The `/metrics` series as values (for remote-write); empty before
    /// the status source exists.
    pub fn series(&self, now_ms: u64) -> Vec<metrics::Reading> {
        let ready = self.not_ready_reasons().is_empty();
        match self.status.get() {
            Some(status) => metrics::collect(&status(), &self.extra(ready, now_ms)),
            None => Vec::new(),
        }
    }

    pub fn metrics(&self) -> String {
        let ready = self.not_ready_reasons().is_empty();
        let now_ms = super::clock::unix_ms();
        let mut out = String::new();
        match self.status.get() {
            Some(status) => {
                let report = status();
                out += &metrics::render(&report, &self.extra(ready, now_ms));
            }
            None => {
                out += "# HELP gateway_ready 1 when the gateway accepts messages (see /readyz for the reason when 0).\n# TYPE gateway_ready gauge\ngateway_ready 0\n";
            }
        }
        out
    }

    fn answer(&self, r: &Request) -> Response {
        match r.path.as_str() {
            "/healthz" => Response::text(200, "ok\n"),
            "/readyz" => {
                let why = self.not_ready_reasons();
                if why.is_empty() {
                    Response::text(200, "ready\n")
                } else {
                    Response::text(503, format!("not ready: {}\n", why.join("; ")))
                }
            }
            "/metrics" => Response::new(
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                self.metrics(),
            ),
            _ => Response::text(404, "not found: try /healthz, /readyz or /metrics\n"),
        }
    }
}

/// Bind the health endpoint (errors name the address and the config key).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, crate::Error> {
    http_server::bind(
        "health",
        addr,
        "choose a free port in health.bind, or remove [health]",
    )
    .await
}

pub async fn serve(
    listener: TcpListener,
    state: Arc<HealthState>,
    shutdown: watch::Receiver<bool>,
) {
    http_server::accept_loop(
        listener,
        move |stream, _peer| {
            let state = state.clone();
            async move {
                http_server::handle_connection(stream, &|r: &Request| state.answer(r)).await;
            }
        },
        shutdown,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_names_what_is_missing() {
        let s = HealthState {
            refuse_at_percent: 95,
            ..Default::default()
        };
        let why = s.not_ready_reasons();
        assert!(
            why.iter().any(|w| w.contains("journal not open")),
            "{why:?}"
        );
        assert!(
            why.iter().any(|w| w.contains("listeners not bound")),
            "{why:?}"
        );
        s.journal_open.store(true, Ordering::Relaxed);
        s.listeners_bound.store(true, Ordering::Relaxed);
        assert!(s.not_ready_reasons().is_empty());
        s.stopping.store(true, Ordering::Relaxed);
        assert_eq!(s.not_ready_reasons(), vec!["shutting down".to_string()]);
        let r = s.answer(&Request {
            method: "GET".into(),
            path: "/readyz".into(),
            ..Default::default()
        });
        assert_eq!(r.status, 503);
        assert!(r.body.contains("shutting down"));
        let m = s.metrics();
        assert!(m.contains("gateway_ready 0"), "{m}");
    }
}
