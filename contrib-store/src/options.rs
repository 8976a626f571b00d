//! [`StoreOptions`]: how a store connects and behaves, for both backends (the wall clock is
//! the provider crate's `executus::llm::Clock`, injected so retention can be tested without
//! waiting).

use std::sync::Arc;
use std::time::Duration;

use executus::llm::{Clock, SystemClock};

/// How the store connects and behaves. `StoreOptions::default()` suits most hosts.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoreOptions {
    /// How long one statement waits for another connection's lock before SQLite reports
    /// busy (default 5 s).
    pub busy_timeout: Duration,
    /// Attempts of one write transaction when it still meets a lock (default 8).
    pub write_attempts: u32,
    /// Reader connections (default 4; an in-memory store always uses one connection).
    pub readers: u32,
    /// Rows deleted per retention transaction (default 500), so pruning never holds the
    /// write lock for long.
    pub prune_batch: u32,
    /// Compress checkpoint payloads (default true; see [`crate::checkpoint`]).
    pub compress: bool,
    /// `synchronous = FULL` instead of `NORMAL`: every commit is synced to disk, surviving
    /// power loss too, at the cost of one fsync per commit (default false).
    pub synchronous_full: bool,
    /// The wall clock for `updated_ms` and retention (default: the system clock).
    pub clock: Arc<dyn Clock>,
    /// PostgreSQL: connections in the pool (default 8). The lease connection and the
    /// notification listener are extra, one each, outside the pool.
    pub pg_connections: u32,
    /// PostgreSQL: how long a run's lease lasts without a heartbeat (default 10 s). A worker
    /// that dies is replaced within this time; see [`crate::postgres::lease`].
    pub lease_expiry: Duration,
    /// PostgreSQL: the server-side `client_connection_check_interval` set on every
    /// connection (default 1 s): a query whose client vanished is cancelled within this
    /// time, so a worker killed inside a long statement releases its locks.
    pub connection_check_interval: Duration,
    /// PostgreSQL: who this process is in lease rows (default `<host>:<pid>:<random>`).
    pub owner: Option<String>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            busy_timeout: Duration::from_secs(5),
            write_attempts: 8,
            readers: 4,
            prune_batch: 500,
            compress: true,
            synchronous_full: false,
            clock: Arc::new(SystemClock),
            pg_connections: 8,
            lease_expiry: Duration::from_secs(10),
            connection_check_interval: Duration::from_secs(1),
            owner: None,
        }
    }
}

impl StoreOptions {
    /// Uses this clock.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the busy timeout.
    #[must_use]
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Sets the attempts of one write transaction under contention (at least 1).
    #[must_use]
    pub fn write_attempts(mut self, attempts: u32) -> Self {
        self.write_attempts = attempts.max(1);
        self
    }

    /// Turns payload compression on or off (existing rows stay readable either way).
    #[must_use]
    pub fn compress(mut self, on: bool) -> Self {
        self.compress = on;
        self
    }

    /// Syncs every commit to disk (`synchronous = FULL`): survives power loss too, at one
    /// fsync per commit.
    #[must_use]
    pub fn synchronous_full(mut self, on: bool) -> Self {
        self.synchronous_full = on;
        self
    }

    /// Sets the retention batch size (at least 1).
    #[must_use]
    pub fn prune_batch(mut self, rows: u32) -> Self {
        self.prune_batch = rows.max(1);
        self
    }

    /// PostgreSQL: sets the pool size (at least 2).
    #[must_use]
    pub fn pg_connections(mut self, connections: u32) -> Self {
        self.pg_connections = connections.max(2);
        self
    }

    /// PostgreSQL: sets the lease expiry (at least 1 s; heartbeats go out every quarter of it).
    #[must_use]
    pub fn lease_expiry(mut self, expiry: Duration) -> Self {
        self.lease_expiry = expiry.max(Duration::from_secs(1));
        self
    }

    /// PostgreSQL: sets `client_connection_check_interval` (at least 100 ms).
    #[must_use]
    pub fn connection_check_interval(mut self, interval: Duration) -> Self {
        self.connection_check_interval = interval.max(Duration::from_millis(100));
        self
    }

    /// PostgreSQL: names this process in lease rows (shown by `executus-run worker` logs and
    /// the `run_leases` table).
    #[must_use]
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    /// Sets the number of reader connections (at least 1).
    #[must_use]
    pub fn readers(mut self, readers: u32) -> Self {
        self.readers = readers.max(1);
        self
    }
}
