//! The validated configuration the daemon runs on. Every path is absolute
//! (resolved against the config file's directory) and every default is
//! filled. Types that hold something `resolve` follows on the disk take the
//! [`Stage`] (`Checked` after validation, `Resolved`, the default, after
//! resolution). [`Config`] itself, the list of tables, is in `tables/mod.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::stage::{Resolved, Stage};
use super::{Cidr, Config};
use crate::route::Glob;

/// A FHIR results poller (a source, like a listener: routes name it in `from`).
#[derive(Debug, Clone)]
pub struct PollerConfig<S: Stage = Resolved> {
    pub name: String,
    /// A FHIR search returning DiagnosticReports (with their results
    /// `_include`d); `_lastUpdated=ge<cursor>` is added on every poll (ge: a result stamped in the same instant as the cursor is not missed; de-dup drops the repeat).
    pub url: String,
    pub interval: std::time::Duration,
    /// Most `next` pages followed per poll.
    pub max_pages: usize,
    /// MSH-3..6 of the ORU messages made from the results.
    pub sending_application: String,
    pub sending_facility: String,
    pub receiving_application: String,
    pub receiving_facility: String,
    pub auth: Option<S::Auth>,
    pub tls: S::Client,
}

/// `[[poller]]`, by kind.
#[derive(Debug, Clone)]
pub struct Pollers<S: Stage = Resolved> {
    /// kind = "fhir": results searched in the cloud, journaled as ORU^R01.
    pub fhir: Vec<PollerConfig<S>>,
    /// kind = "sftp": files fetched from a remote folder.
    pub sftp: Vec<SftpPollerConfig<S>>,
}

/// A FHIR Bulk Data `$export` job (`[[export]]`, a source).
#[derive(Debug, Clone)]
pub struct ExportConfig<S: Stage = Resolved> {
    pub name: String,
    /// Tags every resource, names its directory; one job at a time per tenant.
    pub tenant: String,
    /// The FHIR base, without a trailing `/`.
    pub base_url: String,
    pub level: ExportLevel,
    /// `_type` (empty: all types).
    pub types: Vec<String>,
    /// `_typeFilter`, one parameter each.
    pub type_filters: Vec<String>,
    pub since: ExportSince,
    pub schedule: crate::source::export::schedule::Schedule,
    /// The folder sink's root (`<output>/<tenant>/<transactionTime>/`);
    /// `None`: no folder sink (only with `to = [...]`).
    pub output: Option<PathBuf>,
    pub parallel_downloads: usize,
    pub poll: crate::source::export::poll::PollBounds,
    pub max_line_bytes: usize,
    /// The alert fires when no job succeeded for this long.
    pub alert_after: Duration,
    /// `to = [...]`: fhir destinations every resource is journaled for
    /// (PUT; tombstones DELETE), through their outboxes.
    pub to: Vec<String>,
    /// Where ids and references are namespaced per tenant.
    pub namespace_ids: NamespaceIds,
    pub auth: Option<S::Auth>,
    pub tls: S::Client,
}

/// Which `$export` operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportLevel {
    System,
    Patient,
    Group(String),
}

/// Where an incremental export starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportSince {
    /// The last successful job's `transactionTime` (none yet: everything).
    Auto,
    /// Always everything.
    None,
    /// This instant, always.
    Instant(String),
}

/// `namespace_ids`: which sink gets ids namespaced per tenant
/// (`source::export::namespace`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespaceIds {
    /// Only what goes to `to` destinations (default): the folder keeps the server's ids.
    To,
    /// The folder sink too.
    All,
    None,
}

impl<S: Stage> Config<S> {
    pub fn journal_dir(&self) -> PathBuf {
        self.data_dir.join("journal")
    }
    pub fn admin_socket(&self) -> PathBuf {
        self.admin_socket
            .clone()
            .unwrap_or_else(|| self.data_dir.join("admin.sock"))
    }
}

