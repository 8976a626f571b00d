//! Run leases: the PostgreSQL side of `CheckpointStore::claim`, so that no run is ever driven
//! by two processes at once, on any number of machines.
//!
//! A lease is two things, both held by one dedicated connection per store (not from the
//! pool, never shared with a query of another kind):
//! - a **session advisory lock** keyed by the run (`pg_try_advisory_lock`), which the server
//!   frees the moment that connection ends — a killed process holds nothing;
//! - a **lease row** in `run_leases` (owner, the connection's backend pid, heartbeat, expiry
//!   by the server's clock), renewed every quarter of the expiry by a heartbeat on that same
//!   connection.
//!
//! Taking a run needs both: the lock, and a row that is absent, already ours, or expired.
//! So after a worker dies its runs are taken over once their lease expires (default 10 s;
//! [`crate::StoreOptions::lease_expiry`]), not before: the few seconds cover the case where
//! the server lost the connection but the process still runs (a network cut) — that process
//! notices through its heartbeat within half the expiry and stops everything
//! ([`super::PgStore::lease_lost`]) before anybody else may start. A holder that stopped
//! heartbeating but whose connection the server still sees (a hung process, a half-open TCP
//! connection) is ended with `pg_terminate_backend` once its lease expired, which frees its
//! lock. Releasing a lease (a run ended or was checkpointed for shutdown) deletes the row,
//! unlocks, and notifies `executus_queue`, so idle workers take over at once.
//!
//! Not guaranteed: that a process which lost its lease stops every side effect in time if
//! its own clock or scheduler stalls for longer than half the expiry (the same limit every
//! lease scheme has); the heartbeat then reports the loss as soon as it runs again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use executus::RunId;
use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::error::StoreError;

/// The channel idle workers listen on: a run became available.
pub const QUEUE_CHANNEL: &str = "executus_queue";

/// The channel on which a run's end is announced (payload: the run id).
pub const DONE_CHANNEL: &str = "executus_done";

/// The advisory lock key of a run: the two halves of its UUID folded into 64 bits. Two runs
/// sharing a key (about one chance in 2^64 per pair) only ever wait for each other.
pub fn lock_key(run: RunId) -> i64 {
    let (hi, lo) = run.0.as_u64_pair();
    (hi ^ lo) as i64
}

/// What an acquisition found.
#[derive(Debug)]
pub(crate) enum Acquired {
    /// The lease is ours until the guard is dropped.
    Granted(LeaseGuard),
    /// Someone else holds it (or this process already does).
    Held,
}

enum Cmd {
    Acquire { run: RunId, reply: oneshot::Sender<Result<Acquired, StoreError>> },
    Release { run: RunId },
    Hold { run: RunId },
    Recorded { run: RunId },
    ReleaseAll { reply: oneshot::Sender<Result<usize, StoreError>> },
    Close { reply: oneshot::Sender<()> },
}

/// A held lease; dropping it releases the lease (asynchronously, on the lease connection).
pub struct LeaseGuard {
    run: RunId,
    tx: mpsc::UnboundedSender<Cmd>,
}

impl std::fmt::Debug for LeaseGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseGuard").field("run", &self.run).finish()
    }
}

impl LeaseGuard {
    /// The run this lease is for.
    pub fn run(&self) -> RunId {
        self.run
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        // The keeper is gone only when the store closed; the lock went with its connection.
        let _ = self.tx.send(Cmd::Release { run: self.run });
    }
}

/// The handle to the lease keeper task (one per store).
pub(crate) struct Leases {
    tx: mpsc::UnboundedSender<Cmd>,
    defer: Arc<AtomicBool>,
}

impl Leases {
    /// Connects the dedicated lease connection and starts the keeper.
    pub(crate) async fn start(
        connect: &PgConnectOptions,
        location: String,
        owner: String,
        expiry: Duration,
        lost: CancellationToken,
    ) -> Result<Self, StoreError> {
        let conn = PgConnection::connect_with(connect).await.map_err(|source| StoreError::Database {
            location: location.clone(),
            op: "connect the lease connection",
            source,
        })?;
        let (tx, rx) = mpsc::unbounded_channel();
        let defer = Arc::new(AtomicBool::new(false));
        let keeper = Keeper {
            conn: Some(conn),
            location,
            owner,
            expiry,
            lost,
            held: HashMap::new(),
            deferred: Vec::new(),
            holding: HashSet::new(),
            pending: HashSet::new(),
            defer: defer.clone(),
            tx: tx.clone(),
            last_ok: Instant::now(),
        };
        tokio::spawn(keeper.run(rx));
        Ok(Self { tx, defer })
    }

