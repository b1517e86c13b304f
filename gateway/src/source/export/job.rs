//! One export job, durable in the journal's state store (namespace
//! [`NS`]): `<name>/job` (the status URL — stored right after the 202 and
//! before anything else —, the request, the phase, the manifest's
//! transactionTime), `<name>/file/<i>` (each file of the manifest: where it
//! goes, whether it is finished and its line counts) and `<name>/history`
//! (the last success and its transactionTime: the next `_since`).
//!
//! Phases: polling → downloading → finishing (the `done` marker, then the
//! history and the phase in one commit) → cleanup (DELETE the status URL,
//! drop the job). A restart resumes at the stored phase.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use flate2::write::MultiGzDecoder;
use reqwest::{Method, Url};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::http::{header, ExportHttp, Transport};
use super::manifest::{parse_manifest, FileEntry, FileKind, Manifest};
use super::ndjson::{check_line, LineSplitter, Piece};
use super::poll::{backoff, classify_outcome, next_poll, retry_after, Outcome};
use super::sink::{file_path, job_dir, write_small, PartFile};
use super::tag::tag_tenant;
use crate::config::{ExportConfig, ExportLevel, ExportSince};
use crate::ops::clock::unix_ms;
use journal::{Journal, Quarantined, StateOp};

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
}

/// What `gateway export status` shows of one export.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ExportStatus {
    pub name: String,
    pub tenant: String,
    /// idle | waiting | kicked_off | polling | downloading | finishing | done | failed
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
    async fn wait_for_disk(&self) -> Result<(), Stop> {
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

/// A random draw in [0, 1) for jitter.
fn jitter() -> f64 {
    let mut b = [0u8; 4];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    u32::from_le_bytes(b) as f64 / (u32::MAX as f64 + 1.0)
}

/// The server's words for an error answer (bounded, single line).
fn server_text(status: u16, body: &[u8]) -> String {
    match classify_outcome(body) {
        Outcome::Transient(t) | Outcome::Fatal(t) => format!("HTTP {status}: {t}"),
        Outcome::NotAnOutcome => format!(
            "HTTP {status}: {}",
            crate::deliver::verdict::error_text(body)
        ),
    }
}

/// The kick-off URL and its parameters.
pub fn kickoff_url(
    cfg: &ExportConfig,
    since: Option<&str>,
) -> Result<(Url, Vec<(String, String)>), String> {
    let op = match &cfg.level {
        ExportLevel::System => "$export".to_string(),
        ExportLevel::Patient => "Patient/$export".to_string(),
        ExportLevel::Group(g) => format!("Group/{g}/$export"),
    };
    let mut url = Url::parse(&format!("{}/{op}", cfg.base_url)).map_err(|e| e.to_string())?;
    let mut params = vec![(
        "_outputFormat".to_string(),
        "application/fhir+ndjson".to_string(),
    )];
    if !cfg.types.is_empty() {
        params.push(("_type".into(), cfg.types.join(",")));
    }
    for f in &cfg.type_filters {
        params.push(("_typeFilter".into(), f.clone()));
    }
    if let Some(s) = since {
        params.push(("_since".into(), s.to_string()));
    }
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in &params {
            q.append_pair(k, v);
        }
    }
    Ok((url, params))
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
                forget(ctx, &job).await?;
                return Ok(());
            }
        }
    }
}

