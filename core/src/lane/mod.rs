//! Lanes: named, bounded worker pools with fair-share queues.
//!
//! A lane runs at most `capacity` jobs at once. Admission happens in [`LaneHandle::submit`],
//! under the lane's lock (no actor: a submission and a finish are a lock each, no message),
//! before any of the job's work runs: the job starts at once if a slot is free, waits if the
//! queue has room, and is otherwise refused with [`LaneError::Full`], which lists what is
//! pending. That is the backpressure: an actor mailbox or a task queue is unbounded, a lane is not.
//!
//! # Guarantees
//! - **Capacity is never exceeded.** A slot is freed only once the job's future has been
//!   dropped, including for cancelled and aborted jobs, so the work's destructors have run.
//! - **Fair share.** Waiting jobs sit in one FIFO queue per tenant; the lane serves the
//!   tenants round-robin, one job each per round, in the order they started waiting. A tenant
//!   with 100 waiting jobs and one with 1 alternate.
//! - **A failed job is data.** A job whose future panics resolves [`LaneError::Panicked`], its
//!   slot is freed and the lane keeps serving.
//! - **Cheap.** Admission, start and finish are O(1); there is no timer or polling per job
//!   (the only timer is the shutdown deadline). Per submitted job: the boxed job, its tokio
//!   task, and two one-shot channels (the result and the abort signal); no message, no actor
//!   hop. A job [`run`](LaneHandle::run) on its caller's task while a slot is free needs only
//!   the abort signal.
//!
//! # What it does not do
//! - No per-job timeout: wrap the work in `tokio::time::timeout` if it needs one.
//! - No priorities beyond tenant fairness; no persistence (a queued job lives in memory).
//! - Dropping a [`JobHandle`] does not cancel its job; [`LaneHandle::cancel`] does (and
//!   dropping the future of [`LaneHandle::run`] does, for a job running on the caller's task).
//! - Dropping the last [`LaneHandle`] stops the lane: queued jobs and running jobs resolve
//!   [`LaneError::Gone`] (running ones are aborted). Call [`LaneHandle::shutdown`] first to
//!   drain instead.

mod error;
mod job;
mod queue;
mod state;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

pub use self::error::{LaneError, PENDING_LISTED, PendingJob};
pub use self::job::JobHandle;
use self::job::TypedJob;
use self::state::{Lane, ShutdownWait};
use crate::JobId;

/// How a lane is sized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneConfig {
    /// The lane's name, used in errors, stats and traces.
    pub name: String,
    /// How many jobs may run at once.
    pub capacity: NonZeroUsize,
    /// How many jobs may wait beyond the running ones; 0 means no queue (a submission with
    /// every slot busy is refused at once).
    pub max_queue: usize,
}

impl LaneConfig {
    /// A lane called `name` running `capacity` jobs at once with `max_queue` waiting places.
    pub fn new(name: impl Into<String>, capacity: NonZeroUsize, max_queue: usize) -> Self {
        Self { name: name.into(), capacity, max_queue }
    }
}

/// Who a job is for and what it is, for fairness, stats and errors.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobSpec {
    /// The tenant the job is charged to; queued jobs are served round-robin across tenants.
    pub tenant: String,
    /// A short human label ("review:lens-security", "run:triage"), shown in errors.
    pub label: String,
}

impl JobSpec {
    /// A job for `tenant` labelled `label`.
    pub fn new(tenant: impl Into<String>, label: impl Into<String>) -> Self {
        Self { tenant: tenant.into(), label: label.into() }
    }
}

/// A snapshot of a lane's occupancy and counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneStats {
    /// The lane's name.
    pub name: String,
    /// How many jobs may run at once.
    pub capacity: usize,
    /// How many jobs may wait beyond the running ones.
    pub max_queue: usize,
    /// Jobs whose task is live now (a job being aborted counts until its future is dropped).
    pub running: usize,
    /// Waiting jobs per tenant (tenants with nothing waiting are absent).
    pub queued: BTreeMap<String, usize>,
    /// Jobs whose future returned a value.
    pub completed: u64,
    /// Submissions refused: lane full, or shutting down.
    pub rejected: u64,
    /// Admitted jobs that ended without running to the end: cancelled (queued or running),
    /// discarded from the queue by shutdown, or aborted at the shutdown deadline.
    pub cancelled: u64,
    /// Jobs whose future panicked.
    pub failed: u64,
    /// Whether [`LaneHandle::shutdown`] has been called.
    pub shutting_down: bool,
}

impl LaneStats {
    /// Waiting jobs, all tenants together.
    pub fn queued_total(&self) -> usize {
        self.queued.values().sum()
    }
}

/// What a [`LaneHandle::shutdown`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShutdownReport {
    /// Queued jobs that never started; their handles resolved [`LaneError::ShuttingDown`].
    pub discarded: usize,
    /// Running jobs that ended on their own (value or panic) before the deadline.
    pub drained: usize,
    /// Running jobs that were aborted: still running at the deadline (their handles resolved
    /// [`LaneError::ShuttingDown`]), or cancelled during the shutdown.
    pub aborted: usize,
}

