//! [`ScheduleStore`]: per-job watermarks (the last fire handled) and, optionally, job
//! definitions; [`MemoryScheduleStore`] is the in-memory default.
//!
//! Designed for SQL (executus-store implements it with SQLite): one row per job keyed by
//! the job id, a watermark column, a JSON payload for the definition. Each method is one
//! atomic operation, so the SQL side can make each a single statement or transaction:
//! - [`init_watermark`](ScheduleStore::init_watermark): insert-if-absent, then read
//!   (`INSERT .. ON CONFLICT DO NOTHING; SELECT`).
//! - [`advance`](ScheduleStore::advance): a monotonic conditional upsert
//!   (`.. ON CONFLICT DO UPDATE SET fire = excluded.fire WHERE fire < excluded.fire`), so a
//!   stale writer can never move a watermark backwards.
//!
//! Watermarks are whole milliseconds (the runner never writes finer), so a store may keep
//! them as integer milliseconds since the Unix epoch and round-trip them exactly.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use executus::ports::PortError;

use crate::job::JobDef;

/// Keeps watermarks and job definitions.
#[async_trait]
pub trait ScheduleStore: Send + Sync {
    /// The watermark of `job`: the last fire the runner handled, if any.
    ///
    /// # Errors
    /// A [`PortError`] when the backend fails.
    async fn watermark(&self, job: &str) -> Result<Option<DateTime<Utc>>, PortError>;

    /// Returns the watermark of `job`, first setting it to `at` if the job has none.
    /// Atomic: two concurrent callers get the same answer.
    ///
    /// # Errors
    /// A [`PortError`] when the backend fails.
    async fn init_watermark(&self, job: &str, at: DateTime<Utc>) -> Result<DateTime<Utc>, PortError>;

    /// Moves the watermark of `job` forward to `fire` (creating it if absent); never
    /// backwards. Returns true if it moved. Atomic.
    ///
    /// # Errors
    /// A [`PortError`] when the backend fails.
    async fn advance(&self, job: &str, fire: DateTime<Utc>) -> Result<bool, PortError>;

    /// Saves a job definition, replacing one with the same id. Leaves its watermark alone.
    ///
    /// # Errors
    /// A [`PortError`] when the backend fails.
    async fn put_job(&self, job: &JobDef) -> Result<(), PortError>;

    /// Deletes the job's definition and watermark; true if either existed.
    ///
    /// # Errors
    /// A [`PortError`] when the backend fails.
    async fn delete_job(&self, id: &str) -> Result<bool, PortError>;

    /// Every stored job definition, ordered by id.
    ///
    /// # Errors
    /// A [`PortError`] when the backend fails or a definition does not decode
    /// ([`PortError::Corrupt`] naming the job).
    async fn jobs(&self) -> Result<Vec<JobDef>, PortError>;
}

#[derive(Debug, Default)]
struct State {
    watermarks: BTreeMap<String, DateTime<Utc>>,
    jobs: BTreeMap<String, JobDef>,
}

/// The in-memory store (the default). Cheap to share behind an `Arc`; nothing survives
/// the process.
#[derive(Debug, Default)]
pub struct MemoryScheduleStore {
    state: Mutex<State>,
}

impl MemoryScheduleStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Held only for map operations that cannot panic half-way; never across an await.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl ScheduleStore for MemoryScheduleStore {
    async fn watermark(&self, job: &str) -> Result<Option<DateTime<Utc>>, PortError> {
        Ok(self.state().watermarks.get(job).copied())
    }

    async fn init_watermark(&self, job: &str, at: DateTime<Utc>) -> Result<DateTime<Utc>, PortError> {
        Ok(*self.state().watermarks.entry(job.to_owned()).or_insert(at))
    }

    async fn advance(&self, job: &str, fire: DateTime<Utc>) -> Result<bool, PortError> {
        let mut state = self.state();
        match state.watermarks.get_mut(job) {
            Some(current) if *current >= fire => Ok(false),
            Some(current) => {
                *current = fire;
                Ok(true)
            }
            None => {
                state.watermarks.insert(job.to_owned(), fire);
                Ok(true)
            }
        }
    }

    async fn put_job(&self, job: &JobDef) -> Result<(), PortError> {
        self.state().jobs.insert(job.id.clone(), job.clone());
        Ok(())
    }

    async fn delete_job(&self, id: &str) -> Result<bool, PortError> {
        let mut state = self.state();
        let had_job = state.jobs.remove(id).is_some();
        let had_mark = state.watermarks.remove(id).is_some();
        Ok(had_job || had_mark)
    }

    async fn jobs(&self) -> Result<Vec<JobDef>, PortError> {
        Ok(self.state().jobs.values().cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone};

    use super::*;

    #[tokio::test]
    async fn watermarks_initialise_once_and_only_move_forward() {
        let store = MemoryScheduleStore::new();
        let t0 = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let t1 = t0 + TimeDelta::hours(1);
        assert_eq!(store.watermark("a").await.unwrap(), None);
        assert_eq!(store.init_watermark("a", t0).await.unwrap(), t0);
        assert_eq!(store.init_watermark("a", t1).await.unwrap(), t0, "an existing watermark wins");
        assert!(store.advance("a", t1).await.unwrap());
        assert!(!store.advance("a", t0).await.unwrap(), "never backwards");
        assert!(!store.advance("a", t1).await.unwrap(), "same value is not a move");
        assert_eq!(store.watermark("a").await.unwrap(), Some(t1));
        assert!(store.advance("b", t0).await.unwrap(), "advance creates");
    }

    #[tokio::test]
    async fn jobs_round_trip_and_delete_removes_the_watermark() {
        let store = MemoryScheduleStore::new();
        let t0 = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        store.put_job(&JobDef::new("b", "@hourly", "agent", "go")).await.unwrap();
        store.put_job(&JobDef::new("a", "@daily", "agent", "go")).await.unwrap();
        store.put_job(&JobDef::new("a", "@weekly", "agent", "go")).await.unwrap();
        store.advance("a", t0).await.unwrap();
        let jobs = store.jobs().await.unwrap();
        assert_eq!(
            jobs.iter().map(|j| (j.id.as_str(), j.cron.as_str())).collect::<Vec<_>>(),
            [("a", "@weekly"), ("b", "@hourly")]
        );
        assert!(store.delete_job("a").await.unwrap());
        assert_eq!(store.watermark("a").await.unwrap(), None);
        assert!(!store.delete_job("a").await.unwrap());
    }
}
