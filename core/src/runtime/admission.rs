//! New runs and active runs: admission through lanes (or, for child runs, without), the
//! run's claim, its `Started` fact, submission to the executor; cancel, steer and status of a
//! run that is queued or running; fan-out swarms.

use std::sync::{Arc, Weak};

use dashmap::mapref::entry::Entry;
use tokio::sync::mpsc;

use super::{Runtime, RuntimeInner, Started};
use crate::agent::RunnableAgent;
use crate::error::RuntimeError;
use crate::executor::queued_status;
use crate::fanout::{FanoutError, FanoutHandle, FanoutSpec};
use crate::ids::RunId;
use crate::lane::{JobSpec, LaneHandle};
use crate::ports::audit::now_ms;
use crate::ports::{RunClaim, SkillConflict, compose_skills};
use crate::run::driver::RunArgs;
use crate::run::handle::{RunControl, RunHandle};
use crate::run::machine::{Fact, RunState};
use crate::run::{RunEnd, RunInput, RunOutcome, RunRequest, RunSnapshot};

impl Runtime {
    /// Runs `agent` on `input` and waits for the outcome.
    ///
    /// # Errors
    /// A [`RuntimeError`] if the run could not be admitted; a run that starts always ends
    /// in an outcome (see [`RunOutcome::end`]).
    pub async fn run(
        &self,
        agent: RunnableAgent,
        input: impl Into<RunInput>,
    ) -> Result<RunOutcome, RuntimeError> {
        let request = RunRequest { watch: false, ..RunRequest::new(agent, input) };
        let handle = self.spawn_with(request).await?;
        // The handle never leaves this function: the outcome moves out instead of being copied.
        Ok(handle.into_outcome().await)
    }

    /// Starts `agent` on `input`; returns a handle at once.
    ///
    /// # Errors
    /// A [`RuntimeError`] if the run could not be admitted.
    pub async fn spawn(
        &self,
        agent: RunnableAgent,
        input: impl Into<RunInput>,
    ) -> Result<RunHandle, RuntimeError> {
        self.spawn_with(RunRequest::new(agent, input)).await
    }

    /// Runs the agent named `name` (configured agents first, then personas).
    ///
    /// # Errors
    /// [`RuntimeError::UnknownAgent`] if no agent or persona has that name.
    pub async fn agent(&self, name: &str) -> Result<RunnableAgent, RuntimeError> {
        if let Some(agent) = self.inner.config.agents.get(name) {
            return Ok(agent.clone());
        }
        if let Some(agent) = self.inner.ports.personas.persona(name).await? {
            return Ok(agent);
        }
        let mut known: Vec<String> = self.inner.config.agents.keys().cloned().collect();
        known.extend(self.inner.ports.personas.list().await.unwrap_or_default());
        Err(RuntimeError::UnknownAgent { name: name.to_owned(), known: known.join(", ") })
    }

    /// Merges the agent's skills ([`compose_skills`]): instructions appended in order, tools
    /// added to the allowlist; two skills providing the same tool is an error naming both.
    pub(super) async fn resolve_skills(&self, agent: RunnableAgent) -> Result<RunnableAgent, RuntimeError> {
        let mut skills = Vec::with_capacity(agent.skills.len());
        for name in &agent.skills {
            let skill = self.inner.ports.skills.skill(name).await?.ok_or_else(|| {
                RuntimeError::UnknownSkill { agent: agent.name.clone(), skill: name.clone() }
            })?;
            skills.push(skill);
        }
        let name = agent.name.clone();
        let mut composed =
            compose_skills(agent, &skills).map_err(|SkillConflict { tool, first, second }| {
                RuntimeError::SkillConflict { agent: name, tool, first, second }
            })?;
        composed.skills.clear();
        Ok(composed)
    }

    /// Starts a run described by `request`; returns a handle at once.
    ///
    /// # Errors
    /// A [`RuntimeError`] if the run could not be admitted (unknown skill or lane, lane
    /// full...). Nothing is checkpointed for a run that was not admitted.
    pub async fn spawn_with(&self, request: RunRequest) -> Result<RunHandle, RuntimeError> {
        if request.parent.is_none()
            && let Some(queue) = &self.inner.queue
        {
            return self.enqueue(queue.as_ref(), request).await;
        }
        let started = self.started().await?;
        let lane_name =
            request.lane.clone().or_else(|| request.agent.lane.clone()).unwrap_or_else(|| "default".into());
        let lane = self.lane(&lane_name).await?;
        let watched = request.watch;
        self.start_new(started, Some(&lane), request, watched).await
    }

    /// Hands a top-level run to the queue; the handle's outcome arrives when a worker
    /// finished it.
    async fn enqueue(
        &self,
        queue: &dyn crate::ports::RunQueue,
        request: RunRequest,
    ) -> Result<RunHandle, RuntimeError> {
        let run_id = request.run_id.unwrap_or_default();
        let follow = queue.enqueue(run_id, &request).await?;
        let control = RunControl::new(run_id, request.agent.name.clone(), request.watch);
        let followed = control.clone();
        tokio::spawn(async move {
            let outcome = follow.await;
            followed.emit(crate::run::RunEvent::Ended { run_id, end: outcome.end.clone() });
            followed.set_outcome(outcome);
        });
        Ok(RunHandle { control, runs: self.runs() })
    }

