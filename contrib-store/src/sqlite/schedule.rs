//! [`SqliteScheduleStore`]: the schedule battery's `ScheduleStore` on SQLite.
//!
//! Layout (migration `0006_schedule.sql`): `schedule_watermarks` (one row per job: the last
//! fire handled, in Unix milliseconds) and `schedule_jobs` (one row per job definition, the
//! [`JobDef`] as JSON).
//!
//! Guarantees:
//! - `init_watermark` is insert-if-absent then read, in one transaction: concurrent callers
//!   (also in other processes) all get the one value that was stored first.
//! - `advance` is one conditional upsert (`... DO UPDATE ... WHERE fire_ms <
//!   excluded.fire_ms`): a watermark only ever moves forward, whatever the interleaving of
//!   writers.
//! - `delete_job` removes the definition and the watermark in one transaction.
//! - A definition that does not decode is `PortError::Corrupt` naming the job.
//!
//! Watermarks are kept in whole milliseconds, as the battery writes them (its runner never
//! writes finer); a finer instant is truncated to its millisecond.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use executus::ports::PortError;
use executus_schedule::{JobDef, ScheduleStore};
use sqlx::Row;

use crate::error::StoreError;
use crate::sqlite::SqliteStore;
use crate::sqlite::checkpoint::i64_of;

const PORT: &str = "schedule";

/// The schedule store. Cheap to clone (shares the [`SqliteStore`]).
#[derive(Debug, Clone)]
pub struct SqliteScheduleStore {
    store: SqliteStore,
}

impl SqliteScheduleStore {
    /// The schedule store over `store` (also [`SqliteStore::schedule`]).
    pub fn new(store: SqliteStore) -> Self {
        Self { store }
    }

    /// The underlying store.
    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    fn instant(&self, job: &str, ms: i64) -> Result<DateTime<Utc>, StoreError> {
        DateTime::from_timestamp_millis(ms).ok_or_else(|| {
            self.store.undecodable(format!("watermark of job {job:?}: {ms} ms is out of range"))
        })
    }

    async fn read_watermark(&self, job: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        const OP: &str = "schedule watermark";
        let store = &self.store;
        let ms: Option<i64> = store
            .read(OP, || async move {
                sqlx::query_scalar("SELECT fire_ms FROM schedule_watermarks WHERE job = ?1")
                    .bind(job)
                    .fetch_optional(store.reader_pool())
                    .await
                    .map_err(|e| store.db(OP, e))
            })
            .await?;
        ms.map(|ms| self.instant(job, ms)).transpose()
    }

