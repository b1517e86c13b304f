//! `/metrics`: the Prometheus text exposition format (version 0.0.4).
//! [`render`] is pure: it takes a status report and the few extra readings
//! the report does not carry. Names follow the Prometheus conventions:
//! `gateway_` prefix, base units (seconds, bytes, ratios), `_total` on
//! counters. Labels carry listener, destination and certificate names only.
//! [`collect`] gives the same series as values, for remote-write.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::admin::StatusReport;
use journal::HistogramSnapshot;

/// Readings beside the status report.
#[derive(Debug, Clone, Default)]
pub struct Extra {
    pub ready: bool,
    pub started_unix_secs: u64,
    pub commit_latency: Option<HistogramSnapshot>,
    pub refuse_at_percent: u8,
    pub warn_at_percent: u8,
    pub now_unix_secs: i64,
}

/// A label value escaped per the exposition format.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn float(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

/// One series' value: name, labels (as rendered), value.
pub type Reading = (String, Vec<(String, String)>, f64);

/// The text, or the values (for remote-write).
enum Out {
    Text(String),
    Values(Vec<Reading>),
}

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        if let Out::Text(t) = self {
            let _ = writeln!(t, "# HELP {name} {help}");
            let _ = writeln!(t, "# TYPE {name} {kind}");
        }
    }
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: impl std::fmt::Display) {
        match self {
            Out::Text(t) => {
                t.push_str(name);
                if !labels.is_empty() {
                    t.push('{');
                    for (i, (k, val)) in labels.iter().enumerate() {
                        if i > 0 {
                            t.push(',');
                        }
                        let _ = write!(t, "{k}=\"{}\"", esc(val));
                    }
                    t.push('}');
                }
                let _ = writeln!(t, " {v}");
            }
            Out::Values(vs) => {
                // Every value is a number or ±Inf as written; f64 reads both.
                if let Ok(v) = v.to_string().parse::<f64>() {
                    let labels = labels
                        .iter()
                        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                        .collect();
                    vs.push((name.to_string(), labels, v));
                }
            }
        }
    }
}

/// The `/metrics` text.
pub fn render(r: &StatusReport, x: &Extra) -> String {
    match build(Out::Text(String::with_capacity(8192)), r, x) {
        Out::Text(t) => t,
        Out::Values(_) => String::new(),
    }
}

/// The same series as [`render`], as values.
pub fn collect(r: &StatusReport, x: &Extra) -> Vec<Reading> {
    match build(Out::Values(Vec::with_capacity(256)), r, x) {
        Out::Values(v) => v,
        Out::Text(_) => Vec::new(),
    }
}

