//! The outbox driver: drains one destination's outbox from the journal,
//! in lanes, with retries, a circuit breaker and the dead-letter queue.
//!
//! # Order and lanes
//!
//! Outbox entries are keyed by message id, so the journal hands them out in
//! the order received. Each entry carries its patient lane (see
//! `route::lane`); the lane of a message on this destination is that
//! patient lane, the whole destination, or the message alone, per the
//! config. A lane is strictly FIFO: its next message starts only after the
//! previous one is delivered (and marked so, durably) or dead-lettered.
//! Up to `concurrency` lanes have an attempt in flight at once, so one slow
//! or failing patient does not hold up the others.
//!
//! A merge (an MRG segment: ADT A40, A47) touches two patients: it sits on
//! the surviving patient's lane, and with `lane = "patient"` it also waits
//! for the earlier messages of each patient it merges away
//! (`route::lane::merged_lanes`), so a result filed under the old MRN
//! before the merge reaches the destination before the merge does. Its
//! first attempt reads the message, finds the MRG lanes and hands them
//! back unsent; the driver starts it again once no entry of those lanes
//! older than the merge is pending (nor held by a dead letter).
//!
//! # Streaming, bounded memory
//!
//! The driver keeps a window of at most [`WINDOW`] pending entries in
//! memory, read page by page behind a cursor; a backlog of millions is
//! never loaded. New enqueues wake it (the journal's outbox notify).
//!
//! # Failures
//!
//! - `Delivered`: marked delivered in the journal, then the lane moves on.
//!   The attempts that finished together are marked in one journal
//!   request (one group commit), so the per-delivery cost is shared.
//! - `Reject` (4xx, AE/CE, a message the transform cannot map): the message
//!   goes to the dead-letter queue with the reason. With `on_dead_letter =
//!   "hold"` (the default) its lane stops: later messages of that patient
//!   wait until an operator replays or purges the dead letter, so an update
//!   never overtakes the message it depends on. Other lanes go on. With
//!   "continue" the lane goes on at once.
//! - `Retry` (5xx, 429, timeouts, network): the lane backs off (exponential,
//!   full jitter, capped), and the destination's circuit counts the failure.
//!   After `circuit_failures` in a row the circuit opens: nothing is sent
//!   but one probe per `probe_interval`, whatever the backlog. When a probe
//!   succeeds every lane resumes at once. `Retry-After` on 429/503 pauses
//!   the whole destination for that long (clamped). With `max_attempts` or
//!   `max_age` set, a message that exhausts them is dead-lettered.
//!
//! Attempt counts of failed messages are kept in the journal
//! ([`super::attempt_record`], written only on a failure), so a restart
//! goes on counting where it stopped: `max_attempts` and `max_age` hold
//! across restarts. An attempt interrupted by a crash or shutdown is simply
//! tried again: delivery is at-least-once, and destinations de-duplicate
//! (idempotent FHIR PUTs, Idempotency-Key, MSH-10).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use std::time::Instant;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::attempt_record::{Attempt, AttemptRecord, Attempts};
use super::backoff::{full_jitter, Jitter};
use super::circuit::{Circuit, Permit, State};
use super::fhir_context::FhirContext;
use super::monitor::Monitor;
use super::outage_log::{error_class, OutageLog};
use super::payload::{prepare, FhirTarget, Wire};
use super::sender::Sender;
use super::verdict::Verdict;
use crate::config::{DeadLetterPolicy, DeliveryPolicy, LaneMode};
use crate::ops::clock::unix_ms;
use crate::ops::watchdog::{Heartbeat, BEAT_EVERY};
use journal::{dlq_notify_key, GiveUp, Journal, PendingEntry};

/// Most pending entries held in memory per destination.
pub const WINDOW: usize = 8192;
/// Entries read from the journal per page.
const PAGE: usize = 1024;
/// How long shutdown waits for attempts in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

