//! The batteries' own conformance suites, run unchanged against every backend: a SQLite file
//! (fresh for every check), SQLite in memory, and PostgreSQL (a fresh database for every
//! check; see `pg.rs` for when it runs). On a multi-thread runtime so their concurrency
//! checks really race.

use std::sync::Arc;

use executus_audit::AuditStore;
use executus_budget::BudgetStore;
use executus_store::Store;

use crate::common::TempStore;
use crate::pg::PgDb;

/// A backend the suites run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    SqliteFile,
    SqliteMemory,
    Postgres,
}

/// Every backend available here (PostgreSQL only with a server; see `pg.rs`).
pub fn backends(test: &str) -> Vec<Backend> {
    let mut out = vec![Backend::SqliteFile, Backend::SqliteMemory];
    if crate::pg::admin_url(test).is_some() {
        out.push(Backend::Postgres);
    }
    out
}

/// Fresh stores of one backend; what keeps them alive lives as long as this value.
pub struct Fresh {
    backend: Backend,
    test: &'static str,
    dirs: std::sync::Mutex<Vec<TempStore>>,
    dbs: std::sync::Mutex<Vec<PgDb>>,
}

impl Fresh {
    pub fn new(backend: Backend, test: &'static str) -> Self {
        Self {
            backend,
            test,
            dirs: std::sync::Mutex::new(Vec::new()),
            dbs: std::sync::Mutex::new(Vec::new()),
        }
    }

    pub async fn store(&self) -> Store {
        match self.backend {
            Backend::SqliteFile => {
                let tmp = TempStore::new();
                let store = tmp.open().await;
                self.dirs.lock().unwrap().push(tmp);
                store
            }
            Backend::SqliteMemory => Store::open("sqlite::memory:").await.unwrap(),
            Backend::Postgres => {
                let db = PgDb::create(self.test).await.expect("a server (checked by backends())");
                let store = db.open().await;
                self.dbs.lock().unwrap().push(db);
                store
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn persona_store_passes_the_persona_conformance_check() {
    const TEST: &str = "persona_store_passes_the_persona_conformance_check";
    for backend in backends(TEST) {
        let fresh = Fresh::new(backend, TEST);
        let store = fresh.store().await;
        executus_persona::conformance::check_persona_store(&store.personas())
            .await
            .unwrap_or_else(|e| panic!("{backend:?}: {e:?}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn skill_store_passes_the_skill_conformance_check() {
    const TEST: &str = "skill_store_passes_the_skill_conformance_check";
    for backend in backends(TEST) {
        let fresh = Fresh::new(backend, TEST);
        let store = fresh.store().await;
        executus_skill::conformance::check_skill_store(&store.skills())
            .await
            .unwrap_or_else(|e| panic!("{backend:?}: {e:?}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_store_passes_the_audit_conformance_check() {
    const TEST: &str = "audit_store_passes_the_audit_conformance_check";
    for backend in backends(TEST) {
        let fresh = Fresh::new(backend, TEST);
        executus_audit::store::conformance::check(|| async {
            Arc::new(fresh.store().await.audit()) as Arc<dyn AuditStore>
        })
        .await
        .unwrap_or_else(|e| panic!("{backend:?}: {e:?}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn budget_store_passes_the_budget_conformance_check() {
    const TEST: &str = "budget_store_passes_the_budget_conformance_check";
    for backend in backends(TEST) {
        let fresh = Fresh::new(backend, TEST);
        executus_budget::store::conformance::check(|| async {
            Arc::new(fresh.store().await.budget()) as Arc<dyn BudgetStore>
        })
        .await
        .unwrap_or_else(|e| panic!("{backend:?}: {e:?}"));
    }
}

/// One database of a backend that can be opened more than once (as a second process would;
/// SQLite in memory hands out the one store it has).
pub enum Db {
    File(TempStore),
    Memory(Store),
    Postgres(PgDb),
}

impl Db {
    pub async fn new(backend: Backend, test: &str) -> Self {
        match backend {
            Backend::SqliteFile => Self::File(TempStore::new()),
            Backend::SqliteMemory => Self::Memory(Store::open("sqlite::memory:").await.unwrap()),
            Backend::Postgres => Self::Postgres(PgDb::create(test).await.expect("checked by backends()")),
        }
    }

    pub async fn open(&self) -> Store {
        match self {
            Self::File(tmp) => tmp.open().await,
            Self::Memory(store) => store.clone(),
            Self::Postgres(db) => db.open().await,
        }
    }

    /// A new handle whose time is `clock` (SQLite in memory: a new, empty store of its own).
    pub async fn open_with_clock(&self, clock: Arc<executus::llm::ManualClock>) -> Store {
        let options = executus_store::StoreOptions::default().clock(clock);
        match self {
            Self::File(tmp) => Store::open_with(&tmp.url(), options).await.unwrap(),
            Self::Memory(_) => Store::open_with("sqlite::memory:", options).await.unwrap(),
            Self::Postgres(db) => {
                Store::open_with(&db.url, options).await.expect("open the PostgreSQL store")
            }
        }
    }

    /// True when two `open`s are two independent handles (two processes' view).
    pub fn shared(&self) -> bool {
        !matches!(self, Self::Memory(_))
    }
}
