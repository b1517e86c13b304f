//! `[[pickup]]`: a folder source. eCW drops files into `path`; a file whose
//! name matches `pattern` is taken once its size and mtime have not changed
//! for `settle`, handed to the accept path (`format = "x12"`: the whole file
//! as one X12 message; `"hl7"`: each MSH message of it), and only once its
//! bytes are durable in the journal is it archived (`<path>/.done/<date>/`)
//! or deleted. inotify wakes the scan early; the periodic rescan (`rescan`)
//! is the safety net and, on a CIFS mount where inotify never fires, the
//! mechanism.
//!
//! Crash safety: a file leaves the folder only after `accept` answered
//! Stored or Duplicate (durable). A crash between the journal commit and the
//! rename leaves the file in the folder; the next scan reads it again and
//! the journal's de-dup answers Duplicate (X12: the same interchange key
//! and bytes; HL7: each message's MSH-3/4/10 and bytes), so it is archived
//! without a second message. A file dropped again later with the same
//! bytes is a Duplicate too, and audited as such.
//!
//! Refused files (unreadable, empty, not X12 / not HL7, X12 envelope
//! errors, a reused ISA13) are moved to `<path>/.rejected/` with
//! `<name>.reason.txt` beside them, audited and counted (`gateway status`);
//! an X12 file's TA1/999 go to `ack_dir`, written atomically. A journal
//! that cannot take a file leaves it where it is, to be tried again at the
//! next rescan.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::hl7_file::split_messages;
use crate::accept::{Accept, Disposition, Inbound, Kind, Origin, Role};
use crate::config::{AfterPickup, PickupConfig, PickupFormat};
use crate::ops::clock::unix_ms;
use crate::ops::watchdog::Heartbeat;
use journal::durable_fs;

/// What a pickup reports for `gateway status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PickupState {
    pub name: String,
    /// Files journaled (new) and then archived or deleted.
    pub taken: u64,
    /// Files that were already journaled (dropped again, or read again after a crash).
    pub duplicates: u64,
    /// Files moved to `.rejected/`.
    pub rejected: u64,
    /// Files in `.rejected/` now (the `pickup_rejected` alert fires while
    /// there are any; removing them clears it).
    #[serde(default)]
    pub rejected_waiting: u64,
    /// Matching files in the folder not yet taken (settling, or waiting for the journal).
    pub in_progress: u64,
    pub last_scan_ms: Option<u64>,
    pub last_error: Option<String>,
}

pub struct Pickup {
    pub cfg: PickupConfig,
    pub accept: Accept,
    pub heartbeat: Heartbeat,
    pub state: Arc<Mutex<PickupState>>,
}

/// A file seen in the folder: its size and mtime, and since when they are so.
struct Seen {
    len: u64,
    mtime: Option<SystemTime>,
    since: Instant,
}

/// What became of one file.
enum Taken {
    /// Journaled and gone from the folder (`duplicate`: it was journaled before).
    Done { duplicate: bool },
    /// Moved to `.rejected/`.
    Rejected,
    /// Left in the folder: try again later.
    Later(String),
}

/// How often the inotify queue is looked at between scans.
const INOTIFY_TICK: Duration = Duration::from_millis(100);