pub struct Outbox {
    pub name: String,
    pub journal: Journal,
    pub sender: Arc<Sender>,
    pub wire: Wire,
    pub policy: DeliveryPolicy,
    pub monitor: Arc<Monitor>,
    pub heartbeat: Heartbeat,
    /// The mapping context of a fhir destination.
    pub fhir: Option<Arc<FhirContext>>,
}

#[derive(Default)]
struct Lane {
    queue: VecDeque<PendingEntry>,
    busy: bool,
    /// Consecutive failed attempts of the head message.
    failures: u32,
    first_attempt_ms: u64,
    /// The head's failures are recorded in the journal (to remove once it
    /// is delivered or dead-lettered).
    recorded: bool,
    retry_at: Option<Instant>,
    /// The head is a merge waiting for these other lanes' older entries.
    waits_for: Vec<u64>,
    /// The id of a head merge whose other lanes were found clear.
    merge_cleared: Option<u64>,
}

/// What an attempt came back with.
enum Outcome {
    Sent(Verdict),
    /// Not sent: the message is a merge, and these are the lanes of the
    /// patients it merges away.
    MergeLanes(Vec<u64>),
}

struct Done {
    lane: u64,
    /// The message attempted (the lane's head when it started).
    id: u64,
    outcome: Outcome,
    started_ms: u64,
}

struct Driver {
    o: Outbox,
    lanes: HashMap<u64, Lane>,
    /// Ids in the window (queued or in flight).
    known: HashSet<u64>,
    ready: VecDeque<u64>,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    /// Lanes stopped by a dead letter (policy hold).
    held: HashSet<u64>,
    /// Lanes whose head merge waits for other lanes ([`Lane::waits_for`]).
    merges_waiting: HashSet<u64>,
    cursor: Option<u64>,
    /// The cursor reached the end of the outbox.
    exhausted: bool,
    circuit: Circuit,
    in_flight: JoinSet<Done>,
    jitter: Jitter,
    log: OutageLog,
    attempt_record: AttemptRecord,
    /// Failed attempts recorded before this start, by message id: taken
    /// when the message is next attempted.
    restored: HashMap<u64, Attempts>,
}

/// Test hook for the watchdog test: `GATEWAY_TEST_STALL_DELIVERER=<destination>`
/// with `GATEWAY_TEST_STALL_AFTER_MS=<n>` makes that deliverer hang (as if
/// deadlocked) n ms after start. Never set in production.
fn stall_after(destination: &str) -> Option<Duration> {
    let name = std::env::var("GATEWAY_TEST_STALL_DELIVERER").ok()?;
    let ms = std::env::var("GATEWAY_TEST_STALL_AFTER_MS")
        .ok()?
        .parse()
        .ok()?;
    (name == destination).then(|| Duration::from_millis(ms))
}

impl Outbox {
    /// Drain until shutdown.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let circuit = Circuit::new(self.policy.circuit_failures, self.policy.probe_interval);
        let log = OutageLog::new(&self.name);
        let attempt_record = AttemptRecord::new(&self.name);
        let d = Driver {
            o: self,
            lanes: HashMap::new(),
            known: HashSet::new(),
            ready: VecDeque::new(),
            timers: BinaryHeap::new(),
            held: HashSet::new(),
            merges_waiting: HashSet::new(),
            cursor: None,
            exhausted: false,
            circuit,
            in_flight: JoinSet::new(),
            jitter: Jitter::from_clock(),
            log,
            attempt_record,
            restored: HashMap::new(),
        };
        d.run(shutdown).await
    }
}

impl Driver {
    fn lane_of(&self, e: &PendingEntry) -> u64 {
        match self.o.policy.lane {
            LaneMode::Patient => e.entry.patient_lane,
            LaneMode::Destination => 0,
            LaneMode::None => e.id,
        }
    }

    fn holds(&self) -> bool {
        self.o.policy.on_dead_letter == DeadLetterPolicy::Hold
            && self.o.policy.lane != LaneMode::None
    }

