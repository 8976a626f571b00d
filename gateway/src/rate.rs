//! [`RateLimiter`]: requests per minute per key. The in-memory default counts a sliding
//! minute per key; a host with a shared store plugs in its own (`executus-run serve` counts
//! through the budget battery's store, so several gateway processes over one database share
//! the limit).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

/// The window every rate is counted over.
pub const WINDOW: Duration = Duration::from_secs(60);

/// A refusal: the key is over its rate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate limit of {limit} requests per minute reached for key {key}")]
pub struct RateLimited {
    /// The key's name.
    pub key: String,
    /// Its limit.
    pub limit: u32,
    /// When a request would be admitted again.
    pub retry_after: Duration,
}

/// Admits requests per key.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts one request of `key`, allowed `limit` per [`WINDOW`], at `now_ms`.
    ///
    /// # Errors
    /// [`RateLimited`] when the key is over its limit (the request is not counted).
    async fn admit(&self, key: &str, limit: u32, now_ms: u64) -> Result<(), RateLimited>;
}

/// The in-memory default: one sliding window per key.
#[derive(Debug, Default)]
pub struct MemoryRateLimiter {
    windows: Mutex<HashMap<String, VecDeque<u64>>>,
}

impl MemoryRateLimiter {
    /// An empty limiter.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn admit(&self, key: &str, limit: u32, now_ms: u64) -> Result<(), RateLimited> {
        let window_ms = WINDOW.as_millis() as u64;
        let mut windows = self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let times = windows.entry(key.to_owned()).or_default();
        while times.front().is_some_and(|t| t.saturating_add(window_ms) <= now_ms) {
            times.pop_front();
        }
        if times.len() >= limit as usize {
            let oldest = times.front().copied().unwrap_or(now_ms);
            let retry_after =
                Duration::from_millis(oldest.saturating_add(window_ms).saturating_sub(now_ms).max(1));
            return Err(RateLimited { key: key.to_owned(), limit, retry_after });
        }
        times.push_back(now_ms);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sliding_minute_per_key() {
        let limiter = MemoryRateLimiter::new();
        let t0 = 1_000_000;
        limiter.admit("alice", 2, t0).await.unwrap();
        limiter.admit("alice", 2, t0 + 10_000).await.unwrap();
        let refused = limiter.admit("alice", 2, t0 + 20_000).await.unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(40));
        limiter.admit("bob", 2, t0 + 20_000).await.unwrap();
        limiter.admit("alice", 2, t0 + 60_000).await.unwrap();
    }
}