#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// Most bytes the journal may use; `None` = bounded only by the disk watermarks.
    pub quota_bytes: Option<u64>,
    pub warn_at_percent: u8,
    pub refuse_at_percent: u8,
    pub quarantine_max_entries: usize,
    pub quarantine_max_bytes: u64,
    /// Delivered messages older than this are pruned (audit events: `[audit]`).
    pub retention: Duration,
    /// The journal's space reserve (`[storage] reserve_mb`; 0 = none).
    pub reserve_bytes: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            quota_bytes: None,
            warn_at_percent: 80,
            refuse_at_percent: 95,
            quarantine_max_entries: 1000,
            quarantine_max_bytes: 64 * 1024 * 1024,
            retention: Duration::from_secs(30 * 24 * 3600),
            reserve_bytes: journal::DEFAULT_RESERVE_BYTES,
        }
    }
}

/// `[admin]` (docs/audit.md): admin-socket users besides root and the
/// members of the `gateway-admin` group.
#[derive(Debug, Clone, Default)]
pub struct AdminConfig {
    pub allow_users: Vec<String>,
    pub allow_groups: Vec<String>,
}

/// `[audit]` (docs/audit.md).
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Audit events older than this are pruned (default 2190 days: six years).
    pub retention: Duration,
    /// The audit trail's size cap (default 2048 MiB): past it the oldest
    /// events are pruned early; the `audit_trail_size` alert fires at 80 %.
    pub max_bytes: u64,
    /// `[audit.syslog]`: live forwarding to a collector, if configured.
    pub syslog: Option<SyslogConfig>,
}

/// `[audit.syslog]`: RFC 5424 syslog over TLS (RFC 5425) to a collector.
#[derive(Debug, Clone)]
pub struct SyslogConfig {
    /// `host:port`.
    pub address: String,
    /// What the collector's certificate must name.
    pub server_name: String,
    pub ca: PathBuf,
    /// Client certificate and key (mutual TLS), if the collector asks.
    pub client: Option<(PathBuf, PathBuf)>,
    /// RFC 5424 HOSTNAME (default: the host name) and APP-NAME.
    pub hostname: String,
    pub app_name: String,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            retention: Duration::from_secs(2190 * 86400),
            max_bytes: 2048 * 1024 * 1024,
            syslog: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ListenerConfig<S: Stage = Resolved> {
    pub name: String,
    pub bind: SocketAddr,
    /// Largest MLLP frame accepted; bigger ones get AR naming the limit.
    pub max_frame_bytes: usize,
    /// Close a connection that sends nothing for this long.
    pub idle_timeout: Duration,
    /// A frame that has started must be complete within this long (defeats slowloris peers).
    pub frame_timeout: Duration,
    pub max_connections: usize,
    /// Most connections from one peer address, so one flooding host cannot take every slot.
    pub max_connections_per_peer: usize,
    /// Empty = any peer may connect.
    pub allow: Vec<Cidr>,
    pub tls: Option<TlsServerConfig<S>>,
}

pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct TlsServerConfig<S: Stage = Resolved> {
    pub cert: S::File,
    pub key: S::File,
    /// When set, clients must present a certificate signed by this CA (mutual TLS).
    pub client_ca: Option<S::File>,
    pub handshake_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct DestinationConfig<S: Stage = Resolved> {
    pub name: String,
    pub kind: DestinationKind<S>,
    pub delivery: DeliveryPolicy,
}

#[derive(Debug, Clone)]
pub enum DestinationKind<S: Stage = Resolved> {
    /// Each message is written to `<path>/<id>.hl7` atomically.
    Folder { path: PathBuf },
    /// POST each message (raw HL7 or JSON) to `url`.
    Http(HttpDestination<S>),
    /// POST a FHIR transaction Bundle to the base `url`.
    Fhir(HttpDestination<S>),
    /// MLLP(S) client to `host:port`.
    Mllp(MllpDestination),
    /// Upload each message as a file to an SFTP server.
    Sftp(SftpDestination<S>),
    /// CDC IIS SOAP `submitSingleMessage` to an immunization registry.
    IisSoap(IisSoapDestination<S>),
}

impl<S: Stage> DestinationKind<S> {
    pub fn label(&self) -> &'static str {
        match self {
            DestinationKind::Folder { .. } => "folder",
            DestinationKind::Http(_) => "http",
            DestinationKind::Fhir(_) => "fhir",
            DestinationKind::Mllp(_) => "mllp",
            DestinationKind::Sftp(_) => "sftp",
            DestinationKind::IisSoap(_) => "iis_soap",
        }
    }
}

/// How an `http` destination encodes the message body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpFormat {
    /// `application/hl7-v2` with the raw message bytes.
    Hl7,
    /// `application/json`: `{"id", "control_id", "type", "received_at", "hl7"}`.
    Json,
}

