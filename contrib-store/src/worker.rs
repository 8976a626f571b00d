//! [`Worker`]: drives runs from the PostgreSQL run queue — N processes on any machines, one
//! database. `executus-run worker` is this loop around the host's runtime.
//!
//! The loop: pick up to `concurrency - running` runs ([`PgRunQueue::pick`]: queued runs and
//! orphans, each with its lease taken), start each on the runtime — a fresh run from its
//! request with `Runtime::spawn_with`, a checkpointed one with `Runtime::resume`, whose claim
//! takes over the lease the pick reserved — and record each outcome in the queue
//! ([`PgRunQueue::complete`]). Between picks it sleeps until a notification
//! (`executus_queue`: something was enqueued or released), a run of its own ends, or the poll
//! interval passes (notifications are not durable).
//!
//! Guarantees:
//! - No run is driven by two workers at once: a run is only started under its lease (see
//!   [`crate::postgres::lease`]); a worker that loses its lease connection stops every run
//!   at once and [`Worker::run`] returns [`WorkerError::LeaseLost`] (the process should
//!   exit: `executus-run worker` does, with status 1).
//! - A killed worker's runs are resumed by another worker from their last checkpoint once
//!   their leases expire; tool calls whose results were checkpointed are never run again
//!   (the core's resume rule).
//! - Stop (SIGTERM): no more picks; running runs get `shutdown_grace` to finish, the rest are
//!   interrupted with their checkpoints flushed; only then are the leases released, all at
//!   once, with a notification, so another worker takes over at once instead of after the
//!   expiry.
//! - A run's lease outlives its claim until its outcome is in the queue, so a follower
//!   (`run --wait`, `serve`) never sees the run finished and unleased before its outcome is
//!   recorded (which it would read as a worker that died in between).
//!
//! What it does not do: the runtime given must not have a `RunQueue` (it would hand the runs
//! back to the queue); a run that fails to start for good (unknown agent, a log that does not
//! replay) is recorded as failed and not retried; a run that pauses for approval stays in the
//! queue, driven again by whoever approves it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use executus::ports::{PortError, RunQueue};
use executus::{RunEnd, RunHandle, RunId, RunOutcome, RunRequest, Runtime, RuntimeError};
use futures::future::BoxFuture;
use tokio::sync::broadcast;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::error::StoreError;
use crate::postgres::queue::{Picked, PickedStart, Wakeups};
use crate::postgres::{PgRunQueue, PgStore, QueueState, QueuedRequest};

/// How a worker works.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WorkerSettings {
    /// Runs this worker drives at once (default 4).
    pub concurrency: usize,
    /// At most this many runs of one tenant active across all workers (default none).
    pub tenant_cap: Option<u32>,
    /// Longest sleep between two looks at the queue (default 1 s).
    pub poll: Duration,
    /// What running runs get to finish at stop (default 2 s).
    pub shutdown_grace: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            concurrency: 4,
            tenant_cap: None,
            poll: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(2),
        }
    }
}

impl WorkerSettings {
    /// Sets the runs driven at once (at least 1).
    #[must_use]
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Caps the active runs of one tenant across all workers.
    #[must_use]
    pub fn tenant_cap(mut self, cap: Option<u32>) -> Self {
        self.tenant_cap = cap.map(|c| c.max(1));
        self
    }

    /// Sets the poll interval (at least 10 ms).
    #[must_use]
    pub fn poll(mut self, poll: Duration) -> Self {
        self.poll = poll.max(Duration::from_millis(10));
        self
    }

    /// Sets the grace running runs get at stop.
    #[must_use]
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }
}

/// What a worker did (for logs).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WorkerEvent {
    /// A run was started (`resumed`: from its checkpoint; `orphan`: its previous worker
    /// died or let it go).
    Started {
        /// The run.
        run: RunId,
        /// Resumed from a checkpoint.
        resumed: bool,
        /// Picked from a worker that is gone.
        orphan: bool,
    },
    /// A run ended here.
    Ended {
        /// The run.
        run: RunId,
        /// Its status (`completed`, `failed`, ...).
        status: String,
    },
    /// A run could not be started and was recorded as failed.
    Refused {
        /// The run.
        run: RunId,
        /// Why.
        error: String,
    },
    /// A picked run was handed back (someone else drives it, or a passing failure).
    HandedBack {
        /// The run.
        run: RunId,
        /// Why.
        reason: String,
    },
}

