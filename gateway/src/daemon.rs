//! The daemon: open the journal, resume outboxes, bind listeners, report
//! ready, serve until SIGTERM/SIGINT, then stop accepting, finish what is in
//! flight, and close the journal.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::accept::Accept;
use crate::config::Config;
use crate::deliver::Monitor;
use crate::ops::admin::{
    AdminServer, DestinationStatus, JournalStatus, ListenerStatus, StatusReport, StatusSource,
    UnmappedCode,
};
use crate::ops::alerts::{self, Board};
use crate::ops::certs::{self, CertInfo};
use crate::ops::health::{self, OpsState};
use crate::ops::stats::Registry;
use crate::ops::watchdog::{self, Heartbeats};
use crate::ops::{clock, notify};
use crate::route::Router;
use crate::source::mllp_listener;
use crate::source::poller::{Poller, PollerState};
use journal::{Journal, JournalConfig};

pub fn journal_config(cfg: &Config) -> JournalConfig {
    let mut j = JournalConfig::new(cfg.journal_dir());
    j.clock = clock::unix_ms;
    j.quota_bytes = cfg.storage.quota_bytes;
    j.warn_at_percent = cfg.storage.warn_at_percent;
    j.refuse_at_percent = cfg.storage.refuse_at_percent;
    j.quarantine_max_entries = cfg.storage.quarantine_max_entries;
    j.quarantine_max_bytes = cfg.storage.quarantine_max_bytes;
    j
}

