//! The `sftp` poller: every `interval`, list the remote folder (the
//! clearinghouse's outbound: 999, TA1, 277CA, 835), download each file whose
//! name matches a pattern, journal it through the accept path, and only
//! once the journal has it, delete it remotely or move it into `move_to`.
//!
//! `format = "x12"` (the default): each file goes through accept's X12 kind
//! exactly as a `[[pickup]]` X12 file does (envelope check, ISA15 against
//! `usage`, the first interchange's sender/receiver/ISA13 as the de-dup key
//! with reuse refused). A refused file (envelope errors, a reused ISA13) is
//! quarantined with its reason, audited and counted, and left on the server:
//! the quarantine keeps a bounded copy only, so the server's is the one
//! that is never lost; it is not refused again while the daemon runs. Its
//! TA1/999 (what the gateway would answer) are written to `ack_dir` when
//! one is set, the local folder where eCW reads responses, so the billing
//! team sees the refusal there; they are not sent to the clearinghouse.
//! `format = "file"`: journaled as it is (`Accept::accept_file`, routed by
//! the file's extension), its identity (poller, name, size, mtime).
//!
//! Exactly once: a crash between the append and the remote delete re-lists
//! the file next time, the journal answers "duplicate" (X12: same key, same
//! bytes), and only then is it removed. A file that changes while it is
//! downloaded (the server still writing it) is left for the next round.
//! Names starting with '.' and anything but regular files are never taken;
//! a file over `max_file_bytes` stays on the server, counted and logged.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::accept::{Accept, Answer, Disposition, FetchedFile, Inbound, Kind, Origin, Role};
use crate::config::{AfterFetch, FetchFormat, SftpPollerConfig};
use crate::net::ssh_client::{
    is_not_found, remote_path, sftp_error, SessionCache, SftpConnection, SshError, SshTarget,
};
use crate::ops::clock::unix_ms;
use crate::ops::watchdog::Heartbeat;
use crate::source::poller::PollerState;

pub struct SftpPoller {
    pub cfg: SftpPollerConfig,
    pub accept: Accept,
    pub heartbeat: Heartbeat,
    pub state: Arc<Mutex<PollerState>>,
}

/// One remote file seen in a listing.
struct Listed {
    file: FetchedFile,
    path: String,
}

/// A refused file's identity (name, size, mtime): refused once per run.
type RefusedKey = (String, u64, u32);

/// What became of one listed file.
#[derive(Debug, PartialEq, Eq)]
enum Fetched {
    /// Journaled now: remove it remotely.
    New,
    /// Journaled before: remove it remotely.
    Duplicate,
    /// Refused (quarantined): it stays on the server.
    Refused,
    /// Not taken this round (gone, or changing).
    Later,
}

impl SftpPoller {
    fn update(&self, f: impl FnOnce(&mut PollerState)) {
        match self.state.lock() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let target = SshTarget::new(
            &self.cfg.endpoint,
            self.cfg.connect_timeout,
            self.cfg.timeout,
        );
        let sessions = SessionCache::new(target);
        self.update(|s| {
            s.name = self.cfg.name.clone();
            s.kind = "sftp".into();
        });
        let mut failing = false;
        let mut refused = HashSet::new();
        loop {
            self.heartbeat.beat();
            self.update(|s| {
                s.polls += 1;
                s.last_poll_ms = Some(unix_ms());
            });
            let result = match sessions.get().await {
                Ok(c) => {
                    let r = self.poll_once(&c, &sessions, &mut refused).await;
                    if r.is_err() {
                        sessions.discard(&c).await;
                    }
                    r
                }
                Err(e) => Err(e),
            };
            let (name, interval) = (&self.cfg.name, self.cfg.interval);
            let result = result.map_err(|e| e.to_string());
            self.update(|s| {
                super::record_round(s, &mut failing, name, interval, "file(s)", result)
            });
            if !super::sleep_beating(&self.heartbeat, self.cfg.interval, &mut shutdown).await {
                return;
            }
        }
    }

    /// One round: list, then take each matching file in name order.
    /// Returns how many files were journaled as new.
    async fn poll_once(
        &self,
        c: &SftpConnection,
        sessions: &SessionCache,
        refused: &mut HashSet<RefusedKey>,
    ) -> Result<u64, SshError> {
        let t = sessions.target();
        let dir = &self.cfg.endpoint.dir;
        let listing = c
            .sftp
            .read_dir(list_path(dir))
            .await
            .map_err(|e| sftp_error(t, "cannot list", &list_path(dir), e))?;
        let mut wanted = Vec::new();
        let mut too_large = 0;
        for entry in listing {
            let name = entry.file_name();
            if name.starts_with('.') || !self.cfg.patterns.iter().any(|g| g.matches(&name)) {
                continue;
            }
            let meta = entry.metadata();
            if !meta.file_type().is_file() {
                continue;
            }
            let size = meta.size.unwrap_or(0);
            if size > self.cfg.max_file_bytes {
                log::warn!(target: "gateway::poller", "poller {}: {name} is {size} bytes, over max_file_bytes = {}: left on the server", self.cfg.name, self.cfg.max_file_bytes);
                too_large += 1;
                continue;
            }
            wanted.push(Listed {
                path: remote_path(dir, &name),
                file: FetchedFile {
                    name,
                    size,
                    mtime: meta.mtime.unwrap_or(0),
                },
            });
        }
        let key = |l: &Listed| (l.file.name.clone(), l.file.size, l.file.mtime);
        let listed: HashSet<RefusedKey> = wanted.iter().map(key).collect();
        refused.retain(|k| listed.contains(k));
        wanted.retain(|l| !refused.contains(&key(l)));
        self.update(|s| s.left_on_server = too_large + refused.len() as u64);
        wanted.sort_by(|a, b| a.file.name.cmp(&b.file.name));
        let mut stored = 0;
        let mut not_removed = None;
        for l in wanted {
            self.heartbeat.beat();
            let fetched = self.journal(c, t, &l).await?;
            match fetched {
                Fetched::New => stored += 1,
                Fetched::Refused => {
                    refused.insert(key(&l));
                    self.update(|s| s.left_on_server += 1);
                }
                Fetched::Duplicate | Fetched::Later => {}
            }
            // A file that cannot leave the server does not hold up the
            // others: it is journaled, and the next listing finds it a
            // duplicate and tries again.
            if matches!(fetched, Fetched::New | Fetched::Duplicate) {
                if let Err(e) = self.remove(c, t, &l).await {
                    not_removed.get_or_insert(e);
                }
            }
        }
        match not_removed {
            Some(e) => Err(e),
            None => Ok(stored),
        }
    }

