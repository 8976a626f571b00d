//! The review cache: pay once for a cell whose input has not changed.
//!
//! A cell is one model x one lens x one [`Chunk`](crate::plan::Chunk). Its answer is stored
//! under a [`CacheKey`] — the model spec, the lens, the lens's [`prompt_version`] (a hash of
//! its system prompt, the findings schema and the user-message template) and the chunk's
//! content hash — so a re-run after a one-line fix asks the models only about the chunks that
//! changed, and any change to a prompt or the schema invalidates every entry by itself.
//!
//! Findings are stored with their lines relative to the chunk's anchor (the new start of its
//! first hunk), so a chunk that only moved (lines added above it) reuses its findings at the
//! new position.
//!
//! Backends implement [`ReviewCache`]: [`NoCache`] (the default: nothing is kept),
//! [`MemoryReviewCache`] (one process), [`FileReviewCache`] (one JSON file in a folder that
//! CI restores between runs; the light host's), and the SQLite one of `executus-run`
//! (`executus_store::review_cache`, adapted in the CLI). [`conformance::check_review_cache`]
//! holds every backend to the same contract.
//!
//! A cache that fails is never fatal: the review treats a failed read as a miss and a failed
//! write as a warning in its summary.

pub mod conformance;
mod file;

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use executus_llm::Usage;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

pub use file::{CACHE_FILE, FileReviewCache, MAX_FILE_ENTRIES};

use crate::finding::{Finding, LensReport};
use crate::lens::LensKind;

/// Bumped when the user message template or the way answers are stored changes.
pub const PROMPT_REVISION: &str = "pr-review-swarm prompt r2";

/// The version of `lens`'s prompt: SHA-256 (first 16 hex digits) over [`PROMPT_REVISION`],
/// the lens's system prompt and the findings schema.
pub fn prompt_version(lens: LensKind) -> String {
    let mut hasher = Sha256::new();
    hasher.update(PROMPT_REVISION.as_bytes());
    hasher.update([0]);
    hasher.update(lens.system_prompt().as_bytes());
    hasher.update([0]);
    hasher.update(LensReport::response_schema().schema.to_string().as_bytes());
    hasher.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// What a cached answer is stored under.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CacheKey {
    /// The cell's model spec, as configured.
    pub model: String,
    /// The lens name.
    pub lens: String,
    /// [`prompt_version`] of the lens.
    pub prompt_version: String,
    /// The chunk's content hash.
    pub content_hash: String,
}

/// A finding as cached: lines relative to the chunk's anchor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedFinding {
    /// The finding (its `line` and `end_line` are not used; see the offsets).
    pub finding: Finding,
    /// `line - anchor`.
    pub line_offset: i64,
    /// `end_line - anchor`.
    pub end_offset: Option<i64>,
}

impl CachedFinding {
    /// Stores `finding` relative to `anchor`.
    pub fn relative(finding: Finding, anchor: u32) -> Self {
        let line_offset = i64::from(finding.line) - i64::from(anchor);
        let end_offset = finding.end_line.map(|end| i64::from(end) - i64::from(anchor));
        Self { finding, line_offset, end_offset }
    }

    /// The finding placed at `anchor` (lines at least 1).
    pub fn at(&self, anchor: u32) -> Finding {
        let place = |offset: i64| u32::try_from((i64::from(anchor) + offset).max(1)).unwrap_or(u32::MAX);
        let mut finding = self.finding.clone();
        finding.line = place(self.line_offset);
        finding.end_line = self.end_offset.map(place);
        finding
    }
}

/// A cell's answer as cached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedCell {
    /// Its findings (after the per-cell cap and sanitising).
    pub findings: Vec<CachedFinding>,
    /// Findings the per-cell cap dropped.
    pub dropped: usize,
    /// What the answer cost when it was made (what a hit saves).
    pub usage: Usage,
}

/// Why a cache operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The backend failed (I/O, database).
    #[error("review cache ({backend}): {message}")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// What happened.
        message: String,
    },
    /// A stored entry does not decode.
    #[error("review cache ({backend}): entry for {model} x {lens} does not decode: {reason}")]
    Corrupt {
        /// Which backend.
        backend: &'static str,
        /// The entry's model.
        model: String,
        /// The entry's lens.
        lens: String,
        /// The decoder's message.
        reason: String,
    },
}

/// A store of cell answers (see the module docs).
#[async_trait]
pub trait ReviewCache: Send + Sync + std::fmt::Debug {
    /// The answer stored under `key`, if any.
    ///
    /// # Errors
    /// [`CacheError`] when the backend fails or the entry does not decode.
    async fn get(&self, key: &CacheKey) -> Result<Option<CachedCell>, CacheError>;

    /// Stores `cell` under `key`, replacing what was there.
    ///
    /// # Errors
    /// [`CacheError`] when the backend fails.
    async fn put(&self, key: &CacheKey, cell: &CachedCell) -> Result<(), CacheError>;

    /// Makes what was put durable (the file cache writes its file here). Default: nothing.
    ///
    /// # Errors
    /// [`CacheError`] when the backend fails.
    async fn flush(&self) -> Result<(), CacheError> {
        Ok(())
    }
}

/// The nil cache: never has anything, keeps nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCache;

#[async_trait]
impl ReviewCache for NoCache {
    async fn get(&self, _key: &CacheKey) -> Result<Option<CachedCell>, CacheError> {
        Ok(None)
    }

    async fn put(&self, _key: &CacheKey, _cell: &CachedCell) -> Result<(), CacheError> {
        Ok(())
    }
}

/// A cache in this process's memory.
#[derive(Debug, Default)]
pub struct MemoryReviewCache {
    entries: Mutex<HashMap<CacheKey, CachedCell>>,
}

impl MemoryReviewCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    /// True when it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl ReviewCache for MemoryReviewCache {
    async fn get(&self, key: &CacheKey) -> Result<Option<CachedCell>, CacheError> {
        let entries = self
            .entries
            .lock()
            .map_err(|_| CacheError::Backend { backend: "memory", message: "a writer panicked".into() })?;
        Ok(entries.get(key).cloned())
    }

    async fn put(&self, key: &CacheKey, cell: &CachedCell) -> Result<(), CacheError> {
        let mut entries = self
            .entries
            .lock()
            .map_err(|_| CacheError::Backend { backend: "memory", message: "a writer panicked".into() })?;
        entries.insert(key.clone(), cell.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests;
