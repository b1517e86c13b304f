//! Logging: journald (structured) when running under systemd, a readable
//! stderr format otherwise. Callers must never log PHI: message type,
//! control id, listener, destination, ids and outcomes only.
//!
//! Structured fields come from the `log` key-values of a record
//! (`log::warn!(target: "...", destination = name, outcome = "retry"; "...")`
//! becomes `DESTINATION=` and `OUTCOME=` journal fields). Every journald
//! record also gets a `MESSAGE_ID`: a fixed 128-bit id per event kind
//! ([`MESSAGE_IDS`]), from the record's `event` key, else from its target,
//! so `journalctl MESSAGE_ID=e326365ac8b44b33a34cfe567f575a4e` lists every
//! alert that fired.

use std::io::Write;

use log::kv::{Key, Source, Value, VisitSource};
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
        let mut fields = KvText(String::new());
        let _ = record.key_values().visit(&mut fields);
        if !fields.0.is_empty() {
            fields.0.push(']');
        }
        let line = format!(
            "{} {:<5} {}: {}{}\n",
            clock::iso8601(clock::unix_ms()),
            record.level(),
            record.target(),
            record.args(),
            fields.0
        );
        // One write call per line so concurrent lines do not interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Key-values as " [key=value ...]" for the stderr format.
struct KvText(String);

impl<'kvs> VisitSource<'kvs> for KvText {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        self.0 += if self.0.is_empty() { " [" } else { " " };
        self.0 += &format!("{key}={value}");
        Ok(())
    }
}

/// Event kinds and their journald `MESSAGE_ID`s (fixed; never reuse one
/// for another meaning). Documented in docs/operations.md.
pub const MESSAGE_IDS: &[(&str, &str)] = &[
    ("startup", "5268a1c0d86d4187903eadca71596775"),
    ("ready", "8ec1bbd7fc30464b8b21d45dcf000eb6"),
    ("stopping", "360ae1b6adce4a92a838e02bf4b75fa9"),
    ("stopped", "e2ecbb1b102d46cfa20758f4eadaf2d0"),
    ("watchdog", "558478cfe6b64d2b8622e70ad03af937"),
    ("alert_fired", "e326365ac8b44b33a34cfe567f575a4e"),
    ("alert_reminder", "d02acfd600714f6c8617616416684856"),
    ("alert_resolved", "ca50fa4f4cb44b83afeda44d418a9a0d"),
    ("alert_webhook_failed", "2337ce15f0db45dcb278bc2c50ab8883"),
    ("fleet", "8398c165a8f84ad391d8c16fefa6d2c7"),
    ("delivery", "b3fe679917294224831bb269a81a0378"),
    ("listener", "d4b9c2ea91634b6c8b748792cfecc67c"),
    ("journal", "6349f6c295184226b2c6928c2d535cf4"),
    ("dlq", "b6b13e3615c54641afa5b0ce153185be"),
    ("other", "51e4b9c027db4298a0afacc0c1f0cffc"),
];

/// The event kind of a record: its `event` key if that names a kind (or a
/// kind's prefix: "fleet_failed" → fleet), else one derived from the target.
pub fn event_kind(target: &str, event: Option<&str>) -> &'static str {
    if let Some(e) = event {
        if let Some((k, _)) = MESSAGE_IDS.iter().find(|(k, _)| *k == e) {
            return k;
        }
        if let Some((k, _)) = MESSAGE_IDS
            .iter()
            .find(|(k, _)| e.starts_with(&format!("{k}_")))
        {
            return k;
        }
    }
    let t = target.strip_prefix("gateway::").unwrap_or(target);
    match t.split("::").next().unwrap_or("") {
        "deliver" | "outbox" => "delivery",
        "mllp" | "listener" | "ingest" => "listener",
        "journal" => "journal",
        "dlq" => "dlq",
        "watchdog" => "watchdog",
        "fleet" => "fleet",
        "alerts" => "alert_fired",
        _ if target.starts_with("gateway") && t.starts_with("journal") => "journal",
        _ => "other",
    }
}

pub fn message_id(kind: &str) -> &'static str {
    MESSAGE_IDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, id)| *id)
        .unwrap_or("51e4b9c027db4298a0afacc0c1f0cffc")
}

/// The record's own key-values plus `MESSAGE_ID`.
struct WithMessageId<'a> {
    id: &'static str,
    inner: &'a dyn Source,
}

impl Source for WithMessageId<'_> {
    fn visit<'kvs>(&'kvs self, v: &mut dyn VisitSource<'kvs>) -> Result<(), log::kv::Error> {
        v.visit_pair(Key::from_str("MESSAGE_ID"), Value::from(self.id))?;
        self.inner.visit(v)
    }
}

/// journald with a `MESSAGE_ID` on every record.
struct Journald {
    inner: systemd_journal_logger::JournalLog,
    level: LevelFilter,
}

impl Log for Journald {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.level && is_ours_or_important(metadata)
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let event = record
            .key_values()
            .get(Key::from_str("event"))
            .and_then(|v| v.to_borrowed_str().map(str::to_string));
        let kind = event_kind(record.target(), event.as_deref());
        let kvs = WithMessageId {
            id: message_id(kind),
            inner: record.key_values(),
        };
        let rebuilt = Record::builder()
            .args(*record.args())
            .level(record.level())
            .target(record.target())
            .module_path(record.module_path())
            .file(record.file())
            .line(record.line())
            .key_values(&kvs)
            .build();
        let _ = self.inner.journal_send(&rebuilt);
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
            let inner = logger.with_syslog_identifier("clinic-gateway".to_string());
            if log::set_boxed_logger(Box::new(Journald { inner, level })).is_ok() {
                log::set_max_level(level);
                return;
            }
        }
    }
    if log::set_boxed_logger(Box::new(StderrLogger { level })).is_ok() {
        log::set_max_level(level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_fixed_unique_128_bit() {
        let mut seen = std::collections::HashSet::new();
        for (kind, id) in MESSAGE_IDS {
            assert_eq!(id.len(), 32, "{kind}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{kind}");
            assert!(seen.insert(*id), "{kind} reuses an id");
        }
        assert_eq!(
            event_kind("gateway::alerts", Some("alert_resolved")),
            "alert_resolved"
        );
        assert_eq!(event_kind("gateway::fleet", Some("fleet_failed")), "fleet");
        assert_eq!(event_kind("gateway::deliver::outbox", None), "delivery");
        assert_eq!(event_kind("gateway::daemon", Some("ready")), "ready");
        assert_eq!(event_kind("sled::tree", None), "other");
        assert_eq!(message_id("ready"), "8ec1bbd7fc30464b8b21d45dcf000eb6");
    }
}
