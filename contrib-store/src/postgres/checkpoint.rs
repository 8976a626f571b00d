//! [`PgCheckpointStore`]: the core's `CheckpointStore` port on PostgreSQL.
//!
//! Layout (`0001_schema.sql`): `checkpoint_runs` (header, status, the next expected `seq`)
//! and `checkpoint_entries` (one row per fact, payload compressed per row as in the SQLite
//! backend: [`crate::checkpoint::Encoding`]).
//!
//! Guarantees (the SQLite backend's, see [`crate::checkpoint`]):
//! - `append` is one transaction for the whole batch; its statements are a constant number
//!   whatever the batch size (array parameters, `UNNEST`): headers upserted in run-id order
//!   (so concurrent batches never deadlock), entries inserted, next `seq` moved.
//! - An entry whose `seq` is stored is ignored; a gap rejects the batch.
//! - `finish` marks the run ended, deletes its entries and marks its queue row finished, in
//!   one transaction, and announces it on `executus_done`.
//! - A run's first append also gives it a row in the run queue (`active`), so workers resume
//!   it if its process dies, whoever started it.
//! - `claim` is a lease (see [`super::lease`]): one process on any machine at a time.

use std::collections::HashMap;

use async_trait::async_trait;
use executus::ports::{
    CheckpointStore, Entry, PortError, RunAppend, RunClaim, RunMeta, StoredRun, StoredStatus,
};
use executus::{Identity, RunId};
use sqlx::Row;
use uuid::Uuid;

use super::PgStore;
use super::lease::{Acquired, DONE_CHANNEL};
use crate::codec::AppendStats;
use crate::codec::{decode as decode_payload, deflate_batch};
use crate::error::StoreError;

const PORT: &str = "checkpoint";

/// The checkpoint store on PostgreSQL. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PgCheckpointStore {
    store: PgStore,
}

/// One run of a batch (appends of the same run merged, in order).
struct RunRows<'a> {
    meta: &'a RunMeta,
    status: StoredStatus,
    entries: Vec<(&'a Entry, Option<&'a [u8]>)>,
}

const UPSERT_HEADERS: &str = "INSERT INTO checkpoint_runs \
         (run_id, agent, identity, tenant, parent, status, created_ms, updated_ms) \
     SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::uuid[], $6::text[], $7::bigint[], $8::bigint[]) \
     ON CONFLICT (run_id) DO UPDATE SET \
         agent      = CASE WHEN checkpoint_runs.status IN ('completed', 'failed') THEN excluded.agent ELSE checkpoint_runs.agent END, \
         identity   = CASE WHEN checkpoint_runs.status IN ('completed', 'failed') THEN excluded.identity ELSE checkpoint_runs.identity END, \
         tenant     = CASE WHEN checkpoint_runs.status IN ('completed', 'failed') THEN excluded.tenant ELSE checkpoint_runs.tenant END, \
         parent     = CASE WHEN checkpoint_runs.status IN ('completed', 'failed') THEN excluded.parent ELSE checkpoint_runs.parent END, \
         created_ms = CASE WHEN checkpoint_runs.status IN ('completed', 'failed') THEN excluded.created_ms ELSE checkpoint_runs.created_ms END, \
         next_seq   = CASE WHEN checkpoint_runs.status IN ('completed', 'failed') THEN 0 ELSE checkpoint_runs.next_seq END, \
         status     = excluded.status, \
         updated_ms = excluded.updated_ms \
     RETURNING run_id, id, next_seq";

/// The interrupted-runs query.
pub const LIST_INTERRUPTED: &str = "SELECT run_id, agent, identity, parent, status, created_ms \
     FROM checkpoint_runs WHERE status IN ('running', 'awaiting_approval') ORDER BY created_ms, run_id";

impl PgCheckpointStore {
    /// The checkpoint store over `store` (also [`PgStore::checkpoints`]).
    pub fn new(store: PgStore) -> Self {
        Self { store }
    }

    /// The underlying store.
    pub fn store(&self) -> &PgStore {
        &self.store
    }

