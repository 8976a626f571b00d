//! `MemoryBudgetStore` against the store conformance suite (the same checks a SQL store
//! runs).

use std::sync::Arc;

use executus_budget::store::conformance;
use executus_budget::{BudgetStore, MemoryBudgetStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_memory_store_conforms() {
    conformance::check(|| async { Arc::new(MemoryBudgetStore::new()) as Arc<dyn BudgetStore> })
        .await
        .unwrap();
}

#[tokio::test]
async fn the_suite_catches_a_store_that_ignores_caps() {
    use async_trait::async_trait;
    use executus::ports::PortError;
    use executus_budget::{ReserveOutcome, ReserveRequest, ScopeTotals, SettleRequest};

    /// Grants everything.
    struct Lax(MemoryBudgetStore);
    #[async_trait]
    impl BudgetStore for Lax {
        async fn try_reserve(&self, r: &ReserveRequest) -> Result<ReserveOutcome, PortError> {
            let mut r = r.clone();
            r.scopes.iter_mut().for_each(|s| s.limit = None);
            self.0.try_reserve(&r).await
        }
        async fn settle(&self, r: &SettleRequest) -> Result<bool, PortError> {
            self.0.settle(r).await
        }
        async fn spent(&self, s: &str, since: u64, now: u64) -> Result<ScopeTotals, PortError> {
            self.0.spent(s, since, now).await
        }
        async fn expire(&self, now: u64) -> Result<u64, PortError> {
            self.0.expire(now).await
        }
        async fn prune(&self, before: u64) -> Result<u64, PortError> {
            self.0.prune(before).await
        }
    }
    let err =
        conformance::check(|| async { Arc::new(Lax(MemoryBudgetStore::new())) as Arc<dyn BudgetStore> })
            .await
            .unwrap_err();
    assert_eq!(err.check, "reserve_checks_every_capped_scope");
}
