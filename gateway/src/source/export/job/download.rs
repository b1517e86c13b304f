//! Downloading a job's files: in parallel, each streamed body → gzip →
//! lines ([`BodyLines`]) → check → tag → part file (fsync, rename), bad
//! lines to the quarantine, per-file progress in the journal's state store;
//! with `to = [...]` each resource also to the journal ([`JournalSink`]).

use super::*;
use crate::config::NamespaceIds;
use crate::source::export::body::{BodyError, BodyLines, LineTaker, GZIP_MAGIC};
use crate::source::export::error_summary::count_issues;
use crate::source::export::journal_sink::JournalSink;
use crate::source::export::namespace::{namespace_ids, type_and_id};
use crate::source::export::ndjson::check;
use crate::source::export::tag::Tagger;

pub(super) enum FileError {
    /// 401/403/404/410 on the file link: re-fetch the manifest.
    Expired(String),
    /// Cut, stalled, 5xx: fetch the file again from its start.
    Retry(String),
    Fatal(String),
    Stop(Stop),
}

pub(super) struct FileDone {
    lines: u64,
    bad: u64,
    bytes: u64,
    issues: IssueCounts,
}

pub(super) async fn download_all(ctx: &Arc<JobCtx>, job: &mut StoredJob) -> Result<(), JobError> {
    let name = ctx.cfg.name.clone();
    let mut files = Vec::with_capacity(job.files as usize);
    for i in 0..job.files {
        files.push(load_file(&ctx.journal, &name, i).map_err(JobError::Fatal)?);
    }
    let tt = job.transaction_time.clone().unwrap_or_default();
    let dir = ctx
        .cfg
        .output
        .as_ref()
        .map(|o| job_dir(o, &ctx.cfg.tenant, &tt));
    let done = files.iter().filter(|f| f.done).count() as u32;
    let (lines, bad, bytes, outcomes) = totals(&files);
    ctx.update(|s| {
        s.files_total = job.files;
        s.files_done = done;
        s.resources = lines;
        s.bad_lines = bad;
        s.bytes = bytes;
        s.error_outcomes = outcomes;
        s.error_issues = issue_totals(&files);
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
            let dest = dir.as_ref().map(|d| d.join(file_path(&f.entry, f.n)));
            let token = job.requires_access_token;
            let id = job.job;
            running.spawn(async move { (i, download_one(&c, (id, i), &f, dest, token).await) });
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
pub(super) async fn handle_late(
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
pub(super) async fn record_done(
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
    f.issues = d.issues.clone();
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
        merge(&mut s.error_issues, &d.issues);
    });
    Ok(())
}

pub(super) fn totals(files: &[StoredFile]) -> (u64, u64, u64, u64) {
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
pub(super) struct LineSink<'a> {
    ctx: &'a JobCtx,
    entry: &'a FileEntry,
    file_label: String,
    /// The folder sink's file (`None`: no folder sink, `to` only).
    part: Option<PartFile>,
    /// `to = [...]`: the lines' messages, committed with the line count.
    journal: Option<JournalSink>,
    line_no: u64,
    lines: u64,
    bad: Vec<(u64, String, Vec<u8>)>,
    bad_count: u64,
    /// An error file's issues by `severity/code`.
    issues: IssueCounts,
    tagger: Tagger,
    /// The current output line, tagged (reused from line to line).
    scratch: Vec<u8>,
}

impl LineTaker for LineSink<'_> {
    fn take(&mut self, p: Piece<'_>) -> std::io::Result<()> {
        self.line_no += 1;
        if let Some(j) = self.journal.as_mut() {
            // Seen: a later commit covers it, whatever becomes of it.
            j.nothing(self.line_no);
        }
        let line = match p {
            Piece::TooLong { len } => {
                self.refuse(format!("line of {len} bytes, over max_line_bytes"), &[]);
                return Ok(());
            }
            Piece::Line(l) => l,
        };
        let checked = match self.entry.kind {
            FileKind::Output => match self.resource(line)? {
                Ok(()) => {
                    self.lines += 1;
                    return Ok(());
                }
                Err(why) => Err(why),
            },
            FileKind::Deleted => {
                let journaled = match self.journal.as_mut() {
                    Some(j) if j.wants(self.line_no) => j.deleted(self.line_no, line),
                    _ => serde_json::from_slice::<serde::de::IgnoredAny>(line)
                        .map(|_| ())
                        .map_err(|e| format!("not JSON: {e}")),
                };
                // Tombstones are kept in the folder as sent.
                journaled
            }
            // OperationOutcomes need no id; they are counted and kept as sent.
            FileKind::Error => count_issues(line, &mut self.issues).map(|_| ()),
        };
        match checked {
            Ok(()) => {
                self.lines += 1;
                match self.part.as_mut() {
                    Some(p) => p.write_line(line),
                    None => Ok(()),
                }
            }
            Err(why) => {
                self.refuse(why, line);
                Ok(())
            }
        }
    }
}

impl LineSink<'_> {
    /// An output line: checked in one pass, tagged, written to the part
    /// file; the inner `Err` refuses the line. The folder-only common case
    /// writes the line's pieces around the tag without copying it (no
    /// allocation per line either way); with `to = [...]` or namespacing
    /// the tagged copy is built in `scratch` (reused), namespaced where
    /// configured and handed to the journal sink.
    fn resource(&mut self, line: &[u8]) -> std::io::Result<Result<(), String>> {
        let cfg = &self.ctx.cfg;
        let top = match check(line, &self.entry.resource_type) {
            Ok(t) => t,
            Err(e) => return Ok(Err(e.0)),
        };
        let to_journal = self.journal.as_ref().is_some_and(|j| j.wants(self.line_no));
        let ns_to = to_journal && cfg.namespace_ids != NamespaceIds::None;
        let ns_folder = cfg.namespace_ids == NamespaceIds::All;
        if !(to_journal || ns_folder) {
            let splice = match self.tagger.splice(line, &top) {
                Ok(s) => s,
                Err(e) => return Ok(Err(e.0)),
            };
            return match self.part.as_mut() {
                Some(p) => p.write_spliced(line, splice.at, splice.insert).map(Ok),
                None => Ok(Ok(())),
            };
        }
        self.scratch.clear();
        if let Err(e) = self.tagger.tag_into(line, &top, &mut self.scratch) {
            return Ok(Err(e.0));
        }
        let tagged = &self.scratch;
        let namespaced = if ns_to || ns_folder {
            match namespace_ids(tagged, &cfg.tenant) {
                Ok(n) => Some(n),
                Err(e) => return Ok(Err(e.0)),
            }
        } else {
            None
        };
        if let Some(j) = self.journal.as_mut().filter(|_| to_journal) {
            let sent = match (&namespaced, ns_to) {
                (Some(n), true) => n,
                _ => tagged,
            };
            let Some((ty, id)) = type_and_id(sent) else {
                return Ok(Err("the resource has no resourceType and id strings".into()));
            };
            j.resource(self.line_no, &ty, &id, sent);
        }
        let folder = match namespaced.filter(|_| ns_folder) {
            Some(n) => n,
            None => std::mem::take(&mut self.scratch),
        };
        let written = match self.part.as_mut() {
            Some(p) => p.write_line(&folder),
            None => Ok(()),
        };
        if folder.capacity() >= self.scratch.capacity() {
            self.scratch = folder;
        }
        written.map(Ok)
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

pub(super) async fn download_one(
    ctx: &Arc<JobCtx>,
    (job, i): (u64, u32),
    f: &StoredFile,
    dest: Option<std::path::PathBuf>,
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
    // The first bytes decide whether the body is gzip (see GZIP_MAGIC).
    let first = next_chunk(ctx, &mut resp).await?;
    let gzip = gzip_header || first.as_ref().is_some_and(|c| c.starts_with(&GZIP_MAGIC));
    let journal = if ctx.cfg.to.is_empty() || f.entry.kind == FileKind::Error {
        None
    } else {
        Some(JournalSink::new(ctx, job, i).map_err(FileError::Fatal)?)
    };
    let part = match &dest {
        Some(d) => Some(
            PartFile::create(d.clone())
                .map_err(|e| FileError::Fatal(format!("cannot write {}: {e}", d.display())))?,
        ),
        None => None,
    };
    let dest_label = dest
        .as_ref()
        .map_or_else(|| label.clone(), |d| d.display().to_string());
    let sink = LineSink {
        ctx,
        entry: &f.entry,
        file_label: label.clone(),
        part,
        journal,
        line_no: 0,
        lines: 0,
        bad: Vec::new(),
        bad_count: 0,
        issues: IssueCounts::new(),
        tagger: Tagger::new(&ctx.cfg.tenant),
        scratch: Vec::with_capacity(4096),
    };
    let mut body = BodyLines::new(sink, ctx.cfg.max_line_bytes, gzip);
    let body_error = |e: BodyError| match e {
        BodyError::Gzip(e) => {
            FileError::Retry(format!("the gzip stream is bad or incomplete: {e}"))
        }
        BodyError::Take(e) => FileError::Fatal(format!("cannot write {dest_label}: {e}")),
    };
    let mut bytes = 0u64;
    let result: Result<(), FileError> = async {
        let mut chunk = first;
        while let Some(c) = chunk {
            bytes += c.len() as u64;
            body.push(&c).map_err(body_error)?;
            let sink = body.taker();
            if !sink.bad.is_empty() {
                sink.flush_bad().await?;
            }
            if let Some(j) = sink.journal.as_mut().filter(|j| j.due()) {
                j.flush(ctx).await.map_err(FileError::Stop)?;
            }
            chunk = next_chunk(ctx, &mut resp).await?;
        }
        body.finish().map_err(body_error)?;
        let sink = body.taker();
        sink.flush_bad().await?;
        if let Some(j) = sink.journal.as_mut() {
            j.flush(ctx).await.map_err(FileError::Stop)?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        if let Some(p) = body.taker().part.take() {
            p.discard();
        }
        return Err(e);
    }
    let LineSink {
        part,
        lines,
        bad_count,
        issues,
        ..
    } = body.into_taker().map_err(body_error)?;
    if let Some(part) = part {
        tokio::task::spawn_blocking(move || part.commit())
            .await
            .map_err(|e| FileError::Fatal(format!("commit task: {e}")))?
            .map_err(|e| FileError::Fatal(format!("cannot write {dest_label}: {e}")))?;
    }
    ctx.update(|s| s.bytes += bytes);
    Ok(FileDone {
        lines,
        bad: bad_count,
        bytes,
        issues,
    })
}

/// The next piece of a file's body (`None`: its end), unless the job was
/// stopped; a read that yields nothing for the stall timeout, or a cut
/// connection, is retried (the file is fetched again from its start).
async fn next_chunk(
    ctx: &JobCtx,
    resp: &mut reqwest::Response,
) -> Result<Option<bytes::Bytes>, FileError> {
    if let Some(s) = ctx.stopped() {
        return Err(FileError::Stop(s));
    }
    match tokio::time::timeout(ctx.http.stall, resp.chunk()).await {
        Err(_) => Err(FileError::Retry(format!(
            "no data for {} s",
            ctx.http.stall.as_secs()
        ))),
        Ok(Err(e)) => Err(FileError::Retry(format!(
            "the download was cut: {}",
            crate::deliver::http_sender::describe_reqwest(&e)
        ))),
        Ok(Ok(c)) => Ok(c),
    }
}