async fn kickoff(ctx: &Arc<JobCtx>, full: bool) -> Result<StoredJob, JobError> {
    let cfg = &ctx.cfg;
    let history = load_history(&ctx.journal, &cfg.name).map_err(JobError::Fatal)?;
    let since = if full {
        None
    } else {
        match &cfg.since {
            ExportSince::Auto => history.last_transaction_time.clone(),
            ExportSince::None => None,
            ExportSince::Instant(s) => Some(s.clone()),
        }
    };
    let (url, params) = kickoff_url(cfg, since.as_deref()).map_err(JobError::Fatal)?;
    ctx.update(|s| {
        s.state = "kicked_off".into();
        s.progress = None;
    });
    let mut attempt = 0u32;
    let mut post = false;
    loop {
        let resp = if post {
            let body = serde_json::json!({
                "resourceType": "Parameters",
                "parameter": params.iter().map(|(k, v)| serde_json::json!({"name": k, "valueString": v})).collect::<Vec<_>>(),
            });
            let mut plain = url.clone();
            plain.set_query(None);
            ctx.http
                .api(
                    Method::POST,
                    plain.as_str(),
                    &[("prefer", "respond-async")],
                    Some(encode(&body)),
                )
                .await
        } else {
            ctx.http
                .api(
                    Method::GET,
                    url.as_str(),
                    &[("prefer", "respond-async")],
                    None,
                )
                .await
        };
        let resp = match resp {
            Ok(r) => r,
            Err(Transport(e, true)) => return fatal(format!("kick-off: {e}")),
            Err(Transport(e, _)) => {
                attempt += 1;
                if attempt == 1 {
                    log::warn!(target: "gateway::export", "export {}: kick-off failed: {}; retrying with backoff", cfg.name, crate::deliver::outage_log::error_class(&e));
                }
                ctx.update(|s| s.progress = Some(format!("kick-off failed: {e}; retrying")));
                ctx.sleep(backoff(attempt, jitter(), cfg.poll)).await?;
                continue;
            }
        };
        let status = resp.status().as_u16();
        let asked = header(&resp, "retry-after").and_then(|v| retry_after(v, unix_ms()));
        let location =
            header(&resp, "content-location").map(|v| String::from_utf8_lossy(v).into_owned());
        let body = resp.bytes().await.unwrap_or_default();
        match status {
            202 => {
                let Some(loc) = location
                    .filter(|l| Url::parse(l).is_ok_and(|u| u.scheme().starts_with("http")))
                else {
                    return fatal("the kick-off answer (202) has no absolute Content-Location: the server cannot be polled");
                };
                let job = StoredJob {
                    job: history.jobs + 1,
                    started_ms: unix_ms(),
                    full,
                    since: since.clone(),
                    request: url.to_string(),
                    status_url: loc,
                    phase: Phase::Polling,
                    transaction_time: None,
                    requires_access_token: false,
                    files: 0,
                };
                let mut h = history.clone();
                h.jobs += 1;
                h.last_start_ms = Some(job.started_ms);
                // The status URL first: the crash-resume handle.
                ctx.store(vec![
                    StateOp::put(NS, &key_job(&cfg.name), &encode(&job)),
                    StateOp::put(NS, &key_history(&cfg.name), &encode(&h)),
                ])
                .await?;
                let _ = ctx.journal.audit(
                    "export_started",
                    &format!(
                        "export {} tenant {} job {} since {}",
                        cfg.name,
                        cfg.tenant,
                        job.job,
                        since.as_deref().unwrap_or("none (full)")
                    ),
                );
                log::info!(target: "gateway::export", "export {} (tenant {}): job {} kicked off", cfg.name, cfg.tenant, job.job);
                ctx.update(|s| {
                    s.history = h;
                    s.state = "kicked_off".into();
                });
                return Ok(job);
            }
            405 if !post => {
                post = true;
                continue;
            }
            429 => {
                // Usually another export of this client is running: wait, never start a second.
                attempt += 1;
                let wait = asked.map_or_else(
                    || backoff(attempt, jitter(), cfg.poll),
                    |a| next_poll(Some(a), None, cfg.poll),
                );
                ctx.update(|s| s.progress = Some(format!("kick-off refused with 429 (another export running for this client?); retrying in {} s", wait.as_secs())));
                ctx.sleep(wait).await?;
            }
            _ => match classify_outcome(&body) {
                Outcome::Transient(t) => {
                    attempt += 1;
                    ctx.update(|s| {
                        s.progress = Some(format!("kick-off: HTTP {status}: {t}; retrying"))
                    });
                    ctx.sleep(next_poll(asked, None, cfg.poll)).await?;
                }
                Outcome::NotAnOutcome if status >= 500 => {
                    attempt += 1;
                    ctx.update(|s| s.progress = Some(format!("kick-off: HTTP {status}; retrying")));
                    ctx.sleep(backoff(attempt, jitter(), cfg.poll)).await?;
                }
                _ => return fatal(format!("kick-off refused: {}", server_text(status, &body))),
            },
        }
    }
}

