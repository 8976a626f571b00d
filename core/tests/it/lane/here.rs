//! `LaneHandle::run`: a job run on its caller's task while a slot is free, submitted otherwise.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use executus::JobId;
use executus::lane::{LaneError, ShutdownReport};
use tokio::sync::oneshot;

use super::{DropFlag, gated, lane, spec};

#[tokio::test]
async fn with_a_free_slot_the_job_runs_on_the_callers_task_and_is_counted() {
    let lane = lane("here", 1, 4).await;
    // A test's body is not a task: the caller is one.
    let lane_in_task = lane.clone();
    let (caller, ran_on) = tokio::spawn(async move {
        let ran_on = lane_in_task.run(spec("t", "here"), async { tokio::task::try_id() }).await;
        (tokio::task::id(), ran_on)
    })
    .await
    .unwrap();
    assert_eq!(ran_on, Ok(Some(caller)), "no task of its own");
    let stats = lane.stats().await.unwrap();
    assert_eq!((stats.completed, stats.running), (1, 0));
}

#[tokio::test]
async fn a_job_run_here_holds_its_slot_so_others_queue_behind_it() {
    let lane = lane("here-cap", 1, 4).await;
    let (open, gate) = oneshot::channel::<()>();
    let (entered_tx, entered) = oneshot::channel();
    let lane_in_task = lane.clone();
    let holder = tokio::spawn(async move {
        lane_in_task
            .run(spec("a", "holder"), async move {
                let _ = entered_tx.send(());
                let _ = gate.await;
                "held"
            })
            .await
    });
    entered.await.unwrap();
    assert_eq!(lane.stats().await.unwrap().running, 1);
    let queued = lane.submit(spec("b", "queued"), async { 2 }).await.unwrap();
    assert_eq!(lane.stats().await.unwrap().queued_total(), 1, "capacity counts the job run here");
    open.send(()).unwrap();
    assert_eq!(holder.await.unwrap(), Ok("held"));
    assert_eq!(queued.await, Ok(2));
    let stats = lane.stats().await.unwrap();
    assert_eq!((stats.completed, stats.running, stats.queued_total()), (2, 0, 0));
}

#[tokio::test]
async fn with_every_slot_busy_it_waits_its_turn_and_a_full_lane_refuses_it() {
    let lane = lane("here-busy", 1, 1).await;
    let (open, blocker) = gated(&lane, "x").await;
    let lane_in_task = lane.clone();
    let waiting = tokio::spawn(async move {
        (tokio::task::id(), lane_in_task.run(spec("t", "waits"), async { tokio::task::try_id() }).await)
    });
    while lane.stats().await.unwrap().queued_total() == 0 {
        tokio::task::yield_now().await;
    }
    let refused = lane.run(spec("t", "refused"), async { 0 }).await.unwrap_err();
    assert!(matches!(refused, LaneError::Full { queued: 1, running: 1, .. }), "{refused:?}");
    open.send(()).unwrap();
    blocker.await.unwrap();
    let (caller, ran_on) = waiting.await.unwrap();
    assert!(ran_on.unwrap().is_some_and(|id| id != caller), "a queued job runs on a task of its own");
    let stats = lane.stats().await.unwrap();
    assert_eq!((stats.completed, stats.rejected, stats.running), (2, 1, 0));
}

#[tokio::test]
async fn dropping_the_future_drops_the_work_and_frees_the_slot() {
    let lane = lane("here-drop", 1, 4).await;
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = DropFlag(Arc::clone(&dropped));
    let (entered_tx, entered) = oneshot::channel();
    let lane_in_task = lane.clone();
    let caller = tokio::spawn(async move {
        lane_in_task
            .run(spec("t", "abandoned"), async move {
                let _flag = flag;
                let _ = entered_tx.send(());
                std::future::pending::<()>().await;
            })
            .await
    });
    entered.await.unwrap();
    caller.abort();
    assert!(caller.await.unwrap_err().is_cancelled());
    assert!(dropped.load(Ordering::SeqCst), "the work was dropped with its caller");
    let stats = lane.stats().await.unwrap();
    assert_eq!((stats.running, stats.cancelled, stats.completed), (0, 1, 0));
    assert_eq!(lane.run(spec("t", "next"), async { 3 }).await, Ok(3), "the slot is free again");
}