    /// Appends a batch in one transaction and says what it wrote.
    ///
    /// # Errors
    /// [`StoreError::Rejected`] for a sequence gap or a number PostgreSQL cannot hold
    /// (nothing of the batch is written), [`StoreError::Database`].
    pub async fn append_batch(&self, batch: &[RunAppend]) -> Result<AppendStats, StoreError> {
        const OP: &str = "checkpoint append";
        let store = &self.store;
        let deflated = deflate_batch(batch, store.options().compress).await;
        let mut runs: Vec<RunRows<'_>> = Vec::with_capacity(batch.len());
        let mut index: HashMap<RunId, usize> = HashMap::with_capacity(batch.len());
        for (append, deflated) in batch.iter().zip(&deflated) {
            let i = *index.entry(append.meta.run_id).or_insert_with(|| {
                runs.push(RunRows { meta: &append.meta, status: append.status, entries: Vec::new() });
                runs.len() - 1
            });
            runs[i].status = append.status;
            runs[i].entries.extend(append.entries.iter().zip(deflated.iter().map(Option::as_deref)));
        }
        // Run-id order: two batches touching the same runs lock their headers in one order.
        runs.sort_by_key(|r| r.meta.run_id);
        let now = i64_of(store, "time", store.now_ms())?;
        let mut ids = Vec::with_capacity(runs.len());
        let mut agents = Vec::with_capacity(runs.len());
        let mut identities = Vec::with_capacity(runs.len());
        let mut tenants = Vec::with_capacity(runs.len());
        let mut parents: Vec<Option<Uuid>> = Vec::with_capacity(runs.len());
        let mut statuses = Vec::with_capacity(runs.len());
        let mut created = Vec::with_capacity(runs.len());
        for run in &runs {
            ids.push(run.meta.run_id.0);
            agents.push(run.meta.agent.as_str());
            identities.push(serde_json::to_string(&run.meta.identity).map_err(|e| {
                store.rejected(format!("identity of run {}", run.meta.run_id), e.to_string())
            })?);
            tenants.push(run.meta.identity.tenant.as_str());
            parents.push(run.meta.parent.map(|p| p.0));
            statuses.push(run.status.as_str());
            created.push(i64_of(store, "created_ms", run.meta.created_ms)?);
        }
        let updated = vec![now; runs.len()];
        let (runs, ids, agents, identities, tenants, parents, statuses, created, updated) =
            (&runs, &ids, &agents, &identities, &tenants, &parents, &statuses, &created, &updated);
        store
            .write(OP, || async move {
                let mut tx = store.begin(OP).await?;
                let returned = sqlx::query(UPSERT_HEADERS)
                    .bind(ids)
                    .bind(agents)
                    .bind(identities)
                    .bind(tenants)
                    .bind(parents)
                    .bind(statuses)
                    .bind(created)
                    .bind(updated)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(|e| store.db(OP, e))?;
                let mut next: HashMap<Uuid, (i64, i64)> = HashMap::with_capacity(returned.len());
                for row in returned {
                    let run: Uuid = row.try_get(0).map_err(|e| store.db(OP, e))?;
                    let id: i64 = row.try_get(1).map_err(|e| store.db(OP, e))?;
                    let expected: i64 = row.try_get(2).map_err(|e| store.db(OP, e))?;
                    next.insert(run, (id, expected));
                }
                let mut stats = AppendStats { runs: batch.len(), ..AppendStats::default() };
                let (mut e_run, mut e_seq, mut e_enc, mut e_payload) = (vec![], vec![], vec![], vec![]);
                let (mut moved_id, mut moved_next) = (vec![], vec![]);
                let (mut new_runs, mut new_tenants, mut new_agents) = (vec![], vec![], vec![]);
                for run in runs {
                    let Some(&(id, first)) = next.get(&run.meta.run_id.0) else {
                        return Err(store.undecodable(format!("run {} has no header after its upsert", run.meta.run_id)));
                    };
                    let mut expected = first;
                    for (entry, deflated) in &run.entries {
                        let seq = i64_of(store, "seq", entry.seq)?;
                        if seq < expected {
                            continue; // already stored: appends are idempotent
                        }
                        if seq > expected {
                            return Err(store.rejected(
                                format!("entry for run {}", run.meta.run_id),
                                format!("sequence gap: expected {expected}, got {}", entry.seq),
                            ));
                        }
                        let (encoding, stored) = match deflated {
                            Some(d) => (crate::checkpoint::Encoding::Deflate, *d),
                            None => (crate::checkpoint::Encoding::Verbatim, entry.payload.as_slice()),
                        };
                        e_run.push(id);
                        e_seq.push(seq);
                        e_enc.push(encoding.code() as i16);
                        e_payload.push(stored);
                        stats.inserted += 1;
                        stats.payload_bytes += entry.payload.len();
                        stats.stored_bytes += stored.len();
                        expected += 1;
                    }
                    if expected != first {
                        moved_id.push(id);
                        moved_next.push(expected);
                    }
                    if first == 0 {
                        new_runs.push(run.meta.run_id.0);
                        new_tenants.push(run.meta.identity.tenant.as_str());
                        new_agents.push(run.meta.agent.as_str());
                    }
                }
                if !e_run.is_empty() {
                    sqlx::query(
                        "INSERT INTO checkpoint_entries (run, seq, encoding, payload) \
                         SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::smallint[], $4::bytea[])",
                    )
                    .bind(&e_run)
                    .bind(&e_seq)
                    .bind(&e_enc)
                    .bind(&e_payload)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| store.db(OP, e))?;
                    sqlx::query(
                        "UPDATE checkpoint_runs SET next_seq = v.n \
                         FROM UNNEST($1::bigint[], $2::bigint[]) AS v(id, n) WHERE checkpoint_runs.id = v.id",
                    )
                    .bind(&moved_id)
                    .bind(&moved_next)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| store.db(OP, e))?;
                }
                if !new_runs.is_empty() {
                    // Every run the store knows is in the queue, so workers resume it if its
                    // process dies (a run enqueued first already has its row).
                    sqlx::query(
                        "INSERT INTO run_queue (run_id, tenant, agent, state, enqueued_ms) \
                         SELECT r, t, a, 'active', $4 FROM UNNEST($1::uuid[], $2::text[], $3::text[]) AS v(r, t, a) \
                         ON CONFLICT (run_id) DO UPDATE SET state = 'active', status = NULL, outcome = NULL, \
                             finished_ms = NULL \
                         WHERE run_queue.state <> 'active'",
                    )
                    .bind(&new_runs)
                    .bind(&new_tenants)
                    .bind(&new_agents)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| store.db(OP, e))?;
                }
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

