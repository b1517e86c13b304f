//! The `to = [...]` sink: every resource of an output file, and every entry
//! of a deletion Bundle, becomes a journal message on the outboxes of the
//! export's fhir destinations (`transform = "fhir-resource"`: `PUT
//! [base]/Type/id`, tombstones `DELETE`), kept only until delivered.
//!
//! Exactly once in the journal: the messages of a run of lines and the
//! file's committed-line count (`<name>/committed/<i>`) are ONE
//! `append_batch`, so after `kill -9` the re-fetched file skips exactly the
//! lines whose messages exist. Batches are bounded (messages and bytes), so
//! a 5 GB file costs the memory of one batch. Before each batch the job
//! waits while the data disk is above `warn_at_percent`.

use journal::{Enqueue, Journal, MessageMeta, NewMessage, Policy, Retention, StateOp};

use super::job::{backoff_sleep, JobCtx, Stop, NS};
use super::namespace::namespaced_reference;
use crate::config::NamespaceIds;
use crate::deliver::payload::{KIND_FHIR_DELETE, KIND_FHIR_RESOURCE, TRANSFORM_FHIR_RESOURCE};
use crate::ops::clock::unix_ms;

/// A batch is committed at this many messages...
const BATCH_MESSAGES: usize = 512;
/// ... or this many bytes (well within `journal::BATCH_MAX_BYTES`).
const BATCH_BYTES: usize = 8 * 1024 * 1024;
/// After a network chunk, what waits is committed once it is this many
/// messages, or has waited this long: a slow server's lines do not sit
/// uncommitted, and a fast one's share one commit per chunk or more.
const COMMIT_AT_MESSAGES: usize = 64;
const COMMIT_AFTER: std::time::Duration = std::time::Duration::from_millis(200);

pub fn key_committed(name: &str, i: u32) -> Vec<u8> {
    format!("{name}/committed/{i:08}").into_bytes()
}

/// Lines of file `i` whose messages are journaled (0: none yet).
pub fn load_committed(j: &Journal, name: &str, i: u32) -> Result<u64, String> {
    match j
        .get_state(NS, &key_committed(name, i))
        .map_err(|e| e.to_string())?
    {
        None => Ok(0),
        Some(b) => serde_json::from_slice(&b)
            .map_err(|e| format!("stored export state: committed lines of file {i}: {e}")),
    }
}

/// Why a line gave no message (it is quarantined like a bad line).
pub type LineRefused = String;

/// The journal side of one file's download.
pub struct JournalSink {
    name: String,
    tenant: String,
    peer: String,
    to: Vec<String>,
    namespace: bool,
    job: u64,
    file: u32,
    /// Lines already journaled by an earlier attempt: skipped.
    committed: u64,
    /// The last line seen (journaled, skipped or refused).
    upto: u64,
    /// Lines waiting for the next commit, each with its messages.
    lines: Vec<(u64, Vec<NewMessage>)>,
    bytes: usize,
    messages: usize,
    last_commit: std::time::Instant,
    /// Messages stored by this attempt.
    pub journaled: u64,
}

impl JournalSink {
    pub fn new(ctx: &JobCtx, job: u64, file: u32) -> Result<JournalSink, String> {
        let committed = load_committed(&ctx.journal, &ctx.cfg.name, file)?;
        Ok(JournalSink {
            name: ctx.cfg.name.clone(),
            tenant: ctx.cfg.tenant.clone(),
            peer: ctx.cfg.base_url.clone(),
            to: ctx.cfg.to.clone(),
            namespace: ctx.cfg.namespace_ids != NamespaceIds::None,
            job,
            file,
            committed,
            upto: committed,
            lines: Vec::new(),
            bytes: 0,
            messages: 0,
            last_commit: std::time::Instant::now(),
            journaled: 0,
        })
    }

    /// Whether line `no` is still to be journaled.
    pub fn wants(&self, no: u64) -> bool {
        no > self.committed
    }

    /// Line `no` gave nothing to journal (refused, or skipped).
    pub fn nothing(&mut self, no: u64) {
        self.upto = self.upto.max(no);
    }

    fn message(
        &self,
        no: u64,
        k: usize,
        kind: &str,
        ty: &str,
        path: String,
        raw: Vec<u8>,
    ) -> NewMessage {
        NewMessage {
            source: self.name.clone(),
            peer: self.peer.clone(),
            received_at_ms: unix_ms(),
            meta: MessageMeta {
                kind: kind.to_string(),
                sender: self.tenant.clone(),
                message_type: ty.to_string(),
                dedup: vec![
                    format!("job {}", self.job),
                    format!("file {}", self.file),
                    format!("line {no}"),
                    format!("entry {k}"),
                ],
                // `Type/id`: what the outbox writes (ids only, no PHI).
                control_id: path.clone(),
            },
            raw,
            ack: Vec::new(),
            destinations: self
                .to
                .iter()
                .map(|d| Enqueue {
                    destination: d.clone(),
                    transform: TRANSFORM_FHIR_RESOURCE.to_string(),
                })
                .collect(),
            // The lane: one resource's writes stay in order, others go in parallel.
            patient_lane: lane(&path),
        }
    }

