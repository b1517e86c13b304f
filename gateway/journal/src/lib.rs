//! The durable journal: every accepted message, its de-dup index, the
//! per-destination outboxes, quarantined input and the audit trail, in one
//! sled 0.34 tree behind our own write-ahead log (WAL), made durable before
//! the sender is acknowledged.
//!
//! # Design constraints
//!
//! - **An ACK means durable.** [`Journal::append`] returns `Ok` only after
//!   the message, its de-dup entry and its outbox entries survive a power
//!   cut (DESIGN.md contract 1). The caller sends `AA` only then. The same
//!   holds for [`Journal::append_with`], [`Journal::append_batch`] (all of
//!   a batch's messages and state changes, or none) and the state store
//!   ([`Journal::put_state`], [`Journal::delete_state`]): every mutation is
//!   a request to the one writer and one WAL group commit.
//! - **Nothing silently dropped.** Every write is atomic per request; every
//!   state change (control id reuse, quarantine, delivery, release, open)
//!   leaves an audit event (the state store, a source's own bookkeeping,
//!   is not audited); every failure is a [`JournalError`], never a panic.
//! - **Bounded.** Readers stream (`pending` pages, `audit_events` pages);
//!   quarantine has entry and byte bounds; the disk has a quota and
//!   watermarks; memory does not grow with the backlog.
//! - **No PHI in logs.** Log lines carry ids, source, control id,
//!   destination, counts and error kinds only. PHI lives in record values.
//!
//! # On-disk layout
//!
//! `<dir>/` is a sled 0.34.7 database: `conf`, `db` (the log), `blobs/<lsn>`
//! (sled writes any log item over `segment_size / 4` = 128 KiB as its own
//! file: a large message, *or a leaf node* of up to 16 medium values when
//! sled consolidates it; only in a format-1 journal: in format 2,
//! `chunk.rs`, every value over 6 KiB is a head plus 6 KiB chunks, so no
//! log item reaches that size), `snap.<lsn>` (page-table snapshots, written
//! `.generating` + `sync_all` + rename). Next to them, `<dir>/wal/
//! <n:020>.wal` are our WAL segments (`wal.rs`: format, torn-tail and
//! corruption rules). Everything in sled lives in ONE tree (the default
//! one):
//!
//! | key | value |
//! | --- | --- |
//! | `m` id:u64be | message: `meta_len:u32le, postcard(received_at, source, peer, MessageMeta, ack), raw` (record version 2; version 3 for a message kept only until delivered: the same head plus `keep_dedup`; version 1, with the HL7 header summary in place of `MessageMeta`, is still read) |
//! | `d` lp(source) lp(part)… (the message's de-dup parts; HL7: MSH-3 raw, MSH-4 raw, MSH-10) | id of the latest message with that key |
//! | `o` lp(destination) id:u64be | outbox entry (pending on that outbox): received_at_ms, patient lane, transform, `release` (version 2; both version 1 forms still read) |
//! | `s` lp(namespace) key | a source's state value (at most 64 KiB) |
//! | `t` id:u64be | what a message released with `keep_dedup` left: received_at, released_at, its `d` key, raw length + SHA-256, ACK |
//! | `q` seq:u64be | quarantined input (raw truncated to 64 KiB, original length kept) |
//! | `a` seq:u64be | audit event: time, kind, detail |
//! | `x` seq:u64be | dead letter: destination, message id, its outbox entry, attempts, times, last error |
//! | `X` lp(destination) id:u64be | seq of the message's dead letter on that destination |
//! | `c` name | counter (`counter.rs` names each one): `messages`, `duplicates`, `control_id_reuses`, `key_reuses_refused`, `released`, `quarantined`, `q_entries`, `q_bytes`, `pruned`, `pruned_through_id`, `pruned_through_audit`, `pending/<dest>`, `delivered/<dest>`, `dead/<dest>`, `dead_total/<dest>` |
//! | `w` | seq of the last WAL record applied to sled (u64) |
//! | `F` | the journal format (u64): 2 = large values chunked (`chunk.rs`); absent = 1, every value whole |
//! | `~` lp(key) index:u32be | format 2: chunk `index` of the value at `key` (a message, quarantine entry, state value or dead letter over 6 KiB), whose own value is then a head (record version 0xC4: total length, number of chunks) |
//! | `i` … | the trace index (`trace_index.rs`): control id → ids, patient tag → ids, authorities seen, purge markers; written with the message, removed with it |
//!
//! Record versions: message records are version 2 (the journal-owned
//! [`MessageMeta`]: kind, sender, control id, message type, de-dup parts,
//! filled by the gateway's accept path for any message format), or version
//! 3 for a message appended with [`Retention::UntilDelivered`] (so a
//! `Default` message's record is byte for byte what it was before
//! policies); outbox entries are version 2 (tagged: an entry whose postcard
//! happened to be 8 bytes was read as the old bare timestamp); every other
//! record is version 1. Version 1 message records (which held the HL7
//! header summary) are still read and upgraded in memory, both version 1
//! outbox forms are still read, and the de-dup key of an HL7 message is
//! byte for byte what version 1 wrote, so a journal written before opens,
//! delivers and de-duplicates as it did. A binary older than record
//! version 2 cannot read version 2 messages; one older than version 3
//! cannot read version 3 messages (it reads version 2 outbox entries:
//! postcard ignores the trailing flag) and ignores `s` and `t` keys.
//!
//! `lp(x)` is `len:u32be ‖ x`, so no field can forge a boundary. Every
//! value is a sealed record (`record.rs`): `version:u8 ‖ crc32:u32le ‖
//! payload`, the CRC (crc32fast) covering version and payload. Reads verify
//! it; a mismatch is [`JournalError::Corrupt`] naming the key (e.g. the
//! message id), never a panic (sled issue #1533 reports corruption after an
//! abrupt stop; this catches it at our layer too). The raw message is
//! stored after the postcard meta, so it is copied once into the record on
//! write and sliced (not decoded) on read.
//!
//! # What is durable when, and why
//!
//! sled's `flush()` calls only `sync_file_range` on the log (sled #1452):
//! it persists neither the file size (metadata) nor the device cache. In
//! measurements with a simulated power cut, insert+flush lost acknowledged
//! writes in 35/35 runs. sled never syncs `conf`, blob files, or any
//! directory. And every `apply_batch` writes and `sync_file_range`s sled's
//! log (its `pin_log`): a disk round trip per call. So commits do not go
//! through sled's durability at all; they go through the WAL:
//!
//! - **A commit (group of requests)** (`writer/`): the writer computes
//!   each request's ops (absolute sets/removes: message, de-dup entry,
//!   outbox entries, counters, audit events) against sled plus the ops the
//!   group already staged, and stages them, all or nothing per request
//!   (`staging.rs`; the request kinds in `append.rs` and `lifecycle.rs`).
//!   Then (`store.rs`, `Store::log`) ONE WAL record (the group's ops + `w`
//!   = its seq, last) is written to the current segment and `fdatasync`'d.
//!   The record holds only the latest op on each key, in staging order
//!   (`Staged::effective`): ops are absolute, so an overridden one changes
//!   nothing, and a counter every request of the group touched (pending,
//!   delivered, messages) is logged and applied once per group, not once
//!   per request.
//!   Only then are the ops applied to sled with plain inserts/removes (no
//!   flush). sled creates blob files while doing so; the writer then
//!   `fsync`s every file closed after write in `<dir>` and `<dir>/blobs/`
//!   since the last commit (an inotify queue; all files if it overflowed
//!   or is unavailable) and `blobs/` and/or `<dir>` if entries were
//!   created/renamed/removed — if sled's pointer to a blob reaches disk and
//!   the blob does not, sled panics at open. If sled wrote its log during
//!   the group (inotify `IN_MODIFY` on `db`: a full I/O buffer, every few
//!   hundred small messages), the group also runs sled's full durability protocol
//!   (`flush` + the syncs above + `fdatasync(db)`): sled treats a log write
//!   as stable once `sync_file_range` returns and may then free and reuse
//!   segments, and a power cut that kept some of those writes and not
//!   others left sled unopenable ("cannot find pid") on lossyfs. Only after
//!   all of that succeeds does any request of the group get its reply.
//!   A new WAL segment's directory entry is `fsync`'d before any record in
//!   it. So the per-commit cost is one append + `fdatasync` of our file
//!   (plus, on ~5% of commits with 1 KiB messages, sled's own sync).
//! - **A checkpoint** (WAL over 64 MiB — or 1/16 of the quota or of the
//!   filesystem if smaller — or 30 s old, checked after each commit; at
//!   close; after recovery): sled `flush()`, the syncs above, then
//!   `fdatasync(db)`; now sled alone holds everything; then the WAL segment
//!   is deleted, the `wal/` directory `fsync`'d, and a new segment created
//!   (and its directory entry `fsync`'d). Old segments are deleted before the
//!   new one is created, so only the newest segment can end torn.
//! - **At open** (`writer/recovery.rs`): create missing directories and fsync
//!   each and its parent; `sled::open`; `fsync` `db`, `conf`, every file
//!   under `blobs/`, `blobs/` itself, `<dir>` and its parent (sled's own
//!   recovery is a log replay from the last snapshot). Then every WAL
//!   segment is read in order and every record with seq greater than sled's
//!   `w` is applied (sled recovers a prefix of the inserts of a group, in
//!   order, and `w` is the group's last op, so this completes exactly the
//!   groups sled lacks; replaying is idempotent). A bad record at the end of
//!   the newest segment is a torn tail (its `fdatasync` never completed, so
//!   it was never acknowledged): it is discarded and logged. A bad record
//!   followed by a valid one, a bad record in an older segment, or a gap in
//!   the seqs means acknowledged data may be missing: open fails with
//!   [`JournalError::Corrupt`] naming the WAL file and offset, and the WAL
//!   is left untouched for analysis (we refuse to run rather than silently
//!   drop acknowledged messages). After replay: checkpoint, new WAL, load
//!   counters and next ids from sled (so they include replayed groups).
//! - `audit()` is fire-and-forget: its event is staged and logged with the
//!   next group that has a waiting request, or on its own after at most
//!   50 ms (`AUDIT_DEFER`); a crash before that loses it (the daemon audits
//!   every unrouted message right after its append; logging that alone
//!   would be a second `fdatasync` per message). sled's background flusher
//!   is disabled (`flush_every_ms(None)`).
//! - What a power cut can leave: sled as of its last sync plus possibly a
//!   torn suffix of its own later log writes (which sled's recovery
//!   discards), and the WAL holding every acknowledged group since the
//!   last checkpoint. Unacknowledged groups are either absent or (if their
//!   WAL record became durable before the cut) present: at-least-once.
//!
//! `tests/it/strace.rs` checks this at the syscall level:
//! at every ACK the WAL, every blob and every created entry were synced
//! after their last write and before the ACK; at every WAL segment deletion
//! everything, sled's `db` included, was.
//!
//! # Memory
//!
//! sled's page cache is capped at 4 MiB (`SLED_CACHE_BYTES` in
//! `writer/recovery.rs`); the writer holds one group's ops (at most
//! `max_batch` requests, a batch request at most [`BATCH_MAX_BYTES`]) and
//! no per-message state; replay at open reads one
//! WAL segment (bounded by the checkpoint size) at a time.
//!
//! # Group commit
//!
//! One writer OS thread (`writer/run_loop.rs`) owns all mutations.
//! Requests arrive on an unbounded channel (backpressure comes from callers
//! awaiting their reply: one in-flight message per connection). The writer
//! blocks for one request, drains up to `max_batch` that are queued into
//! one `Group` (`writer/group.rs`: its staged ops, the replies waiting on
//! it, the outboxes to wake), stages each, then does ONE WAL append +
//! `fdatasync` and replies to all. Concurrent appenders thus share one
//! fdatasync; see [`Journal::commit_stats`].
//!
//! # Invariants
//!
//! - Ids are `1..`, strictly increasing, never reused: the next id is the
//!   largest stored `m` key + 1 (at open and after any reopen), or past
//!   `pruned_through_id` (the highest id pruned or released) if larger.
//! - A message, its `d` entry, its `o` entries, its counters and (for a
//!   control id reuse) its audit event are in one WAL record: after a crash
//!   and recovery all or none of them exist.
//! - De-dup is decided by the single writer, so concurrent retransmissions
//!   cannot both be stored. Same key + identical raw bytes → `Duplicate`
//!   with the first ACK (counted); same key + different bytes → a new
//!   message, an audit `control_id_reuse`, and the `d` entry then points at
//!   the newest message (later retransmissions of the newest are the likely
//!   ones). With [`KeyReuse::Refuse`] the different bytes are
//!   [`Appended::KeyReused`] instead: nothing stored, counted.
//! - A batch ([`Journal::append_batch`]: at most [`BATCH_MAX_MESSAGES`]
//!   messages, [`BATCH_MAX_STATE_OPS`] state changes, [`BATCH_MAX_BYTES`])
//!   is staged request by request (later messages see earlier ones) and
//!   undone as a whole if any part fails, so its messages, their `d`/`o`
//!   entries, counters and its state changes are in one WAL record or none.
//! - A message appended with [`Retention::UntilDelivered`] is removed (`m`,
//!   and its `d` entry unless `keep_dedup`, which leaves a `t` record
//!   instead) in the same request that removes the last outbox entry or
//!   dead letter holding it (mark_delivered, purge), counted `released`
//!   and audited `released`; with no destinations it is never written.
//!   Its outbox entries carry `release`, so delivering a `Default` message
//!   never reads its record. Retention removes `t` records (and their `d`
//!   entries) older than its cutoff.
//! - `o` entries are the delivery state: present = pending, removed by
//!   `mark_delivered` (idempotent), which also writes a `delivered` audit
//!   event in the same batch, so every per-message state change is in the
//!   audit trail.
//! - Counters are persisted in the same batch as the change they count, so
//!   open is O(counters), not O(messages); `stats()` reads the in-memory
//!   copy published after each successful commit, plus one `first()` lookup
//!   per destination for the oldest pending time.
//!
//! # Errors, disk full and recovery
//!
//! Before each append/quarantine the writer checks the filesystem (statvfs,
//! as `df` computes use) against `refuse_at_percent`, and, with
//! `quota_bytes`, the journal size (`size_on_disk`, re-measured at most
//! every 500 ms, plus bytes written since; the WAL is not counted: it is a
//! transient second copy bounded by the checkpoint size, which is at most
//! 1/16 of the quota). It also requires `2 × size +
//! 2 MiB` free on the filesystem: sled 0.34.7 *wedges* if writing a blob
//! file fails with ENOSPC (`reserve_inner` returns early holding an I/O
//! buffer writer slot; after 127 of them every later sled call spins
//! forever), so we refuse before sled can hit ENOSPC from our own writes.
//! Another process can still fill the disk between that check and sled's
//! write, so in format 2 (`chunk.rs`) sled never writes a blob file at all.
//! Over → `Full` with an actionable reason. ENOSPC/EDQUOT from sled or a sync → `Full` too. Any
//! I/O failure during a commit fails every request of that group (none is
//! acknowledged; if it came after the WAL record was synced, the group is
//! durable anyway and a retransmission is answered as a duplicate), then the writer drops the sled `Db` (sled poisons itself
//! after an I/O error; after a failed fsync the page cache may have dropped
//! dirty pages) and reopens it, reloading counters from disk. So once space
//! returns, appends succeed again without a restart. If there is no room
//! to reopen yet, the failed instance is dropped at once anyway (its reads
//! can write: sled merges nodes on `get`) and every request gets `Full`
//! until the reopen. The failed instance is dropped on a reaper thread
//! with a 2 s bound so a wedged sled cannot hang the writer; if it does
//! wedge (a format-1 journal whose blob write met a disk another process
//! filled) its file lock stays held, reopening fails, and requests get an
//! `Io` error naming the journal until restart.
//!
//! On open: recovery as above (sled's, then WAL replay, then a
//! checkpoint); then we load counters, verify the CRC of the newest 64
//! messages, and durably write an audit `journal_open` summary (counts,
//! next id, any corrupt ids found, WAL records replayed, torn tail) before
//! accepting requests. After an I/O failure the writer reopens through the
//! same recovery (so the WAL is replayed and a torn record cut off before
//! anything is appended again).
//!
//! Dropping the last [`Journal`] handle stops the writer after a final
//! checkpoint; [`Journal::close`] does so explicitly; later calls → `Closed`.
//! A process killed without either loses nothing acknowledged: the next
//! open replays the WAL.

