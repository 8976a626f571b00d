//! [`PgRunQueue`]: the run queue worker processes share (`run_queue`, see
//! `0001_schema.sql` for the states).
//!
//! - [`PgRunQueue::enqueue`] stores a run's request (`queued`) and notifies
//!   `executus_queue`, which wakes idle workers at once; workers also poll, because a
//!   notification is not durable (one sent while a worker reconnects is lost).
//! - [`PgRunQueue::pick`] is one transaction: candidates are read with `FOR UPDATE SKIP
//!   LOCKED` (so concurrent workers never block on, or take, each other's candidates) —
//!   queued runs, and runs whose driver's lease is gone or expired (orphans: their worker
//!   died) — orphans first, then tenants with the fewest active runs first, then oldest
//!   first. For each, the worker takes the run's lease ([`super::lease`]) before marking it
//!   `active`; the lease is kept for the runtime's claim of the run. With a per-tenant cap,
//!   a queued run is taken only while its tenant has fewer active runs than the cap,
//!   counted under a transaction-level advisory lock per tenant (taken in one global order),
//!   so the cap holds across all workers, not per worker.
//! - The run's end is recorded by the checkpoint store's `finish` (state `finished`, same
//!   transaction as the checkpoint) and the worker's [`PgRunQueue::complete`] (state `done`,
//!   with the outcome), each announced on `executus_done`.
//!
//! Not guaranteed: strict FIFO (orphans and under-served tenants go first); a run whose
//! worker dies every time it drives it is picked again each time (it is not quarantined).

use std::sync::Arc;
use std::time::Duration;

use executus::llm::Message;
use executus::{Identity, RunId, RunnableAgent};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio::sync::{Notify, broadcast};
use uuid::Uuid;

use super::lease::{Acquired, DONE_CHANNEL, LeaseGuard, QUEUE_CHANNEL};
use super::{PgStore, lock_class};
use crate::error::StoreError;

/// A run handed to the workers: everything a worker needs to start it. The agent travels
/// whole (resolved by the process that enqueued it, its overrides included), so a worker
/// drives exactly the run that was asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedRequest {
    /// The agent.
    pub agent: RunnableAgent,
    /// The input messages.
    pub input: Vec<Message>,
    /// Who the run acts for.
    pub identity: Identity,
    /// Lane override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<String>,
    /// Deliver the outcome through the worker's `Delivery` port.
    #[serde(default)]
    pub deliver: bool,
    /// The conversation the run belongs to (`gen_ai.conversation.id` on its spans; e.g. the
    /// gateway's session); the run id when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<String>,
}

/// Where a queued run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum QueueState {
    /// Waiting for a worker.
    Queued,
    /// A worker drives it (or did, until it died: then another picks it up).
    Active,
    /// Its checkpoint says it ended; the outcome is not stored (yet).
    Finished,
    /// Ended, outcome stored.
    Done,
}

impl QueueState {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "active" => Self::Active,
            "finished" => Self::Finished,
            "done" => Self::Done,
            _ => return None,
        })
    }

    /// Snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Active => "active",
            Self::Finished => "finished",
            Self::Done => "done",
        }
    }
}

/// One run's queue row, with the owner of its lease if someone holds one.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct QueueEntry {
    /// The run.
    pub run_id: RunId,
    /// Its tenant.
    pub tenant: String,
    /// Its agent's name.
    pub agent: String,
    /// Where it stands.
    pub state: QueueState,
    /// The end status (`completed`, `failed`, ...) once it ended.
    pub status: Option<String>,
    /// The outcome summary the driving worker stored (JSON), once done.
    pub outcome: Option<serde_json::Value>,
    /// How many times a worker picked it.
    pub picks: u32,
    /// The worker that picked it last.
    pub picked_by: Option<String>,
    /// Who holds its lease now (and whether the lease is still valid).
    pub lease: Option<(String, bool)>,
}

/// How a picked run starts.
#[derive(Debug)]
#[non_exhaustive]
pub enum PickedStart {
    /// Never checkpointed: start it from its request.
    Fresh(Box<QueuedRequest>),
    /// Checkpointed: resume it from its log.
    Resume,
    /// Nothing to start from (no request and no checkpoint: pruned, or written by hand).
    Lost,
}

/// A run a worker picked, its lease reserved for the runtime's claim.
#[derive(Debug)]
#[non_exhaustive]
pub struct Picked {
    /// The run.
    pub run_id: RunId,
    /// How to start it.
    pub start: PickedStart,
    /// Whether it had been picked before (its previous worker died or let it go).
    pub orphan: bool,
}

