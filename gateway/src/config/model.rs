//! The validated configuration the daemon runs on. Every path is absolute
//! (resolved against the config file's directory) and every default is filled.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::Cidr;

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was loaded from (for messages and for finding the daemon).
    pub source: PathBuf,
    pub data_dir: PathBuf,
    /// Unix socket the CLI uses to reach the daemon; default `<data_dir>/admin.sock`.
    pub admin_socket: Option<PathBuf>,
    pub storage: StorageConfig,
    pub listeners: Vec<ListenerConfig>,
    pub destinations: Vec<DestinationConfig>,
    pub routes: Vec<RouteConfig>,
}

impl Config {
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
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            quota_bytes: None,
            warn_at_percent: 80,
            refuse_at_percent: 95,
            quarantine_max_entries: 1000,
            quarantine_max_bytes: 64 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ListenerConfig {
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
    pub tls: Option<TlsServerConfig>,
}

pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct TlsServerConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by this CA (mutual TLS).
    pub client_ca: Option<PathBuf>,
    pub handshake_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct DestinationConfig {
    pub name: String,
    pub kind: DestinationKind,
}

#[derive(Debug, Clone)]
pub enum DestinationKind {
    /// Each message is written to `<path>/<id>.hl7` atomically.
    Folder { path: PathBuf },
}

impl DestinationKind {
    pub fn label(&self) -> &'static str {
        match self {
            DestinationKind::Folder { .. } => "folder",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    None,
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub name: String,
    pub from: Vec<String>,
    pub to: Vec<String>,
    pub transform: Transform,
}
