//! The daemon: start-up in order ([`start`]: admin socket → health
//! endpoint → journal → deliverers → listeners → pollers → status page,
//! alerts, fleet → READY), serve until SIGTERM/SIGINT, then shut down in
//! order ([`Running::shutdown`]): `/readyz` 503 → monitors stop → sources
//! stop accepting and connections finish the frame in hand → deliverers
//! stop → health, admin and status page stop → journal closes →
//! clean-stop marker. Every task is owned by one [`Tasks`] and joined.

mod status_source;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::accept::Accept;
use crate::config::Config;
use crate::ops::admin::{AdminServer, StatusSource};
use crate::ops::alerts::{self, Board};
use crate::ops::certs;
use crate::ops::health::{self, HealthState};
use crate::ops::restart_markers;
use crate::ops::stats::Registry;
use crate::ops::tasks::{Stage, Tasks};
use crate::ops::watchdog::{self, Heartbeats};
use crate::ops::{clock, notify};
use crate::route::Router;
use crate::source::mllp_listener;
use crate::source::pickup::{Pickup, PickupState};
use crate::source::poller::{Poller, PollerState};
use crate::source::sftp_poller::SftpPoller;
use journal::{Journal, JournalConfig};
use status_source::{status_source, StatusExtras};

/// The journal's settings from the config and `GATEWAY_JOURNAL_MAX_FORMAT`
/// (a bad value is refused, never quietly read as "newest").
pub fn journal_config(cfg: &Config) -> Result<JournalConfig, crate::Error> {
    let mut j = JournalConfig::new(cfg.journal_dir());
    j.clock = clock::unix_ms;
    j.quota_bytes = cfg.storage.quota_bytes;
    j.warn_at_percent = cfg.storage.warn_at_percent;
    j.refuse_at_percent = cfg.storage.refuse_at_percent;
    j.quarantine_max_entries = cfg.storage.quarantine_max_entries;
    j.quarantine_max_bytes = cfg.storage.quarantine_max_bytes;
    j.reserve_bytes = cfg.storage.reserve_bytes;
    if let Some(max) = journal_max_format()? {
        j.max_format = max;
    }
    Ok(j)
}

/// `GATEWAY_JOURNAL_MAX_FORMAT` (1 or 2): the newest journal format this
/// gateway may read and write (`JournalConfig::max_format`); unset: 2.
fn journal_max_format() -> Result<Option<u64>, crate::Error> {
    const VAR: &str = "GATEWAY_JOURNAL_MAX_FORMAT";
    match std::env::var(VAR) {
        Err(_) => Ok(None),
        Ok(v) => match v.trim() {
            "1" => Ok(Some(journal::migrate::FORMAT_WHOLE)),
            "2" => Ok(Some(journal::migrate::FORMAT_CHUNKED)),
            other => Err(crate::Error::Env {
                var: VAR,
                why: format!("{other:?} is not a journal format: set 1 (a box that must stay readable by a gateway from before format 2) or 2, or unset it"),
            }),
        },
    }
}

pub async fn run(cfg: Config) -> Result<(), crate::Error> {
    // Watched before READY: a SIGTERM sent as soon as READY is seen (systemd
    // may) must stop the gateway cleanly, not by the default action.
    let term = watch_sigterm();
    let running = start(&cfg).await?;
    wait_for_signal(term).await;
    running.shutdown().await
}

/// A started gateway: what the shutdown needs.
struct Running {
    health: Arc<HealthState>,
    tasks: Tasks,
    journal: Journal,
    data_dir: PathBuf,
}

/// Start everything, in order, and report READY. On a failure, what had
/// started is stopped in the shutdown order and the journal (if open) is
/// closed: the one clean-up path of a failed start.
async fn start(cfg: &Config) -> Result<Running, crate::Error> {
    journal::durable_fs::create_dir_all(&cfg.data_dir).map_err(|source| crate::Error::Io {
        action: "cannot create data_dir",
        path: cfg.data_dir.clone(),
        source,
    })?;
    let admin = AdminServer::bind(&cfg.admin_socket()).await?;
    let mut tasks = Tasks::default();
    let mut opened = None;
    match bring_up(cfg, admin, &mut tasks, &mut opened).await {
        Ok((health, journal)) => Ok(Running {
            health,
            tasks,
            journal,
            data_dir: cfg.data_dir.clone(),
        }),
        Err(e) => {
            tasks.stop_all().await;
            if let Some(journal) = opened {
                let _ = journal.close().await;
            }
            Err(e)
        }
    }
}

