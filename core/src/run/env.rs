//! [`RunEnv`]: what every run of a runtime shares.

use std::sync::{Arc, Weak};

use executus_llm::registry::Registry;

use crate::checkpoint::CheckpointHandle;
use crate::config::RuntimeConfig;
use crate::ports::Ports;
use crate::runtime::{Runtime, RuntimeInner};
use crate::tool::ToolRegistry;
use crate::tool::policy::Policy;

/// Shared, read-only environment of all runs of one runtime.
pub struct RunEnv {
    /// Providers, tiers, health.
    pub registry: Registry,
    /// Tools.
    pub tools: ToolRegistry,
    /// Runtime policy (permission stage 3).
    pub policy: Policy,
    /// Ports.
    pub ports: Ports,
    /// Validated configuration.
    pub config: RuntimeConfig,
    /// The checkpoint actor.
    pub checkpoint: CheckpointHandle,
    /// The dispatch guard (trees of agents calling agents).
    pub dispatch: crate::dispatch::DispatchGuard,
    pub(crate) runtime: Weak<RuntimeInner>,
}

impl RunEnv {
    /// The runtime, while it is alive (for tools that start runs).
    pub fn runtime(&self) -> Option<Runtime> {
        self.runtime.upgrade().map(|inner| Runtime { inner })
    }

    /// Hands an ended run's outcome to the `Delivery` port; a failure is logged, never
    /// raised (the run has ended either way).
    pub(crate) async fn deliver(&self, item: crate::ports::DeliveryItem) {
        let run_id = item.run_id;
        if let Err(e) = self.ports.delivery.deliver(item).await {
            tracing::warn!(run_id = %run_id, error = %e, "delivery failed");
        }
    }
}

impl std::fmt::Debug for RunEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunEnv").finish_non_exhaustive()
    }
}

/// Keeps `Arc` in scope for users of this module.
pub type SharedEnv = Arc<RunEnv>;