    /// Rebuild the held lanes from the dead-letter queue.
    fn load_held(&mut self) {
        self.held.clear();
        if !self.holds() {
            return;
        }
        let mut after = None;
        loop {
            let page = match self.o.journal.dead_letters(Some(&self.o.name), after, 1024) {
                Ok(p) => p,
                Err(e) => {
                    log::error!(target: "gateway::deliver", "destination {}: cannot read its dead letters: {e}", self.o.name);
                    return;
                }
            };
            let Some(last) = page.last().map(|d| d.seq) else {
                break;
            };
            for d in page {
                let lane = match self.o.policy.lane {
                    LaneMode::Patient => d.patient_lane,
                    LaneMode::Destination => 0,
                    LaneMode::None => d.message_id,
                };
                self.held.insert(lane);
            }
            after = Some(last);
        }
        let n = self.held.len() as u64;
        self.o.monitor.update(|s| s.held_lanes = n);
    }

    /// Read more pending entries into the window, a page at a time, and
    /// only once a page's worth of room is free: a full window is not
    /// re-scanned for every completed message.
    fn fill(&mut self) {
        while self.known.len() + PAGE <= WINDOW && !self.exhausted {
            let page = match self
                .o
                .journal
                .pending_entries(&self.o.name, self.cursor, PAGE)
            {
                Ok(p) => p,
                Err(e) => {
                    log::error!(target: "gateway::deliver", "destination {}: cannot read its outbox: {e}", self.o.name);
                    return;
                }
            };
            if page.len() < PAGE {
                self.exhausted = true;
            }
            for pe in page {
                self.cursor = Some(pe.id);
                if self.known.contains(&pe.id) {
                    continue;
                }
                let lane = self.lane_of(&pe);
                if self.held.contains(&lane) {
                    continue;
                }
                self.known.insert(pe.id);
                let l = self.lanes.entry(lane).or_default();
                l.queue.push_back(pe);
                if l.queue.len() == 1 && !l.busy && l.retry_at.is_none() {
                    self.ready.push_back(lane);
                }
                if self.known.len() >= WINDOW {
                    // The cursor is at this entry: the rest is read later.
                    self.exhausted = false;
                    return;
                }
            }
        }
    }

    /// Start attempts while there is capacity and the circuit allows.
    /// Returns when it next needs to wake for a timer or the circuit.
    fn start_attempts(&mut self) -> Option<Instant> {
        let now = Instant::now();
        // Lanes whose backoff has expired.
        while let Some(Reverse((t, lane))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            if let Some(l) = self.lanes.get_mut(&lane) {
                if l.retry_at == Some(t) {
                    l.retry_at = None;
                    if !l.busy && !l.queue.is_empty() {
                        self.ready.push_back(lane);
                    }
                }
            }
        }
        let mut wake = self.timers.peek().map(|Reverse((t, _))| *t);
        while self.in_flight.len() < self.o.policy.concurrency {
            // Find an eligible lane before asking the circuit, so a probe
            // permit is never taken without an attempt to spend it on.
            let lane = loop {
                match self.ready.pop_front() {
                    None => break None,
                    Some(lane) => {
                        let ok = self.lanes.get(&lane).is_some_and(|l| {
                            !l.busy
                                && l.retry_at.is_none()
                                && l.waits_for.is_empty()
                                && !l.queue.is_empty()
                        });
                        if ok {
                            break Some(lane);
                        }
                    }
                }
            };
            let Some(lane) = lane else { break };
            match self.circuit.permit(now) {
                Permit::Go | Permit::Probe => self.start(lane),
                Permit::Wait(t) => {
                    self.ready.push_front(lane);
                    wake = Some(wake.map_or(t, |w| w.min(t)));
                    break;
                }
            }
        }
        wake
    }