    fn push(&mut self, no: u64, msgs: Vec<NewMessage>) {
        self.upto = self.upto.max(no);
        self.messages += msgs.len();
        self.bytes += msgs.iter().map(|m| m.raw.len() + 256).sum::<usize>();
        self.lines.push((no, msgs));
    }

    /// Line `no`: a checked, tagged (and namespaced, if configured)
    /// resource of type `ty` with id `id` (as in `line`).
    pub fn resource(&mut self, no: u64, ty: &str, id: &str, line: &[u8]) {
        let m = self.message(
            no,
            0,
            KIND_FHIR_RESOURCE,
            ty,
            format!("{ty}/{id}"),
            line.to_vec(),
        );
        self.push(no, vec![m]);
    }

    /// Line `no` of a deleted file: a Bundle whose entries' `request.url`
    /// (`Type/id`) are the resources to DELETE.
    pub fn deleted(&mut self, no: u64, line: &[u8]) -> Result<(), LineRefused> {
        let v: serde_json::Value =
            serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
        let mut msgs = Vec::new();
        for (k, e) in v["entry"].as_array().into_iter().flatten().enumerate() {
            let url = e["request"]["url"]
                .as_str()
                .or_else(|| e["fullUrl"].as_str())
                .ok_or_else(|| format!("deleted entry {k} has no request.url"))?;
            // A server may send an absolute URL: the Type/id is its end.
            let mut tail = url.rsplitn(3, '/');
            let (id, ty) = match (tail.next(), tail.next()) {
                (Some(id), Some(ty)) => (id, ty),
                _ => return Err(format!("deleted entry {k}: {url:?} is not Type/id")),
            };
            let rel = format!("{ty}/{id}");
            let path = if self.namespace {
                namespaced_reference(&self.tenant, &rel)
                    .ok_or_else(|| format!("deleted entry {k}: {url:?} is not Type/id"))?
            } else {
                rel
            };
            msgs.push(self.message(no, k, KIND_FHIR_DELETE, ty, path.clone(), path.into_bytes()));
        }
        self.push(no, msgs);
        Ok(())
    }

    /// Whether what waits is due for a commit (checked after each network chunk).
    pub fn due(&self) -> bool {
        self.messages >= COMMIT_AT_MESSAGES
            || self.bytes >= BATCH_BYTES
            || (!self.lines.is_empty() && self.last_commit.elapsed() >= COMMIT_AFTER)
    }

    /// Commit everything waiting, in bounded batches, each with the count
    /// of lines it completes.
    pub async fn flush(&mut self, ctx: &JobCtx) -> Result<(), Stop> {
        if self.lines.is_empty() && self.upto == self.committed {
            return Ok(());
        }
        let policy = Policy {
            retention: Retention::UntilDelivered { keep_dedup: false },
            ..Policy::default()
        };
        let mut batch = Vec::new();
        let mut bytes = 0;
        let mut through = self.committed;
        for (no, msgs) in std::mem::take(&mut self.lines) {
            let n = msgs.len();
            for (k, m) in msgs.into_iter().enumerate() {
                bytes += m.raw.len() + 256;
                batch.push((m, policy));
                if k + 1 == n {
                    through = no;
                }
                if batch.len() >= BATCH_MESSAGES || bytes >= BATCH_BYTES {
                    self.commit(ctx, std::mem::take(&mut batch), through)
                        .await?;
                    bytes = 0;
                }
            }
        }
        let upto = self.upto;
        self.commit(ctx, batch, upto).await?;
        self.messages = 0;
        self.bytes = 0;
        Ok(())
    }

    async fn commit(
        &mut self,
        ctx: &JobCtx,
        batch: Vec<(NewMessage, Policy)>,
        through: u64,
    ) -> Result<(), Stop> {
        ctx.wait_for_disk().await?;
        let state = vec![StateOp::put(
            NS,
            &key_committed(&self.name, self.file),
            through.to_string().as_bytes(),
        )];
        let n = batch.len() as u64;
        let mut attempt = 0;
        loop {
            // A batch is all or nothing: on failure the same batch is tried again.
            match ctx.journal.append_batch(batch.clone(), state.clone()).await {
                Ok(_) => break,
                Err(e) => {
                    attempt += 1;
                    log::warn!(target: "gateway::export", "export {}: cannot journal {n} resource(s) ({e}); retrying", self.name);
                    ctx.update(|s| s.progress = Some(format!("cannot journal resources: {e}")));
                    backoff_sleep(ctx, attempt).await?;
                }
            }
        }
        self.committed = through;
        self.last_commit = std::time::Instant::now();
        self.journaled += n;
        ctx.update(|s| s.journaled += n);
        Ok(())
    }
}

/// The outbox lane of `Type/id` (never 0, the lane of messages without one).
fn lane(path: &str) -> u64 {
    let d = ring::digest::digest(&ring::digest::SHA256, path.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.as_ref()[..8]);
    u64::from_be_bytes(b).max(1)
}
