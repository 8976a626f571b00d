//! [`Runtime`]: the host's entry point. Build one with [`Runtime::builder`]; every port
//! defaults to its nil-safe implementation, so `Runtime::builder().build()` runs agents with
//! no wiring at all.
//!
//! A run goes through a lane (admission, fair share across tenants), then the executor
//! starts its actor. The handle returned by [`Runtime::spawn`] exists before the run starts,
//! so a caller can cancel or steer a run that is still queued.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use executus_llm::{Message, Registry};
use tokio::sync::{Mutex, OnceCell};
use tokio_util::sync::CancellationToken;

use crate::agent::RunnableAgent;
use crate::checkpoint::{CheckpointHandle, decode};
use crate::config::{ConfigError, RuntimeConfig};
use crate::dispatch::{DispatchError, DispatchGuard};
use crate::executor::{ExecutorHandle, queued_status};
use crate::identity::Identity;
use crate::ids::RunId;
use crate::lane::{JobSpec, LaneConfig, LaneError, LaneHandle};
use crate::ports::{
    AuditEvent, AuditRecord, PortError, Ports, RunClaim, RunQueue, StoredStatus, audit::now_ms,
};
use crate::run::actor::RunArgs;
use crate::run::env::RunEnv;
use crate::run::handle::{RunControl, RunHandle};
use crate::run::machine::{Approval, Fact, ReplayError, RunState};
use crate::run::{RunEnd, RunOutcome, RunStatus};
use crate::tool::ToolRegistry;
use crate::tool::policy::Policy;

/// Errors of the runtime API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// No agent or persona has this name.
    #[error("unknown agent {name:?} (known: {known})")]
    UnknownAgent {
        /// The name asked for.
        name: String,
        /// Known names, comma-separated.
        known: String,
    },
    /// An agent carries a skill that does not exist or is not active.
    #[error("agent {agent:?} carries skill {skill:?}, which does not exist or is not active")]
    UnknownSkill {
        /// Agent name.
        agent: String,
        /// Skill name.
        skill: String,
    },
    /// Two skills of one agent provide the same tool.
    #[error("agent {agent:?}: skills {first:?} and {second:?} both provide tool {tool:?}")]
    SkillConflict {
        /// Agent name.
        agent: String,
        /// The tool.
        tool: String,
        /// The skill that provided it first.
        first: String,
        /// The skill that provided it again.
        second: String,
    },
    /// A lane name that is not configured.
    #[error("unknown lane {lane:?} (configured: {known})")]
    UnknownLane {
        /// The lane asked for.
        lane: String,
        /// Configured lanes.
        known: String,
    },
    /// The lane refused the run (full, shutting down...).
    #[error(transparent)]
    Lane(#[from] LaneError),
    /// A port failed.
    #[error(transparent)]
    Port(#[from] PortError),
    /// No active or stored run has this id.
    #[error("unknown run {run}")]
    UnknownRun {
        /// The run.
        run: RunId,
    },
    /// The run is already running in this process.
    #[error("run {run} is already active")]
    AlreadyActive {
        /// The run.
        run: RunId,
    },
    /// Another process sharing the checkpoint store is driving the run (see
    /// [`CheckpointStore::claim`](crate::ports::CheckpointStore::claim)).
    #[error("run {run} is active in another process sharing the store; it continues there")]
    ActiveElsewhere {
        /// The run.
        run: RunId,
    },
    /// The call is not waiting for approval.
    #[error("run {run} has no tool call {call:?} waiting for approval")]
    NotAwaitingApproval {
        /// The run.
        run: RunId,
        /// The call id.
        call: String,
    },
    /// A stored run log could not be replayed.
    #[error("run {run} cannot be resumed: {source}")]
    Replay {
        /// The run.
        run: RunId,
        /// Why.
        source: ReplayError,
    },
    /// A dispatch was refused.
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
    /// Invalid configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The registry refused a tier or provider.
    #[error(transparent)]
    Registry(#[from] executus_llm::ConfigError),
    /// An internal actor could not start.
    #[error("runtime could not start: {0}")]
    Start(String),
}

/// What to run and how.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The agent.
    pub agent: RunnableAgent,
    /// The input messages.
    pub input: Vec<Message>,
    /// Who the run acts for.
    pub identity: Identity,
    /// The dispatching run (for child runs).
    pub parent: Option<RunId>,
    /// Lane override.
    pub lane: Option<String>,
    /// Deliver the outcome through the `Delivery` port.
    pub deliver: bool,
    /// Use this run id (e.g. a host's own id); default a fresh one.
    pub run_id: Option<RunId>,
    /// Keep events from the start for the handle's first `events()` call (default true;
    /// `Runtime::run`, whose caller cannot watch, turns it off). Until that call they are
    /// held in a small buffer (at most [`crate::run::handle::EVENT_CAPACITY`]), not a channel.
    pub watch: bool,
}

impl RunRequest {
    /// A request for `agent` with `input`.
    pub fn new(agent: RunnableAgent, input: impl Into<RunInput>) -> Self {
        Self {
            agent,
            input: input.into().0,
            identity: Identity::default(),
            parent: None,
            lane: None,
            deliver: false,
            run_id: None,
            watch: true,
        }
    }

    /// Sets the identity.
    #[must_use]
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = identity;
        self
    }

    /// Sets the lane.
    #[must_use]
    pub fn lane(mut self, lane: impl Into<String>) -> Self {
        self.lane = Some(lane.into());
        self
    }

    /// Delivers the outcome through the `Delivery` port.
    #[must_use]
    pub fn deliver(mut self) -> Self {
        self.deliver = true;
        self
    }

    /// Sets the parent run.
    #[must_use]
    pub fn parent(mut self, parent: RunId) -> Self {
        self.parent = Some(parent);
        self
    }

    /// Uses this run id.
    #[must_use]
    pub fn run_id(mut self, run_id: RunId) -> Self {
        self.run_id = Some(run_id);
        self
    }
}