    fn start(&mut self, lane: u64) {
        let Some(l) = self.lanes.get_mut(&lane) else {
            return;
        };
        let Some(pe) = l.queue.front().cloned() else {
            return;
        };
        l.busy = true;
        if l.failures == 0 {
            match self.restored.remove(&pe.id) {
                Some(a) => {
                    l.failures = a.failures;
                    l.first_attempt_ms = a.first_attempt_ms;
                    l.recorded = true;
                }
                None => l.first_attempt_ms = unix_ms(),
            }
        }
        let check_merge = self.o.policy.lane == LaneMode::Patient && l.merge_cleared != Some(pe.id);
        let journal = self.o.journal.clone();
        let sender = self.o.sender.clone();
        let wire = self.o.wire;
        let fhir = self.o.fhir.as_ref().map(|f| (f.get(), f.provenance()));
        self.o.monitor.update(|s| {
            s.in_flight += 1;
            s.attempts += 1;
        });
        self.in_flight.spawn(async move {
            let started_ms = unix_ms();
            let target = fhir.as_ref().map(|(ctx, provenance)| FhirTarget {
                ctx,
                provenance: *provenance,
            });
            let outcome = attempt(&journal, &sender, wire, target, &pe, check_merge).await;
            Done {
                lane,
                id: pe.id,
                outcome,
                started_ms,
            }
        });
    }

    async fn finish(&mut self, done: Done) {
        let refreshes = self.o.sender.token_refreshes();
        self.o.monitor.update(|s| {
            s.in_flight = s.in_flight.saturating_sub(1);
            s.token_refreshes = refreshes;
        });
        let lane = done.lane;
        let now = Instant::now();
        let Some(l) = self.lanes.get_mut(&lane) else {
            return;
        };
        l.busy = false;
        let Some(pe) = l.queue.front().cloned() else {
            return;
        };
        let verdict = match done.outcome {
            Outcome::Sent(v) => v,
            Outcome::MergeLanes(others) => {
                log::info!(
                    target: "gateway::deliver",
                    destination = &*self.o.name;
                    "destination {}: message {} is a merge: it waits for the earlier messages of the patient(s) it merges away",
                    self.o.name,
                    pe.id
                );
                l.waits_for = others;
                self.merges_waiting.insert(lane);
                self.o
                    .monitor
                    .update(|s| s.attempts = s.attempts.saturating_sub(1));
                self.release_merges();
                return;
            }
        };
        match verdict {
            Verdict::Delivered => {
                l.queue.pop_front();
                l.failures = 0;
                let recorded = std::mem::take(&mut l.recorded);
                self.known.remove(&pe.id);
                self.after_head_done(lane);
                self.o.monitor.update(|s| s.delivered_since_start += 1);
                if self.circuit.on_success() {
                    self.recovered();
                }
                if recorded {
                    self.clear_attempts(pe.id).await;
                }
            }
            Verdict::Reject { reason } => {
                // The destination answered: it is up.
                self.circuit.on_neutral();
                let attempts = l.failures + 1;
                let first = l.first_attempt_ms;
                self.record_attempts(pe.id, None, done.started_ms, "rejected", &reason)
                    .await;
                self.dead_letter(lane, pe, attempts, first, done.started_ms, reason)
                    .await;
            }
            Verdict::Retry {
                reason,
                retry_after,
                whole_destination,
                answered,
            } => {
                l.failures = l.failures.saturating_add(1);
                let failures = l.failures;
                let first = l.first_attempt_ms;
                let p = &self.o.policy;
                let too_many = p.max_attempts.is_some_and(|m| failures >= m);
                let too_old = p
                    .max_age
                    .is_some_and(|a| unix_ms().saturating_sub(first) >= a.as_millis() as u64);
                self.o.monitor.update(|s| {
                    s.failed_attempts += 1;
                    s.last_error = Some(reason.clone());
                    s.last_error_at_ms = Some(unix_ms());
                });
                if too_many || too_old {
                    self.record_attempts(pe.id, None, done.started_ms, "retry", &reason)
                        .await;
                    let why = format!(
                        "gave up after {failures} attempt(s) over {}: {reason}",
                        super::outage_log::human(Duration::from_millis(
                            unix_ms().saturating_sub(first)
                        ))
                    );
                    self.dead_letter(lane, pe, failures, first, done.started_ms, why)
                        .await;
                    return;
                }
                l.recorded = true;
                let attempts = Attempts {
                    failures,
                    first_attempt_ms: first,
                };
                self.record_attempts(pe.id, Some(attempts), done.started_ms, "retry", &reason)
                    .await;
                if answered {
                    // Up, only contended: backoff for this lane alone.
                    self.circuit.on_neutral();
                    self.log.failed(now, None, &reason);
                } else {
                    let pause = if whole_destination { retry_after } else { None };
                    let was_down = self.circuit.state() != State::Closed;
                    let opened = self.circuit.on_failure(now, pause);
                    if opened {
                        let pending = self.pending_count();
                        self.log.went_down(
                            now,
                            &reason,
                            pause.unwrap_or(p.probe_interval),
                            pending,
                        );
                    } else {
                        let down_for = self
                            .circuit
                            .down_since()
                            .filter(|_| was_down)
                            .map(|t| now.saturating_duration_since(t));
                        self.log.failed(now, down_for, &reason);
                    }
                }
                self.publish_circuit();
                if self.circuit.state() != State::Closed {
                    // The circuit decides when anything is tried again.
                    self.ready.push_back(lane);
                } else {
                    let u = self.jitter.next_unit();
                    let mut delay = full_jitter(failures, p.initial_backoff, p.max_backoff, u);
                    if let Some(ra) = retry_after {
                        delay = delay.max(ra);
                    }
                    let at = now + delay;
                    if let Some(l) = self.lanes.get_mut(&lane) {
                        l.retry_at = Some(at);
                    }
                    self.timers.push(Reverse((at, lane)));
                }
            }
        }
    }

