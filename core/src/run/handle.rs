//! [`RunHandle`]: what a caller holds while a run goes on — its events, its outcome, and
//! the means to cancel or steer it. Dropping the handle does not stop the run.

use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{Notify, broadcast, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::RunSnapshot;
use super::capability::Runs;
use super::events::RunEvent;
use super::outcome::RunOutcome;
use crate::ids::RunId;

/// Capacity of a run's event channel; a subscriber that falls further behind is told how
/// many events it missed (`RecvError::Lagged`).
pub const EVENT_CAPACITY: usize = 256;

/// State shared between a run's actor, the executor and the handles.
#[derive(Debug)]
pub struct RunControl {
    /// The run.
    pub run_id: RunId,
    /// Agent name.
    pub agent: String,
    /// The event channel, created on first subscription — or, for a run spawned for a caller
    /// that may watch it, once [`EVENT_CAPACITY`] events wait unread (see `early`). A channel
    /// is [`EVENT_CAPACITY`] slots, tens of kilobytes to allocate, zero and free per run;
    /// most runs are never watched.
    pub(crate) events: OnceLock<broadcast::Sender<RunEvent>>,
    /// Whether events before the first subscription are kept for it.
    watched: bool,
    /// Before the channel exists: the events of a watched run so far. After: the receiver
    /// made with the channel when it was created before anyone subscribed.
    early: Mutex<EarlyEvents>,
    pub(crate) outcome: watch::Sender<Option<Arc<RunOutcome>>>,
    pub(crate) cancel: CancellationToken,
    /// What reaches the run from outside (steering, status requests) and whether its driver
    /// runs; guarded together so a message is never left behind by a driver that starts or
    /// ends meanwhile.
    inbox: Mutex<Inbox>,
    /// Wakes the run's driver: something is in the inbox, or it was cancelled or interrupted.
    wake: Notify,
    /// The lane job carrying the run (to cancel it while queued).
    pub(crate) job: OnceLock<(crate::lane::LaneHandle, crate::ids::JobId)>,
}

/// Messages to a run from outside. Its driver takes them when woken.
#[derive(Debug, Default)]
struct Inbox {
    /// Steering not yet taken: before the driver starts it becomes part of the run's start.
    steering: Vec<String>,
    /// Status requests waiting for the driver.
    status: Vec<oneshot::Sender<RunSnapshot>>,
    /// The driver has started.
    driven: bool,
    /// The driver has ended (or is ending): nothing reaches it any more.
    closed: bool,
}

/// Events of a watched run before anyone subscribed.
#[derive(Debug, Default)]
struct EarlyEvents {
    /// Emitted so far, oldest first (at most [`EVENT_CAPACITY`]).
    buffer: Vec<RunEvent>,
    /// The first subscriber's receiver, when the channel had to be created before it came.
    first: Option<broadcast::Receiver<RunEvent>>,
}

impl RunControl {
    pub(crate) fn new(run_id: RunId, agent: String, watched: bool) -> Arc<Self> {
        let (outcome, _) = watch::channel(None);
        Arc::new(Self {
            run_id,
            agent,
            events: OnceLock::new(),
            watched,
            early: Mutex::new(EarlyEvents::default()),
            outcome,
            cancel: CancellationToken::new(),
            inbox: Mutex::new(Inbox::default()),
            wake: Notify::new(),
            job: OnceLock::new(),
        })
    }

    /// Whether an emitted event could reach anyone (a subscriber now, or a watched run's
    /// first subscriber later): lets hot paths skip building events nobody will see.
    pub(crate) fn listening(&self) -> bool {
        self.watched || self.events.get().is_some()
    }

    /// Emits an event. Before the first subscription it is kept for that subscriber if the
    /// run is watched, else dropped (nobody can receive it).
    pub(crate) fn emit(&self, event: RunEvent) {
        if let Some(events) = self.events.get() {
            let _ = events.send(event);
            return;
        }
        if !self.watched {
            return;
        }
        let mut early = self.early.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.events.get().is_none() {
            if early.buffer.len() < EVENT_CAPACITY {
                early.buffer.push(event);
                return;
            }
            // As many events as the channel holds wait unread: from here on it behaves as a
            // channel made at spawn would (the first subscriber lags and is told by how much).
            let first = self.open(&mut early);
            early.first = Some(first);
        }
        if let Some(events) = self.events.get() {
            let _ = events.send(event);
        }
    }

    /// Creates the channel and a receiver that gets the buffered events first. Called with
    /// `early` locked, so no event can overtake the buffered ones.
    fn open(&self, early: &mut EarlyEvents) -> broadcast::Receiver<RunEvent> {
        let (tx, rx) = broadcast::channel(EVENT_CAPACITY);
        for event in early.buffer.drain(..) {
            let _ = tx.send(event);
        }
        early.buffer = Vec::new();
        let _ = self.events.set(tx);
        rx
    }

    /// The first caller gets every event since the run was spawned (for a watched run);
    /// later callers, the events from then on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<RunEvent> {
        let mut early = self.early.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(first) = early.first.take() {
            return first;
        }
        match self.events.get() {
            Some(events) => events.subscribe(),
            None => self.open(&mut early),
        }
    }

    /// Publishes the outcome; the first one wins.
    pub(crate) fn set_outcome(&self, outcome: RunOutcome) -> bool {
        let mut set = false;
        self.outcome.send_if_modified(|slot| {
            if slot.is_none() {
                *slot = Some(Arc::new(outcome));
                set = true;
            }
            set
        });
        set
    }

    /// The outcome, if published.
    pub fn outcome(&self) -> Option<Arc<RunOutcome>> {
        self.outcome.borrow().clone()
    }

    fn inbox(&self) -> std::sync::MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Steers the run: kept for its start while queued, handed to its driver while driven.
    /// False once the driver has ended.
    pub(crate) fn steer(&self, text: String) -> bool {
        let mut inbox = self.inbox();
        if inbox.closed {
            return false;
        }
        inbox.steering.push(text);
        let driven = inbox.driven;
        drop(inbox);
        if driven {
            self.wake.notify_one();
        }
        true
    }

    /// Asks the driver for a snapshot; `None` unless a driver is running the run.
    pub(crate) fn request_status(&self) -> Option<oneshot::Receiver<RunSnapshot>> {
        let mut inbox = self.inbox();
        if !inbox.driven || inbox.closed {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        inbox.status.push(tx);
        drop(inbox);
        self.wake.notify_one();
        Some(rx)
    }

    /// Whether a driver has started on the run.
    pub(crate) fn is_driven(&self) -> bool {
        self.inbox().driven
    }

    /// The run's job starts driving it: from now on steering and status requests go to the
    /// driver. Called before the job checks for a cancellation, which `Runtime::cancel` sets
    /// before it asks `is_driven`: one of the two always sees the other.
    pub(crate) fn begin_driving(&self) {
        self.inbox().driven = true;
    }

    /// Steering waiting in the inbox (at the driver's start: what was sent while queued).
    pub(crate) fn take_steering(&self) -> Vec<String> {
        std::mem::take(&mut self.inbox().steering)
    }

    /// What the driver finds when woken: steering to apply, status requests to answer.
    pub(crate) fn take_inbox(&self) -> (Vec<String>, Vec<oneshot::Sender<RunSnapshot>>) {
        let mut inbox = self.inbox();
        if inbox.steering.is_empty() && inbox.status.is_empty() {
            return (Vec::new(), Vec::new());
        }
        (std::mem::take(&mut inbox.steering), std::mem::take(&mut inbox.status))
    }

    /// The driver has ended: later steering is refused, waiting status requests are dropped
    /// (their callers fall back to the outcome).
    pub(crate) fn close(&self) {
        let mut inbox = self.inbox();
        inbox.closed = true;
        inbox.status.clear();
    }

    /// Wakes the driver (it re-checks cancellation, shutdown and its inbox).
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// What the driver waits on to be woken.
    pub(crate) fn woken(&self) -> tokio::sync::futures::Notified<'_> {
        self.wake.notified()
    }
}

