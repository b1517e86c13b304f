//! The durable journal (sled). SKELETON: the journal helper replaces this
//! file's bodies; the public API below is the contract the rest of the
//! gateway codes against.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::hl7::HeaderSummary;

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
        }
    }
}

/// One accepted inbound message, before it is journaled.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub listener: String,
    pub peer: String,
    pub received_at_ms: u64,
    pub header: HeaderSummary,
    pub raw: Vec<u8>,
    /// The ACK that will be sent if the append succeeds; stored so that a
    /// retransmission can be answered with the very same ACK.
    pub ack: Vec<u8>,
    /// Outboxes (destination names) to enqueue the message on, atomically with the append.
    pub destinations: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    Stored { id: u64 },
    Duplicate { id: u64, first_ack: Vec<u8> },
}

#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub id: u64,
    pub received_at_ms: u64,
    pub listener: String,
    pub peer: String,
    pub header: HeaderSummary,
    pub raw: Vec<u8>,
    pub ack: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Quarantined {
    pub listener: String,
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
    pub oldest_pending_received_at_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct JournalStats {
    pub messages: u64,
    pub duplicates: u64,
    pub control_id_reuses: u64,
    pub quarantined: u64,
    pub bytes_on_disk: u64,
    pub disk_percent_used: u8,
    pub per_destination: BTreeMap<String, OutboxStats>,
}

#[derive(Debug)]
pub enum JournalError {
    /// Over the quota/watermark or the disk is full: sender gets AE/CE + ERR 207.
    Full { reason: String },
    Io { context: String, source: std::io::Error },
    Corrupt { context: String },
    Closed,
}

impl std::fmt::Display for JournalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JournalError::Full { reason } => write!(f, "journal full: {reason}"),
            JournalError::Io { context, source } => write!(f, "journal I/O error: {context}: {source}"),
            JournalError::Corrupt { context } => write!(f, "journal corrupt: {context}"),
            JournalError::Closed => write!(f, "journal closed"),
        }
    }
}

impl std::error::Error for JournalError {}

#[derive(Clone)]
pub struct Journal {
    _inner: Arc<()>,
}

impl Journal {
    pub fn open(_cfg: JournalConfig) -> Result<Journal, JournalError> {
        todo!()
    }
    /// Returns only after the message (and its outbox entries) are durable.
    pub async fn append(&self, _msg: NewMessage) -> Result<Appended, JournalError> {
        todo!()
    }
    pub async fn quarantine(&self, _q: Quarantined) -> Result<(), JournalError> {
        todo!()
    }
    /// Audit event; `detail` must carry no PHI.
    pub fn audit(&self, _kind: &str, _detail: &str) -> Result<(), JournalError> {
        todo!()
    }
    pub fn get(&self, _id: u64) -> Result<Option<StoredMessage>, JournalError> {
        todo!()
    }
    /// Up to `limit` pending ids for `destination`, ascending, strictly after `after`.
    pub fn pending(&self, _destination: &str, _after: Option<u64>, _limit: usize) -> Result<Vec<u64>, JournalError> {
        todo!()
    }
    pub async fn mark_delivered(&self, _destination: &str, _id: u64) -> Result<(), JournalError> {
        todo!()
    }
    /// Woken whenever a message is enqueued on `destination`.
    pub fn outbox_notify(&self, _destination: &str) -> Arc<tokio::sync::Notify> {
        todo!()
    }
    pub fn stats(&self) -> JournalStats {
        todo!()
    }
    /// Flush and stop the writer; later calls return `Closed`.
    pub async fn close(&self) -> Result<(), JournalError> {
        todo!()
    }
}
