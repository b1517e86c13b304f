//! The admin socket: a Unix socket in the data directory that CLI commands
//! such as `gateway status` use to talk to the running daemon. Protocol:
//! one JSON request line, one JSON reply line. Every request is checked
//! against the peer's kernel credentials (`SO_PEERCRED`: root, the daemon's
//! user, the `gateway-admin` group, `[admin]`; `ops::audit::peer`) and
//! recorded in the audit trail with them; an operator named in a request
//! is replaced by who the kernel says connected. The socket is mode 0666
//! so that a refused user gets the reason; the directory bounds who can
//! reach it (docs/audit.md).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::audit::peer::Peer;
use super::messages_key::PatientKey;
use super::stats::ListenerSnapshot;
use crate::deliver::DeliveryState;
use crate::source::export::runner::ExportControl;
use journal::{DeadLetter, Journal, JournalError, Replayed};

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Status,
    /// Dead letters with seq > `after`, oldest first.
    DlqList {
        destination: Option<String>,
        after: Option<u64>,
        limit: usize,
    },
    DlqShow {
        seq: u64,
        /// Include the message itself (PHI: only for the operator's terminal).
        raw: bool,
    },
    /// Replay one dead letter, or all (of one destination), in received order.
    DlqReplay {
        seq: Option<u64>,
        destination: Option<String>,
        operator: String,
    },
    /// Purge one dead letter, or those dead for longer than `older_than_ms`.
    DlqPurge {
        seq: Option<u64>,
        older_than_ms: Option<u64>,
        destination: Option<String>,
        operator: String,
    },
    /// `gateway export run NAME [--full]`.
    ExportRun {
        name: String,
        full: bool,
        operator: String,
    },
    /// `gateway export status [NAME]`.
    ExportStatus {
        name: Option<String>,
    },
    /// `gateway export cancel NAME`.
    ExportCancel {
        name: String,
        operator: String,
    },
    /// `gateway audit verify [--head SEQ:HASH]`.
    AuditVerify {
        head: Option<String>,
    },
    /// `gateway audit export`: a page of events with seq > `after` and
    /// time >= `since_ms`.
    AuditExport {
        after: Option<u64>,
        since_ms: Option<u64>,
        limit: usize,
    },
    /// `gateway messages search`: one page (`ops/messages.rs`).
    MessagesSearch(super::messages::SearchQuery),
    /// `gateway messages show ID [--raw]`.
    MessagesShow {
        id: u64,
        raw: bool,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListenerStatus {
    pub name: String,
    pub bind: String,
    pub tls: bool,
    pub mutual_tls: bool,
    #[serde(flatten)]
    pub counts: ListenerSnapshot,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DestinationStatus {
    pub name: String,
    pub kind: String,
    pub pending: u64,
    /// Delivered, ever (from the journal).
    pub delivered: u64,
    pub oldest_pending_age_secs: Option<u64>,
    /// In the dead-letter queue now.
    pub dead_letters: u64,
    /// Dead-lettered, ever (from the journal).
    #[serde(default)]
    pub dead_lettered_total: u64,
    /// Live deliverer state since start: in flight, attempts, circuit, last error.
    #[serde(flatten)]
    pub live: DeliveryState,
    /// fhir destinations: local codes without a mapping, most frequent first (at most 20).
    #[serde(default)]
    pub unmapped_codes: Vec<UnmappedCode>,
    /// How many distinct local codes lack a mapping.
    #[serde(default)]
    pub unmapped_distinct: u64,
    /// How many times such codes came (all of them, not only the top 20).
    #[serde(default)]
    pub unmapped_occurrences: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnmappedCode {
    pub system: String,
    pub code: String,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JournalStatus {
    pub messages: u64,
    pub duplicates: u64,
    pub control_id_reuses: u64,
    pub quarantined: u64,
    pub bytes_on_disk: u64,
    pub disk_percent_used: u8,
    /// Delivered messages removed by retention, ever.
    #[serde(default)]
    pub pruned: u64,
    /// The on-disk format (1 or 2; 0 from a gateway that did not report it).
    #[serde(default)]
    pub format: u64,
    /// The audit trail: its size and cap, and its chain head (docs/audit.md).
    #[serde(default)]
    pub audit: AuditStatus,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuditStatus {
    /// Events kept.
    pub events: u64,
    /// Their estimated size, and the `[audit] max_mb` cap, in bytes.
    pub bytes: u64,
    pub max_bytes: u64,
    /// The chain head, `SEQ:HASH`.
    pub head: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    pub version: String,
    pub pid: u32,
    pub config: String,
    pub data_dir: String,
    pub started_at: String,
    pub uptime_secs: u64,
    pub listeners: Vec<ListenerStatus>,
    pub destinations: Vec<DestinationStatus>,
    /// Results pollers (sources).
    #[serde(default)]
    pub pollers: Vec<crate::source::poller::PollerState>,
    /// `[[pickup]]` folders (sources): files taken, rejected, in progress.
    #[serde(default)]
    pub pickups: Vec<crate::source::pickup::PickupState>,
    pub journal: JournalStatus,
    /// `[fleet] box_id`, or the host name.
    #[serde(default)]
    pub box_id: String,
    /// Active alerts, most severe first.
    #[serde(default)]
    pub alerts: Vec<super::alerts::Alert>,
    /// Certificate files the config names, with their expiry.
    #[serde(default)]
    pub certificates: Vec<super::certs::CertInfo>,
    /// `[[export]]` jobs (sources).
    #[serde(default)]
    pub exports: Vec<crate::source::export::job::ExportStatus>,
    /// Feeds watched by `[[alerts.silence]]`: when each last delivered.
    #[serde(default)]
    pub feeds: Vec<super::feeds::FeedStatus>,
    /// `[fleet.remote_write]`: what was sent, what waits, what was dropped.
    #[serde(default)]
    pub remote_write: Option<super::remote_write::RemoteWriteStatus>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Reply {
    Status(Box<StatusReport>),
    DeadLetters {
        items: Vec<DeadLetter>,
        /// More entries follow (ask again with `after` = the last seq).
        more: bool,
    },
    DeadLetterDetail {
        item: Box<DeadLetter>,
        message: Option<MessageSummary>,
    },
    /// Dead letters replayed or purged, in order.
    Moved {
        items: Vec<Replayed>,
    },
    /// The exports asked about (after a run or cancel: as they are now).
    Exports {
        items: Vec<crate::source::export::job::ExportStatus>,
    },
    /// `gateway audit verify`: what the walk of the chain found.
    AuditVerify(Box<journal::AuditVerify>),
    /// `gateway audit export`: a page of events; ask again after
    /// `next_after` while it is set.
    AuditEvents {
        items: Vec<journal::AuditEvent>,
        next_after: Option<u64>,
    },
    /// `gateway messages search`: a page, newest first; ask again with
    /// `before` = `next_before` while it is set.
    Messages {
        items: Vec<super::messages::MessageRow>,
        next_before: Option<u64>,
    },
    /// `gateway messages show`.
    MessageJourney(Box<super::messages::Journey>),
    Error {
        message: String,
    },
}

/// The stored message behind a dead letter.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageSummary {
    pub message_type: String,
    pub control_id: String,
    pub listener: String,
    pub received_at: String,
    pub bytes: usize,
    /// The HL7 text (segments on lines), only when asked for.
    pub raw: Option<String>,
}

/// Builds a fresh status report on demand.
pub type StatusSource = Arc<dyn Fn() -> StatusReport + Send + Sync>;

/// How long requests in hand may take once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

pub struct AdminServer {
    listener: UnixListener,
    path: PathBuf,
}

impl AdminServer {
    /// Bind the socket. A stale socket file from a crashed daemon is replaced;
    /// a live daemon on the same data directory is an error.
    pub async fn bind(path: &Path) -> Result<AdminServer, crate::Error> {
        if path.exists() {
            if UnixStream::connect(path).await.is_ok() {
                return Err(crate::Error::AlreadyRunning {
                    path: path.to_path_buf(),
                });
            }
            let _ = std::fs::remove_file(path);
        }
        let listener = UnixListener::bind(path).map_err(|source| crate::Error::Io {
            action: "cannot create admin socket",
            path: path.to_path_buf(),
            source,
        })?;
        // Who may use it is decided per request from SO_PEERCRED.
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666));
        Ok(AdminServer {
            listener,
            path: path.to_path_buf(),
        })
    }

    pub async fn serve(
        self,
        status: StatusSource,
        journal: Journal,
        exports: ExportControl,
        access: crate::config::AdminConfig,
        patients: Arc<PatientKey>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let access = Arc::new(access);
        let mut requests = JoinSet::new();
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                Some(_) = requests.join_next(), if !requests.is_empty() => {}
                accepted = self.listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let status = status.clone();
                    let journal = journal.clone();
                    let exports = exports.clone();
                    let access = access.clone();
                    let patients = patients.clone();
                    requests.spawn(async move {
                        // Replaying a large queue may take a while; status answers at once.
                        let views = Views { journal, exports, patients };
                        let _ = tokio::time::timeout(Duration::from_secs(600), handle(stream, status, views, &access)).await;
                    });
                }
            }
        }
        let _ = std::fs::remove_file(&self.path);
        // Requests in hand get a moment; the journal closes after this. A
        // long replay cut here has kept what it did (each step is atomic).
        let drain = async { while requests.join_next().await.is_some() {} };
        if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
            log::warn!(target: "gateway::admin", "admin requests still running at shutdown ({}); cut off", requests.len());
            requests.shutdown().await;
        }
    }
}