pub async fn run(cfg: Config) -> Result<(), String> {
    journal::durable_fs::create_dir_all(&cfg.data_dir)
        .map_err(|e| format!("cannot create data_dir {}: {e}", cfg.data_dir.display()))?;
    let admin = AdminServer::bind(&cfg.admin_socket()).await?;
    let started_ms = clock::unix_ms();
    let (stop_tx, stop_rx) = watch::channel(false);
    let ops = Arc::new(OpsState {
        started_ms,
        warn_at_percent: cfg.storage.warn_at_percent,
        refuse_at_percent: cfg.storage.refuse_at_percent,
        ..Default::default()
    });
    // The health endpoint answers from the start, so /readyz can say why
    // the gateway is not ready yet (e.g. a long journal recovery).
    if let Some(h) = &cfg.health {
        let listener = health::bind(h.bind).await?;
        log::info!(target: "gateway::daemon", "health endpoint on http://{}/ (/healthz, /readyz, /metrics)", h.bind);
        tokio::spawn(health::serve(listener, ops.clone(), stop_rx.clone()));
    }
    let had_journal = cfg.journal_dir().exists();
    let restart = alerts::previous_stop(&cfg.data_dir, had_journal, started_ms);
    if let Some(r) = &restart {
        log::warn!(target: "gateway::daemon", event = "startup"; "restarted after an unclean stop: {}", r.detail);
    }

    let opening = Instant::now();
    notify::status("opening the journal");
    let jcfg = journal_config(&cfg);
    let slow = test_hook_slow_journal_open();
    let open = tokio::task::spawn_blocking(move || {
        if let Some(d) = slow {
            std::thread::sleep(d);
        }
        Journal::open(jcfg)
    });
    let every = if slow.is_some() {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(20)
    };
    let journal = extend_start_timeout_while(open, every)
        .await
        .map_err(|e| format!("journal open task failed: {e}"))?
        .map_err(|e| {
            format!(
                "cannot open the journal in {}: {e}",
                cfg.journal_dir().display()
            )
        })?;
    log::info!(target: "gateway::daemon", event = "startup"; "journal open in {} ms", opening.elapsed().as_millis());
    let _ = ops.journal.set(journal.clone());
    ops.journal_open.store(true, Ordering::Relaxed);

    let mut tasks = JoinSet::new();
    let heartbeats = Arc::new(Heartbeats::default());
    let _ = ops.heartbeats.set(heartbeats.clone());

    // Outboxes resume before any listener accepts.
    let monitors = match crate::deliver::start_all(
        &cfg.destinations,
        &journal,
        &heartbeats,
        &mut tasks,
        &stop_rx,
    ) {
        Ok(m) => m,
        Err(e) => {
            let _ = stop_tx.send(true);
            while tasks.join_next().await.is_some() {}
            let _ = journal.close().await;
            return Err(e);
        }
    };
    for (_, m) in &monitors {
        if let Some(u) = m.unmapped_codes() {
            crate::ops::metrics::register_unmapped_codes(u);
        }
    }
    tasks.spawn(journal::retention::run(
        journal.clone(),
        cfg.storage.retention,
        stop_rx.clone(),
    ));

    let registry = Arc::new(Registry::new(cfg.listeners.iter().map(|l| l.name.as_str())));
    let accept = Accept {
        journal: journal.clone(),
        router: Arc::new(Router::new(cfg.routes.clone())),
    };
    let mut bound = Vec::new();
    for l in &cfg.listeners {
        match mllp_listener::bind(l.clone(), accept.clone(), registry.listener(&l.name)).await {
            Ok(b) => bound.push(b),
            Err(e) => {
                let _ = stop_tx.send(true);
                while tasks.join_next().await.is_some() {}
                let _ = journal.close().await;
                return Err(e.to_string());
            }
        }
    }
    for (b, l) in bound.into_iter().zip(&cfg.listeners) {
        tasks.spawn(b.serve(
            heartbeats.register(format!("accept loop {}", l.name)),
            stop_rx.clone(),
        ));
    }
    ops.listeners_bound.store(true, Ordering::Relaxed);
    // Pollers are sources too: they start with the listeners.
    let mut poller_states = Vec::new();
    for p in &cfg.pollers {
        let state = Arc::new(std::sync::Mutex::new(PollerState {
            name: p.name.clone(),
            ..Default::default()
        }));
        poller_states.push(state.clone());
        let poller = Poller {
            cfg: p.clone(),
            accept: accept.clone(),
            state_dir: cfg.data_dir.join("pollers"),
            heartbeat: heartbeats.register(format!("poller {}", p.name)),
            state,
        };
        tasks.spawn(poller.run(stop_rx.clone()));
    }
    if let Some(interval) = watchdog::interval() {
        log::info!(target: "gateway::daemon", "systemd watchdog every {} ms, gated on every critical loop", interval.as_millis());
        tasks.spawn(watchdog::run(
            interval,
            heartbeats.clone(),
            journal.clone(),
            stop_rx.clone(),
        ));
    }

    let board = Arc::new(Board::default());
    let certs = Arc::new(Mutex::new(certs::collect(&cfg)));
    let box_id = cfg
        .fleet
        .as_ref()
        .map(|f| f.box_id.clone())
        .unwrap_or_else(crate::config::default_box_id);
    let status = status_source(
        &cfg,
        journal.clone(),
        registry.clone(),
        monitors,
        poller_states,
        started_ms,
        StatusExtras {
            board: board.clone(),
            certs: certs.clone(),
            box_id: box_id.clone(),
        },
    );
    let _ = ops.status.set(status.clone());
    let admin_task = tokio::spawn(admin.serve(status.clone(), journal.clone(), stop_rx.clone()));
    if let Some(sp) = &cfg.status_page {
        let listener = match crate::ops::status_page::bind(sp.bind).await {
            Ok(l) => l,
            Err(e) => {
                let _ = stop_tx.send(true);
                while tasks.join_next().await.is_some() {}
                let _ = admin_task.await;
                let _ = journal.close().await;
                return Err(e);
            }
        };
        log::info!(target: "gateway::daemon", "status page on {}://{}/", if sp.tls.is_some() { "https" } else { "http" }, sp.bind);
        let (sp, status, stop) = (sp.clone(), status.clone(), stop_rx.clone());
        tasks.spawn(async move {
            if let Err(e) = crate::ops::status_page::serve(listener, sp, status, stop).await {
                log::error!(target: "gateway::daemon", "status page not served: {e}");
            }
        });
    }
    tasks.spawn(alerts::run(
        alerts::AlertTask {
            cfg: cfg.alerts.clone(),
            box_id: box_id.clone(),
            board: board.clone(),
            status: status.clone(),
            certs: certs.clone(),
            config: Arc::new(cfg.clone()),
            restart,
        },
        stop_rx.clone(),
    ));
    if let Some(f) = &cfg.fleet {
        log::info!(target: "gateway::daemon", "fleet heartbeat to {} every {} s as '{}'", f.url, f.interval.as_secs(), f.box_id);
        tasks.spawn(crate::ops::fleet::run(
            f.clone(),
            status.clone(),
            stop_rx.clone(),
        ));
    }
    tasks.spawn(status_lines(status.clone(), stop_rx.clone()));

    let report = status();
    let pending: u64 = report.destinations.iter().map(|d| d.pending).sum();
    let summary = format!(
        "{} listener(s), {} destination(s), {pending} pending",
        cfg.listeners.len(),
        cfg.destinations.len()
    );
    log::info!(target: "gateway::daemon", event = "ready"; "ready: {summary}");
    notify::ready(&summary);

    wait_for_signal().await;
    log::info!(target: "gateway::daemon", event = "stopping"; "shutting down: no new connections; finishing in-flight messages");
    ops.stopping.store(true, Ordering::Relaxed);
    notify::stopping();
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    let _ = admin_task.await;
    journal
        .close()
        .await
        .map_err(|e| format!("closing the journal: {e}"))?;
    alerts::mark_clean_stop(&cfg.data_dir);
    log::info!(target: "gateway::daemon", event = "stopped"; "stopped cleanly");
    Ok(())
}

