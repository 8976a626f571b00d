//! Retention: [`SqliteStore::prune`] deletes data of finished runs older than a cut-off and
//! [`SqliteStore::prune_audit`] audit records older than one, each in small transactions so a
//! large backlog never holds the write lock for long.
//!
//! Guarantees: only runs whose status is `completed` or `failed` and whose last update is
//! older than the cut-off are deleted; a running run or one awaiting approval is never
//! touched, however old. Each batch is its own transaction: an interrupted prune leaves
//! whole runs deleted or kept, never half of one. Audit retention deletes only records
//! whose own `at_ms` is older than the cut-off, oldest ids first. Neither touches any
//! table the store did not create.

use std::time::Duration;

use super::SqliteStore;
use crate::PruneReport;
use crate::error::StoreError;
use crate::sqlite::checkpoint::PRUNE_FINISHED;

impl SqliteStore {
    /// Deletes finished runs whose last update is older than `older_than` (by the store's
    /// clock), at most `prune_batch` rows per transaction.
    ///
    /// # Errors
    /// [`StoreError::Database`] or [`StoreError::Contended`]; batches already committed
    /// stay deleted.
    pub async fn prune(&self, older_than: Duration) -> Result<PruneReport, StoreError> {
        let older_than_ms = u64::try_from(older_than.as_millis()).unwrap_or(u64::MAX);
        let cutoff = self.now_ms().saturating_sub(older_than_ms);
        self.prune_finished_before(cutoff).await
    }

    /// Deletes finished runs last updated before `cutoff_ms` (Unix milliseconds).
    ///
    /// # Errors
    /// As [`SqliteStore::prune`].
    pub async fn prune_finished_before(&self, cutoff_ms: u64) -> Result<PruneReport, StoreError> {
        let cutoff = i64::try_from(cutoff_ms).unwrap_or(i64::MAX);
        let batch = i64::from(self.options().prune_batch.max(1));
        let mut report = PruneReport::default();
        loop {
            let deleted = self
                .write("prune finished runs", || async {
                    let mut tx = self.begin_write("prune finished runs").await?;
                    // Entry rows go with their run (ON DELETE CASCADE); `finish` has usually
                    // deleted them already.
                    let done = sqlx::query(PRUNE_FINISHED)
                        .bind(cutoff)
                        .bind(batch)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| self.db("prune finished runs", e))?;
                    tx.commit().await.map_err(|e| self.db("prune finished runs", e))?;
                    Ok(done.rows_affected())
                })
                .await?;
            report.batches += 1;
            report.finished_runs += deleted;
            if deleted < batch as u64 {
                break;
            }
            // Let queued writers (checkpoint saves) in between batches.
            tokio::task::yield_now().await;
        }
        if report.finished_runs > 0 {
            tracing::info!(target: "executus_store", runs = report.finished_runs, batches = report.batches, "pruned finished runs");
        }
        Ok(report)
    }
}

impl SqliteStore {
    /// Deletes audit records whose `at_ms` is older than `older_than` (by the store's clock),
    /// at most `prune_batch` rows per transaction, oldest ids first.
    ///
    /// # Errors
    /// [`StoreError::Database`] or [`StoreError::Contended`]; batches already committed
    /// stay deleted.
    pub async fn prune_audit(&self, older_than: Duration) -> Result<PruneReport, StoreError> {
        let older_than_ms = u64::try_from(older_than.as_millis()).unwrap_or(u64::MAX);
        self.prune_audit_before(self.now_ms().saturating_sub(older_than_ms)).await
    }

    /// Deletes audit records with `at_ms < cutoff_ms` (Unix milliseconds), in batches.
    ///
    /// # Errors
    /// As [`SqliteStore::prune_audit`].
    pub async fn prune_audit_before(&self, cutoff_ms: u64) -> Result<PruneReport, StoreError> {
        let batch = self.options().prune_batch.max(1) as usize;
        let audit = self.audit();
        let mut report = PruneReport::default();
        loop {
            let deleted = audit.prune_before(cutoff_ms, batch).await?;
            report.batches += 1;
            report.audit_records += deleted;
            if deleted < batch as u64 {
                break;
            }
            // Let queued writers (audit appends, checkpoint saves) in between batches.
            tokio::task::yield_now().await;
        }
        if report.audit_records > 0 {
            tracing::info!(target: "executus_store", records = report.audit_records, batches = report.batches, "pruned audit records");
        }
        Ok(report)
    }
}