impl Pickup {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let name = self.cfg.name.clone();
        self.update(|s| s.name = name.clone());
        if let Err(e) = durable_fs::create_dir_all(&self.cfg.path) {
            log::error!(target: "gateway::pickup", "pickup {name}: cannot create {}: {e}; retrying at every rescan", self.cfg.path.display());
        }
        let inotify = if self.cfg.inotify {
            watch_folder(&self.cfg.path)
        } else {
            None
        };
        if inotify.is_none() {
            log::info!(target: "gateway::pickup", "pickup {name}: no inotify on {} (e.g. a CIFS mount): rescanning every {} ms", self.cfg.path.display(), self.cfg.rescan.as_millis());
        }
        let mut seen: HashMap<OsString, Seen> = HashMap::new();
        loop {
            self.heartbeat.beat();
            let wait = self.scan(&mut seen, &mut shutdown).await;
            // Until the next scan is due: look at inotify (non-blocking)
            // every INOTIFY_TICK, and scan at once when it saw something.
            let due = Instant::now() + wait;
            loop {
                self.heartbeat.beat();
                if *shutdown.borrow() {
                    return;
                }
                let now = Instant::now();
                if now >= due {
                    break;
                }
                if let Some(fd) = &inotify {
                    if fd.read_events().is_ok_and(|events| !events.is_empty()) {
                        break;
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep((due - now).min(INOTIFY_TICK)) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }

    fn update(&self, f: impl FnOnce(&mut PickupState)) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut s);
    }

    /// One pass over the folder: take every settled file. Returns how long
    /// to wait before the next pass.
    async fn scan(
        &self,
        seen: &mut HashMap<OsString, Seen>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Duration {
        let cfg = &self.cfg;
        let entries = match std::fs::read_dir(&cfg.path) {
            Ok(e) => e,
            Err(e) => {
                let msg = format!("cannot list {}: {e}", cfg.path.display());
                self.update(|s| s.last_error = Some(msg));
                return cfg.rescan;
            }
        };
        let mut next = cfg.rescan;
        let mut present = Vec::new();
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str() else {
                continue;
            };
            if name.starts_with('.') || !cfg.patterns.iter().any(|g| g.matches(name)) {
                continue;
            }
            let Ok(md) = entry.metadata() else { continue };
            if !md.is_file() {
                continue;
            }
            present.push(file_name.clone());
            let (len, mtime) = (md.len(), md.modified().ok());
            let now = Instant::now();
            let s = seen.entry(file_name.clone()).or_insert(Seen {
                len,
                mtime,
                since: now,
            });
            if s.len != len || s.mtime != mtime {
                *s = Seen {
                    len,
                    mtime,
                    since: now,
                };
            }
            let settled_for = now.duration_since(s.since);
            if settled_for < cfg.settle {
                next = next.min(cfg.settle - settled_for);
            }
        }
        seen.retain(|k, _| present.contains(k));
        let mut ready: Vec<OsString> = seen
            .iter()
            .filter(|(_, s)| s.since.elapsed() >= cfg.settle)
            .map(|(k, _)| k.clone())
            .collect();
        ready.sort();
        for file_name in ready {
            if *shutdown.borrow() {
                break;
            }
            self.heartbeat.beat();
            let name = file_name.to_string_lossy().to_string();
            match self.take(&name).await {
                Taken::Done { duplicate } => {
                    seen.remove(&file_name);
                    self.update(|s| {
                        s.last_error = None;
                        if duplicate {
                            s.duplicates += 1;
                        } else {
                            s.taken += 1;
                        }
                    });
                }
                Taken::Rejected => {
                    seen.remove(&file_name);
                    self.update(|s| s.rejected += 1);
                }
                Taken::Later(why) => {
                    log::warn!(target: "gateway::pickup", "pickup {}: file {name} left in the folder, retrying at the next rescan: {why}", cfg.name);
                    self.update(|s| s.last_error = Some(why));
                }
            }
        }
        let in_progress = seen.len() as u64;
        let rejected_waiting = std::fs::read_dir(cfg.path.join(".rejected"))
            .map(|d| {
                d.flatten()
                    .filter(|e| !e.file_name().to_string_lossy().ends_with(".reason.txt"))
                    .count() as u64
            })
            .unwrap_or(0);
        self.update(|s| {
            s.in_progress = in_progress;
            s.rejected_waiting = rejected_waiting;
            s.last_scan_ms = Some(unix_ms());
        });
        next
    }

    /// Read, accept and archive/delete/reject one settled file.
    async fn take(&self, name: &str) -> Taken {
        let path = self.cfg.path.join(name);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Taken::Later("it disappeared before it was read".into())
            }
            Err(e) => return self.reject(name, &format!("cannot read the file: {e}")),
        };
        if bytes.is_empty() {
            return self.reject(name, "the file is empty");
        }
        let origin = Origin {
            role: Role::Pickup,
            name: &self.cfg.name,
            peer: format!("file {name}"),
        };
        let outcome = match self.cfg.format {
            PickupFormat::X12 => self.accept_x12(&origin, name, bytes).await,
            PickupFormat::Hl7 => self.accept_hl7(&origin, bytes).await,
        };
        match outcome {
            Ok(duplicate) => {
                if duplicate {
                    let _ = self.accept.journal.audit(
                        "pickup_duplicate",
                        &format!(
                            "pickup {}: file {name} is already journaled: not sent again",
                            self.cfg.name
                        ),
                    );
                }
                match self.finish(name) {
                    Ok(()) => Taken::Done { duplicate },
                    Err(e) => Taken::Later(format!(
                        "journaled, but cannot {} it: {e}",
                        match self.cfg.after {
                            AfterPickup::Archive => "archive",
                            AfterPickup::Delete => "delete",
                        }
                    )),
                }
            }
            Err(Refusal::Rejected(reason)) => self.reject(name, &reason),
            Err(Refusal::Later(why)) => Taken::Later(why),
        }
    }

    /// Ok(duplicate) once durable.
    async fn accept_x12(
        &self,
        origin: &Origin<'_>,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<bool, Refusal> {
        let answer = self
            .accept
            .accept(Inbound {
                origin,
                kind: Kind::X12 {
                    usage: self.cfg.usage,
                },
                bytes,
                wants_reply: false,
            })
            .await;
        if let Some(dir) = &self.cfg.ack_dir {
            let source = format!("pickup {}", self.cfg.name);
            super::write_acks(&source, dir, name, &answer.acks);
        }
        match answer.disposition {
            Disposition::Stored { id } => {
                log::info!(target: "gateway::pickup", source = &*self.cfg.name, control_id = &*answer.control_id, outcome = "stored"; "pickup {}: file {name} journaled as message {id} ({} ISA13 {})", self.cfg.name, answer.message_type, answer.control_id);
                Ok(false)
            }
            Disposition::Duplicate { id } => {
                log::info!(target: "gateway::pickup", source = &*self.cfg.name, control_id = &*answer.control_id, outcome = "duplicate"; "pickup {}: file {name} is message {id} again (ISA13 {})", self.cfg.name, answer.control_id);
                Ok(true)
            }
            Disposition::Refused { reason } => Err(Refusal::Rejected(reason)),
            Disposition::NotStored { error } => Err(Refusal::Later(format!("journal: {error}"))),
        }
    }

    /// Each message of an HL7 file; Ok(every one was a duplicate) once all
    /// are durable. A message the parser refuses rejects the file (the good
    /// ones stay journaled: dropping the fixed file again adds only the
    /// fixed one).
    async fn accept_hl7(&self, origin: &Origin<'_>, bytes: Vec<u8>) -> Result<bool, Refusal> {
        let messages = split_messages(&bytes).map_err(Refusal::Rejected)?;
        let total = messages.len();
        let mut all_duplicates = true;
        let mut refused = Vec::new();
        for (i, m) in messages.into_iter().enumerate() {
            let answer = self
                .accept
                .accept(Inbound {
                    origin,
                    kind: Kind::Hl7v2,
                    bytes: m,
                    wants_reply: false,
                })
                .await;
            match answer.disposition {
                Disposition::Stored { .. } => all_duplicates = false,
                Disposition::Duplicate { .. } => {}
                Disposition::Refused { reason } => {
                    refused.push(format!("message {} of {total}: {reason}", i + 1))
                }
                Disposition::NotStored { error } => {
                    return Err(Refusal::Later(format!("journal: {error}")))
                }
            }
        }
        if !refused.is_empty() {
            return Err(Refusal::Rejected(format!(
                "{} of {total} message(s) refused (the others are journaled): {}",
                refused.len(),
                refused.join("; ")
            )));
        }
        Ok(all_duplicates)
    }

    /// Archive or delete a journaled file, durably.
    fn finish(&self, name: &str) -> std::io::Result<()> {
        let from = self.cfg.path.join(name);
        match self.cfg.after {
            AfterPickup::Delete => {
                std::fs::remove_file(&from)?;
                durable_fs::sync_dir(&self.cfg.path)
            }
            AfterPickup::Archive => {
                let dir = self.cfg.path.join(".done").join(today());
                move_into(&from, &dir, name)
            }
        }
    }

    /// Move a file to `.rejected/` with its reason; audited.
    fn reject(&self, name: &str, reason: &str) -> Taken {
        let dir = self.cfg.path.join(".rejected");
        log::warn!(target: "gateway::pickup", source = &*self.cfg.name, outcome = "rejected"; "pickup {}: file {name} rejected, moved to {}", self.cfg.name, dir.display());
        let _ = self.accept.journal.audit(
            "pickup_rejected",
            &format!(
                "pickup {}: file {name} moved to .rejected/: {reason}",
                self.cfg.name
            ),
        );
        // The reason first: a crash before the rename leaves the file to be
        // rejected again, never a rejected file without its reason.
        let moved = durable_fs::create_dir_all(&dir)
            .map(|()| free_name(&dir, name))
            .and_then(|target| {
                let reason_name = format!("{target}.reason.txt");
                durable_fs::write_atomically(&dir, &reason_name, format!("{reason}\n").as_bytes())?;
                move_as(&self.cfg.path.join(name), &dir, &target)
            });
        match moved {
            Ok(()) => Taken::Rejected,
            Err(e) => Taken::Later(format!(
                "rejected ({reason}), but cannot move it to .rejected/: {e}"
            )),
        }
    }
}

