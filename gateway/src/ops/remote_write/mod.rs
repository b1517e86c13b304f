//! `[fleet.remote_write]`: the box pushes its metrics to a Prometheus-
//! compatible store with the remote-write 1.0 protocol (boxes sit behind
//! NAT and cannot be scraped). Every `interval` it takes the `/metrics`
//! reading (`ops::metrics::collect`, the same series and labels), adds
//! `box` and `site`, buffers it ([`buffer`]: bounded in memory, max age)
//! and sends what waits, oldest first, with the original timestamps.
//!
//! Labels come from the config and the code only: metric names, listener /
//! destination / certificate / export names, states. Never text from a
//! message (unmapped local codes are counted per destination, never named).
//!
//! A 2xx takes the batch off the buffer; 5xx, 429, timeouts and connection
//! errors keep it for the next round; any other 4xx is the receiver
//! refusing those samples for good (e.g. out of bounds): they are counted
//! as rejected and dropped, so one bad batch cannot block the rest.

pub mod buffer;
pub mod encode;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::clock;
use super::health::HealthState;
use super::webhook::{PostError, Poster};
use crate::config::RemoteWriteConfig;
use buffer::Buffer;
use encode::Label;

/// The longest one remote-write POST may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Samples per request (Prometheus' own sender uses 2000-10000).
const MAX_SAMPLES_PER_REQUEST: usize = 5000;

/// What `gateway status`, the status report and `/metrics` show.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RemoteWriteStatus {
    pub url: String,
    /// Samples the receiver took.
    pub sent_samples: u64,
    /// Samples waiting in the buffer.
    pub pending_samples: u64,
    /// Age of the oldest waiting reading.
    pub oldest_pending_age_secs: Option<u64>,
    /// Samples older than `max_age` before they could be sent.
    pub dropped_too_old: u64,
    /// Samples pushed out of a full buffer.
    pub dropped_overflow: u64,
    /// Samples the receiver refused for good (4xx other than 429).
    pub rejected: u64,
    pub last_success_ms: Option<u64>,
    /// The last failure (HTTP status or connection error), while failing.
    pub last_error: Option<String>,
}

static STATUS: Mutex<Option<RemoteWriteStatus>> = Mutex::new(None);

/// The sender's state now; `None` when `[fleet.remote_write]` is not set.
pub fn status() -> Option<RemoteWriteStatus> {
    STATUS.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

fn publish(s: &RemoteWriteStatus) {
    *STATUS.lock().unwrap_or_else(|e| e.into_inner()) = Some(s.clone());
}

/// The updater's report (`[fleet] updater_report`) as series (pure): the
/// booted slot's version, a pending install, failed targets and whether
/// the last check went well. Versions and slot names only.
pub fn updater_series(report: &serde_json::Value) -> Vec<(String, Vec<Label>, f64)> {
    let mut out = Vec::new();
    if report.get("error").is_some() {
        out.push(("gateway_update_report_ok".to_string(), vec![], 0.0));
        return out;
    }
    out.push(("gateway_update_report_ok".to_string(), vec![], 1.0));
    if let Some(slot) = report["slots"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["booted"] == true))
    {
        let l = |k: &str| (k.to_string(), slot[k].as_str().unwrap_or("").to_string());
        let version = match &slot["version"] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            v => v.to_string(),
        };
        out.push((
            "gateway_update_booted_info".to_string(),
            vec![l("slot"), ("version".to_string(), version)],
            1.0,
        ));
    }
    let pending = !report["pending"].is_null();
    out.push((
        "gateway_update_pending".to_string(),
        vec![],
        f64::from(u8::from(pending)),
    ));
    let failed = report["failed_targets"].as_array().map_or(0, Vec::len);
    out.push((
        "gateway_update_failed_targets".to_string(),
        vec![],
        failed as f64,
    ));
    if let Some(ok) = report["last_check"]["ok"].as_bool() {
        out.push((
            "gateway_update_last_check_ok".to_string(),
            vec![],
            f64::from(u8::from(ok)),
        ));
    }
    out
}

/// Adds `__name__`, `box` and `site` to each series.
fn with_identity(
    series: Vec<(String, Vec<Label>, f64)>,
    box_id: &str,
    site: &str,
) -> Vec<(Vec<Label>, f64)> {
    series
        .into_iter()
        .map(|(name, mut labels, v)| {
            // An empty value is the same as no label (and `box`/`site` are ours).
            labels.retain(|(k, v)| !v.is_empty() && k != "box" && k != "site" && k != "__name__");
            labels.push(("__name__".into(), name));
            labels.push(("box".into(), box_id.to_string()));
            if !site.is_empty() {
                labels.push(("site".into(), site.to_string()));
            }
            (labels, v)
        })
        .collect()
}

/// What the task needs beside its config.
pub struct RemoteWriteTask {
    pub cfg: RemoteWriteConfig,
    pub box_id: String,
    pub site: String,
    pub updater_report: Option<std::path::PathBuf>,
    pub health: Arc<HealthState>,
}

