//! The lane's state: admission, the fair queue, slots, cancel, stats and shutdown — under one
//! short lock, taken by the handle's calls and by job tasks as they end.
//!
//! Only bookkeeping happens under the lock (O(1) admission, start and finish; jobs run in
//! their own tokio tasks), so a lock is all a lane needs: no mailbox, no message per
//! submission and per finish, no task of its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::job::{Abort, ErasedJob, Outcome, StartCtx};
use super::queue::{FairQueue, Queued};
use super::{JobSpec, LaneConfig, LaneError, LaneStats, PENDING_LISTED, PendingJob, ShutdownReport};
use crate::JobId;

/// A lane: its name and its state. Shared by its handles and its running jobs.
pub(crate) struct Lane {
    pub(crate) name: Arc<str>,
    state: Mutex<State>,
}

/// Everything a lane knows.
pub(crate) struct State {
    name: Arc<str>,
    capacity: usize,
    max_queue: usize,
    next_id: u64,
    /// Jobs whose task is live. A cancelled job stays here until its future is really dropped
    /// (its `finished` call comes), so capacity holds even while an abort is in flight.
    running: HashMap<JobId, Running>,
    queue: FairQueue<Waiting>,
    completed: u64,
    rejected: u64,
    cancelled: u64,
    failed: u64,
    shutdown: Option<Shutdown>,
    /// The last handle is gone: nothing is started any more.
    stopped: bool,
}

struct Running {
    /// Taken when an abort is sent, so a job is asked at most once.
    abort: Option<oneshot::Sender<Abort>>,
    spec: JobSpec,
}

struct Waiting {
    id: JobId,
    spec: JobSpec,
    job: Box<dyn ErasedJob>,
    since: Instant,
}

impl Queued for Waiting {
    fn id(&self) -> JobId {
        self.id
    }

    fn tenant(&self) -> &str {
        &self.spec.tenant
    }
}

struct Shutdown {
    report: ShutdownReport,
    /// Callers of `shutdown` waiting for the running jobs to end.
    waiters: Vec<oneshot::Sender<ShutdownReport>>,
    timer: Option<JoinHandle<()>>,
    done: bool,
}

/// What a shutdown call waits for.
pub(crate) enum ShutdownWait {
    /// Nothing runs: the report.
    Done(ShutdownReport),
    /// Running jobs end (or are aborted at the deadline) first.
    Pending(oneshot::Receiver<ShutdownReport>),
}

