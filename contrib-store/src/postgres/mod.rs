//! The PostgreSQL backend: every store trait on one PostgreSQL database, plus what only a
//! shared server makes possible — run leases held across machines ([`lease`]) and a run
//! queue that worker processes share ([`queue`], driven by [`crate::worker`]).
//!
//! [`PgStore::open`] connects a pool (default 8 connections), creates the schema `executus`
//! if missing (everything the store writes lives there, so it can share a database with other
//! programs), refuses a schema that holds tables it did not create, and applies the embedded
//! migrations of `contrib-store/migrations/postgres/` (sqlx serialises concurrent migrators
//! with an advisory lock, so N workers starting at once migrate once).
//!
//! Every connection sets `search_path = executus`, `application_name = executus` and
//! `client_connection_check_interval` ([`crate::StoreOptions::connection_check_interval`]):
//! the server checks, while a statement runs, that its client is still there, so a worker
//! killed in the middle of a long statement has its locks released within that interval
//! instead of when the statement would have ended.
//!
//! Guarantees: the same as the SQLite stores' (each store module says which), with
//! PostgreSQL's transactions instead of SQLite's single writer: where a method must read
//! and then write atomically (a budget reservation against a cap, a skill version number, an
//! audit id order), it takes a transaction-level advisory lock on what it decides about, so
//! concurrent writers on any number of machines serialise on exactly that and nothing else.
//! Serialization failures and deadlocks are retried ([`crate::StoreOptions::write_attempts`]).
//!
//! What it does not do: TLS (sqlx is built without a TLS stack here: use it on a private
//! network, a loopback tunnel or a Unix socket); it never drops or alters a table it did not
//! create.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, Postgres};
use sqlx::{ConnectOptions, Connection as _, Transaction};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use executus::RunId;

use crate::PruneReport;
use crate::error::StoreError;
use crate::options::StoreOptions;

pub mod audit;
pub mod budget;
pub mod chat;
pub mod checkpoint;
pub mod fleet;
pub mod gateway;
pub mod lease;
pub mod persona;
pub mod queue;
pub mod review_cache;
pub mod schedule;
pub mod skill;

pub use audit::PgAuditStore;
pub use budget::PgBudgetStore;
pub use chat::PgChatStore;
pub use checkpoint::PgCheckpointStore;
pub use fleet::PgFleetStore;
pub use gateway::PgSessionStore;
pub use persona::PgPersonaStore;
pub use queue::{PgRunQueue, QueueEntry, QueueState, QueuedRequest};
pub use review_cache::PgReviewCache;
pub use schedule::PgScheduleStore;
pub use skill::PgSkillStore;

/// The schema every table of the store lives in.
pub const SCHEMA: &str = "executus";

/// The embedded schema migrations (`contrib-store/migrations/postgres/`).
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a caller may wait for a pooled connection before the store reports it.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(60);

/// Key classes of the transaction-level advisory locks the store takes (the first argument
/// of `pg_advisory_xact_lock(int, int)`), so they never collide with each other.
pub(crate) mod lock_class {
    /// A budget scope (`hashtext(scope)`).
    pub const BUDGET_SCOPE: i32 = 0x4558_0001;
    /// The audit trail's id order (one key).
    pub const AUDIT_APPEND: i32 = 0x4558_0002;
    /// A tenant's share of the run queue (`hashtext(tenant)`).
    pub const QUEUE_TENANT: i32 = 0x4558_0003;
    /// A conversation (`hashtext(tenant, user, persona)`).
    pub const CHAT: i32 = 0x4558_0004;
}

/// The store on one PostgreSQL database. Cheap to clone; clones share the pool and the lease
/// connection.
#[derive(Clone)]
pub struct PgStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// The URL without its password.
    location: String,
    pool: PgPool,
    connect: PgConnectOptions,
    options: StoreOptions,
    owner: String,
    leases: OnceCell<lease::Leases>,
    /// Cancelled when the lease connection is lost (see [`PgStore::lease_lost`]).
    lost: CancellationToken,
    /// Leases a worker took when it picked runs from the queue, handed to the runtime's
    /// claim of the same run (see [`PgCheckpointStore::claim_run`]).
    reserved: std::sync::Mutex<HashMap<RunId, lease::LeaseGuard>>,
    /// The `LISTEN` connection, opened on first use and shared.
    wakeups: OnceCell<Arc<queue::Wakeups>>,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("location", &self.inner.location)
            .field("owner", &self.inner.owner)
            .finish_non_exhaustive()
    }
}

