//! [`Store`]: the one entry point over either backend, and the `Any*Store` types it hands
//! out — each one store trait, on whichever backend the URL picked. They forward every call
//! to the backend's own store ([`crate::sqlite`], `crate::postgres`), so the two never
//! differ in behaviour beyond what each backend documents.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use executus::RunId;
use executus::llm::Message;
use executus::ports::{
    AuditRecord, CheckpointStore, PortError, RunAppend, RunClaim, RunMeta, StoredRun, StoredStatus,
};
use executus_audit::{AuditPage, AuditQuery, AuditStore};
use executus_budget::{BudgetStore, ReserveOutcome, ReserveRequest, ScopeTotals, SettleRequest};
use executus_chat::{ChatHistory, ChatKey};
use executus_persona::{Persona, PersonaStore};
use executus_schedule::{JobDef, ScheduleStore};
use executus_skill::{ActiveSkill, Skill, SkillError, SkillState, SkillStore, SkillVersion};

#[cfg(feature = "postgres")]
use crate::postgres::{self, PgStore};
use crate::review_cache::{ReviewCacheEntry, ReviewCacheKey};
use crate::sqlite::{
    SqliteAuditStore, SqliteBudgetStore, SqliteChatStore, SqliteCheckpointStore, SqlitePersonaStore,
    SqliteReviewCache, SqliteScheduleStore, SqliteSkillStore, SqliteStore, StoreStats,
};
use crate::{AppendStats, PruneReport, StoreError, StoreOptions};

#[allow(unused_macros)]
/// Forwards `$body` to whichever backend `$self` wraps, binding the backend's value to `$s`.
macro_rules! forward {
    ($self:expr, $s:ident => $body:expr) => {
        match $self {
            Backend::Sqlite($s) => $body,
            #[cfg(feature = "postgres")]
            Backend::Postgres($s) => $body,
        }
    };
}

/// A value of one backend or the other.
#[derive(Debug, Clone)]
enum Backend<S, P> {
    Sqlite(S),
    #[cfg(feature = "postgres")]
    Postgres(P),
    #[cfg(not(feature = "postgres"))]
    #[allow(dead_code)]
    Never(std::convert::Infallible, std::marker::PhantomData<P>),
}

#[cfg(not(feature = "postgres"))]
macro_rules! forward_impl {
    ($self:expr, $s:ident => $body:expr) => {
        match $self {
            Backend::Sqlite($s) => $body,
            Backend::Never(never, _) => match *never {},
        }
    };
}
#[cfg(feature = "postgres")]
macro_rules! forward_impl {
    ($self:expr, $s:ident => $body:expr) => {
        forward!($self, $s => $body)
    };
}

#[cfg(feature = "postgres")]
type Pg<T> = T;
#[cfg(not(feature = "postgres"))]
type Pg<T> = std::marker::PhantomData<T>;

#[cfg(not(feature = "postgres"))]
mod absent {
    //! Stand-ins naming the PostgreSQL types when the feature is off (never constructed).
    pub type PgStore = ();
    pub type PgCheckpointStore = ();
    pub type PgPersonaStore = ();
    pub type PgSkillStore = ();
    pub type PgAuditStore = ();
    pub type PgBudgetStore = ();
    pub type PgScheduleStore = ();
    pub type PgChatStore = ();
    pub type PgReviewCache = ();
}
#[cfg(not(feature = "postgres"))]
use absent::*;
#[cfg(feature = "postgres")]
use postgres::{
    PgAuditStore, PgBudgetStore, PgCheckpointStore, PgPersonaStore, PgScheduleStore, PgSkillStore,
};
#[cfg(feature = "postgres")]
use postgres::{PgChatStore, PgReviewCache};

/// The store: one database, SQLite or PostgreSQL, and the typed stores over it.
/// `Store::open("sqlite://executus.db")` or `Store::open("postgres://user@host/db")`.
/// Cheap to clone; clones share the connections.
#[derive(Clone)]
pub struct Store {
    backend: Backend<SqliteStore, Pg<PgStore>>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend_name())
            .field("location", &self.location())
            .finish_non_exhaustive()
    }
}

impl From<SqliteStore> for Store {
    fn from(store: SqliteStore) -> Self {
        Self { backend: Backend::Sqlite(store) }
    }
}

