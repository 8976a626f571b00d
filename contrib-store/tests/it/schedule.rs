//! The SQLite schedule store: watermarks initialise once and only move forward — also with
//! many racing writers on two `Store`s sharing the file — job definitions round-trip and
//! survive reopening, and a definition that does not decode is reported by job.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use executus::Identity;
use executus::ports::PortError;
use executus_schedule::{CatchUp, JobDef, Overlap, ScheduleStore};
use executus_store::Store;

use crate::common::TempStore;
use crate::conformance::{Db, backends};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap()
}

#[tokio::test]
async fn watermarks_initialise_once_and_only_move_forward() {
    const TEST: &str = "watermarks_initialise_once_and_only_move_forward";
    for backend in backends(TEST) {
        let db = Db::new(backend, TEST).await;
        let store = db.open().await;
        let s = store.schedule();
        let (t0, t1) = (t0(), t0() + TimeDelta::hours(1));
        assert_eq!(s.watermark("a").await.unwrap(), None, "{backend:?}");
        assert_eq!(s.init_watermark("a", t0).await.unwrap(), t0);
        assert_eq!(s.init_watermark("a", t1).await.unwrap(), t0, "an existing watermark wins");
        assert!(s.advance("a", t1).await.unwrap());
        assert!(!s.advance("a", t0).await.unwrap(), "never backwards");
        assert!(!s.advance("a", t1).await.unwrap(), "the same value is not a move");
        assert_eq!(s.watermark("a").await.unwrap(), Some(t1));
        assert!(s.advance("b", t0).await.unwrap(), "advance creates");
        // Before the epoch, and milliseconds, round-trip exactly.
        let early = Utc.with_ymd_and_hms(1969, 7, 20, 20, 17, 40).unwrap() + TimeDelta::milliseconds(123);
        assert!(s.advance("c", early).await.unwrap());
        assert_eq!(s.watermark("c").await.unwrap(), Some(early));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_on_two_stores_leave_the_largest_watermark() {
    const TEST: &str = "racing_writers_on_two_stores_leave_the_largest_watermark";
    for backend in backends(TEST) {
        let db = Db::new(backend, TEST).await;
        racing_writers(db.open().await, db.open().await).await;
    }
}

async fn racing_writers(a: Store, b: Store) {
    let inits: Vec<_> = (0..16i64)
        .map(|i| {
            let s = if i % 2 == 0 { a.schedule() } else { b.schedule() };
            tokio::spawn(async move { s.init_watermark("job", t0() + TimeDelta::minutes(i)).await.unwrap() })
        })
        .collect();
    let mut seen = Vec::new();
    for t in inits {
        seen.push(t.await.unwrap());
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "every init sees the one stored first: {seen:?}");
    let first = seen[0];
    let advances: Vec<_> = (0..64i64)
        .map(|i| {
            let s = if i % 2 == 0 { a.schedule() } else { b.schedule() };
            // Interleaved, out of order: 0, 63, 1, 62, ...
            let k = if i % 2 == 0 { i / 2 } else { 63 - i / 2 };
            tokio::spawn(async move {
                s.advance("job", t0() + TimeDelta::hours(1) + TimeDelta::seconds(k)).await.unwrap()
            })
        })
        .collect();
    let mut moved = 0;
    for t in advances {
        moved += usize::from(t.await.unwrap());
    }
    assert!(moved >= 1);
    let last = t0() + TimeDelta::hours(1) + TimeDelta::seconds(63);
    assert_eq!(a.schedule().watermark("job").await.unwrap(), Some(last));
    assert_eq!(b.schedule().watermark("job").await.unwrap(), Some(last));
    assert!(first < last);
}

#[tokio::test]
async fn job_definitions_round_trip_and_delete_takes_the_watermark() {
    let tmp = TempStore::new();
    let full = JobDef {
        id: "report".into(),
        cron: "0 9 * * MON-FRI".into(),
        timezone: "Europe/Paris".into(),
        agent: "reporter".into(),
        input: "Summarise yesterday.\nIn two lines.".into(),
        lane: Some("batch".into()),
        identity: Identity::new("ops", "acme").with_role("admin"),
        overlap: Overlap::Queue,
        jitter: Some(Duration::from_millis(1_500)),
        catch_up: CatchUp::Skip,
    };
    {
        let store = tmp.open().await;
        let s = store.schedule();
        s.put_job(&JobDef::new("b", "@hourly", "agent", "go")).await.unwrap();
        s.put_job(&JobDef::new("report", "@daily", "agent", "go")).await.unwrap();
        s.advance("report", t0()).await.unwrap();
        s.put_job(&full).await.unwrap();
        store.close().await;
    }
    let store = tmp.open().await;
    let s = store.schedule();
    let jobs = s.jobs().await.unwrap();
    assert_eq!(jobs.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), ["b", "report"], "ordered by id");
    assert_eq!(jobs[1], full, "a replaced definition comes back whole");
    assert_eq!(s.watermark("report").await.unwrap(), Some(t0()), "put_job leaves the watermark alone");
    assert!(s.delete_job("report").await.unwrap());
    assert_eq!(s.watermark("report").await.unwrap(), None);
    assert!(!s.delete_job("report").await.unwrap());
    s.advance("mark-only", t0()).await.unwrap();
    assert!(s.delete_job("mark-only").await.unwrap(), "a watermark alone counts");
    assert_eq!(s.jobs().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_definition_that_does_not_decode_is_reported_by_job() {
    let tmp = TempStore::new();
    let store = tmp.open().await;
    store.schedule().put_job(&JobDef::new("nightly", "@daily", "agent", "go")).await.unwrap();
    let pool = sqlx::SqlitePool::connect(&tmp.url()).await.unwrap();
    sqlx::query("UPDATE schedule_jobs SET definition = '{\"id\": 7}'").execute(&pool).await.unwrap();
    pool.close().await;
    let err = store.schedule().jobs().await.unwrap_err();
    assert!(
        matches!(&err, PortError::Corrupt { port: "schedule", message } if message.contains("\"nightly\"")),
        "{err:?}"
    );
}
