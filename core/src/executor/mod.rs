//! The run executor: supervises run drivers. A run is one task driving its state machine
//! (the lane job's task, or a task of its own for a child run); the executor wraps it so
//! that whatever happens to the driver, the run ends in an outcome.
//!
//! A run used to be a ractor actor linked to an executor actor. Per run that cost an actor
//! (four channels, each allocating a 32-slot block up front, and a task of its own), a round
//! trip through the executor's mailbox to start it, a task per model call and per timer, and
//! a second task (the lane's job) waiting for its outcome. Now the lane's job task is the run:
//! the driver (`run::driver`) polls its model call, its tool calls, its deadlines and its
//! inbox from that one task, and the executor supervises it in place — the same guarantees,
//! without the per-run actor.
//!
//! # Guarantees
//! - **Every started run ends in an outcome.** A driver that panics, or returns without
//!   having published an outcome, is failed here: audited, delivered if asked, its dispatch
//!   tree freed, its transcript recovered from the checkpoint log, its outcome published —
//!   what its own `finish` would have done. A panic is recorded with its message.
//! - **Isolation.** A panicking run takes nothing else down: every other run, and the
//!   executor, carry on.
//! - **Counted.** [`Executor::active`] counts driven runs; a run stops counting before its
//!   outcome is published, so a caller that saw the outcome sees it gone.
//! - **Shutdown interrupts.** After [`Executor::shutdown`] every driver stops at its next
//!   wake without finishing, so its checkpoint stays and it resumes on the next start; runs
//!   submitted afterwards are refused.
//!
//! # What it does not do
//! - No admission: lanes decide when a run starts; the executor drives what it is given.
//! - No persistence of its own, and no run table: runs are found through the runtime's
//!   controls (`RunControl`), which carry their inbox.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::Notify;

use crate::checkpoint::load_stored;
use crate::ids::RunId;
use crate::ports::{AuditEvent, AuditRecord, DeliveryItem, StoredStatus};
use crate::run::driver::{self, Driven, RunArgs};
use crate::run::env::RunEnv;
use crate::run::handle::RunControl;
use crate::run::{RunEnd, RunEvent, RunOutcome, RunPhase, RunSnapshot};

/// The executor (cheap to clone).
#[derive(Clone)]
pub(crate) struct Executor {
    inner: Arc<Inner>,
}

struct Inner {
    env: Arc<RunEnv>,
    shutdown: AtomicBool,
    active: AtomicUsize,
    /// Notified when the last driven run stops.
    idle: Notify,
}

/// A run counted as active; uncounted when released or dropped (also by a panic's unwinding).
pub(crate) struct ActiveSlot {
    executor: Option<Arc<Inner>>,
}

impl ActiveSlot {
    /// Stops counting the run (before its outcome is published).
    pub(crate) fn release(&mut self) {
        if let Some(inner) = self.executor.take()
            && inner.active.fetch_sub(1, Ordering::AcqRel) == 1
        {
            inner.idle.notify_waiters();
        }
    }
}

impl Drop for ActiveSlot {
    fn drop(&mut self) {
        self.release();
    }
}

/// Closes a run's inbox when dropped.
struct CloseOnDrop<'a>(&'a RunControl);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// What a run owes the host when it ends, also when its driver cannot (panicked).
#[derive(Debug, Clone, Copy)]
struct AfterEnd {
    /// Hand the outcome to the `Delivery` port.
    deliver: bool,
    /// A root run: free its dispatch tree.
    root: bool,
}

impl Executor {
    /// An executor for the runs of `env`.
    pub(crate) fn new(env: Arc<RunEnv>) -> Self {
        Self {
            inner: Arc::new(Inner {
                env,
                shutdown: AtomicBool::new(false),
                active: AtomicUsize::new(0),
                idle: Notify::new(),
            }),
        }
    }

