//! The shared append log behind [`super::CheckpointHandle`]: runs append encoded facts to an
//! open batch under a short lock; whoever finds no write in flight writes the batch (group
//! commit with a leader), so there is no actor, no message and no task per save.
//!
//! A write is polled once in its caller's task: a store that answers at once (the in-memory
//! default) costs its caller one lock and the store call, nothing else. A write that has to
//! wait (a file store's transaction) moves to a task of its own, so its caller can be dropped
//! without leaving the log stuck; that task writes the batches that accumulated meanwhile, one
//! after the other, until none is waiting for durability.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::Poll;
use std::time::Duration;

use tokio::sync::Notify;

use crate::ids::RunId;
use crate::ports::{CheckpointStore, Entry, PortError, RunAppend, RunMeta, StoredStatus};

/// The log: the store, the throttle for non-durable saves, and the open batch.
pub(crate) struct Log {
    store: Arc<dyn CheckpointStore>,
    min_interval: Duration,
    state: Mutex<State>,
}

struct State {
    /// What the next write takes.
    open: Batch,
    /// A write is in flight (its writer takes the open batch next if it is urgent).
    writing: bool,
    /// A timer will make the open batch urgent (non-durable saves are written within
    /// `min_interval`).
    tick_scheduled: bool,
    /// The parts of written batches, kept for the next ones so that a save allocates nothing
    /// of the log's own: an emptied batch (its vectors and index) and emptied run appends
    /// (header strings and entry vectors, refilled in place). Bounded by the largest batch.
    spare: Batch,
    pool: Vec<RunAppend>,
}

/// Appends, finishes and waiters that go out in one write.
#[derive(Default)]
struct Batch {
    appends: Vec<RunAppend>,
    /// Where each run's append sits in `appends`.
    index: HashMap<RunId, usize>,
    finishes: Vec<(RunId, StoredStatus)>,
    /// Someone waits for this batch: write it as soon as no write is in flight.
    urgent: bool,
    /// Answered once the batch is written (created by the first caller that has to wait
    /// for someone else's write).
    done: Option<Arc<Done>>,
}

impl Batch {
    fn has_work(&self) -> bool {
        !self.appends.is_empty() || !self.finishes.is_empty() || self.done.is_some()
    }

    fn done(&mut self) -> Arc<Done> {
        self.urgent = true;
        self.done.get_or_insert_with(Arc::default).clone()
    }
}

/// The result of one write, for everyone waiting on it.
#[derive(Default)]
pub(crate) struct Done {
    result: OnceLock<Result<(), PortError>>,
    notify: Notify,
}

impl Done {
    fn complete(&self, result: Result<(), PortError>) {
        let _ = self.result.set(result);
        self.notify.notify_waiters();
    }

    /// Waits until the batch is written; its result.
    async fn wait(&self) -> Result<(), PortError> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Registered before the check, so a completion in between is not missed.
            notified.as_mut().enable();
            if let Some(result) = self.result.get() {
                return result.clone();
            }
            notified.await;
        }
    }
}

/// What a durable caller does after its change to the open batch.
pub(crate) enum Wait {
    /// Nothing to wait for (a non-durable save).
    None,
    /// Its write already ran (led by this caller and finished at once).
    Written(Result<(), PortError>),
    /// Someone's write (a task's, or one in flight) will answer.
    On(Arc<Done>),
}

impl Wait {
    /// The write's result, once it is there.
    pub(crate) async fn result(self) -> Result<(), PortError> {
        match self {
            Wait::None => Ok(()),
            Wait::Written(result) => result,
            Wait::On(done) => done.wait().await,
        }
    }
}

/// What a caller does after its change to the open batch.
enum Next {
    /// Nothing now (a write in flight or the timer will take the batch).
    Nothing,
    /// Write this batch (it was taken from the log; the caller leads the write).
    Write(Batch),
}

impl Log {
    pub(crate) fn new(store: Arc<dyn CheckpointStore>, min_interval: Duration) -> Arc<Self> {
        let state = State {
            open: Batch::default(),
            writing: false,
            tick_scheduled: false,
            spare: Batch::default(),
            pool: Vec::new(),
        };
        Arc::new(Self { store, min_interval, state: Mutex::new(state) })
    }

