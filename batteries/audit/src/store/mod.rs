//! [`AuditStore`]: where audit records are kept and queried, and [`MemoryAuditStore`], the
//! in-memory default.
//!
//! The trait is shaped for SQL: one table with an autoincrement id, indexed columns
//! `run_id`, `user`, `tenant`, `at_ms` and `kind`, and the record as a JSON payload. Each
//! method is one statement or one transaction.
//!
//! Contract every implementation keeps:
//! - `append` is all or nothing: either every record of the batch is stored, with ids
//!   larger than every id stored before and in slice order, or none is and an error is
//!   returned. The writer retries a failed batch whole, so a store that stored part of a
//!   batch and then reported failure would duplicate records.
//! - `query` follows [`AuditQuery::matches`] and the ordering and paging rules of
//!   [`crate::query`].
//! - Ids are never reused, also not after `prune`.
//!
//! [`MemoryAuditStore`] keeps everything until pruned; it is for tests, development and
//! hosts that only need recent history in one process. [`conformance`] holds the contract
//! as executable checks, for any implementation's tests.

use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use executus::ports::{AuditRecord, PortError};

use crate::query::{AuditPage, AuditQuery, StoredAuditRecord};

pub mod conformance;

/// Keeps audit records and answers queries over them.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends `records` in order, assigning each a strictly increasing id. All or nothing.
    ///
    /// # Errors
    /// A [`PortError`] if nothing was stored. [`PortError::Backend`] is retried by the
    /// writer; other variants are treated as permanent for that batch.
    async fn append(&self, records: &[AuditRecord]) -> Result<(), PortError>;

    /// One page of the records matching `query`, ascending by id.
    ///
    /// # Errors
    /// [`PortError::Invalid`] for a query [`AuditQuery::validate`] rejects; a
    /// [`PortError`] if the backend fails.
    async fn query(&self, query: &AuditQuery) -> Result<AuditPage, PortError>;

    /// Deletes up to `max_rows` records with `at_ms < before_ms`, oldest ids first, and
    /// returns how many were deleted. Call repeatedly until it returns 0 to prune in small
    /// transactions.
    ///
    /// # Errors
    /// A [`PortError`] if the backend fails (nothing of that call was deleted).
    async fn prune(&self, before_ms: u64, max_rows: usize) -> Result<usize, PortError>;
}

/// Audit records in memory, ordered by id. Queries scan; fine for thousands of records,
/// not for millions (use a SQL store there).
#[derive(Debug, Default)]
pub struct MemoryAuditStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    last_id: u64,
    /// Ascending by id (appends only ever add larger ids).
    rows: Vec<StoredAuditRecord>,
}

impl MemoryAuditStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of records held.
    pub fn len(&self) -> usize {
        self.lock().rows.len()
    }

    /// True if no record is held.
    pub fn is_empty(&self) -> bool {
        self.lock().rows.is_empty()
    }

    /// Every record held, ascending by id.
    pub fn all(&self) -> Vec<StoredAuditRecord> {
        self.lock().rows.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave `Inner` half-updated: every mutation
        // is a single push/retain after all fallible work is done.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl AuditStore for MemoryAuditStore {
    async fn append(&self, records: &[AuditRecord]) -> Result<(), PortError> {
        let mut inner = self.lock();
        inner.rows.reserve(records.len());
        for record in records {
            inner.last_id += 1;
            let id = inner.last_id;
            inner.rows.push(StoredAuditRecord { id, record: record.clone() });
        }
        Ok(())
    }

    async fn query(&self, query: &AuditQuery) -> Result<AuditPage, PortError> {
        let limit = query.validate()?;
        let inner = self.lock();
        let start = query.cursor.map_or(0, |c| inner.rows.partition_point(|r| r.id <= c.after_id));
        let found: Vec<StoredAuditRecord> =
            inner.rows[start..].iter().filter(|r| query.matches(r)).take(limit + 1).cloned().collect();
        Ok(AuditPage::from_overfetch(found, limit))
    }

    async fn prune(&self, before_ms: u64, max_rows: usize) -> Result<usize, PortError> {
        let mut inner = self.lock();
        let mut deleted = 0;
        inner.rows.retain(|r| {
            let delete = deleted < max_rows && r.record.at_ms < before_ms;
            if delete {
                deleted += 1;
            }
            !delete
        });
        Ok(deleted)
    }
}