/// What a worker did, in total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerReport {
    /// Runs started fresh from their request.
    pub started: u64,
    /// Runs resumed from a checkpoint.
    pub resumed: u64,
    /// Runs that ended here (any status).
    pub ended: u64,
    /// Runs refused for good.
    pub refused: u64,
    /// Runs interrupted by the stop (checkpointed; another worker continues them).
    pub interrupted: u64,
}

/// Why a worker stopped on its own.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The lease connection was lost: every run was stopped; the process should exit.
    #[error("worker {owner}: lease connection lost; every run was stopped (another worker resumes them)")]
    LeaseLost {
        /// This worker.
        owner: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A worker over one runtime and the PostgreSQL store its checkpoints live in.
pub struct Worker {
    runtime: Runtime,
    store: PgStore,
    settings: WorkerSettings,
    events: broadcast::Sender<WorkerEvent>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("owner", &self.store.owner())
            .field("settings", &self.settings)
            .finish()
    }
}

type Running = JoinSet<(RunId, Option<Arc<RunOutcome>>)>;

impl Worker {
    /// A worker driving runs of `store`'s queue on `runtime`, whose checkpoint store must be
    /// `store`'s (the leases a pick takes are handed to the runtime's claims there).
    pub fn new(runtime: Runtime, store: PgStore, settings: WorkerSettings) -> Self {
        let (events, _) = broadcast::channel(1024);
        Self { runtime, store, settings, events }
    }

