//! The owner of every long-running task of the daemon. Each task is spawned
//! under a name into the [`Stage`] of the shutdown that stops it; a stage
//! has its own stop signal and is joined before the next one is told to
//! stop, so shutdown runs in a fixed order and no task outlives the journal.
//!
//! Every task watches its stage's `watch::Receiver<bool>` and ends on its
//! own; each stage also has a backstop ([`Stage::backstop`]) after which
//! tasks still running are named in the log and aborted, so one stuck task
//! cannot hold the shutdown past systemd's `TimeoutStopSec=` (30 s).

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::{Id, JoinSet};

/// The stages of the shutdown, in order. `/readyz` answers 503 before the
/// first one is stopped; the journal closes after the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Observers (alerts, fleet heartbeat, `STATUS=` lines, the watchdog):
    /// they stop first, so the shutdown's own effects (loops that stop
    /// beating) are not reported as faults.
    Monitors,
    /// Listeners and pollers: stop accepting; connections finish the frame
    /// in hand (the listener's 10 s cap).
    Sources,
    /// Outbox drivers, code-map watchers, retention: attempts in flight
    /// finish (the outbox's 5 s grace).
    Delivery,
    /// The health endpoint, the admin socket and the status page: they
    /// answer (`/readyz` 503, `gateway status`) until here.
    Views,
}

impl Stage {
    pub const ORDER: [Stage; 4] = [
        Stage::Monitors,
        Stage::Sources,
        Stage::Delivery,
        Stage::Views,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Stage::Monitors => "monitors",
            Stage::Sources => "sources",
            Stage::Delivery => "deliverers",
            Stage::Views => "health, admin and status page",
        }
    }

    /// How long a stage may take before its remaining tasks are aborted:
    /// above the stage's own caps, and 25 s in total, under `TimeoutStopSec=`.
    pub fn backstop(self) -> Duration {
        Duration::from_secs(match self {
            Stage::Monitors => 2,
            Stage::Sources => 12,
            Stage::Delivery => 8,
            Stage::Views => 3,
        })
    }
}

/// The tasks of one stage and their stop signal.
pub struct StageTasks {
    stage: Stage,
    stop: watch::Sender<bool>,
    /// Never polled: its clones see the stop even when made after it.
    unseen: watch::Receiver<bool>,
    set: JoinSet<()>,
    names: HashMap<Id, String>,
}

impl StageTasks {
    fn new(stage: Stage) -> StageTasks {
        let (stop, unseen) = watch::channel(false);
        StageTasks {
            stage,
            stop,
            unseen,
            set: JoinSet::new(),
            names: HashMap::new(),
        }
    }

    /// The signal this stage's tasks watch: `true` means stop.
    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.unseen.clone()
    }

    pub fn spawn<F>(&mut self, name: impl Into<String>, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let id = self.set.spawn(task).id();
        self.names.insert(id, name.into());
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Signal stop and join every task (aborting what is left after `backstop`).
    async fn stop(&mut self, backstop: Duration) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + backstop;
        loop {
            match tokio::time::timeout_at(deadline, self.set.join_next_with_id()).await {
                Ok(None) => break,
                Ok(Some(Ok((id, ())))) => {
                    self.names.remove(&id);
                }
                Ok(Some(Err(e))) => {
                    let name = self.names.remove(&e.id()).unwrap_or_default();
                    if e.is_panic() {
                        log::error!(target: "gateway::daemon", event = "stopping"; "task '{name}' had panicked");
                    }
                }
                Err(_) => {
                    let mut left: Vec<&str> = self.names.values().map(String::as_str).collect();
                    left.sort_unstable();
                    log::warn!(target: "gateway::daemon", event = "stopping"; "{}: still running after {} s, aborted: {}", self.stage.label(), backstop.as_secs(), left.join(", "));
                    self.set.shutdown().await;
                    self.names.clear();
                    break;
                }
            }
        }
    }
}

/// Every task of the daemon, by stage.
pub struct Tasks {
    stages: [StageTasks; 4],
}

impl Default for Tasks {
    fn default() -> Tasks {
        Tasks {
            stages: Stage::ORDER.map(StageTasks::new),
        }
    }
}

impl Tasks {
    pub fn stage(&mut self, stage: Stage) -> &mut StageTasks {
        &mut self.stages[stage as usize]
    }

    /// Stop and join one stage.
    pub async fn stop(&mut self, stage: Stage) {
        self.stop_within(stage, stage.backstop()).await;
    }

    async fn stop_within(&mut self, stage: Stage, backstop: Duration) {
        let started = Instant::now();
        let tasks = self.stage(stage);
        let n = tasks.len();
        tasks.stop(backstop).await;
        log::info!(target: "gateway::daemon", event = "stopping"; "shutdown: {} stopped ({n} task(s), {} ms)", stage.label(), started.elapsed().as_millis());
    }

    /// Stop and join every stage, in order.
    pub async fn stop_all(&mut self) {
        for stage in Stage::ORDER {
            self.stop(stage).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A task that records "<name> stopped" when its signal comes.
    fn recorder(
        log: &Arc<Mutex<Vec<String>>>,
        name: &str,
        mut stop: watch::Receiver<bool>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let (log, name) = (log.clone(), name.to_string());
        async move {
            let _ = stop.wait_for(|s| *s).await;
            log.lock().unwrap().push(format!("{name} stopped"));
        }
    }

    #[tokio::test]
    async fn stages_stop_in_order_and_each_is_joined_before_the_next() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Tasks::default();
        // Spawned out of order; a slow source must finish before delivery is signalled.
        for (stage, name) in [
            (Stage::Views, "health"),
            (Stage::Delivery, "outbox"),
            (Stage::Sources, "listener"),
            (Stage::Monitors, "alerts"),
        ] {
            let t = tasks.stage(stage);
            let task = recorder(&log, name, t.stop_signal());
            t.spawn(name, task);
        }
        let slow = {
            let log = log.clone();
            let mut stop = tasks.stage(Stage::Sources).stop_signal();
            async move {
                let _ = stop.wait_for(|s| *s).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
                log.lock().unwrap().push("connection finished".to_string());
            }
        };
        tasks.stage(Stage::Sources).spawn("connection", slow);
        tasks.stop_all().await;
        assert_eq!(
            *log.lock().unwrap(),
            [
                "alerts stopped",
                "listener stopped",
                "connection finished",
                "outbox stopped",
                "health stopped"
            ]
        );
        assert!(Stage::ORDER.iter().all(|s| tasks.stage(*s).is_empty()));
    }

    #[tokio::test]
    async fn a_task_that_ignores_its_signal_is_aborted_at_the_backstop() {
        let mut tasks = Tasks::default();
        let ended = Arc::new(Mutex::new(false));
        let flag = ended.clone();
        tasks.stage(Stage::Sources).spawn("stuck", async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            *flag.lock().unwrap() = true;
        });
        tasks
            .stop_within(Stage::Sources, Duration::from_millis(50))
            .await;
        assert!(tasks.stage(Stage::Sources).is_empty());
        assert!(!*ended.lock().unwrap(), "aborted, not run to the end");
    }

    #[tokio::test]
    async fn a_panicked_task_does_not_stop_the_shutdown() {
        let mut tasks = Tasks::default();
        tasks
            .stage(Stage::Monitors)
            .spawn("boom", async { panic!("test panic") });
        tokio::task::yield_now().await;
        tasks.stop_all().await;
        assert!(tasks.stage(Stage::Monitors).is_empty());
    }
}
