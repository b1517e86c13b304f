//! Sources: where messages come from. Each hands what it receives to the
//! one accept path (`crate::accept`), so parsing, routing, journaling,
//! delivery, retries and dead letters are the same for every message.
//!
//! - [`mllp_listener`]: MLLP(S) listeners (one task per connection; the
//!   reply is the HL7 ACK the accept path built).
//! - [`poller`]: the HTTPS results poller, with its pure helpers in
//!   [`results`].
//! - [`sftp_poller`]: files fetched from an SFTP server's folder.
//!
//! - [`pickup`]: `[[pickup]]` folders (X12 or HL7 files), with the pure
//!   split of HL7 files in [`hl7_file`].
//! - [`export`]: the FHIR Bulk Data `$export` client (`[[export]]`).

pub mod export;
pub mod hl7_file;
pub mod mllp_listener;
pub mod pickup;
pub mod poller;
pub mod results;
pub mod sftp_poller;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::watch;

use crate::ops::clock::unix_ms;
use crate::ops::watchdog::Heartbeat;
use poller::PollerState;

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

/// A poller's wait between rounds: beats so the watchdog sees a live loop;
/// false if the daemon is shutting down.
pub async fn sleep_beating(
    heartbeat: &Heartbeat,
    interval: Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let until = tokio::time::Instant::now() + interval;
    loop {
        heartbeat.beat();
        let now = tokio::time::Instant::now();
        if now >= until {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep((until - now).min(Duration::from_secs(1))) => {}
            _ = shutdown.changed() => return false,
        }
    }
}

/// Writes the TA1/999 of a refused X12 file into `dir` (where eCW reads
/// responses), each as `<file>.<its ISA13>.ta1|999`, atomically (temp
/// file, fsync, rename); `source` names the pickup or poller in the log.
/// Returns how many were written (a failure is logged, never fatal: the
/// file is refused and quarantined either way).
pub fn write_acks(source: &str, dir: &std::path::Path, file: &str, acks: &[x12::Ack]) -> usize {
    let mut written = 0;
    for ack in acks {
        let ext = match ack.kind {
            x12::AckKind::Ta1 => "ta1",
            x12::AckKind::Ack999 => "999",
        };
        let name = format!("{file}.{:09}.{ext}", ack.control_number);
        let done = journal::durable_fs::create_dir_all(dir)
            .and_then(|()| journal::durable_fs::write_atomically(dir, &name, &ack.bytes));
        match done {
            Ok(()) => written += 1,
            Err(e) => {
                log::error!(target: "gateway::source", "{source}: cannot write {name} to {}: {e}", dir.display())
            }
        }
    }
    written
}

/// A poller round's outcome into its status and the log: one line when
/// polling starts failing and one when it works again (status keeps the
/// latest error); `what` names what `Ok(n)` counts.
pub fn record_round(
    s: &mut PollerState,
    failing: &mut bool,
    name: &str,
    interval: Duration,
    what: &str,
    result: Result<u64, String>,
) {
    match result {
        Ok(n) => {
            if *failing {
                log::info!(target: "gateway::poller", "poller {name}: polling works again");
            }
            *failing = false;
            if n > 0 {
                log::info!(target: "gateway::poller", "poller {name}: journaled {n} new {what}");
            }
            s.last_success_ms = Some(unix_ms());
            s.last_error = None;
        }
        Err(e) => {
            if !*failing {
                log::warn!(target: "gateway::poller", "poller {name}: {}; retrying every {} s", crate::deliver::outage_log::error_class(&e), interval.as_secs().max(1));
            }
            *failing = true;
            s.last_error = Some(e);
        }
    }
}
