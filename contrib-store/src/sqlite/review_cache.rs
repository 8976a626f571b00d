//! [`SqliteReviewCache`]: the review cache of `executus-run swarm` in the store's SQLite file.
//!
//! Layout (migration `0007_review_cache.sql`): one row per answered cell, keyed by
//! [`ReviewCacheKey`] (model spec, lens, the lens prompt's version, the chunk's content hash),
//! the answer as opaque JSON text (the CLI stores `pr_review_swarm::CachedCell`), and when it
//! was made and last used.
//!
//! Guarantees:
//! - [`get`](SqliteReviewCache::get) marks the row used and returns it in one statement; a
//!   miss writes nothing.
//! - [`put`](SqliteReviewCache::put) is one upsert: concurrent writers of the same key (also
//!   in other processes) leave one whole answer, never a mix.
//! - [`prune`](SqliteReviewCache::prune) deletes rows unused for longer than asked, through
//!   the `used_ms` index.
//!
//! What it does not do: interpret the answer (it is the caller's JSON) or know the review's
//! types: the CLI adapts it to `pr_review_swarm::ReviewCache`, and the swarm library's
//! conformance suite runs against it there.

use std::time::Duration;

use crate::error::StoreError;
use crate::sqlite::SqliteStore;
use crate::sqlite::checkpoint::i64_of;

/// What an answer is stored under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReviewCacheKey {
    /// The cell's model spec.
    pub model: String,
    /// The lens.
    pub lens: String,
    /// The version of the lens's prompt.
    pub prompt_version: String,
    /// The chunk's content hash.
    pub content_hash: String,
}

/// One stored answer with its times, as [`SqliteReviewCache::entries`] lists it (and
/// [`SqliteReviewCache::put_entry`] stores it back, times kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewCacheEntry {
    /// What it is stored under.
    pub key: ReviewCacheKey,
    /// The answer (the caller's JSON).
    pub cell: String,
    /// When it was made (ms since the epoch).
    pub created_ms: u64,
    /// When it was last used (ms since the epoch).
    pub used_ms: u64,
}

/// The review cache over a [`SqliteStore`] (see the module docs). Cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteReviewCache {
    store: SqliteStore,
}

impl SqliteReviewCache {
    /// The review cache in `store`'s file.
    pub fn new(store: SqliteStore) -> Self {
        Self { store }
    }

