//! What a failover chain reports while it works: [`ChainEvent`]s to a [`ChainObserver`], and
//! the [`Sleeper`] it waits on between retries.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::clock::ManualClock;
use crate::error::Error;

/// Why a chain skipped a target without calling it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// The target is benched by the health tracker for this much longer.
    Benched {
        /// Remaining cooldown.
        remaining: Duration,
    },
    /// The target is known not to support something the request needs. No health penalty.
    Incapable {
        /// The missing capability: `vision` or `tools`.
        capability: &'static str,
    },
    /// The request's images cannot be shaped to this target's limits (see [`crate::media`]).
    /// No health penalty.
    Media {
        /// Why, naming the image.
        reason: String,
    },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Benched { remaining } => {
                write!(f, "benched, {:.1}s of cooldown left", remaining.as_secs_f64())
            }
            Self::Incapable { capability } => write!(f, "no {capability} support"),
            Self::Media { reason } => write!(f, "image refused: {reason}"),
        }
    }
}

/// One thing a chain did. Targets are named `provider/model`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ChainEvent {
    /// About to call `target`; `n` is the 1-based attempt number on that target.
    Attempt {
        /// The target.
        target: String,
        /// Attempt number.
        n: u32,
    },
    /// Attempt `n` on `target` failed transiently; attempt `n + 1` follows after `delay`.
    Retry {
        /// The target.
        target: String,
        /// The attempt that failed.
        n: u32,
        /// The wait before the next attempt (Retry-After when given, else backoff).
        delay: Duration,
        /// The failure.
        error: Error,
    },
    /// The target's failure benched it for `cooldown`.
    Bench {
        /// The target.
        target: String,
        /// Cooldown length.
        cooldown: Duration,
    },
    /// The target was skipped without a call.
    Skip {
        /// The target.
        target: String,
        /// Why.
        reason: SkipReason,
    },
    /// The target answered (for a stream: yielded its first event) after `latency`.
    Success {
        /// The target.
        target: String,
        /// Time of the successful attempt.
        latency: Duration,
    },
    /// The chain gave up on `from` because of `error` and moves on to `to`, the next target
    /// it will actually call (targets skipped in between are reported as [`ChainEvent::Skip`]).
    Failover {
        /// The target given up on.
        from: String,
        /// The next target called.
        to: String,
        /// Its last error.
        error: Error,
    },
}

/// Receives a chain's events, synchronously and in order. Keep it quick: it runs on the
/// caller's task between attempts.
pub trait ChainObserver: Send + Sync {
    /// Called for each event.
    fn on_event(&self, event: &ChainEvent);

    /// Whether events are looked at. `false` (the default observer) lets the chain skip
    /// building them: every successful call would otherwise build two, target names copied.
    fn wants_events(&self) -> bool {
        true
    }
}

/// The default observer: ignores everything (tracing still records each attempt).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopObserver;

impl ChainObserver for NoopObserver {
    fn on_event(&self, _event: &ChainEvent) {}

    fn wants_events(&self) -> bool {
        false
    }
}

/// A boxed future that completes after a delay.
pub type SleepFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// How a chain waits between retries. Injectable so tests never sleep for real.
pub trait Sleeper: Send + Sync + fmt::Debug {
    /// A future that completes after `duration`.
    fn sleep(&self, duration: Duration) -> SleepFuture;
}

/// Sleeps on the tokio timer (so `#[tokio::test(start_paused = true)]` also works).
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(&self, duration: Duration) -> SleepFuture {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// Sleeping on a manual clock records the delay, advances the clock by it and returns at once.
impl Sleeper for ManualClock {
    fn sleep(&self, duration: Duration) -> SleepFuture {
        self.sleep_now(duration);
        Box::pin(std::future::ready(()))
    }
}
