//! Shared helpers: stores with faults, records, a runtime over the fake provider.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use executus::llm::fake::FakeProvider;
use executus::llm::{ChainOptions, Registry};
use executus::ports::{AuditEvent, AuditRecord, PortError, Ports};
use executus::tool::policy::Policy;
use executus::tool::{ToolError, ToolRegistry, typed};
use executus::{Identity, RunId, Runtime, RuntimeConfig};
use executus_audit::{AuditPage, AuditQuery, AuditStore, MemoryAuditStore, StoredAuditRecord};
use serde::Deserialize;

/// A record of `kind` failover with a marker in `error`, for ordering checks.
pub fn record(at_ms: u64, run_id: Option<RunId>, user: &str, tenant: &str, marker: &str) -> AuditRecord {
    AuditRecord {
        at_ms,
        run_id,
        identity: Identity::new(user, tenant),
        agent: Some("agent".into()),
        event: AuditEvent::Failover { from: "a/x".into(), to: "b/y".into(), error: marker.into() },
    }
}

/// The marker of a record made by [`record`].
pub fn marker(r: &AuditRecord) -> &str {
    match &r.event {
        AuditEvent::Failover { error, .. } => error,
        _ => "",
    }
}

/// Every page of `query` (from its own cursor on), following cursors; panics if paging loops.
pub async fn all_pages(store: &dyn AuditStore, query: AuditQuery) -> (Vec<StoredAuditRecord>, usize) {
    let mut out = Vec::new();
    let mut cursor = query.cursor;
    let mut pages = 0;
    loop {
        let AuditPage { records, next } = store.query(&query.clone().after(cursor)).await.unwrap();
        pages += 1;
        assert!(records.len() <= query.limit, "page larger than its limit");
        out.extend(records);
        assert!(pages < 10_000, "paging does not terminate");
        match next {
            Some(n) => cursor = Some(n),
            None => return (out, pages),
        }
    }
}

/// A store that waits `delay` (tokio time) in every append, then delegates.
pub struct SlowStore {
    pub inner: MemoryAuditStore,
    pub delay: Duration,
    pub appends: AtomicUsize,
}

#[async_trait]
impl AuditStore for SlowStore {
    async fn append(&self, records: &[AuditRecord]) -> Result<(), PortError> {
        tokio::time::sleep(self.delay).await;
        self.appends.fetch_add(1, Ordering::SeqCst);
        self.inner.append(records).await
    }
    async fn query(&self, query: &AuditQuery) -> Result<AuditPage, PortError> {
        self.inner.query(query).await
    }
    async fn prune(&self, before_ms: u64, max_rows: usize) -> Result<usize, PortError> {
        self.inner.prune(before_ms, max_rows).await
    }
}

/// A store whose appends wait for a permit from `gate` (one permit per append).
pub struct GatedStore {
    pub inner: MemoryAuditStore,
    pub gate: tokio::sync::Semaphore,
}

#[async_trait]
impl AuditStore for GatedStore {
    async fn append(&self, records: &[AuditRecord]) -> Result<(), PortError> {
        self.gate.acquire().await.unwrap().forget();
        self.inner.append(records).await
    }
    async fn query(&self, query: &AuditQuery) -> Result<AuditPage, PortError> {
        self.inner.query(query).await
    }
    async fn prune(&self, before_ms: u64, max_rows: usize) -> Result<usize, PortError> {
        self.inner.prune(before_ms, max_rows).await
    }
}

/// What a [`FlakyStore`] append does before delegating.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Fault {
    Backend,
    Invalid,
    Panic,
}

/// A store that fails its first `failures` appends with `fault` (all of them if `None`).
pub struct FlakyStore {
    pub inner: MemoryAuditStore,
    pub fault: Fault,
    pub failures: Option<usize>,
    pub calls: AtomicUsize,
}

impl FlakyStore {
    pub fn new(fault: Fault, failures: Option<usize>) -> Self {
        Self { inner: MemoryAuditStore::new(), fault, failures, calls: AtomicUsize::new(0) }
    }
}

#[async_trait]
impl AuditStore for FlakyStore {
    async fn append(&self, records: &[AuditRecord]) -> Result<(), PortError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if self.failures.is_none_or(|f| n < f) {
            match self.fault {
                Fault::Backend => {
                    return Err(PortError::Backend { port: "audit", message: "disk on fire".into() });
                }
                Fault::Invalid => {
                    return Err(PortError::Invalid {
                        port: "audit",
                        what: "record".into(),
                        reason: "rejected".into(),
                    });
                }
                Fault::Panic => panic!("store exploded"),
            }
        }
        self.inner.append(records).await
    }
    async fn query(&self, query: &AuditQuery) -> Result<AuditPage, PortError> {
        self.inner.query(query).await
    }
    async fn prune(&self, before_ms: u64, max_rows: usize) -> Result<usize, PortError> {
        self.inner.prune(before_ms, max_rows).await
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct TextArgs {
    pub text: String,
}

/// Tools `echo` (counts calls) and `wipe` (counts calls; the policy should block it).
pub fn tools(echoes: Arc<AtomicUsize>, wipes: Arc<AtomicUsize>) -> ToolRegistry {
    ToolRegistry::new()
        .with(
            typed("echo", "Echoes its text", move |_ctx, a: TextArgs| {
                let echoes = echoes.clone();
                async move {
                    echoes.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, ToolError>(format!("echo: {}", a.text))
                }
            })
            .arc(),
        )
        .with(
            typed("wipe", "Deletes everything", move |_ctx, _a: TextArgs| {
                let wipes = wipes.clone();
                async move {
                    wipes.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, ToolError>("wiped".to_owned())
                }
            })
            .arc(),
        )
}

/// A runtime over `fake` with few, fast chain retries, `policy`, and `ports`.
pub fn runtime(fake: &FakeProvider, tools: ToolRegistry, policy: Policy, ports: Ports) -> Runtime {
    let registry = Registry::new();
    registry.add_provider(Arc::new(fake.clone())).unwrap();
    registry.set_options(ChainOptions {
        retries: 1,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(10),
        ..ChainOptions::default()
    });
    let config = RuntimeConfig { streaming: false, ..RuntimeConfig::default() };
    Runtime::builder().registry(registry).tools(tools).policy(policy).ports(ports).config(config).build()
}