/// Read, buffer and send every `interval` until shutdown.
pub async fn run(t: RemoteWriteTask, mut shutdown: watch::Receiver<bool>) {
    let cfg = &t.cfg;
    let mut st = RemoteWriteStatus {
        url: cfg.url.clone(),
        ..Default::default()
    };
    publish(&st);
    let poster = match Poster::new(&cfg.url, &cfg.tls, cfg.auth.as_ref()) {
        Ok(p) => p,
        Err(e) => {
            st.last_error = Some(format!("cannot set up the HTTPS client: {e}"));
            publish(&st);
            log::error!(target: "gateway::fleet", event = "remote_write_failed"; "fleet.remote_write.url: cannot set up the HTTPS client: {e}; no metrics will be sent");
            return;
        }
    };
    let mut buf = Buffer::new(cfg.max_samples, cfg.max_age.as_millis() as i64);
    let mut tick = tokio::time::interval(cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let now = clock::unix_ms();
        let mut series = t.health.series(now);
        if let Some(path) = &t.updater_report {
            series.extend(updater_series(&super::fleet::updater_report(path)));
        }
        buf.push(now as i64, with_identity(series, &t.box_id, &t.site));
        buf.expire(now as i64);
        // Send what waits, oldest first, until it is all taken or a send fails.
        while let Some(batch) = buf.front(MAX_SAMPLES_PER_REQUEST) {
            let body = match encode::body(&batch.series) {
                Ok(b) => b,
                Err(e) => {
                    st.last_error = Some(format!("snappy: {e}"));
                    break;
                }
            };
            let sent = tokio::select! {
                r = tokio::time::timeout(SEND_TIMEOUT, poster.post_bytes(body, &encode::HEADERS)) => r.unwrap_or(Err(PostError::TimedOut)),
                _ = shutdown.changed() => return,
            };
            match sent {
                Ok(()) => {
                    buf.pop(batch.readings);
                    st.sent_samples += batch.samples as u64;
                    st.last_success_ms = Some(clock::unix_ms());
                    if st.last_error.take().is_some() {
                        log::info!(target: "gateway::fleet", event = "remote_write_ok"; "remote-write to {} works again; sending the {} buffered sample(s)", cfg.url, buf.len());
                    }
                }
                Err(PostError::Status(code)) if (400..500).contains(&code) && code != 429 => {
                    buf.pop(batch.readings);
                    st.rejected += batch.samples as u64;
                    log::warn!(target: "gateway::fleet", event = "remote_write_rejected"; "remote-write to {} refused {} sample(s) with HTTP {code}; they are dropped (see docs/operations.md#pointing-boxes-at-a-prometheus)", cfg.url, batch.samples);
                }
                Err(e) => {
                    if st.last_error.is_none() {
                        log::warn!(target: "gateway::fleet", event = "remote_write_failed"; "remote-write to {} failed: {e}; keeping the samples (up to {} or {} s old) and trying every {} s", cfg.url, cfg.max_samples, cfg.max_age.as_secs(), cfg.interval.as_secs());
                    }
                    st.last_error = Some(e.to_string());
                    break;
                }
            }
        }
        st.pending_samples = buf.len() as u64;
        st.oldest_pending_age_secs = buf
            .oldest_ms()
            .map(|t| (now as i64 - t).max(0) as u64 / 1000);
        st.dropped_too_old = buf.dropped.too_old;
        st.dropped_overflow = buf.dropped.overflow;
        publish(&st);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_labels_replace_any_the_metric_had() {
        let s = with_identity(
            vec![(
                "gateway_ready".into(),
                vec![
                    ("box".into(), "x".into()),
                    ("listener".into(), "ehr".into()),
                ],
                1.0,
            )],
            "clinic-7",
            "",
        );
        let labels = &s[0].0;
        assert!(labels.contains(&("box".into(), "clinic-7".into())));
        assert!(labels.contains(&("__name__".into(), "gateway_ready".into())));
        assert!(!labels.iter().any(|(k, _)| k == "site"));
        assert_eq!(labels.len(), 3);
    }

    #[test]
    fn updater_report_series() {
        let r = serde_json::json!({
            "slots": [{"slot": "A", "booted": false, "version": "1.0.0"},
                      {"slot": "B", "booted": true, "version": "1.1.0"}],
            "pending": null, "failed_targets": ["x"], "last_check": {"ok": true, "at": "t", "message": "m"}
        });
        let s = updater_series(&r);
        let get = |n: &str| s.iter().find(|x| x.0 == n).map(|x| x.2);
        assert_eq!(get("gateway_update_pending"), Some(0.0));
        assert_eq!(get("gateway_update_failed_targets"), Some(1.0));
        assert_eq!(get("gateway_update_last_check_ok"), Some(1.0));
        let info = s
            .iter()
            .find(|x| x.0 == "gateway_update_booted_info")
            .unwrap();
        assert!(info.1.contains(&("version".into(), "1.1.0".into())));
        assert_eq!(
            updater_series(&serde_json::json!({"error": "x: missing"}))[0].2,
            0.0
        );
    }
}