    /// The head of `lane` is done: queue its next message or drop the lane.
    fn after_head_done(&mut self, lane: u64) {
        let more = self.lanes.get(&lane).is_some_and(|l| !l.queue.is_empty());
        if more {
            self.ready.push_back(lane);
        } else {
            self.lanes.remove(&lane);
        }
        self.release_merges();
    }

    /// Start each waiting merge whose other lanes have no older entry
    /// pending and are not held by a dead letter.
    fn release_merges(&mut self) {
        if self.merges_waiting.is_empty() {
            return;
        }
        let waiting: Vec<u64> = self.merges_waiting.iter().copied().collect();
        for lane in waiting {
            let Some((head, others)) = self
                .lanes
                .get(&lane)
                .and_then(|l| l.queue.front().map(|pe| (pe.id, l.waits_for.clone())))
            else {
                // The lane left the window (held): it is read again later.
                self.merges_waiting.remove(&lane);
                continue;
            };
            let clear = others.iter().all(|o| {
                !self.held.contains(o)
                    && self
                        .lanes
                        .get(o)
                        .and_then(|ol| ol.queue.front())
                        .is_none_or(|older| older.id > head)
            });
            if clear {
                self.merges_waiting.remove(&lane);
                if let Some(l) = self.lanes.get_mut(&lane) {
                    l.waits_for.clear();
                    l.merge_cleared = Some(head);
                }
                self.ready.push_back(lane);
            }
        }
    }