/// What requests are answered from besides the status.
struct Views {
    journal: Journal,
    exports: ExportControl,
    patients: Arc<PatientKey>,
}

async fn handle(
    stream: UnixStream,
    status: StatusSource,
    views: Views,
    access: &crate::config::AdminConfig,
) -> std::io::Result<()> {
    let journal = &views.journal;
    let peer = Peer::of(&stream);
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    // A request is one short line; cap what a confused client can make us buffer.
    BufReader::new(read.take(64 * 1024))
        .read_line(&mut line)
        .await?;
    let parsed = serde_json::from_str::<Request>(line.trim());
    let reply = match super::audit::admit(journal, peer, access, parsed) {
        Err(message) => Reply::Error { message },
        Ok((req, who)) => {
            let reply = answer(req, &who, &status, &views).await;
            super::audit::after(journal, &who, &reply);
            reply
        }
    };
    let mut out = serde_json::to_vec(&reply).unwrap_or_default();
    out.push(b'\n');
    write.write_all(&out).await
}

/// The reply to an admitted request (`who`: the peer, for operator fields).
async fn answer(
    req: Result<Request, serde_json::Error>,
    who: &str,
    status: &StatusSource,
    views: &Views,
) -> Reply {
    let (journal, exports) = (views.journal.clone(), &views.exports);
    match req.map(|r| r.with_operator(who)) {
        Ok(Request::Status) => Reply::Status(Box::new(status())),
        // Reads of the journal: off the async workers.
        Ok(Request::MessagesSearch(q)) => {
            let (key, who) = (views.patients.clone(), who.to_string());
            blocking(move || super::messages::search(&journal, &key, &q, &who)).await
        }
        Ok(Request::MessagesShow { id, raw }) => {
            let who = who.to_string();
            blocking(move || super::messages::show(&journal, id, raw, &who)).await
        }
        Ok(Request::ExportRun {
            name,
            full,
            operator,
        }) => export_reply(exports.run(&journal, &name, full, &operator)),
        Ok(Request::ExportStatus { name }) => export_reply(exports.status(name.as_deref())),
        Ok(Request::AuditVerify { head }) => super::audit::verify_reply(&journal, head.as_deref()),
        Ok(Request::AuditExport {
            after,
            since_ms,
            limit,
        }) => super::audit::export_reply(&journal, after, since_ms, limit),
        Ok(Request::ExportCancel { name, operator }) => {
            export_reply(exports.cancel(&journal, &name, &operator))
        }
        Ok(other) => super::dlq::answer(&journal, other)
            .await
            .unwrap_or_else(|e: JournalError| Reply::Error {
                message: e.to_string(),
            }),
        Err(e) => Reply::Error {
            message: format!("bad request: {e}"),
        },
    }
}