/// Poll the status URL until the manifest; every page of it.
async fn poll_until_complete(ctx: &Arc<JobCtx>, job: &StoredJob) -> Result<Vec<Vec<u8>>, JobError> {
    let cfg = &ctx.cfg;
    let mut prev: Option<Duration> = None;
    let mut attempt = 0u32;
    loop {
        if let Some(s) = ctx.stopped() {
            return Err(s.into());
        }
        let resp = match ctx.http.api(Method::GET, &job.status_url, &[], None).await {
            Ok(r) => r,
            Err(Transport(e, true)) => return fatal(format!("status poll: {e}")),
            Err(Transport(e, _)) => {
                attempt += 1;
                if attempt == 1 {
                    log::warn!(target: "gateway::export", "export {}: status poll failed: {}; retrying with backoff", cfg.name, crate::deliver::outage_log::error_class(&e));
                }
                ctx.update(|s| s.progress = Some(format!("status poll failed: {e}; retrying")));
                ctx.sleep(backoff(attempt, jitter(), cfg.poll)).await?;
                continue;
            }
        };
        let status = resp.status().as_u16();
        let asked = header(&resp, "retry-after").and_then(|v| retry_after(v, unix_ms()));
        let progress = header(&resp, "x-progress").map(|v| {
            String::from_utf8_lossy(v)
                .chars()
                .take(200)
                .collect::<String>()
        });
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                attempt += 1;
                ctx.update(|s| s.progress = Some(format!("status poll cut: {e}; retrying")));
                ctx.sleep(backoff(attempt, jitter(), cfg.poll)).await?;
                continue;
            }
        };
        match status {
            200 => return manifest_pages(ctx, body.to_vec()).await,
            202 => {
                attempt = 0;
                let wait = next_poll(asked, prev, cfg.poll);
                prev = Some(wait);
                ctx.update(|s| {
                    s.state = "polling".into();
                    s.progress = progress.clone();
                });
                ctx.sleep(wait).await?;
            }
            429 => {
                let wait = next_poll(asked, prev.map(|p| p.mul_f64(2.0)), cfg.poll);
                prev = Some(wait);
                ctx.sleep(wait).await?;
            }
            _ => match classify_outcome(&body) {
                Outcome::Transient(t) => {
                    let wait = next_poll(asked, prev, cfg.poll);
                    prev = Some(wait);
                    ctx.update(|s| s.progress = Some(format!("transient: {t}")));
                    ctx.sleep(wait).await?;
                }
                Outcome::NotAnOutcome if status >= 500 => {
                    attempt += 1;
                    ctx.update(|s| {
                        s.progress = Some(format!("status poll: HTTP {status}; retrying"))
                    });
                    ctx.sleep(backoff(attempt, jitter(), cfg.poll)).await?;
                }
                _ => return fatal(format!("the export failed: {}", server_text(status, &body))),
            },
        }
    }
}

/// The first page and every `next` page of a manifest.
async fn manifest_pages(ctx: &Arc<JobCtx>, first: Vec<u8>) -> Result<Vec<Vec<u8>>, JobError> {
    let mut pages = vec![first];
    let mut attempt = 0u32;
    while pages.len() < 1000 {
        let last = pages.last().map(Vec::as_slice).unwrap_or_default();
        let m =
            parse_manifest(last).map_err(|e| JobError::Fatal(format!("the manifest: {}", e.0)))?;
        let Some(next) = m.next else { return Ok(pages) };
        match ctx.http.api(Method::GET, &next, &[], None).await {
            Ok(r) if r.status().is_success() => match r.bytes().await {
                Ok(b) => pages.push(b.to_vec()),
                Err(_) => {
                    attempt += 1;
                    ctx.sleep(backoff(attempt, jitter(), ctx.cfg.poll)).await?;
                }
            },
            Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => {
                attempt += 1;
                ctx.sleep(backoff(attempt, jitter(), ctx.cfg.poll)).await?;
            }
            Ok(r) => {
                let status = r.status().as_u16();
                let body = r.bytes().await.unwrap_or_default();
                return fatal(format!(
                    "a page of the manifest: {}",
                    server_text(status, &body)
                ));
            }
            Err(_) => {
                attempt += 1;
                ctx.sleep(backoff(attempt, jitter(), ctx.cfg.poll)).await?;
            }
        }
    }
    fatal("the manifest has more than 1000 pages")
}

