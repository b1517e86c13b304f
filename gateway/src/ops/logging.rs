//! Logging: journald (structured) when running under systemd, a readable
//! stderr format otherwise. Callers must never log PHI: message type,
//! control id, listener, destination, ids and outcomes only.

use std::io::Write;

use log::{LevelFilter, Log, Metadata, Record};

use super::clock;

struct StderrLogger {
    level: LevelFilter,
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.level && is_ours_or_important(metadata)
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format!(
            "{} {:<5} {}: {}\n",
            clock::iso8601(clock::unix_ms()),
            record.level(),
            record.target(),
            record.args()
        );
        // One write call per line so concurrent lines do not interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Third-party crates (sled, rustls) log at debug/trace in detail; keep only their warnings.
fn is_ours_or_important(m: &Metadata) -> bool {
    m.target().starts_with("gateway") || m.level() <= log::Level::Warn
}

/// Install the logger once. `GATEWAY_LOG` = error|warn|info|debug|trace (default info).
pub fn init() {
    let level = std::env::var("GATEWAY_LOG")
        .ok()
        .and_then(|v| v.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::Info);
    if systemd_journal_logger::connected_to_journal() {
        if let Ok(logger) = systemd_journal_logger::JournalLog::new() {
            let logger = logger.with_syslog_identifier("clinic-gateway".to_string());
            if logger.install().is_ok() {
                log::set_max_level(level);
                return;
            }
        }
    }
    if log::set_boxed_logger(Box::new(StderrLogger { level })).is_ok() {
        log::set_max_level(level);
    }
}
