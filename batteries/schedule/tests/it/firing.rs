//! Fires on time, in the right time zone, with jitter; failures; graceful stop.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use executus::Identity;
use executus::ports::Schedule;
use executus_schedule::{JobDef, MemoryScheduleStore, ScheduleEvent};

use crate::common::{Bench, at, fired, wait};

#[tokio::test(start_paused = true)]
async fn a_job_fires_on_time_and_its_runs_are_delivered() {
    let base = at(2025, 1, 1, 0, 0, 0);
    let mut bench = Bench::new(base, Duration::ZERO, Arc::new(MemoryScheduleStore::new()));
    let who = Identity::new("ops", "acme");
    bench
        .schedule
        .add_job(
            JobDef::new("tick", "*/5 * * * * *", "reporter", "status?")
                .identity(who.clone())
                .lane("scheduled"),
        )
        .await
        .unwrap();
    bench.start();
    wait(21).await;
    bench.stop().await;

    let events = bench.drain();
    let secs = |s| base + TimeDelta::seconds(s);
    // The fire at 00:00:00 is not after the new job's watermark (now); then every 5 s,
    // each submitted exactly at its fire time.
    assert_eq!(fired(&events), [5, 10, 15, 20].map(|s| (secs(s), secs(s))));
    assert!(events.iter().all(|e| e.job() == "tick"));

    let delivered = bench.deliveries();
    assert_eq!(delivered.len(), 4, "{delivered:?}");
    for item in &delivered {
        assert_eq!(item.agent, "reporter");
        assert_eq!(item.status, "completed");
        assert_eq!(item.output.as_deref(), Some("report"));
        assert_eq!(item.identity, who);
    }
    assert_eq!(bench.fake.calls_for("m"), 4);
    assert_eq!(bench.fake.requests_for("m")[0].messages[0].text(), "status?");
    assert_eq!(bench.watermark("tick").await, Some(secs(20)));
}

async fn first_fire_in_paris(base: chrono::DateTime<chrono::Utc>, hours: u64) -> Vec<ScheduleEvent> {
    let mut bench = Bench::new(base, Duration::ZERO, Arc::new(MemoryScheduleStore::new()));
    bench
        .schedule
        .add_job(JobDef::new("digest", "0 0 9 * * *", "reporter", "digest").timezone("Europe/Paris"))
        .await
        .unwrap();
    bench.start();
    wait(hours * 3600).await;
    bench.stop().await;
    bench.drain()
}

#[tokio::test(start_paused = true)]
async fn a_daily_paris_job_fires_at_the_right_utc_instant() {
    // Winter: 09:00 in Paris is 08:00 UTC. Start at 06:00 UTC, wait 3 hours.
    let events = first_fire_in_paris(at(2025, 1, 15, 6, 0, 0), 3).await;
    assert_eq!(fired(&events), [(at(2025, 1, 15, 8, 0, 0), at(2025, 1, 15, 8, 0, 0))]);
    // Summer: 09:00 in Paris is 07:00 UTC.
    let events = first_fire_in_paris(at(2025, 7, 15, 6, 0, 0), 3).await;
    assert_eq!(fired(&events), [(at(2025, 7, 15, 7, 0, 0), at(2025, 7, 15, 7, 0, 0))]);
}

#[tokio::test(start_paused = true)]
async fn jitter_delays_each_fire_by_its_deterministic_amount() {
    let base = at(2025, 1, 1, 0, 0, 0);
    let mut bench = Bench::new(base, Duration::ZERO, Arc::new(MemoryScheduleStore::new()));
    let def = JobDef::new("spread", "*/10 * * * * *", "reporter", "go").jitter(Duration::from_secs(3));
    bench.schedule.add_job(def).await.unwrap();
    let job = bench.schedule.job("spread").unwrap();
    bench.start();
    wait(25).await;
    bench.stop().await;

    let expected: Vec<_> = [10, 20]
        .map(|s| {
            let fire = base + TimeDelta::seconds(s);
            (fire, fire + TimeDelta::from_std(job.jitter_for(fire, 42)).unwrap())
        })
        .into();
    assert_eq!(fired(&bench.drain()), expected);
    assert!(expected.iter().any(|(fire, at)| at > fire), "seed 42 gives some delay: {expected:?}");
}

