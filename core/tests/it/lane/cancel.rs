//! Cancel, panics, and what dropping handles does.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use executus::JobId;
use executus::lane::LaneError;
use tokio::sync::oneshot;

use super::{DropFlag, gated, lane, spec};

#[tokio::test]
async fn cancelling_a_queued_job_resolves_it_and_it_never_starts() {
    let lane = lane("cancel-q", 1, 10).await;
    let (open, blocker) = gated(&lane, "x").await;
    let started = Arc::new(AtomicBool::new(false));
    let started_in_job = Arc::clone(&started);
    let victim = lane
        .submit(spec("t", "victim"), async move {
            started_in_job.store(true, Ordering::SeqCst);
        })
        .await
        .unwrap();
    let survivor = lane.submit(spec("t", "survivor"), async { "ran" }).await.unwrap();
    let id = victim.id();

    assert!(lane.cancel(id).await);
    assert_eq!(victim.await, Err(LaneError::Cancelled { lane: "cancel-q".into(), job: id }));
    let stats = lane.stats().await.unwrap();
    assert_eq!((stats.cancelled, stats.running), (1, 1));
    assert_eq!(stats.queued, BTreeMap::from([("t".into(), 1)]));

    assert!(!lane.cancel(id).await, "already gone");
    assert!(!lane.cancel(JobId(9_999)).await, "never existed");

    open.send(()).unwrap();
    blocker.await.unwrap();
    assert_eq!(survivor.await, Ok("ran"));
    assert!(!started.load(Ordering::SeqCst), "a cancelled queued job never starts");
    let stats = lane.stats().await.unwrap();
    assert_eq!((stats.completed, stats.cancelled, stats.running), (2, 1, 0));
}

#[tokio::test]
async fn cancelling_a_running_job_aborts_it_and_frees_its_slot() {
    let lane = lane("cancel-r", 1, 10).await;
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = DropFlag(Arc::clone(&dropped));
    let (started_tx, started_rx) = oneshot::channel();
    let running = lane
        .submit(spec("t", "forever"), async move {
            let _flag = flag;
            let _ = started_tx.send(());
            std::future::pending::<()>().await;
        })
        .await
        .unwrap();
    let next = lane.submit(spec("t", "next"), async { 7 }).await.unwrap();
    started_rx.await.unwrap();
    assert_eq!(lane.stats().await.unwrap().running, 1);

    let id = running.id();
    assert!(lane.cancel(id).await);
    assert_eq!(running.await, Err(LaneError::Cancelled { lane: "cancel-r".into(), job: id }));
    assert!(dropped.load(Ordering::SeqCst), "the aborted future was dropped");
    assert_eq!(next.await, Ok(7), "the freed slot serves the queue");
    let stats = lane.stats().await.unwrap();
    assert_eq!((stats.cancelled, stats.completed, stats.running), (1, 1, 0));
}

#[tokio::test]
async fn a_panicking_job_resolves_panicked_and_the_lane_keeps_serving() {
    let lane = lane("panics", 1, 10).await;
    let boom = lane
        .submit(spec("t", "boom"), async {
            if true {
                panic!("boom {}", 7);
            }
            0
        })
        .await
        .unwrap();
    let after = lane.submit(spec("t", "after"), async { 5 }).await.unwrap();
    let id = boom.id();
    assert_eq!(
        boom.await,
        Err(LaneError::Panicked { lane: "panics".into(), job: id, message: "boom 7".into() })
    );
    assert_eq!(after.await, Ok(5));
    assert_eq!(lane.submit(spec("t", "later"), async { 6 }).await.unwrap().await, Ok(6));
    let stats = lane.stats().await.unwrap();
    assert_eq!((stats.failed, stats.completed, stats.running), (1, 2, 0));
}
#[tokio::test]
async fn dropping_a_job_handle_does_not_cancel_the_job() {
    let lane = lane("detached", 1, 5).await;
    let (open, blocker) = gated(&lane, "t").await;
    let (done_tx, done_rx) = oneshot::channel();
    let handle = lane
        .submit(spec("t", "detached"), async move {
            let _ = done_tx.send("ran anyway");
        })
        .await
        .unwrap();
    drop(handle);
    open.send(()).unwrap();
    blocker.await.unwrap();
    assert_eq!(done_rx.await, Ok("ran anyway"));
}

#[tokio::test]
async fn dropping_the_last_lane_handle_stops_the_lane_and_resolves_its_jobs() {
    let lane = lane("dropped", 1, 5).await;
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = DropFlag(Arc::clone(&dropped));
    let running = lane
        .submit(spec("t", "running"), async move {
            let _flag = flag;
            std::future::pending::<()>().await;
        })
        .await
        .unwrap();
    let queued = lane.submit(spec("t", "queued"), async {}).await.unwrap();
    let clone = lane.clone();
    drop(lane);
    assert_eq!(clone.name(), "dropped", "a clone keeps the lane alive");
    assert_eq!(clone.stats().await.unwrap().running, 1);
    drop(clone);
    let gone = LaneError::Gone { lane: "dropped".into() };
    assert_eq!(running.await, Err(gone.clone()));
    assert_eq!(queued.await, Err(gone));
    assert!(dropped.load(Ordering::SeqCst));
}