#[cfg(feature = "postgres")]
impl From<PgStore> for Store {
    fn from(store: PgStore) -> Self {
        Self { backend: Backend::Postgres(store) }
    }
}

impl Store {
    /// Opens the store at `url`: `sqlite://path.db`, `sqlite:path.db`, `sqlite::memory:`, or
    /// (feature `postgres`) `postgres://user[:password]@host[:port]/db`.
    ///
    /// # Errors
    /// [`StoreError::InvalidUrl`] for another scheme (or a PostgreSQL URL in a build without
    /// the feature), and each backend's open errors ([`SqliteStore::open`],
    /// `postgres::PgStore::open`).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, StoreOptions::default()).await
    }

    /// [`Store::open`] with options.
    ///
    /// # Errors
    /// As [`Store::open`].
    pub async fn open_with(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            #[cfg(feature = "postgres")]
            return Ok(PgStore::open(url, options).await?.into());
            #[cfg(not(feature = "postgres"))]
            return Err(StoreError::InvalidUrl {
                url: redact(url),
                reason: "this build of executus-store has no PostgreSQL support (feature `postgres`)".into(),
            });
        }
        Ok(SqliteStore::open_with(url, options).await?.into())
    }

    /// Opens the SQLite file at `path` (see [`SqliteStore::open`]).
    ///
    /// # Errors
    /// As [`SqliteStore::open`].
    pub async fn open_path(path: impl AsRef<Path>, options: StoreOptions) -> Result<Self, StoreError> {
        Ok(SqliteStore::open_path(path, options).await?.into())
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend_name(&self) -> &'static str {
        match &self.backend {
            Backend::Sqlite(_) => "sqlite",
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => "postgres",
            #[cfg(not(feature = "postgres"))]
            Backend::Never(never, _) => match *never {},
        }
    }

    /// Where the store lives: a path, `:memory:`, or a PostgreSQL URL without its password.
    pub fn location(&self) -> &str {
        forward_impl!(&self.backend, s => s.location())
    }

    /// True for a store that lives only as long as this process (`sqlite::memory:`).
    pub fn is_memory(&self) -> bool {
        matches!(&self.backend, Backend::Sqlite(s) if s.location() == ":memory:")
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &StoreOptions {
        forward_impl!(&self.backend, s => s.options())
    }

    /// The SQLite store, when this is one.
    pub fn as_sqlite(&self) -> Option<&SqliteStore> {
        match &self.backend {
            Backend::Sqlite(s) => Some(s),
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => None,
            #[cfg(not(feature = "postgres"))]
            Backend::Never(never, _) => match *never {},
        }
    }

    /// The PostgreSQL store, when this is one.
    #[cfg(feature = "postgres")]
    pub fn as_postgres(&self) -> Option<&PgStore> {
        match &self.backend {
            Backend::Postgres(s) => Some(s),
            Backend::Sqlite(_) => None,
        }
    }

    /// The checkpoint store (`executus::ports::CheckpointStore`).
    pub fn checkpoints(&self) -> AnyCheckpointStore {
        AnyCheckpointStore(match &self.backend {
            Backend::Sqlite(s) => Backend::Sqlite(s.checkpoints()),
            #[cfg(feature = "postgres")]
            Backend::Postgres(s) => Backend::Postgres(s.checkpoints()),
            #[cfg(not(feature = "postgres"))]
            Backend::Never(never, _) => match *never {},
        })
    }

    /// The persona store (`executus_persona::PersonaStore`).
    pub fn personas(&self) -> AnyPersonaStore {
        AnyPersonaStore(match &self.backend {
            Backend::Sqlite(s) => Backend::Sqlite(s.personas()),
            #[cfg(feature = "postgres")]
            Backend::Postgres(s) => Backend::Postgres(s.personas()),
            #[cfg(not(feature = "postgres"))]
            Backend::Never(never, _) => match *never {},
        })
    }

    /// The skill store (`executus_skill::SkillStore`).
    pub fn skills(&self) -> AnySkillStore {
        AnySkillStore(match &self.backend {
            Backend::Sqlite(s) => Backend::Sqlite(s.skills()),
            #[cfg(feature = "postgres")]
            Backend::Postgres(s) => Backend::Postgres(s.skills()),
            #[cfg(not(feature = "postgres"))]
            Backend::Never(never, _) => match *never {},
        })
    }

    /// The audit store (`executus_audit::AuditStore`).
    pub fn audit(&self) -> AnyAuditStore {
        AnyAuditStore(match &self.backend {
            Backend::Sqlite(s) => Backend::Sqlite(s.audit()),
            #[cfg(feature = "postgres")]
            Backend::Postgres(s) => Backend::Postgres(s.audit()),
            #[cfg(not(feature = "postgres"))]
            Backend::Never(never, _) => match *never {},
        })
    }

    /// The budget store (`executus_budget::BudgetStore`).
    pub fn budget(&self) -> AnyBudgetStore {
        AnyBudgetStore(match &self.backend {
            Backend::Sqlite(s) => Backend::Sqlite(s.budget()),
            #[cfg(feature = "postgres")]
            Backend::Postgres(s) => Backend::Postgres(s.budget()),
            #[cfg(not(feature = "postgres"))]
            Backend::Never(never, _) => match *never {},
        })
    }

    /// The schedule store (`executus_schedule::ScheduleStore`).
    pub fn schedule(&self) -> AnyScheduleStore {
        AnyScheduleStore(match &self.backend {
            Backend::Sqlite(s) => Backend::Sqlite(s.schedule()),
            #[cfg(feature = "postgres")]
            Backend::Postgres(s) => Backend::Postgres(s.schedule()),
            #[cfg(not(feature = "postgres"))]
            Backend::Never(never, _) => match *never {},
        })
    }

    /// The chat history (`executus_chat::ChatHistory`).
    pub fn chats(&self) -> AnyChatStore {
        AnyChatStore(match &self.backend {
            Backend::Sqlite(s) => Backend::Sqlite(s.chats()),
            #[cfg(feature = "postgres")]
            Backend::Postgres(s) => Backend::Postgres(s.chats()),
            #[cfg(not(feature = "postgres"))]
            Backend::Never(never, _) => match *never {},
        })
    }

    /// The review cache of `executus-run swarm`.
    pub fn review_cache(&self) -> AnyReviewCache {
        AnyReviewCache(match &self.backend {
            Backend::Sqlite(s) => Backend::Sqlite(SqliteReviewCache::new(s.clone())),
            #[cfg(feature = "postgres")]
            Backend::Postgres(s) => Backend::Postgres(s.review_cache()),
            #[cfg(not(feature = "postgres"))]
            Backend::Never(never, _) => match *never {},
        })
    }

    /// The fleet's stores (history, bench runs, action audit, host leases) on either backend.
    ///
    /// # Errors
    /// None today; kept fallible for backends without them.
    pub fn fleet(&self) -> Result<std::sync::Arc<dyn executus_fleet::store::FleetStore>, StoreError> {
        Ok(match &self.backend {
            Backend::Sqlite(s) => std::sync::Arc::new(s.fleet()),
            #[cfg(feature = "postgres")]
            Backend::Postgres(p) => std::sync::Arc::new(p.fleet()),
            #[cfg(not(feature = "postgres"))]
            Backend::Never(never, _) => match *never {},
        })
    }

    /// The gateway's per-session guard state (`executus-run serve`) on either backend.
    ///
    /// # Errors
    /// None today; kept fallible for backends without it.
    pub fn gateway_sessions(
        &self,
    ) -> Result<std::sync::Arc<dyn executus_gateway::store::SessionStore>, StoreError> {
        Ok(match &self.backend {
            Backend::Sqlite(s) => std::sync::Arc::new(s.gateway_sessions()),
            #[cfg(feature = "postgres")]
            Backend::Postgres(p) => std::sync::Arc::new(p.gateway_sessions()),
            #[cfg(not(feature = "postgres"))]
            Backend::Never(never, _) => match *never {},
        })
    }

    /// Page accounting of a SQLite file.
    ///
    /// # Errors
    /// [`StoreError::Unsupported`] on PostgreSQL; [`StoreError::Database`].
    pub async fn stats(&self) -> Result<StoreStats, StoreError> {
        match self.as_sqlite() {
            Some(s) => s.stats().await,
            None => Err(StoreError::Unsupported {
                location: self.location().to_owned(),
                op: "page statistics",
                backend: self.backend_name(),
            }),
        }
    }

    /// SQLite: copies the WAL back into the file (see [`SqliteStore::checkpoint_wal`]);
    /// PostgreSQL: nothing to do.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn checkpoint_wal(&self) -> Result<(), StoreError> {
        match self.as_sqlite() {
            Some(s) => s.checkpoint_wal().await,
            None => Ok(()),
        }
    }

    /// Deletes finished runs last updated more than `older_than` ago, in batches.
    ///
    /// # Errors
    /// [`StoreError::Database`] or [`StoreError::Contended`]; batches already committed
    /// stay deleted.
    pub async fn prune(&self, older_than: Duration) -> Result<PruneReport, StoreError> {
        forward_impl!(&self.backend, s => s.prune(older_than).await)
    }

    /// Deletes finished runs last updated before `cutoff_ms`.
    ///
    /// # Errors
    /// As [`Store::prune`].
    pub async fn prune_finished_before(&self, cutoff_ms: u64) -> Result<PruneReport, StoreError> {
        forward_impl!(&self.backend, s => s.prune_finished_before(cutoff_ms).await)
    }

    /// Deletes audit records older than `older_than`, in batches.
    ///
    /// # Errors
    /// As [`Store::prune`].
    pub async fn prune_audit(&self, older_than: Duration) -> Result<PruneReport, StoreError> {
        forward_impl!(&self.backend, s => s.prune_audit(older_than).await)
    }

    /// Deletes audit records with `at_ms < cutoff_ms`, in batches.
    ///
    /// # Errors
    /// As [`Store::prune`].
    pub async fn prune_audit_before(&self, cutoff_ms: u64) -> Result<PruneReport, StoreError> {
        forward_impl!(&self.backend, s => s.prune_audit_before(cutoff_ms).await)
    }

    /// Every spend row `(scope, at_ms, amount)`, oldest first.
    pub(crate) async fn export_spend(&self) -> Result<Vec<(String, i64, i64)>, StoreError> {
        forward_impl!(&self.backend, s => s.export_spend().await)
    }

    /// Every watermark `(job, fire_ms)`.
    pub(crate) async fn export_watermarks(&self) -> Result<Vec<(String, i64)>, StoreError> {
        forward_impl!(&self.backend, s => s.export_watermarks().await)
    }

    /// Closes every connection (PostgreSQL: releases this process's leases first).
    pub async fn close(&self) {
        forward_impl!(&self.backend, s => s.close().await)
    }
}

