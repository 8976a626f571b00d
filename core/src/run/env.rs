//! [`RunEnv`]: what every run of a runtime shares — read-only after the runtime's actors
//! start, handed to each run driver and to the executor.

use executus_llm::registry::Registry;

use super::capability::ChildRuns;
use crate::checkpoint::CheckpointHandle;
use crate::config::RuntimeConfig;
use crate::dispatch::DispatchGuard;
use crate::ports::Ports;
use crate::tool::ToolRegistry;
use crate::tool::policy::Policy;

/// Shared, read-only environment of all runs of one runtime.
pub(crate) struct RunEnv {
    /// Providers, tiers, health.
    pub(crate) registry: Registry,
    /// Tools.
    pub(crate) tools: ToolRegistry,
    /// Runtime policy (permission stage 3).
    pub(crate) policy: Policy,
    /// Ports.
    pub(crate) ports: Ports,
    /// Validated configuration.
    pub(crate) config: RuntimeConfig,
    /// The checkpoint actor.
    pub(crate) checkpoint: CheckpointHandle,
    /// The dispatch guard (trees of agents calling agents).
    pub(crate) dispatch: DispatchGuard,
    /// Child runs for `dispatch_agent` (does not keep the runtime alive).
    pub(crate) children: ChildRuns,
}

impl RunEnv {
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