fn parse_pages(pages: &[Vec<u8>]) -> Result<(Manifest, Vec<FileEntry>), JobError> {
    let mut files = Vec::new();
    let mut first = None;
    for p in pages {
        let m = parse_manifest(p).map_err(|e| JobError::Fatal(format!("the manifest: {}", e.0)))?;
        files.extend(m.files.iter().cloned());
        first.get_or_insert(m);
    }
    match first {
        Some(m) => Ok((m, files)),
        None => fatal("an empty manifest"),
    }
}

/// Write the manifest pages to the job's folder and store its files and
/// the next phase in one commit (in several if there are many files: the
/// job's own record last, so a crash in between re-stores them).
async fn store_manifest(
    ctx: &Arc<JobCtx>,
    job: &mut StoredJob,
    pages: Vec<Vec<u8>>,
) -> Result<(), JobError> {
    let (m, files) = parse_pages(&pages)?;
    let dir = job_dir(&ctx.cfg.output, &ctx.cfg.tenant, &m.transaction_time);
    let d = dir.clone();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        for (i, p) in pages.iter().enumerate() {
            let name = if i == 0 {
                "manifest.json".to_string()
            } else {
                format!("manifest.{}.json", i + 1)
            };
            write_small(&d, &name, p)?;
        }
        Ok(())
    })
    .await
    .map_err(|e| JobError::Fatal(format!("manifest task: {e}")))?
    .map_err(|e| {
        JobError::Fatal(format!(
            "cannot write the manifest in {}: {e}",
            dir.display()
        ))
    })?;
    let mut counters: std::collections::BTreeMap<(FileKind, String), u32> = Default::default();
    let mut ops = Vec::new();
    for (i, entry) in files.iter().enumerate() {
        let n = counters
            .entry((entry.kind, entry.resource_type.clone()))
            .and_modify(|c| *c += 1)
            .or_insert(1);
        let f = StoredFile {
            entry: entry.clone(),
            n: *n,
            done: false,
            lines: 0,
            bad: 0,
            bytes: 0,
        };
        ops.push(StateOp::put(
            NS,
            &key_file(&ctx.cfg.name, i as u32),
            &encode(&f),
        ));
        if ops.len() == 1000 {
            ctx.store(std::mem::take(&mut ops)).await?;
        }
    }
    job.phase = Phase::Downloading;
    job.transaction_time = Some(m.transaction_time.clone());
    job.requires_access_token = m.requires_access_token;
    job.files = files.len() as u32;
    ops.push(StateOp::put(NS, &key_job(&ctx.cfg.name), &encode(&*job)));
    ctx.store(ops).await?;
    log::info!(target: "gateway::export", "export {}: job {} complete on the server: {} file(s), transactionTime {}", ctx.cfg.name, job.job, files.len(), m.transaction_time);
    Ok(())
}

/// Re-read the manifest (a file link expired) and store the new URLs of
/// the files not yet finished.
async fn refresh_manifest(ctx: &Arc<JobCtx>, job: &StoredJob) -> Result<(), JobError> {
    log::info!(target: "gateway::export", "export {}: a file link expired; re-fetching the manifest", ctx.cfg.name);
    let pages = poll_until_complete(ctx, job).await?;
    let (_, files) = parse_pages(&pages)?;
    if files.len() as u32 != job.files {
        return fatal(format!(
            "the manifest re-fetched for an expired link lists {} files, the first {}",
            files.len(),
            job.files
        ));
    }
    let mut ops = Vec::new();
    for (i, e) in files.into_iter().enumerate() {
        let mut f = load_file(&ctx.journal, &ctx.cfg.name, i as u32).map_err(JobError::Fatal)?;
        if f.done || f.entry.url == e.url {
            continue;
        }
        if f.entry.kind != e.kind || f.entry.resource_type != e.resource_type {
            return fatal("the manifest re-fetched for an expired link lists other files");
        }
        f.entry.url = e.url;
        ops.push(StateOp::put(
            NS,
            &key_file(&ctx.cfg.name, i as u32),
            &encode(&f),
        ));
        if ops.len() == 1000 {
            ctx.store(std::mem::take(&mut ops)).await?;
        }
    }
    ctx.store(ops).await
}

