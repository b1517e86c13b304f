//! Runs the `[[export]]` jobs: one task per export waits for its schedule
//! or `gateway export run`, takes its tenant's slot (one job at a time per
//! tenant) and a global slot, and runs [`job::run`]. A stored job (after a
//! restart) is resumed at once. A failed job never affects another tenant:
//! each export has its own task, state and HTTP client. [`ExportControl`]
//! answers the admin socket (run, status, cancel) and the status report.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify, Semaphore};

use super::http::ExportHttp;
use super::job::{self, ExportStatus, JobCtx, JobError, Stop};
use crate::config::ExportConfig;
use crate::ops::clock::unix_ms;
use crate::ops::watchdog::Heartbeat;
use journal::Journal;

/// Jobs running at once across all tenants.
pub const GLOBAL_JOBS: usize = 4;

struct Handle {
    cfg: ExportConfig,
    live: Arc<Mutex<ExportStatus>>,
    trigger: Notify,
    full: AtomicBool,
    running: AtomicBool,
    cancel: watch::Sender<bool>,
}

/// The exports of this daemon, for the admin socket and the status report.
#[derive(Clone, Default)]
pub struct ExportControl {
    handles: Arc<BTreeMap<String, Arc<Handle>>>,
}

impl ExportControl {
    pub fn statuses(&self) -> Vec<ExportStatus> {
        self.handles
            .values()
            .map(|h| h.live.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .collect()
    }

    fn handle(&self, name: &str) -> Result<&Arc<Handle>, String> {
        self.handles.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.handles.keys().map(String::as_str).collect();
            format!(
                "no export named '{name}' in the config (exports: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )
        })
    }

    pub fn status(&self, name: Option<&str>) -> Result<Vec<ExportStatus>, String> {
        match name {
            None => Ok(self.statuses()),
            Some(n) => {
                let h = self.handle(n)?;
                Ok(vec![h
                    .live
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()])
            }
        }
    }

    /// Start a job now (`--full`: without `_since`).
    pub fn run(
        &self,
        journal: &Journal,
        name: &str,
        full: bool,
        operator: &str,
    ) -> Result<Vec<ExportStatus>, String> {
        let h = self.handle(name)?;
        if h.running.load(Ordering::SeqCst) {
            return Err(format!(
                "export '{name}' already has a job running; see `gateway export status {name}`"
            ));
        }
        h.full.store(full, Ordering::SeqCst);
        let _ = journal.audit(
            "export_run",
            &format!(
                "export {name} tenant {} started by {operator}{}",
                h.cfg.tenant,
                if full { " (full)" } else { "" }
            ),
        );
        h.trigger.notify_one();
        self.status(Some(name))
    }

    /// Stop the running job: DELETE on the server, the job dropped.
    pub fn cancel(
        &self,
        journal: &Journal,
        name: &str,
        operator: &str,
    ) -> Result<Vec<ExportStatus>, String> {
        let h = self.handle(name)?;
        if !h.running.load(Ordering::SeqCst) {
            return Err(format!("export '{name}' has no job running"));
        }
        let _ = journal.audit(
            "export_cancel",
            &format!(
                "export {name} tenant {} cancelled by {operator}",
                h.cfg.tenant
            ),
        );
        let _ = h.cancel.send(true);
        self.status(Some(name))
    }
}

/// One export's task, for the daemon to spawn.
pub type ExportTask = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// What the export tasks share.
pub struct Runners {
    pub control: ExportControl,
    tasks: Vec<(String, Arc<Handle>)>,
}

/// Build the handles (before the tasks start, so status can show them).
pub fn prepare(exports: &[ExportConfig], journal: &Journal) -> Runners {
    let mut map = BTreeMap::new();
    let mut tasks = Vec::new();
    for cfg in exports {
        let history = job::load_history(journal, &cfg.name).unwrap_or_default();
        let live = ExportStatus {
            name: cfg.name.clone(),
            tenant: cfg.tenant.clone(),
            state: "idle".into(),
            next_run_ms: cfg.schedule.next_run(history.last_start_ms, unix_ms()),
            alert_after_secs: cfg.alert_after.as_secs(),
            history,
            ..Default::default()
        };
        let h = Arc::new(Handle {
            cfg: cfg.clone(),
            live: Arc::new(Mutex::new(live)),
            trigger: Notify::new(),
            full: AtomicBool::new(false),
            running: AtomicBool::new(false),
            cancel: watch::channel(false).0,
        });
        map.insert(cfg.name.clone(), h.clone());
        tasks.push((cfg.name.clone(), h));
    }
    Runners {
        control: ExportControl {
            handles: Arc::new(map),
        },
        tasks,
    }
}

