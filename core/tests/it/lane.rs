//! Lanes: capacity, fairness, admission, cancel, panics, shutdown, stats, volume.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use executus::JobId;
use executus::lane::{JobHandle, JobSpec, LaneConfig, LaneError, LaneHandle, ShutdownReport};
use tokio::sync::oneshot;
use tokio::time::Instant;

async fn lane(name: &str, capacity: usize, max_queue: usize) -> LaneHandle {
    let capacity = NonZeroUsize::new(capacity).expect("test capacity is non-zero");
    LaneHandle::spawn(LaneConfig::new(name, capacity, max_queue))
        .await
        .expect("lane starts")
}

fn spec(tenant: &str, label: &str) -> JobSpec {
    JobSpec::new(tenant, label)
}

/// A job that holds its slot until the returned sender fires (or is dropped).
async fn gated(lane: &LaneHandle, tenant: &str) -> (oneshot::Sender<()>, JobHandle<()>) {
    let (open, gate) = oneshot::channel::<()>();
    let handle = lane
        .submit(spec(tenant, "gate"), async move {
            let _ = gate.await;
        })
        .await
        .expect("gate job admitted");
    (open, handle)
}

/// Counts concurrent holders; records the highest count ever seen.
#[derive(Default)]
struct Concurrency {
    now: AtomicUsize,
    max: AtomicUsize,
}

/// Entered when a job starts; leaving happens on drop, so an aborted job leaves too.
struct Entered(Arc<Concurrency>);