    /// Drives a run to its end (or until the executor shuts down), supervised: see the
    /// module docs.
    ///
    /// # Errors
    /// A message if the run could not start because the executor is shut down (nothing has
    /// been published for it then).
    pub(crate) async fn drive(&self, args: Box<RunArgs>) -> Result<(), String> {
        let run_id = args.state.run_id;
        if self.is_shut_down() {
            return Err(format!("run {run_id} not started: the runtime is shut down"));
        }
        let control = args.control.clone();
        let after = AfterEnd { deliver: args.deliver, root: args.state.parent.is_none() };
        self.inner.active.fetch_add(1, Ordering::AcqRel);
        let slot = ActiveSlot { executor: Some(self.inner.clone()) };
        // However the driver ends — also dropped by its lane at a shutdown deadline — nothing
        // reaches it any more, and callers waiting for a status fall back to the outcome.
        let _closed = CloseOnDrop(&control);
        let driven = AssertUnwindSafe(driver::drive(args, slot, self.clone())).catch_unwind().await;
        control.close();
        let error = match driven {
            Ok(Driven::Finished) if control.outcome().is_some() => return Ok(()),
            // Interrupted on purpose: the checkpoint stays so the run resumes later.
            Ok(Driven::Interrupted) => return Ok(()),
            Ok(Driven::Finished) => "run driver stopped without an outcome".to_owned(),
            Err(panic) => {
                let message = format!("run panicked: {}", driver::panic_message(&panic));
                tracing::error!(run_id = %run_id, error = %message, "run driver failed");
                message
            }
        };
        if control.outcome().is_none() {
            Box::pin(fail_unfinished(&self.inner.env, &control, run_id, after, error)).await;
        }
        Ok(())
    }

    /// Whether [`Executor::shutdown`] was called.
    pub(crate) fn is_shut_down(&self) -> bool {
        self.inner.shutdown.load(Ordering::Acquire)
    }

    /// Number of driven runs.
    pub(crate) fn active(&self) -> usize {
        self.inner.active.load(Ordering::Acquire)
    }

    /// Interrupts every driven run (checkpoints kept): `runs` are woken and stop without
    /// finishing; runs submitted from now on are refused.
    pub(crate) fn shutdown<'a>(&self, runs: impl IntoIterator<Item = &'a Arc<RunControl>>) {
        self.inner.shutdown.store(true, Ordering::Release);
        for control in runs {
            control.wake();
        }
    }

    /// Waits (at most `limit`) until no run is driven.
    pub(crate) async fn stopped(&self, limit: Duration) {
        let idle = async {
            loop {
                let notified = self.inner.idle.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.active() == 0 {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(limit, idle).await;
    }
}

/// Status of a run no driver answers for: queued (admitted to a lane, not started), or ended
/// and not yet forgotten.
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

/// Records a run as failed when its driver cannot: recovers what the checkpoint log holds,
/// deletes the log, audits, delivers (if asked), frees a root's dispatch tree, publishes the
/// outcome — what the driver's own `finish` would have done.
async fn fail_unfinished(env: &RunEnv, control: &RunControl, run_id: RunId, after: AfterEnd, error: String) {
    let _ = env.checkpoint.flush().await;
    let recovered =
        load_stored(env.checkpoint.store().as_ref(), run_id).await.ok().flatten().map(|stored| stored.state);
    if let Err(e) = env.checkpoint.finish(run_id, StoredStatus::Failed).await {
        tracing::warn!(run_id = %run_id, error = %e, "could not delete the failed run's checkpoint");
    }
    let end = RunEnd::Failed { error: error.into() };
    let (messages, steps, usage, identity) = match &recovered {
        Some(st) => (st.messages.clone(), st.step, st.usage, st.identity.clone()),
        None => (Vec::new(), 0, Default::default(), Default::default()),
    };
    env.ports
        .audit
        .record(AuditRecord::now(
            Some(run_id),
            identity.clone(),
            Some(control.agent.clone()),
            AuditEvent::RunEnded { status: end.status(), reason: end.reason(), steps, usage },
        ))
        .await;
    let output = recovered.as_ref().and_then(|st| st.last_text());
    if after.deliver {
        let item = DeliveryItem {
            run_id,
            agent: control.agent.clone(),
            identity,
            status: end.status(),
            output: output.clone(),
        };
        env.deliver(item).await;
    }
    if after.root {
        env.dispatch.finish_root(run_id).await;
    }
    control.emit(RunEvent::Ended { run_id, end: end.clone() });
    control.set_outcome(RunOutcome {
        run_id,
        agent: control.agent.clone(),
        output,
        typed: None,
        messages,
        steps,
        usage,
        end,
    });
}