enum Refusal {
    Rejected(String),
    Later(String),
}

/// Moves `from` into `dir` (created durably), keeping its name unless a
/// file of that name is already there.
fn move_into(from: &Path, dir: &Path, name: &str) -> std::io::Result<()> {
    durable_fs::create_dir_all(dir)?;
    move_as(from, dir, &free_name(dir, name))
}

/// `name`, or `name.1`, `name.2`, ... if taken in `dir`.
fn free_name(dir: &Path, name: &str) -> String {
    let mut target = name.to_string();
    let mut n = 0;
    while dir.join(&target).exists() {
        n += 1;
        target = format!("{name}.{n}");
    }
    target
}

/// Renames `from` to `dir/target`; both directories are fsync'd.
fn move_as(from: &Path, dir: &Path, target: &str) -> std::io::Result<()> {
    std::fs::rename(from, dir.join(target))?;
    durable_fs::sync_dir(dir)?;
    if let Some(parent) = from.parent() {
        durable_fs::sync_dir(parent)?;
    }
    Ok(())
}

/// `YYYY-MM-DD` (UTC) for the archive folder.
fn today() -> String {
    let d = x12::Stamp::from_unix((unix_ms() / 1000) as i64).date8();
    format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..])
}

/// An inotify watch (non-blocking) on the folder for files finished or
/// moved in, or `None` where the filesystem gives none.
fn watch_folder(path: &Path) -> Option<Inotify> {
    let fd = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
    fd.add_watch(
        path,
        AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_ATTRIB,
    )
    .ok()?;
    Some(fd)
}