pub mod audit;
mod batch;
mod chunk;
mod counter;
mod durability;
mod error;
mod open;
mod policy;
mod quota;
mod read;
mod record;
mod reserve;
mod state;
#[cfg(test)]
mod test_support;
pub mod trace_index;
mod wal;
mod writer;

pub mod bench_support;
mod delivery;
pub mod durable_fs;
pub use reserve::{DEFAULT_RESERVE_BYTES, RESERVE_FILE};
pub mod histogram;
pub mod migrate;
pub mod retention;
pub mod salvage;
pub mod verify;

pub use audit::{AuditProblem, AuditUsage, AuditVerify, ChainHead, ProblemKind};
pub use batch::{BATCH_MAX_BYTES, BATCH_MAX_MESSAGES, BATCH_MAX_STATE_OPS};
pub use delivery::{dlq_notify_key, DeadLetter, GiveUp, PendingEntry};
pub use durability::CommitSync;
pub use error::JournalError;
pub use histogram::{Histogram, HistogramSnapshot};
pub use policy::{KeyReuse, Policy, Retention};
pub use record::OutboxRec;
pub use state::{
    StateEntry, StateOp, JOURNEY_NAMESPACE_PREFIX, STATE_KEY_MAX, STATE_NAMESPACE_MAX,
    STATE_VALUE_MAX,
};
pub use trace_index::{DestinationState, IdPage, PatientRef};
pub use writer::QUARANTINE_RAW_MAX;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use writer::{Req, Shared};