impl Concurrency {
    fn enter(self: &Arc<Self>) -> Entered {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        Entered(Arc::clone(self))
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Sets a flag when dropped: proves a job's future really was dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn capacity_is_never_exceeded_and_is_used() {
    let lane = lane("cap", 3, 100).await;
    let seen = Arc::new(Concurrency::default());
    let mut handles = Vec::new();
    for i in 0..40u64 {
        let seen = Arc::clone(&seen);
        let handle = lane
            .submit(spec(&format!("t{}", i % 4), "work"), async move {
                let _in = seen.enter();
                tokio::time::sleep(Duration::from_millis(10 + i % 7)).await;
                i
            })
            .await
            .expect("admitted");
        handles.push(handle);
    }
    let mut sum = 0;
    for handle in handles {
        sum += handle.await.expect("job completes");
    }
    assert_eq!(sum, (0..40).sum::<u64>());
    assert_eq!(
        seen.max.load(Ordering::SeqCst),
        3,
        "exactly capacity at the peak"
    );
    let stats = lane.stats().await.unwrap();
    assert_eq!(
        (stats.completed, stats.running, stats.queued_total()),
        (40, 0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_holds_across_threads_even_while_aborting_running_jobs() {
    let lane = lane("cap-mt", 2, 100).await;
    let seen = Arc::new(Concurrency::default());
    let mut handles = Vec::new();
    for _ in 0..30 {
        let seen = Arc::clone(&seen);
        // Never finishes on its own: only an abort ends it, and its `Entered` guard is
        // released only when the lane really drops the future.
        let handle = lane
            .submit(spec("t", "forever"), async move {
                let _in = seen.enter();
                std::future::pending::<()>().await;
            })
            .await
            .expect("admitted");
        handles.push(handle);
    }
    // Cancel in submission order: each cancel of a running job lets a queued one start.
    for handle in handles {
        let id = handle.id();
        assert!(lane.cancel(id).await, "{id} still held");
        assert_eq!(
            handle.await,
            Err(LaneError::Cancelled {
                lane: "cap-mt".into(),
                job: id
            })
        );
    }
    assert_eq!(seen.max.load(Ordering::SeqCst), 2);
    assert_eq!(
        seen.now.load(Ordering::SeqCst),
        0,
        "every aborted future was dropped"
    );
    let stats = lane.stats().await.unwrap();
    assert_eq!(
        (stats.cancelled, stats.running, stats.completed),
        (30, 0, 0)
    );
}

#[tokio::test]
async fn unequal_tenants_are_served_round_robin() {
    let lane = lane("fair", 1, 100).await;
    let (open, blocker) = gated(&lane, "x").await;
    let started = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut handles = Vec::new();
    for (tenant, n) in [("a", 30), ("b", 10), ("c", 2)] {
        for i in 1..=n {
            let started = Arc::clone(&started);
            let label = format!("{tenant}{i}");
            let handle = lane
                .submit(spec(tenant, &label), async move {
                    started.lock().unwrap().push(label);
                })
                .await
                .expect("admitted");
            handles.push(handle);
        }
    }
    let stats = lane.stats().await.unwrap();
    assert_eq!(stats.running, 1);
    assert_eq!(
        stats.queued,
        BTreeMap::from([("a".into(), 30), ("b".into(), 10), ("c".into(), 2)])
    );

    open.send(()).unwrap();
    blocker.await.unwrap();
    for handle in handles {
        handle.await.unwrap();
    }

    let mut expected = Vec::new();
    for round in 1..=30 {
        for (tenant, n) in [("a", 30), ("b", 10), ("c", 2)] {
            if round <= n {
                expected.push(format!("{tenant}{round}"));
            }
        }
    }
    let started = started.lock().unwrap().clone();
    assert_eq!(&started[..6], ["a1", "b1", "c1", "a2", "b2", "c2"]);
    assert_eq!(&started[6..10], ["a3", "b3", "a4", "b4"]);
    assert_eq!(started, expected);
}

#[tokio::test(start_paused = true)]
async fn a_full_lane_refuses_before_work_and_lists_what_is_pending() {
    let lane = lane("review", 1, 3).await;
    let (open, blocker) = gated(&lane, "x").await;
    let first = lane.submit(spec("t1", "first"), async { 1 }).await.unwrap();
    tokio::time::advance(Duration::from_secs(2)).await;
    let second = lane
        .submit(spec("t2", "second"), async { 2 })
        .await
        .unwrap();
    let third = lane.submit(spec("t1", "third"), async { 3 }).await.unwrap();

    let ran = Arc::new(AtomicBool::new(false));
    let ran_in_job = Arc::clone(&ran);
    let refused = lane
        .submit(spec("t3", "fourth"), async move {
            ran_in_job.store(true, Ordering::SeqCst);
        })
        .await
        .expect_err("queue is at its cap");
    let LaneError::Full {
        lane: name,
        capacity,
        max_queue,
        pending,
        running,
        queued,
        ..
    } = &refused
    else {
        panic!("expected Full, got {refused:?}");
    };
    assert_eq!(
        (name.as_str(), *capacity, *max_queue, *running, *queued),
        ("review", 1, 3, 1, 3)
    );
    // Service order: t1's oldest, then t2, then t1 again.
    let listed: Vec<(JobId, &str, &str, Duration)> = pending
        .iter()
        .map(|p| (p.id, p.tenant.as_str(), p.label.as_str(), p.queued_for))
        .collect();
    assert_eq!(
        listed,
        [
            (first.id(), "t1", "first", Duration::from_secs(2)),
            (second.id(), "t2", "second", Duration::ZERO),
            (third.id(), "t1", "third", Duration::ZERO),
        ]
    );
    let text = refused.to_string();
    assert!(
        text.contains("lane `review` is full: 1 of 1 slots busy, 3 of 3 queue places taken"),
        "{text}"
    );
    assert!(
        text.contains(&format!("{} (tenant `t1`, `first`, queued 2s)", first.id())),
        "{text}"
    );
    assert!(
        text.contains("`second`") && text.contains("`third`"),
        "{text}"
    );

    let stats = lane.stats().await.unwrap();
    assert_eq!(stats.rejected, 1);
    assert_eq!(stats.queued_total(), 3);

    open.send(()).unwrap();
    blocker.await.unwrap();
    assert_eq!(
        (first.await, second.await, third.await),
        (Ok(1), Ok(2), Ok(3))
    );
    assert!(
        !ran.load(Ordering::SeqCst),
        "a refused job's work never runs"
    );
}

#[tokio::test]
async fn the_pending_list_is_truncated_with_a_count() {
    let lane = lane("big", 1, 25).await;
    let (open, blocker) = gated(&lane, "x").await;
    let mut queued = Vec::new();
    for i in 0..25 {
        queued.push(
            lane.submit(spec("t", &format!("job {i}")), async {})
                .await
                .unwrap(),
        );
    }
    let refused = lane
        .submit(spec("t", "one too many"), async {})
        .await
        .unwrap_err();
    let LaneError::Full {
        pending,
        queued: total,
        ..
    } = &refused
    else {
        panic!("expected Full, got {refused:?}");
    };
    assert_eq!((pending.len(), *total), (20, 25));
    let text = refused.to_string();
    assert!(
        text.contains("`job 19`") && !text.contains("`job 20`"),
        "{text}"
    );
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
    let refused = lane
        .submit(spec("t", "second"), async {})
        .await
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "lane `solo` is full: 1 of 1 slots busy, and it keeps no queue"
    );
    open.send(()).unwrap();
    blocker.await.unwrap();
    // The slot is free again: admitted and run.
    assert_eq!(
        lane.submit(spec("t", "third"), async { 3 })
            .await
            .unwrap()
            .await,
        Ok(3)
    );
}

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
    let survivor = lane
        .submit(spec("t", "survivor"), async { "ran" })
        .await
        .unwrap();
    let id = victim.id();

    assert!(lane.cancel(id).await);
    assert_eq!(
        victim.await,
        Err(LaneError::Cancelled {
            lane: "cancel-q".into(),
            job: id
        })
    );
    let stats = lane.stats().await.unwrap();
    assert_eq!((stats.cancelled, stats.running), (1, 1));
    assert_eq!(stats.queued, BTreeMap::from([("t".into(), 1)]));

    assert!(!lane.cancel(id).await, "already gone");
    assert!(!lane.cancel(JobId(9_999)).await, "never existed");

    open.send(()).unwrap();
    blocker.await.unwrap();
    assert_eq!(survivor.await, Ok("ran"));
    assert!(
        !started.load(Ordering::SeqCst),
        "a cancelled queued job never starts"
    );
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
    assert_eq!(
        running.await,
        Err(LaneError::Cancelled {
            lane: "cancel-r".into(),
            job: id
        })
    );
    assert!(
        dropped.load(Ordering::SeqCst),
        "the aborted future was dropped"
    );
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
        Err(LaneError::Panicked {
            lane: "panics".into(),
            job: id,
            message: "boom 7".into()
        })
    );
    assert_eq!(after.await, Ok(5));
    assert_eq!(
        lane.submit(spec("t", "later"), async { 6 })
            .await
            .unwrap()
            .await,
        Ok(6)
    );
    let stats = lane.stats().await.unwrap();
    assert_eq!((stats.failed, stats.completed, stats.running), (1, 2, 0));
}

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
        queued.push(
            lane.submit(spec("u", &format!("q{i}")), async { 0 })
                .await
                .unwrap(),
        );
    }

    let began = Instant::now();
    let report = lane.shutdown(Duration::from_secs(10)).await.unwrap();
    let took = began.elapsed();
    assert_eq!(
        report,
        ShutdownReport {
            discarded: 3,
            drained: 2,
            aborted: 0
        }
    );
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(4),
        "took {took:?}"
    );

    assert_eq!((short.await, long.await), (Ok(1), Ok(3)));
    for handle in queued {
        assert_eq!(
            handle.await,
            Err(LaneError::ShuttingDown {
                lane: "drain".into()
            })
        );
    }
    assert_eq!(
        lane.submit(spec("t", "late"), async {}).await.unwrap_err(),
        LaneError::ShuttingDown {
            lane: "drain".into()
        }
    );
    let stats = lane.stats().await.unwrap();
    assert!(stats.shutting_down);
    assert_eq!(
        (
            stats.running,
            stats.queued_total(),
            stats.completed,
            stats.cancelled,
            stats.rejected
        ),
        (0, 0, 2, 3, 1)
    );
    // Asking again answers with the same report, at once.
    assert_eq!(
        lane.shutdown(Duration::from_secs(10)).await.unwrap(),
        report
    );
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
    assert_eq!(
        report,
        ShutdownReport {
            discarded: 0,
            drained: 1,
            aborted: 1
        }
    );
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(6),
        "took {took:?}"
    );
    assert!(
        dropped.load(Ordering::SeqCst),
        "the straggler's future was dropped before the report"
    );
    assert_eq!(quick.await, Ok("done"));
    assert_eq!(
        slow.await,
        Err(LaneError::ShuttingDown {
            lane: "stragglers".into()
        })
    );
    let stats = lane.stats().await.unwrap();
    assert_eq!((stats.running, stats.completed, stats.cancelled), (0, 1, 1));
}

