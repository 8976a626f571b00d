//! [`Runtime`]: the host's entry point. Build one with [`Runtime::builder`]; every port
//! defaults to its nil-safe implementation, so `Runtime::builder().build()` runs agents with
//! no wiring at all.
//!
//! A run goes through a lane (admission, fair share across tenants); the lane's job task then
//! drives it, supervised by the executor. The handle returned by [`Runtime::spawn`] exists before the run starts,
//! so a caller can cancel or steer a run that is still queued.
//!
//! By concern:
//! - `builder`: [`RuntimeBuilder`].
//! - `admission`: new runs (`run`, `spawn`, `spawn_with`, `spawn_child`), lanes, fan-out, and
//!   what a caller does to an active run (cancel, steer, status).
//! - `durable`: runs in the checkpoint store — resume, approve / deny, discard, and
//!   [`Runtime::stored_outcome`], the one place a stored log is loaded and replayed.
//! - `capability`: the runtime seen from below ([`ChildRuns`],
//!   [`RunSubmitter`], run handles), so no module under the runtime
//!   names it.
//!
//! # Guarantees
//! - Actors start lazily on first use: building a runtime needs no async context and costs
//!   nothing until a run is submitted.
//! - One process drives a run at a time: the runtime holds the checkpoint store's claim on
//!   every run it starts or resumes, until the run ends here.
//! - Dropping the last `Runtime` interrupts what is still running with its checkpoints kept,
//!   so those runs resume on the next start.
//!
//! # What it does not do
//! - It does not resume interrupted runs by itself: call [`Runtime::resume_interrupted`] at
//!   start-up.
//! - It does not run the schedule by itself: call [`Runtime::run_schedule`].

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use dashmap::DashMap;
use executus_llm::Registry;
use tokio::sync::{Mutex, OnceCell};
use tokio_util::sync::CancellationToken;

use crate::checkpoint::CheckpointHandle;
use crate::config::RuntimeConfig;
use crate::dispatch::DispatchGuard;
use crate::error::RuntimeError;
use crate::executor::Executor;
use crate::ids::RunId;
use crate::lane::{LaneConfig, LaneHandle};
use crate::ports::Ports;
use crate::run::capability::{ChildRuns, RunSubmitter, Runs};
use crate::run::env::RunEnv;
use crate::run::handle::RunControl;
use crate::tool::ToolRegistry;
use crate::tool::policy::Policy;

mod admission;
pub mod builder;
mod capability;
mod durable;

pub use builder::RuntimeBuilder;

/// The actors, started on first use.
struct Started {
    env: Arc<RunEnv>,
    executor: Executor,
    dispatch: DispatchGuard,
}

/// The runtime's shared state.
pub(crate) struct RuntimeInner {
    registry: Registry,
    tools: ToolRegistry,
    policy: Policy,
    ports: Ports,
    config: RuntimeConfig,
    /// Where top-level runs go instead of being driven here (see [`crate::ports::RunQueue`]).
    queue: Option<Arc<dyn crate::ports::RunQueue>>,
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
            let controls: Vec<Arc<RunControl>> = self.controls.iter().map(|c| c.value().clone()).collect();
            started.executor.shutdown(&controls);
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
    inner: Arc<RuntimeInner>,
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

    /// The runtime as the parts below it see it.
    fn runs(&self) -> Arc<dyn Runs> {
        self.inner.clone()
    }

    async fn started(&self) -> Result<&Started, RuntimeError> {
        self.inner
            .started
            .get_or_try_init(|| async {
                let checkpoint = CheckpointHandle::new(
                    self.inner.ports.checkpoints.clone(),
                    self.inner.config.checkpoint_interval,
                );
                let dispatch =
                    DispatchGuard::spawn(self.inner.config.dispatch).await.map_err(RuntimeError::Dispatch)?;
                let runs: Weak<dyn Runs> = self.inner.weak.clone();
                let env = Arc::new(RunEnv {
                    registry: self.inner.registry.clone(),
                    tools: self.inner.tools.clone(),
                    policy: self.inner.policy.clone(),
                    ports: self.inner.ports.clone(),
                    config: self.inner.config.clone(),
                    checkpoint,
                    dispatch: dispatch.clone(),
                    children: ChildRuns::new(runs),
                });
                let executor = Executor::new(env.clone());
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

    /// Graceful shutdown: lanes stop admitting, running jobs get `grace` to finish, then
    /// every remaining run is interrupted with its checkpoint flushed (it resumes on the
    /// next start).
    pub async fn shutdown(&self, grace: Duration) {
        let lanes: Vec<LaneHandle> = self.inner.lanes.lock().await.values().cloned().collect();
        let drains = lanes.iter().map(|lane| lane.shutdown(grace));
        futures::future::join_all(drains).await;
        if let Some(started) = self.inner.started.get() {
            let _ = started.env.checkpoint.flush().await;
            let controls: Vec<Arc<RunControl>> =
                self.inner.controls.iter().map(|c| c.value().clone()).collect();
            started.executor.shutdown(&controls);
            // Interrupted runs stop at their next wake; their last saves go out below.
            started.executor.stopped(Duration::from_secs(5)).await;
            started.env.checkpoint.stop().await;
        }
    }

    /// Runs the `Schedule` port until `shutdown` fires.
    pub async fn run_schedule(&self, shutdown: CancellationToken) {
        let schedule = self.inner.ports.schedule.clone();
        schedule.run(self.submitter(), shutdown).await;
    }

    /// A [`RunSubmitter`] on this runtime: what a schedule (or any feeder of runs) needs and no
    /// more.
    pub fn submitter(&self) -> RunSubmitter {
        RunSubmitter::new(self.runs())
    }
}