#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// Directory of the sled database, e.g. `<data_dir>/journal`.
    pub dir: PathBuf,
    /// Most bytes the journal directory may use; `None` = only the filesystem watermark applies.
    pub quota_bytes: Option<u64>,
    /// Refuse new messages when use (of the quota, or of the filesystem) is at or above this percent.
    pub refuse_at_percent: u8,
    /// Warn (log + stats flag) at or above this percent.
    pub warn_at_percent: u8,
    /// Quarantine bounds: oldest entries are evicted past these.
    pub quarantine_max_entries: usize,
    pub quarantine_max_bytes: u64,
    /// Most requests one group commit takes.
    pub max_batch: usize,
    /// Size of the space reserve in the journal directory (`<dir>/reserve`,
    /// `reserve.rs`): released only to let a commit finish on a full disk.
    /// Capped to 1/16 of the filesystem; 0 = none.
    pub reserve_bytes: u64,
    /// The newest journal format this gateway reads and writes: 2
    /// ([`migrate::FORMAT_CHUNKED`], the default) or 1. At 1 a new journal
    /// is created in format 1 and a format-2 journal is refused at open, as
    /// by a release from before format 2: the daemon takes it from
    /// `GATEWAY_JOURNAL_MAX_FORMAT` (a box pinned to format 1 so that it can
    /// still roll back to such a release; the qemu format-change scenario).
    pub max_format: u64,
    /// The wall clock that stamps audit events, dead letters, the writer's
    /// heartbeat and the retention cutoff. The daemon passes its own
    /// (`ops::clock::unix_ms`); the default is [`system_clock_ms`].
    pub clock: WallClock,
}