impl Request {
    /// The request with every operator field set to `who` (the kernel's
    /// answer), whatever the client claimed.
    fn with_operator(mut self, who: &str) -> Request {
        match &mut self {
            Request::DlqReplay { operator, .. }
            | Request::DlqPurge { operator, .. }
            | Request::ExportRun { operator, .. }
            | Request::ExportCancel { operator, .. } => *operator = who.to_string(),
            _ => {}
        }
        self
    }

    /// The request's name and ids for the audit trail (no PHI).
    pub fn audit_text(&self) -> String {
        match self {
            Request::Status => "cmd=status".into(),
            Request::DlqList { destination, .. } => {
                format!(
                    "cmd=dlq_list destination={}",
                    destination.as_deref().unwrap_or("*")
                )
            }
            Request::DlqShow { seq, raw } => format!("cmd=dlq_show dead_letter={seq} raw={raw}"),
            Request::DlqReplay {
                seq, destination, ..
            } => format!(
                "cmd=dlq_replay dead_letter={} destination={}",
                seq.map_or("*".into(), |s| s.to_string()),
                destination.as_deref().unwrap_or("*")
            ),
            Request::DlqPurge {
                seq,
                older_than_ms,
                destination,
                ..
            } => format!(
                "cmd=dlq_purge dead_letter={} older_than_ms={} destination={}",
                seq.map_or("*".into(), |s| s.to_string()),
                older_than_ms.map_or("-".into(), |s| s.to_string()),
                destination.as_deref().unwrap_or("*")
            ),
            Request::ExportRun { name, full, .. } => {
                format!("cmd=export_run export={name} full={full}")
            }
            Request::ExportStatus { name } => {
                format!(
                    "cmd=export_status export={}",
                    name.as_deref().unwrap_or("*")
                )
            }
            Request::ExportCancel { name, .. } => format!("cmd=export_cancel export={name}"),
            Request::AuditVerify { head } => {
                format!("cmd=audit_verify head={}", head.as_deref().unwrap_or("-"))
            }
            Request::AuditExport {
                after, since_ms, ..
            } => format!(
                "cmd=audit_export after={} since_ms={}",
                after.unwrap_or(0),
                since_ms.unwrap_or(0)
            ),
            // Never the MRN: only that a patient was asked for.
            Request::MessagesSearch(q) => format!(
                "cmd=messages_search control_id={} patient={}",
                q.control_id.as_deref().unwrap_or("*"),
                q.patient.is_some()
            ),
            Request::MessagesShow { id, raw } => {
                format!("cmd=messages_show message={id} raw={raw}")
            }
        }
    }
}