#[tokio::test(start_paused = true)]
async fn a_fire_that_cannot_be_submitted_is_reported_and_the_schedule_goes_on() {
    let base = at(2025, 1, 1, 0, 0, 0);
    let mut bench = Bench::new(base, Duration::ZERO, Arc::new(MemoryScheduleStore::new()));
    bench.schedule.add_job(JobDef::new("ghost", "*/5 * * * * *", "nobody", "go")).await.unwrap();
    bench
        .schedule
        .add_job(JobDef::new("lost", "*/5 * * * * *", "reporter", "go").lane("nowhere"))
        .await
        .unwrap();
    bench.start();
    wait(11).await;
    bench.stop().await;

    let failures: Vec<(String, String)> = bench
        .drain()
        .into_iter()
        .filter_map(|e| match e {
            ScheduleEvent::Failed { job, error, .. } => Some((job, error)),
            _ => None,
        })
        .collect();
    assert_eq!(failures.len(), 4, "two fires of two jobs: {failures:?}");
    assert!(failures.iter().any(|(job, error)| job == "ghost" && error.contains("unknown agent \"nobody\"")));
    assert!(failures.iter().any(|(job, error)| job == "lost" && error.contains("unknown lane \"nowhere\"")));
    // Handled fires move the watermark, so a restart does not retry them.
    assert_eq!(bench.watermark("ghost").await, Some(base + TimeDelta::seconds(10)));
    assert_eq!(bench.fake.calls_for("m"), 0);
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_the_loop_at_once_and_lets_submitted_runs_finish() {
    let base = at(2025, 1, 1, 0, 0, 0);
    let mut bench = Bench::new(base, Duration::from_secs(30), Arc::new(MemoryScheduleStore::new()));
    bench.schedule.add_job(JobDef::new("long", "*/5 * * * * *", "reporter", "go")).await.unwrap();
    bench.start();
    wait(6).await;

    // A second loop on the same schedule refuses to start (it would double-fire).
    let second = tokio::time::timeout(
        Duration::from_millis(1),
        bench.schedule.run(bench.runtime.submitter(), tokio_util::sync::CancellationToken::new()),
    )
    .await;
    assert!(second.is_ok(), "a second run() returns at once");

    assert_eq!(bench.stop().await, Duration::ZERO, "run() returned without waiting for anything");
    wait(60).await;
    let events = bench.drain();
    assert_eq!(fired(&events), [(base + TimeDelta::seconds(5), base + TimeDelta::seconds(5))]);
    // The run submitted at 5 s finished at 35 s and was delivered, though the loop was gone.
    let delivered = bench.deliveries();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].status, "completed");
    assert!(
        !events.iter().any(|e| matches!(e, ScheduleEvent::RunEnded { .. })),
        "the loop no longer watches"
    );
}

#[tokio::test(start_paused = true)]
async fn shared_runners_on_one_store_fire_each_slot_once_between_them() {
    let base = at(2025, 1, 1, 0, 0, 0);
    let store = Arc::new(MemoryScheduleStore::new());
    let mut benches: Vec<Bench> =
        (0..3).map(|_| Bench::build(base, Duration::ZERO, store.clone(), true)).collect();
    for bench in &benches {
        bench.schedule.add_job(JobDef::new("tick", "* * * * * *", "reporter", "go")).await.unwrap();
    }
    for bench in &mut benches {
        bench.start();
    }
    wait(50).await;
    let mut fires = Vec::new();
    let mut claimed_elsewhere = 0;
    for bench in &mut benches {
        bench.stop().await;
        let events = bench.drain();
        fires.extend(fired(&events).into_iter().map(|(fire, _)| fire));
        claimed_elsewhere += events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    ScheduleEvent::Skipped { reason: executus_schedule::SkipReason::ClaimedElsewhere, .. }
                )
            })
            .count();
    }
    fires.sort();
    let expected: Vec<_> = (1..=50).map(|s| base + TimeDelta::seconds(s)).collect();
    assert_eq!(fires, expected, "each of the 50 slots fired exactly once across three runners");
    // The others saw the slots claimed (the last one may not have been handled by every
    // runner when they stopped one after the other).
    assert!((98..=100).contains(&claimed_elsewhere), "{claimed_elsewhere}");
    let runs: usize = benches.iter().map(|b| b.fake.calls_for("m")).sum();
    assert_eq!(runs, 50);
}
