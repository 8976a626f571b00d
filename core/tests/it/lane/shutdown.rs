//! Graceful shutdown, and stats along the way.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use executus::lane::{LaneError, ShutdownReport};
use tokio::time::Instant;

use super::{DropFlag, gated, lane, spec};

#[tokio::test(start_paused = true)]
async fn shutdown_drains_running_jobs_within_the_deadline() {
    let lane = lane("drain", 2, 10).await;
    let short = lane
        .submit(spec("t", "1s"), async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            1
        })
        .await
        .unwrap();
    let long = lane
        .submit(spec("t", "3s"), async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            3
        })
        .await
        .unwrap();
    let mut queued = Vec::new();
    for i in 0..3 {
        queued.push(lane.submit(spec("u", &format!("q{i}")), async { 0 }).await.unwrap());
    }

    let began = Instant::now();
    let report = lane.shutdown(Duration::from_secs(10)).await.unwrap();
    let took = began.elapsed();
    assert_eq!(report, ShutdownReport { discarded: 3, drained: 2, aborted: 0 });
    assert!(took >= Duration::from_secs(3) && took < Duration::from_secs(4), "took {took:?}");

    assert_eq!((short.await, long.await), (Ok(1), Ok(3)));
    for handle in queued {
        assert_eq!(handle.await, Err(LaneError::ShuttingDown { lane: "drain".into() }));
    }
    assert_eq!(
        lane.submit(spec("t", "late"), async {}).await.unwrap_err(),
        LaneError::ShuttingDown { lane: "drain".into() }
    );
    let stats = lane.stats().await.unwrap();
    assert!(stats.shutting_down);
    assert_eq!(
        (stats.running, stats.queued_total(), stats.completed, stats.cancelled, stats.rejected),
        (0, 0, 2, 3, 1)
    );
    // Asking again answers with the same report, at once.
    assert_eq!(lane.shutdown(Duration::from_secs(10)).await.unwrap(), report);
}

#[tokio::test(start_paused = true)]
async fn shutdown_aborts_stragglers_at_the_deadline() {
    let lane = lane("stragglers", 2, 10).await;
    let quick = lane
        .submit(spec("t", "quick"), async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            "done"
        })
        .await
        .unwrap();
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = DropFlag(Arc::clone(&dropped));
    let slow = lane
        .submit(spec("t", "slow"), async move {
            let _flag = flag;
            tokio::time::sleep(Duration::from_secs(3600)).await;
            "never"
        })
        .await
        .unwrap();

    let began = Instant::now();
    let report = lane.shutdown(Duration::from_secs(5)).await.unwrap();
    let took = began.elapsed();
    assert_eq!(report, ShutdownReport { discarded: 0, drained: 1, aborted: 1 });
    assert!(took >= Duration::from_secs(5) && took < Duration::from_secs(6), "took {took:?}");
    assert!(dropped.load(Ordering::SeqCst), "the straggler's future was dropped before the report");
    assert_eq!(quick.await, Ok("done"));
    assert_eq!(slow.await, Err(LaneError::ShuttingDown { lane: "stragglers".into() }));
    let stats = lane.stats().await.unwrap();
    assert_eq!((stats.running, stats.completed, stats.cancelled), (0, 1, 1));
}

#[tokio::test]
async fn shutdown_of_an_idle_lane_returns_at_once() {
    let lane = lane("idle", 2, 10).await;
    assert_eq!(lane.shutdown(Duration::from_secs(3600)).await.unwrap(), ShutdownReport::default());
    assert_eq!(
        lane.submit(spec("t", "late"), async {}).await.unwrap_err(),
        LaneError::ShuttingDown { lane: "idle".into() }
    );
}

#[tokio::test]
async fn stats_are_right_at_each_point() {
    let lane = lane("stats", 1, 5).await;
    let stats = lane.stats().await.unwrap();
    assert_eq!(
        (stats.name.as_str(), stats.capacity, stats.max_queue, stats.running, stats.queued_total()),
        ("stats", 1, 5, 0, 0)
    );
    assert_eq!((stats.completed, stats.rejected, stats.cancelled, stats.failed), (0, 0, 0, 0));
    assert!(!stats.shutting_down);

    let (open, blocker) = gated(&lane, "a").await;
    let a = lane.submit(spec("a", "a1"), async {}).await.unwrap();
    let b = lane.submit(spec("b", "b1"), async {}).await.unwrap();
    let c = lane.submit(spec("b", "b2"), async {}).await.unwrap();
    let stats = lane.stats().await.unwrap();
    assert_eq!(stats.running, 1);
    assert_eq!(stats.queued, BTreeMap::from([("a".into(), 1), ("b".into(), 2)]));

    assert!(lane.cancel(c.id()).await);
    let stats = lane.stats().await.unwrap();
    assert_eq!(stats.queued, BTreeMap::from([("a".into(), 1), ("b".into(), 1)]));
    assert_eq!(stats.cancelled, 1);

    open.send(()).unwrap();
    blocker.await.unwrap();
    a.await.unwrap();
    b.await.unwrap();
    // Awaiting a handle means its completion is already counted.
    let stats = lane.stats().await.unwrap();
    assert_eq!((stats.running, stats.queued_total(), stats.completed, stats.cancelled), (0, 0, 3, 1));
    assert!(c.await.is_err());
}
