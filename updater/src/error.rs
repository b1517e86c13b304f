//! One error type. Every message names the file, field or URL involved and,
//! where there is one, what the operator can do about it.

use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or device operation failed.
    #[error("{path}: {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    /// The updater's own configuration is wrong.
    #[error("{file}: {msg}")]
    Config { file: PathBuf, msg: String },
    /// Signed metadata was rejected (signature, threshold, expiry, rollback,
    /// mix-and-match, size). Nothing is installed.
    #[error("update metadata rejected: {0}")]
    Trust(String),
    /// A target is well signed but not acceptable to this box (epoch floor,
    /// downgrade, size, malformed custom metadata).
    #[error("target {name} rejected: {reason}")]
    Target { name: String, reason: String },
    /// Downloading failed for good (a 4xx, or retries used up).
    #[error("download stopped: {0}")]
    Download(String),
    /// Read-back verification of a written slot failed.
    #[error("slot {slot} ({device}) failed verification: {reason}")]
    Verify {
        slot: String,
        device: String,
        reason: String,
    },
    /// The boot loader backend failed.
    #[error("boot control ({backend}): {msg}")]
    Boot { backend: &'static str, msg: String },
    /// The install cannot proceed in the current state.
    #[error("{0}")]
    State(String),
    /// Repository tooling (`updater repo ...`).
    #[error("repo {dir}: {msg}")]
    Repo { dir: PathBuf, msg: String },
    /// A local health check failed (the reasons of the last round).
    #[error("{0}")]
    Unhealthy(String),
    /// A health check that can no longer pass in this boot (the unit failed,
    /// or keeps being restarted): the checks stop at once.
    #[error("{0}")]
    Hopeless(String),
    /// A command (health check, reboot) could not be started.
    #[error("{program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    /// A command ran and failed; `detail` is the last line it wrote to stderr.
    #[error("{command} exited with {status}{detail}")]
    Command {
        command: String,
        status: std::process::ExitStatus,
        detail: String,
    },
    /// A listener that must accept a connection did not.
    #[error("{addr}: {source}")]
    Connect {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// The written slot does not read back as the signed image.
    #[error("{0}")]
    ReadBack(String),
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// A simulated power cut from the fault-injecting test wrappers.
    #[error("simulated power cut at I/O point {0}")]
    PowerCut(u64),
}

impl Error {
    pub fn io(path: impl AsRef<Path>, action: &'static str, source: std::io::Error) -> Self {
        // The fault injector reports a power cut as an io::Error; keep it recognisable.
        if let Some(n) = crate::fault::power_cut_point(&source) {
            return Error::PowerCut(n);
        }
        Error::Io {
            path: path.as_ref().to_path_buf(),
            action,
            source,
        }
    }

    pub fn repo(dir: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::Repo {
            dir: dir.as_ref().to_path_buf(),
            msg: msg.into(),
        }
    }

    pub fn is_power_cut(&self) -> bool {
        matches!(self, Error::PowerCut(_))
    }
}
