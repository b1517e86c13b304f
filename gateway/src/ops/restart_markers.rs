//! How the previous run ended, from two small files in `data_dir`: the
//! daemon writes [`CLEAN_STOP_MARKER`] as the last step of an orderly
//! shutdown, and `gateway record-stop` (the unit's `ExecStopPost=`) writes
//! systemd's verdict to [`LAST_STOP_FILE`]. Both are read and removed at
//! start; [`judge`] (pure) turns them into the `restarted` alert's input.

use std::path::Path;

/// Marker written at a clean shutdown and removed at start.
pub const CLEAN_STOP_MARKER: &str = "stopped-cleanly";
/// Written by `gateway record-stop` (the unit's `ExecStopPost=`) with
/// systemd's `$SERVICE_RESULT`, `$EXIT_CODE` and `$EXIT_STATUS`.
pub const LAST_STOP_FILE: &str = "last-stop";

/// Why the previous run ended, found at start (see [`previous_stop`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartInfo {
    pub at_ms: u64,
    pub watchdog: bool,
    pub detail: String,
}

/// How the previous run ended, from the markers in `data_dir` (then removed).
/// `None` on a first start or after a clean stop.
pub fn previous_stop(data_dir: &Path, had_journal: bool, now_ms: u64) -> Option<RestartInfo> {
    let clean = data_dir.join(CLEAN_STOP_MARKER);
    let last = data_dir.join(LAST_STOP_FILE);
    let was_clean = clean.exists();
    let recorded = std::fs::read_to_string(&last).ok();
    let _ = std::fs::remove_file(&clean);
    let _ = std::fs::remove_file(&last);
    judge(recorded.as_deref(), was_clean, had_journal, now_ms)
}

/// The verdict from what the markers said. Pure. systemd's record wins
/// (it knows about the watchdog); without one, a journal that exists
/// without a clean-stop marker means a crash, a kill or a power cut.
pub fn judge(
    recorded: Option<&str>,
    was_clean: bool,
    had_journal: bool,
    now_ms: u64,
) -> Option<RestartInfo> {
    if let Some(text) = recorded {
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
                .unwrap_or("")
                .trim()
                .to_string()
        };
        let result = field("SERVICE_RESULT");
        if result == "watchdog" {
            return Some(RestartInfo {
                at_ms: now_ms,
                watchdog: true,
                detail: "systemd stopped it: no watchdog ping (a critical loop was stuck)".into(),
            });
        }
        if !result.is_empty() && result != "success" {
            return Some(RestartInfo {
                at_ms: now_ms,
                watchdog: false,
                detail: format!(
                    "systemd result {result}, {} {}",
                    field("EXIT_CODE"),
                    field("EXIT_STATUS")
                )
                .trim_end()
                .to_string(),
            });
        }
        if result == "success" {
            return None;
        }
    }
    (had_journal && !was_clean).then(|| RestartInfo {
        at_ms: now_ms,
        watchdog: false,
        detail: "the previous run did not stop cleanly: crash, kill or power loss".into(),
    })
}

/// Mark a clean stop (the next start will not raise the restart alert).
pub fn mark_clean_stop(data_dir: &Path) {
    let _ = journal::durable_fs::write_atomically(data_dir, CLEAN_STOP_MARKER, b"clean\n");
}

/// `gateway record-stop`: store systemd's verdict on the run that just ended.
pub fn record_stop(data_dir: &Path) -> Result<(), crate::Error> {
    let mut text = String::new();
    for k in ["SERVICE_RESULT", "EXIT_CODE", "EXIT_STATUS"] {
        text += &format!("{k}={}\n", std::env::var(k).unwrap_or_default());
    }
    journal::durable_fs::write_atomically(data_dir, LAST_STOP_FILE, text.as_bytes()).map_err(
        |source| crate::Error::Io {
            action: "cannot write",
            path: data_dir.join(LAST_STOP_FILE),
            source,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previous_stop_markers() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(previous_stop(d.path(), false, 5), None, "first start");
        assert!(previous_stop(d.path(), true, 5).is_some(), "unclean stop");
        mark_clean_stop(d.path());
        assert_eq!(previous_stop(d.path(), true, 5), None);
        std::fs::write(
            d.path().join(LAST_STOP_FILE),
            "SERVICE_RESULT=watchdog\nEXIT_CODE=killed\nEXIT_STATUS=ABRT\n",
        )
        .unwrap();
        assert!(previous_stop(d.path(), true, 5).unwrap().watchdog);
        std::fs::write(d.path().join(LAST_STOP_FILE), "SERVICE_RESULT=success\n").unwrap();
        assert_eq!(previous_stop(d.path(), true, 5), None);
        assert!(
            !d.path().join(LAST_STOP_FILE).exists(),
            "markers are consumed"
        );
    }

    #[test]
    fn systemd_verdicts() {
        let failed = judge(
            Some("SERVICE_RESULT=exit-code\nEXIT_CODE=exited\nEXIT_STATUS=1\n"),
            false,
            true,
            7,
        )
        .unwrap();
        assert_eq!(failed.detail, "systemd result exit-code, exited 1");
        assert_eq!((failed.at_ms, failed.watchdog), (7, false));
        // systemd's "success" wins over a missing clean-stop marker.
        assert_eq!(
            judge(Some("SERVICE_RESULT=success\n"), false, true, 7),
            None
        );
        // An empty record (record-stop run by hand) falls back to the marker.
        assert!(judge(Some("SERVICE_RESULT=\n"), false, true, 7).is_some());
        assert_eq!(judge(Some("SERVICE_RESULT=\n"), true, true, 7), None);
    }
}
