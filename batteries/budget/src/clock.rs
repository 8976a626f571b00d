//! [`WallClock`]: where a budget gets the time. Spend windows and reservation expiry are
//! wall-clock facts (they must survive restarts and be shared with other processes through
//! a store), so this is Unix time in milliseconds, not a monotonic `Instant`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Unix time in milliseconds.
pub trait WallClock: Send + Sync + fmt::Debug {
    /// Now, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemWallClock;

impl WallClock for SystemWallClock {
    fn now_ms(&self) -> u64 {
        executus::ports::audit::now_ms()
    }
}

/// A clock that moves only when told to (for tests). Clones share the same time.
#[derive(Debug, Clone, Default)]
pub struct ManualWallClock {
    now: Arc<AtomicU64>,
}

impl ManualWallClock {
    /// A clock standing at `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        Self { now: Arc::new(AtomicU64::new(now_ms)) }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        let _ = self.now.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| Some(t.saturating_add(ms)));
    }

    /// Sets the time.
    pub fn set_ms(&self, now_ms: u64) {
        self.now.store(now_ms, Ordering::SeqCst);
    }
}

impl WallClock for ManualWallClock {
    fn now_ms(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
}
