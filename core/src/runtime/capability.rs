//! The runtime seen from below: [`Runs`] for the run handles, `dispatch_agent`'s
//! [`ChildRuns`](crate::run::ChildRuns), a schedule's [`RunSubmitter`](crate::run::RunSubmitter)
//! and the fan-out actor.

use async_trait::async_trait;
use executus_llm::Registry;

use super::{Runtime, RuntimeInner};
use crate::agent::RunnableAgent;
use crate::dispatch::DispatchGuard;
use crate::error::RuntimeError;
use crate::ids::RunId;
use crate::lane::LaneHandle;
use crate::run::capability::Runs;
use crate::run::handle::RunHandle;
use crate::run::{RunRequest, RunSnapshot};

impl RuntimeInner {
    /// A `Runtime` on this state. The state is reached through a live `Arc` whenever one of
    /// these methods runs, so the upgrade holds.
    fn runtime(&self) -> Result<Runtime, RuntimeError> {
        self.weak.upgrade().map(|inner| Runtime { inner }).ok_or(RuntimeError::Gone)
    }
}

#[async_trait]
impl Runs for RuntimeInner {
    async fn agent(&self, name: &str) -> Result<RunnableAgent, RuntimeError> {
        self.runtime()?.agent(name).await
    }

    async fn submit(&self, request: RunRequest) -> Result<RunHandle, RuntimeError> {
        self.runtime()?.spawn_with(request).await
    }

    async fn submit_child(&self, request: RunRequest) -> Result<RunHandle, RuntimeError> {
        self.runtime()?.spawn_child(request).await
    }

    async fn dispatch_guard(&self) -> Result<DispatchGuard, RuntimeError> {
        self.runtime()?.dispatch_guard().await
    }

    async fn lane(&self, name: &str) -> Result<LaneHandle, RuntimeError> {
        self.runtime()?.lane(name).await
    }

    fn registry(&self) -> &Registry {
        &self.registry
    }

    async fn cancel(&self, run: RunId) {
        if let Ok(rt) = self.runtime() {
            rt.cancel(run).await;
        }
    }

    async fn steer(&self, run: RunId, text: String) -> Result<(), RuntimeError> {
        self.runtime()?.steer(run, text).await
    }

    async fn snapshot(&self, run: RunId) -> Option<RunSnapshot> {
        self.runtime().ok()?.status(run).await
    }
}
