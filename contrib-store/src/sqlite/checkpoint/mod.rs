//! [`SqliteCheckpointStore`]: the core's `CheckpointStore` port on SQLite.
//!
//! Layout (migration `0001_checkpoints.sql`): one `checkpoint_runs` row per run (header,
//! status, created/updated times, the next expected sequence number) and one
//! `checkpoint_entries` row per fact the core appended (run, seq, encoding, payload). A save
//! inserts only the new entries, so a run's storage grows with what is new, never with a
//! copy of the transcript per step.
//!
//! Guarantees:
//! - `append` is one transaction for the whole batch (the core's group commit): after a
//!   crash either every run's entries of the batch are there or none are.
//! - An entry whose `seq` is already stored is ignored (appends are idempotent); an entry
//!   past the next expected `seq` is a gap and rejects the batch (the log must replay).
//! - Payloads come back byte for byte as the core wrote them. The store may compress them
//!   (per row, recorded in `encoding`); it never parses them — the core's `decode` reports
//!   an unknown payload version by name.
//! - `finish` marks the run completed or failed and deletes its entries in one
//!   transaction; a finished run then loads as `None` (its log is gone, as with the core's
//!   in-memory store) and is deleted by retention ([`crate::SqliteStore::prune`]) later. Appending
//!   to a finished run starts it afresh (a host reusing a run id).
//! - `list_interrupted` (running and awaiting-approval runs, oldest first) and `load` are
//!   served by indexes (checked with `EXPLAIN QUERY PLAN` in the tests).
//! - `claim` makes one process at a time drive a run: a lock file per claimed run in the
//!   folder `<database>.claims/` beside the database, released by the OS when its holder
//!   exits (see the `claim` module's notes).

use async_trait::async_trait;
use executus::ports::{
    CheckpointStore, Entry, PortError, RunAppend, RunClaim, RunMeta, StoredRun, StoredStatus,
};
use executus::{Identity, RunId};
use sqlx::Row;

use crate::error::StoreError;
use crate::sqlite::SqliteStore;

mod append;
mod claim;

pub use crate::codec::{AppendStats, Encoding};

const PORT: &str = "checkpoint";

/// The checkpoint store. Cheap to clone (shares the [`SqliteStore`]).
#[derive(Debug, Clone)]
pub struct SqliteCheckpointStore {
    store: SqliteStore,
}

impl SqliteCheckpointStore {
    /// The checkpoint store over `store` (also [`SqliteStore::checkpoints`]).
    pub fn new(store: SqliteStore) -> Self {
        Self { store }
    }

    /// The underlying store.
    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    /// Appends a batch in one transaction (see the module docs) and says what it wrote.
    ///
    /// # Errors
    /// [`StoreError::Rejected`] for a sequence gap or a number SQLite cannot hold (nothing
    /// of the batch is written), [`StoreError::Database`], [`StoreError::Contended`].
    pub async fn append_batch(&self, batch: &[RunAppend]) -> Result<AppendStats, StoreError> {
        const OP: &str = "checkpoint append";
        let store = &self.store;
        // Compress before taking the write lock: the lock is held only for SQLite's work.
        let deflated = crate::codec::deflate_batch(batch, store.options().compress).await;
        let deflated = &deflated;
        store
            .write(OP, || async move {
                let now = i64_of(store, "time", store.now_ms())?;
                let mut tx = store.begin_write(OP).await?;
                let mut stats = AppendStats { runs: batch.len(), ..AppendStats::default() };
                append::write(store, &mut tx, batch, deflated, now, &mut stats).await?;
                // Observable point for tests and operators: the batch is staged, not yet
                // durable. (The crash test kills its child exactly here.)
                tracing::debug!(
                    target: "executus_store::checkpoint",
                    runs = stats.runs, entries = stats.inserted, bytes = stats.stored_bytes,
                    "checkpoint batch staged"
                );
                tx.commit().await.map_err(|e| store.db(OP, e))?;
                tracing::debug!(
                    target: "executus_store::checkpoint",
                    runs = stats.runs, entries = stats.inserted, bytes = stats.stored_bytes,
                    "checkpoint batch committed"
                );
                Ok(stats)
            })
            .await
    }

