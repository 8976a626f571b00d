//! Adding, refusing, removing and loading jobs.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use executus_schedule::{JobDef, MemoryScheduleStore, ScheduleError, ScheduleStore};

use crate::common::{Bench, at, fired, wait};

#[tokio::test(start_paused = true)]
async fn invalid_jobs_are_rejected_naming_the_job_and_the_value() {
    let bench = Bench::new(at(2025, 1, 1, 0, 0, 0), Duration::ZERO, Arc::new(MemoryScheduleStore::new()));
    let s = &bench.schedule;

    let err = s.add_job(JobDef::new("nightly", "0 0 25 * * *", "reporter", "go")).await.unwrap_err();
    assert!(
        matches!(&err, ScheduleError::InvalidCron { job, expression, .. } if job == "nightly" && expression == "0 0 25 * * *"),
        "{err:?}"
    );
    assert!(err.to_string().contains("nightly") && err.to_string().contains("0 0 25 * * *"), "{err}");

    let err = s
        .add_job(JobDef::new("paris", "@daily", "reporter", "go").timezone("Europe/Pariss"))
        .await
        .unwrap_err();
    assert_eq!(err, ScheduleError::InvalidTimeZone { job: "paris".into(), timezone: "Europe/Pariss".into() });
    assert!(err.to_string().contains("paris") && err.to_string().contains("Europe/Pariss"), "{err}");

    // Parses but never fires after the clock's now (2025).
    let err = s.add_job(JobDef::new("y2k", "0 0 0 1 1 * 2000", "reporter", "go")).await.unwrap_err();
    assert!(matches!(&err, ScheduleError::NeverFires { job, .. } if job == "y2k"), "{err:?}");

    // Nothing was registered or stored.
    assert!(s.jobs().is_empty());
    assert!(bench.store.jobs().await.unwrap().is_empty());

    s.add_job(JobDef::new("ok", "@hourly", "reporter", "go")).await.unwrap();
    let err = s.add_job(JobDef::new("ok", "@daily", "reporter", "go")).await.unwrap_err();
    assert_eq!(err, ScheduleError::DuplicateJob { job: "ok".into() });
    assert_eq!(s.jobs().len(), 1);
    assert_eq!(bench.store.jobs().await.unwrap()[0].cron, "@hourly", "the refused duplicate stored nothing");
}

#[tokio::test(start_paused = true)]
async fn jobs_added_or_removed_while_running_take_effect() {
    let base = at(2025, 1, 1, 0, 0, 0);
    let mut bench = Bench::new(base, Duration::ZERO, Arc::new(MemoryScheduleStore::new()));
    bench.start();
    wait(2).await;
    bench.schedule.add_job(JobDef::new("late", "*/5 * * * * *", "reporter", "go")).await.unwrap();
    wait(9).await; // now 11 s: fired at 5 and 10
    assert!(bench.schedule.remove_job("late").await.unwrap());
    assert_eq!(bench.watermark("late").await, None, "removal deletes the watermark");
    wait(10).await;
    bench.stop().await;
    let secs = |s| base + TimeDelta::seconds(s);
    assert_eq!(fired(&bench.drain()), [(secs(5), secs(5)), (secs(10), secs(10))]);
}

#[tokio::test(start_paused = true)]
async fn stored_definitions_load_and_bad_ones_are_reported() {
    let base = at(2025, 1, 1, 0, 0, 0);
    let store = Arc::new(MemoryScheduleStore::new());
    store.put_job(&JobDef::new("kept", "*/5 * * * * *", "reporter", "go")).await.unwrap();
    store.put_job(&JobDef::new("broken", "every tuesday", "reporter", "go")).await.unwrap();
    let mut bench = Bench::new(base, Duration::ZERO, store);
    let report = bench.schedule.load_jobs().await.unwrap();
    assert_eq!(report.loaded, ["kept"]);
    assert_eq!(report.rejected.len(), 1);
    assert!(matches!(&report.rejected[0], ScheduleError::InvalidCron { job, .. } if job == "broken"));
    bench.start();
    wait(6).await;
    bench.stop().await;
    assert_eq!(fired(&bench.drain()), [(base + TimeDelta::seconds(5), base + TimeDelta::seconds(5))]);
}