enum FileError {
    /// 401/403/404/410 on the file link: re-fetch the manifest.
    Expired(String),
    /// Cut, stalled, 5xx: fetch the file again from its start.
    Retry(String),
    Fatal(String),
    Stop(Stop),
}

struct FileDone {
    lines: u64,
    bad: u64,
    bytes: u64,
}

async fn download_all(ctx: &Arc<JobCtx>, job: &mut StoredJob) -> Result<(), JobError> {
    let name = ctx.cfg.name.clone();
    let mut files = Vec::with_capacity(job.files as usize);
    for i in 0..job.files {
        files.push(load_file(&ctx.journal, &name, i).map_err(JobError::Fatal)?);
    }
    let tt = job.transaction_time.clone().unwrap_or_default();
    let dir = job_dir(&ctx.cfg.output, &ctx.cfg.tenant, &tt);
    let done = files.iter().filter(|f| f.done).count() as u32;
    let (lines, bad, bytes, outcomes) = totals(&files);
    ctx.update(|s| {
        s.files_total = job.files;
        s.files_done = done;
        s.resources = lines;
        s.bad_lines = bad;
        s.bytes = bytes;
        s.error_outcomes = outcomes;
        s.progress = None;
    });
    let mut queue: std::collections::VecDeque<u32> = (0..job.files)
        .filter(|&i| !files[i as usize].done)
        .collect();
    let mut attempts = vec![0u32; job.files as usize];
    let mut running = tokio::task::JoinSet::new();
    let mut stop: Option<JobError> = None;
    loop {
        while stop.is_none() && running.len() < ctx.cfg.parallel_downloads {
            let Some(i) = queue.pop_front() else { break };
            let c = ctx.clone();
            let f = files[i as usize].clone();
            let dest = dir.join(file_path(&f.entry, f.n));
            let token = job.requires_access_token;
            running.spawn(async move { (i, download_one(&c, &f, dest, token).await) });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (i, result) = match joined {
            Ok(r) => r,
            Err(e) => {
                stop.get_or_insert(JobError::Fatal(format!("a download task failed: {e}")));
                continue;
            }
        };
        let f = &mut files[i as usize];
        match result {
            Ok(d) => {
                if let Err(e) = record_done(ctx, &name, f, i, d).await {
                    stop.get_or_insert(e);
                }
            }
            Err(FileError::Stop(s)) => {
                stop.get_or_insert(JobError::Stop(s));
            }
            Err(FileError::Fatal(m)) => {
                stop.get_or_insert(JobError::Fatal(m));
            }
            Err(FileError::Expired(why)) | Err(FileError::Retry(why))
                if attempts[i as usize] + 1 >= MAX_FILE_ATTEMPTS =>
            {
                stop.get_or_insert(JobError::Fatal(format!(
                    "{}: still failing after {MAX_FILE_ATTEMPTS} attempts: {why}",
                    file_path(&f.entry, f.n).display()
                )));
            }
            Err(FileError::Expired(_)) => {
                attempts[i as usize] += 1;
                if stop.is_none() {
                    // Wait for the others, so the stored URLs change only between downloads.
                    while let Some(j) = running.join_next().await {
                        if let Ok((k, r)) = j {
                            handle_late(ctx, &name, &mut files, k, r, &mut queue, &mut stop).await;
                        }
                    }
                    if stop.is_none() {
                        match refresh_manifest(ctx, job).await {
                            Ok(()) => {
                                for (k, f) in files.iter_mut().enumerate() {
                                    if !f.done {
                                        *f = load_file(&ctx.journal, &name, k as u32)
                                            .map_err(JobError::Fatal)?;
                                    }
                                }
                                queue.push_front(i);
                            }
                            Err(e) => stop = Some(e),
                        }
                    }
                }
            }
            Err(FileError::Retry(why)) => {
                attempts[i as usize] += 1;
                log::warn!(target: "gateway::export", "export {name}: {}: {why}; fetching it again", file_path(&f.entry, f.n).display());
                ctx.update(|s| s.progress = Some(format!("retrying a file: {why}")));
                if let Err(s) = ctx
                    .sleep(backoff(attempts[i as usize], jitter(), ctx.cfg.poll))
                    .await
                {
                    stop.get_or_insert(JobError::Stop(s));
                }
                queue.push_back(i);
            }
        }
    }
    match stop {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A download that ended while the manifest was being refreshed: keep a
/// success, requeue anything else.
async fn handle_late(
    ctx: &Arc<JobCtx>,
    name: &str,
    files: &mut [StoredFile],
    k: u32,
    r: Result<FileDone, FileError>,
    queue: &mut std::collections::VecDeque<u32>,
    stop: &mut Option<JobError>,
) {
    match r {
        Ok(d) => {
            if let Err(e) = record_done(ctx, name, &mut files[k as usize], k, d).await {
                stop.get_or_insert(e);
            }
        }
        Err(FileError::Stop(s)) => {
            stop.get_or_insert(JobError::Stop(s));
        }
        Err(FileError::Fatal(m)) => {
            stop.get_or_insert(JobError::Fatal(m));
        }
        Err(_) => queue.push_back(k),
    }
}

/// File `i` is written: check its count, store it as done, count it in status.
async fn record_done(
    ctx: &Arc<JobCtx>,
    name: &str,
    f: &mut StoredFile,
    i: u32,
    d: FileDone,
) -> Result<(), JobError> {
    f.done = true;
    f.lines = d.lines;
    f.bad = d.bad;
    f.bytes = d.bytes;
    if let Some(c) = f.entry.count {
        if c != d.lines + d.bad {
            log::warn!(target: "gateway::export", "export {name}: {} has {} line(s), the manifest says {c}", file_path(&f.entry, f.n).display(), d.lines + d.bad);
            ctx.update(|s| s.count_mismatches += 1);
        }
    }
    ctx.store(vec![StateOp::put(NS, &key_file(name, i), &encode(&*f))])
        .await?;
    let kind = f.entry.kind;
    ctx.update(|s| {
        s.files_done += 1;
        match kind {
            FileKind::Output => s.resources += d.lines,
            FileKind::Error => s.error_outcomes += d.lines,
            FileKind::Deleted => {}
        }
        s.bad_lines += d.bad;
    });
    Ok(())
}

fn totals(files: &[StoredFile]) -> (u64, u64, u64, u64) {
    let mut t = (0, 0, 0, 0);
    for f in files.iter().filter(|f| f.done) {
        match f.entry.kind {
            FileKind::Output => t.0 += f.lines,
            FileKind::Error => t.3 += f.lines,
            // Tombstones are neither resources nor errors.
            FileKind::Deleted => {}
        }
        t.1 += f.bad;
        t.2 += f.bytes;
    }
    t
}

/// What happens to each line of a file.
struct LineSink<'a> {
    ctx: &'a JobCtx,
    entry: &'a FileEntry,
    file_label: String,
    part: PartFile,
    line_no: u64,
    lines: u64,
    bad: Vec<(u64, String, Vec<u8>)>,
    bad_count: u64,
}

impl LineSink<'_> {
    fn take(&mut self, p: Piece<'_>) -> std::io::Result<()> {
        self.line_no += 1;
        let line = match p {
            Piece::TooLong { len } => {
                self.refuse(format!("line of {len} bytes, over max_line_bytes"), &[]);
                return Ok(());
            }
            Piece::Line(l) => l,
        };
        let checked = match self.entry.kind {
            FileKind::Output => check_line(line, &self.entry.resource_type)
                .map_err(|e| e.0)
                .and_then(|_| tag_tenant(line, &self.ctx.cfg.tenant).map_err(|e| e.0))
                .map(Some),
            // OperationOutcomes and deletion Bundles need no id; they are kept as sent.
            FileKind::Error | FileKind::Deleted => {
                serde_json::from_slice::<serde::de::IgnoredAny>(line)
                    .map(|_| None)
                    .map_err(|e| format!("not JSON: {e}"))
            }
        };
        match checked {
            Ok(Some(tagged)) => {
                self.lines += 1;
                self.part.write_line(&tagged)
            }
            Ok(None) => {
                self.lines += 1;
                self.part.write_line(line)
            }
            Err(why) => {
                self.refuse(why, line);
                Ok(())
            }
        }
    }

    fn refuse(&mut self, why: String, line: &[u8]) {
        self.bad_count += 1;
        if self.bad.len() < 1000 {
            let keep = &line[..line.len().min(QUARANTINE_BYTES)];
            self.bad.push((self.line_no, why, keep.to_vec()));
        }
    }

    /// Quarantine the bad lines seen so far (file and line number in the reason).
    async fn flush_bad(&mut self) -> Result<(), FileError> {
        for (no, why, raw) in std::mem::take(&mut self.bad) {
            log::warn!(target: "gateway::export", "export {}: {} line {no} refused and quarantined", self.ctx.cfg.name, self.file_label);
            self.ctx
                .journal
                .quarantine(Quarantined {
                    source: self.ctx.cfg.name.clone(),
                    peer: format!(
                        "export {} tenant {}",
                        self.ctx.cfg.name, self.ctx.cfg.tenant
                    ),
                    received_at_ms: unix_ms(),
                    reason: format!("{} line {no}: {why}", self.file_label),
                    raw,
                })
                .await
                .map_err(|e| FileError::Retry(format!("cannot quarantine a bad line: {e}")))?;
        }
        Ok(())
    }
}

async fn download_one(
    ctx: &Arc<JobCtx>,
    f: &StoredFile,
    dest: std::path::PathBuf,
    token: bool,
) -> Result<FileDone, FileError> {
    ctx.wait_for_disk().await.map_err(FileError::Stop)?;
    let label = file_path(&f.entry, f.n).display().to_string();
    let mut resp = match ctx.http.download(&f.entry.url, token).await {
        Ok(r) => r,
        Err(Transport(e, true)) => return Err(FileError::Fatal(e)),
        Err(Transport(e, _)) => return Err(FileError::Retry(e)),
    };
    let status = resp.status().as_u16();
    match status {
        200 => {}
        401 | 403 | 404 | 410 => return Err(FileError::Expired(format!("HTTP {status}"))),
        429 | 500..=599 => return Err(FileError::Retry(format!("HTTP {status}"))),
        _ => {
            let body = resp.bytes().await.unwrap_or_default();
            return Err(FileError::Fatal(format!(
                "{label}: {}",
                server_text(status, &body)
            )));
        }
    }
    let gzip_header = resp
        .headers()
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("gzip"));
    let part = PartFile::create(dest.clone())
        .map_err(|e| FileError::Fatal(format!("cannot write {}: {e}", dest.display())))?;
    let mut sink = LineSink {
        ctx,
        entry: &f.entry,
        file_label: label.clone(),
        part,
        line_no: 0,
        lines: 0,
        bad: Vec::new(),
        bad_count: 0,
    };
    let mut splitter = LineSplitter::new(ctx.cfg.max_line_bytes);
    let mut gz: Option<MultiGzDecoder<Vec<u8>>> = None;
    let mut sniffed = false;
    let mut bytes = 0u64;
    let result: Result<(), FileError> = async {
        loop {
            if let Some(s) = ctx.stopped() {
                return Err(FileError::Stop(s));
            }
            let chunk = match tokio::time::timeout(ctx.http.stall, resp.chunk()).await {
                Err(_) => {
                    return Err(FileError::Retry(format!(
                        "no data for {} s",
                        ctx.http.stall.as_secs()
                    )))
                }
                Ok(Err(e)) => {
                    return Err(FileError::Retry(format!(
                        "the download was cut: {}",
                        crate::deliver::http_sender::describe_reqwest(&e)
                    )))
                }
                Ok(Ok(None)) => break,
                Ok(Ok(Some(c))) => c,
            };
            bytes += chunk.len() as u64;
            if !sniffed {
                sniffed = true;
                // A JSON line never starts with the gzip magic, so a server
                // that gzips without Content-Encoding is read right too.
                if gzip_header || chunk.starts_with(&[0x1f, 0x8b]) {
                    gz = Some(MultiGzDecoder::new(Vec::with_capacity(256 * 1024)));
                }
            }
            let io = |e: std::io::Error| {
                FileError::Fatal(format!("cannot write {}: {e}", dest.display()))
            };
            match gz.as_mut() {
                Some(d) => {
                    use std::io::Write;
                    d.write_all(&chunk)
                        .map_err(|e| FileError::Retry(format!("gzip: {e}")))?;
                    let out = std::mem::take(d.get_mut());
                    splitter.push(&out, &mut |p| sink.take(p)).map_err(io)?;
                    let mut out = out;
                    out.clear();
                    *d.get_mut() = out;
                }
                None => splitter.push(&chunk, &mut |p| sink.take(p)).map_err(io)?,
            }
            if !sink.bad.is_empty() {
                sink.flush_bad().await?;
            }
        }
        if let Some(mut d) = gz.take() {
            d.try_finish()
                .map_err(|e| FileError::Retry(format!("the gzip stream is incomplete: {e}")))?;
            let out = std::mem::take(d.get_mut());
            splitter
                .push(&out, &mut |p| sink.take(p))
                .map_err(|e| FileError::Fatal(e.to_string()))?;
        }
        splitter
            .finish(&mut |p| sink.take(p))
            .map_err(|e| FileError::Fatal(e.to_string()))?;
        sink.flush_bad().await?;
        Ok(())
    }
    .await;
    let LineSink {
        part,
        lines,
        bad_count,
        ..
    } = sink;
    if let Err(e) = result {
        part.discard();
        return Err(e);
    }
    tokio::task::spawn_blocking(move || part.commit())
        .await
        .map_err(|e| FileError::Fatal(format!("commit task: {e}")))?
        .map_err(|e| FileError::Fatal(format!("cannot write {}: {e}", dest.display())))?;
    ctx.update(|s| s.bytes += bytes);
    Ok(FileDone {
        lines,
        bad: bad_count,
        bytes,
    })
}