/// A URL without its password (also without the `postgres` feature).
#[cfg(not(feature = "postgres"))]
fn redact(url: &str) -> String {
    match url
        .split_once("://")
        .and_then(|(scheme, rest)| rest.rsplit_once('@').map(|(_, host)| (scheme, host)))
    {
        Some((scheme, host)) => format!("{scheme}://***@{host}"),
        None => url.to_owned(),
    }
}

/// The checkpoint store on either backend.
#[derive(Debug, Clone)]
pub struct AnyCheckpointStore(Backend<SqliteCheckpointStore, Pg<PgCheckpointStore>>);

impl AnyCheckpointStore {
    /// Appends a batch in one transaction and says what it wrote.
    ///
    /// # Errors
    /// The backend's append errors.
    pub async fn append_batch(&self, batch: &[RunAppend]) -> Result<AppendStats, StoreError> {
        forward_impl!(&self.0, s => s.append_batch(batch).await)
    }

    /// Loads a run that has not finished.
    ///
    /// # Errors
    /// [`StoreError::Undecodable`], [`StoreError::Database`].
    pub async fn load_run(&self, run: RunId) -> Result<Option<StoredRun>, StoreError> {
        forward_impl!(&self.0, s => s.load_run(run).await)
    }

    /// The stored status of a run, finished or not.
    ///
    /// # Errors
    /// [`StoreError::Undecodable`], [`StoreError::Database`].
    pub async fn status(&self, run: RunId) -> Result<Option<StoredStatus>, StoreError> {
        forward_impl!(&self.0, s => s.status(run).await)
    }

