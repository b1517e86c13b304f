//! One export job, durable in the journal's state store (namespace
//! [`NS`]): `<name>/job` (the status URL — stored right after the 202 and
//! before anything else —, the request, the phase, the manifest's
//! transactionTime), `<name>/file/<i>` (each file of the manifest: where it
//! goes, whether it is finished and its line counts) and `<name>/history`
//! (the last success and its transactionTime: the next `_since`).
//!
//! Phases: polling → downloading → finishing (the `done` marker, then the
//! history and the phase in one commit) → cleanup (DELETE the status URL;
//! with `to = [...]`, state "delivering" until the job's messages have
//! left the destinations' outboxes; drop the job). A restart resumes at
//! the stored phase.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, Url};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::error_summary::{describe, merge, IssueCounts};
use super::http::{header, ExportHttp, Transport};
use super::manifest::{parse_manifest, FileEntry, FileKind, Manifest};
use super::ndjson::Piece;
use super::poll::{backoff, classify_outcome, next_poll, retry_after, Outcome};
use super::sink::{file_path, job_dir, write_small, PartFile};
use crate::config::{ExportConfig, ExportLevel, ExportSince};
use crate::deliver::payload::TRANSFORM_FHIR_RESOURCE;
use crate::ops::clock::unix_ms;
use journal::{Journal, Quarantined, StateOp};

mod download;
mod start;

use download::*;
pub use start::kickoff_url;
use start::*;

/// The state store namespace of exports.
pub const NS: &str = "export";
/// Most times one file is re-fetched after an expired link or a cut.
const MAX_FILE_ATTEMPTS: u32 = 10;
/// Longest quarantined copy of a bad line.
const QUARANTINE_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Polling,
    Downloading,
    Finishing,
    Cleanup,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredJob {
    pub job: u64,
    pub started_ms: u64,
    pub full: bool,
    pub since: Option<String>,
    /// The kick-off request (URL; POST body parameters are in it too).
    pub request: String,
    pub status_url: String,
    pub phase: Phase,
    pub transaction_time: Option<String>,
    pub requires_access_token: bool,
    pub files: u32,
    /// The journal's next message id at the kick-off: the job's `to`
    /// messages have ids from here on (`None`: a job stored before this
    /// field; counted from 0).
    #[serde(default)]
    pub first_message_id: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredFile {
    pub entry: FileEntry,
    /// Its number among the files of its kind and type (from 1).
    pub n: u32,
    pub done: bool,
    pub lines: u64,
    pub bad: u64,
    pub bytes: u64,
    /// An error file's OperationOutcome issues by `severity/code`.
    #[serde(default)]
    pub issues: IssueCounts,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct History {
    pub jobs: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub last_start_ms: Option<u64>,
    pub last_success_ms: Option<u64>,
    /// The last success's transactionTime: the next `since = "auto"`.
    pub last_transaction_time: Option<String>,
    pub last_error: Option<String>,
    /// Of the last success.
    pub last_resources: u64,
    pub last_bad_lines: u64,
    pub last_error_outcomes: u64,
    /// Of the last success: its error files' issues by `severity/code`.
    #[serde(default)]
    pub last_error_issues: IssueCounts,
}

/// What `gateway export status` shows of one export.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ExportStatus {
    pub name: String,
    pub tenant: String,
    /// idle | waiting | kicked_off | polling | downloading | finishing | delivering | done | failed
    pub state: String,
    /// The server's X-Progress (free text), or what the job waits for.
    pub progress: Option<String>,
    /// Why the job is paused (the data disk above warn_at_percent).
    pub paused: Option<String>,
    pub job: Option<u64>,
    pub files_done: u32,
    pub files_total: u32,
    pub bytes: u64,
    pub resources: u64,
    pub bad_lines: u64,
    pub error_outcomes: u64,
    /// The error files' issues so far, by `severity/code` (no server text).
    #[serde(default)]
    pub error_issues: IssueCounts,
    /// `to = [...]`: resources and tombstones journaled for delivery (since the daemon's start).
    #[serde(default)]
    pub journaled: u64,
    /// State `delivering`: the job's resources and tombstones still in the
    /// outboxes of its `to` destinations (0 otherwise).
    #[serde(default)]
    pub pending_delivery: u64,
    /// Files whose line count differs from the manifest's `count`.
    pub count_mismatches: u64,
    pub next_run_ms: Option<u64>,
    /// The `export_stale` alert fires after this long without a success.
    pub alert_after_secs: u64,
    #[serde(flatten)]
    pub history: History,
}

/// Why a job stopped before its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    Shutdown,
    Cancelled,
}

