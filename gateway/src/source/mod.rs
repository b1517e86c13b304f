//! Sources: where messages come from. Each hands what it receives to the
//! one accept path (`crate::accept`), so parsing, routing, journaling,
//! delivery, retries and dead letters are the same for every message.
//!
//! - [`mllp_listener`]: MLLP(S) listeners (one task per connection; the
//!   reply is the HL7 ACK the accept path built).
//! - [`poller`]: the HTTPS results poller, with its pure helpers in
//!   [`results`].
//!
//! - [`export`]: the FHIR Bulk Data `$export` client (`[[export]]`).
//!
//! The pickup folder and SFTP poller will be sources here too.

pub mod export;
pub mod mllp_listener;
pub mod poller;
pub mod results;

use std::net::SocketAddr;

use crate::net::tls_config::TlsConfigError;

/// Why a source could not start; names the source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("listener '{listener}': {source}")]
    Tls {
        listener: String,
        source: TlsConfigError,
    },
    #[error("listener '{listener}': cannot bind {addr}: {source}")]
    Bind {
        listener: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
}