    /// Loads a run that has not finished (`None` if unknown or finished).
    ///
    /// # Errors
    /// [`StoreError::Undecodable`] for a row this build cannot read, [`StoreError::Database`].
    pub async fn load_run(&self, run: RunId) -> Result<Option<StoredRun>, StoreError> {
        const OP: &str = "checkpoint load";
        let store = &self.store;
        store
            .read(OP, || async move {
                let mut tx = store.begin_read(OP).await?;
                let row = sqlx::query(LOAD_RUN)
                    .bind(run.to_string())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| store.db(OP, e))?;
                let Some(row) = row else { return Ok(None) };
                let (meta, status) = decode_run(store, &row, 1)?;
                if !status.is_interrupted() {
                    return Ok(None);
                }
                let id: i64 = row.try_get(0).map_err(|e| store.db(OP, e))?;
                let rows = sqlx::query(LOAD_ENTRIES)
                    .bind(id)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(|e| store.db(OP, e))?;
                tx.commit().await.map_err(|e| store.db(OP, e))?;
                let mut entries = Vec::with_capacity(rows.len());
                for r in &rows {
                    let seq: i64 = r.try_get(0).map_err(|e| store.db(OP, e))?;
                    let encoding: i64 = r.try_get(1).map_err(|e| store.db(OP, e))?;
                    let stored: Vec<u8> = r.try_get(2).map_err(|e| store.db(OP, e))?;
                    let payload = crate::codec::decode(encoding, &stored)
                        .map_err(|reason| store.undecodable(format!("run {run} entry {seq}: {reason}")))?;
                    entries.push(Entry { seq: seq as u64, payload });
                }
                Ok(Some(StoredRun { meta, status, entries }))
            })
            .await
    }

    /// The stored status of a run, finished or not (`None` if the store never saw it or
    /// retention deleted it).
    ///
    /// # Errors
    /// [`StoreError::Undecodable`], [`StoreError::Database`].
    pub async fn status(&self, run: RunId) -> Result<Option<StoredStatus>, StoreError> {
        const OP: &str = "checkpoint status";
        let store = &self.store;
        store
            .read(OP, || async move {
                let status: Option<String> =
                    sqlx::query_scalar("SELECT status FROM checkpoint_runs WHERE run_id = ?1")
                        .bind(run.to_string())
                        .fetch_optional(store.reader_pool())
                        .await
                        .map_err(|e| store.db(OP, e))?;
                status.map(|s| parse_status(store, &s)).transpose()
            })
            .await
    }

    /// Marks a run finished and deletes its entries, in one transaction.
    ///
    /// # Errors
    /// [`StoreError::Rejected`] if `status` is not `Completed` or `Failed`,
    /// [`StoreError::Database`], [`StoreError::Contended`].
    pub async fn finish_run(&self, run: RunId, status: StoredStatus) -> Result<(), StoreError> {
        const OP: &str = "checkpoint finish";
        let store = &self.store;
        if status.is_interrupted() {
            return Err(store.rejected(
                format!("finish of run {run}"),
                format!("status {} is not a finished status", status.as_str()),
            ));
        }
        store
            .write(OP, || async move {
                let now = i64_of(store, "time", store.now_ms())?;
                let mut tx = store.begin_write(OP).await?;
                let id: Option<i64> = sqlx::query_scalar(
                    "UPDATE checkpoint_runs SET status = ?2, updated_ms = ?3 WHERE run_id = ?1 RETURNING id",
                )
                .bind(run.to_string())
                .bind(status.as_str())
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| store.db(OP, e))?;
                if let Some(id) = id {
                    sqlx::query("DELETE FROM checkpoint_entries WHERE run = ?1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| store.db(OP, e))?;
                }
                tracing::debug!(target: "executus_store::checkpoint", %run, status = status.as_str(), "checkpoint finish staged");
                tx.commit().await.map_err(|e| store.db(OP, e))?;
                Ok(())
            })
            .await
    }

    /// Runs still running or awaiting approval, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Undecodable`], [`StoreError::Database`].
    pub async fn interrupted(&self) -> Result<Vec<(RunMeta, StoredStatus)>, StoreError> {
        const OP: &str = "checkpoint list interrupted";
        let store = &self.store;
        store
            .read(OP, || async move {
                let rows = sqlx::query(LIST_INTERRUPTED)
                    .fetch_all(store.reader_pool())
                    .await
                    .map_err(|e| store.db(OP, e))?;
                rows.iter().map(|row| decode_run(store, row, 0)).collect()
            })
            .await
    }
}

/// The interrupted-runs query (also checked with `EXPLAIN QUERY PLAN` in the tests).
pub const LIST_INTERRUPTED: &str = "SELECT run_id, agent, identity, parent, status, created_ms \
     FROM checkpoint_runs WHERE status IN ('running', 'awaiting_approval') ORDER BY created_ms, run_id";

