use chrono::TimeZone;

use super::*;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

#[test]
fn an_invalid_expression_is_rejected_naming_the_job_and_the_expression() {
    let err = Job::new(JobDef::new("nightly-report", "not a cron", "reporter", "go")).unwrap_err();
    let ScheduleError::InvalidCron { job, expression, .. } = &err else { panic!("{err:?}") };
    assert_eq!((job.as_str(), expression.as_str()), ("nightly-report", "not a cron"));
    let text = err.to_string();
    assert!(text.contains("nightly-report") && text.contains("not a cron"), "{text}");

    let err = Job::new(JobDef::new("j", "0 61 * * * *", "a", "go")).unwrap_err();
    assert!(matches!(err, ScheduleError::InvalidCron { .. }), "{err:?}");
    let err = Job::new(JobDef::new("j", "* * *", "a", "go")).unwrap_err();
    assert!(err.to_string().contains("found 3"), "{err}");
}

#[test]
fn an_unknown_time_zone_is_rejected_naming_the_job_and_the_zone() {
    let err =
        Job::new(JobDef::new("paris-digest", "@daily", "a", "go").timezone("Mars/Olympus")).unwrap_err();
    assert_eq!(
        err,
        ScheduleError::InvalidTimeZone { job: "paris-digest".into(), timezone: "Mars/Olympus".into() }
    );
    let text = err.to_string();
    assert!(text.contains("paris-digest") && text.contains("Mars/Olympus"), "{text}");
}

#[test]
fn ids_and_agents_are_checked() {
    let err = Job::new(JobDef::new("  ", "@daily", "a", "go")).unwrap_err();
    assert!(matches!(err, ScheduleError::InvalidJob { field: "id", .. }), "{err:?}");
    let err = Job::new(JobDef::new("x\n", "@daily", "a", "go")).unwrap_err();
    assert!(matches!(err, ScheduleError::InvalidJob { field: "id", .. }), "{err:?}");
    let err = Job::new(JobDef::new("j", "@daily", "", "go")).unwrap_err();
    assert!(matches!(&err, ScheduleError::InvalidJob { job, field: "agent", .. } if job == "j"), "{err:?}");
}

#[test]
fn five_field_expressions_get_seconds_and_refuse_numeric_weekdays() {
    let job = Job::new(JobDef::new("j", "30 9 * * MON-FRI", "a", "go")).unwrap();
    // 2025-06-06 is a Friday: next is Monday 2025-06-09 09:30.
    assert_eq!(job.next_after(utc(2025, 6, 6, 10, 0, 0)), Some(utc(2025, 6, 9, 9, 30, 0)));
    let err = Job::new(JobDef::new("j", "30 9 * * 1-5", "a", "go")).unwrap_err();
    assert!(err.to_string().contains("names"), "{err}");
    // Shorthands.
    let job = Job::new(JobDef::new("j", "@hourly", "a", "go")).unwrap();
    assert_eq!(job.next_after(utc(2025, 6, 6, 10, 0, 0)), Some(utc(2025, 6, 6, 11, 0, 0)));
}

#[test]
fn next_and_latest_are_strict_and_inclusive() {
    let job = Job::new(JobDef::new("j", "*/5 * * * * *", "a", "go")).unwrap();
    let t = utc(2025, 1, 1, 0, 0, 10);
    assert_eq!(job.next_after(t), Some(utc(2025, 1, 1, 0, 0, 15)), "strictly after");
    assert_eq!(job.latest_at_or_before(t), Some(t), "at counts");
    let half = t + TimeDelta::milliseconds(500);
    assert_eq!(job.latest_at_or_before(half), Some(t));
    assert_eq!(job.next_after(half), Some(utc(2025, 1, 1, 0, 0, 15)));
    assert_eq!(job.latest_at_or_before(t - TimeDelta::nanoseconds(1)), Some(utc(2025, 1, 1, 0, 0, 5)));
    assert_eq!(
        job.upcoming(t, 3),
        [utc(2025, 1, 1, 0, 0, 15), utc(2025, 1, 1, 0, 0, 20), utc(2025, 1, 1, 0, 0, 25)]
    );
}

#[test]
fn a_daily_paris_job_fires_at_the_right_utc_instant_across_dst() {
    let job = Job::new(JobDef::new("j", "0 0 9 * * *", "a", "go").timezone("Europe/Paris")).unwrap();
    // Winter (UTC+1): 09:00 Paris = 08:00 UTC.
    assert_eq!(job.next_after(utc(2025, 1, 15, 0, 0, 0)), Some(utc(2025, 1, 15, 8, 0, 0)));
    // Summer (UTC+2): 07:00 UTC.
    assert_eq!(job.next_after(utc(2025, 7, 15, 0, 0, 0)), Some(utc(2025, 7, 15, 7, 0, 0)));
    // Across the March change (30 March 2025).
    assert_eq!(
        job.upcoming(utc(2025, 3, 29, 0, 0, 0), 2),
        [utc(2025, 3, 29, 8, 0, 0), utc(2025, 3, 30, 7, 0, 0)]
    );
}

#[test]
fn check_fires_refuses_dead_schedules_and_oversized_jitter() {
    let now = utc(2025, 6, 1, 0, 0, 0);
    let dead = Job::new(JobDef::new("old", "0 0 0 1 1 * 2020", "a", "go")).unwrap();
    let err = dead.check_fires(now).unwrap_err();
    assert!(matches!(&err, ScheduleError::NeverFires { job, .. } if job == "old"), "{err:?}");
    let feb30 = Job::new(JobDef::new("feb30", "0 0 0 30 2 *", "a", "go")).unwrap();
    assert!(matches!(feb30.check_fires(now), Err(ScheduleError::NeverFires { .. })));

    let jittery =
        Job::new(JobDef::new("j", "0 */5 * * * *", "a", "go").jitter(Duration::from_secs(300))).unwrap();
    let err = jittery.check_fires(now).unwrap_err();
    assert_eq!(
        err,
        ScheduleError::JitterTooLarge {
            job: "j".into(),
            jitter: Duration::from_secs(300),
            shortest_interval: Duration::from_secs(300)
        }
    );
    let ok = Job::new(JobDef::new("j", "0 */5 * * * *", "a", "go").jitter(Duration::from_secs(299))).unwrap();
    assert_eq!(ok.check_fires(now), Ok(()));
}

#[test]
fn job_defs_round_trip_through_json_with_defaults() {
    let def: JobDef = serde_json::from_value(serde_json::json!({
        "id": "j", "cron": "@daily", "agent": "a", "input": "go", "jitter": "30s", "overlap": "queue"
    }))
    .unwrap();
    assert_eq!(def.timezone, "UTC");
    assert_eq!(def.overlap, Overlap::Queue);
    assert_eq!(def.catch_up, CatchUp::RunOnce);
    assert_eq!(def.jitter, Some(Duration::from_secs(30)));
    let back: JobDef = serde_json::from_value(serde_json::to_value(&def).unwrap()).unwrap();
    assert_eq!(back, def);
}
