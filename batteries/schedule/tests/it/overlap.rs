//! Overlap policies: a run takes 7 s, the job fires every 5 s.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use executus_schedule::{JobDef, MemoryScheduleStore, Overlap, ScheduleEvent, SkipReason};

use crate::common::{Bench, at, fired, wait};

fn base() -> DateTime<Utc> {
    at(2025, 1, 1, 0, 0, 0)
}

fn secs(s: i64) -> DateTime<Utc> {
    base() + TimeDelta::seconds(s)
}

async fn bench(overlap: Overlap) -> Bench {
    let mut bench = Bench::new(base(), Duration::from_secs(7), Arc::new(MemoryScheduleStore::new()));
    bench
        .schedule
        .add_job(JobDef::new("slow", "*/5 * * * * *", "reporter", "go").overlap(overlap))
        .await
        .unwrap();
    bench.start();
    bench
}

#[tokio::test(start_paused = true)]
async fn skip_drops_a_fire_while_the_previous_run_is_going() {
    let mut bench = bench(Overlap::Skip).await;
    wait(21).await;
    bench.stop().await;
    let events = bench.drain();
    // 5 s: runs until 12 s. 10 s: skipped. 15 s: runs until 22 s. 20 s: skipped.
    assert_eq!(fired(&events), [(secs(5), secs(5)), (secs(15), secs(15))]);
    let skipped: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            ScheduleEvent::Skipped { fire, reason: SkipReason::Overlap, .. } => Some(*fire),
            _ => None,
        })
        .collect();
    assert_eq!(skipped, [secs(10), secs(20)]);
    assert!(events.iter().any(|e| matches!(e, ScheduleEvent::RunEnded { at, status, .. } if *at == secs(12) && status == "completed")));
    assert_eq!(bench.watermark("slow").await, Some(secs(20)), "a skipped fire is handled");
}

#[tokio::test(start_paused = true)]
async fn queue_holds_a_fire_until_the_previous_run_ends() {
    let mut bench = bench(Overlap::Queue).await;
    wait(21).await;
    bench.stop().await;
    let events = bench.drain();
    // 5 s runs 5-12; the 10 s fire waits and runs 12-19; the 15 s fire waits and runs at 19;
    // the 20 s fire is still waiting at the end.
    assert_eq!(fired(&events), [(secs(5), secs(5)), (secs(10), secs(12)), (secs(15), secs(19))]);
    let queued: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            ScheduleEvent::Queued { fire, .. } => Some(*fire),
            _ => None,
        })
        .collect();
    assert_eq!(queued, [secs(10), secs(15), secs(20)]);
    // The waiting 20 s fire was never submitted: the watermark stays at 15 s, so a restart
    // catches it up.
    assert_eq!(bench.watermark("slow").await, Some(secs(15)));
}

#[tokio::test(start_paused = true)]
async fn queue_keeps_only_the_newest_waiting_fire() {
    // A run of 12 s: fires at 10 and 15 both arrive while the first run (5-17) goes on.
    let mut bench = Bench::new(base(), Duration::from_secs(12), Arc::new(MemoryScheduleStore::new()));
    bench
        .schedule
        .add_job(JobDef::new("slow", "*/5 * * * * *", "reporter", "go").overlap(Overlap::Queue))
        .await
        .unwrap();
    bench.start();
    wait(18).await;
    bench.stop().await;
    let events = bench.drain();
    assert_eq!(fired(&events), [(secs(5), secs(5)), (secs(15), secs(17))]);
    assert!(events.iter().any(|e| matches!(e, ScheduleEvent::Skipped { fire, reason: SkipReason::Coalesced, .. } if *fire == secs(10))));
}

#[tokio::test(start_paused = true)]
async fn allow_lets_runs_overlap() {
    let mut bench = bench(Overlap::Allow).await;
    wait(11).await;
    // Runs from 5 s and from 10 s are both going.
    assert_eq!(bench.runtime.active_runs().await, 2);
    wait(10).await;
    bench.stop().await;
    let events = bench.drain();
    assert_eq!(fired(&events), [5, 10, 15, 20].map(|s| (secs(s), secs(s))));
    assert!(
        !events.iter().any(|e| matches!(e, ScheduleEvent::Skipped { .. } | ScheduleEvent::Queued { .. }))
    );
}
