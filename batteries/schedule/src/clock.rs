//! Calendar time for the schedule, from the one [`Clock`] of executus (its wall reading): the
//! system clock in production, [`TokioClock`](executus::llm::TokioClock) in tests under paused
//! tokio time, so a test sees the calendar advance exactly as far as tokio's timers do — and
//! never waits for real.
//!
//! The runner sleeps with tokio timers and re-reads the clock after every wake-up (and at
//! least once a minute), so a wall clock that jumps (NTP, a suspended laptop) is noticed within
//! a minute; fires it skipped over are handled by the job's catch-up policy.

use chrono::{DateTime, Utc};
use executus::llm::Clock;

/// The clock's wall time as a UTC instant (whole milliseconds).
pub(crate) fn utc_now(clock: &dyn Clock) -> DateTime<Utc> {
    let ms = i64::try_from(clock.now_ms()).unwrap_or(i64::MAX);
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::{TimeDelta, TimeZone};
    use executus::llm::TokioClock;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_calendar_follows_paused_tokio_time() {
        let base = Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap();
        let clock = TokioClock::starting_at(base.timestamp_millis() as u64);
        assert_eq!(utc_now(&clock), base);
        tokio::time::sleep(Duration::from_secs(90)).await;
        assert_eq!(utc_now(&clock), base + TimeDelta::seconds(90));
    }
}