    /// The underlying store.
    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    /// The answer stored under `key`, marked used now; `None` on a miss.
    ///
    /// # Errors
    /// [`StoreError`] naming the operation and the file.
    pub async fn get(&self, key: &ReviewCacheKey) -> Result<Option<String>, StoreError> {
        const OP: &str = "review cache get";
        let store = &self.store;
        store
            .write(OP, || async move {
                let now = i64_of(store, "time", store.now_ms())?;
                let mut tx = store.begin_write(OP).await?;
                let cell: Option<String> = sqlx::query_scalar(
                    "UPDATE review_cache SET used_ms = ?5 \
                     WHERE model = ?1 AND lens = ?2 AND prompt_version = ?3 AND content_hash = ?4 \
                     RETURNING cell",
                )
                .bind(&key.model)
                .bind(&key.lens)
                .bind(&key.prompt_version)
                .bind(&key.content_hash)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| store.db(OP, e))?;
                tx.commit().await.map_err(|e| store.db(OP, e))?;
                Ok(cell)
            })
            .await
    }

    /// Stores `cell` under `key`, replacing what was there.
    ///
    /// # Errors
    /// [`StoreError`] naming the operation and the file.
    pub async fn put(&self, key: &ReviewCacheKey, cell: &str) -> Result<(), StoreError> {
        self.upsert(key, cell, None).await
    }

    /// Writes `cell` under `key` with `times` (created, last used), or the store's clock's now
    /// for both, read inside the write (so a retried write takes the time it commits at).
    async fn upsert(
        &self,
        key: &ReviewCacheKey,
        cell: &str,
        times: Option<(i64, i64)>,
    ) -> Result<(), StoreError> {
        const OP: &str = "review cache put";
        let store = &self.store;
        store
            .write(OP, || async move {
                let (created, used) = match times {
                    Some(times) => times,
                    None => {
                        let now = i64_of(store, "time", store.now_ms())?;
                        (now, now)
                    }
                };
                let mut tx = store.begin_write(OP).await?;
                sqlx::query(
                    "INSERT INTO review_cache \
                     (model, lens, prompt_version, content_hash, cell, created_ms, used_ms) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
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
                .execute(&mut *tx)
                .await
                .map_err(|e| store.db(OP, e))?;
                tx.commit().await.map_err(|e| store.db(OP, e))?;
                Ok(())
            })
            .await
    }

    /// Up to `limit` answers stored under keys after `after` (all when `None`), in key order
    /// (model, lens, prompt version, content hash), with their times: a page of the cache.
    ///
    /// # Errors
    /// [`StoreError`] naming the operation and the file.
    pub async fn entries(
        &self,
        after: Option<&ReviewCacheKey>,
        limit: u32,
    ) -> Result<Vec<ReviewCacheEntry>, StoreError> {
        const OP: &str = "review cache list";
        let store = &self.store;
        let rows: Vec<EntryRow> = store
            .read(OP, || async move {
                let query = match after {
                    None => sqlx::query_as::<_, EntryRow>(
                        "SELECT model, lens, prompt_version, content_hash, cell, created_ms, used_ms \
                         FROM review_cache ORDER BY model, lens, prompt_version, content_hash LIMIT ?1",
                    )
                    .bind(i64::from(limit)),
                    Some(k) => sqlx::query_as::<_, EntryRow>(
                        "SELECT model, lens, prompt_version, content_hash, cell, created_ms, used_ms \
                         FROM review_cache WHERE (model, lens, prompt_version, content_hash) > (?2, ?3, ?4, ?5) \
                         ORDER BY model, lens, prompt_version, content_hash LIMIT ?1",
                    )
                    .bind(i64::from(limit))
                    .bind(&k.model)
                    .bind(&k.lens)
                    .bind(&k.prompt_version)
                    .bind(&k.content_hash),
                };
                query.fetch_all(store.reader_pool()).await.map_err(|e| store.db(OP, e))
            })
            .await?;
        Ok(rows.into_iter().map(entry_of).collect())
    }

    /// Stores `entry` with its own times (replacing what was under its key): how a copy
    /// moves the cache without making every answer new.
    ///
    /// # Errors
    /// [`StoreError`] naming the operation and the file.
    pub async fn put_entry(&self, entry: &ReviewCacheEntry) -> Result<(), StoreError> {
        let created = i64_of(&self.store, "time", entry.created_ms)?;
        let used = i64_of(&self.store, "time", entry.used_ms)?;
        self.upsert(&entry.key, &entry.cell, Some((created, used))).await
    }

    /// Deletes the answers not used for longer than `unused_for`; returns how many.
    ///
    /// # Errors
    /// [`StoreError`] naming the operation and the file.
    pub async fn prune(&self, unused_for: Duration) -> Result<u64, StoreError> {
        const OP: &str = "review cache prune";
        let store = &self.store;
        let age = u64::try_from(unused_for.as_millis()).unwrap_or(u64::MAX);
        store
            .write(OP, || async move {
                let cutoff = i64_of(store, "time", store.now_ms().saturating_sub(age))?;
                let mut tx = store.begin_write(OP).await?;
                let done = sqlx::query("DELETE FROM review_cache WHERE used_ms < ?1")
                    .bind(cutoff)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| store.db(OP, e))?;
                tx.commit().await.map_err(|e| store.db(OP, e))?;
                Ok(done.rows_affected())
            })
            .await
    }

    /// Answers stored.
    ///
    /// # Errors
    /// [`StoreError`] naming the operation and the file.
    pub async fn count(&self) -> Result<u64, StoreError> {
        const OP: &str = "review cache count";
        let store = &self.store;
        let n: i64 = store
            .read(OP, || async move {
                sqlx::query_scalar("SELECT COUNT(*) FROM review_cache")
                    .fetch_one(store.reader_pool())
                    .await
                    .map_err(|e| store.db(OP, e))
            })
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// A listed row: the key's four parts, the answer, its times.
pub(crate) type EntryRow = (String, String, String, String, String, i64, i64);

/// The entry a listed row holds.
pub(crate) fn entry_of(row: EntryRow) -> ReviewCacheEntry {
    let (model, lens, prompt_version, content_hash, cell, created, used) = row;
    ReviewCacheEntry {
        key: ReviewCacheKey { model, lens, prompt_version, content_hash },
        cell,
        created_ms: created.max(0) as u64,
        used_ms: used.max(0) as u64,
    }
}