    /// Loads a run that has not finished (`None` if unknown or finished), from one snapshot.
    ///
    /// # Errors
    /// [`StoreError::Undecodable`], [`StoreError::Database`].
    pub async fn load_run(&self, run: RunId) -> Result<Option<StoredRun>, StoreError> {
        const OP: &str = "checkpoint load";
        let store = &self.store;
        // One statement, one snapshot: a concurrent finish cannot leave a header without its
        // entries.
        let rows = sqlx::query(
            "SELECT r.run_id, r.agent, r.identity, r.parent, r.status, r.created_ms, e.seq, e.encoding, e.payload \
             FROM checkpoint_runs r LEFT JOIN checkpoint_entries e ON e.run = r.id \
             WHERE r.run_id = $1 ORDER BY e.seq",
        )
        .bind(run.0)
        .fetch_all(store.pool())
        .await
        .map_err(|e| store.db(OP, e))?;
        let Some(first) = rows.first() else { return Ok(None) };
        let (meta, status) = decode_run(store, first)?;
        if !status.is_interrupted() {
            return Ok(None);
        }
        let mut entries = Vec::with_capacity(rows.len());
        for r in &rows {
            let seq: Option<i64> = r.try_get(6).map_err(|e| store.db(OP, e))?;
            let Some(seq) = seq else { continue };
            let encoding: i16 = r.try_get(7).map_err(|e| store.db(OP, e))?;
            let stored: Vec<u8> = r.try_get(8).map_err(|e| store.db(OP, e))?;
            let payload = decode_payload(i64::from(encoding), &stored)
                .map_err(|reason| store.undecodable(format!("run {run} entry {seq}: {reason}")))?;
            entries.push(Entry { seq: seq.max(0) as u64, payload });
        }
        Ok(Some(StoredRun { meta, status, entries }))
    }

    /// The stored status of a run, finished or not.
    ///
    /// # Errors
    /// [`StoreError::Undecodable`], [`StoreError::Database`].
    pub async fn status(&self, run: RunId) -> Result<Option<StoredStatus>, StoreError> {
        let store = &self.store;
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM checkpoint_runs WHERE run_id = $1")
                .bind(run.0)
                .fetch_optional(store.pool())
                .await
                .map_err(|e| store.db("checkpoint status", e))?;
        status.map(|s| parse_status(store, &s)).transpose()
    }

