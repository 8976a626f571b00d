//! [`RunHandle`]: what a caller holds while a run goes on — its events, its outcome, and
//! the means to cancel or steer it. Dropping the handle does not stop the run.

use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

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
    /// Created when the run is spawned for a caller that may watch it, or on first
    /// subscription: runs nobody can watch (`Runtime::run`) never pay for a channel of
    /// [`EVENT_CAPACITY`] slots (tens of kilobytes to allocate, zero and free per run).
    pub(crate) events: OnceLock<broadcast::Sender<RunEvent>>,
    /// The receiver made with an eager channel, handed to the first `events()` caller so
    /// nothing emitted between `spawn` and that call is lost.
    first_events: Mutex<Option<broadcast::Receiver<RunEvent>>>,
    pub(crate) outcome: watch::Sender<Option<Arc<RunOutcome>>>,
    pub(crate) cancel: CancellationToken,
    /// Steering that arrived before the run's actor started.
    pub(crate) early_steering: Mutex<Vec<String>>,
    /// The lane job carrying the run (to cancel it while queued).
    pub(crate) job: OnceLock<(crate::lane::LaneHandle, crate::ids::JobId)>,
}

impl RunControl {
    pub(crate) fn new(run_id: RunId, agent: String, watched: bool) -> Arc<Self> {
        let (outcome, _) = watch::channel(None);
        let events = OnceLock::new();
        let mut first = None;
        if watched {
            let (tx, rx) = broadcast::channel(EVENT_CAPACITY);
            let _ = events.set(tx);
            first = Some(rx);
        }
        Arc::new(Self {
            run_id,
            agent,
            events,
            first_events: Mutex::new(first),
            outcome,
            cancel: CancellationToken::new(),
            early_steering: Mutex::new(Vec::new()),
            job: OnceLock::new(),
        })
    }

    /// Emits an event (dropped when nobody listens — nobody can before the first
    /// subscription, which creates the channel).
    pub(crate) fn emit(&self, event: RunEvent) {
        if let Some(events) = self.events.get() {
            let _ = events.send(event);
        }
    }

    /// The first caller gets every event since the run was spawned (for a watched run);
    /// later callers, the events from then on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<RunEvent> {
        let first = self.first_events.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        first.unwrap_or_else(|| self.events.get_or_init(|| broadcast::channel(EVENT_CAPACITY).0).subscribe())
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

    pub(crate) fn take_early_steering(&self) -> Vec<String> {
        std::mem::take(&mut *self.early_steering.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

/// A running (or queued) run.
#[derive(Debug, Clone)]
pub struct RunHandle {
    pub(crate) control: Arc<RunControl>,
    pub(crate) runtime: crate::runtime::Runtime,
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

    /// The outcome if the run has ended.
    pub fn try_outcome(&self) -> Option<Arc<RunOutcome>> {
        self.control.outcome()
    }

    /// Cancels the run (queued or running). Its outcome becomes `Cancelled` with the
    /// transcript so far.
    pub async fn cancel(&self) {
        self.runtime.cancel(self.id()).await;
    }

    /// Injects a user message that the run's next model call sees.
    ///
    /// # Errors
    /// [`crate::RuntimeError::UnknownRun`] if the run has already ended.
    pub async fn steer(&self, text: impl Into<String>) -> Result<(), crate::RuntimeError> {
        self.runtime.steer(self.id(), text).await
    }

    /// A status snapshot.
    pub async fn status(&self) -> Option<super::RunStatus> {
        self.runtime.status(self.id()).await
    }
}
