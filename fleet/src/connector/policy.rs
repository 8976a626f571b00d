//! The connector's reconnect policy as a pure state machine: outcomes of connection attempts
//! in, waits and liveness changes out. No I/O, no clock, no randomness of its own (the
//! caller passes a uniform random number), so every path is tested exactly.
//!
//! Rules:
//! - The wait before attempt `n` of a streak (attempt 1 is the first one after a dropped
//!   stream) is `min(cap, base * 2^(n-1))` plus jitter, a random 0–50 % of that delay, so N
//!   hosts dropped at once do not reconnect in step. Defaults: base 1 s, cap 30 s.
//! - Attempts are counted from the last success. When `threshold` attempts in a row have
//!   failed (default 6) the circuit opens: the host is `down`, and from then on one probe
//!   is made per cooldown (half-open, default 60 s, plus the same jitter) instead of the
//!   backoff schedule. It never gives up for good.
//! - A successful attempt closes the circuit and resets the count: the host is `connected`.
//! - Liveness is `reconnecting` from start-up until the first success, and after a drop until
//!   the circuit opens.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A host's liveness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Liveness {
    /// The events stream is open.
    Connected,
    /// The stream is down and the connector is retrying on its backoff schedule.
    Reconnecting,
    /// The circuit is open: retries failed `threshold` times in a row; one probe per cooldown.
    Down,
}

impl Liveness {
    /// The name used in JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::Reconnecting => "reconnecting",
            Self::Down => "down",
        }
    }
}

impl std::fmt::Display for Liveness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The knobs of the policy.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconnectPolicy {
    /// Delay before the first attempt of a streak (default 1 s).
    pub base: Duration,
    /// Longest backoff delay before jitter (default 30 s).
    pub cap: Duration,
    /// Largest jitter, as a fraction of the delay (default 0.5: 0–50 % is added).
    pub jitter: f64,
    /// Failed attempts in a row that open the circuit (default 6).
    pub threshold: u32,
    /// Time between probes while the circuit is open (default 60 s).
    pub cooldown: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(30),
            jitter: 0.5,
            threshold: 6,
            cooldown: Duration::from_secs(60),
        }
    }
}

impl ReconnectPolicy {
    /// The delay before attempt `n` (1-based) of a streak, before jitter.
    pub fn backoff(&self, n: u32) -> Duration {
        let mut delay = self.base;
        for _ in 1..n {
            if delay >= self.cap {
                break;
            }
            delay = delay.saturating_mul(2);
        }
        delay.min(self.cap)
    }

    /// `delay` plus `unit * jitter * delay` (`unit` uniform in `[0, 1)`).
    pub fn jittered(&self, delay: Duration, unit: f64) -> Duration {
        let unit = if unit.is_finite() { unit.clamp(0.0, 1.0) } else { 0.0 };
        delay + delay.mul_f64(self.jitter.max(0.0) * unit)
    }
}

/// What to do next.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Wait this long before the next attempt.
    pub wait: Duration,
    /// The liveness after this outcome, when it changed.
    pub liveness: Option<Liveness>,
    /// The circuit opened with this outcome.
    pub opened: bool,
}

/// The policy's state for one host.
#[derive(Debug, Clone)]
pub struct Reconnect {
    policy: ReconnectPolicy,
    /// Failed attempts since the last success.
    failures: u32,
    open: bool,
    liveness: Liveness,
}

impl Reconnect {
    /// A host not yet connected (`reconnecting`).
    pub fn new(policy: ReconnectPolicy) -> Self {
        Self { policy, failures: 0, open: false, liveness: Liveness::Reconnecting }
    }

    /// The current liveness.
    pub fn liveness(&self) -> Liveness {
        self.liveness
    }

    /// The circuit is open (probing once per cooldown).
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Failed attempts since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The policy.
    pub fn policy(&self) -> &ReconnectPolicy {
        &self.policy
    }

    fn set(&mut self, liveness: Liveness) -> Option<Liveness> {
        (self.liveness != liveness).then(|| {
            self.liveness = liveness;
            liveness
        })
    }

    /// An attempt succeeded: the circuit closes, the host is connected. Returns the new
    /// liveness when it changed.
    pub fn connected(&mut self) -> Option<Liveness> {
        self.failures = 0;
        self.open = false;
        self.set(Liveness::Connected)
    }

    /// An open stream ended: wait for attempt 1 of a new streak.
    pub fn dropped(&mut self, unit: f64) -> Step {
        self.failures = 0;
        self.open = false;
        let liveness = self.set(Liveness::Reconnecting);
        Step { wait: self.policy.jittered(self.policy.backoff(1), unit), liveness, opened: false }
    }

    /// An attempt failed.
    pub fn failed(&mut self, unit: f64) -> Step {
        self.failures = self.failures.saturating_add(1);
        if self.open {
            // A half-open probe failed: stay open, probe again after the cooldown.
            return Step {
                wait: self.policy.jittered(self.policy.cooldown, unit),
                liveness: None,
                opened: false,
            };
        }
        if self.failures >= self.policy.threshold {
            self.open = true;
            let liveness = self.set(Liveness::Down);
            return Step { wait: self.policy.jittered(self.policy.cooldown, unit), liveness, opened: true };
        }
        let liveness = self.set(Liveness::Reconnecting);
        Step {
            wait: self.policy.jittered(self.policy.backoff(self.failures + 1), unit),
            liveness,
            opened: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_to_the_cap() {
        let p = ReconnectPolicy::default();
        let secs: Vec<u64> = (1..=8).map(|n| p.backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(p.backoff(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn jitter_adds_zero_to_half_of_the_delay() {
        let p = ReconnectPolicy::default();
        let d = Duration::from_secs(8);
        assert_eq!(p.jittered(d, 0.0), d);
        assert_eq!(p.jittered(d, 1.0), Duration::from_secs(12));
        assert_eq!(p.jittered(d, 0.25), Duration::from_secs(9));
        assert_eq!(p.jittered(d, f64::NAN), d);
        assert_eq!(p.jittered(d, 7.0), Duration::from_secs(12));
    }

    #[test]
    fn six_failures_open_the_circuit_then_one_probe_per_cooldown_until_a_success() {
        let mut r = Reconnect::new(ReconnectPolicy::default());
        assert_eq!(r.liveness(), Liveness::Reconnecting);
        let waits: Vec<Step> = (0..5).map(|_| r.failed(0.0)).collect();
        assert_eq!(waits.iter().map(|s| s.wait.as_secs()).collect::<Vec<_>>(), [2, 4, 8, 16, 30]);
        assert!(waits.iter().all(|s| !s.opened && s.liveness.is_none()));
        let sixth = r.failed(0.0);
        assert!(sixth.opened && r.is_open());
        assert_eq!(sixth.liveness, Some(Liveness::Down));
        assert_eq!(sixth.wait, Duration::from_secs(60));
        let probe = r.failed(1.0);
        assert_eq!(probe, Step { wait: Duration::from_secs(90), liveness: None, opened: false });
        assert_eq!(r.connected(), Some(Liveness::Connected));
        assert!(!r.is_open());
        assert_eq!(r.failures(), 0);
        let drop = r.dropped(0.0);
        assert_eq!(drop.wait, Duration::from_secs(1));
        assert_eq!(drop.liveness, Some(Liveness::Reconnecting));
        assert_eq!(r.failed(0.0).wait, Duration::from_secs(2), "the streak restarted");
    }
}
