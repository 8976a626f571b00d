//! What is due for one job, from its cursor (the last fire handled) and now. Pure.
//!
//! - No fire in `(cursor, now]`: wait until the next fire plus its jitter.
//! - Exactly one, and now is within `late_tolerance` of its jittered time: on time.
//! - Exactly one but later than that, or two or more: missed — the job's catch-up policy
//!   decides (the runner was down, or suspended, or fell behind).

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::job::Job;

/// What to do for a job now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// Nothing due; the next fire is due at this instant (`None`: never again).
    Wait(Option<DateTime<Utc>>),
    /// This fire is due now, on time.
    OnTime(DateTime<Utc>),
    /// Fires from `first` to `last` (inclusive) were missed.
    Missed {
        /// The earliest missed fire.
        first: DateTime<Utc>,
        /// The latest missed fire (at or before now).
        last: DateTime<Utc>,
    },
}

pub(crate) fn due(
    job: &Job,
    cursor: DateTime<Utc>,
    now: DateTime<Utc>,
    tolerance: Duration,
    seed: u64,
) -> Due {
    let Some(next) = job.next_after(cursor) else { return Due::Wait(None) };
    let due_at = add(next, job.jitter_for(next, seed));
    let latest = job.latest_at_or_before(now);
    match latest {
        Some(latest) if latest > next => Due::Missed { first: next, last: latest },
        Some(latest) if latest == next => {
            if now < due_at {
                Due::Wait(Some(due_at))
            } else if now > add(due_at, tolerance) {
                Due::Missed { first: next, last: next }
            } else {
                Due::OnTime(next)
            }
        }
        _ => Due::Wait(Some(due_at)),
    }
}

fn add(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(d).ok().and_then(|d| t.checked_add_signed(d)).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::job::JobDef;

    fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 1, h, m, s).unwrap()
    }

    const TOL: Duration = Duration::from_secs(60);

    #[test]
    fn waits_then_on_time_then_late() {
        let job = Job::new(JobDef::new("j", "0 0 * * * *", "a", "go")).unwrap();
        assert_eq!(due(&job, t(9, 0, 0), t(9, 30, 0), TOL, 0), Due::Wait(Some(t(10, 0, 0))));
        assert_eq!(due(&job, t(9, 0, 0), t(10, 0, 0), TOL, 0), Due::OnTime(t(10, 0, 0)));
        assert_eq!(due(&job, t(9, 0, 0), t(10, 1, 0), TOL, 0), Due::OnTime(t(10, 0, 0)));
        assert_eq!(
            due(&job, t(9, 0, 0), t(10, 1, 1), TOL, 0),
            Due::Missed { first: t(10, 0, 0), last: t(10, 0, 0) }
        );
    }

    #[test]
    fn several_elapsed_fires_are_missed_together() {
        let job = Job::new(JobDef::new("j", "0 0 * * * *", "a", "go")).unwrap();
        // Watermark 09:30, now 12:30: 10:00, 11:00, 12:00 were missed.
        assert_eq!(
            due(&job, t(9, 30, 0), t(12, 30, 0), TOL, 0),
            Due::Missed { first: t(10, 0, 0), last: t(12, 0, 0) }
        );
        // After handling them, the cursor is 12:00 and 13:00 is next.
        assert_eq!(due(&job, t(12, 0, 0), t(12, 30, 0), TOL, 0), Due::Wait(Some(t(13, 0, 0))));
    }

    #[test]
    fn jitter_delays_the_due_time_deterministically() {
        let job =
            Job::new(JobDef::new("j", "0 */10 * * * *", "a", "go").jitter(Duration::from_secs(30))).unwrap();
        let j = job.jitter_for(t(10, 10, 0), 7);
        assert!(j <= Duration::from_secs(30));
        assert_eq!(j, job.jitter_for(t(10, 10, 0), 7), "same seed, job and fire: same jitter");
        let due_at = t(10, 10, 0) + TimeDelta::from_std(j).unwrap();
        assert_eq!(
            due(&job, t(10, 0, 0), t(10, 10, 0), TOL, 7),
            if j.is_zero() { Due::OnTime(t(10, 10, 0)) } else { Due::Wait(Some(due_at)) }
        );
        assert_eq!(due(&job, t(10, 0, 0), due_at, TOL, 7), Due::OnTime(t(10, 10, 0)));
        // Different seeds spread fires.
        let spread: std::collections::HashSet<_> =
            (0..20).map(|seed| job.jitter_for(t(10, 10, 0), seed)).collect();
        assert!(spread.len() > 10, "{spread:?}");
    }

    #[test]
    fn a_schedule_that_ended_waits_forever() {
        let job = Job::new(JobDef::new("j", "0 0 0 1 1 * 2020", "a", "go")).unwrap();
        assert_eq!(due(&job, t(0, 0, 0), t(1, 0, 0), TOL, 0), Due::Wait(None));
    }
}
