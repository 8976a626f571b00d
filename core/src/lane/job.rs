//! One job: its type-erased form inside the lane, the task that runs it, and the
//! [`JobHandle`] its submitter awaits.
//!
//! The typed value never passes through the lane: the task sends it straight to the
//! [`JobHandle`], and tells the lane only how the job ended ([`Outcome`]), so the lane can
//! free the slot and count. The lane can still resolve a job that never started (cancelled,
//! discarded at shutdown, lane gone) through [`ErasedJob::resolve`].

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::FutureExt as _;
use tokio::sync::oneshot;

use super::LaneError;
use super::state::Lane;
use crate::JobId;

/// Why the lane asks a running job to stop. A dropped sender means the lane itself is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Abort {
    /// [`LaneHandle::cancel`](super::LaneHandle::cancel).
    Cancelled,
    /// The shutdown deadline passed.
    Shutdown,
}

/// How a started job ended, as far as the lane's bookkeeping cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The future returned a value.
    Completed,
    /// The future panicked.
    Panicked,
    /// The future was dropped before it finished (cancel, shutdown deadline, lane gone).
    Aborted,
}

/// What a job needs from the lane to run.
pub(crate) struct StartCtx {
    pub(crate) lane: Arc<Lane>,
    pub(crate) id: JobId,
    pub(crate) abort: oneshot::Receiver<Abort>,
}

/// A submitted job with its output type erased, so one lane can hold jobs of any type.
pub(crate) trait ErasedJob: Send + 'static {
    /// Spawns the job's task. The task reports to `ctx.lane` once the job's future has been
    /// dropped, whatever the ending.
    fn start(self: Box<Self>, ctx: StartCtx);

    /// Resolves the job's handle with `error` without ever running the work.
    fn resolve(self: Box<Self>, error: LaneError);
}

pub(crate) struct TypedJob<F, T> {
    work: F,
    result: oneshot::Sender<Result<T, LaneError>>,
}

impl<F, T> TypedJob<F, T> {
    pub(crate) fn new(work: F, result: oneshot::Sender<Result<T, LaneError>>) -> Self {
        Self { work, result }
    }
}

impl<F, T> ErasedJob for TypedJob<F, T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    fn start(self: Box<Self>, ctx: StartCtx) {
        let TypedJob { work, result } = *self;
        // Detached on purpose: the lane tracks the task through `Finished` and stops it
        // through the abort channel, so the JoinHandle has nothing to add.
        drop(tokio::spawn(run(work, result, ctx)));
    }

    fn resolve(self: Box<Self>, error: LaneError) {
        // The submitter may have dropped its JobHandle; nobody to tell then.
        let _ = self.result.send(Err(error));
    }
}

async fn run<F, T>(work: F, result: oneshot::Sender<Result<T, LaneError>>, ctx: StartCtx)
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let value = execute(work, ctx).await;
    // Lane first (in `execute`), submitter second: whoever awaits the JobHandle and then asks
    // for stats sees this job already counted.
    let _ = result.send(value);
}

/// A started job's slot: reports to the lane how the job ended when dropped — `Aborted`
/// unless [`execute`] recorded another ending, so a job whose future is dropped from outside
/// (a caller that stops awaiting [`LaneHandle::run`](super::LaneHandle::run), a runtime
/// shutting down) frees its slot too.
struct Slot {
    lane: Arc<Lane>,
    id: JobId,
    outcome: Outcome,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.lane.finished(self.id, self.outcome);
    }
}

/// Runs a started job's work to its end, or until the lane asks it to stop, on whatever task
/// polls this future: its own spawned task ([`ErasedJob::start`]) or its submitter's
/// ([`LaneHandle::run`](super::LaneHandle::run)). The lane hears how it ended once the work
/// future has been dropped (its destructors ran), so a freed slot really is free.
pub(crate) async fn execute<F, T>(work: F, ctx: StartCtx) -> Result<T, LaneError>
where
    F: Future<Output = T>,
{
    let StartCtx { lane, id, mut abort } = ctx;
    let mut slot = Slot { lane, id, outcome: Outcome::Aborted };
    let ended = {
        let work = AssertUnwindSafe(work).catch_unwind();
        tokio::select! {
            // When both are ready in the same poll, the requested abort wins.
            biased;
            reason = &mut abort => Err(reason.ok()),
            out = work => Ok(out),
        }
    };
    let lane = &slot.lane.name;
    let (value, outcome) = match ended {
        Ok(Ok(value)) => (Ok(value), Outcome::Completed),
        Ok(Err(payload)) => (
            Err(LaneError::Panicked {
                lane: lane.to_string(),
                job: id,
                message: panic_message(payload.as_ref()),
            }),
            Outcome::Panicked,
        ),
        Err(Some(Abort::Cancelled)) => {
            (Err(LaneError::Cancelled { lane: lane.to_string(), job: id }), Outcome::Aborted)
        }
        Err(Some(Abort::Shutdown)) => {
            (Err(LaneError::ShuttingDown { lane: lane.to_string() }), Outcome::Aborted)
        }
        Err(None) => (Err(LaneError::Gone { lane: lane.to_string() }), Outcome::Aborted),
    };
    slot.outcome = outcome;
    drop(slot);
    value
}

/// The text of a panic payload (`panic!("...")` gives `&str` or `String`).
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// The eventual result of one submitted job; `.await` it.
///
/// Resolves to the job's value, or to [`LaneError::Cancelled`], [`LaneError::Panicked`],
/// [`LaneError::ShuttingDown`] (discarded from the queue, or aborted at the shutdown deadline)
/// or [`LaneError::Gone`] (the lane stopped).
///
/// Dropping a `JobHandle` does **not** cancel the job: it keeps its place and runs to the end,
/// its value discarded. Use [`LaneHandle::cancel`](super::LaneHandle::cancel) with
/// [`JobHandle::id`] to cancel.
#[must_use = "a JobHandle does nothing unless awaited; dropping it does not cancel the job"]
pub struct JobHandle<T> {
    id: JobId,
    lane: Arc<str>,
    rx: oneshot::Receiver<Result<T, LaneError>>,
}

impl<T> JobHandle<T> {
    pub(crate) fn new(id: JobId, lane: Arc<str>, rx: oneshot::Receiver<Result<T, LaneError>>) -> Self {
        Self { id, lane, rx }
    }

    /// The job's id, for [`LaneHandle::cancel`](super::LaneHandle::cancel).
    pub fn id(&self) -> JobId {
        self.id
    }
}

impl<T> std::fmt::Debug for JobHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobHandle").field("id", &self.id).field("lane", &self.lane).finish_non_exhaustive()
    }
}

impl<T> Future for JobHandle<T> {
    type Output = Result<T, LaneError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx).poll(cx).map(|received| {
            // A sender dropped without a value: the lane went away holding this job (its
            // actor crashed or was stopped before it could resolve the job).
            received.unwrap_or_else(|_| Err(LaneError::Gone { lane: self.lane.to_string() }))
        })
    }
}
