use super::*;

// A database of its own on the test PostgreSQL (`EXECUTUS_TEST_PG_URL`; under CI=true its
// absence fails the test, elsewhere a loud notice).
#[allow(dead_code)]
#[path = "../../../../../contrib-store/tests/it/pg.rs"]
mod pg;

#[tokio::test]
async fn the_sqlite_store_cache_passes_the_review_cache_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    conformance(executus_store::Store::open(&url).await.unwrap(), "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_cache_passes_the_review_cache_conformance_suite() {
    let Some(db) =
        pg::PgDb::create("the_postgres_store_cache_passes_the_review_cache_conformance_suite").await
    else {
        return;
    };
    conformance(db.open().await, "postgres").await;
}

async fn conformance(store: executus_store::Store, backend: &str) {
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
    assert!(matches!(error, CacheError::Corrupt { backend: b, .. } if b == backend), "{error:?}");
}
