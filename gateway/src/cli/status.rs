//! `gateway status`: ask the running daemon through its admin socket.

use std::path::Path;
use std::process::ExitCode;

use crate::config;
use crate::ops::admin::{self, ClientError, Reply, Request, StatusReport};

/// Exit status when no daemon answers (as `systemctl status` does for a stopped unit).
const NOT_RUNNING: u8 = 3;

pub async fn run(config_path: &Path, json: bool) -> ExitCode {
    // Only the admin socket's path is needed: the daemon's secrets are not
    // read (the boot-time health check runs as another unit).
    let cfg = match config::load_checked(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    match admin::request(&cfg.admin_socket(), &Request::Status).await {
        Ok(Reply::Status(report)) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            } else {
                print!("{}", render(&report));
            }
            ExitCode::SUCCESS
        }
        Ok(Reply::Error { message }) => {
            eprintln!("the daemon refused the request: {message}");
            ExitCode::FAILURE
        }
        Ok(_) => {
            eprintln!("error: the daemon answered with an unexpected reply");
            ExitCode::FAILURE
        }
        Err(ClientError::NotRunning(msg)) => {
            if json {
                println!("{}", serde_json::json!({ "running": false, "reason": msg }));
            }
            eprintln!("{msg}");
            ExitCode::from(NOT_RUNNING)
        }
        Err(ClientError::Failed(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// The human table.
pub fn render(r: &StatusReport) -> String {
    let mut out = String::new();
    out += &format!(
        "Clinic Gateway {} (pid {}) up {} since {}\nconfig {}\ndata   {} (journal {} on disk, disk {}% used)\n\n",
        r.version,
        r.pid,
        human_duration(r.uptime_secs),
        r.started_at,
        r.config,
        r.data_dir,
        human_bytes(r.journal.bytes_on_disk),
        r.journal.disk_percent_used
    );
    out += &format!(
        "{:<16} {:<22} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}\n",
        "LISTENER",
        "BIND",
        "CONNS",
        "RECEIVED",
        "ACKED",
        "DUPLICATE",
        "REJECTED",
        "ERRORED",
        "FRAMING"
    );
    for l in &r.listeners {
        let bind = format!(
            "{}{}",
            l.bind,
            if l.mutual_tls {
                " mtls"
            } else if l.tls {
                " tls"
            } else {
                ""
            }
        );
        out += &format!(
            "{:<16} {:<22} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}\n",
            l.name,
            bind,
            l.counts.connections_open,
            l.counts.received,
            l.counts.acked,
            l.counts.duplicates,
            l.counts.rejected,
            l.counts.errored,
            l.counts.framing_errors
        );
    }
    out += &format!(
        "\n{:<16} {:<6} {:>8} {:>8} {:>6} {:>10} {:>7} {:>8} {:<12}\n",
        "DESTINATION",
        "KIND",
        "PENDING",
        "OLDEST",
        "FLIGHT",
        "DELIVERED",
        "FAILED",
        "DEAD",
        "CIRCUIT"
    );
    let now_ms = crate::ops::clock::unix_ms();
    for d in &r.destinations {
        let oldest = d
            .oldest_pending_age_secs
            .map(human_duration)
            .unwrap_or_else(|| "-".into());
        let circuit = match (d.live.circuit.as_str(), d.live.down_since_ms) {
            ("closed", _) | ("", _) => "up".to_string(),
            (_, Some(t)) => format!("down {}", human_duration(now_ms.saturating_sub(t) / 1000)),
            (c, None) => c.to_string(),
        };
        out += &format!(
            "{:<16} {:<6} {:>8} {:>8} {:>6} {:>10} {:>7} {:>8} {:<12}\n",
            d.name,
            d.kind,
            d.pending,
            oldest,
            d.live.in_flight,
            d.delivered,
            d.live.failed_attempts,
            d.dead_letters,
            circuit
        );
        if d.live.held_lanes > 0 {
            out += &format!(
                "  {} lane(s) held behind dead letters: see `gateway dlq list --destination {}`\n",
                d.live.held_lanes, d.name
            );
        }
        if d.unmapped_distinct > 0 {
            let top: Vec<String> = d
                .unmapped_codes
                .iter()
                .take(5)
                .map(|u| format!("{}|{} ×{}", u.system, u.code, u.count))
                .collect();
            out += &format!(
                "  {} local code(s) without a mapping (add them to the code maps): {}\n",
                d.unmapped_distinct,
                top.join(", ")
            );
        }
        if let Some(e) = &d.live.last_error {
            let when = d
                .live
                .last_error_at_ms
                .map(|t| format!(" ({} ago)", human_duration(now_ms.saturating_sub(t) / 1000)))
                .unwrap_or_default();
            out += &format!("  last error{when}: {e}\n");
        }
    }
    for p in &r.pollers {
        let last = p
            .last_success_ms
            .map(|t| {
                format!(
                    "last success {} ago",
                    human_duration(now_ms.saturating_sub(t) / 1000)
                )
            })
            .unwrap_or_else(|| "no successful poll yet".into());
        if p.kind == "sftp" {
            out += &format!(
                "\npoller {} (sftp): {} poll(s), {} file(s) journaled, {} already journaled (removed remotely), {} refused (quarantined), {} left on the server (over max_file_bytes or refused); {last}\n",
                p.name, p.polls, p.stored, p.duplicates, p.unmappable, p.left_on_server
            );
        } else {
            out += &format!(
                "\npoller {}: {} poll(s), {} result(s) stored, {} re-fetched, {} unmappable (quarantined); {last}\n",
                p.name, p.polls, p.stored, p.duplicates, p.unmappable
            );
        }
        if let Some(e) = &p.last_error {
            out += &format!("  last error: {e}\n");
        }
        if let Some(r) = &p.last_refused {
            out += &format!("  last refused: {r}\n");
        }
    }
    for p in &r.pickups {
        out += &format!(
            "\npickup {}: {} file(s) taken, {} duplicate(s), {} rejected ({} still in .rejected/), {} in progress (settling or waiting for the journal)\n",
            p.name, p.taken, p.duplicates, p.rejected, p.rejected_waiting, p.in_progress
        );
        if let Some(e) = &p.last_error {
            out += &format!("  last error: {e}\n");
        }
    }
    if !r.exports.is_empty() {
        out += &format!("\n{}", super::export::render(&r.exports, now_ms));
    }
    out += &format!(
        "\njournal (format {}): {} message(s), {} duplicate(s), {} control-id reuse(s), {} quarantined\n",
        r.journal.format,
        r.journal.messages,
        r.journal.duplicates,
        r.journal.control_id_reuses,
        r.journal.quarantined
    );
    for c in &r.certificates {
        match (c.days_left((now_ms / 1000) as i64), &c.error) {
            (Some(d), _) => {
                out += &format!(
                    "certificate {} {} ({}): {d} day(s) left, {}\n",
                    c.owner_kind, c.owner, c.role, c.path
                )
            }
            (None, Some(e)) => {
                out += &format!(
                    "certificate {} {} ({}): unreadable: {e}\n",
                    c.owner_kind, c.owner, c.role
                )
            }
            (None, None) => {}
        }
    }
    if let Some(rw) = &r.remote_write {
        out += &remote_write_line(rw, now_ms);
    }
    if r.alerts.is_empty() {
        out += "\nALERTS: none\n";
    } else {
        out += &format!("\nALERTS ({}):\n", r.alerts.len());
        for a in &r.alerts {
            out += &format!(
                "  [{}] {}\n    affected: {}\n    since:    {} ({} ago)\n    do:       {}\n",
                a.severity.as_str().to_uppercase(),
                a.title,
                a.affected,
                a.since,
                human_duration(now_ms.saturating_sub(a.since_ms) / 1000),
                a.action
            );
        }
    }
    out
}

/// `[fleet.remote_write]`: sent, waiting, dropped, and the failure while failing.
fn remote_write_line(rw: &crate::ops::remote_write::RemoteWriteStatus, now_ms: u64) -> String {
    let last = rw.last_success_ms.map_or("never".to_string(), |t| {
        format!("{} ago", human_duration(now_ms.saturating_sub(t) / 1000))
    });
    let mut line = format!(
        "remote-write {}: {} sample(s) sent (last {last}), {} waiting",
        rw.url, rw.sent_samples, rw.pending_samples
    );
    if let Some(age) = rw.oldest_pending_age_secs {
        line += &format!(" (oldest {})", human_duration(age));
    }
    let dropped = rw.dropped_too_old + rw.dropped_overflow + rw.rejected;
    if dropped > 0 {
        line += &format!(
            ", {dropped} dropped ({} older than max_age, {} buffer full, {} refused)",
            rw.dropped_too_old, rw.dropped_overflow, rw.rejected
        );
    }
    if let Some(e) = &rw.last_error {
        line += &format!("; failing: {e}");
    }
    line + "\n"
}

pub(crate) fn human_duration(s: u64) -> String {
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}