    pub(crate) fn store(&self) -> &Arc<dyn CheckpointStore> {
        &self.store
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent (no panic inside them but
        // allocation failure), so a poisoned lock is recovered.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends `entries` of a run; with `durable`, what to wait on.
    pub(crate) fn append(
        self: &Arc<Self>,
        meta: &RunMeta,
        status: StoredStatus,
        entries: Vec<Entry>,
        durable: bool,
    ) -> Wait {
        let next = {
            let mut state = self.lock();
            let state = &mut *state;
            let open = &mut state.open;
            match open.index.get(&meta.run_id) {
                Some(&i) => {
                    let slot = &mut open.appends[i];
                    slot.status = status;
                    slot.entries.extend(entries);
                }
                None => {
                    let slot = match state.pool.pop() {
                        Some(mut slot) => {
                            refill(&mut slot.meta, meta);
                            slot.status = status;
                            slot.entries.extend(entries);
                            slot
                        }
                        None => RunAppend { meta: meta.clone(), status, entries },
                    };
                    open.index.insert(meta.run_id, open.appends.len());
                    open.appends.push(slot);
                }
            }
            open.urgent |= durable;
            match self.next(state) {
                // A write in flight takes this batch next: wait for it.
                Next::Nothing if durable => return Wait::On(state.open.done()),
                next => next,
            }
        };
        let led = self.start(next);
        if durable { led } else { Wait::None }
    }

    /// Marks a run finished: its entries not yet written are dropped (the finish deletes
    /// the log anyway) and the finish goes out with the next write.
    pub(crate) fn finish(self: &Arc<Self>, run: RunId, status: StoredStatus) -> Wait {
        let next = {
            let mut state = self.lock();
            let state = &mut *state;
            let open = &mut state.open;
            if let Some(i) = open.index.remove(&run) {
                let mut dropped = open.appends.swap_remove(i);
                if let Some(moved) = open.appends.get(i) {
                    open.index.insert(moved.meta.run_id, i);
                }
                dropped.entries.clear();
                state.pool.push(dropped);
            }
            open.finishes.push((run, status));
            open.urgent = true;
            match self.next(state) {
                Next::Nothing => return Wait::On(state.open.done()),
                next => next,
            }
        };
        self.start(next)
    }

    /// Everything appended so far, written: what to wait on.
    pub(crate) fn flush(self: &Arc<Self>) -> Wait {
        let next = {
            let mut state = self.lock();
            let done = state.open.done();
            match self.next(&mut state) {
                Next::Nothing => return Wait::On(done),
                next => next,
            }
        };
        self.start(next)
    }

    /// Decides, under the lock, what follows a change to the open batch.
    fn next(self: &Arc<Self>, state: &mut State) -> Next {
        if state.writing || !state.open.has_work() {
            return Next::Nothing;
        }
        if state.open.urgent || self.min_interval.is_zero() {
            state.writing = true;
            let spare = std::mem::take(&mut state.spare);
            return Next::Write(std::mem::replace(&mut state.open, spare));
        }
        if !state.tick_scheduled {
            state.tick_scheduled = true;
            let log = Arc::clone(self);
            let delay = self.min_interval;
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let next = {
                    let mut state = log.lock();
                    state.tick_scheduled = false;
                    state.open.urgent = true;
                    log.next(&mut state)
                };
                // The write answers the batch's waiters, if any.
                let _ = log.start(next);
            });
        }
        Next::Nothing
    }

    /// Leads a write: polled here once, moved to a task of its own if the store makes it
    /// wait. The batch's other waiters are answered by the write; the leader waits on what
    /// this returns: the result itself when the write finished here.
    fn start(self: &Arc<Self>, next: Next) -> Wait {
        let Next::Write(batch) = next else { return Wait::None };
        let mut write = Box::pin(Arc::clone(self).write(batch));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match write.as_mut().poll(&mut cx) {
            Poll::Ready(result) => Wait::Written(result),
            Poll::Pending => {
                // The task polls it again at once with its own waker (every store future
                // re-registers its waker when polled), so nothing is missed.
                let done: Arc<Done> = Arc::default();
                let answer = Arc::clone(&done);
                tokio::spawn(async move { answer.complete(write.await) });
                Wait::On(done)
            }
        }
    }

    /// Writes `batch`, then whatever became urgent meanwhile, until nothing waits; returns
    /// the first batch's result.
    async fn write(self: Arc<Self>, mut batch: Batch) -> Result<(), PortError> {
        let mut first = None;
        loop {
            let mut result =
                if batch.appends.is_empty() { Ok(()) } else { self.store.append(&batch.appends).await };
            if result.is_ok() {
                for &(run, status) in &batch.finishes {
                    if let Err(e) = self.store.finish(run, status).await {
                        result = Err(e);
                    }
                }
            }
            if let Err(e) = &result {
                tracing::error!(target: "executus::checkpoint", error = %e, "checkpoint write failed");
            }
            if let Some(done) = batch.done.take() {
                done.complete(result.clone());
            }
            first.get_or_insert(result);
            let next = {
                let mut state = self.lock();
                state.writing = false;
                recycle(&mut state, batch);
                self.next(&mut state)
            };
            match next {
                Next::Write(more) => batch = more,
                Next::Nothing => return first.unwrap_or(Ok(())),
            }
        }
    }
}

/// Keeps a written batch's parts for the next batches (see `State::spare`).
fn recycle(state: &mut State, mut batch: Batch) {
    /// Run appends kept beyond this many are freed: the pool follows the batches' size, not
    /// the number of runs.
    const POOL: usize = 1024;
    for mut append in batch.appends.drain(..) {
        if state.pool.len() < POOL {
            append.entries.clear();
            state.pool.push(append);
        }
    }
    batch.index.clear();
    batch.finishes.clear();
    batch.urgent = false;
    batch.done = None;
    if state.spare.appends.capacity() < batch.appends.capacity() {
        state.spare = batch;
    }
}

/// `dst = src.clone()`, reusing `dst`'s strings (a refilled header allocates nothing when the
/// names fit).
fn refill(dst: &mut RunMeta, src: &RunMeta) {
    dst.run_id = src.run_id;
    dst.agent.clone_from(&src.agent);
    dst.identity.user.clone_from(&src.identity.user);
    dst.identity.tenant.clone_from(&src.identity.tenant);
    dst.identity.roles.clone_from(&src.identity.roles);
    dst.parent = src.parent;
    dst.created_ms = src.created_ms;
}
