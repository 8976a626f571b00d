//! Shared helpers: a runtime over fake providers with a budget, requests, faulty stores.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use executus::config::LaneSettings;
use executus::llm::Registry;
use executus::llm::fake::FakeProvider;
use executus::ports::{Budget, PortError, Ports, SpendRequest};
use executus::{Identity, RunId, Runtime, RuntimeConfig};
use executus_budget::{
    BudgetStore, MemoryBudgetStore, ReserveOutcome, ReserveRequest, ScopeTotals, SettleRequest,
};

/// A runtime over `fakes` whose only non-default port is `budget`; the default lane runs
/// `capacity` jobs at once.
pub fn runtime(fakes: &[&FakeProvider], budget: Arc<dyn Budget>, capacity: usize) -> Runtime {
    let registry = Registry::new();
    for fake in fakes {
        registry.add_provider(Arc::new((*fake).clone())).unwrap();
    }
    let mut config = RuntimeConfig { streaming: false, ..RuntimeConfig::default() };
    config.lanes.insert(
        "default".into(),
        LaneSettings { capacity: std::num::NonZeroUsize::new(capacity).unwrap(), max_queue: 10_000 },
    );
    let ports = Ports { budget, ..Ports::default() };
    Runtime::builder().registry(registry).ports(ports).config(config).build()
}

/// A spend request from `user@tenant` over `targets`.
pub fn spend(user: &str, tenant: &str, targets: &[&str], input: u64, max_output: u64) -> SpendRequest {
    SpendRequest {
        run_id: RunId::new(),
        identity: Identity::new(user, tenant),
        targets: targets.iter().map(|t| (*t).to_owned()).collect(),
        input_tokens: input,
        max_output_tokens: max_output,
    }
}

/// A store that fails every call with a backend error, counting calls.
#[derive(Default)]
pub struct BrokenStore {
    pub calls: AtomicUsize,
}

impl BrokenStore {
    fn fail(&self) -> PortError {
        self.calls.fetch_add(1, Ordering::SeqCst);
        PortError::Backend { port: "budget", message: "database is locked forever".into() }
    }
}

#[async_trait]
impl BudgetStore for BrokenStore {
    async fn try_reserve(&self, _: &ReserveRequest) -> Result<ReserveOutcome, PortError> {
        Err(self.fail())
    }
    async fn settle(&self, _: &SettleRequest) -> Result<bool, PortError> {
        Err(self.fail())
    }
    async fn spent(&self, _: &str, _: u64, _: u64) -> Result<ScopeTotals, PortError> {
        Err(self.fail())
    }
    async fn expire(&self, _: u64) -> Result<u64, PortError> {
        Err(self.fail())
    }
    async fn prune(&self, _: u64) -> Result<u64, PortError> {
        Err(self.fail())
    }
}

/// A memory store whose settles fail until `settle_failures` have happened.
pub struct SettleFails {
    pub inner: MemoryBudgetStore,
    pub settle_failures: usize,
    pub settles: AtomicUsize,
}

#[async_trait]
impl BudgetStore for SettleFails {
    async fn try_reserve(&self, r: &ReserveRequest) -> Result<ReserveOutcome, PortError> {
        self.inner.try_reserve(r).await
    }
    async fn settle(&self, r: &SettleRequest) -> Result<bool, PortError> {
        if self.settles.fetch_add(1, Ordering::SeqCst) < self.settle_failures {
            return Err(PortError::Backend { port: "budget", message: "busy".into() });
        }
        self.inner.settle(r).await
    }
    async fn spent(&self, s: &str, since: u64, now: u64) -> Result<ScopeTotals, PortError> {
        self.inner.spent(s, since, now).await
    }
    async fn expire(&self, now: u64) -> Result<u64, PortError> {
        self.inner.expire(now).await
    }
    async fn prune(&self, before: u64) -> Result<u64, PortError> {
        self.inner.prune(before).await
    }
}