/// A running (or queued) run.
#[derive(Clone)]
pub struct RunHandle {
    pub(crate) control: Arc<RunControl>,
    /// The runtime that runs it (kept alive while a handle exists).
    pub(crate) runs: Arc<dyn Runs>,
}

impl std::fmt::Debug for RunHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunHandle").field("control", &self.control).finish_non_exhaustive()
    }
}

impl RunHandle {
    /// The run id.
    pub fn id(&self) -> RunId {
        self.control.run_id
    }

    /// Subscribes to the run's events. The first call (on this handle or any clone)
    /// receives every event since the run was admitted — the run may already be going when
    /// `spawn` returns — up to [`EVENT_CAPACITY`] of them; later calls receive events from
    /// then on.
    pub fn events(&self) -> broadcast::Receiver<RunEvent> {
        self.control.subscribe()
    }

    /// Waits for the outcome. Works any number of times, from any clone.
    pub async fn outcome(&self) -> Arc<RunOutcome> {
        let mut rx = self.control.outcome.subscribe();
        loop {
            if let Some(outcome) = rx.borrow_and_update().clone() {
                return outcome;
            }
            if rx.changed().await.is_err() {
                // Unreachable while `self.control` holds the sender; keep waiting on the
                // value already there.
                if let Some(outcome) = rx.borrow().clone() {
                    return outcome;
                }
                std::future::pending::<()>().await;
            }
        }
    }

