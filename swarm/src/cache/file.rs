//! [`FileReviewCache`]: the review cache as one JSON file in a folder — the light host's
//! cache, made for CI: restore the folder before the review and save it after (the shipped
//! workflows do), and the next run pays only for what changed.
//!
//! Guarantees: the file is read once at [`FileReviewCache::open`] and written once per
//! [`flush`](ReviewCache::flush), whole, through a temporary file renamed over it (a run killed
//! mid-write leaves the old file). A missing file is an empty cache; a file that does not
//! parse (or is another program's) is set aside as an empty cache with a warning
//! ([`FileReviewCache::warnings`]): it is a cache, losing it costs money, not correctness.
//! The file keeps at most [`MAX_FILE_ENTRIES`] entries, the most recently used.
//!
//! What it does not do: share the file between processes running at the same time (the last
//! flush wins; both files are valid).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{CacheError, CacheKey, CachedCell, ReviewCache};

/// The file's name inside the cache folder.
pub const CACHE_FILE: &str = "review-cache.json";

/// The most entries the file keeps (the most recently used).
pub const MAX_FILE_ENTRIES: usize = 20_000;

const FORMAT: &str = "pr-review-swarm-cache/v1";
const BACKEND: &str = "file";

#[derive(Debug, Serialize, Deserialize)]
struct Document {
    format: String,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    key: CacheKey,
    cell: CachedCell,
    used_ms: u64,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<CacheKey, (CachedCell, u64)>,
    dirty: bool,
}

/// The review cache in `<folder>/review-cache.json` (see the module docs).
#[derive(Debug)]
pub struct FileReviewCache {
    path: PathBuf,
    state: Mutex<State>,
    warnings: Vec<String>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn io(what: &str, path: &Path, e: &std::io::Error) -> CacheError {
    CacheError::Backend { backend: BACKEND, message: format!("{what} {}: {e}", path.display()) }
}

impl FileReviewCache {
    /// Opens the cache in `folder` (created if missing).
    ///
    /// # Errors
    /// [`CacheError::Backend`] naming the path when the folder cannot be created or the file
    /// cannot be read (a file that does not parse is not an error: see the module docs).
    pub fn open(folder: &Path) -> Result<Self, CacheError> {
        std::fs::create_dir_all(folder).map_err(|e| io("cannot create the cache folder", folder, &e))?;
        let path = folder.join(CACHE_FILE);
        let mut state = State::default();
        let mut warnings = Vec::new();
        match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Document>(&bytes) {
                Ok(doc) if doc.format == FORMAT => {
                    for entry in doc.entries {
                        state.entries.insert(entry.key, (entry.cell, entry.used_ms));
                    }
                }
                Ok(doc) => warnings.push(format!(
                    "{} has format {:?}, not {FORMAT:?}; starting with an empty cache",
                    path.display(),
                    doc.format
                )),
                Err(e) => warnings
                    .push(format!("{} does not parse ({e}); starting with an empty cache", path.display())),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("cannot read", &path, &e)),
        }
        Ok(Self { path, state: Mutex::new(state), warnings })
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What went wrong reading the file (the cache then started empty).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.state.lock().map(|s| s.entries.len()).unwrap_or(0)
    }

    /// True when it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, CacheError> {
        self.state
            .lock()
            .map_err(|_| CacheError::Backend { backend: BACKEND, message: "a writer panicked".into() })
    }
}

#[async_trait]
impl ReviewCache for FileReviewCache {
    async fn get(&self, key: &CacheKey) -> Result<Option<CachedCell>, CacheError> {
        let mut state = self.lock()?;
        let now = now_ms();
        let hit = state.entries.get_mut(key).map(|(cell, used)| {
            *used = now;
            cell.clone()
        });
        if hit.is_some() {
            state.dirty = true;
        }
        Ok(hit)
    }

    async fn put(&self, key: &CacheKey, cell: &CachedCell) -> Result<(), CacheError> {
        let mut state = self.lock()?;
        state.entries.insert(key.clone(), (cell.clone(), now_ms()));
        state.dirty = true;
        Ok(())
    }

    async fn flush(&self) -> Result<(), CacheError> {
        let text = {
            let mut state = self.lock()?;
            if !state.dirty {
                return Ok(());
            }
            let mut entries: Vec<Entry> = state
                .entries
                .iter()
                .map(|(key, (cell, used_ms))| Entry {
                    key: key.clone(),
                    cell: cell.clone(),
                    used_ms: *used_ms,
                })
                .collect();
            // Most recently used first, then by key: the file is deterministic for a state.
            entries.sort_by(|a, b| b.used_ms.cmp(&a.used_ms).then_with(|| a.key.cmp(&b.key)));
            entries.truncate(MAX_FILE_ENTRIES);
            let kept: HashSet<&CacheKey> = entries.iter().map(|e| &e.key).collect();
            state.entries.retain(|key, _| kept.contains(key));
            state.dirty = false;
            serde_json::to_string(&Document { format: FORMAT.to_owned(), entries }).map_err(|e| {
                CacheError::Backend { backend: BACKEND, message: format!("cannot encode the cache: {e}") }
            })?
        };
        let partial = self.path.with_extension("json.partial");
        std::fs::write(&partial, text).map_err(|e| io("cannot write", &partial, &e))?;
        std::fs::rename(&partial, &self.path).map_err(|e| io("cannot replace", &self.path, &e))?;
        Ok(())
    }
}
