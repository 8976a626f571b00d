//! Time for the fleet: a wall clock (liveness changes, stored rows and leases carry UTC
//! instants) and a sleeper (reconnect backoff, polling), both injectable so that tests drive
//! time instead of waiting for it.
//!
//! The clock is executus's own ([`executus_llm::Clock`]): [`ManualClock`] moves only when told
//! to; as a sleeper it records every requested delay and advances itself by it at once, so a
//! test can assert exactly how long the code would have waited. [`GatedSleeper`] goes one step further and hands each sleep to the test, which
//! decides when it ends.

use std::time::Duration;

use chrono::{DateTime, Utc};
pub use executus_llm::chain::{SleepFuture, Sleeper};
use tokio::sync::{mpsc, oneshot};

/// The time source: executus's one [`Clock`]; the fleet reads its wall time as UTC instants
/// with [`utc_now`].
pub use executus_llm::{Clock, ManualClock, SystemClock};

/// `clock`'s wall time as a UTC instant (whole milliseconds): liveness changes, stored rows
/// and leases carry these.
pub fn utc_now(clock: &(impl Clock + ?Sized)) -> DateTime<Utc> {
    let ms = i64::try_from(clock.now_ms()).unwrap_or(i64::MAX);
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Sleeps on the tokio timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(&self, duration: Duration) -> SleepFuture {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// One sleep held by a [`GatedSleeper`]: the requested delay, and the gate that ends it.
#[derive(Debug)]
pub struct HeldSleep {
    /// The delay the code asked for.
    pub duration: Duration,
    release: oneshot::Sender<()>,
}

impl HeldSleep {
    /// Ends the sleep (the clock, if any, was already advanced by the delay).
    pub fn release(self) {
        let _ = self.release.send(());
    }
}

/// A sleeper whose every sleep waits until the test releases it: the test receives each
/// requested delay in order ([`SleepGate::next`]) and chooses when the code goes on. The
/// optional [`ManualClock`] is advanced by the delay when the sleep is requested, so that
/// times recorded after the sleep are consistent.
#[derive(Debug, Clone)]
pub struct GatedSleeper {
    tx: mpsc::UnboundedSender<HeldSleep>,
    clock: Option<ManualClock>,
}

/// The test's side of a [`GatedSleeper`].
#[derive(Debug)]
pub struct SleepGate {
    rx: mpsc::UnboundedReceiver<HeldSleep>,
}

impl GatedSleeper {
    /// A gated sleeper and its gate; `clock` (if any) advances by each requested delay.
    pub fn new(clock: Option<ManualClock>) -> (Self, SleepGate) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx, clock }, SleepGate { rx })
    }
}

impl Sleeper for GatedSleeper {
    fn sleep(&self, duration: Duration) -> SleepFuture {
        if let Some(clock) = &self.clock {
            clock.advance(duration);
        }
        let (release, rx) = oneshot::channel();
        let _ = self.tx.send(HeldSleep { duration, release });
        Box::pin(async move {
            // A sleep dropped without `release` (the gate is gone: the test is tearing the
            // code down) never ends, rather than letting the code spin without pause.
            if rx.await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

impl SleepGate {
    /// The next sleep the code requested, or `None` once every sleeper is gone.
    pub async fn next(&mut self) -> Option<HeldSleep> {
        self.rx.recv().await
    }
}
