//! [`PgScheduleStore`]: the schedule battery's `ScheduleStore` on PostgreSQL.
//!
//! Layout: `schedule_watermarks` (the last fire handled per job, Unix ms) and
//! `schedule_jobs` (definitions as JSON), keyed by job id (`COLLATE "C"`).
//!
//! Guarantees: `init_watermark` is one statement (insert if absent, then the stored value,
//! also when a concurrent caller inserted first); `advance` is one conditional upsert, so a
//! watermark only ever moves forward and, of N workers advancing it to the same fire at once,
//! exactly one is told it moved — which is how a cron slot is claimed across workers;
//! `delete_job` removes definition and watermark in one transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use executus::ports::PortError;
use executus_schedule::{JobDef, ScheduleStore};
use sqlx::Row;

use super::PgStore;
use super::checkpoint::i64_of;
use crate::error::StoreError;

const PORT: &str = "schedule";

/// The schedule store on PostgreSQL. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PgScheduleStore {
    store: PgStore,
}

impl PgScheduleStore {
    /// The schedule store over `store` (also [`PgStore::schedule`]).
    pub fn new(store: PgStore) -> Self {
        Self { store }
    }

    fn instant(&self, job: &str, ms: i64) -> Result<DateTime<Utc>, StoreError> {
        DateTime::from_timestamp_millis(ms).ok_or_else(|| {
            self.store.undecodable(format!("watermark of job {job:?}: {ms} ms is out of range"))
        })
    }

    async fn read_watermark(&self, job: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let ms: Option<i64> = sqlx::query_scalar("SELECT fire_ms FROM schedule_watermarks WHERE job = $1")
            .bind(job)
            .fetch_optional(self.store.pool())
            .await
            .map_err(|e| self.store.db("schedule watermark", e))?;
        ms.map(|ms| self.instant(job, ms)).transpose()
    }

    async fn init(&self, job: &str, at: DateTime<Utc>) -> Result<DateTime<Utc>, StoreError> {
        const OP: &str = "schedule init watermark";
        let store = &self.store;
        let now = i64_of(store, "time", store.now_ms())?;
        let at = at.timestamp_millis();
        let ms: i64 = store
            .write(OP, || async move {
                // The insert's RETURNING is empty when the row existed; the row is then read
                // in the same statement's snapshot or, if a concurrent insert committed after
                // it began, by the fallback select below.
                let inserted: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO schedule_watermarks (job, fire_ms, updated_ms) VALUES ($1, $2, $3) \
                     ON CONFLICT (job) DO NOTHING RETURNING fire_ms",
                )
                .bind(job)
                .bind(at)
                .bind(now)
                .fetch_optional(store.pool())
                .await
                .map_err(|e| store.db(OP, e))?;
                match inserted {
                    Some(ms) => Ok(ms),
                    None => sqlx::query_scalar("SELECT fire_ms FROM schedule_watermarks WHERE job = $1")
                        .bind(job)
                        .fetch_one(store.pool())
                        .await
                        .map_err(|e| store.db(OP, e)),
                }
            })
            .await?;
        self.instant(job, ms)
    }

    async fn advance_to(&self, job: &str, fire: DateTime<Utc>) -> Result<bool, StoreError> {
        const OP: &str = "schedule advance";
        let store = &self.store;
        let now = i64_of(store, "time", store.now_ms())?;
        let done = sqlx::query(
            "INSERT INTO schedule_watermarks (job, fire_ms, updated_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (job) DO UPDATE SET fire_ms = excluded.fire_ms, updated_ms = excluded.updated_ms \
             WHERE schedule_watermarks.fire_ms < excluded.fire_ms",
        )
        .bind(job)
        .bind(fire.timestamp_millis())
        .bind(now)
        .execute(store.pool())
        .await
        .map_err(|e| store.db(OP, e))?;
        Ok(done.rows_affected() > 0)
    }

    async fn save_job(&self, job: &JobDef) -> Result<(), StoreError> {
        const OP: &str = "schedule put job";
        let store = &self.store;
        let json = serde_json::to_string(job)
            .map_err(|e| store.rejected(format!("job {:?}", job.id), e.to_string()))?;
        let now = i64_of(store, "time", store.now_ms())?;
        sqlx::query(
            "INSERT INTO schedule_jobs (job, definition, updated_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (job) DO UPDATE SET definition = excluded.definition, updated_ms = excluded.updated_ms",
        )
        .bind(&job.id)
        .bind(json)
        .bind(now)
        .execute(store.pool())
        .await
        .map_err(|e| store.db(OP, e))?;
        Ok(())
    }

    async fn remove_job(&self, id: &str) -> Result<bool, StoreError> {
        const OP: &str = "schedule delete job";
        let store = &self.store;
        store
            .write(OP, || async move {
                let mut tx = store.begin(OP).await?;
                let mut deleted = 0;
                for sql in [
                    "DELETE FROM schedule_jobs WHERE job = $1",
                    "DELETE FROM schedule_watermarks WHERE job = $1",
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
        let rows = sqlx::query("SELECT job, definition FROM schedule_jobs ORDER BY job")
            .fetch_all(store.pool())
            .await
            .map_err(|e| store.db(OP, e))?;
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
impl ScheduleStore for PgScheduleStore {
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
