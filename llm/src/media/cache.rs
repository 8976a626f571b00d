//! [`MediaCache`]: verdicts per (image content, limits, byte budget), so that a transcript
//! resent at every step is inspected cheaply and converted once.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use super::format::inspect;
use super::limits::MediaLimits;
use super::normalise::{Verdict, verdict};
use super::{ImageRef, MediaError};

/// Content hash and length of the image, hash of the limits, byte budget.
type Key = (u64, usize, u64, usize, bool);

/// A bounded cache of normalisation verdicts (converted bytes included), shared by clones of
/// one chain. Keys hash the image bytes with a per-cache random key, so a crafted image
/// cannot collide with another on purpose. When the converted bytes held pass the capacity
/// (64 MiB by default) the oldest entries go.
///
/// Hashing an image costs a pass over its bytes at every request; converting it happens once.
#[derive(Debug)]
pub struct MediaCache {
    hasher: RandomState,
    capacity: usize,
    state: Mutex<State>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<Key, Result<Verdict, MediaError>>,
    order: VecDeque<Key>,
    bytes: usize,
}

/// Counters of a [`MediaCache`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Verdicts served from the cache.
    pub hits: u64,
    /// Verdicts computed (each one inspection, and a conversion when needed).
    pub misses: u64,
    /// Entries held.
    pub entries: usize,
    /// Converted bytes held.
    pub bytes: usize,
}

impl Default for MediaCache {
    fn default() -> Self {
        Self::with_capacity(64 << 20)
    }
}

impl MediaCache {
    /// An empty cache holding at most `capacity` converted bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            hasher: RandomState::new(),
            capacity,
            state: Mutex::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> CacheStats {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: state.entries.len(),
            bytes: state.bytes,
        }
    }

    /// The verdict for `bytes` under `limits` with `budget` bytes, from the cache or computed
    /// (outside the lock) and remembered. Errors are remembered too and name `image`.
    pub(crate) fn verdict(
        &self,
        bytes: &[u8],
        image: &ImageRef,
        limits: &MediaLimits,
        budget: usize,
        convert: bool,
    ) -> Result<Verdict, MediaError> {
        let key = (self.hasher.hash_one(bytes), bytes.len(), self.hasher.hash_one(limits), budget, convert);
        let cached = self.state.lock().unwrap_or_else(PoisonError::into_inner).entries.get(&key).cloned();
        if let Some(found) = cached {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return found.map_err(|e| e.with_image(image));
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let computed = inspect(bytes)
            .map_err(|source| MediaError::Inspect { image: image.clone(), source })
            .and_then(|info| verdict(bytes, &info, limits, budget, image, convert));
        self.remember(key, computed.clone());
        computed
    }

    fn remember(&self, key: Key, value: Result<Verdict, MediaError>) {
        let size = match &value {
            Ok(Verdict::Convert { data, .. }) => data.len(),
            _ => 0,
        };
        if size > self.capacity {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match state.entries.insert(key, value) {
            // Computed twice concurrently: swap the counted bytes, keep its place in line.
            Some(Ok(Verdict::Convert { data, .. })) => state.bytes = state.bytes - data.len() + size,
            Some(_) => state.bytes += size,
            None => {
                state.order.push_back(key);
                state.bytes += size;
            }
        }
        // Bound the entry count too, so that many small verdicts cannot grow it forever.
        while state.bytes > self.capacity || state.order.len() > 4096 {
            let Some(old) = state.order.pop_front() else { break };
            if let Some(Ok(Verdict::Convert { data, .. })) = state.entries.remove(&old) {
                state.bytes -= data.len();
            }
        }
    }
}