    /// Marks a run finished and deletes its entries.
    ///
    /// # Errors
    /// [`StoreError::Rejected`] for an unfinished status, [`StoreError::Database`].
    pub async fn finish_run(&self, run: RunId, status: StoredStatus) -> Result<(), StoreError> {
        forward_impl!(&self.0, s => s.finish_run(run, status).await)
    }

    /// Runs still running or awaiting approval, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Undecodable`], [`StoreError::Database`].
    pub async fn interrupted(&self) -> Result<Vec<(RunMeta, StoredStatus)>, StoreError> {
        forward_impl!(&self.0, s => s.interrupted().await)
    }
}

#[async_trait]
impl CheckpointStore for AnyCheckpointStore {
    async fn append(&self, batch: &[RunAppend]) -> Result<(), PortError> {
        forward_impl!(&self.0, s => s.append(batch).await)
    }

    async fn load(&self, run: RunId) -> Result<Option<StoredRun>, PortError> {
        forward_impl!(&self.0, s => s.load(run).await)
    }

    async fn finish(&self, run: RunId, status: StoredStatus) -> Result<(), PortError> {
        forward_impl!(&self.0, s => s.finish(run, status).await)
    }

    async fn list_interrupted(&self) -> Result<Vec<(RunMeta, StoredStatus)>, PortError> {
        forward_impl!(&self.0, s => s.list_interrupted().await)
    }