/// Milliseconds since the Unix epoch, now.
pub type WallClock = fn() -> u64;

/// The system clock (0 if it is before 1970): [`JournalConfig`]'s default.
pub fn system_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl JournalConfig {
    pub fn new(dir: PathBuf) -> Self {
        JournalConfig {
            dir,
            quota_bytes: None,
            refuse_at_percent: 95,
            warn_at_percent: 80,
            quarantine_max_entries: 1000,
            quarantine_max_bytes: 64 * 1024 * 1024,
            max_batch: 256,
            reserve_bytes: DEFAULT_RESERVE_BYTES,
            max_format: migrate::FORMAT_CHUNKED,
            clock: system_clock_ms,
        }
    }
}

/// [`MessageMeta::kind`] of an HL7 v2 message.
pub const KIND_HL7V2: &str = "hl7v2";

/// What the journal keeps about a message besides its bytes: enough to
/// de-duplicate, list and log it without parsing the bytes again. The
/// accept path fills it for whatever the message is (HL7 v2 today; an X12
/// file or a FHIR resource uses the same fields), so the journal knows
/// nothing of any message format.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MessageMeta {
    /// What the bytes are: [`KIND_HL7V2`], later e.g. "x12", "fhir+ndjson".
    pub kind: String,
    /// Who sent it, as the message itself says (HL7: MSH-3 and MSH-4 as
    /// sent, joined by the field separator).
    pub sender: String,
    /// The sender's id for this message (HL7 MSH-10; X12 ISA13; a file name).
    pub control_id: String,
    /// For logs, status and routing, e.g. "ORU^R01" or "837P".
    pub message_type: String,
    /// What makes a retransmission the same message within its source: the
    /// de-dup key is (source, these parts). HL7: MSH-3 raw, MSH-4 raw, MSH-10.
    pub dedup: Vec<String>,
}

