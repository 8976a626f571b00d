//! The review cache table: round trips, replacing puts, use marks and pruning on a manual
//! clock, concurrent writers of one key, and answers that survive reopening the file.

use std::sync::Arc;
use std::time::Duration;

use executus::llm::ManualClock;
use executus_store::{ReviewCacheKey, SqliteReviewCache};

use crate::common::TempStore;

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
    let tmp = TempStore::new();
    let cache = SqliteReviewCache::new(tmp.open().await);
    assert_eq!(cache.get(&key("a")).await.unwrap(), None);
    cache.put(&key("a"), r#"{"findings":[],"naïve":"é"}"#).await.unwrap();
    assert_eq!(cache.get(&key("a")).await.unwrap().as_deref(), Some(r#"{"findings":[],"naïve":"é"}"#));
    cache.put(&key("a"), "second").await.unwrap();
    assert_eq!(cache.get(&key("a")).await.unwrap().as_deref(), Some("second"));
    let mut other = key("a");
    other.lens = "correctness".into();
    assert_eq!(cache.get(&other).await.unwrap(), None, "keys differing in one field are different entries");
    assert_eq!(cache.count().await.unwrap(), 1);
    cache.store().close().await;

    let reopened = SqliteReviewCache::new(tmp.open().await);
    assert_eq!(reopened.get(&key("a")).await.unwrap().as_deref(), Some("second"));
}

#[tokio::test]
async fn prune_deletes_what_was_not_used_for_a_while() {
    let tmp = TempStore::new();
    let clock = Arc::new(ManualClock::at(1_000_000));
    let cache = SqliteReviewCache::new(tmp.open_with_clock(clock.clone()).await);
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
    let tmp = TempStore::new();
    let store = tmp.open().await;
    let answers: Vec<String> =
        (0..16).map(|i| format!("{{\"writer\":{i},\"pad\":\"{}\"}}", "x".repeat(4096))).collect();
    let tasks: Vec<_> = answers
        .iter()
        .cloned()
        .map(|answer| {
            let cache = SqliteReviewCache::new(store.clone());
            tokio::spawn(async move { cache.put(&key("same"), &answer).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let cache = SqliteReviewCache::new(store);
    let stored = cache.get(&key("same")).await.unwrap().unwrap();
    assert!(answers.contains(&stored), "a whole answer of one writer");
    assert_eq!(cache.count().await.unwrap(), 1);
}