    async fn init(&self, job: &str, at: DateTime<Utc>) -> Result<DateTime<Utc>, StoreError> {
        const OP: &str = "schedule init watermark";
        let store = &self.store;
        let at = at.timestamp_millis();
        let ms: i64 = store
            .write(OP, || async move {
                let now = i64_of(store, "time", store.now_ms())?;
                let mut tx = store.begin_write(OP).await?;
                sqlx::query(
                    "INSERT INTO schedule_watermarks (job, fire_ms, updated_ms) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (job) DO NOTHING",
                )
                .bind(job)
                .bind(at)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| store.db(OP, e))?;
                let ms: i64 = sqlx::query_scalar("SELECT fire_ms FROM schedule_watermarks WHERE job = ?1")
                    .bind(job)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| store.db(OP, e))?;
                tx.commit().await.map_err(|e| store.db(OP, e))?;
                Ok(ms)
            })
            .await?;
        self.instant(job, ms)
    }

    async fn advance_to(&self, job: &str, fire: DateTime<Utc>) -> Result<bool, StoreError> {
        const OP: &str = "schedule advance";
        let store = &self.store;
        let fire = fire.timestamp_millis();
        store
            .write(OP, || async move {
                let now = i64_of(store, "time", store.now_ms())?;
                let mut tx = store.begin_write(OP).await?;
                let done = sqlx::query(
                    "INSERT INTO schedule_watermarks (job, fire_ms, updated_ms) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (job) DO UPDATE SET fire_ms = excluded.fire_ms, updated_ms = excluded.updated_ms \
                     WHERE fire_ms < excluded.fire_ms",
                )
                .bind(job)
                .bind(fire)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| store.db(OP, e))?;
                tx.commit().await.map_err(|e| store.db(OP, e))?;
                Ok(done.rows_affected() > 0)
            })
            .await
    }

    async fn save_job(&self, job: &JobDef) -> Result<(), StoreError> {
        const OP: &str = "schedule put job";
        let json = serde_json::to_string(job)
            .map_err(|e| self.store.rejected(format!("job {:?}", job.id), e.to_string()))?;
        let (id, json) = (job.id.as_str(), json.as_str());
        let store = &self.store;
        store
            .write(OP, || async move {
                let now = i64_of(store, "time", store.now_ms())?;
                let mut tx = store.begin_write(OP).await?;
                sqlx::query(
                    "INSERT INTO schedule_jobs (job, definition, updated_ms) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (job) DO UPDATE SET definition = excluded.definition, updated_ms = excluded.updated_ms",
                )
                .bind(id)
                .bind(json)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| store.db(OP, e))?;
                tx.commit().await.map_err(|e| store.db(OP, e))?;
                Ok(())
            })
            .await
    }

    async fn remove_job(&self, id: &str) -> Result<bool, StoreError> {
        const OP: &str = "schedule delete job";
        let store = &self.store;
        store
            .write(OP, || async move {
                let mut tx = store.begin_write(OP).await?;
                let mut deleted = 0;
                for sql in [
                    "DELETE FROM schedule_jobs WHERE job = ?1",
                    "DELETE FROM schedule_watermarks WHERE job = ?1",
                ] {
                    deleted += sqlx::query(sql)
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| store.db(OP, e))?
                        .rows_affected();
                }
                tx.commit().await.map_err(|e| store.db(OP, e))?;
                Ok(deleted > 0)
            })
            .await
    }

    async fn all_jobs(&self) -> Result<Vec<JobDef>, StoreError> {
        const OP: &str = "schedule jobs";
        let store = &self.store;
        let rows = store
            .read(OP, || async move {
                sqlx::query("SELECT job, definition FROM schedule_jobs ORDER BY job")
                    .fetch_all(store.reader_pool())
                    .await
                    .map_err(|e| store.db(OP, e))
            })
            .await?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get(0).map_err(|e| store.db(OP, e))?;
                let json: String = row.try_get(1).map_err(|e| store.db(OP, e))?;
                let job: JobDef =
                    serde_json::from_str(&json).map_err(|e| store.undecodable(format!("job {id:?}: {e}")))?;
                if job.id != id {
                    return Err(store.undecodable(format!("job {id:?}: the row holds job {:?}", job.id)));
                }
                Ok(job)
            })
            .collect()
    }
}

#[async_trait]
impl ScheduleStore for SqliteScheduleStore {
    async fn watermark(&self, job: &str) -> Result<Option<DateTime<Utc>>, PortError> {
        self.read_watermark(job).await.map_err(|e| e.into_port(PORT))
    }

    async fn init_watermark(&self, job: &str, at: DateTime<Utc>) -> Result<DateTime<Utc>, PortError> {
        self.init(job, at).await.map_err(|e| e.into_port(PORT))
    }

    async fn advance(&self, job: &str, fire: DateTime<Utc>) -> Result<bool, PortError> {
        self.advance_to(job, fire).await.map_err(|e| e.into_port(PORT))
    }

    async fn put_job(&self, job: &JobDef) -> Result<(), PortError> {
        self.save_job(job).await.map_err(|e| e.into_port(PORT))
    }

    async fn delete_job(&self, id: &str) -> Result<bool, PortError> {
        self.remove_job(id).await.map_err(|e| e.into_port(PORT))
    }

    async fn jobs(&self) -> Result<Vec<JobDef>, PortError> {
        self.all_jobs().await.map_err(|e| e.into_port(PORT))
    }
}