    /// Starts a child run (for `dispatch_agent`) without lane admission: the parent already
    /// holds a lane slot, and children queued behind their own parents could deadlock a full
    /// lane. The dispatch guard bounds children instead.
    ///
    /// # Errors
    /// As [`Runtime::spawn_with`], minus lane refusals.
    pub async fn spawn_child(&self, request: RunRequest) -> Result<RunHandle, RuntimeError> {
        let started = self.started().await?;
        self.start_new(started, None, request, false).await
    }

    /// A new run: skills resolved, its `Started` fact, its claim, then submission (through
    /// `lane` when given).
    async fn start_new(
        &self,
        started: &Started,
        lane: Option<&LaneHandle>,
        request: RunRequest,
        watched: bool,
    ) -> Result<RunHandle, RuntimeError> {
        let agent = self.resolve_skills(request.agent).await?;
        let run_id = request.run_id.unwrap_or_default();
        let start = Fact::Started {
            run_id,
            agent: Box::new(agent),
            identity: request.identity,
            parent: request.parent,
            input: request.input,
            created_ms: now_ms(),
        };
        // Encoded before it moves into the state: the run's parts are not copied.
        let payload = crate::checkpoint::encode(&start);
        let state =
            RunState::start_owned(start).map_err(|source| RuntimeError::Replay { run: run_id, source })?;
        let claim = self.claim(run_id).await?;
        let how = Submission {
            resumed: false,
            deliver: request.deliver,
            watched,
            conversation: request.conversation,
        };
        self.submit(started, lane, state, vec![payload], how, claim).await
    }

    /// This process's claim on `run` in the checkpoint store (so no other process sharing
    /// the store resumes a run this one drives); held by the run's job until it ends here.
    pub(super) async fn claim(&self, run: RunId) -> Result<RunClaim, RuntimeError> {
        self.inner.ports.checkpoints.claim(run).await?.ok_or(RuntimeError::ActiveElsewhere { run })
    }

    pub(super) async fn submit(
        &self,
        started: &Started,
        lane: Option<&LaneHandle>,
        state: RunState,
        unsaved: Vec<Vec<u8>>,
        how: Submission,
        claim: RunClaim,
    ) -> Result<RunHandle, RuntimeError> {
        let Submission { resumed, deliver, watched, conversation } = how;
        let run_id = state.run_id;
        let control = RunControl::new(run_id, state.agent.name.clone(), watched);
        match self.inner.controls.entry(run_id) {
            // A run that has ended but whose lane job has not cleaned up yet is not active.
            Entry::Occupied(entry) if entry.get().outcome().is_none() => {
                return Err(RuntimeError::AlreadyActive { run: run_id });
            }
            Entry::Occupied(mut entry) => {
                entry.insert(control.clone());
            }
            Entry::Vacant(entry) => {
                entry.insert(control.clone());
            }
        }
        let spec = JobSpec {
            tenant: state.identity.tenant.clone(),
            label: format!("{} {run_id}", state.agent.name),
        };
        // Boxed: the job future lives (in its lane task) for the run's whole life, and its
        // size is that of everything it holds across an await.
        let args = Box::new(RunArgs {
            state,
            unsaved,
            env: started.env.clone(),
            control: control.clone(),
            resumed,
            deliver,
            conversation,
        });
        let guard = QueuedGuard { control: Some(control.clone()), runtime: self.inner.weak.clone() };
        let executor = started.executor.clone();
        let weak = self.inner.weak.clone();
        // The job is the run: its task drives the run to its end (see `crate::executor`).
        let job = async move {
            // Released when the job ends: the run ended, or was interrupted, here.
            let _claim = claim;
            let control = guard.disarm();
            // Leaves the active set however this job ends — also when the lane aborts it
            // (at its shutdown deadline: the run is interrupted, its checkpoint kept).
            let _active = ActiveGuard { control: control.clone(), runtime: weak };
            // Driven from here on, then the cancellation check: `Runtime::cancel` does the
            // two in the other order, so a cancel either stops the run here or reaches its
            // driver — never a lane abort of a running run.
            control.begin_driving();
            if control.cancel.is_cancelled() {
                control.close();
                publish_unstarted(&control, RunEnd::Cancelled);
            } else if let Err(error) = executor.drive(args).await {
                control.close();
                publish_unstarted(&control, RunEnd::Failed { error: error.into() });
            }
        };
        let Some(lane) = lane else {
            tokio::spawn(job);
            return Ok(RunHandle { control, runs: self.runs() });
        };
        match lane.submit(spec, job).await {
            Ok(job) => {
                let _ = control.job.set((lane.clone(), job.id()));
                Ok(RunHandle { control, runs: self.runs() })
            }
            Err(e) => {
                forget(&self.inner, &control);
                Err(e.into())
            }
        }
    }