    async fn claim(&self, run: RunId) -> Result<Option<RunClaim>, PortError> {
        forward_impl!(&self.0, s => s.claim(run).await)
    }
}

/// The persona store on either backend.
#[derive(Debug, Clone)]
pub struct AnyPersonaStore(Backend<SqlitePersonaStore, Pg<PgPersonaStore>>);

impl AnyPersonaStore {
    /// Number of stored personas.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn count(&self) -> Result<u64, StoreError> {
        forward_impl!(&self.0, s => s.count().await)
    }
}

#[async_trait]
impl PersonaStore for AnyPersonaStore {
    async fn get(&self, name: &str) -> Result<Option<Persona>, PortError> {
        forward_impl!(&self.0, s => s.get(name).await)
    }

    async fn list(&self) -> Result<Vec<String>, PortError> {
        forward_impl!(&self.0, s => s.list().await)
    }

    async fn put(&self, persona: Persona) -> Result<(), PortError> {
        forward_impl!(&self.0, s => s.put(persona).await)
    }

    async fn put_all(&self, personas: Vec<Persona>) -> Result<(), PortError> {
        forward_impl!(&self.0, s => s.put_all(personas).await)
    }

    async fn delete(&self, name: &str) -> Result<bool, PortError> {
        forward_impl!(&self.0, s => s.delete(name).await)
    }
}

/// The skill store on either backend.
#[derive(Debug, Clone)]
pub struct AnySkillStore(Backend<SqliteSkillStore, Pg<PgSkillStore>>);

#[async_trait]
impl SkillStore for AnySkillStore {
    async fn create(&self, first: SkillVersion) -> Result<Skill, SkillError> {
        forward_impl!(&self.0, s => s.create(first).await)
    }

    async fn put_version(&self, version: SkillVersion) -> Result<Skill, SkillError> {
        forward_impl!(&self.0, s => s.put_version(version).await)
    }

    async fn get(&self, name: &str) -> Result<Option<Skill>, SkillError> {
        forward_impl!(&self.0, s => s.get(name).await)
    }

    async fn list(&self) -> Result<Vec<Skill>, SkillError> {
        forward_impl!(&self.0, s => s.list().await)
    }

    async fn get_version(&self, name: &str, version: u32) -> Result<Option<SkillVersion>, SkillError> {
        forward_impl!(&self.0, s => s.get_version(name, version).await)
    }

    async fn list_versions(&self, name: &str) -> Result<Vec<SkillVersion>, SkillError> {
        forward_impl!(&self.0, s => s.list_versions(name).await)
    }

    async fn set_state(&self, name: &str, to: SkillState, at_ms: u64) -> Result<Skill, SkillError> {
        forward_impl!(&self.0, s => s.set_state(name, to, at_ms).await)
    }

    async fn set_active_version(&self, name: &str, version: u32, at_ms: u64) -> Result<Skill, SkillError> {
        forward_impl!(&self.0, s => s.set_active_version(name, version, at_ms).await)
    }

    async fn active(&self, name: &str) -> Result<Option<ActiveSkill>, SkillError> {
        forward_impl!(&self.0, s => s.active(name).await)
    }
}