    async fn dead_letter(
        &mut self,
        lane: u64,
        pe: PendingEntry,
        attempts: u32,
        first_attempt_ms: u64,
        last_attempt_ms: u64,
        reason: String,
    ) {
        let why = GiveUp {
            attempts,
            first_attempt_ms,
            last_attempt_ms,
            last_error: reason.clone(),
        };
        match self
            .o
            .journal
            .dead_letter(&self.o.name, pe.id, pe.entry.clone(), why)
            .await
        {
            Ok(seq) => {
                log::warn!(
                    target: "gateway::deliver",
                    destination = &*self.o.name,
                    outcome = "dead_lettered";
                    "destination {}: message {} dead-lettered as #{seq} after {attempts} attempt(s) ({}); see `gateway dlq show {seq}`",
                    self.o.name,
                    pe.id,
                    error_class(&reason)
                );
                self.o.monitor.update(|s| {
                    s.dead_lettered_since_start += 1;
                    s.last_error = Some(reason.clone());
                    s.last_error_at_ms = Some(unix_ms());
                });
                self.known.remove(&pe.id);
                let mut recorded = false;
                if let Some(l) = self.lanes.get_mut(&lane) {
                    l.queue.pop_front();
                    l.failures = 0;
                    recorded = std::mem::take(&mut l.recorded);
                }
                if recorded {
                    self.clear_attempts(pe.id).await;
                }
                if self.holds() {
                    // The rest of the lane waits for the operator; drop it
                    // from the window (it is re-read when the lane is released).
                    if let Some(l) = self.lanes.remove(&lane) {
                        for e in l.queue {
                            self.known.remove(&e.id);
                        }
                    }
                    self.held.insert(lane);
                    self.exhausted = false;
                    let n = self.held.len() as u64;
                    self.o.monitor.update(|s| s.held_lanes = n);
                    self.release_merges();
                } else {
                    self.after_head_done(lane);
                }
            }
            Err(e) => {
                // Could not record it: keep it pending and try again later.
                log::error!(
                    target: "gateway::deliver",
                    "destination {}: cannot dead-letter message {}: {e}; it stays pending",
                    self.o.name,
                    pe.id
                );
                let at = Instant::now() + self.o.policy.max_backoff.min(Duration::from_secs(30));
                if let Some(l) = self.lanes.get_mut(&lane) {
                    l.retry_at = Some(at);
                }
                self.timers.push(Reverse((at, lane)));
            }
        }
    }

    /// A failed attempt: its history, and the count a restart resumes from
    /// (`None` when the message leaves the outbox with it).
    async fn record_attempts(
        &self,
        id: u64,
        attempts: Option<Attempts>,
        started_ms: u64,
        outcome: &str,
        reason: &str,
    ) {
        let failed = Attempt {
            at_ms: started_ms,
            outcome: outcome.to_string(),
            error: error_class(reason).to_string(),
        };
        if let Err(e) = self
            .attempt_record
            .record(&self.o.journal, id, attempts, failed)
            .await
        {
            log::warn!(target: "gateway::deliver", "destination {}: cannot record the failed attempt of message {id}: {e}; after a restart it would count from zero, and its journey misses the attempt", self.o.name);
        }
    }

    async fn clear_attempts(&self, id: u64) {
        if let Err(e) = self.attempt_record.clear(&self.o.journal, id).await {
            // Removed at the next start (the message is no longer pending).
            log::warn!(target: "gateway::deliver", "destination {}: cannot remove the attempt count of message {id}: {e}", self.o.name);
        }
    }

    fn recovered(&mut self) {
        // Lanes in backoff resume now: the destination is answering again.
        let lanes: Vec<u64> = self
            .lanes
            .iter_mut()
            .filter_map(|(k, l)| l.retry_at.take().map(|_| *k))
            .collect();
        for lane in lanes {
            if self
                .lanes
                .get(&lane)
                .is_some_and(|l| !l.busy && !l.queue.is_empty())
            {
                self.ready.push_back(lane);
            }
        }
        self.timers.clear();
        let pending = self.pending_count();
        let down_for = self
            .o
            .monitor
            .snapshot()
            .down_since_ms
            .map(|t| Duration::from_millis(unix_ms().saturating_sub(t)))
            .unwrap_or_default();
        self.log.came_back(down_for, pending);
        self.publish_circuit();
    }

    fn publish_circuit(&self) {
        let state = self.circuit.state();
        let probes = self.circuit.probes();
        let down_since_ms = self
            .circuit
            .down_since()
            .map(|t| unix_ms().saturating_sub(t.elapsed().as_millis() as u64));
        self.o.monitor.update(|s| {
            s.circuit = state.label().to_string();
            s.probes = probes;
            s.down_since_ms = if state == State::Closed {
                None
            } else {
                s.down_since_ms.or(down_since_ms)
            };
        });
    }

