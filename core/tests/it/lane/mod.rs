//! Lanes: capacity, fairness and volume here; admission, cancel, shutdown and jobs run on the
//! caller's task in submodules.

mod admission;
mod cancel;
mod here;
mod shutdown;

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use executus::lane::{JobHandle, JobSpec, LaneConfig, LaneError, LaneHandle};
use tokio::sync::oneshot;

pub(super) async fn lane(name: &str, capacity: usize, max_queue: usize) -> LaneHandle {
    let capacity = NonZeroUsize::new(capacity).expect("test capacity is non-zero");
    LaneHandle::spawn(LaneConfig::new(name, capacity, max_queue)).await.expect("lane starts")
}

pub(super) fn spec(tenant: &str, label: &str) -> JobSpec {
    JobSpec::new(tenant, label)
}

/// A job that holds its slot until the returned sender fires (or is dropped).
pub(super) async fn gated(lane: &LaneHandle, tenant: &str) -> (oneshot::Sender<()>, JobHandle<()>) {
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
pub(super) struct Concurrency {
    pub(super) now: AtomicUsize,
    pub(super) max: AtomicUsize,
}

/// Entered when a job starts; leaving happens on drop, so an aborted job leaves too.
pub(super) struct Entered(Arc<Concurrency>);

impl Concurrency {
    pub(super) fn enter(self: &Arc<Self>) -> Entered {
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
pub(super) struct DropFlag(pub(super) Arc<AtomicBool>);

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
    assert_eq!(seen.max.load(Ordering::SeqCst), 3, "exactly capacity at the peak");
    let stats = lane.stats().await.unwrap();
    assert_eq!((stats.completed, stats.running, stats.queued_total()), (40, 0, 0));
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
        assert_eq!(handle.await, Err(LaneError::Cancelled { lane: "cap-mt".into(), job: id }));
    }
    // The safety property only: under load a job can be cancelled before its task is first
    // polled (the abort wins the biased select), so the peak may be below capacity here;
    // `capacity_is_never_exceeded_and_is_used` proves the slots do get used.
    assert!(seen.max.load(Ordering::SeqCst) <= 2, "capacity exceeded: {}", seen.max.load(Ordering::SeqCst));
    assert_eq!(seen.now.load(Ordering::SeqCst), 0, "every aborted future was dropped");
    let stats = lane.stats().await.unwrap();
    assert_eq!((stats.cancelled, stats.running, stats.completed), (30, 0, 0));
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
    assert_eq!(stats.queued, BTreeMap::from([("a".into(), 30), ("b".into(), 10), ("c".into(), 2)]));

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
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_trivial_jobs_complete() {
    const JOBS: u64 = 10_000;
    let lane = lane("bulk", 16, JOBS as usize).await;
    let mut handles = Vec::with_capacity(JOBS as usize);
    for i in 0..JOBS {
        let tenant = ["a", "b", "c", "d"][(i % 4) as usize];
        handles.push(lane.submit(spec(tenant, "trivial"), async move { i }).await.unwrap());
    }
    let mut sum = 0;
    for handle in handles {
        sum += handle.await.unwrap();
    }
    assert_eq!(sum, JOBS * (JOBS - 1) / 2);
    let stats = lane.stats().await.unwrap();
    assert_eq!((stats.completed, stats.rejected, stats.running, stats.queued_total()), (JOBS, 0, 0, 0));
}
