//! Narrow handles on the runtime for the parts that start or steer runs from below it: a run's
//! [`RunHandle`], the `dispatch_agent` tool ([`ChildRuns`]), a schedule ([`RunSubmitter`]) and
//! the fan-out actor.
//!
//! They all go through `Runs`, a crate-private trait the runtime implements, so none of those
//! modules names the runtime: the runtime depends on them, never the reverse.
//!
//! # Guarantees
//! - A [`ChildRuns`] does not keep its runtime alive (it is handed to every tool call, and a
//!   tool call must not outlive the runtime that made it); its calls fail with
//!   [`RuntimeError::Gone`] once the runtime is dropped.
//! - A [`RunSubmitter`] and a [`RunHandle`] keep the runtime alive, as a `Runtime` clone would.
//!
//! # What it does not do
//! - No admission of its own: [`RunSubmitter::submit`] goes through the runtime's lanes exactly
//!   as `Runtime::spawn_with` does; [`ChildRuns::spawn`] skips lanes as `dispatch_agent` needs
//!   (the dispatch guard bounds children instead).

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use executus_llm::Registry;

use super::RunSnapshot;
use super::handle::RunHandle;
use super::request::RunRequest;
use crate::agent::RunnableAgent;
use crate::dispatch::DispatchGuard;
use crate::error::RuntimeError;
use crate::ids::RunId;
use crate::lane::LaneHandle;

/// What the runtime offers to the parts below it.
#[async_trait]
pub(crate) trait Runs: Send + Sync {
    /// The agent (configured, else persona) called `name`.
    async fn agent(&self, name: &str) -> Result<RunnableAgent, RuntimeError>;
    /// Starts a run through its lane (as `Runtime::spawn_with`).
    async fn submit(&self, request: RunRequest) -> Result<RunHandle, RuntimeError>;
    /// Starts a child run without lane admission (as `Runtime::spawn_child`).
    async fn submit_child(&self, request: RunRequest) -> Result<RunHandle, RuntimeError>;
    /// The dispatch guard.
    async fn dispatch_guard(&self) -> Result<DispatchGuard, RuntimeError>;
    /// The lane called `name`.
    async fn lane(&self, name: &str) -> Result<LaneHandle, RuntimeError>;
    /// The model registry.
    fn registry(&self) -> &Registry;
    /// Cancels a run.
    async fn cancel(&self, run: RunId);
    /// Steers a run.
    async fn steer(&self, run: RunId, text: String) -> Result<(), RuntimeError>;
    /// A run's snapshot.
    async fn snapshot(&self, run: RunId) -> Option<RunSnapshot>;
}

/// Starts child runs for the `dispatch_agent` tool: agents by name, the dispatch guard, and
/// child runs that skip lane admission. Held by every [`ToolContext`](crate::tool::ToolContext)
/// of a runtime's runs; does not keep the runtime alive.
#[derive(Clone)]
pub struct ChildRuns {
    runs: Weak<dyn Runs>,
}

impl std::fmt::Debug for ChildRuns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildRuns").field("alive", &(self.runs.strong_count() > 0)).finish()
    }
}

impl ChildRuns {
    pub(crate) fn new(runs: Weak<dyn Runs>) -> Self {
        Self { runs }
    }

    fn runs(&self) -> Result<Arc<dyn Runs>, RuntimeError> {
        self.runs.upgrade().ok_or(RuntimeError::Gone)
    }

    /// The agent (configured, else persona) called `name`.
    ///
    /// # Errors
    /// [`RuntimeError::UnknownAgent`] listing the known ones, [`RuntimeError::Gone`].
    pub async fn agent(&self, name: &str) -> Result<RunnableAgent, RuntimeError> {
        self.runs()?.agent(name).await
    }

    /// The runtime's dispatch guard.
    ///
    /// # Errors
    /// [`RuntimeError::Start`] if its actors cannot start, [`RuntimeError::Gone`].
    pub async fn dispatch_guard(&self) -> Result<DispatchGuard, RuntimeError> {
        self.runs()?.dispatch_guard().await
    }

    /// Starts a child run without lane admission: the parent already holds a lane slot, and
    /// children queued behind their own parents could deadlock a full lane.
    ///
    /// # Errors
    /// As `Runtime::spawn_child`, and [`RuntimeError::Gone`].
    pub async fn spawn(&self, request: RunRequest) -> Result<RunHandle, RuntimeError> {
        self.runs()?.submit_child(request).await
    }
}

/// Submits runs for a [`Schedule`](crate::ports::Schedule): agents by name and runs through
/// the runtime's lanes. Keeps the runtime alive while held.
#[derive(Clone)]
pub struct RunSubmitter {
    runs: Arc<dyn Runs>,
}

impl std::fmt::Debug for RunSubmitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunSubmitter").finish_non_exhaustive()
    }
}

impl RunSubmitter {
    pub(crate) fn new(runs: Arc<dyn Runs>) -> Self {
        Self { runs }
    }

    /// The agent (configured, else persona) called `name`.
    ///
    /// # Errors
    /// [`RuntimeError::UnknownAgent`] listing the known ones.
    pub async fn agent(&self, name: &str) -> Result<RunnableAgent, RuntimeError> {
        self.runs.agent(name).await
    }

    /// Starts a run through its lane; returns its handle at once.
    ///
    /// # Errors
    /// As `Runtime::spawn_with`: unknown skill or lane, a full lane, ...
    pub async fn submit(&self, request: RunRequest) -> Result<RunHandle, RuntimeError> {
        self.runs.submit(request).await
    }
}