/// A run's input: text or messages.
#[derive(Debug, Clone)]
pub struct RunInput(pub Vec<Message>);

impl From<&str> for RunInput {
    fn from(s: &str) -> Self {
        Self(vec![Message::user(s)])
    }
}

impl From<String> for RunInput {
    fn from(s: String) -> Self {
        Self(vec![Message::user(s)])
    }
}

impl From<Vec<Message>> for RunInput {
    fn from(m: Vec<Message>) -> Self {
        Self(m)
    }
}

impl From<Message> for RunInput {
    fn from(m: Message) -> Self {
        Self(vec![m])
    }
}

/// Builds a [`Runtime`].
#[derive(Default)]
pub struct RuntimeBuilder {
    registry: Option<Registry>,
    ports: Ports,
    tools: ToolRegistry,
    policy: Option<Policy>,
    config: RuntimeConfig,
    queue: Option<Arc<dyn RunQueue>>,
}

impl RuntimeBuilder {
    /// Hands top-level runs to `queue` instead of driving them here (see [`RunQueue`]).
    #[must_use]
    pub fn queue(mut self, queue: Arc<dyn RunQueue>) -> Self {
        self.queue = Some(queue);
        self
    }

    /// Uses this model registry (default: providers from `EXECUTUS_LLM_*` variables).
    #[must_use]
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Uses these ports.
    #[must_use]
    pub fn ports(mut self, ports: Ports) -> Self {
        self.ports = ports;
        self
    }

    /// Uses this tool registry.
    #[must_use]
    pub fn tools(mut self, tools: ToolRegistry) -> Self {
        self.tools = tools;
        self
    }

    /// Uses this policy (default: [`Policy::new`], the `read-only` profile only).
    #[must_use]
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Uses this configuration.
    #[must_use]
    pub fn config(mut self, config: RuntimeConfig) -> Self {
        self.config = config;
        self
    }

    /// Builds the runtime. Actors start lazily on first use, so this needs no async context.
    /// Tiers from the configuration are added to the registry here; a bad tier is logged and
    /// reported again when a run uses it (use [`RuntimeBuilder::try_build`] to fail early).
    pub fn build(self) -> Runtime {
        match self.try_build_inner() {
            Ok(rt) => rt,
            Err((rt, e)) => {
                tracing::error!(error = %e, "runtime configuration problem");
                rt
            }
        }
    }

