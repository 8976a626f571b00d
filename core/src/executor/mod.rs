//! The `RunExecutor` actor: supervises runs, one linked child actor per run.
//!
//! Messages: start, cancel, steer, status. A run actor that panics is recorded as failed
//! with the panic message (its transcript recovered from the checkpoint log where one
//! exists) and the executor carries on: it overrides `handle_supervisor_evt`, whose default
//! would stop the supervisor when any child dies.
//!
//! # Guarantees
//! - **Every started run ends in an outcome.** A run actor that panics, fails to start or is
//!   stopped without finishing is failed here: audited, delivered if asked, its dispatch tree
//!   freed, its outcome published — what its own `finish` would have done.
//! - **One actor per run id.** Starting a run that is already active here is refused.
//! - **The mailbox stays free.** Status queries are answered by a spawned task, never by
//!   awaiting a run inside the executor's `handle`.
//!
//! # What it does not do
//! - No admission: lanes decide when a run starts; the executor starts what it is given.
//! - No persistence of its own: a shutdown stops run actors without finishing them, so their
//!   checkpoints stay and they resume on the next start.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef};

use self::actor::{ExecMsg, RunExecutor};
use crate::ids::RunId;
use crate::run::actor::RunArgs;
use crate::run::env::RunEnv;
use crate::run::handle::RunControl;
use crate::run::{RunPhase, RunSnapshot};

mod actor;

/// A typed handle to the executor.
#[derive(Clone)]
pub(crate) struct ExecutorHandle {
    actor: ActorRef<ExecMsg>,
}

impl ExecutorHandle {
    /// Starts the executor.
    ///
    /// # Errors
    /// The actor system's error if the actor cannot be spawned.
    pub(crate) async fn spawn(env: Arc<RunEnv>) -> Result<Self, ractor::SpawnErr> {
        let (actor, _) = Actor::spawn(None, RunExecutor, env).await?;
        Ok(Self { actor })
    }

    /// Starts a run actor.
    ///
    /// # Errors
    /// A message if the run could not start (its outcome is then already published).
    pub(crate) async fn start(&self, args: Box<RunArgs>) -> Result<(), String> {
        ractor::call!(self.actor, ExecMsg::Start, args).map_err(|e| e.to_string())?
    }

    /// Cancels a run if it is active.
    pub(crate) fn cancel(&self, run: RunId) {
        let _ = self.actor.send_message(ExecMsg::Cancel(run));
    }

    /// Steers a run; false if it is not active.
    pub(crate) async fn steer(&self, run: RunId, text: String) -> bool {
        ractor::call!(self.actor, ExecMsg::Steer, run, text).unwrap_or(false)
    }

    /// Status of an active run.
    pub(crate) async fn status(&self, run: RunId) -> Option<RunSnapshot> {
        ractor::call!(self.actor, ExecMsg::Status, run).ok().flatten()
    }

    /// Number of active runs.
    pub(crate) async fn active(&self) -> usize {
        ractor::call!(self.actor, ExecMsg::Active).unwrap_or(0)
    }

    /// Waits (at most `limit`) until the executor actor has stopped.
    pub(crate) async fn stopped(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.actor.get_status() != ractor::ActorStatus::Stopped
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Interrupts every active run (checkpoints kept) and stops the executor.
    pub(crate) fn shutdown(&self) {
        let _ = self.actor.send_message(ExecMsg::Shutdown);
    }
}

/// Status of a run the executor does not hold: queued (admitted to a lane, not started),
/// or ended and not yet forgotten.
pub(crate) fn queued_status(control: &RunControl) -> RunSnapshot {
    match control.outcome() {
        Some(outcome) => RunSnapshot {
            run_id: control.run_id,
            agent: control.agent.clone(),
            phase: RunPhase::Ended(outcome.status()),
            step: outcome.steps,
            usage: outcome.usage,
            elapsed: Default::default(),
        },
        None => RunSnapshot {
            run_id: control.run_id,
            agent: control.agent.clone(),
            phase: RunPhase::Queued,
            step: 0,
            usage: Default::default(),
            elapsed: Default::default(),
        },
    }
}
