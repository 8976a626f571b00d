//! Target health: which `provider/model` targets are benched after repeated failures, and
//! the injectable clock that decides when a bench ends.
//!
//! Semantics ([`HealthTracker`]):
//! - every failed call to a target (after the chain's own retries) adds one to its count of
//!   consecutive failures; when that count reaches [`HealthConfig::failure_threshold`] the
//!   target is *benched* for a cooldown;
//! - the first bench lasts [`HealthConfig::base_cooldown`]; each further bench without a
//!   success in between doubles it, up to [`HealthConfig::max_cooldown`];
//! - when a cooldown expires the target is re-admitted "half-open": its failure count is not
//!   reset, so one more failure benches it again (for the doubled cooldown), while one success
//!   resets both the failure count and the cooldown level;
//! - a failure recorded while a target is already benched (a call that was in flight when the
//!   bench started) counts, but never extends the running cooldown.
//!
//! Time comes from a [`Clock`]: [`SystemClock`] in production, [`ManualClock`](crate::ManualClock) in tests, so no
//! test ever sleeps to see a cooldown expire. The tracker is cheap to clone; clones share state.
//! It does not decide *what* counts as a failure — that is the failover chain's job.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

#[cfg(test)]
use crate::clock::ManualClock;
use crate::clock::{Clock, SystemClock};

/// Thresholds of a [`HealthTracker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthConfig {
    /// Consecutive failures that bench a target (default 3; 0 is treated as 1).
    pub failure_threshold: u32,
    /// Length of the first bench (default 10 s).
    pub base_cooldown: Duration,
    /// Longest bench, however often a target is re-benched (default 10 min).
    pub max_cooldown: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 3,
            base_cooldown: Duration::from_secs(10),
            max_cooldown: Duration::from_secs(600),
        }
    }
}

impl HealthConfig {
    /// The cooldown of the bench at `level` (0 for the first): `base * 2^level`, capped.
    pub fn cooldown(&self, level: u32) -> Duration {
        let mut cooldown = self.base_cooldown;
        for _ in 0..level {
            if cooldown >= self.max_cooldown {
                break;
            }
            cooldown = cooldown.saturating_mul(2);
        }
        cooldown.min(self.max_cooldown)
    }
}

/// One target's health, as shown by [`HealthTracker::snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetHealth {
    /// `provider/model`.
    pub target: String,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// How many times the target has been benched since its last success.
    pub benches: u32,
    /// Remaining cooldown, if the target is benched now.
    pub benched_for: Option<Duration>,
    /// Successes recorded since the tracker was created.
    pub total_successes: u64,
    /// Failures recorded since the tracker was created.
    pub total_failures: u64,
}

#[derive(Debug, Default)]
struct State {
    consecutive_failures: u32,
    /// Benches since the last success; the next bench lasts `cooldown(level)`.
    level: u32,
    benched_until: Option<Instant>,
    total_successes: u64,
    total_failures: u64,
}

struct Inner {
    config: HealthConfig,
    clock: Arc<dyn Clock>,
    targets: Mutex<HashMap<String, State>>,
}

/// Shared, thread-safe health of every `provider/model` target. Cheap to clone; clones share
/// state (one tracker per registry, shared by all its chains).
#[derive(Clone)]
pub struct HealthTracker {
    inner: Arc<Inner>,
}

impl fmt::Debug for HealthTracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthTracker")
            .field("config", &self.inner.config)
            .field("clock", &self.inner.clock)
            .field("targets", &lock(&self.inner.targets).len())
            .finish()
    }
}

impl Default for HealthTracker {
    fn default() -> Self {
        Self::new(HealthConfig::default())
    }
}

impl HealthTracker {
    /// A tracker on the system clock.
    pub fn new(config: HealthConfig) -> Self {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    /// A tracker on the given clock.
    pub fn with_clock(config: HealthConfig, clock: Arc<dyn Clock>) -> Self {
        Self { inner: Arc::new(Inner { config, clock, targets: Mutex::new(HashMap::new()) }) }
    }

    /// The thresholds.
    pub fn config(&self) -> HealthConfig {
        self.inner.config
    }

    /// The clock this tracker reads (chains measure latency with it too).
    pub fn clock(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.inner.clock)
    }

    /// Records a success: resets the failure count and the cooldown level, and lifts any bench.
    pub fn record_success(&self, target: &str) {
        let mut targets = lock(&self.inner.targets);
        // Looked up before inserting: a success is the common case, and `entry` would copy
        // the target's name every time.
        if !targets.contains_key(target) {
            targets.insert(target.to_owned(), Default::default());
        }
        let Some(state) = targets.get_mut(target) else { return };
        state.consecutive_failures = 0;
        state.level = 0;
        state.benched_until = None;
        state.total_successes += 1;
    }

    /// Records a failure. Returns the cooldown when this failure benched the target.
    pub fn record_failure(&self, target: &str) -> Option<Duration> {
        let now = self.inner.clock.now();
        let config = self.inner.config;
        let mut targets = lock(&self.inner.targets);
        let state = targets.entry(target.to_owned()).or_default();
        state.consecutive_failures = state.consecutive_failures.saturating_add(1);
        state.total_failures += 1;
        let benched_now = state.benched_until.is_some_and(|until| until > now);
        if benched_now || state.consecutive_failures < config.failure_threshold.max(1) {
            return None;
        }
        let cooldown = config.cooldown(state.level);
        state.level = state.level.saturating_add(1);
        state.benched_until = Some(now + cooldown);
        Some(cooldown)
    }