#[derive(Debug, Clone)]
pub struct HttpDestination<S: Stage = Resolved> {
    pub url: String,
    pub format: HttpFormat,
    /// Extra request headers (e.g. an API key), in config order.
    pub headers: Vec<(String, String)>,
    /// `[destination.auth]`: credentials for this destination only.
    pub auth: Option<S::Auth>,
    /// `[destination.tls]`: extra CA and SPKI pins (system roots always apply);
    /// its timeouts are the destination's `connect_timeout` and `timeout`.
    pub tls: S::Client,
    /// FHIR mapping settings (fhir destinations only).
    pub fhir: Option<FhirSettings<S>>,
}

/// How HL7 v2 is mapped for one FHIR destination (one tenant).
#[derive(Debug, Clone)]
pub struct FhirSettings<S: Stage = Resolved> {
    /// Part of every resource id and of tenant-local code/identifier systems.
    pub tenant: String,
    /// PUT Type/id (default) or conditional update by identifier.
    pub conditional: bool,
    /// `update = "merge"`: PUT Type/id, but a Patient is read first and
    /// merged with what the server has (written with If-Match).
    pub merge: bool,
    /// Assigning authority (PID-3.4 etc.) → identifier system URI.
    pub identifier_systems: Vec<(String, String)>,
    /// Directory of code-map CSV files, reloaded when they change.
    pub code_maps_dir: Option<S::CodeMaps>,
    /// Offset for HL7 times sent without one, e.g. "-05:00".
    pub utc_offset: Option<String>,
    /// One Provenance per Bundle (`provenance`, default true).
    pub provenance: bool,
}

#[derive(Debug, Clone)]
pub struct MllpDestination {
    /// `host:port` to connect to.
    pub address: String,
    /// MLLP over TLS (`mllps://`): the server certificate is verified against the host.
    pub tls: Option<MllpClientTls>,
}

#[derive(Debug, Clone)]
pub struct MllpClientTls {
    /// CA that signs the peer's certificate.
    pub ca_file: PathBuf,
    /// Our certificate and key when the peer requires mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// An SFTP server and how the gateway logs in (sftp destinations and pollers).
#[derive(Debug, Clone)]
pub struct SftpEndpoint<S: Stage = Resolved> {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// The remote directory as the URL gives it ("" = the login directory).
    pub dir: String,
    pub login: SshLogin<S>,
    /// Pinned host keys (required: never trusted on first use).
    pub known_hosts: S::KnownHosts,
}

#[derive(Debug, Clone)]
pub enum SshLogin<S: Stage = Resolved> {
    Key(S::SshKey),
    Password(S::Secret),
}

/// `kind = "sftp"`: each message is uploaded to `endpoint.dir` under a
/// temporary name, synced where the server offers it, then renamed to the
/// name `name_template` gives it.
#[derive(Debug, Clone)]
pub struct SftpDestination<S: Stage = Resolved> {
    pub endpoint: SftpEndpoint<S>,
    pub name_template: crate::deliver::name_template::NameTemplate,
}

/// `[[poller]] kind = "sftp"`: files fetched from a remote folder.
#[derive(Debug, Clone)]
pub struct SftpPollerConfig<S: Stage = Resolved> {
    pub name: String,
    pub endpoint: SftpEndpoint<S>,
    /// File name globs (any matches); names starting with '.' are never taken.
    pub patterns: Vec<Glob>,
    pub interval: Duration,
    pub after: AfterFetch,
    /// What the fetched files are (`format`).
    pub format: FetchFormat,
    /// Larger files are left on the server and reported.
    pub max_file_bytes: u64,
    /// `format = "x12"` only: the local folder (where eCW reads responses)
    /// that the TA1/999 of a refused file are written to.
    pub ack_dir: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub timeout: Duration,
}

/// What an sftp poller's files are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchFormat {
    /// `format = "x12"` (the default): each file is checked and journaled
    /// like a `[[pickup]]` X12 file (envelopes, ISA15 against `usage`,
    /// ISA13 de-dup; refused files are quarantined and left on the server).
    X12 { usage: Option<x12::Usage> },
    /// `format = "file"`: journaled as it is (kind `file`, type = extension).
    File,
}