/// The audit store on either backend.
#[derive(Debug, Clone)]
pub struct AnyAuditStore(Backend<SqliteAuditStore, Pg<PgAuditStore>>);

impl AnyAuditStore {
    /// Appends records in one transaction.
    ///
    /// # Errors
    /// [`StoreError::Rejected`], [`StoreError::Database`].
    pub async fn append_records(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        forward_impl!(&self.0, s => s.append_records(records).await)
    }

    /// One page of the records matching `query`.
    ///
    /// # Errors
    /// [`StoreError::Rejected`], [`StoreError::Undecodable`], [`StoreError::Database`].
    pub async fn query_page(&self, query: &AuditQuery) -> Result<AuditPage, StoreError> {
        forward_impl!(&self.0, s => s.query_page(query).await)
    }

    /// Deletes up to `max_rows` records older than `before_ms`, oldest ids first.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn prune_before(&self, before_ms: u64, max_rows: usize) -> Result<u64, StoreError> {
        forward_impl!(&self.0, s => s.prune_before(before_ms, max_rows).await)
    }

    /// The SQLite audit store (for [`SqliteAuditStore::explain`]), when this is one.
    pub fn as_sqlite(&self) -> Option<&SqliteAuditStore> {
        match &self.0 {
            Backend::Sqlite(s) => Some(s),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }
}

#[async_trait]
impl AuditStore for AnyAuditStore {
    async fn append(&self, records: &[AuditRecord]) -> Result<(), PortError> {
        forward_impl!(&self.0, s => s.append(records).await)
    }

    async fn query(&self, query: &AuditQuery) -> Result<AuditPage, PortError> {
        forward_impl!(&self.0, s => s.query(query).await)
    }

    async fn prune(&self, before_ms: u64, max_rows: usize) -> Result<usize, PortError> {
        forward_impl!(&self.0, s => s.prune(before_ms, max_rows).await)
    }
}

/// The budget store on either backend.
#[derive(Debug, Clone)]
pub struct AnyBudgetStore(Backend<SqliteBudgetStore, Pg<PgBudgetStore>>);

impl AnyBudgetStore {
    /// Reservations stored (live, or expired and not yet deleted).
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn reservation_count(&self) -> Result<u64, StoreError> {
        forward_impl!(&self.0, s => s.reservation_count().await)
    }

    /// Spend rows stored, over all scopes.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn spend_row_count(&self) -> Result<u64, StoreError> {
        forward_impl!(&self.0, s => s.spend_row_count().await)
    }
}

#[async_trait]
impl BudgetStore for AnyBudgetStore {
    async fn try_reserve(&self, request: &ReserveRequest) -> Result<ReserveOutcome, PortError> {
        forward_impl!(&self.0, s => s.try_reserve(request).await)
    }

    async fn settle(&self, request: &SettleRequest) -> Result<bool, PortError> {
        forward_impl!(&self.0, s => s.settle(request).await)
    }

    async fn spent(&self, scope: &str, since_ms: u64, now_ms: u64) -> Result<ScopeTotals, PortError> {
        forward_impl!(&self.0, s => s.spent(scope, since_ms, now_ms).await)
    }

    async fn expire(&self, now_ms: u64) -> Result<u64, PortError> {
        forward_impl!(&self.0, s => s.expire(now_ms).await)
    }

    async fn prune(&self, before_ms: u64) -> Result<u64, PortError> {
        forward_impl!(&self.0, s => BudgetStore::prune(s, before_ms).await)
    }
}

/// The schedule store on either backend.
#[derive(Debug, Clone)]
pub struct AnyScheduleStore(Backend<SqliteScheduleStore, Pg<PgScheduleStore>>);

#[async_trait]
impl ScheduleStore for AnyScheduleStore {
    async fn watermark(&self, job: &str) -> Result<Option<DateTime<Utc>>, PortError> {
        forward_impl!(&self.0, s => s.watermark(job).await)
    }

    async fn init_watermark(&self, job: &str, at: DateTime<Utc>) -> Result<DateTime<Utc>, PortError> {
        forward_impl!(&self.0, s => s.init_watermark(job, at).await)
    }

