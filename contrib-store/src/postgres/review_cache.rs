//! [`PgReviewCache`]: the review cache of `executus-run swarm` on PostgreSQL, with the SQLite
//! cache's API and guarantees ([`crate::review_cache`]): `get` marks the row used and returns
//! it in one statement, `put` is one upsert (concurrent writers of a key leave one whole
//! answer), `prune` deletes through the `used_ms` index.

use std::time::Duration;

use super::PgStore;
use super::checkpoint::i64_of;
use crate::error::StoreError;
use crate::review_cache::{EntryRow, ReviewCacheEntry, ReviewCacheKey, entry_of};

/// The review cache on PostgreSQL. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PgReviewCache {
    store: PgStore,
}

impl PgReviewCache {
    /// The review cache in `store`'s database.
    pub fn new(store: PgStore) -> Self {
        Self { store }
    }

    /// The answer stored under `key`, marked used now; `None` on a miss.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn get(&self, key: &ReviewCacheKey) -> Result<Option<String>, StoreError> {
        let store = &self.store;
        let now = i64_of(store, "time", store.now_ms())?;
        sqlx::query_scalar(
            "UPDATE review_cache SET used_ms = $5 \
             WHERE model = $1 AND lens = $2 AND prompt_version = $3 AND content_hash = $4 RETURNING cell",
        )
        .bind(&key.model)
        .bind(&key.lens)
        .bind(&key.prompt_version)
        .bind(&key.content_hash)
        .bind(now)
        .fetch_optional(store.pool())
        .await
        .map_err(|e| store.db("review cache get", e))
    }

    /// Stores `cell` under `key`, replacing what was there.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn put(&self, key: &ReviewCacheKey, cell: &str) -> Result<(), StoreError> {
        let now = i64_of(&self.store, "time", self.store.now_ms())?;
        self.upsert(key, cell, now, now).await
    }

    /// Writes `cell` under `key` with these times (created, last used).
    async fn upsert(
        &self,
        key: &ReviewCacheKey,
        cell: &str,
        created: i64,
        used: i64,
    ) -> Result<(), StoreError> {
        let store = &self.store;
        sqlx::query(
            "INSERT INTO review_cache (model, lens, prompt_version, content_hash, cell, created_ms, used_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (model, lens, prompt_version, content_hash) \
             DO UPDATE SET cell = excluded.cell, created_ms = excluded.created_ms, used_ms = excluded.used_ms",
        )
        .bind(&key.model)
        .bind(&key.lens)
        .bind(&key.prompt_version)
        .bind(&key.content_hash)
        .bind(cell)
        .bind(created)
        .bind(used)
        .execute(store.pool())
        .await
        .map_err(|e| store.db("review cache put", e))?;
        Ok(())
    }

    /// Up to `limit` answers stored under keys after `after` (all when `None`), in key order,
    /// with their times (see [`SqliteReviewCache::entries`](crate::SqliteReviewCache::entries)).
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn entries(
        &self,
        after: Option<&ReviewCacheKey>,
        limit: u32,
    ) -> Result<Vec<ReviewCacheEntry>, StoreError> {
        let store = &self.store;
        let query = match after {
            None => sqlx::query_as::<_, EntryRow>(
                "SELECT model, lens, prompt_version, content_hash, cell, created_ms, used_ms \
                 FROM review_cache ORDER BY model, lens, prompt_version, content_hash LIMIT $1",
            )
            .bind(i64::from(limit)),
            Some(k) => sqlx::query_as::<_, EntryRow>(
                "SELECT model, lens, prompt_version, content_hash, cell, created_ms, used_ms \
                 FROM review_cache WHERE (model, lens, prompt_version, content_hash) > ($2, $3, $4, $5) \
                 ORDER BY model, lens, prompt_version, content_hash LIMIT $1",
            )
            .bind(i64::from(limit))
            .bind(&k.model)
            .bind(&k.lens)
            .bind(&k.prompt_version)
            .bind(&k.content_hash),
        };
        let rows = query.fetch_all(store.pool()).await.map_err(|e| store.db("review cache list", e))?;
        Ok(rows.into_iter().map(entry_of).collect())
    }

    /// Stores `entry` with its own times (replacing what was under its key).
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn put_entry(&self, entry: &ReviewCacheEntry) -> Result<(), StoreError> {
        let created = i64_of(&self.store, "time", entry.created_ms)?;
        let used = i64_of(&self.store, "time", entry.used_ms)?;
        self.upsert(&entry.key, &entry.cell, created, used).await
    }

    /// Deletes the answers not used for longer than `unused_for`; returns how many.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn prune(&self, unused_for: Duration) -> Result<u64, StoreError> {
        let store = &self.store;
        let age = u64::try_from(unused_for.as_millis()).unwrap_or(u64::MAX);
        let cutoff = i64_of(store, "time", store.now_ms().saturating_sub(age))?;
        let done = sqlx::query("DELETE FROM review_cache WHERE used_ms < $1")
            .bind(cutoff)
            .execute(store.pool())
            .await
            .map_err(|e| store.db("review cache prune", e))?;
        Ok(done.rows_affected())
    }

    /// Answers stored.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM review_cache")
            .fetch_one(self.store.pool())
            .await
            .map_err(|e| self.store.db("review cache count", e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