fn build(mut o: Out, r: &StatusReport, x: &Extra) -> Out {
    o.family(
        "gateway_build_info",
        "gauge",
        "Version of the running gateway (value is always 1).",
    );
    o.sample("gateway_build_info", &[("version", &r.version)], 1);
    o.family(
        "gateway_ready",
        "gauge",
        "1 when the gateway accepts messages (see /readyz for the reason when 0).",
    );
    o.sample("gateway_ready", &[], u8::from(x.ready));
    o.family(
        "gateway_start_time_seconds",
        "gauge",
        "Start time of the daemon, seconds since the Unix epoch.",
    );
    o.sample("gateway_start_time_seconds", &[], x.started_unix_secs);
    o.family(
        "gateway_uptime_seconds",
        "gauge",
        "Seconds since the daemon started.",
    );
    o.sample("gateway_uptime_seconds", &[], r.uptime_secs);

    type Getter = fn(&super::stats::ListenerSnapshot) -> u64;
    let listener_counters: [(&str, &str, Getter); 9] = [
        (
            "gateway_messages_received_total",
            "HL7 messages received (complete frames).",
            |c| c.received,
        ),
        (
            "gateway_messages_acked_total",
            "Messages answered AA/CA after they were stored durably.",
            |c| c.acked,
        ),
        (
            "gateway_messages_duplicate_total",
            "Retransmissions (same sender and MSH-10) answered from the journal.",
            |c| c.duplicates,
        ),
        (
            "gateway_framing_errors_total",
            "MLLP framing errors (bytes outside a frame, broken frames).",
            |c| c.framing_errors,
        ),
        (
            "gateway_messages_oversized_total",
            "Frames over max_frame_bytes (answered AR).",
            |c| c.oversized,
        ),
        ("gateway_connections_total", "Connections accepted.", |c| {
            c.connections_total
        }),
        (
            "gateway_connections_refused_total",
            "Connections refused (allowlist, limits, TLS handshake).",
            |c| c.connections_refused,
        ),
        (
            "gateway_connection_timeouts_total",
            "Connections closed for idle or frame timeouts.",
            |c| c.timeouts,
        ),
        (
            "gateway_junk_bytes_total",
            "Bytes discarded outside MLLP frames.",
            |c| c.junk_bytes,
        ),
    ];
    for (name, help, get) in listener_counters {
        o.family(name, "counter", help);
        for l in &r.listeners {
            o.sample(name, &[("listener", &l.name)], get(&l.counts));
        }
    }
    if !r.pickups.is_empty() {
        o.family(
            "gateway_pickup_files_total",
            "counter",
            "Files a pickup folder took (journaled, then archived or deleted), found already journaled, or moved to .rejected/.",
        );
        for p in &r.pickups {
            for (outcome, n) in [
                ("taken", p.taken),
                ("duplicate", p.duplicates),
                ("rejected", p.rejected),
            ] {
                o.sample(
                    "gateway_pickup_files_total",
                    &[("pickup", &p.name), ("outcome", outcome)],
                    n,
                );
            }
        }
        o.family(
            "gateway_pickup_in_progress",
            "gauge",
            "Matching files in a pickup folder not yet taken (settling, or waiting for the journal).",
        );
        for p in &r.pickups {
            o.sample(
                "gateway_pickup_in_progress",
                &[("pickup", &p.name)],
                p.in_progress,
            );
        }
    }
    o.family("gateway_messages_nacked_total", "counter", "Messages answered with a negative ACK: reason=error (AE/CE, could not take it now) or reject (AR/CR, unreadable or too large).");
    for l in &r.listeners {
        o.sample(
            "gateway_messages_nacked_total",
            &[("listener", &l.name), ("reason", "error")],
            l.counts.errored,
        );
        o.sample(
            "gateway_messages_nacked_total",
            &[("listener", &l.name), ("reason", "reject")],
            l.counts.rejected,
        );
    }
    o.family(
        "gateway_connections_open",
        "gauge",
        "Open MLLP connections.",
    );
    for l in &r.listeners {
        o.sample(
            "gateway_connections_open",
            &[("listener", &l.name)],
            l.counts.connections_open,
        );
    }

    let j = &r.journal;
    o.family(
        "gateway_journal_bytes",
        "gauge",
        "Bytes the journal uses on disk.",
    );
    o.sample("gateway_journal_bytes", &[], j.bytes_on_disk);
    o.family(
        "gateway_journal_messages_total",
        "counter",
        "Messages stored in the journal.",
    );
    o.sample("gateway_journal_messages_total", &[], j.messages);
    o.family(
        "gateway_journal_quarantined_total",
        "counter",
        "Unreadable inputs kept in the quarantine.",
    );
    o.sample("gateway_journal_quarantined_total", &[], j.quarantined);
    o.family(
        "gateway_journal_pruned_total",
        "counter",
        "Delivered messages removed by retention.",
    );
    o.sample("gateway_journal_pruned_total", &[], j.pruned);
    if let Some(h) = &x.commit_latency {
        let name = "gateway_journal_commit_duration_seconds";
        o.family(
            name,
            "histogram",
            "Time of one durable group commit (WAL append and fdatasync).",
        );
        for (le, n) in &h.buckets {
            o.sample(&format!("{name}_bucket"), &[("le", &float(*le))], n);
        }
        o.sample(&format!("{name}_sum"), &[], float(h.sum_seconds));
        o.sample(&format!("{name}_count"), &[], h.count);
    }
    o.family(
        "gateway_disk_used_ratio",
        "gauge",
        "Fraction of the data filesystem in use (0-1).",
    );
    o.sample(
        "gateway_disk_used_ratio",
        &[],
        float(f64::from(j.disk_percent_used) / 100.0),
    );
    o.family(
        "gateway_disk_warn_ratio",
        "gauge",
        "Disk use at which the gateway warns.",
    );
    o.sample(
        "gateway_disk_warn_ratio",
        &[],
        float(f64::from(x.warn_at_percent) / 100.0),
    );
    o.family(
        "gateway_disk_refuse_ratio",
        "gauge",
        "Disk use at which new messages are refused (AE).",
    );
    o.sample(
        "gateway_disk_refuse_ratio",
        &[],
        float(f64::from(x.refuse_at_percent) / 100.0),
    );

    let ds = &r.destinations;
    let dest_gauge = |o: &mut Out,
                      name: &str,
                      kind: &str,
                      help: &str,
                      get: &dyn Fn(&super::admin::DestinationStatus) -> u64| {
        o.family(name, kind, help);
        for d in ds {
            o.sample(name, &[("destination", &d.name)], get(d));
        }
    };
    dest_gauge(
        &mut o,
        "gateway_destination_pending_messages",
        "gauge",
        "Messages waiting in the destination's outbox.",
        &|d| d.pending,
    );
    dest_gauge(
        &mut o,
        "gateway_destination_oldest_pending_age_seconds",
        "gauge",
        "Age of the oldest waiting message (0 when none waits).",
        &|d| d.oldest_pending_age_secs.unwrap_or(0),
    );
    dest_gauge(
        &mut o,
        "gateway_destination_delivered_total",
        "counter",
        "Messages delivered (from the journal, across restarts).",
        &|d| d.delivered,
    );
    dest_gauge(
        &mut o,
        "gateway_destination_failed_attempts_total",
        "counter",
        "Delivery attempts that failed since the daemon started.",
        &|d| d.live.failed_attempts,
    );
    dest_gauge(
        &mut o,
        "gateway_destination_dead_lettered_total",
        "counter",
        "Messages moved to the dead-letter queue (from the journal).",
        &|d| d.dead_lettered_total,
    );
    dest_gauge(
        &mut o,
        "gateway_destination_dead_letters",
        "gauge",
        "Messages in the dead-letter queue now.",
        &|d| d.dead_letters,
    );
    dest_gauge(
        &mut o,
        "gateway_destination_in_flight",
        "gauge",
        "Delivery attempts running now.",
        &|d| d.live.in_flight,
    );
    dest_gauge(
        &mut o,
        "gateway_destination_held_lanes",
        "gauge",
        "Lanes waiting behind a dead letter (policy hold).",
        &|d| d.live.held_lanes,
    );
    dest_gauge(
        &mut o,
        "gateway_destination_probes_total",
        "counter",
        "Probes sent while the destination was down.",
        &|d| d.live.probes,
    );
    dest_gauge(
        &mut o,
        "gateway_token_refreshes_total",
        "counter",
        "Access tokens fetched for the destination (OAuth2 / SMART).",
        &|d| d.live.token_refreshes,
    );
    dest_gauge(
        &mut o,
        "gateway_destination_up",
        "gauge",
        "1 while the destination's circuit is closed (healthy).",
        &|d| u64::from(d.live.circuit == "closed" || d.live.circuit.is_empty()),
    );
    o.family(
        "gateway_destination_circuit_state",
        "gauge",
        "Circuit breaker state: 1 for the current state of each destination.",
    );
    for d in ds {
        for state in ["closed", "open", "half-open"] {
            let cur = if d.live.circuit.is_empty() {
                "closed"
            } else {
                d.live.circuit.as_str()
            };
            o.sample(
                "gateway_destination_circuit_state",
                &[("destination", &d.name), ("state", state)],
                u8::from(cur == state),
            );
        }
    }
    o.family(
        "gateway_destination_down_seconds",
        "gauge",
        "How long the destination has been down (0 while up).",
    );
    for d in ds {
        let secs = d.live.down_since_ms.map_or(0, |t| {
            (x.now_unix_secs.max(0) as u64 * 1000).saturating_sub(t) / 1000
        });
        o.sample(
            "gateway_destination_down_seconds",
            &[("destination", &d.name)],
            secs,
        );
    }

    o.family(
        "gateway_tls_certificate_expiry_timestamp_seconds",
        "gauge",
        "notAfter of a configured certificate, seconds since the Unix epoch.",
    );
    for c in r.certificates.iter().filter(|c| c.not_after.is_some()) {
        let labels = [
            ("owner_kind", c.owner_kind.as_str()),
            ("owner", c.owner.as_str()),
            ("role", c.role.as_str()),
            ("path", c.path.as_str()),
        ];
        o.sample(
            "gateway_tls_certificate_expiry_timestamp_seconds",
            &labels,
            c.not_after.unwrap_or(0),
        );
    }
    o.family(
        "gateway_tls_certificate_days_to_expiry",
        "gauge",
        "Whole days until a configured certificate expires (negative once expired).",
    );
    for c in &r.certificates {
        if let Some(days) = c.days_left(x.now_unix_secs) {
            let labels = [
                ("owner_kind", c.owner_kind.as_str()),
                ("owner", c.owner.as_str()),
                ("role", c.role.as_str()),
                ("path", c.path.as_str()),
            ];
            o.sample("gateway_tls_certificate_days_to_expiry", &labels, days);
        }
    }

    // Pollers (sources): labels are the configured name and kind only.
    type PollerGet = fn(&crate::source::poller::PollerState) -> u64;
    let pollers: [(&str, &str, &str, PollerGet); 5] = [
        (
            "gateway_poller_polls_total",
            "counter",
            "Poll rounds since start.",
            |p| p.polls,
        ),
        (
            "gateway_poller_stored_total",
            "counter",
            "Items journaled as new since start (results or files).",
            |p| p.stored,
        ),
        (
            "gateway_poller_duplicates_total",
            "counter",
            "Items fetched again and found already journaled, since start.",
            |p| p.duplicates,
        ),
        (
            "gateway_poller_left_on_server",
            "gauge",
            "sftp: remote files over max_file_bytes left on the server (last listing).",
            |p| p.left_on_server,
        ),
        (
            "gateway_poller_up",
            "gauge",
            "1 when the last poll round succeeded, 0 when it failed.",
            |p| u64::from(p.last_error.is_none()),
        ),
    ];
    for (name, kind, help, get) in pollers {
        o.family(name, kind, help);
        for p in &r.pollers {
            let k = if p.kind.is_empty() {
                "fhir"
            } else {
                p.kind.as_str()
            };
            o.sample(name, &[("poller", &p.name), ("kind", k)], get(p));
        }
    }

    o.family(
        "gateway_alerts_active",
        "gauge",
        "Active alerts by rule and severity.",
    );
    let mut by_rule: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for a in &r.alerts {
        *by_rule
            .entry((a.rule.as_str(), a.severity.as_str()))
            .or_default() += 1;
    }
    for ((rule, sev), n) in by_rule {
        o.sample(
            "gateway_alerts_active",
            &[("rule", rule), ("severity", sev)],
            n,
        );
    }

    // Per destination: the codes themselves and their code systems are
    // sender text (a misaligned field can put a birth date there), so
    // they stay on the box (`gateway status`, the status page).
    let fhir: Vec<_> = ds.iter().filter(|d| d.kind == "fhir").collect();
    if !fhir.is_empty() {
        o.family(
            "gateway_fhir_unmapped_codes",
            "gauge",
            "Distinct local codes with no mapping (see gateway status for which).",
        );
        for d in &fhir {
            o.sample(
                "gateway_fhir_unmapped_codes",
                &[("destination", &d.name)],
                d.unmapped_distinct,
            );
        }
        o.family(
            "gateway_fhir_unmapped_code_occurrences_total",
            "counter",
            "Occurrences of local codes with no mapping.",
        );
        for d in &fhir {
            o.sample(
                "gateway_fhir_unmapped_code_occurrences_total",
                &[("destination", &d.name)],
                d.unmapped_occurrences,
            );
        }
    }
    if let Some(rw) = &r.remote_write {
        remote_write(&mut o, rw);
    }
    exports(&mut o, r);
    o
}