impl Lane {
    pub(crate) fn new(config: LaneConfig, name: Arc<str>) -> Arc<Self> {
        let capacity = config.capacity.get();
        let state = State {
            name: Arc::clone(&name),
            capacity,
            max_queue: config.max_queue,
            next_id: 1,
            running: HashMap::with_capacity(capacity.min(1024)),
            queue: FairQueue::new(),
            completed: 0,
            rejected: 0,
            cancelled: 0,
            failed: 0,
            shutdown: None,
            stopped: false,
        };
        Arc::new(Self { name, state: Mutex::new(state) })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent, so a poisoned lock is recovered.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admission: a free slot runs the job now, room in the queue queues it, otherwise the
    /// submission is refused.
    pub(crate) fn submit(
        self: &Arc<Self>,
        spec: JobSpec,
        job: Box<dyn ErasedJob>,
    ) -> Result<JobId, LaneError> {
        self.lock().admit(self, spec, job)
    }

    /// Takes a free slot for a job its submitter runs itself: `Err` hands the spec back when
    /// no slot is free now (or the lane is shutting down or stopped), and the caller submits
    /// instead. A free slot means an empty queue (a finish starts waiting jobs under the same
    /// lock), so this never overtakes a waiting job.
    pub(crate) fn try_enter(self: &Arc<Self>, spec: JobSpec) -> Result<StartCtx, JobSpec> {
        let mut state = self.lock();
        if state.stopped || state.shutdown.is_some() || state.running.len() >= state.capacity {
            return Err(spec);
        }
        let id = state.next_id();
        let (abort_tx, abort_rx) = oneshot::channel();
        state.running.insert(id, Running { abort: Some(abort_tx), spec });
        Ok(StartCtx { lane: Arc::clone(self), id, abort: abort_rx })
    }

    /// A started job's future has ended and been dropped.
    pub(crate) fn finished(self: &Arc<Self>, id: JobId, outcome: Outcome) {
        self.lock().finished(self, id, outcome);
    }

    pub(crate) fn cancel(&self, id: JobId) -> bool {
        self.lock().cancel(id)
    }

    pub(crate) fn stats(&self) -> LaneStats {
        self.lock().stats()
    }

    pub(crate) fn begin_shutdown(self: &Arc<Self>, deadline: Duration) -> ShutdownWait {
        self.lock().begin_shutdown(self, deadline)
    }

    fn shutdown_deadline(&self) {
        self.lock().shutdown_deadline();
    }

    /// The last handle is gone: queued jobs resolve `Gone`, running jobs are aborted (their
    /// abort senders dropped: they end as `Gone` once their futures are dropped).
    pub(crate) fn stop(&self) {
        let mut state = self.lock();
        state.stopped = true;
        for waiting in state.queue.drain() {
            waiting.job.resolve(LaneError::Gone { lane: state.name.to_string() });
        }
        for running in state.running.values_mut() {
            running.abort = None;
        }
        if let Some(timer) = state.shutdown.as_mut().and_then(|s| s.timer.take()) {
            timer.abort();
        }
        tracing::debug!(lane = %state.name, running = state.running.len(), "lane stopped");
    }
}

impl State {
    /// Admission: a free slot runs the job now, room in the queue queues it, otherwise the
    /// submission is refused. Nothing of the job has run before this point.
    fn admit(
        &mut self,
        lane: &Arc<Lane>,
        spec: JobSpec,
        job: Box<dyn ErasedJob>,
    ) -> Result<JobId, LaneError> {
        if self.stopped {
            return Err(LaneError::Gone { lane: self.name.to_string() });
        }
        if self.shutdown.is_some() {
            self.rejected += 1;
            return Err(LaneError::ShuttingDown { lane: self.name.to_string() });
        }
        if self.running.len() < self.capacity {
            let id = self.next_id();
            self.start(lane, id, spec, job);
            Ok(id)
        } else if self.queue.len() < self.max_queue {
            let id = self.next_id();
            self.queue.push(Waiting { id, spec, job, since: Instant::now() });
            Ok(id)
        } else {
            self.rejected += 1;
            let now = Instant::now();
            let pending = self
                .queue
                .peek_in_service_order(PENDING_LISTED)
                .into_iter()
                .map(|w| PendingJob {
                    id: w.id,
                    tenant: w.spec.tenant.clone(),
                    label: w.spec.label.clone(),
                    queued_for: now.saturating_duration_since(w.since),
                })
                .collect();
            tracing::debug!(lane = %self.name, tenant = %spec.tenant, label = %spec.label, "lane full, submission refused");
            Err(LaneError::Full {
                lane: self.name.to_string(),
                capacity: self.capacity,
                max_queue: self.max_queue,
                pending,
                running: self.running.len(),
                queued: self.queue.len(),
            })
        }
    }

    fn next_id(&mut self) -> JobId {
        let id = JobId(self.next_id);
        self.next_id += 1;
        id
    }

    fn start(&mut self, lane: &Arc<Lane>, id: JobId, spec: JobSpec, job: Box<dyn ErasedJob>) {
        let (abort_tx, abort_rx) = oneshot::channel();
        job.start(StartCtx { lane: Arc::clone(lane), id, abort: abort_rx });
        self.running.insert(id, Running { abort: Some(abort_tx), spec });
    }

