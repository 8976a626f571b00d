//! The review cache on every backend (a SQLite file, SQLite in memory, PostgreSQL): round
//! trips, replacing puts, answers that survive reopening, concurrent writers of one key, and
//! use marks and pruning on a manual clock.

use std::sync::Arc;
use std::time::Duration;

use executus::llm::ManualClock;
use executus_store::ReviewCacheKey;

fn key(hash: &str) -> ReviewCacheKey {
    ReviewCacheKey {
        model: "openai/gpt-4.1".into(),
        lens: "security".into(),
        prompt_version: "0123456789abcdef".into(),
        content_hash: hash.into(),
    }
}

#[tokio::test]
async fn answers_round_trip_replace_and_survive_reopening() {
    const TEST: &str = "answers_round_trip_replace_and_survive_reopening";
    for backend in crate::conformance::backends(TEST) {
        let db = crate::conformance::Db::new(backend, TEST).await;
        round_trip(&db).await;
    }
}

async fn round_trip(db: &crate::conformance::Db) {
    let store = db.open().await;
    let cache = store.review_cache();
    assert_eq!(cache.get(&key("a")).await.unwrap(), None);
    cache.put(&key("a"), r#"{"findings":[],"naïve":"é"}"#).await.unwrap();
    assert_eq!(cache.get(&key("a")).await.unwrap().as_deref(), Some(r#"{"findings":[],"naïve":"é"}"#));
    cache.put(&key("a"), "second").await.unwrap();
    assert_eq!(cache.get(&key("a")).await.unwrap().as_deref(), Some("second"));
    let mut other = key("a");
    other.lens = "correctness".into();
    assert_eq!(cache.get(&other).await.unwrap(), None, "keys differing in one field are different entries");
    assert_eq!(cache.count().await.unwrap(), 1);
    if db.shared() {
        store.close().await;
    }

    let reopened = db.open().await.review_cache();
    assert_eq!(reopened.get(&key("a")).await.unwrap().as_deref(), Some("second"));
}

#[tokio::test]
async fn prune_deletes_what_was_not_used_for_a_while() {
    const TEST: &str = "prune_deletes_what_was_not_used_for_a_while";
    for backend in crate::conformance::backends(TEST) {
        let db = crate::conformance::Db::new(backend, TEST).await;
        prune(&db).await;
    }
}

async fn prune(db: &crate::conformance::Db) {
    let clock = Arc::new(ManualClock::at(1_000_000));
    let cache = db.open_with_clock(clock.clone()).await.review_cache();
    cache.put(&key("old"), "1").await.unwrap();
    cache.put(&key("used"), "2").await.unwrap();
    clock.advance(Duration::from_secs(3600));
    // Reading marks it used: it outlives the prune.
    assert!(cache.get(&key("used")).await.unwrap().is_some());
    clock.advance(Duration::from_secs(60));
    assert_eq!(cache.prune(Duration::from_secs(600)).await.unwrap(), 1);
    assert_eq!(cache.get(&key("old")).await.unwrap(), None);
    assert_eq!(cache.get(&key("used")).await.unwrap().as_deref(), Some("2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_of_one_key_leave_one_whole_answer() {
    const TEST: &str = "concurrent_writers_of_one_key_leave_one_whole_answer";
    for backend in crate::conformance::backends(TEST) {
        let db = crate::conformance::Db::new(backend, TEST).await;
        concurrent_writers(db.open().await).await;
    }
}

async fn concurrent_writers(store: executus_store::Store) {
    let answers: Vec<String> =
        (0..16).map(|i| format!("{{\"writer\":{i},\"pad\":\"{}\"}}", "x".repeat(4096))).collect();
    let tasks: Vec<_> = answers
        .iter()
        .cloned()
        .map(|answer| {
            let cache = store.review_cache();
            tokio::spawn(async move { cache.put(&key("same"), &answer).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let cache = store.review_cache();
    let stored = cache.get(&key("same")).await.unwrap().unwrap();
    assert!(answers.contains(&stored), "a whole answer of one writer");
    assert_eq!(cache.count().await.unwrap(), 1);
}