/// While `work` runs (a long journal recovery), keep extending systemd's
/// start timeout (`EXTEND_TIMEOUT_USEC`) so `TimeoutStartSec=` does not kill
/// a recovery that is making progress; bounded to one hour in total.
async fn extend_start_timeout_while<T>(
    work: tokio::task::JoinHandle<T>,
    every: Duration,
) -> Result<T, tokio::task::JoinError> {
    const EXTEND_BY: Duration = Duration::from_secs(60);
    const MAX_EXTENSIONS: u32 = 180; // 180 × 20 s = 1 h in production
    let started = Instant::now();
    tokio::pin!(work);
    for _ in 0..MAX_EXTENSIONS {
        tokio::select! {
            r = &mut work => return r,
            _ = tokio::time::sleep(every) => {
                let secs = started.elapsed().as_secs();
                log::info!(target: "gateway::daemon", event = "startup"; "journal recovery still running after {secs} s; extending the start timeout");
                notify::extend_timeout(EXTEND_BY, &format!("recovering the journal ({secs} s)"));
            }
        }
    }
    log::warn!(target: "gateway::daemon", event = "startup"; "journal recovery has run for an hour; no more start timeout extensions");
    work.await
}

/// Test hook for the start-up notification test:
/// `GATEWAY_TEST_SLOW_JOURNAL_OPEN_MS=<n>` delays the journal open by n ms
/// (as a long recovery would) and extends the start timeout every 0.5 s.
fn test_hook_slow_journal_open() -> Option<Duration> {
    let ms: u64 = std::env::var("GATEWAY_TEST_SLOW_JOURNAL_OPEN_MS")
        .ok()?
        .parse()
        .ok()?;
    log::warn!(target: "gateway::daemon", "test hook: journal open delayed by {ms} ms");
    Some(Duration::from_millis(ms.min(60_000)))
}

/// Keep systemd's `STATUS=` current: "3 listeners, 12 pending, cloud-fhir down 4m".
async fn status_lines(status: StatusSource, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let mut last = String::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let line = notify::summary(&status(), clock::unix_ms());
        if line != last {
            notify::status(&line);
            last = line;
        }
    }
}

/// What the status source adds from the operations side.
struct StatusExtras {
    board: Arc<Board>,
    certs: Arc<Mutex<Vec<CertInfo>>>,
    box_id: String,
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            log::error!(target: "gateway::daemon", "cannot watch SIGTERM: {e}; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn status_source(
    cfg: &Config,
    journal: Journal,
    registry: Arc<Registry>,
    monitors: Vec<(String, Arc<Monitor>)>,
    pollers: Vec<Arc<std::sync::Mutex<PollerState>>>,
    started_ms: u64,
    ops: StatusExtras,
) -> StatusSource {
    let cfg = cfg.clone();
    Arc::new(move || {
        let now = clock::unix_ms();
        let js = journal.stats();
        let counts = registry.snapshot();
        StatusReport {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            config: cfg.source.display().to_string(),
            data_dir: cfg.data_dir.display().to_string(),
            started_at: clock::iso8601(started_ms),
            uptime_secs: now.saturating_sub(started_ms) / 1000,
            listeners: cfg
                .listeners
                .iter()
                .map(|l| ListenerStatus {
                    name: l.name.clone(),
                    bind: l.bind.to_string(),
                    tls: l.tls.is_some(),
                    mutual_tls: l.tls.as_ref().is_some_and(|t| t.client_ca.is_some()),
                    counts: counts
                        .get(&l.name)
                        .cloned()
                        .unwrap_or_else(|| registry.listener(&l.name).snapshot()),
                })
                .collect(),
            destinations: cfg
                .destinations
                .iter()
                .map(|d| {
                    let o = js.per_destination.get(&d.name).cloned().unwrap_or_default();
                    let monitor = monitors.iter().find(|(n, _)| n == &d.name).map(|(_, m)| m);
                    let live = monitor.map(|m| m.snapshot()).unwrap_or_default();
                    let unmapped = monitor
                        .and_then(|m| m.unmapped_codes())
                        .map(|u| u.snapshot())
                        .unwrap_or_default();
                    let mut top: Vec<UnmappedCode> = unmapped
                        .iter()
                        .map(|((system, code), count)| UnmappedCode {
                            system: system.clone(),
                            code: code.clone(),
                            count: *count,
                        })
                        .collect();
                    top.sort_by_key(|u| std::cmp::Reverse(u.count));
                    top.truncate(20);
                    DestinationStatus {
                        name: d.name.clone(),
                        kind: d.kind.label().to_string(),
                        pending: o.pending,
                        delivered: o.delivered,
                        oldest_pending_age_secs: o
                            .oldest_pending_received_at_ms
                            .map(|t| now.saturating_sub(t) / 1000),
                        dead_letters: o.dead,
                        dead_lettered_total: o.dead_total,
                        live,
                        unmapped_codes: top,
                        unmapped_distinct: unmapped.len() as u64,
                    }
                })
                .collect(),
            pollers: pollers
                .iter()
                .map(|p| match p.lock() {
                    Ok(g) => g.clone(),
                    Err(e) => e.into_inner().clone(),
                })
                .collect(),
            journal: JournalStatus {
                messages: js.messages,
                duplicates: js.duplicates,
                control_id_reuses: js.control_id_reuses,
                quarantined: js.quarantined,
                bytes_on_disk: js.bytes_on_disk,
                disk_percent_used: js.disk_percent_used,
                pruned: js.pruned,
            },
            box_id: ops.box_id.clone(),
            alerts: ops.board.active(),
            certificates: ops.certs.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    })
}
