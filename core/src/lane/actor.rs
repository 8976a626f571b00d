//! The lane actor: admission, the fair queue, slots, cancel, stats and shutdown.
//!
//! Only bookkeeping happens in `handle`; jobs run in their own tokio tasks and report back
//! with [`LaneMsg::Finished`], so the mailbox stays free for cancel, stats and shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorProcessingErr, ActorRef, MessagingErr, RpcReplyPort};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::job::{Abort, ErasedJob, Outcome, StartCtx};
use super::queue::{FairQueue, Queued};
use super::{JobSpec, LaneConfig, LaneError, LaneStats, PENDING_LISTED, PendingJob, ShutdownReport};
use crate::JobId;

/// The lane's messages. Built only by [`LaneHandle`](super::LaneHandle) and by job tasks.
pub(crate) enum LaneMsg {
    /// Admit (start or queue) or refuse a job.
    Submit { spec: JobSpec, job: Box<dyn ErasedJob>, reply: RpcReplyPort<Result<JobId, LaneError>> },
    /// A started job's future has ended and been dropped.
    Finished { id: JobId, outcome: Outcome },
    /// Cancel a queued or running job; replies whether the lane still held it.
    Cancel { id: JobId, reply: RpcReplyPort<bool> },
    /// A snapshot of the counters.
    Stats(RpcReplyPort<LaneStats>),
    /// Stop admitting, discard the queue, drain running jobs until `deadline`.
    Shutdown { deadline: Duration, reply: RpcReplyPort<ShutdownReport> },
    /// The shutdown deadline passed: abort what still runs.
    ShutdownDeadline,
}

/// The lane actor (stateless; see [`State`]).
pub(crate) struct Lane;

/// Everything a lane knows. Owned by the actor task alone, so no locks.
pub(crate) struct State {
    name: Arc<str>,
    capacity: usize,
    max_queue: usize,
    next_id: u64,
    /// Jobs whose task is live. A cancelled job stays here until its future is really dropped
    /// (its `Finished` arrives), so capacity holds even while an abort is in flight.
    running: HashMap<JobId, Running>,
    queue: FairQueue<Waiting>,
    completed: u64,
    rejected: u64,
    cancelled: u64,
    failed: u64,
    shutdown: Option<Shutdown>,
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
    waiters: Vec<RpcReplyPort<ShutdownReport>>,
    timer: Option<JoinHandle<Result<(), MessagingErr<LaneMsg>>>>,
    done: bool,
}

impl Actor for Lane {
    type Msg = LaneMsg;
    type State = State;
    type Arguments = (LaneConfig, Arc<str>);

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        (config, name): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(State {
            name,
            capacity: config.capacity.get(),
            max_queue: config.max_queue,
            next_id: 1,
            running: HashMap::with_capacity(config.capacity.get().min(1024)),
            queue: FairQueue::new(),
            completed: 0,
            rejected: 0,
            cancelled: 0,
            failed: 0,
            shutdown: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            LaneMsg::Submit { spec, job, reply } => {
                // A submitter that gave up (dropped its `submit` future) will never hold this
                // job's handle: do not spend a slot or a queue place on it.
                if !reply.is_closed() {
                    let admitted = state.admit(&myself, spec, job);
                    let _ = reply.send(admitted);
                }
            }
            LaneMsg::Finished { id, outcome } => state.finished(&myself, id, outcome),
            LaneMsg::Cancel { id, reply } => {
                let _ = reply.send(state.cancel(id));
            }
            LaneMsg::Stats(reply) => {
                let _ = reply.send(state.stats());
            }
            LaneMsg::Shutdown { deadline, reply } => state.begin_shutdown(&myself, deadline, reply),
            LaneMsg::ShutdownDeadline => state.shutdown_deadline(),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Queued jobs never ran: resolve them now. Running jobs see their abort sender
        // dropped with the state and end as `Gone` on their own.
        for waiting in state.queue.drain() {
            waiting.job.resolve(LaneError::Gone { lane: state.name.to_string() });
        }
        if let Some(timer) = state.shutdown.as_mut().and_then(|s| s.timer.take()) {
            timer.abort();
        }
        tracing::debug!(lane = %state.name, running = state.running.len(), "lane stopped");
        Ok(())
    }
}

impl State {
    /// Admission: a free slot runs the job now, room in the queue queues it, otherwise the
    /// submission is refused. Nothing of the job has run before this point.
    fn admit(
        &mut self,
        myself: &ActorRef<LaneMsg>,
        spec: JobSpec,
        job: Box<dyn ErasedJob>,
    ) -> Result<JobId, LaneError> {
        if self.shutdown.is_some() {
            self.rejected += 1;
            return Err(LaneError::ShuttingDown { lane: self.name.to_string() });
        }
        if self.running.len() < self.capacity {
            let id = self.next_id();
            self.start(myself, id, spec, job);
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

    fn start(&mut self, myself: &ActorRef<LaneMsg>, id: JobId, spec: JobSpec, job: Box<dyn ErasedJob>) {
        let (abort_tx, abort_rx) = oneshot::channel();
        job.start(StartCtx { lane: Arc::clone(&self.name), id, actor: myself.clone(), abort: abort_rx });
        self.running.insert(id, Running { abort: Some(abort_tx), spec });
    }

    fn finished(&mut self, myself: &ActorRef<LaneMsg>, id: JobId, outcome: Outcome) {
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
        while self.running.len() < self.capacity {
            let Some(next) = self.queue.pop() else { break };
            self.start(myself, next.id, next.spec, next.job);
        }
    }

    fn cancel(&mut self, id: JobId) -> bool {
        if let Some(running) = self.running.get_mut(&id) {
            if let Some(abort) = running.abort.take() {
                // The task may have just finished (its `Finished` is behind us in the
                // mailbox); then the send fails and the job keeps its real ending.
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

    fn begin_shutdown(
        &mut self,
        myself: &ActorRef<LaneMsg>,
        deadline: Duration,
        reply: RpcReplyPort<ShutdownReport>,
    ) {
        if let Some(shutdown) = &mut self.shutdown {
            // Already shutting down: the first deadline holds; this caller gets the same report.
            if shutdown.done {
                let _ = reply.send(shutdown.report);
            } else {
                shutdown.waiters.push(reply);
            }
            return;
        }
        let discarded = self.queue.drain();
        let report = ShutdownReport { discarded: discarded.len(), drained: 0, aborted: 0 };
        self.cancelled += discarded.len() as u64;
        for waiting in discarded {
            waiting.job.resolve(LaneError::ShuttingDown { lane: self.name.to_string() });
        }
        tracing::debug!(lane = %self.name, running = self.running.len(), discarded = report.discarded, ?deadline, "lane shutting down");
        if self.running.is_empty() {
            let _ = reply.send(report);
            self.shutdown = Some(Shutdown { report, waiters: Vec::new(), timer: None, done: true });
        } else {
            // One timer for the whole lane, not one per job.
            let timer = myself.send_after(deadline, || LaneMsg::ShutdownDeadline);
            self.shutdown = Some(Shutdown { report, waiters: vec![reply], timer: Some(timer), done: false });
        }
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