    /// What this worker does from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<WorkerEvent> {
        self.events.subscribe()
    }

    fn emit(&self, event: WorkerEvent) {
        let _ = self.events.send(event);
    }

    /// Works until `stop` is cancelled (then stops as the module docs say) or the lease
    /// connection is lost.
    ///
    /// # Errors
    /// [`WorkerError::LeaseLost`] (the runs were stopped), [`WorkerError::Store`] when the
    /// lease connection cannot be opened.
    pub async fn run(&self, stop: CancellationToken) -> Result<WorkerReport, WorkerError> {
        let queue = self.store.queue();
        let lost = self.store.lease_lost();
        let wakeups = match self.store.wakeups().await {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(target: "executus_store::worker", error = %e, "cannot LISTEN; polling only");
                None
            }
        };
        let mut report = WorkerReport::default();
        let mut running: Running = JoinSet::new();
        let mut ids: HashSet<RunId> = HashSet::new();
        loop {
            if stop.is_cancelled() {
                break;
            }
            if lost.is_cancelled() {
                // Fence: nothing of ours may go on once the lease may be someone else's. The
                // last checkpoint writes may not reach a database that is gone: bounded.
                let _ =
                    tokio::time::timeout(Duration::from_secs(2), self.runtime.shutdown(Duration::ZERO)).await;
                running.abort_all();
                return Err(WorkerError::LeaseLost { owner: self.store.owner().to_owned() });
            }
            let free = self.settings.concurrency.saturating_sub(running.len());
            if free > 0 {
                match queue.pick(free, self.settings.tenant_cap).await {
                    Ok(picked) => {
                        for p in picked {
                            self.start(&queue, p, &mut running, &mut ids, &mut report).await;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(target: "executus_store::worker", error = %e, "pick failed; retrying")
                    }
                }
            }
            let work = async {
                match &wakeups {
                    Some(w) => w.work.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                () = lost.cancelled() => {}
                Some(done) = running.join_next(), if !running.is_empty() => {
                    if let Ok((run, outcome)) = done {
                        ids.remove(&run);
                        self.record(&queue, run, outcome, &mut report).await;
                    }
                }
                // A full worker only waits for its own runs (and the stop).
                () = work, if running.len() < self.settings.concurrency => {}
                () = tokio::time::sleep(self.settings.poll), if running.len() < self.settings.concurrency => {}
            }
        }
        // Stop: no more picks. Leases are held until the interrupted runs' last checkpoints
        // are written (the runtime's shutdown flushes them), then released at once.
        self.store.defer_releases();
        self.runtime.shutdown(self.settings.shutdown_grace).await;
        while let Some(done) = running.try_join_next() {
            if let Ok((run, outcome)) = done {
                ids.remove(&run);
                self.record(&queue, run, outcome, &mut report).await;
            }
        }
        report.interrupted = ids.len() as u64;
        running.abort_all();
        if let Err(e) = self.store.release_all().await {
            tracing::warn!(target: "executus_store::worker", error = %e, "could not release the leases; they expire on their own");
        }
        Ok(report)
    }

    async fn start(
        &self,
        queue: &PgRunQueue,
        picked: Picked,
        running: &mut Running,
        ids: &mut HashSet<RunId>,
        report: &mut WorkerReport,
    ) {
        let run = picked.run_id;
        // The lease outlives the run's claim until its outcome is recorded (see `record`).
        self.store.hold_lease(run);
        let (started, resumed) = match picked.start {
            PickedStart::Fresh(request) => {
                let request = *request;
                let mut req =
                    RunRequest::new(request.agent, request.input).identity(request.identity).run_id(run);
                if let Some(lane) = request.lane {
                    req = req.lane(lane);
                }
                if request.deliver {
                    req = req.deliver();
                }
                if let Some(conversation) = request.conversation {
                    req = req.conversation(conversation);
                }
                req.watch = false;
                (self.runtime.spawn_with(req).await, false)
            }
            PickedStart::Resume => (self.runtime.resume(run).await, true),
            PickedStart::Lost => {
                queue.unreserve(run);
                self.refuse(
                    queue,
                    run,
                    "the queue row has neither a request nor a checkpoint".into(),
                    report,
                )
                .await;
                return;
            }
        };
        match started {
            Ok(handle) => {
                if resumed {
                    report.resumed += 1;
                } else {
                    report.started += 1;
                }
                self.emit(WorkerEvent::Started { run, resumed, orphan: picked.orphan });
                ids.insert(run);
                running.spawn(watch(handle));
            }
            Err(e) => {
                queue.unreserve(run);
                match e {
                    // Passing: someone else drives it, the store or a lane hiccuped.
                    RuntimeError::ActiveElsewhere { .. }
                    | RuntimeError::AlreadyActive { .. }
                    | RuntimeError::Port(_)
                    | RuntimeError::Lane(_)
                    | RuntimeError::Start { .. } => {
                        tracing::warn!(target: "executus_store::worker", %run, error = %e, "run handed back");
                        self.store.outcome_recorded(run);
                        self.emit(WorkerEvent::HandedBack { run, reason: e.to_string() });
                    }
                    e => self.refuse(queue, run, e.to_string(), report).await,
                }
            }
        }
    }

    async fn refuse(&self, queue: &PgRunQueue, run: RunId, error: String, report: &mut WorkerReport) {
        tracing::error!(target: "executus_store::worker", %run, %error, "run cannot start; recorded as failed");
        report.refused += 1;
        let outcome = RunOutcome {
            run_id: run,
            agent: String::new(),
            end: RunEnd::Failed { error: error.clone().into() },
            output: None,
            typed: None,
            messages: Vec::new(),
            steps: 0,
            usage: Default::default(),
        };
        let json = serde_json::to_value(&outcome).unwrap_or_default();
        if let Err(e) = queue.complete(run, "failed", &json).await {
            tracing::warn!(target: "executus_store::worker", %run, error = %e, "could not record the refusal");
        }
        self.store.outcome_recorded(run);
        self.emit(WorkerEvent::Refused { run, error });
    }

    async fn record(
        &self,
        queue: &PgRunQueue,
        run: RunId,
        outcome: Option<Arc<RunOutcome>>,
        report: &mut WorkerReport,
    ) {
        let Some(outcome) = outcome else {
            self.store.outcome_recorded(run);
            return;
        };
        report.ended += 1;
        let json = serde_json::to_value(outcome.as_ref()).unwrap_or_default();
        if let Err(e) = queue.complete(run, outcome.status().as_str(), &json).await {
            tracing::warn!(target: "executus_store::worker", %run, error = %e, "could not record the outcome");
        }
        // Only now may the run be seen unleased: followers read the outcome, not its absence.
        self.store.outcome_recorded(run);
        self.emit(WorkerEvent::Ended { run, status: outcome.status().as_str().to_owned() });
    }
}