    fn finished(&mut self, lane: &Arc<Lane>, id: JobId, outcome: Outcome) {
        let Some(done) = self.running.remove(&id) else {
            tracing::warn!(lane = %self.name, job = %id, "finish reported for a job the lane does not run");
            return;
        };
        match outcome {
            Outcome::Completed => self.completed += 1,
            Outcome::Panicked => {
                self.failed += 1;
                tracing::warn!(lane = %self.name, job = %id, tenant = %done.spec.tenant, label = %done.spec.label, "job panicked");
            }
            Outcome::Aborted => self.cancelled += 1,
        }
        if let Some(shutdown) = &mut self.shutdown {
            match outcome {
                Outcome::Aborted => shutdown.report.aborted += 1,
                Outcome::Completed | Outcome::Panicked => shutdown.report.drained += 1,
            }
            if self.running.is_empty() {
                shutdown.finish();
            }
            return;
        }
        // One slot freed; the queue is non-empty only when every slot was busy.
        while self.running.len() < self.capacity && !self.stopped {
            let Some(next) = self.queue.pop() else { break };
            self.start(lane, next.id, next.spec, next.job);
        }
    }

    fn cancel(&mut self, id: JobId) -> bool {
        if let Some(running) = self.running.get_mut(&id) {
            if let Some(abort) = running.abort.take() {
                // The task may have just finished (its `finished` call waits for this lock);
                // then the send fails and the job keeps its real ending.
                let _ = abort.send(Abort::Cancelled);
            }
            return true;
        }
        match self.queue.remove(id) {
            Some(waiting) => {
                self.cancelled += 1;
                waiting.job.resolve(LaneError::Cancelled { lane: self.name.to_string(), job: id });
                true
            }
            None => false,
        }
    }

    fn stats(&self) -> LaneStats {
        LaneStats {
            name: self.name.to_string(),
            capacity: self.capacity,
            max_queue: self.max_queue,
            running: self.running.len(),
            queued: self.queue.per_tenant(),
            completed: self.completed,
            rejected: self.rejected,
            cancelled: self.cancelled,
            failed: self.failed,
            shutting_down: self.shutdown.is_some(),
        }
    }

    fn begin_shutdown(&mut self, lane: &Arc<Lane>, deadline: Duration) -> ShutdownWait {
        if let Some(shutdown) = &mut self.shutdown {
            // Already shutting down: the first deadline holds; this caller gets the same report.
            if shutdown.done {
                return ShutdownWait::Done(shutdown.report);
            }
            let (tx, rx) = oneshot::channel();
            shutdown.waiters.push(tx);
            return ShutdownWait::Pending(rx);
        }
        let discarded = self.queue.drain();
        let report = ShutdownReport { discarded: discarded.len(), drained: 0, aborted: 0 };
        self.cancelled += discarded.len() as u64;
        for waiting in discarded {
            waiting.job.resolve(LaneError::ShuttingDown { lane: self.name.to_string() });
        }
        tracing::debug!(lane = %self.name, running = self.running.len(), discarded = report.discarded, ?deadline, "lane shutting down");
        if self.running.is_empty() {
            self.shutdown = Some(Shutdown { report, waiters: Vec::new(), timer: None, done: true });
            return ShutdownWait::Done(report);
        }
        // One timer for the whole lane, not one per job.
        let weak = Arc::downgrade(lane);
        let timer = tokio::spawn(async move {
            tokio::time::sleep(deadline).await;
            if let Some(lane) = weak.upgrade() {
                lane.shutdown_deadline();
            }
        });
        let (tx, rx) = oneshot::channel();
        self.shutdown = Some(Shutdown { report, waiters: vec![tx], timer: Some(timer), done: false });
        ShutdownWait::Pending(rx)
    }

    fn shutdown_deadline(&mut self) {
        let Some(shutdown) = &self.shutdown else {
            return;
        };
        if shutdown.done {
            return;
        }
        // Ask every straggler to stop; each one's `Finished` (Aborted) completes the shutdown
        // once its future has really been dropped.
        for (id, running) in &mut self.running {
            if let Some(abort) = running.abort.take() {
                tracing::debug!(lane = %self.name, job = %id, label = %running.spec.label, "aborting job at shutdown deadline");
                let _ = abort.send(Abort::Shutdown);
            }
        }
    }
}

impl Shutdown {
    fn finish(&mut self) {
        self.done = true;
        if let Some(timer) = self.timer.take() {
            timer.abort();
        }
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(self.report);
        }
    }
}