async fn blocking(f: impl FnOnce() -> Reply + Send + 'static) -> Reply {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Reply::Error {
            message: format!("the request failed: {e}"),
        })
}

fn export_reply(r: Result<Vec<crate::source::export::job::ExportStatus>, String>) -> Reply {
    match r {
        Ok(items) => Reply::Exports { items },
        Err(message) => Reply::Error { message },
    }
}

/// Why the CLI could not reach the daemon.
#[derive(Debug)]
pub enum ClientError {
    NotRunning(String),
    Failed(String),
}

/// Send one request to the daemon behind `path`.
pub async fn request(path: &Path, req: &Request) -> Result<Reply, ClientError> {
    let mut stream = match UnixStream::connect(path).await {
        Ok(s) => s,
        Err(e) => {
            return Err(ClientError::NotRunning(format!(
                "the gateway is not running (no daemon answers on {}: {e}). Start it with `gateway run --config FILE` or `systemctl start gateway`.",
                path.display()
            )))
        }
    };
    let mut line = serde_json::to_vec(req).map_err(|e| ClientError::Failed(e.to_string()))?;
    line.push(b'\n');
    stream
        .write_all(&line)
        .await
        .map_err(|e| ClientError::Failed(format!("admin socket: {e}")))?;
    let mut reply = String::new();
    let mut reader = BufReader::new(stream);
    tokio::time::timeout(Duration::from_secs(600), reader.read_line(&mut reply))
        .await
        .map_err(|_| ClientError::Failed("the daemon did not answer within 600 s".into()))?
        .map_err(|e| ClientError::Failed(format!("admin socket: {e}")))?;
    serde_json::from_str(&reply)
        .map_err(|e| ClientError::Failed(format!("unreadable reply from the daemon: {e}")))
}