/// Waits for a run's outcome (which never comes for a run interrupted by the stop: its task
/// is then aborted).
async fn watch(handle: RunHandle) -> (RunId, Option<Arc<RunOutcome>>) {
    let run = handle.id();
    (run, Some(handle.outcome().await))
}

/// The queue as the core's [`RunQueue`] port: `run`, `schedule` and `serve` in
/// `[runtime] mode = "queue"` hand their runs to the workers through it. The returned future
/// follows the queue row (notifications, and polling every second) until a worker recorded
/// the run's outcome — or until the run finished and nobody holds its lease any more (its
/// driver stopped before recording the outcome: the outcome then carries the status only).
#[async_trait]
impl RunQueue for PgRunQueue {
    async fn enqueue(
        &self,
        run_id: RunId,
        request: &RunRequest,
    ) -> Result<BoxFuture<'static, RunOutcome>, PortError> {
        let queued = QueuedRequest {
            agent: request.agent.clone(),
            input: request.input.clone(),
            identity: request.identity.clone(),
            lane: request.lane.clone(),
            deliver: request.deliver,
            conversation: request.conversation.clone(),
        };
        PgRunQueue::enqueue(self, run_id, &queued).await.map_err(|e| e.into_port("queue"))?;
        let queue = self.clone();
        let agent = request.agent.name.clone();
        Ok(Box::pin(async move { follow(&queue, run_id, agent).await }))
    }
}

/// Waits until a queued run ended (see [`RunQueue for PgRunQueue`](PgRunQueue)).
pub async fn follow(queue: &PgRunQueue, run: RunId, agent: String) -> RunOutcome {
    let wakeups: Option<Arc<Wakeups>> = queue.store().wakeups().await.ok();
    let mut done = wakeups.as_ref().map(|w| w.done.subscribe());
    loop {
        match queue.entry(run).await {
            Ok(Some(entry)) => {
                let finished_unreported = entry.state == QueueState::Finished && entry.lease.is_none();
                let paused = entry.status.as_deref() == Some("awaiting_approval");
                if entry.state == QueueState::Done
                    || finished_unreported
                    || (paused && entry.outcome.is_some())
                {
                    if let Some(outcome) =
                        entry.outcome.and_then(|o| serde_json::from_value::<RunOutcome>(o).ok())
                    {
                        return outcome;
                    }
                    let status = entry.status.unwrap_or_else(|| "failed".into());
                    let end = if status == "completed" {
                        RunEnd::Completed
                    } else {
                        RunEnd::Failed {
                            error: format!(
                                "the run ended ({status}) on a worker that stopped before recording its outcome"
                            )
                            .into(),
                        }
                    };
                    return RunOutcome {
                        run_id: run,
                        agent,
                        end,
                        output: None,
                        typed: None,
                        messages: Vec::new(),
                        steps: 0,
                        usage: Default::default(),
                    };
                }
            }
            Ok(None) => {
                return RunOutcome {
                    run_id: run,
                    agent,
                    end: RunEnd::Failed {
                        error: String::from("the run is no longer in the queue (pruned?)").into(),
                    },
                    output: None,
                    typed: None,
                    messages: Vec::new(),
                    steps: 0,
                    usage: Default::default(),
                };
            }
            Err(e) => {
                tracing::warn!(target: "executus_store::queue", %run, error = %e, "cannot read the queue; retrying")
            }
        }
        let announced = async {
            match done.as_mut() {
                Some(rx) => loop {
                    match rx.recv().await {
                        Ok(r) if r == run => return,
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => return,
                        Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
                    }
                },
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = announced => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
