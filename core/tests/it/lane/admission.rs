//! Admission: a full lane refuses before any work runs and says what is pending.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use executus::JobId;
use executus::lane::LaneError;

use super::{gated, lane, spec};

#[tokio::test(start_paused = true)]
async fn a_full_lane_refuses_before_work_and_lists_what_is_pending() {
    let lane = lane("review", 1, 3).await;
    let (open, blocker) = gated(&lane, "x").await;
    let first = lane.submit(spec("t1", "first"), async { 1 }).await.unwrap();
    tokio::time::advance(Duration::from_secs(2)).await;
    let second = lane.submit(spec("t2", "second"), async { 2 }).await.unwrap();
    let third = lane.submit(spec("t1", "third"), async { 3 }).await.unwrap();

    let ran = Arc::new(AtomicBool::new(false));
    let ran_in_job = Arc::clone(&ran);
    let refused = lane
        .submit(spec("t3", "fourth"), async move {
            ran_in_job.store(true, Ordering::SeqCst);
        })
        .await
        .expect_err("queue is at its cap");
    let LaneError::Full { lane: name, capacity, max_queue, pending, running, queued, .. } = &refused else {
        panic!("expected Full, got {refused:?}");
    };
    assert_eq!((name.as_str(), *capacity, *max_queue, *running, *queued), ("review", 1, 3, 1, 3));
    // Service order: t1's oldest, then t2, then t1 again.
    let listed: Vec<(JobId, &str, &str, Duration)> =
        pending.iter().map(|p| (p.id, p.tenant.as_str(), p.label.as_str(), p.queued_for)).collect();
    assert_eq!(
        listed,
        [
            (first.id(), "t1", "first", Duration::from_secs(2)),
            (second.id(), "t2", "second", Duration::ZERO),
            (third.id(), "t1", "third", Duration::ZERO),
        ]
    );
    let text = refused.to_string();
    assert!(text.contains("lane `review` is full: 1 of 1 slots busy, 3 of 3 queue places taken"), "{text}");
    assert!(text.contains(&format!("{} (tenant `t1`, `first`, queued 2s)", first.id())), "{text}");
    assert!(text.contains("`second`") && text.contains("`third`"), "{text}");

    let stats = lane.stats().await.unwrap();
    assert_eq!(stats.rejected, 1);
    assert_eq!(stats.queued_total(), 3);

    open.send(()).unwrap();
    blocker.await.unwrap();
    assert_eq!((first.await, second.await, third.await), (Ok(1), Ok(2), Ok(3)));
    assert!(!ran.load(Ordering::SeqCst), "a refused job's work never runs");
}

#[tokio::test]
async fn the_pending_list_is_truncated_with_a_count() {
    let lane = lane("big", 1, 25).await;
    let (open, blocker) = gated(&lane, "x").await;
    let mut queued = Vec::new();
    for i in 0..25 {
        queued.push(lane.submit(spec("t", &format!("job {i}")), async {}).await.unwrap());
    }
    let refused = lane.submit(spec("t", "one too many"), async {}).await.unwrap_err();
    let LaneError::Full { pending, queued: total, .. } = &refused else {
        panic!("expected Full, got {refused:?}");
    };
    assert_eq!((pending.len(), *total), (20, 25));
    let text = refused.to_string();
    assert!(text.contains("`job 19`") && !text.contains("`job 20`"), "{text}");
    assert!(text.ends_with(", and 5 more"), "{text}");
    open.send(()).unwrap();
    blocker.await.unwrap();
    for handle in queued {
        handle.await.unwrap();
    }
}

#[tokio::test]
async fn a_lane_without_queue_refuses_when_every_slot_is_busy() {
    let lane = lane("solo", 1, 0).await;
    let (open, blocker) = gated(&lane, "x").await;
    let refused = lane.submit(spec("t", "second"), async {}).await.unwrap_err();
    assert_eq!(refused.to_string(), "lane `solo` is full: 1 of 1 slots busy, and it keeps no queue");
    open.send(()).unwrap();
    blocker.await.unwrap();
    // The slot is free again: admitted and run.
    assert_eq!(lane.submit(spec("t", "third"), async { 3 }).await.unwrap().await, Ok(3));
}