/// One accepted inbound message, before it is journaled.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// The listener or poller (any source) it came from, by its configured name.
    pub source: String,
    pub peer: String,
    pub received_at_ms: u64,
    pub meta: MessageMeta,
    pub raw: Vec<u8>,
    /// The ACK that will be sent if the append succeeds; stored so that a
    /// retransmission can be answered with the very same ACK.
    pub ack: Vec<u8>,
    /// Outboxes to enqueue the message on, atomically with the append.
    pub destinations: Vec<Enqueue>,
    /// The patient lane (hash of the first PID-3 and its authority; 0 =
    /// no patient), stored with each outbox entry for ordered delivery.
    pub patient_lane: u64,
}

/// One outbox a message goes on, and the transform its route asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueue {
    pub destination: String,
    pub transform: String,
}

impl Enqueue {
    /// `destination` with no transform.
    pub fn plain(destination: &str) -> Enqueue {
        Enqueue {
            destination: destination.to_string(),
            transform: "none".to_string(),
        }
    }
}

/// A dead letter moved (replayed or purged).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Replayed {
    pub seq: u64,
    pub destination: String,
    pub message_id: u64,
}

/// What one retention pass removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    pub messages: u64,
    pub bytes: u64,
    pub audit_events: u64,
    /// Old messages kept because an outbox or dead letter still holds them.
    pub kept_held: u64,
    /// Where the next call should continue (exclusive).
    pub next_after: u64,
    /// The scan reached messages newer than the cutoff (or the end).
    pub reached_end: bool,
    pub highest_pruned: u64,
    pub highest_audit: u64,
    /// De-dup entries of released messages (`Retention::UntilDelivered`
    /// with `keep_dedup`) older than the cutoff, removed.
    pub released_keys: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    Stored {
        id: u64,
    },
    Duplicate {
        id: u64,
        first_ack: Vec<u8>,
    },
    /// Its de-dup key is journaled as message `id` with different bytes and
    /// its policy says [`KeyReuse::Refuse`]: nothing was stored.
    KeyReused {
        id: u64,
    },
}