/// `[fleet.remote_write]`'s own counters.
fn remote_write(o: &mut Out, rw: &super::remote_write::RemoteWriteStatus) {
    o.family(
        "gateway_remote_write_sent_samples_total",
        "counter",
        "Samples the remote-write receiver took.",
    );
    o.sample(
        "gateway_remote_write_sent_samples_total",
        &[],
        rw.sent_samples,
    );
    o.family(
        "gateway_remote_write_dropped_samples_total",
        "counter",
        "Samples given up: too_old (older than max_age before they could be sent), overflow (buffer full), rejected (4xx from the receiver).",
    );
    for (reason, n) in [
        ("too_old", rw.dropped_too_old),
        ("overflow", rw.dropped_overflow),
        ("rejected", rw.rejected),
    ] {
        o.sample(
            "gateway_remote_write_dropped_samples_total",
            &[("reason", reason)],
            n,
        );
    }
    o.family(
        "gateway_remote_write_pending_samples",
        "gauge",
        "Samples buffered, waiting for the receiver.",
    );
    o.sample(
        "gateway_remote_write_pending_samples",
        &[],
        rw.pending_samples,
    );
    o.family(
        "gateway_remote_write_last_success_timestamp_seconds",
        "gauge",
        "When the receiver last took a batch (seconds since the Unix epoch; 0: never).",
    );
    o.sample(
        "gateway_remote_write_last_success_timestamp_seconds",
        &[],
        rw.last_success_ms.unwrap_or(0) / 1000,
    );
}