impl Runners {
    /// One future per export, for the daemon to spawn.
    pub fn into_tasks(
        self,
        journal: &Journal,
        warn_at_percent: u8,
        mut heartbeat: impl FnMut(&str) -> Heartbeat,
        shutdown: watch::Receiver<bool>,
    ) -> Vec<(String, ExportTask)> {
        let global = Arc::new(Semaphore::new(GLOBAL_JOBS));
        let mut tenants: BTreeMap<String, Arc<tokio::sync::Mutex<()>>> = BTreeMap::new();
        self.tasks
            .into_iter()
            .map(|(name, h)| {
                let tenant = tenants.entry(h.cfg.tenant.clone()).or_default().clone();
                let fut = export_task(
                    h,
                    journal.clone(),
                    warn_at_percent,
                    global.clone(),
                    tenant,
                    heartbeat(&name),
                    shutdown.clone(),
                );
                (name, Box::pin(fut) as ExportTask)
            })
            .collect()
    }
}

async fn export_task(
    h: Arc<Handle>,
    journal: Journal,
    warn_at_percent: u8,
    global: Arc<Semaphore>,
    tenant: Arc<tokio::sync::Mutex<()>>,
    heartbeat: Heartbeat,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = h.cfg.name.clone();
    let http = match ExportHttp::new(&h.cfg) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            log::error!(target: "gateway::export", "export {name}: cannot set up HTTPS: {e}; it will not run");
            return;
        }
    };
    let set =
        |f: &dyn Fn(&mut ExportStatus)| f(&mut h.live.lock().unwrap_or_else(|e| e.into_inner()));
    loop {
        heartbeat.beat();
        let resume = matches!(job::load_job(&journal, &name), Ok(Some(_)));
        if !resume {
            // Wait for the schedule or a `run`, beating for the watchdog.
            loop {
                heartbeat.beat();
                let history = job::load_history(&journal, &name).unwrap_or_default();
                let next = h.cfg.schedule.next_run(history.last_start_ms, unix_ms());
                set(&|s| s.next_run_ms = next);
                let wait = next.map_or(Duration::from_secs(1), |n| {
                    Duration::from_millis(n.saturating_sub(unix_ms())).min(Duration::from_secs(1))
                });
                if next.is_some_and(|n| n <= unix_ms()) {
                    break;
                }
                tokio::select! {
                    _ = h.trigger.notified() => break,
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
        let full = h.full.swap(false, Ordering::SeqCst);
        h.running.store(true, Ordering::SeqCst);
        let _ = h.cancel.send(false);
        set(&|s| {
            s.state = "waiting".into();
            s.progress = Some("waiting for the tenant's and the global export slot".into());
        });
        let slots = async {
            let t = tenant.lock().await;
            let g = global.acquire().await;
            (t, g)
        };
        let _slots = tokio::select! {
            s = beating(&heartbeat, slots) => s,
            _ = shutdown.changed() => return,
        };
        let ctx = Arc::new(JobCtx {
            cfg: h.cfg.clone(),
            journal: journal.clone(),
            http: (*http).clone(),
            live: h.live.clone(),
            shutdown: shutdown.clone(),
            cancel: h.cancel.subscribe(),
            warn_at_percent,
        });
        let outcome = beating(&heartbeat, job::run(&ctx, full)).await;
        h.running.store(false, Ordering::SeqCst);
        match outcome {
            Ok(()) => set(&|s| {
                s.state = "done".into();
                s.progress = None;
            }),
            Err(JobError::Stop(Stop::Shutdown)) => return,
            Err(JobError::Stop(Stop::Cancelled)) => {
                let _ = h.cancel.send(false);
                let why = format!(
                    "cancelled by the operator at {}",
                    crate::ops::clock::iso8601(unix_ms())
                );
                log::info!(target: "gateway::export", "export {name}: job cancelled");
                let ctx = Arc::new(JobCtx {
                    cancel: h.cancel.subscribe(),
                    ..job_ctx_clone(&ctx)
                });
                let _ = beating(&heartbeat, job::abandon(&ctx, &why, false)).await;
            }
            Err(JobError::Fatal(why)) => {
                // The reason's class only: a server's text may quote PHI (it is in status).
                let class = crate::deliver::outage_log::error_class(&why);
                log::error!(target: "gateway::export", "export {name} (tenant {}): the job failed: {class} (the whole reason: gateway export status {name})", h.cfg.tenant);
                let _ = journal.audit(
                    "export_failed",
                    &format!("export {name} tenant {}: {class}", h.cfg.tenant),
                );
                // A failed job is not retried at once: the next schedule or `run`.
                let _ = beating(&heartbeat, job::abandon(&ctx, &why, true)).await;
            }
        }
    }
}

/// Run `work`, beating `hb` every second meanwhile (the watchdog gates on it).
async fn beating<F: std::future::Future>(hb: &Heartbeat, work: F) -> F::Output {
    tokio::pin!(work);
    loop {
        hb.beat();
        tokio::select! {
            r = &mut work => return r,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

fn job_ctx_clone(c: &JobCtx) -> JobCtx {
    JobCtx {
        cfg: c.cfg.clone(),
        journal: c.journal.clone(),
        http: c.http.clone(),
        live: c.live.clone(),
        shutdown: c.shutdown.clone(),
        cancel: c.cancel.clone(),
        warn_at_percent: c.warn_at_percent,
    }
}