    fn gone(&self) -> StoreError {
        StoreError::Unsupported {
            location: String::new(),
            op: "lease (the store is closed)",
            backend: "postgres",
        }
    }

    /// Tries to take the lease of `run`.
    pub(crate) async fn acquire(&self, run: RunId) -> Result<Acquired, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Cmd::Acquire { run, reply }).map_err(|_| self.gone())?;
        rx.await.map_err(|_| self.gone())?
    }

    /// Holds releases until [`Leases::release_all`].
    pub(crate) fn defer_releases(&self) {
        self.defer.store(true, Ordering::SeqCst);
    }

    /// Keeps the lease of `run` past its release (the claim dropped when the run ended) until
    /// [`Leases::recorded`]: a worker records the run's outcome in the queue first, so whoever
    /// follows the run never sees it finished, unleased and without its outcome.
    pub(crate) fn hold(&self, run: RunId) {
        let _ = self.tx.send(Cmd::Hold { run });
    }

    /// The outcome of `run` is recorded: its lease is released now if its claim already was.
    pub(crate) fn recorded(&self, run: RunId) {
        let _ = self.tx.send(Cmd::Recorded { run });
    }

    /// Releases every lease held (and deferred), at once.
    pub(crate) async fn release_all(&self) -> Result<usize, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Cmd::ReleaseAll { reply }).map_err(|_| self.gone())?;
        rx.await.map_err(|_| self.gone())?
    }

    /// Ends the keeper and its connection (which frees whatever it still held).
    pub(crate) async fn close(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Cmd::Close { reply }).is_ok() {
            let _ = rx.await;
        }
    }
}

struct Keeper {
    /// `None` once the connection was lost.
    conn: Option<PgConnection>,
    location: String,
    owner: String,
    expiry: Duration,
    lost: CancellationToken,
    held: HashMap<RunId, i64>,
    deferred: Vec<RunId>,
    /// Runs whose release waits for their outcome to be recorded ([`Leases::hold`]).
    holding: HashSet<RunId>,
    /// Held runs whose claim was already released.
    pending: HashSet<RunId>,
    defer: Arc<AtomicBool>,
    tx: mpsc::UnboundedSender<Cmd>,
    last_ok: Instant,
}

const ACQUIRE: &str = "INSERT INTO run_leases (run_id, owner, backend_pid, acquired_ms, heartbeat_ms, expires_ms) \
     VALUES ($1, $2, pg_backend_pid(), executus_now_ms(), executus_now_ms(), executus_now_ms() + $3) \
     ON CONFLICT (run_id) DO UPDATE SET owner = excluded.owner, backend_pid = excluded.backend_pid, \
         acquired_ms = excluded.acquired_ms, heartbeat_ms = excluded.heartbeat_ms, expires_ms = excluded.expires_ms \
     WHERE run_leases.owner = excluded.owner OR run_leases.expires_ms < excluded.acquired_ms \
     RETURNING run_id";

impl Keeper {
    fn expiry_ms(&self) -> i64 {
        i64::try_from(self.expiry.as_millis()).unwrap_or(i64::MAX)
    }

    fn db(&self, op: &'static str, source: sqlx::Error) -> StoreError {
        StoreError::Database { location: self.location.clone(), op, source }
    }