/// A cheap, cloneable handle to a running lane.
///
/// The lane lives as long as any clone of its handle: dropping the last clone stops
/// it (see the module docs for what happens to its jobs).
#[derive(Clone)]
pub struct LaneHandle {
    inner: Arc<Inner>,
}

struct Inner {
    lane: Arc<Lane>,
    name: Arc<str>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Last handle gone: nobody can submit, cancel or shut down any more, so stop the
        // lane rather than leave its jobs waiting.
        self.lane.stop();
    }
}

impl fmt::Debug for LaneHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LaneHandle").field("name", &self.inner.name).finish_non_exhaustive()
    }
}

impl LaneHandle {
    /// Starts a lane.
    ///
    /// # Errors
    /// None in practice ([`LaneError::Spawn`] is kept for callers matching on it).
    pub async fn spawn(config: LaneConfig) -> Result<LaneHandle, LaneError> {
        let name: Arc<str> = Arc::from(config.name.as_str());
        let lane = Lane::new(config, Arc::clone(&name));
        Ok(LaneHandle { inner: Arc::new(Inner { lane, name }) })
    }

    /// The lane's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Submits `work` as a job. Admission happens here, before any of the work runs: the
    /// job starts now if a slot is free, waits if the queue has room, and is refused
    /// otherwise. `work` is not polled until the job starts.
    ///
    /// On success the returned [`JobHandle`] resolves with the job's value (or how it ended).
    ///
    /// # Errors
    /// - [`LaneError::Full`]: every slot busy and the queue at its cap; lists what is pending.
    /// - [`LaneError::ShuttingDown`]: [`shutdown`](Self::shutdown) was called.
    /// - [`LaneError::Gone`]: the lane has stopped.
    pub async fn submit<F, T>(&self, job: JobSpec, work: F) -> Result<JobHandle<T>, LaneError>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let erased = Box::new(TypedJob::new(work, tx));
        let id = self.inner.lane.submit(job, erased)?;
        Ok(JobHandle::new(id, Arc::clone(&self.inner.name), rx))
    }

    /// Runs `work` as a job on the caller's own task when a slot is free now, and otherwise
    /// submits it (it waits in the queue and runs on a task of its own when its turn comes);
    /// refused as [`submit`](Self::submit) refuses. Resolves with the job's value or how it
    /// ended, as a [`JobHandle`] does.
    ///
    /// Run here, a job costs no task, no wake-up of another thread and no result channel:
    /// the caller polls the work itself, inside the lane's capacity and counters, and
    /// [`cancel`](Self::cancel) and the shutdown deadline stop it as they stop any job.
    /// Unlike a submitted job, a job run here belongs to the caller: dropping this future
    /// drops the work (counted as cancelled) and frees the slot.
    ///
    /// # Errors
    /// As [`submit`](Self::submit), then as the [`JobHandle`].
    pub async fn run<F, T>(&self, job: JobSpec, work: F) -> Result<T, LaneError>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        match self.inner.lane.try_enter(job) {
            Ok(ctx) => job::execute(work, ctx).await,
            Err(job) => self.submit(job, work).await?.await,
        }
    }

    /// Cancels a job. A queued job is removed and never starts; a running job is aborted
    /// (its future dropped at its next await point). Either way its [`JobHandle`] resolves
    /// [`LaneError::Cancelled`] — except a running job that finished in the same instant,
    /// which keeps its real result.
    ///
    /// Returns `true` if the lane still held the job (queued or running), `false` if the id
    /// is unknown or already finished.
    pub async fn cancel(&self, job: JobId) -> bool {
        self.inner.lane.cancel(job)
    }

    /// A snapshot of the lane's occupancy and counters.
    ///
    /// # Errors
    /// None in practice: kept for callers written against a lane that could be gone.
    pub async fn stats(&self) -> Result<LaneStats, LaneError> {
        Ok(self.inner.lane.stats())
    }

    /// Shuts the lane down gracefully: it stops admitting (new submissions get
    /// [`LaneError::ShuttingDown`]), discards its queue (those handles resolve
    /// `ShuttingDown`), and lets running jobs finish until `deadline`; jobs still running
    /// then are aborted and resolve `ShuttingDown`. Returns once nothing runs any more.
    ///
    /// The lane stays up afterwards (stats still answer; submissions are refused) until its
    /// last handle is dropped. Calling `shutdown` again returns the same report; the first
    /// deadline holds.
    ///
    /// # Errors
    /// [`LaneError::Gone`] if the lane stopped before the shutdown completed.
    pub async fn shutdown(&self, deadline: Duration) -> Result<ShutdownReport, LaneError> {
        match self.inner.lane.begin_shutdown(deadline) {
            ShutdownWait::Done(report) => Ok(report),
            ShutdownWait::Pending(rx) => rx.await.map_err(|_| self.gone()),
        }
    }

    fn gone(&self) -> LaneError {
        LaneError::Gone { lane: self.inner.name.to_string() }
    }
}
