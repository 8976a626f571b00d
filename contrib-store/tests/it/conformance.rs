//! The batteries' own conformance suites, run against the SQLite stores: on a fresh file
//! for every check, on a multi-thread runtime so their concurrency checks really race, and
//! on the in-memory database too.

use std::sync::Arc;

use executus_audit::AuditStore;
use executus_budget::BudgetStore;
use executus_store::Store;

use crate::common::TempStore;

/// Fresh stores for a factory-driven suite; the temp dirs live as long as the test.
struct Fresh {
    dirs: std::sync::Mutex<Vec<TempStore>>,
}

impl Fresh {
    fn new() -> Self {
        Self { dirs: std::sync::Mutex::new(Vec::new()) }
    }

    async fn store(&self) -> Store {
        let tmp = TempStore::new();
        let store = tmp.open().await;
        self.dirs.lock().unwrap().push(tmp);
        store
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn persona_store_passes_the_persona_conformance_check() {
    let tmp = TempStore::new();
    let store = tmp.open().await;
    executus_persona::conformance::check_persona_store(&store.personas()).await.unwrap();
    let memory = Store::open("sqlite::memory:").await.unwrap();
    executus_persona::conformance::check_persona_store(&memory.personas()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn skill_store_passes_the_skill_conformance_check() {
    let tmp = TempStore::new();
    let store = tmp.open().await;
    executus_skill::conformance::check_skill_store(&store.skills()).await.unwrap();
    let memory = Store::open("sqlite::memory:").await.unwrap();
    executus_skill::conformance::check_skill_store(&memory.skills()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_store_passes_the_audit_conformance_check() {
    let fresh = Fresh::new();
    executus_audit::store::conformance::check(|| async {
        Arc::new(fresh.store().await.audit()) as Arc<dyn AuditStore>
    })
    .await
    .unwrap();
    executus_audit::store::conformance::check(|| async {
        Arc::new(Store::open("sqlite::memory:").await.unwrap().audit()) as Arc<dyn AuditStore>
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn budget_store_passes_the_budget_conformance_check() {
    let fresh = Fresh::new();
    executus_budget::store::conformance::check(|| async {
        Arc::new(fresh.store().await.budget()) as Arc<dyn BudgetStore>
    })
    .await
    .unwrap();
    executus_budget::store::conformance::check(|| async {
        Arc::new(Store::open("sqlite::memory:").await.unwrap().budget()) as Arc<dyn BudgetStore>
    })
    .await
    .unwrap();
}