    /// Download and journal one file.
    async fn journal(
        &self,
        c: &SftpConnection,
        t: &SshTarget,
        l: &Listed,
    ) -> Result<Fetched, SshError> {
        let bytes = match c.sftp.read(l.path.as_str()).await {
            Ok(b) => b,
            // Gone since the listing (another client took it).
            Err(e) if is_not_found(&e) => return Ok(Fetched::Later),
            Err(e) => return Err(sftp_error(t, "cannot download", &l.path, e)),
        };
        let now = c
            .sftp
            .metadata(l.path.as_str())
            .await
            .map_err(|e| sftp_error(t, "cannot stat", &l.path, e))?;
        if bytes.len() as u64 != l.file.size
            || now.size != Some(l.file.size)
            || now.mtime.unwrap_or(0) != l.file.mtime
        {
            log::info!(target: "gateway::poller", "poller {}: {} changed while it was downloaded: taken next round", self.cfg.name, l.file.name);
            return Ok(Fetched::Later);
        }
        let origin = Origin {
            role: Role::Poller,
            name: &self.cfg.name,
            peer: t.label(),
        };
        let answer = self.accept(&origin, l, bytes).await;
        let name = &l.file.name;
        match answer.disposition {
            Disposition::Stored { id } => {
                self.update(|s| s.stored += 1);
                log::debug!(target: "gateway::poller", "poller {}: stored message {id} {} file '{name}'", self.cfg.name, answer.message_type);
                Ok(Fetched::New)
            }
            Disposition::Duplicate { id } => {
                self.update(|s| s.duplicates += 1);
                log::debug!(target: "gateway::poller", "poller {}: {name} is already message {id}: removing it remotely", self.cfg.name);
                Ok(Fetched::Duplicate)
            }
            // X12 envelope errors or a reused ISA13 (accept quarantined it
            // with the reason); `file` has no read step and never gets here.
            Disposition::Refused { reason } => {
                let acks = match &self.cfg.ack_dir {
                    Some(dir) => {
                        let source = format!("poller {}", self.cfg.name);
                        let n = crate::source::write_acks(&source, dir, name, &answer.acks);
                        format!("; {n} TA1/999 written to {}", dir.display())
                    }
                    None => String::new(),
                };
                let refusal = format!(
                    "file {name} refused, quarantined and left on the server{acks}: {reason}"
                );
                log::warn!(target: "gateway::poller", source = &*self.cfg.name, control_id = &*answer.control_id, outcome = "rejected"; "poller {}: file {name} refused (quarantined), left on the server{acks}", self.cfg.name);
                let _ = self.accept.journal.audit(
                    "poller_refused",
                    &format!("poller {}: {refusal}", self.cfg.name),
                );
                self.update(|s| {
                    s.unmappable += 1;
                    s.last_refused = Some(refusal);
                });
                Ok(Fetched::Refused)
            }
            // Not durable: leave the file on the server for the next round.
            Disposition::NotStored { error } => {
                Err(SshError::Sftp(format!("{name}: journal: {error}")))
            }
        }
    }

    /// Through the accept path as the poller's `format` says.
    async fn accept(&self, origin: &Origin<'_>, l: &Listed, bytes: Vec<u8>) -> Answer {
        match self.cfg.format {
            FetchFormat::File => self.accept.accept_file(origin, &l.file, bytes).await,
            FetchFormat::X12 { usage } => {
                self.accept
                    .accept(Inbound {
                        origin,
                        kind: Kind::X12 { usage },
                        bytes,
                        wants_reply: false,
                    })
                    .await
            }
        }
    }

    /// Remove or move a file the journal has (durably: only now may it
    /// leave the server).
    async fn remove(&self, c: &SftpConnection, t: &SshTarget, l: &Listed) -> Result<(), SshError> {
        match &self.cfg.after {
            AfterFetch::Delete => match c.sftp.remove_file(l.path.as_str()).await {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(sftp_error(t, "journaled, but cannot remove", &l.path, e)),
            },
            AfterFetch::MoveTo(to) => {
                let dest = remote_path(to, &l.file.name);
                if let Err(e) = c.sftp.rename(l.path.as_str(), dest.as_str()).await {
                    return Err(sftp_error(t, "journaled, but cannot move it to", &dest, e));
                }
            }
        }
        Ok(())
    }
}

/// The directory to list ("" is the login directory).
fn list_path(dir: &str) -> String {
    if dir.is_empty() {
        ".".into()
    } else {
        dir.to_string()
    }
}