/// Wake-ups from `LISTEN`: work became available, runs ended. Dropping it stops listening.
pub struct Wakeups {
    /// Notified when a run was enqueued or a lease released.
    pub work: Arc<Notify>,
    /// The runs announced as ended.
    pub done: broadcast::Sender<RunId>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Wakeups {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for Wakeups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wakeups").finish_non_exhaustive()
    }
}

/// The run queue on one PostgreSQL database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PgRunQueue {
    store: PgStore,
}

const PICK: &str = "SELECT q.run_id, q.tenant, q.state, q.request, c.status \
     FROM run_queue q \
     LEFT JOIN run_leases l ON l.run_id = q.run_id \
     LEFT JOIN checkpoint_runs c ON c.run_id = q.run_id \
     WHERE q.state IN ('queued', 'active') \
       AND (l.run_id IS NULL OR l.expires_ms < executus_now_ms()) \
       AND (q.state = 'queued' OR c.status IS NULL OR c.status = 'running') \
       AND (q.state = 'active' OR $2::bigint IS NULL OR executus_tenant_active(q.tenant) < $2) \
     ORDER BY (q.state = 'active') DESC, executus_tenant_active(q.tenant), q.enqueued_ms, q.run_id \
     LIMIT $1 \
     FOR UPDATE OF q SKIP LOCKED";

/// Active runs of a tenant that count against its cap (a run paused for a human does not).
const TENANT_ACTIVE: &str = "SELECT executus_tenant_active($1)";

impl PgRunQueue {
    /// The queue over `store` (also [`PgStore::queue`]).
    pub fn new(store: PgStore) -> Self {
        Self { store }
    }

    /// The underlying store.
    pub fn store(&self) -> &PgStore {
        &self.store
    }

    /// Stores `request` as run `run_id`, queued, and wakes idle workers.
    ///
    /// # Errors
    /// [`StoreError::Rejected`] when the run id is already in the queue,
    /// [`StoreError::Database`].
    pub async fn enqueue(&self, run_id: RunId, request: &QueuedRequest) -> Result<(), StoreError> {
        const OP: &str = "queue enqueue";
        let store = &self.store;
        let json = serde_json::to_string(request)
            .map_err(|e| store.rejected(format!("request of run {run_id}"), e.to_string()))?;
        let now = i64::try_from(store.now_ms()).unwrap_or(i64::MAX);
        let inserted = sqlx::query_scalar::<_, Uuid>(
            "WITH ins AS ( \
                 INSERT INTO run_queue (run_id, tenant, agent, state, request, enqueued_ms) \
                 VALUES ($1, $2, $3, 'queued', $4, $5) ON CONFLICT (run_id) DO NOTHING RETURNING run_id) \
             SELECT run_id FROM ins, pg_notify($6, 'queued') AS n",
        )
        .bind(run_id.0)
        .bind(&request.identity.tenant)
        .bind(&request.agent.name)
        .bind(json)
        .bind(now)
        .bind(QUEUE_CHANNEL)
        .fetch_optional(store.pool())
        .await
        .map_err(|e| store.db(OP, e))?;
        if inserted.is_none() {
            return Err(store.rejected(format!("run {run_id}"), "it is already in the queue"));
        }
        Ok(())
    }