/// The query loading a run's header by its id (also checked with `EXPLAIN QUERY PLAN`).
pub const LOAD_RUN: &str = "SELECT id, run_id, agent, identity, parent, status, created_ms \
     FROM checkpoint_runs WHERE run_id = ?1";

/// The query loading a run's entries (also checked with `EXPLAIN QUERY PLAN`).
pub const LOAD_ENTRIES: &str =
    "SELECT seq, encoding, payload FROM checkpoint_entries WHERE run = ?1 ORDER BY seq";

/// Retention: deletes up to `?2` finished runs last updated before `?1` (also checked with
/// `EXPLAIN QUERY PLAN`).
pub const PRUNE_FINISHED: &str = "DELETE FROM checkpoint_runs WHERE id IN ( \
         SELECT id FROM checkpoint_runs \
         WHERE status IN ('completed', 'failed') AND updated_ms < ?1 \
         ORDER BY updated_ms LIMIT ?2)";

pub(crate) fn i64_of(store: &SqliteStore, what: &str, v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| store.rejected(what, format!("{v} does not fit a SQLite integer")))
}

fn parse_status(store: &SqliteStore, s: &str) -> Result<StoredStatus, StoreError> {
    Ok(match s {
        "running" => StoredStatus::Running,
        "awaiting_approval" => StoredStatus::AwaitingApproval,
        "completed" => StoredStatus::Completed,
        "failed" => StoredStatus::Failed,
        other => return Err(store.undecodable(format!("unknown run status {other:?}"))),
    })
}

/// Decodes `run_id, agent, identity, parent, status, created_ms` starting at column `at`.
fn decode_run(
    store: &SqliteStore,
    row: &sqlx::sqlite::SqliteRow,
    at: usize,
) -> Result<(RunMeta, StoredStatus), StoreError> {
    const OP: &str = "checkpoint decode";
    let get_str = |i: usize| row.try_get::<String, _>(at + i).map_err(|e| store.db(OP, e));
    let run_text = get_str(0)?;
    let run_id: RunId =
        run_text.parse().map_err(|e| store.undecodable(format!("run id {run_text:?} is not a UUID: {e}")))?;
    let agent = get_str(1)?;
    let identity: Identity = serde_json::from_str(&get_str(2)?)
        .map_err(|e| store.undecodable(format!("identity of run {run_id}: {e}")))?;
    let parent_text: Option<String> = row.try_get(at + 3).map_err(|e| store.db(OP, e))?;
    let parent = parent_text
        .map(|p| p.parse::<RunId>().map_err(|e| store.undecodable(format!("parent of run {run_id}: {e}"))))
        .transpose()?;
    let status = parse_status(store, &get_str(4)?)?;
    let created: i64 = row.try_get(at + 5).map_err(|e| store.db(OP, e))?;
    Ok((RunMeta { run_id, agent, identity, parent, created_ms: created.max(0) as u64 }, status))
}

#[async_trait]
impl CheckpointStore for SqliteCheckpointStore {
    async fn append(&self, batch: &[RunAppend]) -> Result<(), PortError> {
        self.append_batch(batch).await.map(|_| ()).map_err(|e| e.into_port(PORT))
    }

    async fn load(&self, run: RunId) -> Result<Option<StoredRun>, PortError> {
        self.load_run(run).await.map_err(|e| e.into_port(PORT))
    }

    async fn finish(&self, run: RunId, status: StoredStatus) -> Result<(), PortError> {
        self.finish_run(run, status).await.map_err(|e| e.into_port(PORT))
    }

    async fn list_interrupted(&self) -> Result<Vec<(RunMeta, StoredStatus)>, PortError> {
        self.interrupted().await.map_err(|e| e.into_port(PORT))
    }

    /// An exclusive lock on `<store>.claims/<run>.lock`, released on drop or when the
    /// process ends (see the `claim` module); an in-memory store grants every claim.
    async fn claim(&self, run: RunId) -> Result<Option<RunClaim>, PortError> {
        let Some(dir) = claim::claims_dir(self.store.location()) else {
            return Ok(Some(RunClaim::local()));
        };
        tokio::task::spawn_blocking(move || claim::claim(&dir, run))
            .await
            .map_err(|e| PortError::Backend { port: PORT, message: format!("claiming run {run}: {e}") })?
    }
}
