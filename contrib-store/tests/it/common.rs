//! Shared helpers: temp stores, run headers, appends.

use std::path::PathBuf;
use std::sync::Arc;

use executus::llm::ManualClock;
use executus::ports::{Entry, RunAppend, RunMeta, StoredStatus};
use executus::{Identity, RunId};
use executus_store::{Store, StoreOptions};
use tempfile::TempDir;

/// A temp dir holding `store.db`.
pub struct TempStore {
    /// Owns the directory (deleted on drop).
    _dir: TempDir,
    pub path: PathBuf,
}

impl TempStore {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        Self { _dir: dir, path }
    }

    pub fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }

    pub async fn open(&self) -> Store {
        Store::open(&self.url()).await.unwrap()
    }

    pub async fn open_with_clock(&self, clock: Arc<ManualClock>) -> Store {
        Store::open_with(&self.url(), StoreOptions::default().clock(clock)).await.unwrap()
    }
}

pub fn meta(run: RunId, created_ms: u64) -> RunMeta {
    RunMeta {
        run_id: run,
        agent: "tester".into(),
        identity: Identity::new("ada", "acme").with_role("admin"),
        parent: None,
        created_ms,
    }
}

/// A payload in the core's shape (versioned JSON), `len` bytes of text inside.
pub fn payload(seq: u64, len: usize) -> Vec<u8> {
    let text: String = "lorem ipsum dolor sit amet ".chars().cycle().take(len).collect();
    format!(r#"{{"v":1,"fact":"steered","text":"{seq}: {text}"}}"#).into_bytes()
}

pub fn entries(range: std::ops::Range<u64>) -> Vec<Entry> {
    range.map(|seq| Entry { seq, payload: payload(seq, 40 + (seq as usize % 7) * 30) }).collect()
}

pub fn append(meta: &RunMeta, status: StoredStatus, range: std::ops::Range<u64>) -> RunAppend {
    RunAppend { meta: meta.clone(), status, entries: entries(range) }
}