    /// The remaining cooldown if `target` is benched now, `None` if it may be called.
    pub fn is_benched(&self, target: &str) -> Option<Duration> {
        let now = self.inner.clock.now();
        let targets = lock(&self.inner.targets);
        remaining(targets.get(target)?, now)
    }

    /// Every target seen so far, sorted by name.
    pub fn snapshot(&self) -> Vec<TargetHealth> {
        let now = self.inner.clock.now();
        let targets = lock(&self.inner.targets);
        let mut out: Vec<TargetHealth> = targets
            .iter()
            .map(|(target, state)| TargetHealth {
                target: target.clone(),
                consecutive_failures: state.consecutive_failures,
                benches: state.level,
                benched_for: remaining(state, now),
                total_successes: state.total_successes,
                total_failures: state.total_failures,
            })
            .collect();
        out.sort_by(|a, b| a.target.cmp(&b.target));
        out
    }
}

fn remaining(state: &State, now: Instant) -> Option<Duration> {
    let until = state.benched_until?;
    (until > now).then(|| until - now)
}

/// Locks a mutex, ignoring poisoning: every critical section here leaves the state
/// consistent (plain field updates, no unwinding midway), so a panic elsewhere cannot corrupt it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn tracker() -> (HealthTracker, ManualClock) {
        let clock = ManualClock::new();
        (HealthTracker::with_clock(HealthConfig::default(), Arc::new(clock.clone())), clock)
    }

    #[test]
    fn three_failures_bench_for_ten_seconds() {
        let (health, clock) = tracker();
        assert_eq!(health.record_failure("p/m"), None);
        assert_eq!(health.record_failure("p/m"), None);
        assert_eq!(health.is_benched("p/m"), None);
        assert_eq!(health.record_failure("p/m"), Some(S(10)));
        assert_eq!(health.is_benched("p/m"), Some(S(10)));
        clock.advance(S(4));
        assert_eq!(health.is_benched("p/m"), Some(S(6)));
        assert_eq!(health.is_benched("p/other"), None, "targets are independent");
        clock.advance(S(6));
        assert_eq!(health.is_benched("p/m"), None, "cooldown expiry re-admits");
    }

    #[test]
    fn rebench_doubles_and_caps_at_ten_minutes() {
        let (health, clock) = tracker();
        for _ in 0..2 {
            health.record_failure("p/m");
        }
        let mut seen = Vec::new();
        for _ in 0..9 {
            let cooldown = health.record_failure("p/m").expect("benched");
            seen.push(cooldown.as_secs());
            // A failure while benched neither re-benches nor extends the cooldown.
            assert_eq!(health.record_failure("p/m"), None);
            assert_eq!(health.is_benched("p/m"), Some(cooldown));
            clock.advance(cooldown);
        }
        assert_eq!(seen, [10, 20, 40, 80, 160, 320, 600, 600, 600]);
    }

    #[test]
    fn success_resets_count_and_level() {
        let (health, clock) = tracker();
        for _ in 0..3 {
            health.record_failure("p/m");
        }
        clock.advance(S(10));
        assert_eq!(health.record_failure("p/m"), Some(S(20)), "half-open: one failure re-benches");
        health.record_success("p/m");
        assert_eq!(health.is_benched("p/m"), None, "a success lifts the bench");
        assert_eq!(health.record_failure("p/m"), None);
        assert_eq!(health.record_failure("p/m"), None);
        assert_eq!(health.record_failure("p/m"), Some(S(10)), "level reset to the base cooldown");
    }

    #[test]
    fn snapshot_lists_targets_sorted_with_remaining_cooldown() {
        let (health, clock) = tracker();
        health.record_success("b/x");
        for _ in 0..3 {
            health.record_failure("a/y");
        }
        clock.advance(S(3));
        let snap = health.snapshot();
        assert_eq!(snap.len(), 2);
        assert_eq!(snap[0].target, "a/y");
        assert_eq!(snap[0].consecutive_failures, 3);
        assert_eq!(snap[0].benches, 1);
        assert_eq!(snap[0].benched_for, Some(S(7)));
        assert_eq!(snap[0].total_failures, 3);
        assert_eq!(snap[1].target, "b/x");
        assert_eq!(snap[1].benched_for, None);
        assert_eq!(snap[1].total_successes, 1);
    }

    #[test]
    fn clones_share_state_and_threshold_zero_means_one() {
        let clock = ManualClock::new();
        let config = HealthConfig { failure_threshold: 0, ..HealthConfig::default() };
        let health = HealthTracker::with_clock(config, Arc::new(clock.clone()));
        let other = health.clone();
        assert_eq!(other.record_failure("p/m"), Some(S(10)));
        assert!(health.is_benched("p/m").is_some());
        let clock2 = clock.clone();
        clock2.advance(S(1));
        assert_eq!(clock.elapsed(), S(1), "manual clock clones share time");
    }
}