#[tokio::test]
async fn cancel_stops_a_job_run_here_and_a_panic_is_data() {
    let lane = lane("here-cancel", 2, 4).await;
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = DropFlag(Arc::clone(&dropped));
    let lane_in_task = lane.clone();
    let caller = tokio::spawn(async move {
        lane_in_task
            .run(spec("t", "forever"), async move {
                let _flag = flag;
                std::future::pending::<()>().await;
            })
            .await
    });
    while lane.stats().await.unwrap().running == 0 {
        tokio::task::yield_now().await;
    }
    // The first job a lane admits is job 1.
    assert!(lane.cancel(JobId(1)).await);
    assert_eq!(
        caller.await.unwrap(),
        Err(LaneError::Cancelled { lane: "here-cancel".into(), job: JobId(1) })
    );
    assert!(dropped.load(Ordering::SeqCst));

    let boom = lane
        .run(spec("t", "boom"), async {
            if true {
                panic!("boom here");
            }
            0
        })
        .await;
    assert_eq!(
        boom,
        Err(LaneError::Panicked { lane: "here-cancel".into(), job: JobId(2), message: "boom here".into() })
    );
    let stats = lane.stats().await.unwrap();
    assert_eq!((stats.cancelled, stats.failed, stats.running), (1, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_a_job_run_here_aborts_it_at_the_deadline_and_refuses_new_ones() {
    let lane = lane("here-shutdown", 2, 4).await;
    let lane_in_task = lane.clone();
    let straggler =
        tokio::spawn(
            async move { lane_in_task.run(spec("t", "straggler"), std::future::pending::<()>()).await },
        );
    while lane.stats().await.unwrap().running == 0 {
        tokio::task::yield_now().await;
    }
    let report = lane.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!(report, ShutdownReport { discarded: 0, drained: 0, aborted: 1 });
    assert_eq!(straggler.await.unwrap(), Err(LaneError::ShuttingDown { lane: "here-shutdown".into() }));
    assert_eq!(
        lane.run(spec("t", "late"), async {}).await.unwrap_err(),
        LaneError::ShuttingDown { lane: "here-shutdown".into() }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_holds_across_threads_with_jobs_run_here_submitted_and_abandoned() {
    let lane = lane("here-mt", 3, 1_000).await;
    let seen = Arc::new(super::Concurrency::default());
    let mut callers = tokio::task::JoinSet::new();
    for i in 0..200u64 {
        let (lane, seen) = (lane.clone(), Arc::clone(&seen));
        callers.spawn(async move {
            let work = async move {
                let _in = seen.enter();
                tokio::time::sleep(Duration::from_micros(50 + i % 7 * 30)).await;
                i
            };
            match i % 4 {
                // A quarter are abandoned by their caller part-way (the work is dropped).
                0 => tokio::time::timeout(Duration::from_micros(60), lane.run(spec("a", "dropped"), work))
                    .await
                    .ok()
                    .map(|r| r.map(|_| ())),
                1 => Some(lane.submit(spec("b", "submitted"), work).await.unwrap().await.map(|_| ())),
                _ => Some(lane.run(spec("c", "here"), work).await.map(|_| ())),
            }
        });
    }
    while let Some(joined) = callers.join_next().await {
        if let Some(ended) = joined.unwrap() {
            assert_eq!(ended, Ok(()));
        }
    }
    // An abandoned caller whose job had to queue leaves it submitted: it runs on to its end
    // on its own task. Wait for those (a hang guard, not a timing claim).
    let mut stats = lane.stats().await.unwrap();
    for _ in 0..30_000 {
        if stats.running == 0 && stats.queued_total() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        stats = lane.stats().await.unwrap();
    }
    assert_eq!((stats.running, stats.queued_total()), (0, 0), "no slot leaked");
    assert!(seen.max.load(Ordering::SeqCst) <= 3, "capacity exceeded: {}", seen.max.load(Ordering::SeqCst));
    assert_eq!(seen.now.load(Ordering::SeqCst), 0, "every job's work was dropped");
    assert_eq!(stats.completed + stats.cancelled, 200, "{stats:?}");
}