/// The `done` marker, then the history (the next `since`) with the phase.
async fn finish(ctx: &Arc<JobCtx>, job: &mut StoredJob) -> Result<(), JobError> {
    let name = &ctx.cfg.name;
    let mut files = Vec::new();
    for i in 0..job.files {
        files.push(load_file(&ctx.journal, name, i).map_err(JobError::Fatal)?);
    }
    let (resources, bad, bytes, outcomes) = totals(&files);
    let tt = job.transaction_time.clone().unwrap_or_default();
    let dir = job_dir(&ctx.cfg.output, &ctx.cfg.tenant, &tt);
    let marker = serde_json::json!({
        "export": name, "tenant": ctx.cfg.tenant, "job": job.job, "transactionTime": tt,
        "since": job.since, "files": job.files, "resources": resources, "bad_lines": bad,
        "error_outcomes": outcomes, "bytes": bytes,
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
    let mut h = load_history(&ctx.journal, name).map_err(JobError::Fatal)?;
    h.succeeded += 1;
    h.last_success_ms = Some(unix_ms());
    h.last_transaction_time = Some(tt.clone());
    h.last_error = None;
    h.last_resources = resources;
    h.last_bad_lines = bad;
    h.last_error_outcomes = outcomes;
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
    if outcomes > 0 {
        log::warn!(target: "gateway::export", "export {name} (tenant {}): the server reported {outcomes} error OperationOutcome(s); see errors/ in {}", ctx.cfg.tenant, dir.display());
    }
    log::info!(target: "gateway::export", "export {name} (tenant {}): job {} done: {resources} resource(s), {bad} bad line(s)", ctx.cfg.tenant, job.job);
    ctx.update(|s| {
        s.history = h;
        s.state = "done".into();
    });
    Ok(())
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
        if ops.len() == 1000 {
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