    fn lost_error(&self) -> StoreError {
        StoreError::Unsupported {
            location: self.location.clone(),
            op: "lease (the lease connection was lost; restart the process)",
            backend: "postgres",
        }
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Cmd>) {
        let beat = (self.expiry / 4).max(Duration::from_millis(100));
        let mut ticker = tokio::time::interval(beat);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    None => break,
                    Some(Cmd::Acquire { run, reply }) => {
                        let result = self.acquire(run).await;
                        let _ = reply.send(result);
                    }
                    Some(Cmd::Release { run }) => {
                        if self.defer.load(Ordering::SeqCst) {
                            self.deferred.push(run);
                        } else if self.holding.contains(&run) {
                            self.pending.insert(run);
                        } else {
                            self.release(run).await;
                        }
                    }
                    Some(Cmd::Hold { run }) => {
                        self.holding.insert(run);
                    }
                    Some(Cmd::Recorded { run }) => {
                        self.holding.remove(&run);
                        if self.pending.remove(&run) {
                            if self.defer.load(Ordering::SeqCst) {
                                self.deferred.push(run);
                            } else {
                                self.release(run).await;
                            }
                        }
                    }
                    Some(Cmd::ReleaseAll { reply }) => {
                        let result = self.release_all().await;
                        let _ = reply.send(result);
                    }
                    Some(Cmd::Close { reply }) => {
                        if let Some(conn) = self.conn.take() {
                            let _ = conn.close().await;
                        }
                        let _ = reply.send(());
                        break;
                    }
                },
                _ = ticker.tick() => self.heartbeat().await,
            }
        }
    }

    /// The connection is gone: every lock it held is gone with it.
    fn connection_lost(&mut self, why: &str) {
        if self.conn.take().is_some() || !self.lost.is_cancelled() {
            let runs: Vec<String> = self.held.keys().map(ToString::to_string).collect();
            tracing::error!(
                target: "executus_store::lease",
                owner = %self.owner,
                runs = ?runs,
                "lease connection lost ({why}); every run this process holds must stop now"
            );
        }
        self.lost.cancel();
    }

    async fn heartbeat(&mut self) {
        if self.held.is_empty() {
            self.last_ok = Instant::now();
            return;
        }
        let Some(conn) = self.conn.as_mut() else { return };
        let runs: Vec<uuid::Uuid> = self.held.keys().map(|r| r.0).collect();
        let expiry = i64::try_from(self.expiry.as_millis()).unwrap_or(i64::MAX);
        let renew = sqlx::query_scalar::<_, uuid::Uuid>(
            "UPDATE run_leases SET heartbeat_ms = executus_now_ms(), expires_ms = executus_now_ms() + $3 \
             WHERE owner = $1 AND run_id = ANY($2) RETURNING run_id",
        )
        .bind(&self.owner)
        .bind(&runs)
        .bind(expiry)
        .fetch_all(&mut *conn);
        match tokio::time::timeout(self.expiry / 2, renew).await {
            Ok(Ok(renewed)) => {
                self.last_ok = Instant::now();
                if renewed.len() < runs.len() {
                    let taken: Vec<String> =
                        runs.iter().filter(|r| !renewed.contains(r)).map(ToString::to_string).collect();
                    tracing::error!(
                        target: "executus_store::lease",
                        owner = %self.owner,
                        taken = ?taken,
                        "leases were taken over by another process (a heartbeat came too late)"
                    );
                    self.lost.cancel();
                }
            }
            Ok(Err(e)) => {
                let why = format!("heartbeat failed: {e}");
                if matches!(e, sqlx::Error::Io(_) | sqlx::Error::Protocol(_))
                    || self.last_ok.elapsed() > self.expiry / 2
                {
                    self.connection_lost(&why);
                } else {
                    tracing::warn!(target: "executus_store::lease", owner = %self.owner, error = %e, "heartbeat failed; retrying");
                }
            }
            Err(_) => self.connection_lost("heartbeat did not complete within half the lease expiry"),
        }
    }

    async fn acquire(&mut self, run: RunId) -> Result<Acquired, StoreError> {
        const OP: &str = "lease acquire";
        if self.held.contains_key(&run) {
            return Ok(Acquired::Held);
        }
        let expiry = self.expiry_ms();
        let key = lock_key(run);
        let owner = self.owner.clone();
        let result = async {
            let Some(conn) = self.conn.as_mut() else { return Err(None) };
            let mut locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(key)
                .fetch_one(&mut *conn)
                .await
                .map_err(Some)?;
            if !locked {
                // Someone the server still sees holds it. If their lease expired they stopped
                // heartbeating (hung, or cut off with the TCP connection half-open): end their
                // session, which frees the lock, and try once more.
                let expired: Option<bool> = sqlx::query_scalar(
                    "SELECT expires_ms < executus_now_ms() FROM run_leases WHERE run_id = $1",
                )
                .bind(run.0)
                .fetch_optional(&mut *conn)
                .await
                .map_err(Some)?;
                if expired == Some(true) {
                    let ended: Option<bool> = sqlx::query_scalar(
                        "SELECT pg_terminate_backend(pid, 2000) FROM pg_locks \
                         WHERE locktype = 'advisory' AND granted AND objsubid = 1 \
                           AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                           AND classid::bigint = $1 AND objid::bigint = $2 AND pid <> pg_backend_pid() \
                         LIMIT 1",
                    )
                    .bind(((key as u64) >> 32) as i64)
                    .bind(((key as u64) & 0xffff_ffff) as i64)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(Some)?;
                    if ended.is_some() {
                        tracing::warn!(target: "executus_store::lease", %run, "ended the session of a holder whose lease expired");
                        locked = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                            .bind(key)
                            .fetch_one(&mut *conn)
                            .await
                            .map_err(Some)?;
                    }
                }
            }
            if !locked {
                return Ok(false);
            }
            let taken: Option<uuid::Uuid> = sqlx::query_scalar(ACQUIRE)
                .bind(run.0)
                .bind(&owner)
                .bind(expiry)
                .fetch_optional(&mut *conn)
                .await
                .map_err(Some)?;
            if taken.is_none() {
                // The lock was free but the lease is not: its holder died less than an expiry
                // ago. Wait for the expiry (the process may still run; see the module docs).
                sqlx::query("SELECT pg_advisory_unlock($1)").bind(key).execute(&mut *conn).await.map_err(Some)?;
                return Ok(false);
            }
            Ok(true)
        }
        .await;
        match result {
            Ok(true) => {
                self.held.insert(run, key);
                Ok(Acquired::Granted(LeaseGuard { run, tx: self.tx.clone() }))
            }
            Ok(false) => Ok(Acquired::Held),
            Err(None) => Err(self.lost_error()),
            Err(Some(e)) => {
                if matches!(e, sqlx::Error::Io(_) | sqlx::Error::Protocol(_)) {
                    self.connection_lost(&format!("acquire failed: {e}"));
                }
                Err(self.db(OP, e))
            }
        }
    }

    async fn release(&mut self, run: RunId) {
        let Some(key) = self.held.remove(&run) else { return };
        let Some(conn) = self.conn.as_mut() else { return };
        let done = sqlx::query(
            "WITH gone AS (DELETE FROM run_leases WHERE run_id = $1 AND owner = $2) \
             SELECT pg_advisory_unlock($3), pg_notify($4, $1::text)",
        )
        .bind(run.0)
        .bind(&self.owner)
        .bind(key)
        .bind(QUEUE_CHANNEL)
        .execute(&mut *conn)
        .await;
        if let Err(e) = done {
            tracing::warn!(target: "executus_store::lease", %run, error = %e, "could not release a lease (it expires on its own)");
            if matches!(e, sqlx::Error::Io(_) | sqlx::Error::Protocol(_)) {
                self.connection_lost(&format!("release failed: {e}"));
            }
        }
    }

    async fn release_all(&mut self) -> Result<usize, StoreError> {
        self.defer.store(false, Ordering::SeqCst);
        self.deferred.clear();
        self.holding.clear();
        self.pending.clear();
        let runs: Vec<uuid::Uuid> = self.held.drain().map(|(r, _)| r.0).collect();
        if runs.is_empty() {
            return Ok(0);
        }
        let Some(conn) = self.conn.as_mut() else { return Ok(0) };
        let done = sqlx::query(
            "WITH gone AS (DELETE FROM run_leases WHERE run_id = ANY($1) AND owner = $2) \
             SELECT pg_advisory_unlock_all(), pg_notify($3, 'released')",
        )
        .bind(&runs)
        .bind(&self.owner)
        .bind(QUEUE_CHANNEL)
        .execute(&mut *conn)
        .await;
        match done {
            Ok(_) => {
                tracing::info!(target: "executus_store::lease", owner = %self.owner, runs = runs.len(), "released every lease");
                Ok(runs.len())
            }
            Err(e) => Err(self.db("lease release all", e)),
        }
    }
}
