//! The gateway crate's error type: what starting the daemon, binding a
//! listener, building a sender or a CLI verb can fail with. Module errors
//! that carry their own cause (TLS files, MLLP binds, the journal, the HTTPS
//! client) convert into it with `?` and stay reachable through
//! [`std::error::Error::source`]. The Display is one line an operator reads
//! on stderr or in the journal, so each variant says what failed and, where
//! there is one, what to do.
//!
//! Configuration *validation* is deliberately not built on this type: a
//! field check returns a sentence that [`crate::config::ConfigErrors`]
//! places at FILE:LINE:COLUMN, many at once (see `config/error.rs`).

use std::net::SocketAddr;
use std::path::PathBuf;

use journal::JournalError;

use crate::config::ConfigErrors;
use crate::net::https_client::HttpsClientError;
use crate::net::tls_config::TlsConfigError;
use crate::source::SourceError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory the gateway itself manages.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A TCP listener of the `[table]` could not bind; `hint` says what to change.
    #[error("[{table}] bind {addr}: {source}: {hint}")]
    Bind {
        table: &'static str,
        addr: SocketAddr,
        hint: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("another gateway is already running with this data directory (its admin socket {} answers); stop it first", path.display())]
    AlreadyRunning { path: PathBuf },
    #[error("cannot open the journal in {}: {source}. The daemon will not start on it: stop it, then run `gateway journal verify` to see what is damaged and where, and `gateway journal salvage --to DIR` to build a new journal from everything intact (docs/durability.md, \"Verify and salvage\")", dir.display())]
    JournalOpen {
        dir: PathBuf,
        #[source]
        source: JournalError,
    },
    /// An environment setting of the daemon's unit that is not valid.
    #[error("environment {var}: {why}")]
    Env { var: &'static str, why: String },
    #[error("closing the journal: {0}")]
    JournalClose(#[source] JournalError),
    #[error("{what} task failed: {source}")]
    Task {
        what: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    #[error(transparent)]
    Source(Box<SourceError>),
    #[error(transparent)]
    HttpsClient(#[from] HttpsClientError),
    /// A TLS setting (`setting` is its config path) whose files failed to load.
    #[error("{setting}: {source}")]
    Tls {
        setting: &'static str,
        #[source]
        source: Box<TlsConfigError>,
    },
    #[error("header name '{name}': {source}")]
    HeaderName {
        name: String,
        #[source]
        source: reqwest::header::InvalidHeaderName,
    },
    #[error("header '{name}' value: {source}")]
    HeaderValue {
        name: String,
        #[source]
        source: reqwest::header::InvalidHeaderValue,
    },
    #[error("url '{url}': {source}")]
    Url {
        url: String,
        #[source]
        source: url::ParseError,
    },
    #[error("code maps: {0}")]
    CodeMap(#[from] fhir_map::CodeMapError),
    /// One destination could not be set up; the cause is chained.
    #[error("destination '{name}': {source}")]
    Destination {
        name: String,
        #[source]
        source: Box<Error>,
    },
}

// Boxed: these module errors are large, and `Error` travels in every
// start-up `Result`.
impl From<SourceError> for Error {
    fn from(e: SourceError) -> Error {
        Error::Source(Box::new(e))
    }
}