    fn pending_count(&self) -> u64 {
        self.o
            .journal
            .stats()
            .per_destination
            .get(&self.o.name)
            .map_or(0, |s| s.pending)
    }

    /// An operator replayed or purged a dead letter: release lanes and re-read.
    fn dlq_changed(&mut self) {
        self.load_held();
        self.cursor = None;
        self.exhausted = false;
        self.release_merges();
    }

    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let notify = self.o.journal.outbox_notify(&self.o.name);
        let dlq_notify = self.o.journal.outbox_notify(&dlq_notify_key(&self.o.name));
        let stall_at = stall_after(&self.o.name).map(|d| Instant::now() + d);
        let mut dlq_seen = self.o.journal.dlq_changes();
        let mut appended_seen = self.o.journal.next_message_id();
        self.load_held();
        match self.attempt_record.load(&self.o.journal).await {
            Ok(restored) => {
                if !restored.is_empty() {
                    log::info!(target: "gateway::deliver", "destination {}: {} message(s) go on with the attempt counts they had before the restart", self.o.name, restored.len());
                }
                self.restored = restored;
            }
            Err(e) => {
                log::warn!(target: "gateway::deliver", "destination {}: cannot read the attempt counts from before the restart ({e}); failed messages count from zero", self.o.name);
            }
        }
        loop {
            if *shutdown.borrow() {
                break;
            }
            if stall_at.is_some_and(|t| Instant::now() >= t) {
                log::warn!(target: "gateway::deliver", "destination {}: test hook: stalling", self.o.name);
                std::future::pending::<()>().await;
            }
            self.o.heartbeat.beat();
            // Register interest before looking, so an enqueue between the look and the wait is not missed.
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let dlq_notified = dlq_notify.notified();
            tokio::pin!(dlq_notified);
            dlq_notified.as_mut().enable();

            // Checked every round: a wake-up may be taken by another branch
            // of the select below and lost with it.
            let dlq_now = self.o.journal.dlq_changes();
            if dlq_now != dlq_seen {
                dlq_seen = dlq_now;
                self.dlq_changed();
            }
            let appended_now = self.o.journal.next_message_id();
            if appended_now != appended_seen {
                appended_seen = appended_now;
                self.exhausted = false;
            }
            self.fill();
            let wake = self.start_attempts();
            let sleep_until = wake
                .unwrap_or_else(|| Instant::now() + BEAT_EVERY)
                .min(Instant::now() + BEAT_EVERY);
            tokio::select! {
                Some(done) = self.in_flight.join_next(), if !self.in_flight.is_empty() => {
                    match done {
                        Ok(d) => {
                            // Every finished attempt before sleeping again,
                            // their deliveries marked in one journal request.
                            let mut group = vec![d];
                            while let Some(Ok(d)) = self.in_flight.try_join_next() {
                                group.push(d);
                            }
                            self.finish_group(group).await;
                        }
                        Err(e) => {
                            // A panicking attempt would be a bug; its message stays pending.
                            log::error!(target: "gateway::deliver", "destination {}: an attempt task failed: {e}; resetting the window", self.o.name);
                            self.reset_window();
                        }
                    }
                }
                _ = &mut notified => { self.exhausted = false; }
                _ = &mut dlq_notified => {}
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(sleep_until)) => {}
                _ = shutdown.changed() => {}
            }
        }
        self.drain_in_flight().await;
    }

    /// Mark the group's deliveries durably (one journal request for all of
    /// them), then let each lane move on. If the journal cannot record
    /// them, those messages stay pending and are retried (sent again: the
    /// destination de-duplicates); none is reported as done.
    async fn finish_group(&mut self, mut group: Vec<Done>) {
        let delivered: Vec<u64> = group
            .iter()
            .filter(|d| matches!(d.outcome, Outcome::Sent(Verdict::Delivered)))
            .map(|d| d.id)
            .collect();
        if let Err(e) = self
            .o
            .journal
            .mark_delivered_many(&self.o.name, delivered)
            .await
        {
            for d in &mut group {
                if matches!(d.outcome, Outcome::Sent(Verdict::Delivered)) {
                    d.outcome = Outcome::Sent(Verdict::retry(format!(
                        "delivered, but the journal could not record it: {e}"
                    )));
                }
            }
        }
        for d in group {
            self.finish(d).await;
        }
    }

    fn reset_window(&mut self) {
        self.in_flight.abort_all();
        self.lanes.clear();
        self.known.clear();
        self.ready.clear();
        self.timers.clear();
        self.merges_waiting.clear();
        self.cursor = None;
        self.exhausted = false;
        self.o.monitor.update(|s| s.in_flight = 0);
    }

    async fn drain_in_flight(&mut self) {
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        let mut delivered = Vec::new();
        while !self.in_flight.is_empty() {
            match tokio::time::timeout_at(
                tokio::time::Instant::from_std(deadline),
                self.in_flight.join_next(),
            )
            .await
            {
                Ok(Some(Ok(d))) => {
                    // Record deliveries; do not start anything new.
                    if matches!(d.outcome, Outcome::Sent(Verdict::Delivered)) {
                        delivered.push(d.id);
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    log::warn!(target: "gateway::deliver", "destination {}: {} attempt(s) still running at shutdown; they will be retried at the next start", self.o.name, self.in_flight.len());
                    self.in_flight.abort_all();
                    break;
                }
            }
        }
        let n = delivered.len() as u64;
        match self
            .o
            .journal
            .mark_delivered_many(&self.o.name, delivered)
            .await
        {
            Ok(()) => self.o.monitor.update(|s| s.delivered_since_start += n),
            Err(e) => {
                log::warn!(target: "gateway::deliver", "destination {}: {n} message(s) delivered during shutdown could not be marked ({e}); they will be sent again at the next start", self.o.name)
            }
        }
    }
}

