//! Starting a job: the kick-off (GET, or POST after a 405), polling the
//! status URL until the manifest, and fetching and storing the manifest
//! pages (re-fetched when a file link expires).

use super::*;

/// A random draw in [0, 1) for jitter.
pub(super) fn jitter() -> f64 {
    let mut b = [0u8; 4];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    u32::from_le_bytes(b) as f64 / (u32::MAX as f64 + 1.0)
}

/// The server's words for an error answer (bounded, single line).
pub(super) fn server_text(status: u16, body: &[u8]) -> String {
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

pub(super) async fn kickoff(ctx: &Arc<JobCtx>, full: bool) -> Result<StoredJob, JobError> {
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
                transport_retry(ctx, "kick-off", &e, attempt).await?;
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
                    // Every message the job journals for `to` comes after this.
                    first_message_id: Some(ctx.journal.next_message_id()),
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
pub(super) async fn poll_until_complete(
    ctx: &Arc<JobCtx>,
    job: &StoredJob,
) -> Result<Vec<Vec<u8>>, JobError> {
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
                transport_retry(ctx, "status poll", &e, attempt).await?;
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
pub(super) async fn manifest_pages(
    ctx: &Arc<JobCtx>,
    first: Vec<u8>,
) -> Result<Vec<Vec<u8>>, JobError> {
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

pub(super) fn parse_pages(pages: &[Vec<u8>]) -> Result<(Manifest, Vec<FileEntry>), JobError> {
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
pub(super) async fn store_manifest(
    ctx: &Arc<JobCtx>,
    job: &mut StoredJob,
    pages: Vec<Vec<u8>>,
) -> Result<(), JobError> {
    let (m, files) = parse_pages(&pages)?;
    // Without a folder sink (`to` only) the pages live in the state store alone.
    if let Some(output) = &ctx.cfg.output {
        let dir = job_dir(output, &ctx.cfg.tenant, &m.transaction_time);
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
    }
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
            issues: Default::default(),
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
pub(super) async fn refresh_manifest(ctx: &Arc<JobCtx>, job: &StoredJob) -> Result<(), JobError> {
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

/// A transient transport failure of `what` (the kick-off, a status poll):
/// logged on the first attempt, shown in status, then a backoff.
async fn transport_retry(ctx: &JobCtx, what: &str, e: &str, attempt: u32) -> Result<(), Stop> {
    if attempt == 1 {
        log::warn!(target: "gateway::export", "export {}: {what} failed: {}; retrying with backoff", ctx.cfg.name, crate::deliver::outage_log::error_class(e));
    }
    ctx.update(|s| s.progress = Some(format!("{what} failed: {e}; retrying")));
    ctx.sleep(backoff(attempt, jitter(), ctx.cfg.poll)).await
}