    /// Builds the runtime, failing on a bad tier definition.
    ///
    /// # Errors
    /// [`RuntimeError::Registry`] naming the tier.
    pub fn try_build(self) -> Result<Runtime, RuntimeError> {
        self.try_build_inner().map_err(|(_, e)| e)
    }

    fn try_build_inner(self) -> Result<Runtime, (Runtime, RuntimeError)> {
        let mut problem = None;
        let registry = match self.registry {
            Some(r) => r,
            None => Registry::from_env().unwrap_or_else(|e| {
                problem = Some(RuntimeError::Registry(e));
                Registry::new()
            }),
        };
        for (name, spec) in &self.config.tiers {
            if let Err(e) = registry.set_alias(name, spec.clone()) {
                problem.get_or_insert(RuntimeError::Registry(e));
            }
        }
        let inner = Arc::new_cyclic(|weak| RuntimeInner {
            registry,
            tools: self.tools,
            policy: self.policy.unwrap_or_default(),
            ports: self.ports,
            config: self.config,
            queue: self.queue,
            started: OnceCell::new(),
            controls: DashMap::new(),
            lanes: Mutex::new(HashMap::new()),
            weak: weak.clone(),
        });
        let rt = Runtime { inner };
        match problem {
            None => Ok(rt),
            Some(e) => Err((rt, e)),
        }
    }
}

struct Started {
    env: Arc<RunEnv>,
    executor: ExecutorHandle,
    dispatch: DispatchGuard,
}

/// The runtime's shared state.
pub struct RuntimeInner {
    registry: Registry,
    tools: ToolRegistry,
    policy: Policy,
    ports: Ports,
    config: RuntimeConfig,
    queue: Option<Arc<dyn RunQueue>>,
    started: OnceCell<Started>,
    controls: DashMap<RunId, Arc<RunControl>>,
    lanes: Mutex<HashMap<String, LaneHandle>>,
    weak: Weak<RuntimeInner>,
}

impl Drop for RuntimeInner {
    fn drop(&mut self) {
        // Interrupt what is still running; checkpoints stay, so the runs resume later. The
        // checkpoint actor is flushed and stopped once the executor is gone (bounded wait).
        if let Some(started) = self.started.get() {
            started.executor.shutdown();
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                let executor = started.executor.clone();
                let checkpoint = started.env.checkpoint.clone();
                handle.spawn(async move {
                    executor.stopped(Duration::from_secs(5)).await;
                    checkpoint.stop().await;
                });
            }
        }
    }
}

/// The executus runtime. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<RuntimeInner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("registry", &self.inner.registry).finish_non_exhaustive()
    }
}

impl Runtime {
    /// A builder with every default.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// The model registry.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The tool registry.
    pub fn tools(&self) -> &ToolRegistry {
        &self.inner.tools
    }

    /// The ports.
    pub fn ports(&self) -> &Ports {
        &self.inner.ports
    }