#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub id: u64,
    pub received_at_ms: u64,
    pub source: String,
    pub peer: String,
    pub meta: MessageMeta,
    pub raw: Vec<u8>,
    pub ack: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Quarantined {
    /// The listener or poller it came from.
    pub source: String,
    pub peer: String,
    pub received_at_ms: u64,
    /// Why it was rejected (no PHI: e.g. "MSH-9: message type is empty").
    pub reason: String,
    pub raw: Vec<u8>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct OutboxStats {
    pub pending: u64,
    pub delivered: u64,
    /// In the dead-letter queue now.
    pub dead: u64,
    /// Ever dead-lettered.
    pub dead_total: u64,
    pub oldest_pending_received_at_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct JournalStats {
    pub messages: u64,
    pub duplicates: u64,
    pub control_id_reuses: u64,
    /// Appends refused because their key was reused ([`KeyReuse::Refuse`]).
    pub key_reuses_refused: u64,
    /// Messages removed on delivery ([`Retention::UntilDelivered`]), ever.
    pub released: u64,
    pub quarantined: u64,
    pub bytes_on_disk: u64,
    pub disk_percent_used: u8,
    /// Delivered messages removed by retention, ever.
    pub pruned: u64,
    /// The journal's on-disk format (1 or 2), as opened.
    pub format: u64,
    pub per_destination: BTreeMap<String, OutboxStats>,
}

/// One audit trail event. `detail` carries no PHI.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditEvent {
    pub seq: u64,
    pub at_ms: u64,
    pub kind: String,
    pub detail: String,
    /// Its chain hash and the previous event's (hex; `audit/chain.rs`);
    /// `None` for an event from before the chain (the genesis prefix).
    pub hash: Option<String>,
    pub prev: Option<String>,
}

/// One held quarantine entry (`item.raw` truncated to [`QUARANTINE_RAW_MAX`]).
#[derive(Debug, Clone)]
pub struct QuarantineEntry {
    pub seq: u64,
    pub item: Quarantined,
    pub original_len: u64,
}

/// Group-commit counters since open.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CommitStats {
    /// Durable commits (each = one `flush()` + one `fdatasync(db)`).
    pub commits: u64,
    /// Requests served by those commits.
    pub requests: u64,
    /// Largest number of requests one commit served.
    pub largest_batch: u64,
    /// Times the writer dropped and reopened sled after an I/O error.
    pub reopens: u64,
    /// Commits that also had to make sled durable (sled wrote its log
    /// during the group: flush + fdatasync(db) on top of the WAL sync).
    pub sled_syncs: u64,
    /// Checkpoints (sled made durable, WAL emptied) since open.
    pub checkpoints: u64,
}