    /// Picks up to `max` runs for this process (see the module docs), each with its lease
    /// taken and reserved for the runtime's claim. A run picked but not started must be
    /// handed back with [`PgRunQueue::unreserve`].
    ///
    /// # Errors
    /// [`StoreError::Database`] (nothing was picked).
    pub async fn pick(&self, max: usize, tenant_cap: Option<u32>) -> Result<Vec<Picked>, StoreError> {
        const OP: &str = "queue pick";
        if max == 0 {
            return Ok(Vec::new());
        }
        let store = &self.store;
        let leases = store.leases().await?;
        let cap = tenant_cap.map(i64::from);
        let picked: Vec<(Picked, LeaseGuard)> = store
            .write(OP, || async move {
                let mut tx = store.begin(OP).await?;
                // More candidates than wanted: some may be skipped (their tenant at its cap,
                // their lease held); the rest stay locked only until this commit.
                let rows = sqlx::query(PICK)
                    .bind(i64::try_from(max.saturating_mul(2).saturating_add(8)).unwrap_or(i64::MAX))
                    .bind(cap)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(|e| store.db(OP, e))?;
                let mut candidates = Vec::with_capacity(rows.len());
                for row in &rows {
                    let run: Uuid = row.try_get(0).map_err(|e| store.db(OP, e))?;
                    let tenant: String = row.try_get(1).map_err(|e| store.db(OP, e))?;
                    let state: String = row.try_get(2).map_err(|e| store.db(OP, e))?;
                    let request: Option<String> = row.try_get(3).map_err(|e| store.db(OP, e))?;
                    let status: Option<String> = row.try_get(4).map_err(|e| store.db(OP, e))?;
                    candidates.push((RunId(run), tenant, state == "queued", request, status));
                }
                if cap.is_some() {
                    // Every tenant whose cap we may check, locked in one global order.
                    let tenants: Vec<&str> =
                        candidates.iter().filter(|c| c.2).map(|c| c.1.as_str()).collect();
                    if !tenants.is_empty() {
                        sqlx::query(
                            "SELECT pg_advisory_xact_lock($1, h) FROM \
                             (SELECT DISTINCT hashtext(t) AS h FROM UNNEST($2::text[]) AS v(t) ORDER BY 1) AS k",
                        )
                        .bind(lock_class::QUEUE_TENANT)
                        .bind(&tenants)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| store.db(OP, e))?;
                    }
                }
                let mut picked = Vec::new();
                for (run, tenant, queued, request, status) in candidates {
                    if picked.len() >= max {
                        break;
                    }
                    if queued && let Some(cap) = cap {
                        let active: i64 = sqlx::query_scalar(TENANT_ACTIVE)
                            .bind(&tenant)
                            .fetch_one(&mut *tx)
                            .await
                            .map_err(|e| store.db(OP, e))?;
                        if active >= cap {
                            continue;
                        }
                    }
                    let guard = match leases.acquire(run).await? {
                        Acquired::Granted(guard) => guard,
                        Acquired::Held => continue,
                    };
                    sqlx::query(
                        "UPDATE run_queue SET state = 'active', picked_ms = $2, picked_by = $3, picks = picks + 1 \
                         WHERE run_id = $1",
                    )
                    .bind(run.0)
                    .bind(i64::try_from(store.now_ms()).unwrap_or(i64::MAX))
                    .bind(store.owner())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| store.db(OP, e))?;
                    let start = match (status, request) {
                        (Some(_), _) => PickedStart::Resume,
                        (None, Some(json)) => match serde_json::from_str::<QueuedRequest>(&json) {
                            Ok(request) => PickedStart::Fresh(Box::new(request)),
                            Err(e) => {
                                return Err(store.undecodable(format!("request of queued run {run}: {e}")));
                            }
                        },
                        (None, None) => PickedStart::Lost,
                    };
                    picked.push((Picked { run_id: run, start, orphan: !queued }, guard));
                }
                tx.commit().await.map_err(|e| store.db(OP, e))?;
                Ok(picked)
            })
            .await?;
        Ok(picked
            .into_iter()
            .map(|(picked, guard)| {
                store.reserve(guard);
                picked
            })
            .collect())
    }

    /// Hands a picked run back (its reserved lease is released; another worker, or this
    /// one later, picks it again).
    pub fn unreserve(&self, run: RunId) {
        drop(self.store.take_reserved(run));
    }

    /// Records a run's end and its outcome summary (state `done`) and announces it. A run
    /// that paused for approval keeps its state (it is not over; whoever approves it drives
    /// it on), with the pause as its outcome so far.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn complete(
        &self,
        run: RunId,
        status: &str,
        outcome: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let store = &self.store;
        let now = i64::try_from(store.now_ms()).unwrap_or(i64::MAX);
        sqlx::query(
            "WITH q AS (UPDATE run_queue SET \
                 state = CASE WHEN $2 = 'awaiting_approval' THEN state ELSE 'done' END, \
                 status = $2, outcome = $3, \
                 finished_ms = CASE WHEN $2 = 'awaiting_approval' THEN NULL ELSE coalesce(finished_ms, $4) END \
                 WHERE run_id = $1) \
             SELECT pg_notify($5, $1::text)",
        )
        .bind(run.0)
        .bind(status)
        .bind(outcome.to_string())
        .bind(now)
        .bind(DONE_CHANNEL)
        .execute(store.pool())
        .await
        .map_err(|e| store.db("queue complete", e))?;
        Ok(())
    }

    /// The queue row of `run`, with its lease holder.
    ///
    /// # Errors
    /// [`StoreError::Undecodable`], [`StoreError::Database`].
    pub async fn entry(&self, run: RunId) -> Result<Option<QueueEntry>, StoreError> {
        const OP: &str = "queue entry";
        let store = &self.store;
        let row = sqlx::query(
            "SELECT q.tenant, q.agent, q.state, q.status, q.outcome, q.picks, q.picked_by, \
                 l.owner, l.expires_ms >= executus_now_ms() \
             FROM run_queue q LEFT JOIN run_leases l ON l.run_id = q.run_id WHERE q.run_id = $1",
        )
        .bind(run.0)
        .fetch_optional(store.pool())
        .await
        .map_err(|e| store.db(OP, e))?;
        let Some(row) = row else { return Ok(None) };
        let state: String = row.try_get(2).map_err(|e| store.db(OP, e))?;
        let state = QueueState::parse(&state)
            .ok_or_else(|| store.undecodable(format!("run {run}: unknown queue state {state:?}")))?;
        let outcome: Option<String> = row.try_get(4).map_err(|e| store.db(OP, e))?;
        let outcome = outcome
            .map(|o| {
                serde_json::from_str(&o).map_err(|e| store.undecodable(format!("outcome of run {run}: {e}")))
            })
            .transpose()?;
        let picks: i32 = row.try_get(5).map_err(|e| store.db(OP, e))?;
        let owner: Option<String> = row.try_get(7).map_err(|e| store.db(OP, e))?;
        let valid: Option<bool> = row.try_get(8).map_err(|e| store.db(OP, e))?;
        Ok(Some(QueueEntry {
            run_id: run,
            tenant: row.try_get(0).map_err(|e| store.db(OP, e))?,
            agent: row.try_get(1).map_err(|e| store.db(OP, e))?,
            state,
            status: row.try_get(3).map_err(|e| store.db(OP, e))?,
            outcome,
            picks: picks.max(0) as u32,
            picked_by: row.try_get(6).map_err(|e| store.db(OP, e))?,
            lease: owner.map(|o| (o, valid.unwrap_or(false))),
        }))
    }

    /// Runs per state (`queued`, `active`, `finished`, `done`).
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn counts(&self) -> Result<[u64; 4], StoreError> {
        let rows = sqlx::query("SELECT state, count(*) FROM run_queue GROUP BY state")
            .fetch_all(self.store.pool())
            .await
            .map_err(|e| self.store.db("queue counts", e))?;
        let mut out = [0u64; 4];
        for row in rows {
            let state: String = row.try_get(0).map_err(|e| self.store.db("queue counts", e))?;
            let n: i64 = row.try_get(1).map_err(|e| self.store.db("queue counts", e))?;
            if let Some(s) = QueueState::parse(&state) {
                out[s as usize] = n.max(0) as u64;
            }
        }
        Ok(out)
    }

    /// Listens on `executus_queue` and `executus_done` on a connection of its own (not from
    /// the pool), reconnecting when it drops. Notifications are wake-ups only: callers poll
    /// as well.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the first connection fails.
    pub async fn listen(&self) -> Result<Wakeups, StoreError> {
        let store = &self.store;
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .max_lifetime(None)
            .idle_timeout(None)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(store.connect_options().clone())
            .await
            .map_err(|e| store.db("listen: connect", e))?;
        let mut listener =
            PgListener::connect_with(&pool).await.map_err(|e| store.db("listen: connect", e))?;
        listener.ignore_pool_close_event(true);
        listener.listen_all([QUEUE_CHANNEL, DONE_CHANNEL]).await.map_err(|e| store.db("listen", e))?;
        let work = Arc::new(Notify::new());
        let (done, _) = broadcast::channel(1024);
        let task = {
            let (work, done) = (work.clone(), done.clone());
            let location = store.location().to_owned();
            tokio::spawn(async move {
                let _pool = pool;
                loop {
                    match listener.try_recv().await {
                        Ok(Some(n)) if n.channel() == DONE_CHANNEL => {
                            if let Ok(run) = n.payload().parse::<RunId>() {
                                let _ = done.send(run);
                            }
                            work.notify_waiters();
                        }
                        Ok(Some(_)) => {
                            work.notify_waiters();
                            work.notify_one();
                        }
                        // Reconnected after a lost connection: notifications may have been
                        // missed, so wake everyone to look.
                        Ok(None) => {
                            work.notify_waiters();
                            work.notify_one();
                        }
                        Err(e) => {
                            tracing::warn!(target: "executus_store::queue", location = %location, error = %e, "listener failed; retrying (polling goes on)");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            })
        };
        Ok(Wakeups { work, done, task })
    }
}