    async fn advance(&self, job: &str, fire: DateTime<Utc>) -> Result<bool, PortError> {
        forward_impl!(&self.0, s => s.advance(job, fire).await)
    }

    async fn put_job(&self, job: &JobDef) -> Result<(), PortError> {
        forward_impl!(&self.0, s => s.put_job(job).await)
    }

    async fn delete_job(&self, id: &str) -> Result<bool, PortError> {
        forward_impl!(&self.0, s => s.delete_job(id).await)
    }

    async fn jobs(&self) -> Result<Vec<JobDef>, PortError> {
        forward_impl!(&self.0, s => s.jobs().await)
    }
}

/// The chat history on either backend.
#[derive(Debug, Clone)]
pub struct AnyChatStore(Backend<SqliteChatStore, Pg<PgChatStore>>);

impl AnyChatStore {
    /// Every conversation that holds a message, in key order.
    ///
    /// # Errors
    /// [`StoreError`] naming the operation and the store.
    pub async fn conversations(&self) -> Result<Vec<ChatKey>, StoreError> {
        forward_impl!(&self.0, s => s.conversations().await)
    }
}

#[async_trait]
impl ChatHistory for AnyChatStore {
    async fn load(&self, key: &ChatKey) -> Result<Vec<Message>, PortError> {
        forward_impl!(&self.0, s => s.load(key).await)
    }

    async fn append(&self, key: &ChatKey, messages: &[Message]) -> Result<(), PortError> {
        forward_impl!(&self.0, s => s.append(key, messages).await)
    }

    async fn reset(&self, key: &ChatKey) -> Result<usize, PortError> {
        forward_impl!(&self.0, s => s.reset(key).await)
    }
}

/// The review cache on either backend (see [`SqliteReviewCache`] for the guarantees).
#[derive(Debug, Clone)]
pub struct AnyReviewCache(Backend<SqliteReviewCache, Pg<PgReviewCache>>);

impl AnyReviewCache {
    /// `"sqlite"` or `"postgres"`: the backend, for error messages.
    pub fn backend_name(&self) -> &'static str {
        match &self.0 {
            Backend::Sqlite(_) => "sqlite",
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => "postgres",
            #[cfg(not(feature = "postgres"))]
            Backend::Never(never, _) => match *never {},
        }
    }

    /// The answer stored under `key`, marked used now; `None` on a miss.
    ///
    /// # Errors
    /// [`StoreError`] naming the operation and the store.
    pub async fn get(&self, key: &ReviewCacheKey) -> Result<Option<String>, StoreError> {
        forward_impl!(&self.0, s => s.get(key).await)
    }

    /// Stores `cell` under `key`, replacing what was there.
    ///
    /// # Errors
    /// [`StoreError`] naming the operation and the store.
    pub async fn put(&self, key: &ReviewCacheKey, cell: &str) -> Result<(), StoreError> {
        forward_impl!(&self.0, s => s.put(key, cell).await)
    }

    /// Up to `limit` answers stored under keys after `after` (all when `None`), in key order,
    /// with their times: a page of the cache.
    ///
    /// # Errors
    /// [`StoreError`] naming the operation and the store.
    pub async fn entries(
        &self,
        after: Option<&ReviewCacheKey>,
        limit: u32,
    ) -> Result<Vec<ReviewCacheEntry>, StoreError> {
        forward_impl!(&self.0, s => s.entries(after, limit).await)
    }

    /// Stores `entry` with its own times (replacing what was under its key).
    ///
    /// # Errors
    /// [`StoreError`] naming the operation and the store.
    pub async fn put_entry(&self, entry: &ReviewCacheEntry) -> Result<(), StoreError> {
        forward_impl!(&self.0, s => s.put_entry(entry).await)
    }

    /// Deletes the answers not used for longer than `unused_for`; returns how many.
    ///
    /// # Errors
    /// [`StoreError`] naming the operation and the store.
    pub async fn prune(&self, unused_for: Duration) -> Result<u64, StoreError> {
        forward_impl!(&self.0, s => s.prune(unused_for).await)
    }

    /// Answers stored.
    ///
    /// # Errors
    /// [`StoreError`] naming the operation and the store.
    pub async fn count(&self) -> Result<u64, StoreError> {
        forward_impl!(&self.0, s => s.count().await)
    }
}
