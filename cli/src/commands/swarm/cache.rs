//! The swarm's review cache in the store: `executus_store::AnyReviewCache` (the `review_cache`
//! table, in the SQLite file or in PostgreSQL) adapted to `executus_swarm::ReviewCache`, the cached answer kept as the
//! library's `CachedCell` JSON. At the end of each review ([`ReviewCache::flush`]) answers not
//! used for [`RETENTION`] are deleted, so the table holds what recent pull requests use.

use async_trait::async_trait;
use executus_store::{AnyReviewCache, ReviewCacheKey};
use executus_swarm::cache::CacheError;
use executus_swarm::{CacheKey, CachedCell, ReviewCache};

/// Answers unused for this long are pruned at the end of a review.
pub const RETENTION: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// The store's review cache as a `ReviewCache`.
#[derive(Debug, Clone)]
pub struct StoreReviewCache {
    inner: AnyReviewCache,
}

impl StoreReviewCache {
    /// Over `inner`.
    pub fn new(inner: AnyReviewCache) -> Self {
        Self { inner }
    }
}

fn key(key: &CacheKey) -> ReviewCacheKey {
    ReviewCacheKey {
        model: key.model.clone(),
        lens: key.lens.clone(),
        prompt_version: key.prompt_version.clone(),
        content_hash: key.content_hash.clone(),
    }
}

#[async_trait]
impl ReviewCache for StoreReviewCache {
    async fn get(&self, k: &CacheKey) -> Result<Option<CachedCell>, CacheError> {
        let text = self.inner.get(&key(k)).await.map_err(|e| CacheError::Backend {
            backend: self.inner.backend_name(),
            message: e.to_string(),
        })?;
        text.map(|text| {
            serde_json::from_str(&text).map_err(|e| CacheError::Corrupt {
                backend: self.inner.backend_name(),
                model: k.model.clone(),
                lens: k.lens.clone(),
                reason: e.to_string(),
            })
        })
        .transpose()
    }

    async fn put(&self, k: &CacheKey, cell: &CachedCell) -> Result<(), CacheError> {
        let text = serde_json::to_string(cell).map_err(|e| CacheError::Backend {
            backend: self.inner.backend_name(),
            message: format!("cannot encode: {e}"),
        })?;
        self.inner
            .put(&key(k), &text)
            .await
            .map_err(|e| CacheError::Backend { backend: self.inner.backend_name(), message: e.to_string() })
    }

    async fn flush(&self) -> Result<(), CacheError> {
        self.inner
            .prune(RETENTION)
            .await
            .map(|_| ())
            .map_err(|e| CacheError::Backend { backend: self.inner.backend_name(), message: e.to_string() })
    }
}

#[cfg(test)]
mod tests;
