//! [`Clock`]: the one time source of executus — a monotonic instant for timers and cooldowns,
//! and the wall time (Unix milliseconds) for stored records, spend windows, calendars and
//! leases. Every part that reads time takes a `Clock`, so no test waits for time to pass:
//!
//! - [`SystemClock`]: the real clocks;
//! - [`ManualClock`]: moves only when told to (both readings together); clones share the
//!   time; as a [`Sleeper`](crate::chain::Sleeper) a "sleep" advances it, returns at once and is
//!   recorded, so a test asserts exactly how long the code would have waited;
//! - [`TokioClock`]: follows tokio's clock from a given wall time, so code under
//!   `#[tokio::test(start_paused = true)]` sees the calendar advance exactly as far as tokio's
//!   timers do.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A time source.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current monotonic instant (timers, cooldowns, durations).
    fn now(&self) -> Instant;

    /// The current wall time, in milliseconds since the Unix epoch (0 before it).
    fn now_ms(&self) -> u64;
}

/// Milliseconds in `d`, saturating.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The real clocks: [`Instant::now`] and the system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn now_ms(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, millis)
    }
}

/// A clock that only moves when told to. Clones share the same time, so a test keeps one
/// handle and gives clones to the code under test.
#[derive(Debug, Clone)]
pub struct ManualClock {
    origin: Instant,
    inner: Arc<Mutex<Manual>>,
}

#[derive(Debug)]
struct Manual {
    /// How far the clock has been advanced.
    offset: Duration,
    /// The wall time, in Unix milliseconds.
    wall_ms: u64,
    /// Every delay slept on this clock, in order.
    slept: Vec<Duration>,
}

impl ManualClock {
    /// A clock standing still, its wall time at the Unix epoch.
    pub fn new() -> Self {
        Self::at(0)
    }

    /// A clock standing still, its wall time at `wall_ms` (Unix milliseconds).
    pub fn at(wall_ms: u64) -> Self {
        Self {
            origin: Instant::now(),
            inner: Arc::new(Mutex::new(Manual { offset: Duration::ZERO, wall_ms, slept: Vec::new() })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Manual> {
        // Every critical section is a single assignment: a poisoned lock holds a whole state.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves both readings forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut m = self.lock();
        m.offset = m.offset.saturating_add(by);
        m.wall_ms = m.wall_ms.saturating_add(millis(by));
    }

    /// Sets the wall time (a jump, as NTP or a suspended laptop makes); the monotonic reading
    /// does not move.
    pub fn set_ms(&self, wall_ms: u64) {
        self.lock().wall_ms = wall_ms;
    }

    /// How far the clock has been advanced since it was created.
    pub fn elapsed(&self) -> Duration {
        self.lock().offset
    }

    /// Every delay slept on this clock so far (see [`crate::chain::Sleeper`]).
    pub fn slept(&self) -> Vec<Duration> {
        self.lock().slept.clone()
    }

    /// Records a sleep of `by` and advances by it.
    pub(crate) fn sleep_now(&self, by: Duration) {
        let mut m = self.lock();
        m.slept.push(by);
        m.offset = m.offset.saturating_add(by);
        m.wall_ms = m.wall_ms.saturating_add(millis(by));
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.origin + self.elapsed()
    }

    fn now_ms(&self) -> u64 {
        self.lock().wall_ms
    }
}

/// A clock that reads `wall_ms` when created and then advances with tokio's clock: under
/// paused tokio time it moves only when tokio's time does. Create it inside the tokio runtime
/// whose time it should follow (outside one, tokio's clock is the real monotonic clock).
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    wall_ms: u64,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock reading `wall_ms` (Unix milliseconds) now.
    pub fn starting_at(wall_ms: u64) -> Self {
        Self { wall_ms, start: tokio::time::Instant::now() }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn now_ms(&self) -> u64 {
        self.wall_ms.saturating_add(millis(self.start.elapsed()))
    }
}

/// `fut` bounded by `limit`, as [`tokio::time::timeout`], but the timer is made only when
/// `fut` is not ready at its first poll: on a hot path most reads find their bytes already
/// buffered, and a timer per read costs a clock reading and a registration for nothing. The
/// bound counts from that first poll.
///
/// # Errors
/// [`tokio::time::error::Elapsed`] when `fut` did not finish within `limit`.
pub async fn within<F: Future>(limit: Duration, fut: F) -> Result<F::Output, tokio::time::error::Elapsed> {
    let mut fut = std::pin::pin!(fut);
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(fut.as_mut().poll(cx))).await;
    match first {
        std::task::Poll::Ready(output) => Ok(output),
        std::task::Poll::Pending => tokio::time::timeout(limit, fut).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_both_readings_together_and_jumps_the_wall_alone() {
        let clock = ManualClock::at(1_000);
        let (t0, w0) = (clock.now(), clock.now_ms());
        clock.advance(Duration::from_millis(1_500));
        assert_eq!(clock.now() - t0, Duration::from_millis(1_500));
        assert_eq!(clock.now_ms() - w0, 1_500);
        clock.set_ms(10);
        assert_eq!(clock.now_ms(), 10);
        assert_eq!(clock.elapsed(), Duration::from_millis(1_500), "a wall jump is not elapsed time");
        let clone = clock.clone();
        clone.sleep_now(Duration::from_secs(2));
        assert_eq!(clock.slept(), [Duration::from_secs(2)], "clones share the time");
        assert_eq!(clock.now_ms(), 2_010);
    }

    #[tokio::test(start_paused = true)]
    async fn a_tokio_clock_follows_paused_time() {
        let clock = TokioClock::starting_at(5_000);
        let t0 = clock.now();
        tokio::time::sleep(Duration::from_secs(90)).await;
        assert_eq!(clock.now_ms(), 95_000);
        assert_eq!(clock.now() - t0, Duration::from_secs(90));
    }

    #[test]
    fn the_system_clock_reads_the_wall_clock() {
        let ms = SystemClock.now_ms();
        assert!(ms > 1_600_000_000_000, "{ms}");
    }

    /// A future ready at its first poll needs no timer: this runtime has none, and
    /// `tokio::time::timeout` would panic on it.
    #[test]
    fn a_ready_future_is_answered_without_a_timer() {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let answer = runtime.block_on(within(Duration::from_secs(1), std::future::ready(7)));
        assert_eq!(answer, Ok(7));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pending_future_is_bounded_and_one_in_time_is_answered() {
        let never = within(Duration::from_secs(5), std::future::pending::<()>());
        assert!(never.await.is_err(), "a future that never finishes ends at the bound");
        let slow = within(Duration::from_secs(5), async {
            tokio::time::sleep(Duration::from_secs(4)).await;
            "done"
        });
        assert_eq!(slow.await, Ok("done"));
        let late = within(Duration::from_secs(5), tokio::time::sleep(Duration::from_secs(6)));
        assert!(late.await.is_err());
    }
}