/// One attempt: load, transform, send. A delivery is marked in the journal
/// by the driver (`finish_group`) before the lane may move on. With
/// `check_merge`, a merge is handed back unsent with the lanes it merges
/// away.
async fn attempt(
    journal: &Journal,
    sender: &Sender,
    wire: Wire,
    fhir: Option<FhirTarget<'_>>,
    pe: &PendingEntry,
    check_merge: bool,
) -> Outcome {
    let msg = match journal.get(pe.id) {
        Ok(Some(m)) => m,
        Ok(None) => {
            return Outcome::Sent(Verdict::Reject {
                reason: format!("message {} is pending but missing from the journal", pe.id),
            })
        }
        Err(journal::JournalError::Corrupt { context }) => {
            return Outcome::Sent(Verdict::Reject {
                reason: format!("journal record is corrupt: {context}"),
            })
        }
        Err(e) => return Outcome::Sent(Verdict::retry(format!("journal: {e}"))),
    };
    if check_merge {
        let others = merged_lanes(&msg.raw, pe.entry.patient_lane);
        if !others.is_empty() {
            return Outcome::MergeLanes(others);
        }
    }
    let prepared = match prepare(msg, &pe.entry.transform, wire, fhir) {
        Ok(p) => p,
        Err(reason) => return Outcome::Sent(Verdict::Reject { reason }),
    };
    Outcome::Sent(sender.send(&prepared).await)
}

/// The other lanes a stored message merges away: only a message with an
/// MRG segment is parsed.
fn merged_lanes(raw: &[u8], own: u64) -> Vec<u64> {
    let has_mrg = |w: &[u8]| (w[0] == b'\r' || w[0] == b'\n') && &w[1..] == b"MRG";
    if !raw.windows(4).any(has_mrg) {
        return Vec::new();
    }
    hl7::Message::parse(raw)
        .map(|m| crate::route::lane::merged_lanes(&m, own))
        .unwrap_or_default()
}
