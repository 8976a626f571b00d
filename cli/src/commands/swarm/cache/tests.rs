use super::*;

#[tokio::test]
async fn the_store_cache_passes_the_review_cache_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let store = executus_store::Store::open(&url).await.unwrap();
    let cache = StoreReviewCache::new(store.review_cache());
    executus_swarm::cache::conformance::check_review_cache(&cache).await.unwrap();

    // An entry that is not a cached cell is a corrupt entry naming the cell, not a panic.
    let key = CacheKey {
        model: "m/x".into(),
        lens: "security".into(),
        prompt_version: "v".into(),
        content_hash: "h".into(),
    };
    store.review_cache().put(&super::key(&key), "{ not a cell").await.unwrap();
    let error = cache.get(&key).await.unwrap_err();
    assert!(matches!(error, CacheError::Corrupt { .. }), "{error}");
    assert!(error.to_string().contains("m/x x security"), "{error}");
}