/// `postgres://user:secret@host/db` as `postgres://user@host/db` (a password never reaches a
/// log line or an error).
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => format!("{}@{host}", userinfo.split_once(':').map_or(userinfo, |(u, _)| u)),
        None => authority.to_owned(),
    };
    // Query parameters may carry a password too (`?password=`).
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let kept: Vec<&str> =
                query.split('&').filter(|kv| !kv.to_ascii_lowercase().starts_with("password=")).collect();
            if kept.is_empty() { path.to_owned() } else { format!("{path}?{}", kept.join("&")) }
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// True for a URL this backend opens (`postgres://` or `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user[:password]@host[:port]/db`, any
    /// parameter libpq-style URLs take), creates or checks the `executus` schema and applies
    /// the migrations.
    ///
    /// # Errors
    /// [`StoreError::InvalidUrl`] (password redacted), [`StoreError::Database`] naming the
    /// server when it cannot be reached, [`StoreError::ForeignSchema`] when the schema holds
    /// another program's tables, [`StoreError::NewerSchema`], [`StoreError::Migration`].
    pub async fn open(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        let location = redact(url);
        let invalid = |reason: String| StoreError::InvalidUrl { url: location.clone(), reason };
        if !is_postgres_url(url) {
            return Err(invalid("the scheme must be postgres:// or postgresql://".into()));
        }
        let check_ms = options.connection_check_interval.as_millis().max(100);
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| invalid(redact(&e.to_string())))?
            .application_name("executus")
            .options([
                ("search_path", SCHEMA.to_owned()),
                ("client_connection_check_interval", format!("{check_ms}ms")),
            ])
            .disable_statement_logging();
        // One plain connection first: a server that is not there is an error at once (the
        // pool would keep retrying until its acquire timeout).
        let first = PgConnection::connect_with(&connect).await.map_err(|source| StoreError::Database {
            location: location.clone(),
            op: "connect",
            source,
        })?;
        let _ = first.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(options.pg_connections.max(2))
            .min_connections(0)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(connect.clone())
            .await
            .map_err(|source| StoreError::Database { location: location.clone(), op: "connect", source })?;
        let owner = options.owner.clone().unwrap_or_else(default_owner);
        let store = Self {
            inner: Arc::new(Inner {
                location,
                pool,
                connect,
                options,
                owner,
                leases: OnceCell::new(),
                lost: CancellationToken::new(),
                reserved: std::sync::Mutex::new(HashMap::new()),
                wakeups: OnceCell::new(),
            }),
        };
        store.initialise().await?;
        Ok(store)
    }

    async fn initialise(&self) -> Result<(), StoreError> {
        let location = self.inner.location.clone();
        // Two processes creating the schema at once: the loser sees a unique violation and,
        // on retry, the schema.
        let max = self.inner.options.write_attempts.max(1);
        let mut tries = 0;
        loop {
            tries += 1;
            match sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
                .execute(&self.inner.pool)
                .await
            {
                Ok(_) => break,
                Err(e) if (is_retryable(&e) || is_unique_violation(&e)) && tries < max => {
                    tokio::time::sleep(Duration::from_millis(20 * u64::from(tries))).await;
                }
                Err(source) => return Err(StoreError::Database { location, op: "create schema", source }),
            }
        }
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
        )
        .bind(SCHEMA)
        .fetch_all(&self.inner.pool)
        .await
        .map_err(|e| self.db("inspect schema", e))?;
        if !tables.is_empty() {
            let ours = tables.iter().any(|t| t == "executus_meta")
                && sqlx::query_scalar::<_, String>("SELECT value FROM executus_meta WHERE key = 'owner'")
                    .fetch_optional(&self.inner.pool)
                    .await
                    .map_err(|e| self.db("inspect schema", e))?
                    .as_deref()
                    == Some("executus-store");
            if !ours {
                return Err(StoreError::ForeignSchema { location, schema: SCHEMA, tables });
            }
        }
        match MIGRATOR.run(&self.inner.pool).await {
            Ok(()) => Ok(()),
            Err(MigrateError::VersionMissing(version)) => Err(StoreError::NewerSchema { location, version }),
            Err(source) => Err(StoreError::Migration { location, source }),
        }
    }

    /// Where the store lives: the URL with its password removed.
    pub fn location(&self) -> &str {
        &self.inner.location
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.inner.options
    }

    /// Who this process is in lease rows.
    pub fn owner(&self) -> &str {
        &self.inner.owner
    }

    /// The checkpoint store (`executus::ports::CheckpointStore`, with claims as leases).
    pub fn checkpoints(&self) -> PgCheckpointStore {
        PgCheckpointStore::new(self.clone())
    }

    /// The persona store.
    pub fn personas(&self) -> PgPersonaStore {
        PgPersonaStore::new(self.clone())
    }

    /// The skill store.
    pub fn skills(&self) -> PgSkillStore {
        PgSkillStore::new(self.clone())
    }

    /// The audit store.
    pub fn audit(&self) -> PgAuditStore {
        PgAuditStore::new(self.clone())
    }

    /// The budget store.
    pub fn budget(&self) -> PgBudgetStore {
        PgBudgetStore::new(self.clone())
    }

    /// The schedule store.
    pub fn schedule(&self) -> PgScheduleStore {
        PgScheduleStore::new(self.clone())
    }

    /// The chat history (`executus_chat::ChatHistory`).
    pub fn chats(&self) -> PgChatStore {
        PgChatStore::new(self.clone())
    }

    /// The gateway's per-session guard state (`executus-run serve`).
    pub fn gateway_sessions(&self) -> PgSessionStore {
        PgSessionStore::new(self.clone())
    }

    /// The review cache of `executus-run swarm`.
    pub fn review_cache(&self) -> PgReviewCache {
        PgReviewCache::new(self.clone())
    }

    /// The run queue workers share.
    pub fn queue(&self) -> PgRunQueue {
        PgRunQueue::new(self.clone())
    }

    /// Wake-ups from `LISTEN` (`executus_queue`, `executus_done`) on a connection of their
    /// own, opened on first use and shared by every caller.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the listening connection cannot be opened.
    pub async fn wakeups(&self) -> Result<Arc<queue::Wakeups>, StoreError> {
        self.inner
            .wakeups
            .get_or_try_init(|| async { self.queue().listen().await.map(Arc::new) })
            .await
            .cloned()
    }

    /// Cancelled when this store's lease connection is lost (the server restarted, the
    /// network broke, a heartbeat could not be written for half the lease expiry). Every run
    /// this process holds a claim on must then stop at once: its lease is about to expire
    /// and another worker will take it over. `executus-run worker` exits when it fires.
    pub fn lease_lost(&self) -> CancellationToken {
        self.inner.lost.clone()
    }

    /// The lease keeper, started on first use.
    pub(crate) async fn leases(&self) -> Result<&lease::Leases, StoreError> {
        self.inner
            .leases
            .get_or_try_init(|| async {
                lease::Leases::start(
                    &self.inner.connect,
                    self.inner.location.clone(),
                    self.inner.owner.clone(),
                    self.inner.options.lease_expiry,
                    self.inner.lost.clone(),
                )
                .await
            })
            .await
    }

    /// Holds lease releases until [`PgStore::release_all`] (a worker shutting down: the runs
    /// it interrupts may still write their last checkpoint after their claim is dropped, so
    /// nobody may take them over before that is done).
    pub fn defer_releases(&self) {
        if let Some(leases) = self.inner.leases.get() {
            leases.defer_releases();
        }
    }

    /// Keeps the lease of `run` after its claim is dropped, until [`PgStore::outcome_recorded`]
    /// (a worker: the run's outcome goes into the queue before anyone may see the run
    /// unleased).
    pub(crate) fn hold_lease(&self, run: RunId) {
        if let Some(leases) = self.inner.leases.get() {
            leases.hold(run);
        }
    }

    /// The outcome of `run` is in the queue (or will never be): its held lease goes.
    pub(crate) fn outcome_recorded(&self, run: RunId) {
        if let Some(leases) = self.inner.leases.get() {
            leases.recorded(run);
        }
    }

    /// Releases every lease this process holds at once (rows deleted, advisory locks
    /// unlocked, other workers notified), so they can take over without waiting for expiry.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the lease connection fails (the leases then expire on
    /// their own).
    pub async fn release_all(&self) -> Result<usize, StoreError> {
        match self.inner.leases.get() {
            Some(leases) => leases.release_all().await,
            None => Ok(0),
        }
    }

    /// Deletes finished runs last updated more than `older_than` ago (by the store's
    /// clock), in batches of [`StoreOptions::prune_batch`].
    ///
    /// # Errors
    /// [`StoreError::Database`]; batches already committed stay deleted.
    pub async fn prune(&self, older_than: Duration) -> Result<PruneReport, StoreError> {
        let older_than_ms = u64::try_from(older_than.as_millis()).unwrap_or(u64::MAX);
        self.prune_finished_before(self.now_ms().saturating_sub(older_than_ms)).await
    }

    /// Deletes finished runs (and their queue rows) last updated before `cutoff_ms`.
    ///
    /// # Errors
    /// As [`PgStore::prune`].
    pub async fn prune_finished_before(&self, cutoff_ms: u64) -> Result<PruneReport, StoreError> {
        const OP: &str = "prune finished runs";
        let cutoff = i64::try_from(cutoff_ms).unwrap_or(i64::MAX);
        let batch = i64::from(self.inner.options.prune_batch.max(1));
        let mut report = PruneReport::default();
        loop {
            let deleted = self
                .write(OP, || async move {
                    let mut tx = self.begin(OP).await?;
                    let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
                        "DELETE FROM checkpoint_runs WHERE id IN ( \
                             SELECT id FROM checkpoint_runs \
                             WHERE status IN ('completed', 'failed') AND updated_ms < $1 \
                             ORDER BY updated_ms LIMIT $2 FOR UPDATE SKIP LOCKED) \
                         RETURNING run_id",
                    )
                    .bind(cutoff)
                    .bind(batch)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(|e| self.db(OP, e))?;
                    sqlx::query(
                        "DELETE FROM run_queue WHERE run_id = ANY($1) AND state IN ('finished', 'done')",
                    )
                    .bind(&ids)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.db(OP, e))?;
                    tx.commit().await.map_err(|e| self.db(OP, e))?;
                    Ok(ids.len() as u64)
                })
                .await?;
            report.batches += 1;
            report.finished_runs += deleted;
            if deleted < batch as u64 {
                break;
            }
        }
        // Queue rows of runs that ended without ever writing a checkpoint (refused at start).
        sqlx::query(
            "DELETE FROM run_queue WHERE state = 'done' AND finished_ms < $1 \
             AND NOT EXISTS (SELECT 1 FROM checkpoint_runs c WHERE c.run_id = run_queue.run_id)",
        )
        .bind(cutoff)
        .execute(&self.inner.pool)
        .await
        .map_err(|e| self.db(OP, e))?;
        Ok(report)
    }

    /// Deletes audit records whose `at_ms` is older than `older_than`, in batches.
    ///
    /// # Errors
    /// [`StoreError::Database`]; batches already committed stay deleted.
    pub async fn prune_audit(&self, older_than: Duration) -> Result<PruneReport, StoreError> {
        let older_than_ms = u64::try_from(older_than.as_millis()).unwrap_or(u64::MAX);
        self.prune_audit_before(self.now_ms().saturating_sub(older_than_ms)).await
    }

    /// Deletes audit records with `at_ms < cutoff_ms`, in batches, oldest ids first.
    ///
    /// # Errors
    /// As [`PgStore::prune_audit`].
    pub async fn prune_audit_before(&self, cutoff_ms: u64) -> Result<PruneReport, StoreError> {
        let batch = self.inner.options.prune_batch.max(1) as usize;
        let audit = self.audit();
        let mut report = PruneReport::default();
        loop {
            let deleted = audit.prune_before(cutoff_ms, batch).await?;
            report.batches += 1;
            report.audit_records += deleted;
            if deleted < batch as u64 {
                return Ok(report);
            }
        }
    }

    /// Releases the leases still held, then closes the lease connection and the pool.
    pub async fn close(&self) {
        if let Some(leases) = self.inner.leases.get() {
            let _ = leases.release_all().await;
            leases.close().await;
        }
        self.inner.pool.close().await;
    }

    /// Keeps a lease taken by a queue pick until the runtime claims the run.
    pub(crate) fn reserve(&self, guard: lease::LeaseGuard) {
        let mut reserved = self.inner.reserved.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        reserved.insert(guard.run(), guard);
    }

    /// The lease a queue pick reserved for `run`, if any.
    pub(crate) fn take_reserved(&self, run: RunId) -> Option<lease::LeaseGuard> {
        let mut reserved = self.inner.reserved.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        reserved.remove(&run)
    }

    /// Every spend row `(scope, at_ms, amount)`, oldest first (for [`crate::copy`]).
    pub(crate) async fn export_spend(&self) -> Result<Vec<(String, i64, i64)>, StoreError> {
        sqlx::query_as("SELECT scope, at_ms, amount FROM budget_spend ORDER BY at_ms, id")
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| self.db("export spend", e))
    }

    /// Every watermark `(job, fire_ms)` (for [`crate::copy`]).
    pub(crate) async fn export_watermarks(&self) -> Result<Vec<(String, i64)>, StoreError> {
        sqlx::query_as("SELECT job, fire_ms FROM schedule_watermarks ORDER BY job")
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| self.db("export watermarks", e))
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    pub(crate) fn connect_options(&self) -> &PgConnectOptions {
        &self.inner.connect
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.inner.options.clock.now_ms()
    }

    pub(crate) fn db(&self, op: &'static str, source: sqlx::Error) -> StoreError {
        StoreError::Database { location: self.inner.location.clone(), op, source }
    }

    pub(crate) fn rejected(&self, what: impl Into<String>, reason: impl Into<String>) -> StoreError {
        StoreError::Rejected {
            location: self.inner.location.clone(),
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn undecodable(&self, message: impl Into<String>) -> StoreError {
        StoreError::Undecodable { location: self.inner.location.clone(), message: message.into() }
    }

    pub(crate) async fn begin(&self, op: &'static str) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.inner.pool.begin().await.map_err(|e| self.db(op, e))
    }

    /// Runs `attempt` (which begins, works and commits a transaction), retrying the whole of
    /// it on a serialization failure or a deadlock, with jittered backoff.
    pub(crate) async fn write<T, F, Fut>(&self, op: &'static str, mut attempt: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let max = self.inner.options.write_attempts.max(1);
        let mut tries = 0;
        loop {
            tries += 1;
            match attempt().await {
                Err(StoreError::Database { source, .. }) if is_retryable(&source) && tries < max => {
                    tracing::debug!(target: "executus_store", op, attempt = tries, "serialization failure; retrying");
                    let base = 10u64.saturating_mul(1 << tries.min(6)).min(500);
                    tokio::time::sleep(Duration::from_millis(base / 2 + fastrand::u64(0..=base / 2))).await;
                }
                Err(StoreError::Database { source, .. }) if is_retryable(&source) => {
                    return Err(StoreError::Contended {
                        location: self.inner.location.clone(),
                        op,
                        attempts: tries,
                    });
                }
                other => return other,
            }
        }
    }
}

/// The SQLSTATE of a database error.
pub(crate) fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// Serialization failure (40001) or deadlock (40P01): the transaction may simply be retried.
pub(crate) fn is_retryable(e: &sqlx::Error) -> bool {
    matches!(sqlstate(e).as_deref(), Some("40001" | "40P01"))
}

/// A unique violation (23505) or a duplicate schema (42P06).
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(sqlstate(e).as_deref(), Some("23505" | "42P06"))
}

/// `<host>:<pid>:<8 hex digits>`.
fn default_owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "host".to_owned());
    format!("{host}:{}:{:08x}", std::process::id(), fastrand::u32(..))
}

#[cfg(test)]
mod tests;