#[tokio::test]
async fn shutdown_of_an_idle_lane_returns_at_once() {
    let lane = lane("idle", 2, 10).await;
    assert_eq!(
        lane.shutdown(Duration::from_secs(3600)).await.unwrap(),
        ShutdownReport::default()
    );
    assert_eq!(
        lane.submit(spec("t", "late"), async {}).await.unwrap_err(),
        LaneError::ShuttingDown {
            lane: "idle".into()
        }
    );
}

#[tokio::test]
async fn stats_are_right_at_each_point() {
    let lane = lane("stats", 1, 5).await;
    let stats = lane.stats().await.unwrap();
    assert_eq!(
        (
            stats.name.as_str(),
            stats.capacity,
            stats.max_queue,
            stats.running,
            stats.queued_total()
        ),
        ("stats", 1, 5, 0, 0)
    );
    assert_eq!(
        (
            stats.completed,
            stats.rejected,
            stats.cancelled,
            stats.failed
        ),
        (0, 0, 0, 0)
    );
    assert!(!stats.shutting_down);

    let (open, blocker) = gated(&lane, "a").await;
    let a = lane.submit(spec("a", "a1"), async {}).await.unwrap();
    let b = lane.submit(spec("b", "b1"), async {}).await.unwrap();
    let c = lane.submit(spec("b", "b2"), async {}).await.unwrap();
    let stats = lane.stats().await.unwrap();
    assert_eq!(stats.running, 1);
    assert_eq!(
        stats.queued,
        BTreeMap::from([("a".into(), 1), ("b".into(), 2)])
    );

    assert!(lane.cancel(c.id()).await);
    let stats = lane.stats().await.unwrap();
    assert_eq!(
        stats.queued,
        BTreeMap::from([("a".into(), 1), ("b".into(), 1)])
    );
    assert_eq!(stats.cancelled, 1);

    open.send(()).unwrap();
    blocker.await.unwrap();
    a.await.unwrap();
    b.await.unwrap();
    // Awaiting a handle means its completion is already counted.
    let stats = lane.stats().await.unwrap();
    assert_eq!(
        (
            stats.running,
            stats.queued_total(),
            stats.completed,
            stats.cancelled
        ),
        (0, 0, 3, 1)
    );
    assert!(c.await.is_err());
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
    let gone = LaneError::Gone {
        lane: "dropped".into(),
    };
    assert_eq!(running.await, Err(gone.clone()));
    assert_eq!(queued.await, Err(gone));
    assert!(dropped.load(Ordering::SeqCst));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_trivial_jobs_complete() {
    const JOBS: u64 = 10_000;
    let lane = lane("bulk", 16, JOBS as usize).await;
    let mut handles = Vec::with_capacity(JOBS as usize);
    for i in 0..JOBS {
        let tenant = ["a", "b", "c", "d"][(i % 4) as usize];
        handles.push(
            lane.submit(spec(tenant, "trivial"), async move { i })
                .await
                .unwrap(),
        );
    }
    let mut sum = 0;
    for handle in handles {
        sum += handle.await.unwrap();
    }
    assert_eq!(sum, JOBS * (JOBS - 1) / 2);
    let stats = lane.stats().await.unwrap();
    assert_eq!(
        (
            stats.completed,
            stats.rejected,
            stats.running,
            stats.queued_total()
        ),
        (JOBS, 0, 0, 0)
    );
}
