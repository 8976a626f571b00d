//! Catch-up after a simulated downtime: the store holds a watermark from 3 hours ago
//! (09:30) and the runner starts at 12:30; an hourly job missed 10:00, 11:00 and 12:00.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use executus_schedule::{CatchUp, JobDef, MemoryScheduleStore, ScheduleEvent, ScheduleStore, SkipReason};

use crate::common::{Bench, at, fired, wait};

fn t(h: u32, m: u32) -> DateTime<Utc> {
    at(2025, 1, 1, h, m, 0)
}

async fn after_downtime(policy: CatchUp) -> Bench {
    let store = Arc::new(MemoryScheduleStore::new());
    store.advance("hourly", t(9, 30)).await.unwrap();
    let mut bench = Bench::new(t(12, 30), Duration::ZERO, store);
    bench
        .schedule
        .add_job(JobDef::new("hourly", "0 0 * * * *", "reporter", "go").catch_up(policy))
        .await
        .unwrap();
    bench.start();
    bench
}

#[tokio::test(start_paused = true)]
async fn run_once_runs_exactly_one_catch_up_run_then_keeps_time() {
    let mut bench = after_downtime(CatchUp::RunOnce).await;
    wait(1).await;
    let events = bench.drain();
    assert_eq!(fired(&events), [(t(12, 0), t(12, 30))], "one run, now, for the three missed fires");
    assert!(
        matches!(&events[0], ScheduleEvent::Fired { catch_up_from: Some(first), .. } if *first == t(10, 0))
    );
    assert_eq!(bench.watermark("hourly").await, Some(t(12, 0)));

    // Then the regular 13:00 fire, on time.
    wait(30 * 60).await;
    bench.stop().await;
    let events = bench.drain();
    assert_eq!(fired(&events), [(t(13, 0), t(13, 0))]);
    assert!(
        matches!(
            &events[..],
            [ScheduleEvent::Fired { catch_up_from: None, .. }, ScheduleEvent::RunEnded { .. }]
        ),
        "{events:?}"
    );
    assert_eq!(bench.deliveries().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn skip_runs_nothing_for_missed_fires_and_waits_for_the_next() {
    let mut bench = after_downtime(CatchUp::Skip).await;
    wait(1).await;
    let events = bench.drain();
    assert!(fired(&events).is_empty(), "{events:?}");
    assert_eq!(
        events,
        [ScheduleEvent::Skipped {
            job: "hourly".into(),
            fire: t(12, 0),
            at: t(12, 30),
            reason: SkipReason::CatchUp { first: t(10, 0) },
        }]
    );
    assert_eq!(bench.watermark("hourly").await, Some(t(12, 0)));

    wait(30 * 60).await;
    bench.stop().await;
    assert_eq!(fired(&bench.drain()), [(t(13, 0), t(13, 0))]);
}

#[tokio::test(start_paused = true)]
async fn a_new_job_has_nothing_to_catch_up() {
    // No watermark: the job starts from now, even though 12:00 is in the past.
    let mut bench = Bench::new(t(12, 30), Duration::ZERO, Arc::new(MemoryScheduleStore::new()));
    bench.schedule.add_job(JobDef::new("hourly", "0 0 * * * *", "reporter", "go")).await.unwrap();
    bench.start();
    wait(1).await;
    assert!(bench.drain().is_empty());
    assert_eq!(bench.watermark("hourly").await, Some(t(12, 30)));
    bench.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_crash_between_submission_and_watermark_repeats_at_most_one_fire() {
    // The previous process submitted the 12:00 run but died before writing the watermark,
    // which is still 11:00. At 12:10 the new process sees 12:00 as missed: run_once
    // submits it again, once.
    let store = Arc::new(MemoryScheduleStore::new());
    store.advance("hourly", t(11, 0)).await.unwrap();
    let mut bench = Bench::new(t(12, 10), Duration::ZERO, store);
    bench.schedule.add_job(JobDef::new("hourly", "0 0 * * * *", "reporter", "go")).await.unwrap();
    bench.start();
    wait(1).await;
    bench.stop().await;
    assert_eq!(fired(&bench.drain()), [(t(12, 0), t(12, 10))]);
}