    /// Cancels a run, queued or running.
    pub async fn cancel(&self, run: RunId) {
        let control = self.inner.controls.get(&run).map(|c| c.clone());
        let Some(control) = control else { return };
        control.cancel.cancel();
        if control.is_driven() {
            // Its driver ends it (with its transcript) when woken.
            control.wake();
        } else if let Some((lane, job)) = control.job.get() {
            // Still queued: out of the lane's queue (or, if it has just started, it sees the
            // cancellation before driving anything).
            lane.cancel(*job).await;
        }
    }

    /// Injects a user message into a run; the next model call sees it.
    ///
    /// # Errors
    /// [`RuntimeError::UnknownRun`] if the run is not active.
    pub async fn steer(&self, run: RunId, text: impl Into<String>) -> Result<(), RuntimeError> {
        let control = self.inner.controls.get(&run).map(|c| c.clone());
        match control {
            Some(control) if control.outcome().is_none() && control.steer(text.into()) => Ok(()),
            _ => Err(RuntimeError::UnknownRun { run }),
        }
    }

    /// Status of an active (queued or running) run; a run that has just ended may still
    /// answer, with phase [`RunPhase::Ended`](crate::run::RunPhase::Ended).
    pub async fn status(&self, run: RunId) -> Option<RunSnapshot> {
        let control = self.inner.controls.get(&run).map(|c| c.clone())?;
        if let Some(reply) = control.request_status()
            && let Ok(status) = reply.await
        {
            return Some(status);
        }
        Some(queued_status(&control))
    }

    /// Number of runs being driven (started and not yet ended).
    pub async fn active_runs(&self) -> usize {
        self.inner.started.get().map_or(0, |s| s.executor.active())
    }

    /// Runs this runtime tracks (queued or running): zero once everything has ended.
    pub fn tracked_runs(&self) -> usize {
        self.inner.controls.len()
    }

    /// True while a run is queued or running in this runtime.
    pub(super) fn is_active(&self, run: RunId) -> bool {
        self.inner.controls.get(&run).is_some_and(|c| c.outcome().is_none())
    }

    /// Starts a swarm: every model x every lens, each cell through a lane.
    ///
    /// # Errors
    /// [`FanoutError::Start`] if the fan-out actor cannot start.
    pub async fn fanout(&self, spec: FanoutSpec) -> Result<FanoutHandle, FanoutError> {
        let (progress_tx, progress) = mpsc::unbounded_channel();
        crate::fanout::start(self.runs(), spec, progress_tx)
            .await
            .map(|result| FanoutHandle { progress, result })
    }
}

/// How a run is submitted.
#[derive(Debug, Clone)]
pub(super) struct Submission {
    /// Resumed from a checkpoint.
    pub(super) resumed: bool,
    /// Deliver the outcome through the Delivery port.
    pub(super) deliver: bool,
    /// Keep events for the first subscriber (a caller holds a handle and may watch).
    pub(super) watched: bool,
    /// `gen_ai.conversation.id` of the run's spans (default the run id).
    pub(super) conversation: Option<String>,
}

/// Publishes the outcome of a run that never started (cancelled or refused while queued).
fn publish_unstarted(control: &RunControl, end: RunEnd) {
    control.set_outcome(RunOutcome {
        run_id: control.run_id,
        agent: control.agent.clone(),
        end,
        output: None,
        typed: None,
        messages: Vec::new(),
        steps: 0,
        usage: Default::default(),
    });
}

/// Removes `control` from the runtime's active set — only that control: the same run id
/// may already be tracked again (resumed, approved).
fn forget(inner: &RuntimeInner, control: &Arc<RunControl>) {
    inner.controls.remove_if(&control.run_id, |_, tracked| Arc::ptr_eq(tracked, control));
}

/// Removes a run from the runtime's active set when dropped.
struct ActiveGuard {
    control: Arc<RunControl>,
    runtime: Weak<RuntimeInner>,
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        if let Some(inner) = self.runtime.upgrade() {
            forget(&inner, &self.control);
        }
    }
}

/// Owned by a queued job; if the lane drops the job before it starts (cancelled, shutdown),
/// the run's outcome becomes `Cancelled` instead of never arriving.
struct QueuedGuard {
    control: Option<Arc<RunControl>>,
    runtime: Weak<RuntimeInner>,
}

impl QueuedGuard {
    fn disarm(mut self) -> Arc<RunControl> {
        // `control` is always Some until disarmed; disarm consumes the guard.
        self.control.take().unwrap_or_else(|| RunControl::new(RunId::new(), String::new(), false))
    }
}

impl Drop for QueuedGuard {
    fn drop(&mut self) {
        if let Some(control) = self.control.take() {
            publish_unstarted(&control, RunEnd::Cancelled);
            if let Some(inner) = self.runtime.upgrade() {
                forget(&inner, &control);
            }
        }
    }
}
