//! What the writer owns on disk while the journal is open: sled, the
//! bookkeeping of what must be synced under it, and the WAL. The
//! write-ahead protocol of one group ([`Store::log`]) and checkpoints are
//! here; the crate doc says why each step is needed.

use std::path::Path;

use super::staging::Staged;
use crate::chunk::Layout;
use crate::durability::{CommitSync, Durability};
use crate::error::{map_io, map_sled};
use crate::record as rec;
use crate::wal::{self, OpBatch, Wal};
use crate::JournalError;

pub(crate) struct Store {
    pub db: sled::Db,
    pub dur: Durability,
    pub wal: Wal,
    /// Whole values (format 1) or large ones chunked (format 2, `chunk.rs`).
    pub layout: Layout,
}

impl Store {
    /// Make the group durable and visible. Write-ahead: append ONE WAL
    /// record (the group's ops plus "sled holds up to seq" under
    /// [`wal::APPLIED_KEY`], last) and `fdatasync` it; only then apply the
    /// ops to sled (plain inserts/removes, no flush), `fsync` the blob files
    /// sled created doing so (and their directories), and, if sled wrote
    /// its log meanwhile, run sled's full durability protocol. Only then may
    /// any request of the group be answered. Takes the group's ops.
    ///
    /// `room_for_sled` is asked right before the ops are applied (the WAL
    /// append and its sync take time, in which another process may have
    /// filled the disk): an `Err` fails the group after its WAL record is
    /// durable and before sled sees it, as any I/O failure there does.
    pub(crate) fn log(
        &mut self,
        dir: &Path,
        staged: &mut Staged,
        room_for_sled: impl FnOnce() -> Result<(), JournalError>,
    ) -> Result<CommitSync, JournalError> {
        if staged.is_empty() {
            // Nothing was written (e.g. an idempotent mark_delivered).
            return Ok(CommitSync::default());
        }
        let seq = self.wal.next_seq;
        let mut b = OpBatch::default();
        b.insert(wal::APPLIED_KEY, rec::seal_u64(seq));
        staged.stage(b);
        let record = wal::encode_record(seq, staged.effective());
        #[cfg(test)]
        crash::before_wal(&mut self.wal, &record);
        self.wal.append(&record).map_err(|e| map_io(dir, e))?;
        drop(record);
        room_for_sled()?;
        let mut sync = CommitSync {
            synced: vec![self.wal.path().to_path_buf()],
            ..Default::default()
        };
        // The group is durable. Apply it to sled in order (APPLIED_KEY
        // last); sled recovers a prefix of these, and replay from the WAL
        // completes it. sled's `apply_batch` is not used: every call writes
        // and `sync_file_range`s sled's log (its `pin_log`), a disk round
        // trip per request.
        for op in staged.drain() {
            #[cfg(test)]
            crash::applying(&self.db);
            self.layout
                .apply(&self.db, op)
                .map_err(|e| map_sled(format!("apply WAL record {seq} to sled"), e))?;
        }
        let s = self.dur.sync_new_files().map_err(|e| map_io(dir, e))?;
        sync.db_written = s.db_written;
        sync.full_rescan = s.full_rescan;
        sync.synced.extend(s.synced);
        if sync.db_written {
            // sled wrote its log during this group (an I/O buffer filled:
            // every few hundred small messages). sled treats a log write as
            // stable once `sync_file_range` returns and may then free and
            // reuse segments, and it writes buffers concurrently; if the
            // disk kept some of those writes and not others, sled's
            // recovery finds pages missing ("cannot find pid", seen on
            // lossyfs when this was left to the next checkpoint). So every
            // group in which sled wrote its log ends with sled's full
            // durability protocol (flush waits for every buffer, then
            // fdatasync): what sled wrote is a durable prefix before any
            // reply, as before the WAL.
            let s = checkpoint_sled(dir, &self.db, &mut self.dur)?;
            sync.db_synced = true;
            sync.full_rescan |= s.full_rescan;
            sync.synced.extend(s.synced);
        }
        Ok(sync)
    }

    /// Checkpoint: sled's full durability protocol (flush, new files,
    /// `fdatasync(db)`, directories), then delete the WAL and start a new
    /// segment.
    pub(crate) fn checkpoint(&mut self, dir: &Path) -> Result<(), JournalError> {
        checkpoint_sled(dir, &self.db, &mut self.dur)?;
        self.wal
            .truncate_after_checkpoint()
            .map_err(|e| map_io(dir, e))
    }

    /// Whether the WAL is due for a checkpoint: `bytes` long, or its oldest
    /// record `age` old.
    pub(crate) fn checkpoint_due(&self, bytes: u64, age: std::time::Duration) -> bool {
        self.wal.len() >= bytes || self.wal.age().is_some_and(|a| a >= age)
    }
}

/// sled's full durability protocol: `flush()` (write + `sync_file_range`
/// of the log), then [`Durability::after_flush`] (new files, directories,
/// `fdatasync(db)`). After it, sled alone holds everything applied so far.
pub(crate) fn checkpoint_sled(
    dir: &Path,
    db: &sled::Db,
    dur: &mut Durability,
) -> Result<CommitSync, JournalError> {
    db.flush()
        .map_err(|e| map_sled(format!("flush journal {}", dir.display()), e))?;
    dur.after_flush().map_err(|e| map_io(dir, e))
}

/// TEST HOOK (unit tests only): end the process in the middle of the next
/// commit, as a crash would, to show that a group is all or nothing. The
/// process exits without dropping sled (so it writes nothing more).
#[cfg(test)]
pub(crate) mod crash {
    use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

    use crate::wal::Wal;

    /// What the next commit does: [`OFF`], [`TORN_WAL`] or [`MID_APPLY`].
    pub(crate) static MODE: AtomicU8 = AtomicU8::new(OFF);
    /// With [`MID_APPLY`]: how many ops of the group are applied first
    /// (counted down as they are).
    pub(crate) static APPLIED_OPS: AtomicUsize = AtomicUsize::new(0);
    pub(crate) const OFF: u8 = 0;
    /// Write half of the WAL record (no fdatasync) and exit: the commit
    /// was never acknowledged.
    pub(crate) const TORN_WAL: u8 = 1;
    /// After the WAL record is durable, apply `APPLIED_OPS` of its ops to
    /// sled, make sled durable (so it holds a prefix of the group), exit.
    pub(crate) const MID_APPLY: u8 = 2;
    /// The exit status that says the hook fired.
    pub(crate) const EXIT_CODE: i32 = 86;

    pub(crate) fn before_wal(wal: &mut Wal, record: &[u8]) {
        if MODE.load(Ordering::SeqCst) == TORN_WAL {
            wal.write_torn(&record[..record.len() / 2]);
            std::process::exit(EXIT_CODE);
        }
    }

    /// Before each op is applied to sled.
    pub(crate) fn applying(db: &sled::Db) {
        if MODE.load(Ordering::SeqCst) == MID_APPLY
            && APPLIED_OPS.fetch_sub(1, Ordering::SeqCst) == 0
        {
            if let Err(e) = db.flush() {
                eprintln!("crash hook: sled flush failed: {e}");
            }
            std::process::exit(EXIT_CODE);
        }
    }
}