/// What a poller does with a remote file once the journal has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterFetch {
    Delete,
    /// Rename it into this remote directory.
    MoveTo(String),
}

/// `kind = "iis_soap"`: the registry's endpoint (`http`: url and TLS;
/// its `auth` is unused) and the credentials it assigned, sent in the SOAP
/// body as the CDC WSDL requires.
#[derive(Debug, Clone)]
pub struct IisSoapDestination<S: Stage = Resolved> {
    pub http: HttpDestination<S>,
    pub username: String,
    pub password: S::Secret,
    pub facility_id: String,
}

/// Which messages must keep their relative order on a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaneMode {
    /// Per patient (first PID-3 + assigning authority): the default.
    Patient,
    /// The whole destination is one FIFO.
    Destination,
    /// No ordering: every message is its own lane.
    None,
}

/// What a dead letter does to the rest of its lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterPolicy {
    /// The lane waits until an operator replays or purges the dead letter
    /// (the default: a later update must not overtake an earlier one).
    Hold,
    /// The lane goes on with its next message.
    Continue,
}

#[derive(Debug, Clone)]
pub struct DeliveryPolicy {
    /// Lanes delivered concurrently (requests in flight).
    pub concurrency: usize,
    pub lane: LaneMode,
    pub on_dead_letter: DeadLetterPolicy,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Dead-letter a message after this many failed attempts (`None`: retry forever).
    pub max_attempts: Option<u32>,
    /// Dead-letter a message this long after its first attempt (`None`: no limit).
    pub max_age: Option<Duration>,
    /// A server's `Retry-After` is honoured up to this long.
    pub retry_after_max: Duration,
    /// Consecutive transient failures that open the circuit.
    pub circuit_failures: u32,
    /// While the circuit is open, one probe per this interval.
    pub probe_interval: Duration,
    pub connect_timeout: Duration,
    /// Whole-request (HTTP) or response (MLLP) timeout.
    pub timeout: Duration,
}