/// The start-up steps. Every task goes into `tasks` under its stage; the
/// journal is put in `opened` as soon as it is open, for the clean-up.
async fn bring_up(
    cfg: &Config,
    admin: AdminServer,
    tasks: &mut Tasks,
    opened: &mut Option<Journal>,
) -> Result<(Arc<HealthState>, Journal), crate::Error> {
    let started_ms = clock::unix_ms();
    let health_state = Arc::new(HealthState {
        started_ms,
        warn_at_percent: cfg.storage.warn_at_percent,
        refuse_at_percent: cfg.storage.refuse_at_percent,
        ..Default::default()
    });
    // The health endpoint answers from the start, so /readyz can say why
    // the gateway is not ready yet (e.g. a long journal recovery), and
    // until the last stage of the shutdown, so it says 503 while draining.
    if let Some(h) = &cfg.health {
        let listener = health::bind(h.bind).await?;
        log::info!(target: "gateway::daemon", "health endpoint on http://{}/ (/healthz, /readyz, /metrics)", h.bind);
        let views = tasks.stage(Stage::Views);
        let serve = health::serve(listener, health_state.clone(), views.stop_signal());
        views.spawn("health endpoint", serve);
    }
    let had_journal = cfg.journal_dir().exists();
    let restart = restart_markers::previous_stop(&cfg.data_dir, had_journal, started_ms);
    if let Some(r) = &restart {
        log::warn!(target: "gateway::daemon", event = "startup"; "restarted after an unclean stop: {}", r.detail);
    }

    let journal = open_journal(cfg).await?;
    *opened = Some(journal.clone());
    let _ = health_state.journal.set(journal.clone());
    health_state.journal_open.store(true, Ordering::Relaxed);

    let heartbeats = Arc::new(Heartbeats::default());
    let _ = health_state.heartbeats.set(heartbeats.clone());

    // Outboxes resume before any listener accepts.
    let delivery = tasks.stage(Stage::Delivery);
    let monitors = crate::deliver::start_all(&cfg.destinations, &journal, &heartbeats, delivery)?;
    let retention = journal::retention::run(
        journal.clone(),
        cfg.storage.retention,
        journal::retention::AuditRetention {
            max_age: cfg.audit.retention,
            max_bytes: Some(cfg.audit.max_bytes),
        },
        delivery.stop_signal(),
    );
    delivery.spawn("retention", retention);

    let registry = Arc::new(Registry::new(cfg.listeners.iter().map(|l| l.name.as_str())));
    let feeds = Arc::new(crate::ops::feeds::FeedWatch::new(
        &cfg.alerts.silence,
        crate::ops::clock::unix_ms(),
    ));
    let patients = Arc::new(crate::ops::messages_key::PatientKey::load_or_create(
        &cfg.data_dir,
    )?);
    let accept = Accept {
        journal: journal.clone(),
        router: Arc::new(Router::new(cfg.routes.clone())),
        feeds: feeds.clone(),
        patients: patients.clone(),
    };
    // Every port is bound before any accepts, so a bad bind starts nothing.
    let mut bound = Vec::new();
    for l in &cfg.listeners {
        let listener =
            mllp_listener::bind(l.clone(), accept.clone(), registry.listener(&l.name)).await?;
        bound.push(listener);
    }
    let sources = tasks.stage(Stage::Sources);
    for (b, l) in bound.into_iter().zip(&cfg.listeners) {
        let heartbeat = heartbeats.register(format!("accept loop {}", l.name));
        sources.spawn(
            format!("listener {}", l.name),
            b.serve(heartbeat, sources.stop_signal()),
        );
    }
    health_state.listeners_bound.store(true, Ordering::Relaxed);
    // Pollers are sources too: they start with the listeners.
    let mut poller_states = Vec::new();
    for p in &cfg.pollers.fhir {
        let state = Arc::new(Mutex::new(PollerState {
            name: p.name.clone(),
            kind: "fhir".into(),
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
        sources.spawn(
            format!("poller {}", p.name),
            poller.run(sources.stop_signal()),
        );
    }
    for p in &cfg.pollers.sftp {
        let state = Arc::new(Mutex::new(PollerState {
            name: p.name.clone(),
            kind: "sftp".into(),
            ..Default::default()
        }));
        poller_states.push(state.clone());
        let poller = SftpPoller {
            cfg: p.clone(),
            accept: accept.clone(),
            heartbeat: heartbeats.register(format!("poller {}", p.name)),
            state,
        };
        sources.spawn(
            format!("poller {}", p.name),
            poller.run(sources.stop_signal()),
        );
    }
    // Pickup folders are sources too.
    let mut pickup_states = Vec::new();
    for p in &cfg.pickups {
        let state = Arc::new(Mutex::new(PickupState {
            name: p.name.clone(),
            ..Default::default()
        }));
        pickup_states.push(state.clone());
        let pickup = Pickup {
            cfg: p.clone(),
            accept: accept.clone(),
            heartbeat: heartbeats.register(format!("pickup {}", p.name)),
            state,
        };
        sources.spawn(
            format!("pickup {}", p.name),
            pickup.run(sources.stop_signal()),
        );
    }
    // Bulk exports are sources too; a stored job resumes at once.
    let exports = crate::source::export::runner::prepare(&cfg.exports, &journal);
    let export_control = exports.control.clone();
    for (name, task) in exports.into_tasks(
        &journal,
        cfg.storage.warn_at_percent,
        |n| heartbeats.register(format!("export {n}")),
        sources.stop_signal(),
    ) {
        sources.spawn(format!("export {name}"), task);
    }
    let monitoring = tasks.stage(Stage::Monitors);
    let trim = crate::ops::allocator::trim_periodically(monitoring.stop_signal());
    monitoring.spawn("malloc trim", trim);
    if let Some(interval) = watchdog::interval() {
        log::info!(target: "gateway::daemon", "systemd watchdog every {} ms, gated on every critical loop", interval.as_millis());
        let dog = watchdog::run(
            interval,
            heartbeats.clone(),
            journal.clone(),
            monitoring.stop_signal(),
        );
        monitoring.spawn("watchdog", dog);
    }

    let board = Arc::new(Board::default());
    let certs = Arc::new(Mutex::new(certs::collect(cfg)));
    let box_id = cfg
        .fleet
        .as_ref()
        .map(|f| f.box_id.clone())
        .unwrap_or_else(crate::config::default_box_id);
    let status = status_source(
        cfg,
        journal.clone(),
        registry.clone(),
        monitors,
        poller_states,
        started_ms,
        StatusExtras {
            board: board.clone(),
            certs: certs.clone(),
            box_id: box_id.clone(),
            pickups: pickup_states,
            exports: export_control.clone(),
            feeds,
        },
    );
    let _ = health_state.status.set(status.clone());
    let views = tasks.stage(Stage::Views);
    let serve = admin.serve(
        status.clone(),
        journal.clone(),
        export_control,
        cfg.admin.clone(),
        patients.clone(),
        views.stop_signal(),
    );
    views.spawn("admin socket", serve);
    if let Some(sp) = &cfg.status_page {
        let listener = crate::ops::status_page::bind(sp.bind).await?;
        log::info!(target: "gateway::daemon", "status page on {}://{}/", if sp.tls.is_some() { "https" } else { "http" }, sp.bind);
        let (sp, status, stop) = (sp.clone(), status.clone(), views.stop_signal());
        let alert_cfg = cfg.alerts.clone();
        let messages = crate::ops::status_messages::MessageViews {
            journal: journal.clone(),
            patients: patients.clone(),
        };
        views.spawn("status page", async move {
            if let Err(e) =
                crate::ops::status_page::serve(listener, sp, alert_cfg, status, messages, stop)
                    .await
            {
                log::error!(target: "gateway::daemon", "status page not served: {e}");
            }
        });
    }
    let monitoring = tasks.stage(Stage::Monitors);
    let alerting = alerts::run(
        alerts::AlertTask {
            cfg: cfg.alerts.clone(),
            box_id: box_id.clone(),
            board: board.clone(),
            status: status.clone(),
            certs: certs.clone(),
            config: Arc::new(cfg.clone()),
            restart,
            journal: journal.clone(),
        },
        monitoring.stop_signal(),
    );
    monitoring.spawn("alerts", alerting);
    if let Some(f) = &cfg.fleet {
        log::info!(target: "gateway::daemon", "fleet heartbeat to {} every {} s as '{}'", f.url, f.interval.as_secs(), f.box_id);
        let heartbeat = crate::ops::fleet::run(f.clone(), status.clone(), monitoring.stop_signal());
        monitoring.spawn("fleet heartbeat", heartbeat);
        if let Some(rw) = &f.remote_write {
            log::info!(target: "gateway::daemon", "remote-write to {} every {} s as box '{}'", rw.url, rw.interval.as_secs(), f.box_id);
            let task = crate::ops::remote_write::RemoteWriteTask {
                cfg: rw.clone(),
                box_id: f.box_id.clone(),
                site: cfg.alerts.site.clone(),
                updater_report: f.updater_report.clone(),
                health: health_state.clone(),
            };
            let push = crate::ops::remote_write::run(task, monitoring.stop_signal());
            monitoring.spawn("remote-write", push);
        }
    }
    if let Some(sl) = &cfg.audit.syslog {
        let fwd =
            crate::ops::audit::syslog::run(sl.clone(), journal.clone(), monitoring.stop_signal());
        monitoring.spawn("audit syslog", fwd);
    }
    let lines = status_lines(status.clone(), monitoring.stop_signal());
    monitoring.spawn("STATUS= updater", lines);

    let report = status();
    let pending: u64 = report.destinations.iter().map(|d| d.pending).sum();
    let summary = format!(
        "{} listener(s), {} destination(s), {pending} pending",
        cfg.listeners.len(),
        cfg.destinations.len()
    );
    log::info!(target: "gateway::daemon", event = "ready"; "ready: {summary}");
    notify::ready(&summary);
    Ok((health_state, journal))
}

impl Running {
    /// The documented order. `/readyz` answers 503 before any source is
    /// told to stop; each stage is joined before the next is told; the
    /// journal closes after every task that uses it has ended, and the
    /// clean-stop marker is written only after it closed.
    async fn shutdown(mut self) -> Result<(), crate::Error> {
        log::info!(target: "gateway::daemon", event = "stopping"; "shutting down: no new connections; finishing in-flight messages");
        self.health.stopping.store(true, Ordering::SeqCst);
        notify::stopping();
        self.tasks.stop_all().await;
        self.journal
            .close()
            .await
            .map_err(crate::Error::JournalClose)?;
        restart_markers::mark_clean_stop(&self.data_dir);
        log::info!(target: "gateway::daemon", event = "stopped"; "stopped cleanly");
        Ok(())
    }
}

/// Open the journal off the runtime, extending systemd's start timeout
/// while a long recovery runs.
async fn open_journal(cfg: &Config) -> Result<Journal, crate::Error> {
    let opening = Instant::now();
    let jcfg = journal_config(cfg)?;
    notify::status("opening the journal");
    let slow = test_hook_slow_journal_open();
    let open = tokio::task::spawn_blocking(move || {
        if let Some(d) = slow {
            std::thread::sleep(d);
        }
        migrate_if_requested(&jcfg);
        Journal::open(jcfg)
    });
    let every = if slow.is_some() {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(20)
    };
    let journal = extend_start_timeout_while(open, every)
        .await
        .map_err(|source| crate::Error::Task {
            what: "journal open",
            source,
        })?
        .map_err(|source| crate::Error::JournalOpen {
            dir: cfg.journal_dir(),
            source,
        })?;
    log::info!(target: "gateway::daemon", event = "startup"; "journal open in {} ms", opening.elapsed().as_millis());
    Ok(journal)
}

/// A format conversion `gateway journal migrate --at-next-start` asked
/// for (the image's after-commit step), done before the journal opens. A
/// failure is logged and the journal opens in the format it has: every
/// format this gateway reads works, and the request stays for the next start.
fn migrate_if_requested(jcfg: &JournalConfig) {
    let Some(r) = journal::migrate::run_requested(&jcfg.dir, jcfg.max_format) else {
        return;
    };
    match r {
        Ok(r) => log::info!(
            target: "gateway::daemon", event = "journal_migrated";
            "journal migrated as requested at this start: format {} -> {}, {} value(s), {} bytes rewritten",
            r.from_format, r.to_format, r.values, r.bytes
        ),
        Err(e) => log::error!(
            target: "gateway::daemon", event = "journal_migrate_failed";
            "journal migration requested at this start failed, opening the journal in its present format (retried at the next start): {e}"
        ),
    }
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

fn watch_sigterm() -> Option<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{signal, SignalKind};
    signal(SignalKind::terminate())
        .map_err(|e| {
            log::error!(target: "gateway::daemon", "cannot watch SIGTERM: {e}; stopping on Ctrl-C only");
        })
        .ok()
}

async fn wait_for_signal(term: Option<tokio::signal::unix::Signal>) {
    match term {
        Some(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