    /// Waits for the outcome and moves it out of the run's shared slot, which keeps only its
    /// summary (end, steps, usage: what status answers read) — for a caller holding the only
    /// handle that will ever exist (`Runtime::run`), so that the transcript is not copied.
    pub(crate) async fn into_outcome(self) -> RunOutcome {
        let seen = self.outcome().await;
        let summary = Arc::new(RunOutcome {
            run_id: seen.run_id,
            agent: seen.agent.clone(),
            end: seen.end.clone(),
            output: None,
            typed: None,
            messages: Vec::new(),
            steps: seen.steps,
            usage: seen.usage,
        });
        let mut full = None;
        self.control.outcome.send_if_modified(|slot| {
            full = slot.replace(summary);
            // The slot was and stays set: nobody waiting needs a wake-up.
            false
        });
        drop(seen);
        match full {
            // Usually the last reference (a status answer may hold one for a moment).
            Some(full) => Arc::try_unwrap(full).unwrap_or_else(|shared| (*shared).clone()),
            None => RunOutcome::clone(&*self.outcome().await),
        }
    }

    /// The outcome if the run has ended.
    pub fn try_outcome(&self) -> Option<Arc<RunOutcome>> {
        self.control.outcome()
    }

    /// Cancels the run (queued or running). Its outcome becomes `Cancelled` with the
    /// transcript so far.
    pub async fn cancel(&self) {
        self.runs.cancel(self.id()).await;
    }

    /// Injects a user message that the run's next model call sees.
    ///
    /// # Errors
    /// [`crate::RuntimeError::UnknownRun`] if the run has already ended.
    pub async fn steer(&self, text: impl Into<String>) -> Result<(), crate::RuntimeError> {
        self.runs.steer(self.id(), text.into()).await
    }

    /// A status snapshot.
    pub async fn status(&self) -> Option<super::RunSnapshot> {
        self.runs.snapshot(self.id()).await
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::broadcast::error::TryRecvError;

    use super::*;

    fn step(control: &RunControl, step: u32) -> RunEvent {
        RunEvent::StepStarted { run_id: control.run_id, step }
    }

    fn steps(rx: &mut broadcast::Receiver<RunEvent>) -> Vec<u32> {
        let mut out = Vec::new();
        while let Ok(event) = rx.try_recv() {
            if let RunEvent::StepStarted { step, .. } = event {
                out.push(step);
            }
        }
        out
    }

    #[test]
    fn a_watched_run_keeps_its_events_for_the_first_subscriber_without_a_channel() {
        let control = RunControl::new(RunId::new(), "a".into(), true);
        for n in 1..=3 {
            control.emit(step(&control, n));
        }
        assert!(control.events.get().is_none(), "no channel before anyone subscribes");
        let mut first = control.subscribe();
        let mut second = control.subscribe();
        control.emit(step(&control, 4));
        assert_eq!(steps(&mut first), [1, 2, 3, 4], "every event since the spawn, in order");
        assert_eq!(steps(&mut second), [4], "later subscribers: from then on");
    }

    #[test]
    fn an_unwatched_run_drops_events_until_the_first_subscription() {
        let control = RunControl::new(RunId::new(), "a".into(), false);
        control.emit(step(&control, 1));
        assert!(control.events.get().is_none());
        let mut rx = control.subscribe();
        control.emit(step(&control, 2));
        assert_eq!(steps(&mut rx), [2]);
    }

    #[test]
    fn past_the_capacity_the_first_subscriber_lags_as_with_a_channel_made_at_spawn() {
        let control = RunControl::new(RunId::new(), "a".into(), true);
        let total = EVENT_CAPACITY as u32 + 5;
        for n in 1..=total {
            control.emit(step(&control, n));
        }
        let mut first = control.subscribe();
        assert_eq!(first.try_recv(), Err(TryRecvError::Lagged(5)));
        let received = steps(&mut first);
        assert_eq!(received.len(), EVENT_CAPACITY);
        assert_eq!((received[0], received[received.len() - 1]), (6, total), "the newest ones, in order");
    }
}
