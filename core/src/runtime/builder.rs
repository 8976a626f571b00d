//! [`RuntimeBuilder`]: ports, tools, policy, configuration and the model registry, each
//! defaulting to its nil-safe form.

use std::collections::HashMap;
use std::sync::Arc;

use dashmap::DashMap;
use executus_llm::Registry;
use tokio::sync::{Mutex, OnceCell};

use super::{Runtime, RuntimeInner};
use crate::config::RuntimeConfig;
use crate::error::RuntimeError;
use crate::ports::{Ports, RunQueue};
use crate::tool::ToolRegistry;
use crate::tool::policy::Policy;

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