/// `[[export]]` jobs: state, the job in hand, the last success (no PHI:
/// export and tenant names only).
fn exports(o: &mut Out, r: &StatusReport) {
    const STATES: [&str; 9] = [
        "idle",
        "waiting",
        "kicked_off",
        "polling",
        "downloading",
        "finishing",
        "delivering",
        "done",
        "failed",
    ];
    o.family(
        "gateway_export_state",
        "gauge",
        "1 for the export's current state.",
    );
    for e in &r.exports {
        for st in STATES {
            let l = [
                ("export", e.name.as_str()),
                ("tenant", e.tenant.as_str()),
                ("state", st),
            ];
            o.sample("gateway_export_state", &l, u8::from(e.state == st));
        }
    }
    o.family(
        "gateway_export_paused",
        "gauge",
        "1 while the export waits for the data disk to drop under warn_at_percent.",
    );
    type Pick = fn(&crate::source::export::job::ExportStatus) -> u64;
    let gauges: [(&str, &str, &str, Pick); 6] = [
        ("gateway_export_paused", "gauge", "", |e| {
            u64::from(e.paused.is_some())
        }),
        (
            "gateway_export_files_done",
            "gauge",
            "Files of the job in hand written so far.",
            |e| u64::from(e.files_done),
        ),
        (
            "gateway_export_files",
            "gauge",
            "Files in the job in hand's manifest.",
            |e| u64::from(e.files_total),
        ),
        (
            "gateway_export_bytes",
            "gauge",
            "Bytes downloaded by the job in hand.",
            |e| e.bytes,
        ),
        (
            "gateway_export_resources",
            "gauge",
            "Resources written by the job in hand.",
            |e| e.resources,
        ),
        (
            "gateway_export_bad_lines",
            "gauge",
            "Lines of the job in hand refused and quarantined.",
            |e| e.bad_lines,
        ),
    ];
    for (name, kind, help, pick) in gauges {
        if !help.is_empty() {
            o.family(name, kind, help);
        }
        for e in &r.exports {
            o.sample(
                name,
                &[("export", e.name.as_str()), ("tenant", e.tenant.as_str())],
                pick(e),
            );
        }
    }
    o.family(
        "gateway_export_jobs_total",
        "counter",
        "Export jobs ended, by outcome.",
    );
    for e in &r.exports {
        for (outcome, n) in [
            ("succeeded", e.history.succeeded),
            ("failed", e.history.failed),
        ] {
            let l = [
                ("export", e.name.as_str()),
                ("tenant", e.tenant.as_str()),
                ("outcome", outcome),
            ];
            o.sample("gateway_export_jobs_total", &l, n);
        }
    }
    o.family(
        "gateway_export_last_success_timestamp_seconds",
        "gauge",
        "When the export last succeeded (seconds since the Unix epoch; 0: never).",
    );
    for e in &r.exports {
        let l = [("export", e.name.as_str()), ("tenant", e.tenant.as_str())];
        o.sample(
            "gateway_export_last_success_timestamp_seconds",
            &l,
            e.history.last_success_ms.unwrap_or(0) / 1000,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmapped_codes_are_counted_per_destination_never_named() {
        let report: StatusReport = serde_json::from_value(serde_json::json!({
            "version": "1", "pid": 1, "config": "c", "data_dir": "d", "started_at": "s",
            "uptime_secs": 3, "listeners": [],
            "destinations": [{"name": "cloud", "kind": "fhir", "pending": 0, "delivered": 1,
                "oldest_pending_age_secs": null, "dead_letters": 0,
                "in_flight": 0, "attempts": 0, "delivered_since_start": 1, "failed_attempts": 0,
                "dead_lettered_since_start": 0, "circuit": "closed", "down_since_ms": null,
                "probes": 0, "held_lanes": 0, "last_error": null, "last_error_at_ms": null,
                "token_refreshes": 0,
                "unmapped_codes": [{"system": "", "code": "19850622", "count": 2}],
                "unmapped_distinct": 1, "unmapped_occurrences": 2}],
            "pollers": [{"name": "responses", "kind": "sftp", "polls": 7, "last_poll_ms": null,
                         "last_success_ms": null, "stored": 3, "duplicates": 4, "unmappable": 0,
                         "cursor": null, "last_error": "sftp u@h:22: timed out"}],
            "journal": {"messages": 0, "duplicates": 0, "control_id_reuses": 0,
                        "quarantined": 0, "bytes_on_disk": 0, "disk_percent_used": 0},
            "remote_write": {"url": "https://p/api/v1/write", "sent_samples": 5, "pending_samples": 2,
                "oldest_pending_age_secs": 30, "dropped_too_old": 7, "dropped_overflow": 0,
                "rejected": 1, "last_success_ms": 1000, "last_error": null}
        }))
        .unwrap();
        let text = render(&report, &Extra::default());
        assert!(
            text.contains("gateway_fhir_unmapped_codes{destination=\"cloud\"} 1\n"),
            "{text}"
        );
        assert!(text
            .contains("gateway_fhir_unmapped_code_occurrences_total{destination=\"cloud\"} 2\n"));
        // Code values themselves are not labels.
        assert!(!text.contains("19850622"));
        assert!(
            text.contains("gateway_poller_stored_total{poller=\"responses\",kind=\"sftp\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("gateway_poller_up{poller=\"responses\",kind=\"sftp\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("gateway_remote_write_dropped_samples_total{reason=\"too_old\"} 7\n"));
        // collect: the same series, as values.
        let values = collect(&report, &Extra::default());
        let samples = text.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(values.len(), samples);
        assert!(values
            .iter()
            .any(|(n, l, v)| n == "gateway_fhir_unmapped_codes"
                && l == &vec![("destination".to_string(), "cloud".to_string())]
                && *v == 1.0));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(0.25), "0.25");
    }
}
