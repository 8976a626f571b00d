//! [`CheckpointStore`]: durable, append-only run logs. Default: in memory.
//!
//! A run's checkpoint is a header ([`RunMeta`]) plus an ordered log of entries; each entry
//! is one opaque, versioned payload the core wrote (a fact of the run's state machine). A
//! save appends only what is new, so storage grows with the transcript, never with a copy
//! of it per step. Completing or failing a run deletes its log; what is left are the
//! interrupted runs, which the runtime resumes at start-up.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::PortError;
use crate::identity::Identity;
use crate::ids::RunId;

/// Where a stored run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoredStatus {
    /// Running (or interrupted, if the process died).
    Running,
    /// Paused until a human answers a tool approval.
    AwaitingApproval,
    /// Finished successfully.
    Completed,
    /// Ended without success (failed, cancelled, stopped, partial...).
    Failed,
}

impl StoredStatus {
    /// Snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::AwaitingApproval => "awaiting_approval",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    /// True for statuses a restart should pick up again.
    pub fn is_interrupted(self) -> bool {
        matches!(self, Self::Running | Self::AwaitingApproval)
    }
}

/// A run's header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunMeta {
    /// The run.
    pub run_id: RunId,
    /// Agent name.
    pub agent: String,
    /// Who it runs for.
    pub identity: Identity,
    /// The dispatching run, for child runs.
    pub parent: Option<RunId>,
    /// Creation time, Unix milliseconds.
    pub created_ms: u64,
}

/// One log entry: a sequence number (0-based, gapless per run) and an opaque payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the run's log.
    pub seq: u64,
    /// The payload, as written by the core.
    pub payload: Vec<u8>,
}

/// New entries (and possibly a new status) for one run, part of a group commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAppend {
    /// The run's header; stores create the run row from it on first sight.
    pub meta: RunMeta,
    /// The run's status after this append.
    pub status: StoredStatus,
    /// Entries to append, in order.
    pub entries: Vec<Entry>,
}

/// A stored run: header, status and log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRun {
    /// Header.
    pub meta: RunMeta,
    /// Status.
    pub status: StoredStatus,
    /// Log, in sequence order.
    pub entries: Vec<Entry>,
}

/// This process's hold on a run (see [`CheckpointStore::claim`]): while it lives, no other
/// process sharing the store drives the run; dropping it releases the claim.
pub struct RunClaim {
    _guard: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl RunClaim {
    /// A claim that holds nothing: for stores that live inside one process, where the
    /// runtime itself knows which runs are active.
    pub fn local() -> Self {
        Self { _guard: None }
    }

    /// A claim held until `guard` is dropped (a lock file, a lease...).
    pub fn new(guard: impl std::any::Any + Send + Sync) -> Self {
        Self { _guard: Some(Box::new(guard)) }
    }
}

impl std::fmt::Debug for RunClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunClaim").field("held", &self._guard.is_some()).finish()
    }
}

/// Durable storage of run checkpoints.
#[async_trait]
pub trait CheckpointStore: Send + Sync {
    /// Appends entries for several runs at once (one transaction where the backend has
    /// them: this is the group commit). An entry whose `seq` already exists for its run is
    /// ignored (appends are idempotent).
    ///
    /// # Errors
    /// A [`PortError`] when the backend fails; nothing of the batch is then guaranteed.
    async fn append(&self, batch: &[RunAppend]) -> Result<(), PortError>;

    /// Loads a run's header, status and log.
    ///
    /// # Errors
    /// A [`PortError`] when the backend fails.
    async fn load(&self, run: RunId) -> Result<Option<StoredRun>, PortError>;

    /// Marks a run finished (`Completed` or `Failed`) and deletes its log.
    ///
    /// # Errors
    /// A [`PortError`] when the backend fails.
    async fn finish(&self, run: RunId, status: StoredStatus) -> Result<(), PortError>;

    /// Runs that neither completed nor failed (running or awaiting approval), oldest first.
    ///
    /// # Errors
    /// A [`PortError`] when the backend fails.
    async fn list_interrupted(&self) -> Result<Vec<(RunMeta, StoredStatus)>, PortError>;

    /// Claims `run` for this process, so that two processes sharing the store never drive
    /// the same run at once (both would execute its tool calls): `Ok(None)` when another
    /// live process holds it. The claim lasts until the returned [`RunClaim`] is dropped or
    /// its process ends, however it ends (a killed process holds nothing). The runtime
    /// claims every run it starts or resumes, for as long as it drives it.
    ///
    /// The default grants every claim: right for stores that live inside one process.
    ///
    /// # Errors
    /// A [`PortError`] when the backend cannot tell.
    async fn claim(&self, run: RunId) -> Result<Option<RunClaim>, PortError> {
        let _ = run;
        Ok(Some(RunClaim::local()))
    }
}

/// The default store: a map in memory, which also counts the payload bytes written (so
/// tests can prove appends are incremental).
#[derive(Debug, Default)]
pub struct MemoryCheckpointStore {
    runs: Mutex<HashMap<RunId, StoredRun>>,
    bytes_written: AtomicU64,
    appends: AtomicU64,
}

impl MemoryCheckpointStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Payload bytes written so far (all runs, including deleted ones).
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written.load(Ordering::Relaxed)
    }

    /// Number of `append` calls (group commits) so far.
    pub fn append_calls(&self) -> u64 {
        self.appends.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, StoredRun>> {
        // A panic while holding this lock cannot leave the map half-updated in a way that
        // matters (each operation is a single insert/remove), so recover from poisoning.
        self.runs.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl CheckpointStore for MemoryCheckpointStore {
    async fn append(&self, batch: &[RunAppend]) -> Result<(), PortError> {
        self.appends.fetch_add(1, Ordering::Relaxed);
        let mut runs = self.lock();
        for append in batch {
            let run = runs.entry(append.meta.run_id).or_insert_with(|| StoredRun {
                meta: append.meta.clone(),
                status: append.status,
                entries: Vec::new(),
            });
            run.status = append.status;
            for entry in &append.entries {
                let next = run.entries.last().map_or(0, |e| e.seq + 1);
                if entry.seq < next {
                    continue;
                }
                if entry.seq > next {
                    return Err(PortError::Invalid {
                        port: "checkpoint",
                        what: format!("entry for run {}", append.meta.run_id),
                        reason: format!("sequence gap: expected {next}, got {}", entry.seq),
                    });
                }
                self.bytes_written.fetch_add(entry.payload.len() as u64, Ordering::Relaxed);
                run.entries.push(entry.clone());
            }
        }
        Ok(())
    }

    async fn load(&self, run: RunId) -> Result<Option<StoredRun>, PortError> {
        Ok(self.lock().get(&run).cloned())
    }

    async fn finish(&self, run: RunId, _status: StoredStatus) -> Result<(), PortError> {
        self.lock().remove(&run);
        Ok(())
    }

    async fn list_interrupted(&self) -> Result<Vec<(RunMeta, StoredStatus)>, PortError> {
        let mut out: Vec<_> = self
            .lock()
            .values()
            .filter(|r| r.status.is_interrupted())
            .map(|r| (r.meta.clone(), r.status))
            .collect();
        out.sort_by_key(|(m, _)| (m.created_ms, m.run_id));
        Ok(out)
    }
}
