//! [`WallClock`]: where the schedule reads the calendar time. [`SystemClock`] for
//! production; [`TokioClock`] follows tokio's clock, so a test under paused time sees the
//! calendar advance exactly as far as tokio's timers do — and never waits for real.
//!
//! The runner sleeps with tokio timers and re-reads the wall clock after every wake-up
//! (and at least once a minute), so a wall clock that jumps (NTP, a suspended laptop) is
//! noticed within a minute; fires it skipped over are handled by the job's catch-up policy.

use std::fmt::Debug;

use chrono::{DateTime, TimeDelta, Utc};

/// The current calendar time.
pub trait WallClock: Send + Sync + Debug {
    /// Now, in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's clock (`Utc::now()`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A calendar that starts at `base` and advances with tokio's clock: `base` + the tokio
/// time elapsed since the clock was created. Under `#[tokio::test(start_paused = true)]`
/// it moves only when tokio's paused time does.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    base: DateTime<Utc>,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock reading `base` now. Create it inside the tokio runtime whose time it
    /// should follow (outside one, tokio's clock is the real monotonic clock).
    pub fn starting_at(base: DateTime<Utc>) -> Self {
        Self { base, start: tokio::time::Instant::now() }
    }
}

impl WallClock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = TimeDelta::from_std(self.start.elapsed()).unwrap_or(TimeDelta::MAX);
        self.base.checked_add_signed(elapsed).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::TimeZone;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let base = Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap();
        let clock = TokioClock::starting_at(base);
        assert_eq!(clock.now(), base);
        tokio::time::sleep(Duration::from_secs(90)).await;
        assert_eq!(clock.now(), base + TimeDelta::seconds(90));
    }
}
