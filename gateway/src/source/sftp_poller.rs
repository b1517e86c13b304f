//! The `sftp` poller: every `interval`, list the remote folder (the
//! clearinghouse's outbound: 999, TA1, 277CA, 835), download each file whose
//! name matches a pattern, journal it through the accept path
//! (`Accept::accept_file`: the bytes unchanged, routed by the file's type),
//! and only once the journal has it, delete it remotely or move it into
//! `move_to`.
//!
//! Exactly once: a file's identity in the journal is (poller, name, size,
//! mtime); a crash between the append and the remote delete re-lists the
//! file next time, the journal answers "duplicate", and only then is it
//! removed. A file that changes while it is downloaded (the server still
//! writing it) is left for the next round. Names starting with '.' and
//! anything but regular files are never taken; a file over
//! `max_file_bytes` stays on the server, counted and logged.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::accept::{Accept, Disposition, FetchedFile, Origin, Role};
use crate::config::{AfterFetch, SftpPollerConfig};
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
        loop {
            self.heartbeat.beat();
            self.update(|s| {
                s.polls += 1;
                s.last_poll_ms = Some(unix_ms());
            });
            let result = match sessions.get().await {
                Ok(c) => {
                    let r = self.poll_once(&c, &sessions).await;
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
        self.update(|s| s.left_on_server = too_large);
        wanted.sort_by(|a, b| a.file.name.cmp(&b.file.name));
        let mut stored = 0;
        let mut not_removed = None;
        for l in wanted {
            self.heartbeat.beat();
            let journaled = self.journal(c, t, &l).await?;
            if journaled == Some(true) {
                stored += 1;
            }
            // A file that cannot leave the server does not hold up the
            // others: it is journaled, and the next listing finds it a
            // duplicate and tries again.
            if journaled.is_some() {
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

    /// Download and journal one file: `Some(true)` if new, `Some(false)`
    /// if already journaled, `None` if it is to be taken next round.
    async fn journal(
        &self,
        c: &SftpConnection,
        t: &SshTarget,
        l: &Listed,
    ) -> Result<Option<bool>, SshError> {
        let bytes = match c.sftp.read(l.path.as_str()).await {
            Ok(b) => b,
            // Gone since the listing (another client took it).
            Err(e) if is_not_found(&e) => return Ok(None),
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
            return Ok(None);
        }
        let origin = Origin {
            role: Role::Poller,
            name: &self.cfg.name,
            peer: t.label(),
        };
        let answer = self.accept.accept_file(&origin, &l.file, bytes).await;
        match answer.disposition {
            Disposition::Stored { id } => {
                self.update(|s| s.stored += 1);
                log::debug!(target: "gateway::poller", "poller {}: stored message {id} {} file '{}'", self.cfg.name, answer.message_type, l.file.name);
                Ok(Some(true))
            }
            Disposition::Duplicate { id } => {
                self.update(|s| s.duplicates += 1);
                log::debug!(target: "gateway::poller", "poller {}: {} is already message {id}: removing it remotely", self.cfg.name, l.file.name);
                Ok(Some(false))
            }
            // Never for files (no read step, no key-reuse policy); keep it.
            Disposition::Refused { reason } => Err(SshError::Sftp(format!(
                "{}: not journaled: {reason}",
                l.file.name
            ))),
            // Not durable: leave the file on the server for the next round.
            Disposition::NotStored { error } => {
                Err(SshError::Sftp(format!("{}: journal: {error}", l.file.name)))
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