impl DeliveryPolicy {
    pub fn defaults_for<S: Stage>(kind: &DestinationKind<S>) -> Self {
        DeliveryPolicy {
            concurrency: match kind {
                // One connection keeps MLLP's strict request/response order.
                DestinationKind::Mllp(_) => 1,
                DestinationKind::Folder { .. } | DestinationKind::Sftp(_) => 4,
                DestinationKind::Http(_) | DestinationKind::Fhir(_) => 16,
                // Registries throttle; one request at a time is what they expect.
                DestinationKind::IisSoap(_) => 1,
            },
            lane: LaneMode::Patient,
            on_dead_letter: DeadLetterPolicy::Hold,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            max_attempts: None,
            max_age: None,
            retry_after_max: Duration::from_secs(3600),
            circuit_failures: 5,
            probe_interval: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    None,
    /// HL7 v2 → FHIR R4 transaction Bundle.
    Fhir,
    /// An X12 file → its x12-json (docs/x12-json.md).
    X12Json,
}

impl Transform {
    pub fn label(&self) -> &'static str {
        match self {
            Transform::None => "none",
            Transform::Fhir => "fhir",
            Transform::X12Json => "x12-json",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub name: String,
    pub from: Vec<String>,
    pub to: Vec<String>,
    pub transform: Transform,
    /// `types`: globs on "CODE^TRIGGER" (empty = any).
    pub message_types: Vec<Glob>,
    /// `sending_facility`: globs on MSH-4 (empty = any).
    pub sending_facilities: Vec<Glob>,
    /// `receiving_application`: globs on MSH-5 (empty = any).
    pub receiving_applications: Vec<Glob>,
}

/// `[health]`: `/healthz`, `/readyz`, `/metrics` over plain HTTP.
#[derive(Debug, Clone)]
pub struct HealthConfig {
    pub bind: SocketAddr,
}

/// Where `[health]` listens when the table is present without `bind`.
pub const DEFAULT_HEALTH_BIND: &str = "127.0.0.1:9090";

/// `[alerts]`: thresholds of the alert rules and where alerts go.
#[derive(Debug, Clone)]
pub struct AlertsConfig<S: Stage = Resolved> {
    /// How often the rules run.
    pub evaluate_every: Duration,
    /// A destination with more pending messages than this.
    pub pending_max: u64,
    /// A destination whose oldest pending message is older than this.
    pub oldest_pending_max: Duration,
    /// A destination down (circuit open) for longer than this.
    pub destination_down_max: Duration,
    /// Alert while any dead-letter queue is not empty.
    pub dead_letters: bool,
    /// Disk use (percent) that raises the disk alert; default `storage.warn_at_percent`.
    pub disk_warn_percent: u8,
    /// Days before a certificate's notAfter at which its alert starts (and escalates).
    pub cert_warn_days: Vec<u32>,
    /// How long the "restarted after a failure" alert stays up after start.
    pub restart_alert_for: Duration,
    /// A still-active alert is sent to the webhook again after this long.
    pub reminder: Duration,
    pub webhook: Option<WebhookConfig<S>>,
    /// Alertmanager's API (`POST /api/v2/alerts`).
    pub alertmanager: Option<WebhookConfig<S>>,
    /// The `site` label on Alertmanager alerts (default: empty, no label).
    pub site: String,
    /// `[[alerts.silence]]`: feeds that must not go quiet.
    pub silence: Vec<SilenceRule>,
    /// `[alerts.email]`: alert mails to the clinic's and the MSP's contacts.
    pub email: Option<EmailConfig<S>>,
    /// `[alerts.office_hours]`: who is told when (none: both sides, always).
    pub office_hours: Option<crate::ops::alerts::OfficeHours>,
}

/// `[alerts.email]`: an SMTP relay (STARTTLS or implicit TLS, optional
/// AUTH) and the contacts on each side.
#[derive(Debug, Clone)]
pub struct EmailConfig<S: Stage = Resolved> {
    pub host: String,
    pub port: u16,
    pub security: crate::ops::alerts::Security,
    pub from: String,
    /// Told inside office hours (and of critical alerts always).
    pub clinic: Vec<String>,
    /// Told outside office hours (and of critical alerts always).
    pub msp: Vec<String>,
    /// `type = "basic"` only: the SMTP AUTH username and password.
    pub auth: Option<S::Auth>,
    pub tls: S::Client,
}

/// A feed that goes quiet is an alert: no `message_type` (a route-style
/// glob) from `source` for `max`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SilenceRule {
    pub name: String,
    pub source: String,
    pub message_type: String,
    pub max: Duration,
    pub critical: bool,
    /// `hours = "office"`: only time inside `[alerts.office_hours]`
    /// counts toward `max` (default `"always"`: wall time).
    pub office_hours: bool,
}

impl<S: Stage> AlertsConfig<S> {
    pub fn defaults(storage: &StorageConfig) -> AlertsConfig<S> {
        AlertsConfig {
            evaluate_every: Duration::from_secs(5),
            pending_max: 1000,
            oldest_pending_max: Duration::from_secs(15 * 60),
            destination_down_max: Duration::from_secs(5 * 60),
            dead_letters: true,
            disk_warn_percent: storage.warn_at_percent,
            cert_warn_days: vec![90, 60, 30, 7, 1],
            restart_alert_for: Duration::from_secs(24 * 3600),
            reminder: Duration::from_secs(4 * 3600),
            webhook: None,
            alertmanager: None,
            site: String::new(),
            silence: Vec::new(),
            email: None,
            office_hours: None,
        }
    }
}

/// `[alerts] webhook_url` and its optional auth / TLS.
#[derive(Debug, Clone)]
pub struct WebhookConfig<S: Stage = Resolved> {
    pub url: String,
    pub auth: Option<S::Auth>,
    pub tls: S::Client,
}

/// `[fleet]`: the periodic heartbeat to the MSP.
#[derive(Debug, Clone)]
pub struct FleetConfig<S: Stage = Resolved> {
    pub url: String,
    pub interval: Duration,
    /// Configured, or the host name.
    pub box_id: S::BoxId,
    pub auth: Option<S::Auth>,
    pub tls: S::Client,
    /// The updater's `report.json` (its slots, versions, epoch floor, last
    /// check, download and wave), sent along when readable.
    pub updater_report: Option<PathBuf>,
    /// `[fleet.remote_write]`: push the metrics to a Prometheus-compatible store.
    pub remote_write: Option<RemoteWriteConfig<S>>,
}

/// `[fleet.remote_write]`: where and how often the box pushes its metrics
/// (Prometheus remote-write 1.0), and how much it keeps across an outage.
#[derive(Debug, Clone)]
pub struct RemoteWriteConfig<S: Stage = Resolved> {
    pub url: String,
    pub interval: Duration,
    /// Samples older than this are dropped unsent (the receiver's
    /// out-of-order / out-of-bounds window).
    pub max_age: Duration,
    /// At most this many samples wait in memory.
    pub max_samples: usize,
    pub auth: Option<S::Auth>,
    pub tls: S::Client,
}

/// `[status_page]`: the read-only HTML page for the office.
#[derive(Debug, Clone)]
pub struct StatusPageConfig<S: Stage = Resolved> {
    pub bind: SocketAddr,
    pub username: String,
    /// HTTP Basic password; `None` only when client certificates are required.
    pub password: Option<S::Secret>,
    /// HTTPS (and, with `client_ca`, client certificates).
    pub tls: Option<TlsServerConfig<S>>,
}

/// What the files of a `[[pickup]]` folder are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PickupFormat {
    /// One X12 file (one or more interchanges), journaled and sent as is.
    X12,
    /// One or more HL7 v2 messages (MSH-led; FHS/BHS batches too), each journaled.
    Hl7,
}

/// What becomes of a file once its bytes are durable in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterPickup {
    /// Moved to `<path>/.done/<YYYY-MM-DD>/`.
    Archive,
    /// Removed.
    Delete,
}

/// `[[pickup]]`: a folder source (a source like a listener: routes name it
/// in `from`).
#[derive(Debug, Clone)]
pub struct PickupConfig {
    pub name: String,
    /// The folder files are dropped into.
    pub path: PathBuf,
    /// Globs on the file name (`pattern`, one or a list).
    pub patterns: Vec<Glob>,
    pub format: PickupFormat,
    /// A file is taken once its size and mtime have not changed for this long.
    pub settle: Duration,
    pub after: AfterPickup,
    /// The full rescan (inotify wakes it sooner; on a CIFS mount it is the only way).
    pub rescan: Duration,
    /// Watch the folder with inotify (`inotify = false` on a network mount,
    /// where no events come: the rescan alone takes files).
    pub inotify: bool,
    /// X12: the ISA15 this connection expects (`usage = "T" | "P"`; none: either).
    pub usage: Option<x12::Usage>,
    /// X12: where the TA1/999 of a refused file are written (eCW reads responses there).
    pub ack_dir: Option<PathBuf>,
}