#[derive(Debug)]
pub enum JobError {
    Stop(Stop),
    /// The job failed; the server's or our reason.
    Fatal(String),
}

impl From<Stop> for JobError {
    fn from(s: Stop) -> Self {
        JobError::Stop(s)
    }
}

fn fatal<T>(m: impl Into<String>) -> Result<T, JobError> {
    Err(JobError::Fatal(m.into()))
}

fn key_job(name: &str) -> Vec<u8> {
    format!("{name}/job").into_bytes()
}
fn key_file(name: &str, i: u32) -> Vec<u8> {
    format!("{name}/file/{i:08}").into_bytes()
}
fn key_history(name: &str) -> Vec<u8> {
    format!("{name}/history").into_bytes()
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

fn decode<T: for<'de> Deserialize<'de>>(
    what: &str,
    v: Option<Vec<u8>>,
) -> Result<Option<T>, String> {
    match v {
        None => Ok(None),
        Some(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| format!("stored export state {what} is unreadable: {e}")),
    }
}

pub fn load_job(j: &Journal, name: &str) -> Result<Option<StoredJob>, String> {
    let v = j.get_state(NS, &key_job(name)).map_err(|e| e.to_string())?;
    decode("job", v)
}

pub fn load_history(j: &Journal, name: &str) -> Result<History, String> {
    let v = j
        .get_state(NS, &key_history(name))
        .map_err(|e| e.to_string())?;
    Ok(decode("history", v)?.unwrap_or_default())
}

fn load_file(j: &Journal, name: &str, i: u32) -> Result<StoredFile, String> {
    let v = j
        .get_state(NS, &key_file(name, i))
        .map_err(|e| e.to_string())?;
    decode("file", v)?.ok_or_else(|| format!("stored export state: file {i} of the job is missing"))
}

/// Everything a running job uses.
pub struct JobCtx {
    pub cfg: ExportConfig,
    pub journal: Journal,
    pub http: ExportHttp,
    pub live: Arc<Mutex<ExportStatus>>,
    pub shutdown: watch::Receiver<bool>,
    pub cancel: watch::Receiver<bool>,
    /// `[storage] warn_at_percent`: downloads pause above it.
    pub warn_at_percent: u8,
}

impl JobCtx {
    pub fn update(&self, f: impl FnOnce(&mut ExportStatus)) {
        match self.live.lock() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    fn stopped(&self) -> Option<Stop> {
        if *self.shutdown.borrow() {
            Some(Stop::Shutdown)
        } else if *self.cancel.borrow() {
            Some(Stop::Cancelled)
        } else {
            None
        }
    }

    /// Sleep `d`, or stop early on shutdown or cancel.
    async fn sleep(&self, d: Duration) -> Result<(), Stop> {
        let (mut s, mut c) = (self.shutdown.clone(), self.cancel.clone());
        if let Some(stop) = self.stopped() {
            return Err(stop);
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = s.changed() => {}
            _ = c.changed() => {}
        }
        match self.stopped() {
            Some(stop) => Err(stop),
            None => Ok(()),
        }
    }

    async fn store(&self, state: Vec<StateOp>) -> Result<(), JobError> {
        // Journal trouble (full, I/O) is waited out: the job must not lose its place.
        let mut attempt = 0;
        loop {
            match self.journal.append_batch(Vec::new(), state.clone()).await {
                Ok(_) => return Ok(()),
                Err(e) => {
                    attempt += 1;
                    log::warn!(target: "gateway::export", "export {}: cannot store the job state ({e}); retrying", self.cfg.name);
                    self.update(|s| s.progress = Some(format!("cannot store the job state: {e}")));
                    self.sleep(backoff(attempt, jitter(), self.cfg.poll))
                        .await?;
                }
            }
        }
    }

    async fn store_job(&self, job: &StoredJob) -> Result<(), JobError> {
        self.store(vec![StateOp::put(
            NS,
            &key_job(&self.cfg.name),
            &encode(job),
        )])
        .await
    }

    /// Wait while the data disk is above `warn_at_percent` (saying so in status).
    pub(crate) async fn wait_for_disk(&self) -> Result<(), Stop> {
        loop {
            let used = self.journal.stats().disk_percent_used;
            if used < self.warn_at_percent {
                self.update(|s| s.paused = None);
                return Ok(());
            }
            let why = format!(
                "paused: the data disk is {used}% full (warn_at_percent = {}); the export resumes below it",
                self.warn_at_percent
            );
            if self.live.lock().map(|s| s.paused.is_none()).unwrap_or(true) {
                log::warn!(target: "gateway::export", "export {}: {why}", self.cfg.name);
            }
            self.update(|s| s.paused = Some(why));
            self.sleep(Duration::from_secs(5)).await?;
        }
    }
}

/// The job's backoff before attempt `attempt` again (stops early on shutdown or cancel).
pub(crate) async fn backoff_sleep(ctx: &JobCtx, attempt: u32) -> Result<(), Stop> {
    ctx.sleep(backoff(attempt, jitter(), ctx.cfg.poll)).await
}

/// Run the job of `ctx.cfg`: resume the stored one, or kick off a new one.
/// Returns the stored job at its end (for the caller's cleanup on a stop).
pub async fn run(ctx: &Arc<JobCtx>, full: bool) -> Result<(), JobError> {
    let name = ctx.cfg.name.clone();
    let stored = load_job(&ctx.journal, &name).map_err(JobError::Fatal)?;
    let mut job = match stored {
        Some(j) => {
            log::info!(target: "gateway::export", "export {name}: resuming job {} at {:?}", j.job, j.phase);
            j
        }
        None => kickoff(ctx, full).await?,
    };
    ctx.update(|s| s.job = Some(job.job));
    loop {
        match job.phase {
            Phase::Polling => {
                ctx.update(|s| s.state = "polling".into());
                let pages = poll_until_complete(ctx, &job).await?;
                store_manifest(ctx, &mut job, pages).await?;
            }
            Phase::Downloading => {
                ctx.update(|s| s.state = "downloading".into());
                download_all(ctx, &mut job).await?;
                job.phase = Phase::Finishing;
                ctx.store_job(&job).await?;
            }
            Phase::Finishing => {
                ctx.update(|s| s.state = "finishing".into());
                finish(ctx, &mut job).await?;
            }
            Phase::Cleanup => {
                delete_status_url(ctx, &job.status_url).await;
                if !ctx.cfg.to.is_empty() {
                    wait_delivered(ctx, &job).await?;
                }
                forget(ctx, &job).await?;
                return Ok(());
            }
        }
    }
}

/// The `done` marker, then the history (the next `since`) with the phase.
async fn finish(ctx: &Arc<JobCtx>, job: &mut StoredJob) -> Result<(), JobError> {
    let name = &ctx.cfg.name;
    let mut files = Vec::new();
    for i in 0..job.files {
        files.push(load_file(&ctx.journal, name, i).map_err(JobError::Fatal)?);
    }
    let (resources, bad, bytes, outcomes) = totals(&files);
    let issues = issue_totals(&files);
    let tt = job.transaction_time.clone().unwrap_or_default();
    let dir = ctx
        .cfg
        .output
        .as_ref()
        .map(|o| job_dir(o, &ctx.cfg.tenant, &tt));
    if let Some(dir) = dir.clone() {
        let marker = serde_json::json!({
            "export": name, "tenant": ctx.cfg.tenant, "job": job.job, "transactionTime": tt,
            "since": job.since, "files": job.files, "resources": resources, "bad_lines": bad,
            "error_outcomes": outcomes, "error_issues": issues, "bytes": bytes,
        });
        let body = serde_json::to_vec_pretty(&marker).unwrap_or_default();
        let d = dir.clone();
        tokio::task::spawn_blocking(move || write_small(&d, "done", &body))
            .await
            .map_err(|e| JobError::Fatal(format!("done marker task: {e}")))?
            .map_err(|e| {
                JobError::Fatal(format!(
                    "cannot write the done marker in {}: {e}",
                    dir.display()
                ))
            })?;
    }
    let mut h = load_history(&ctx.journal, name).map_err(JobError::Fatal)?;
    h.succeeded += 1;
    h.last_success_ms = Some(unix_ms());
    h.last_transaction_time = Some(tt.clone());
    h.last_error = None;
    h.last_resources = resources;
    h.last_bad_lines = bad;
    h.last_error_outcomes = outcomes;
    h.last_error_issues = issues.clone();
    job.phase = Phase::Cleanup;
    ctx.store(vec![
        StateOp::put(NS, &key_history(name), &encode(&h)),
        StateOp::put(NS, &key_job(name), &encode(&*job)),
    ])
    .await?;
    let _ = ctx.journal.audit(
        "export_done",
        &format!("export {name} tenant {} job {} transactionTime {tt}: {resources} resource(s), {bad} bad line(s), {outcomes} error outcome(s)", ctx.cfg.tenant, job.job),
    );
    // Issue counts only: the files' diagnostics text may quote PHI.
    if outcomes > 0 {
        let see = dir.map_or_else(
            || "no folder sink keeps the files".to_string(),
            |d| format!("see errors/ in {}", d.display()),
        );
        log::warn!(target: "gateway::export", "export {name} (tenant {}): the server reported {outcomes} error OperationOutcome(s), issues {}; {see}", ctx.cfg.tenant, describe(&issues));
    }
    log::info!(target: "gateway::export", "export {name} (tenant {}): job {} done: {resources} resource(s), {bad} bad line(s), error issues: {}", ctx.cfg.tenant, job.job, describe(&issues));
    ctx.update(|s| {
        s.history = h;
        s.state = if ctx.cfg.to.is_empty() {
            "done"
        } else {
            "delivering"
        }
        .into();
    });
    Ok(())
}

/// How often "delivering" counts the outboxes again.
const DELIVERING_EVERY: Duration = Duration::from_secs(1);

/// `to = [...]`, after the history is stored: state "delivering", with the
/// job's messages still pending per destination, until none is (each one
/// delivered, or dead-lettered: the destination's own status says which).
/// Counted: the destination's pending `fhir-resource` entries journaled
/// since the job's kick-off (another export's to the same destination in
/// that span counts too). A restart in this phase counts again.
async fn wait_delivered(ctx: &Arc<JobCtx>, job: &StoredJob) -> Result<(), JobError> {
    let from = job.first_message_id.unwrap_or(0);
    loop {
        let (j, to) = (ctx.journal.clone(), ctx.cfg.to.clone());
        let counted = tokio::task::spawn_blocking(move || pending_since(&j, &to, from))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
        match counted {
            Ok(per) if per.iter().all(|(_, n)| *n == 0) => {
                ctx.update(|s| {
                    s.state = "done".into();
                    s.pending_delivery = 0;
                    s.progress = None;
                });
                return Ok(());
            }
            Ok(per) => {
                let what: Vec<String> = per
                    .iter()
                    .filter(|(_, n)| *n > 0)
                    .map(|(d, n)| format!("{n} pending for {d}"))
                    .collect();
                ctx.update(|s| {
                    s.state = "delivering".into();
                    s.pending_delivery = per.iter().map(|(_, n)| n).sum();
                    s.progress = Some(what.join(", "));
                });
            }
            Err(e) => {
                log::warn!(target: "gateway::export", "export {}: cannot count the outboxes: {e}", ctx.cfg.name);
                ctx.update(|s| s.progress = Some(format!("cannot count the outboxes: {e}")));
            }
        }
        ctx.sleep(DELIVERING_EVERY).await?;
    }
}

/// Per destination of `to`: its pending `fhir-resource` entries with id >= `from`.
fn pending_since(j: &Journal, to: &[String], from: u64) -> Result<Vec<(String, u64)>, String> {
    const PAGE: usize = 10_000;
    let mut out = Vec::with_capacity(to.len());
    for d in to {
        let (mut n, mut after) = (0u64, from.checked_sub(1));
        loop {
            let page = j
                .pending_entries(d, after, PAGE)
                .map_err(|e| format!("outbox {d}: {e}"))?;
            n += page
                .iter()
                .filter(|e| e.entry.transform == TRANSFORM_FHIR_RESOURCE)
                .count() as u64;
            match page.last() {
                Some(last) if page.len() == PAGE => after = Some(last.id),
                _ => break,
            }
        }
        out.push((d.clone(), n));
    }
    Ok(out)
}

/// The error files' issues, summed.
fn issue_totals(files: &[StoredFile]) -> IssueCounts {
    let mut t = IssueCounts::new();
    for f in files.iter().filter(|f| f.done) {
        merge(&mut t, &f.issues);
    }
    t
}

/// DELETE the status URL: 202 and 404 (and any 2xx) are done; anything
/// else is logged (the server expires jobs on its own).
pub async fn delete_status_url(ctx: &JobCtx, url: &str) {
    match ctx.http.api(Method::DELETE, url, &[], None).await {
        Ok(r) if r.status().is_success() || r.status().as_u16() == 404 => {}
        Ok(r) => {
            log::warn!(target: "gateway::export", "export {}: DELETE of the status URL answered HTTP {}", ctx.cfg.name, r.status().as_u16())
        }
        Err(Transport(e, _)) => {
            log::warn!(target: "gateway::export", "export {}: DELETE of the status URL failed: {e}", ctx.cfg.name)
        }
    }
}

/// Drop the stored job and its files.
pub async fn forget(ctx: &JobCtx, job: &StoredJob) -> Result<(), JobError> {
    ctx.store(vec![StateOp::delete(NS, &key_job(&ctx.cfg.name))])
        .await?;
    let mut ops = Vec::new();
    for i in 0..job.files {
        ops.push(StateOp::delete(NS, &key_file(&ctx.cfg.name, i)));
        ops.push(StateOp::delete(
            NS,
            &crate::source::export::journal_sink::key_committed(&ctx.cfg.name, i),
        ));
        if ops.len() >= 1000 {
            ctx.store(std::mem::take(&mut ops)).await?;
        }
    }
    ctx.store(ops).await
}

/// The job failed or was cancelled: DELETE on the server, the job dropped,
/// the reason in the history.
pub async fn abandon(ctx: &JobCtx, why: &str, failed: bool) -> Result<(), JobError> {
    let name = &ctx.cfg.name;
    let stored = load_job(&ctx.journal, name).map_err(JobError::Fatal)?;
    if let Some(job) = &stored {
        delete_status_url(ctx, &job.status_url).await;
    }
    let mut h = load_history(&ctx.journal, name).map_err(JobError::Fatal)?;
    if failed {
        h.failed += 1;
        // The schedule counts from this start: a failing job is not retried at once.
        h.last_start_ms = Some(stored.as_ref().map_or_else(unix_ms, |j| j.started_ms));
    }
    h.last_error = Some(why.to_string());
    ctx.store(vec![StateOp::put(NS, &key_history(name), &encode(&h))])
        .await?;
    if let Some(job) = &stored {
        forget(ctx, job).await?;
    }
    ctx.update(|s| {
        s.history = h;
        s.state = if failed {
            "failed".into()
        } else {
            "idle".into()
        };
    });
    Ok(())
}