    /// The configuration.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    async fn started(&self) -> Result<&Started, RuntimeError> {
        self.inner
            .started
            .get_or_try_init(|| async {
                let checkpoint = CheckpointHandle::spawn(
                    self.inner.ports.checkpoints.clone(),
                    self.inner.config.checkpoint_interval,
                )
                .await
                .map_err(RuntimeError::Start)?;
                let dispatch =
                    DispatchGuard::spawn(self.inner.config.dispatch).await.map_err(RuntimeError::Dispatch)?;
                let env = Arc::new(RunEnv {
                    registry: self.inner.registry.clone(),
                    tools: self.inner.tools.clone(),
                    policy: self.inner.policy.clone(),
                    ports: self.inner.ports.clone(),
                    config: self.inner.config.clone(),
                    checkpoint,
                    dispatch: dispatch.clone(),
                    runtime: self.inner.weak.clone(),
                });
                let executor = ExecutorHandle::spawn(env.clone()).await.map_err(RuntimeError::Start)?;
                Ok(Started { env, executor, dispatch })
            })
            .await
    }

    /// The lane called `name`, started on first use from the configuration.
    ///
    /// # Errors
    /// [`RuntimeError::UnknownLane`] if it is not configured.
    pub async fn lane(&self, name: &str) -> Result<LaneHandle, RuntimeError> {
        let mut lanes = self.inner.lanes.lock().await;
        if let Some(lane) = lanes.get(name) {
            return Ok(lane.clone());
        }
        let settings =
            self.inner.config.lanes.get(name).cloned().ok_or_else(|| RuntimeError::UnknownLane {
                lane: name.to_owned(),
                known: self.inner.config.lanes.keys().cloned().collect::<Vec<_>>().join(", "),
            })?;
        let lane = LaneHandle::spawn(LaneConfig {
            name: name.to_owned(),
            capacity: settings.capacity,
            max_queue: settings.max_queue,
        })
        .await?;
        lanes.insert(name.to_owned(), lane.clone());
        Ok(lane)
    }

    /// The dispatch guard (for tools that start child runs).
    ///
    /// # Errors
    /// [`RuntimeError::Start`] if the runtime's actors cannot start.
    pub async fn dispatch_guard(&self) -> Result<DispatchGuard, RuntimeError> {
        Ok(self.started().await?.dispatch.clone())
    }

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
        Ok(handle.outcome().await.as_ref().clone())
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

    /// Merges the agent's skills: instructions appended in order, tools added to the
    /// allowlist; two skills providing the same tool is an error naming both.
    async fn resolve_skills(&self, mut agent: RunnableAgent) -> Result<RunnableAgent, RuntimeError> {
        let mut provided: HashMap<String, String> = HashMap::new();
        for name in agent.skills.clone() {
            let skill = self.inner.ports.skills.skill(&name).await?.ok_or_else(|| {
                RuntimeError::UnknownSkill { agent: agent.name.clone(), skill: name.clone() }
            })?;
            let instructions = skill.instructions.trim();
            if !instructions.is_empty() {
                if !agent.system.is_empty() {
                    agent.system.push_str("\n\n");
                }
                agent.system.push_str("## Skill: ");
                agent.system.push_str(&skill.name);
                agent.system.push_str("\n\n");
                agent.system.push_str(instructions);
            }
            for tool in skill.tools {
                if let Some(first) = provided.insert(tool.clone(), name.clone()) {
                    return Err(RuntimeError::SkillConflict {
                        agent: agent.name.clone(),
                        tool,
                        first,
                        second: name.clone(),
                    });
                }
                if !agent.tools.contains(&tool) {
                    agent.tools.push(tool);
                }
            }
        }
        agent.skills.clear();
        Ok(agent)
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
    async fn enqueue(&self, queue: &dyn RunQueue, request: RunRequest) -> Result<RunHandle, RuntimeError> {
        let run_id = request.run_id.unwrap_or_default();
        let follow = queue.enqueue(run_id, &request).await?;
        let control = RunControl::new(run_id, request.agent.name.clone(), request.watch);
        let followed = control.clone();
        tokio::spawn(async move {
            let outcome = follow.await;
            followed.emit(crate::run::RunEvent::Ended { run_id, end: outcome.end.clone() });
            followed.set_outcome(outcome);
        });
        Ok(RunHandle { control, runtime: self.clone() })
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
        let state = RunState::start(&start).map_err(|source| RuntimeError::Replay { run: run_id, source })?;
        let claim = self.claim(run_id).await?;
        let how = Submission { resumed: false, deliver: request.deliver, watched };
        self.submit(started, lane, state, vec![start], how, claim).await
    }

    /// This process's claim on `run` in the checkpoint store (so no other process sharing
    /// the store resumes a run this one drives); held by the run's job until it ends here.
    async fn claim(&self, run: RunId) -> Result<RunClaim, RuntimeError> {
        self.inner.ports.checkpoints.claim(run).await?.ok_or(RuntimeError::ActiveElsewhere { run })
    }

    async fn submit(
        &self,
        started: &Started,
        lane: Option<&LaneHandle>,
        state: RunState,
        unsaved: Vec<Fact>,
        how: Submission,
        claim: RunClaim,
    ) -> Result<RunHandle, RuntimeError> {
        let Submission { resumed, deliver, watched } = how;
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
        });
        let guard = QueuedGuard { control: Some(control.clone()), runtime: self.inner.weak.clone() };
        let executor = started.executor.clone();
        let weak = self.inner.weak.clone();
        let job = async move {
            // Released when the job ends: the run ended, or was interrupted, here.
            let _claim = claim;
            let control = guard.disarm();
            // Leaves the active set however this job ends — also when the lane aborts it
            // (a running run cancelled through its lane job).
            let _active = ActiveGuard { control: control.clone(), runtime: weak };
            if control.cancel.is_cancelled() {
                publish_unstarted(&control, RunEnd::Cancelled);
            } else if let Err(error) = executor.start(args).await {
                // Usually already published by the executor (the run failed to start); if
                // the executor itself is gone, this is the only outcome the caller gets.
                publish_unstarted(&control, RunEnd::Failed { error });
            } else {
                let mut rx = control.outcome.subscribe();
                let _ = rx.wait_for(Option::is_some).await;
            }
        };
        let Some(lane) = lane else {
            tokio::spawn(job);
            return Ok(RunHandle { control, runtime: self.clone() });
        };
        match lane.submit(spec, job).await {
            Ok(job) => {
                let _ = control.job.set((lane.clone(), job.id()));
                Ok(RunHandle { control, runtime: self.clone() })
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
        if let Some(control) = control {
            control.cancel.cancel();
            if let Some((lane, job)) = control.job.get() {
                lane.cancel(*job).await;
            }
        }
        if let Some(started) = self.inner.started.get() {
            started.executor.cancel(run);
        }
    }

    /// Injects a user message into a run; the next model call sees it.
    ///
    /// # Errors
    /// [`RuntimeError::UnknownRun`] if the run is not active.
    pub async fn steer(&self, run: RunId, text: impl Into<String>) -> Result<(), RuntimeError> {
        let text = text.into();
        if let Some(started) = self.inner.started.get()
            && started.executor.steer(run, text.clone()).await
        {
            return Ok(());
        }
        let control = self.inner.controls.get(&run).map(|c| c.clone());
        match control {
            Some(control) if control.outcome().is_none() => {
                control.early_steering.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(text);
                Ok(())
            }
            _ => Err(RuntimeError::UnknownRun { run }),
        }
    }

    /// Status of an active (queued or running) run; a run that has just ended may still
    /// answer, with phase [`RunPhase::Ended`](crate::run::RunPhase::Ended).
    pub async fn status(&self, run: RunId) -> Option<RunStatus> {
        if let Some(started) = self.inner.started.get()
            && let Some(status) = started.executor.status(run).await
        {
            return Some(status);
        }
        let control = self.inner.controls.get(&run).map(|c| c.clone())?;
        Some(queued_status(&control))
    }

    /// Number of runs active in the executor.
    pub async fn active_runs(&self) -> usize {
        match self.inner.started.get() {
            Some(s) => s.executor.active().await,
            None => 0,
        }
    }

    /// Runs this runtime tracks (queued or running): zero once everything has ended.
    pub fn tracked_runs(&self) -> usize {
        self.inner.controls.len()
    }

    /// True while a run is queued or running in this runtime.
    fn is_active(&self, run: RunId) -> bool {
        self.inner.controls.get(&run).is_some_and(|c| c.outcome().is_none())
    }

    /// Loads and replays a stored run.
    async fn load_state(&self, run: RunId) -> Result<(RunState, StoredStatus), RuntimeError> {
        let started = self.started().await?;
        started.env.checkpoint.flush().await?;
        let stored = self.inner.ports.checkpoints.load(run).await?.ok_or(RuntimeError::UnknownRun { run })?;
        let facts = stored.entries.iter().map(|e| decode(&e.payload)).collect::<Result<Vec<_>, _>>()?;
        let state = RunState::replay(facts.iter()).map_err(|source| RuntimeError::Replay { run, source })?;
        Ok((state, stored.status))
    }

    /// Resumes every interrupted run (not those waiting for approval). Call at start-up.
    ///
    /// # Errors
    /// A [`RuntimeError`] if the store cannot be listed; runs that fail to resume are
    /// logged and skipped.
    pub async fn resume_interrupted(&self) -> Result<Vec<RunHandle>, RuntimeError> {
        let interrupted = self.inner.ports.checkpoints.list_interrupted().await?;
        let mut handles = Vec::new();
        for (meta, status) in interrupted {
            if status != StoredStatus::Running || self.is_active(meta.run_id) {
                continue;
            }
            match self.resume(meta.run_id).await {
                Ok(h) => handles.push(h),
                Err(RuntimeError::ActiveElsewhere { .. }) => {
                    tracing::debug!(run_id = %meta.run_id, "not resumed: another process drives it");
                }
                Err(e) => tracing::error!(run_id = %meta.run_id, error = %e, "could not resume run"),
            }
        }
        Ok(handles)
    }

    /// Resumes one interrupted run from its last checkpoint. Completed tool calls are not
    /// executed again; a call that was in flight is re-run if its tool is idempotent,
    /// otherwise it becomes an error result saying it was interrupted.
    ///
    /// # Errors
    /// [`RuntimeError::UnknownRun`], [`RuntimeError::AlreadyActive`], a replay error, or a
    /// lane refusal.
    pub async fn resume(&self, run: RunId) -> Result<RunHandle, RuntimeError> {
        if self.is_active(run) {
            return Err(RuntimeError::AlreadyActive { run });
        }
        // Claimed before the log is read: another process may be writing it.
        let claim = self.claim(run).await?;
        let (mut state, _) = self.load_state(run).await?;
        let mut unsaved = Vec::new();
        // Calls that were possibly executing at the crash (the log cannot tell "started"
        // from "queued", so every unfinished, non-pending call counts as in flight).
        let unfinished: Vec<_> = state
            .calls
            .iter()
            .filter(|s| s.result.is_none() && s.approval != Approval::Pending)
            .map(|s| s.call.clone())
            .collect();
        for call in unfinished {
            let idempotent = self.inner.tools.get(&call.name).is_some_and(|t| t.idempotent());
            if !idempotent {
                let fact = Fact::ToolResult {
                    result: executus_llm::ToolResult {
                        id: call.id.clone(),
                        name: call.name.clone(),
                        content: format!(
                            "tool {} was interrupted by a restart while running and was not re-run \
                             (it is not idempotent); check its effect before calling it again",
                            call.name
                        ),
                        is_error: true,
                    },
                    blocked: false,
                };
                state.apply(&fact).map_err(|source| RuntimeError::Replay { run, source })?;
                unsaved.push(fact);
            }
        }
        self.start_existing(state, unsaved, claim).await
    }

    async fn start_existing(
        &self,
        state: RunState,
        unsaved: Vec<Fact>,
        claim: RunClaim,
    ) -> Result<RunHandle, RuntimeError> {
        let started = self.started().await?;
        let lane_name = state.agent.lane.clone().unwrap_or_else(|| "default".into());
        let lane = self.lane(&lane_name).await?;
        self.submit(
            started,
            Some(&lane),
            state,
            unsaved,
            Submission { resumed: true, deliver: false, watched: true },
            claim,
        )
        .await
    }

    /// Approves a tool call a run is waiting on; the run continues (also after a restart).
    ///
    /// # Errors
    /// [`RuntimeError::NotAwaitingApproval`] if that call is not waiting.
    pub async fn approve(&self, run: RunId, call: &str) -> Result<RunHandle, RuntimeError> {
        self.answer_approval(run, call, None).await
    }

    /// Denies a tool call a run is waiting on; the model is told why and the run continues.
    ///
    /// # Errors
    /// [`RuntimeError::NotAwaitingApproval`] if that call is not waiting.
    pub async fn deny(&self, run: RunId, call: &str, reason: &str) -> Result<RunHandle, RuntimeError> {
        self.answer_approval(run, call, Some(reason)).await
    }

    async fn answer_approval(
        &self,
        run: RunId,
        call: &str,
        denial: Option<&str>,
    ) -> Result<RunHandle, RuntimeError> {
        if self.is_active(run) {
            return Err(RuntimeError::AlreadyActive { run });
        }
        let claim = self.claim(run).await?;
        let (mut state, _) = self.load_state(run).await?;
        let pending = state.pending_approvals().into_iter().find(|c| c.id == call).cloned();
        let Some(pending) = pending else {
            return Err(RuntimeError::NotAwaitingApproval { run, call: call.to_owned() });
        };
        let fact = match denial {
            None => Fact::Approved { call_id: pending.id.clone() },
            Some(reason) => Fact::ToolResult {
                result: executus_llm::ToolResult {
                    id: pending.id.clone(),
                    name: pending.name.clone(),
                    content: format!("a human denied this call: {reason}"),
                    is_error: true,
                },
                blocked: true,
            },
        };
        state.apply(&fact).map_err(|source| RuntimeError::Replay { run, source })?;
        let record = |event| {
            AuditRecord::now(Some(run), state.identity.clone(), Some(state.agent.name.clone()), event)
        };
        let audit = &self.inner.ports.audit;
        audit
            .record(record(AuditEvent::ApprovalAnswered {
                call_id: pending.id.clone(),
                approved: denial.is_none(),
                reason: denial.map(str::to_owned),
            }))
            .await;
        if let Some(reason) = denial {
            audit
                .record(record(AuditEvent::ToolCall {
                    step: state.step,
                    tool: pending.name.clone(),
                    call_id: pending.id.clone(),
                    decision: "deny".into(),
                    rule: Some("human-approval".into()),
                    reason: Some(reason.to_owned()),
                    is_error: true,
                    latency_ms: 0,
                }))
                .await;
        }
        self.start_existing(state, vec![fact], claim).await
    }

    /// Gives up on a run: an active one is cancelled; a stored one (interrupted, or paused
    /// for approval) is marked failed and its log deleted, so it is never resumed.
    ///
    /// # Errors
    /// [`RuntimeError::UnknownRun`] if the run is neither active nor stored.
    pub async fn discard(&self, run: RunId) -> Result<(), RuntimeError> {
        if self.is_active(run) {
            self.cancel(run).await;
            return Ok(());
        }
        let _claim = self.claim(run).await?;
        let (state, _) = self.load_state(run).await?;
        let started = self.started().await?;
        started.env.checkpoint.finish(run, StoredStatus::Failed).await?;
        self.inner
            .ports
            .audit
            .record(AuditRecord::now(
                Some(run),
                state.identity.clone(),
                Some(state.agent.name.clone()),
                AuditEvent::RunEnded {
                    status: RunEnd::Cancelled.status().into(),
                    reason: Some("discarded".into()),
                    steps: state.step,
                    usage: state.usage,
                },
            ))
            .await;
        Ok(())
    }

    /// Graceful shutdown: lanes stop admitting, running jobs get `grace` to finish, then
    /// every remaining run is interrupted with its checkpoint flushed (it resumes on the
    /// next start).
    pub async fn shutdown(&self, grace: Duration) {
        let lanes: Vec<LaneHandle> = self.inner.lanes.lock().await.values().cloned().collect();
        let drains = lanes.iter().map(|lane| lane.shutdown(grace));
        futures::future::join_all(drains).await;
        if let Some(started) = self.inner.started.get() {
            let _ = started.env.checkpoint.flush().await;
            started.executor.shutdown();
            // Give interrupted runs' final saves a moment to reach the checkpoint actor.
            tokio::task::yield_now().await;
            started.env.checkpoint.stop().await;
        }
    }

    /// Runs the `Schedule` port until `shutdown` fires.
    pub async fn run_schedule(&self, shutdown: CancellationToken) {
        let schedule = self.inner.ports.schedule.clone();
        schedule.run(self.clone(), shutdown).await;
    }
}

/// How a run is submitted.
#[derive(Debug, Clone, Copy)]
struct Submission {
    /// Resumed from a checkpoint.
    resumed: bool,
    /// Deliver the outcome through the Delivery port.
    deliver: bool,
    /// Keep events for the first subscriber (a caller holds a handle and may watch).
    watched: bool,
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