#[derive(Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    tx: Mutex<Option<mpsc::UnboundedSender<Req>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel makes the writer do a final flush and exit.
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = handle {
            if h.thread().id() != std::thread::current().id() && h.join().is_err() {
                log::error!("journal: writer thread panicked");
            }
        }
    }
}

impl Journal {
    fn send(&self, req: Req) -> Result<(), JournalError> {
        if self.inner.shared.closed.load(Ordering::Acquire) {
            return Err(JournalError::Closed);
        }
        let g = self.inner.tx.lock().map_err(|_| JournalError::Closed)?;
        match &*g {
            Some(tx) => tx.send(req).map_err(|_| JournalError::Closed),
            None => Err(JournalError::Closed),
        }
    }

    async fn call<T>(&self, make: impl FnOnce(writer::Reply<T>) -> Req) -> Result<T, JournalError> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx))?;
        rx.await.unwrap_or(Err(JournalError::Closed))
    }

    /// Returns only after the message (and its outbox entries) are durable.
    /// The default [`Policy`]: see [`Journal::append_with`].
    pub async fn append(&self, msg: NewMessage) -> Result<Appended, JournalError> {
        self.append_with(msg, Policy::default()).await
    }

    /// Keep rejected input (bounded; oldest evicted). Durable on return.
    pub async fn quarantine(&self, q: Quarantined) -> Result<(), JournalError> {
        self.call(|tx| Req::Quarantine(Box::new(q), tx)).await
    }

    /// Audit event; `detail` must carry no PHI. Queued to the writer and
    /// made durable by its next commit (this call does not wait for it).
    pub fn audit(&self, kind: &str, detail: &str) -> Result<(), JournalError> {
        self.send(Req::Audit {
            at_ms: self.inner.shared.now_ms(),
            kind: kind.to_string(),
            detail: detail.to_string(),
        })
    }

    /// Up to `limit` pending ids for `destination`, ascending, strictly after `after`.
    pub fn pending(
        &self,
        destination: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<u64>, JournalError> {
        Ok(self
            .pending_entries(destination, after, limit)?
            .into_iter()
            .map(|e| e.id)
            .collect())
    }

    pub async fn mark_delivered(&self, destination: &str, id: u64) -> Result<(), JournalError> {
        self.mark_delivered_many(destination, vec![id]).await
    }

    /// [`Journal::mark_delivered`] for several messages of one destination
    /// in one request to the writer (an outbox driver marks a group of
    /// completions at once). Durable on `Ok`. Each id is its own idempotent
    /// change: on `Err` some may be recorded (the caller delivers those
    /// again: at-least-once), none is acknowledged.
    pub async fn mark_delivered_many(
        &self,
        destination: &str,
        ids: Vec<u64>,
    ) -> Result<(), JournalError> {
        if ids.is_empty() {
            return Ok(());
        }
        let d = destination.to_string();
        self.call(|tx| Req::Delivered(d, ids, tx)).await
    }

    /// Woken whenever a message is enqueued on `destination` (after the
    /// enqueue is durable). Wake-ups may be spurious; re-check `pending`.
    pub fn outbox_notify(&self, destination: &str) -> Arc<tokio::sync::Notify> {
        self.inner.shared.notify(destination)
    }

    /// Flush and stop the writer; later calls return `Closed`.
    pub async fn close(&self) -> Result<(), JournalError> {
        let r = self.call(Req::Close).await;
        if let Ok(mut g) = self.inner.tx.lock() {
            g.take();
        }
        // The writer has dropped sled before replying; reap the thread off
        // the async executor.
        let handle = self.inner.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
        r
    }

    /// Now, by the journal's clock ([`JournalConfig::clock`]).
    pub(crate) fn now_ms(&self) -> u64 {
        self.inner.shared.now_ms()
    }

    /// TEST HOOK: overwrite the stored record of message `id` with `value`
    /// (through the writer, so it is durable), to test corruption handling.
    #[doc(hidden)]
    pub async fn debug_overwrite_message_record(
        &self,
        id: u64,
        value: Vec<u8>,
    ) -> Result<(), JournalError> {
        let k = record::message_key(id).to_vec();
        self.call(|tx| Req::RawPut(k, Some(value), tx)).await
    }
}
