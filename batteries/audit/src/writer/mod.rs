//! [`AuditWriter`]: the [`AuditSink`] that keeps storage I/O off the run loop.
//!
//! `record` puts the record into a bounded channel and returns; a background task drains
//! the channel in batches into an [`AuditStore`].
//!
//! Guarantees:
//! - **No silent loss.** When the channel is full, `record().await` waits for room
//!   (backpressure reaches the run, which is what the core's `AuditSink` contract asks for).
//!   A batch the store rejects with [`PortError::Backend`] is retried whole with exponential
//!   backoff, up to [`WriterOptions::max_retries`] times; a batch that still cannot be stored
//!   (or is rejected as invalid/corrupt, which retrying cannot fix) is reported through
//!   `tracing` at error level (target `executus::audit`) with the batch size, the running
//!   count of unstored records (`failed_total`) and the records themselves as JSON, and is
//!   counted in [`WriterStats::failed`].
//! - **Order.** Records reach the store in the order their `record` calls were accepted.
//! - **[`AuditWriter::flush`]** returns once every record accepted before it is stored or
//!   reported as failed.
//! - **[`AuditWriter::shutdown`]** drains everything accepted, then stops the task. Records
//!   arriving after shutdown (say, from runs that end later) are written straight through
//!   to the store by the caller, with the same retries and reporting: slower, still not
//!   lost.
//! - A panicking store counts as a failed attempt; it does not kill the writer.
//!
//! Not guaranteed: durability of records still in the channel when the process dies or
//! the tokio runtime that runs the task is dropped without `shutdown`. The background task
//! starts lazily on first use, on the runtime of that first call, so the writer can be
//! built outside any async context.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use executus::ports::{AuditRecord, AuditSink, PortError};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::store::AuditStore;

mod task;

use task::Msg;

/// Tuning of an [`AuditWriter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterOptions {
    /// Records the channel holds before `record` waits (default 1024; at least 1).
    pub capacity: usize,
    /// Most records per `append` call (default 256; at least 1).
    pub max_batch: usize,
    /// Retries of a batch after a backend failure before it is reported (default 5).
    pub max_retries: u32,
    /// Wait before the first retry (default 50 ms); doubles per retry.
    pub backoff_base: Duration,
    /// Longest wait between retries (default 2 s).
    pub backoff_max: Duration,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            capacity: 1024,
            max_batch: 256,
            max_retries: 5,
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
        }
    }
}

impl WriterOptions {
    /// The wait before retry `n` (1-based): `backoff_base * 2^(n-1)`, capped at
    /// `backoff_max`.
    pub fn backoff(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.saturating_sub(1));
        self.backoff_base.saturating_mul(factor).min(self.backoff_max)
    }
}

/// Counters of an [`AuditWriter`], since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Records the store accepted.
    pub written: u64,
    /// Records given up on (reported at error level through `tracing`).
    pub failed: u64,
    /// Retried `append` calls (one per retry of a batch, not per record).
    pub retried: u64,
}

#[derive(Debug, Default)]
struct Counters {
    written: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
}

/// What the background task and the write-through path share.
struct Shared {
    store: Arc<dyn AuditStore>,
    options: WriterOptions,
    counters: Counters,
}

/// An [`AuditSink`] writing to an [`AuditStore`] from a background task. See the module
/// docs for its guarantees. Share it as `Arc<AuditWriter>`: keep one handle to call
/// [`flush`](Self::flush) and [`shutdown`](Self::shutdown), and give a clone to
/// `Ports::audit`.
pub struct AuditWriter {
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
    /// The receiver until the task starts (lazily, on the first async call).
    rx: Mutex<Option<mpsc::Receiver<Msg>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for AuditWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditWriter")
            .field("options", &self.shared.options)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl AuditWriter {
    /// A writer to `store` with default [`WriterOptions`].
    pub fn new(store: Arc<dyn AuditStore>) -> Self {
        Self::with_options(store, WriterOptions::default())
    }

    /// A writer to `store` with `options` (zero capacity or batch size count as 1).
    pub fn with_options(store: Arc<dyn AuditStore>, mut options: WriterOptions) -> Self {
        options.capacity = options.capacity.max(1);
        options.max_batch = options.max_batch.max(1);
        let (tx, rx) = mpsc::channel(options.capacity);
        Self {
            tx,
            shared: Arc::new(Shared { store, options, counters: Counters::default() }),
            rx: Mutex::new(Some(rx)),
            task: Mutex::new(None),
        }
    }

    /// The store this writer writes to (for queries).
    pub fn store(&self) -> &Arc<dyn AuditStore> {
        &self.shared.store
    }

    /// The options in effect.
    pub fn options(&self) -> &WriterOptions {
        &self.shared.options
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> WriterStats {
        let c = &self.shared.counters;
        WriterStats {
            written: c.written.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
        }
    }

    /// Records accepted but not yet taken by the background task.
    pub fn queued(&self) -> usize {
        self.shared.options.capacity.saturating_sub(self.tx.capacity())
    }

    /// Waits until every record accepted before this call is stored or reported as failed.
    pub async fn flush(&self) {
        self.ensure_started();
        let (ack, done) = oneshot::channel();
        if self.tx.send(Msg::Flush(ack)).await.is_ok() {
            // An error means the task is gone, and with it everything it held was handled.
            let _ = done.await;
        }
    }

    /// Drains every accepted record into the store and stops the background task. Later
    /// records are written through by their callers. Calling it again does nothing.
    pub async fn shutdown(&self) {
        self.ensure_started();
        let (ack, done) = oneshot::channel();
        if self.tx.send(Msg::Shutdown(ack)).await.is_ok() {
            let _ = done.await;
        }
        let handle = lock(&self.task).take();
        if let Some(handle) = handle
            && let Err(e) = handle.await
        {
            tracing::error!(target: "executus::audit", error = %e, "audit writer task ended abnormally");
        }
    }

    /// Starts the background task on the current runtime if it is not running yet.
    fn ensure_started(&self) {
        let Some(rx) = lock(&self.rx).take() else { return };
        let handle = tokio::spawn(task::run(rx, self.shared.clone()));
        *lock(&self.task) = Some(handle);
    }
}

#[async_trait]
impl AuditSink for AuditWriter {
    async fn record(&self, record: AuditRecord) {
        self.ensure_started();
        if let Err(mpsc::error::SendError(msg)) = self.tx.send(Msg::Record(Box::new(record))).await
            && let Msg::Record(record) = msg
        {
            // The task has stopped (shutdown, or its runtime is gone): write through.
            task::write(&self.shared, std::slice::from_ref(&*record)).await;
        }
    }
}

/// Locks a mutex that guards plain handles; a poisoned one is still consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// True for errors retrying cannot fix.
fn is_permanent(error: &PortError) -> bool {
    matches!(error, PortError::Invalid { .. } | PortError::Corrupt { .. } | PortError::UnknownVersion { .. })
}