    /// Marks a run finished, deletes its entries and marks its queue row finished, in one
    /// transaction; announces the end on `executus_done`.
    ///
    /// # Errors
    /// [`StoreError::Rejected`] if `status` is not a finished status, [`StoreError::Database`].
    pub async fn finish_run(&self, run: RunId, status: StoredStatus) -> Result<(), StoreError> {
        const OP: &str = "checkpoint finish";
        let store = &self.store;
        if status.is_interrupted() {
            return Err(store.rejected(
                format!("finish of run {run}"),
                format!("status {} is not a finished status", status.as_str()),
            ));
        }
        let now = i64_of(store, "time", store.now_ms())?;
        store
            .write(OP, || async move {
                let mut tx = store.begin(OP).await?;
                let id: Option<i64> = sqlx::query_scalar(
                    "UPDATE checkpoint_runs SET status = $2, updated_ms = $3, next_seq = 0 WHERE run_id = $1 RETURNING id",
                )
                .bind(run.0)
                .bind(status.as_str())
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| store.db(OP, e))?;
                if let Some(id) = id {
                    sqlx::query("DELETE FROM checkpoint_entries WHERE run = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| store.db(OP, e))?;
                }
                sqlx::query(
                    "WITH q AS (UPDATE run_queue SET state = 'finished', status = $2, outcome = NULL, finished_ms = $3 \
                         WHERE run_id = $1 AND state IN ('queued', 'active')) \
                     SELECT pg_notify($4, $1::text)",
                )
                .bind(run.0)
                .bind(status.as_str())
                .bind(now)
                .bind(DONE_CHANNEL)
                .execute(&mut *tx)
                .await
                .map_err(|e| store.db(OP, e))?;
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
        let store = &self.store;
        let rows = sqlx::query(LIST_INTERRUPTED)
            .fetch_all(store.pool())
            .await
            .map_err(|e| store.db("checkpoint list interrupted", e))?;
        rows.iter().map(|row| decode_run(store, row)).collect()
    }

    /// Claims `run` for this process: a lease reserved by the worker that picked the run
    /// from the queue, or a fresh one.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the lease connection fails.
    pub async fn claim_run(&self, run: RunId) -> Result<Option<RunClaim>, StoreError> {
        if let Some(guard) = self.store.take_reserved(run) {
            return Ok(Some(RunClaim::new(guard)));
        }
        match self.store.leases().await?.acquire(run).await? {
            Acquired::Granted(guard) => Ok(Some(RunClaim::new(guard))),
            Acquired::Held => Ok(None),
        }
    }
}

pub(crate) fn i64_of(store: &PgStore, what: &str, v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| store.rejected(what, format!("{v} does not fit a bigint")))
}

fn parse_status(store: &PgStore, s: &str) -> Result<StoredStatus, StoreError> {
    Ok(match s {
        "running" => StoredStatus::Running,
        "awaiting_approval" => StoredStatus::AwaitingApproval,
        "completed" => StoredStatus::Completed,
        "failed" => StoredStatus::Failed,
        other => return Err(store.undecodable(format!("unknown run status {other:?}"))),
    })
}

/// Decodes `run_id, agent, identity, parent, status, created_ms` (columns 0..6).
fn decode_run(store: &PgStore, row: &sqlx::postgres::PgRow) -> Result<(RunMeta, StoredStatus), StoreError> {
    const OP: &str = "checkpoint decode";
    let run_id: Uuid = row.try_get(0).map_err(|e| store.db(OP, e))?;
    let run_id = RunId(run_id);
    let agent: String = row.try_get(1).map_err(|e| store.db(OP, e))?;
    let identity: String = row.try_get(2).map_err(|e| store.db(OP, e))?;
    let identity: Identity = serde_json::from_str(&identity)
        .map_err(|e| store.undecodable(format!("identity of run {run_id}: {e}")))?;
    let parent: Option<Uuid> = row.try_get(3).map_err(|e| store.db(OP, e))?;
    let status: String = row.try_get(4).map_err(|e| store.db(OP, e))?;
    let status = parse_status(store, &status)?;
    let created: i64 = row.try_get(5).map_err(|e| store.db(OP, e))?;
    Ok((
        RunMeta { run_id, agent, identity, parent: parent.map(RunId), created_ms: created.max(0) as u64 },
        status,
    ))
}

#[async_trait]
impl CheckpointStore for PgCheckpointStore {
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

    /// A lease (see [`super::lease`]): exclusive across every process on every machine that
    /// shares the database; released on drop, or when this process dies.
    async fn claim(&self, run: RunId) -> Result<Option<RunClaim>, PortError> {
        self.claim_run(run).await.map_err(|e| e.into_port(PORT))
    }
}
