//! [`JournalError`] and the one place lower-level errors become it: sled's,
//! I/O with its context, a record that does not open, an encoding failure.

use std::path::Path;

use crate::quota::is_enospc;

/// Every error of the journal. `Io` keeps the `std::io::Error` as its
/// [`std::error::Error::source`]; its Display also says it (as it always has),
/// because operators read these one-line messages.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Over the quota/watermark or the disk is full: sender gets AE/CE + ERR 207.
    #[error("journal full: {reason}")]
    Full { reason: String },
    #[error("journal I/O error: {context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("journal corrupt: {context}")]
    Corrupt { context: String },
    /// What an operator asked for does not exist (e.g. a dead letter id).
    #[error("{what} not found")]
    NotFound { what: String },
    /// A request outside the journal's limits (e.g. a state value over
    /// 64 KiB, a batch over its bounds); `reason` says which and what to do.
    /// Nothing of it was stored.
    #[error("journal request refused: {reason}")]
    Invalid { reason: String },
    #[error("journal closed")]
    Closed,
}

impl JournalError {
    /// The same error again, for every request of a failed group (an
    /// `io::Error` cannot be cloned: its kind and text are kept).
    pub(crate) fn duplicate(&self) -> JournalError {
        match self {
            JournalError::Full { reason } => JournalError::Full {
                reason: reason.clone(),
            },
            JournalError::Io { context, source } => JournalError::Io {
                context: context.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            JournalError::Corrupt { context } => JournalError::Corrupt {
                context: context.clone(),
            },
            JournalError::Closed => JournalError::Closed,
            JournalError::NotFound { what } => JournalError::NotFound { what: what.clone() },
            JournalError::Invalid { reason } => JournalError::Invalid {
                reason: reason.clone(),
            },
        }
    }

    /// Whether sled (or the files under it) may now be in an unknown state:
    /// the writer then drops the Db and reopens it (sled poisons itself
    /// after an I/O error; after a failed fsync the page cache may have
    /// dropped dirty pages, so only a fresh open reads the truth).
    pub(crate) fn is_storage_failure(&self) -> bool {
        match self {
            JournalError::Io { .. } => true,
            // Full from the space guard is policy, not a failure; ENOSPC is both.
            JournalError::Full { reason } => reason.starts_with(NO_SPACE),
            _ => false,
        }
    }
}

/// The disk filled between the WAL append and sled's writes: `Full` (the
/// sender is told the disk is full) and a storage failure (the group is
/// durable in the WAL only: the reopen replays it once there is room).
pub(crate) fn no_space_for_sled(dir: &Path, why: &str) -> JournalError {
    JournalError::Full {
        reason: format!(
            "{NO_SPACE} for sled in {} after the WAL record: {why}",
            dir.display()
        ),
    }
}

/// How a `Full` caused by ENOSPC/EDQUOT starts (see `is_storage_failure`).
const NO_SPACE: &str = "no space left on device";

/// A sled error while doing `context`.
pub(crate) fn map_sled(context: String, e: sled::Error) -> JournalError {
    match e {
        sled::Error::Io(source) => {
            if is_enospc(&source) {
                JournalError::Full {
                    reason: format!("{NO_SPACE} ({context}): free disk space"),
                }
            } else {
                JournalError::Io { context, source }
            }
        }
        sled::Error::Corruption { .. } => JournalError::Corrupt {
            context: format!("{context}: sled reported corruption"),
        },
        other => JournalError::Io {
            context,
            source: std::io::Error::other(other.to_string()),
        },
    }
}

/// An I/O error (with what was being done) in the journal directory `dir`.
pub(crate) fn map_io(dir: &Path, (context, source): (String, std::io::Error)) -> JournalError {
    if is_enospc(&source) {
        JournalError::Full {
            reason: format!(
                "{NO_SPACE} ({context}) in data directory {}: free disk space",
                dir.display()
            ),
        }
    } else {
        JournalError::Io { context, source }
    }
}

/// A stored record (`what`: which one) that does not open, and why.
pub(crate) fn corrupt(what: String, why: &str) -> JournalError {
    JournalError::Corrupt {
        context: format!("{what}: {why}"),
    }
}

/// A record that could not be encoded (`what`: which one).
pub(crate) fn encode_failed(what: &str, e: postcard::Error) -> JournalError {
    JournalError::Io {
        context: format!("encode {what}"),
        source: std::io::Error::other(e.to_string()),
    }
}

/// sled is not open (a reopen after an I/O error failed).
pub(crate) fn unavailable(dir: &Path) -> JournalError {
    JournalError::Io {
        context: format!("journal {} unavailable", dir.display()),
        source: std::io::Error::other("sled could not be reopened"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_is_full_and_a_storage_failure_but_policy_full_is_not() {
        let enospc = std::io::Error::from_raw_os_error(nix::libc::ENOSPC);
        let e = map_io(Path::new("/j"), ("append WAL".into(), enospc));
        assert!(matches!(e, JournalError::Full { .. }), "{e}");
        assert!(e.is_storage_failure());
        assert!(e.duplicate().is_storage_failure());
        let policy = JournalError::Full {
            reason: "data directory /j is 96% full".into(),
        };
        assert!(!policy.is_storage_failure());
        let io = map_io(
            Path::new("/j"),
            ("fsync".into(), std::io::Error::other("EIO")),
        );
        assert!(io.is_storage_failure());
        assert_eq!(io.duplicate().to_string(), io.to_string());
        assert!(!corrupt("message 3".into(), "checksum mismatch").is_storage_failure());
    }
}
