//! [`SessionStore`]: where per-session guard state lives between requests (and across a
//! restart), with [`MemorySessionStore`] as the default; `executus-store` has the SQLite one.
//!
//! The model is one row per session: `(key, state, updated_ms)`, `state` the JSON of a
//! [`SessionState`]. The gateway serialises the requests of one session around their
//! load-and-save (in process), so a store needs no compare-and-swap; each method is atomic on
//! its own.
//!
//! [`SessionStore::list`] pages through every stored session in key order (what a store copy
//! moves).
//!
//! [`conformance`] holds the contract as executable checks that every backend runs.

use std::sync::Mutex;

use async_trait::async_trait;
use executus::ports::PortError;

use crate::guard::SessionState;

/// Keeps per-session guard state.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// The state stored under `key`, if any.
    ///
    /// # Errors
    /// A [`PortError`] if the backend fails or the stored state does not decode.
    async fn load(&self, key: &str) -> Result<Option<SessionState>, PortError>;

    /// Stores `state` under `key` (replacing what was there), stamped `now_ms`.
    ///
    /// # Errors
    /// A [`PortError`] if the backend fails (nothing changed).
    async fn save(&self, key: &str, state: &SessionState, now_ms: u64) -> Result<(), PortError>;

    /// Deletes sessions last saved before `before_ms`; returns how many.
    ///
    /// # Errors
    /// A [`PortError`] if the backend fails.
    async fn prune(&self, before_ms: u64) -> Result<u64, PortError>;

    /// Up to `limit` stored sessions with keys after `after` (all when `None`), in ascending
    /// key order (byte order), each with the time it was last saved: a page of everything the
    /// store holds.
    ///
    /// # Errors
    /// A [`PortError`] if the backend fails or a stored state does not decode.
    async fn list(&self, after: Option<&str>, limit: u32) -> Result<Vec<StoredSession>, PortError>;
}

/// One stored session, as [`SessionStore::list`] returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSession {
    /// The session's key.
    pub key: String,
    /// Its guard state.
    pub state: SessionState,
    /// When it was last saved (ms since the epoch).
    pub saved_ms: u64,
}

/// The in-memory default: lost at exit.
#[derive(Debug, Default)]
pub struct MemorySessionStore {
    sessions: Mutex<std::collections::HashMap<String, (SessionState, u64)>>,
}

impl MemorySessionStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (SessionState, u64)>> {
        self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl SessionStore for MemorySessionStore {
    async fn load(&self, key: &str) -> Result<Option<SessionState>, PortError> {
        Ok(self.lock().get(key).map(|(state, _)| state.clone()))
    }

    async fn save(&self, key: &str, state: &SessionState, now_ms: u64) -> Result<(), PortError> {
        self.lock().insert(key.to_owned(), (state.clone(), now_ms));
        Ok(())
    }

    async fn prune(&self, before_ms: u64) -> Result<u64, PortError> {
        let mut sessions = self.lock();
        let before = sessions.len();
        sessions.retain(|_, (_, at)| *at >= before_ms);
        Ok((before - sessions.len()) as u64)
    }

    async fn list(&self, after: Option<&str>, limit: u32) -> Result<Vec<StoredSession>, PortError> {
        let sessions = self.lock();
        let mut keys: Vec<&String> =
            sessions.keys().filter(|k| after.is_none_or(|a| k.as_str() > a)).collect();
        keys.sort();
        Ok(keys
            .into_iter()
            .take(limit as usize)
            .map(|k| {
                let (state, saved_ms) = &sessions[k];
                StoredSession { key: k.clone(), state: state.clone(), saved_ms: *saved_ms }
            })
            .collect())
    }
}

pub mod conformance {
    //! The [`SessionStore`] contract as executable checks. Each check gets a fresh store from
    //! the factory; failures are returned, naming the check and what was observed.
    //!
    //! ```no_run
    //! use std::sync::Arc;
    //! use executus_gateway::store::{MemorySessionStore, SessionStore, conformance};
    //! # async fn demo() -> Result<(), conformance::Violation> {
    //! conformance::check(|| async { Arc::new(MemorySessionStore::new()) as Arc<dyn SessionStore> }).await
    //! # }
    //! ```

    use std::future::Future;
    use std::sync::Arc;

    use executus::LoopLimits;
    use executus_llm::{Message, Part, Role, ToolCall, ToolResult};

    use super::SessionStore;
    use crate::config::LoopSettings;
    use crate::guard::SessionState;

    /// A violated expectation.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    #[error("session store conformance: {check}: {detail}")]
    pub struct Violation {
        /// The check that failed.
        pub check: &'static str,
        /// What was expected and what was observed.
        pub detail: String,
    }

    fn violation(check: &'static str, detail: impl Into<String>) -> Violation {
        Violation { check, detail: detail.into() }
    }

    /// A state with something in every field.
    fn busy_state() -> SessionState {
        let mut state = SessionState::new();
        let mut messages = vec![Message::user("conformance")];
        for i in 0..2 {
            let id = format!("c{i}");
            messages.push(Message {
                role: Role::Assistant,
                parts: vec![Part::ToolCall(ToolCall {
                    id: id.clone(),
                    name: "Read".into(),
                    args: serde_json::json!({"p": "same"}),
                    signature: None,
                })],
            });
            messages.push(Message::tool_results([ToolResult {
                id,
                name: "Read".into(),
                content: "same".into(),
                is_error: false,
            }]));
        }
        let settings = LoopSettings { limits: LoopLimits::default(), finalize_hard_cap: 6 };
        state.prepare(&messages, &settings);
        state.count_continuation();
        state
    }

    /// Runs every check against stores from `factory`.
    ///
    /// # Errors
    /// The first [`Violation`].
    pub async fn check<F, Fut>(factory: F) -> Result<(), Violation>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Arc<dyn SessionStore>>,
    {
        let port = |check: &'static str| move |e: executus::ports::PortError| violation(check, e.to_string());

        let store = factory().await;
        let check = "load of an unknown key";
        if store.load("nobody").await.map_err(port(check))?.is_some() {
            return Err(violation(check, "returned a state"));
        }

        let check = "round trip";
        let state = busy_state();
        store.save("alice\u{1f}fp:1", &state, 1_000).await.map_err(port(check))?;
        let loaded = store.load("alice\u{1f}fp:1").await.map_err(port(check))?;
        if loaded.as_ref() != Some(&state) {
            return Err(violation(check, format!("saved {state:?}, loaded {loaded:?}")));
        }

        let check = "keys are distinct";
        if store.load("bob\u{1f}fp:1").await.map_err(port(check))?.is_some() {
            return Err(violation(check, "another key's session was returned"));
        }

        let check = "save replaces";
        let fresh = SessionState::new();
        store.save("alice\u{1f}fp:1", &fresh, 2_000).await.map_err(port(check))?;
        let loaded = store.load("alice\u{1f}fp:1").await.map_err(port(check))?;
        if loaded.as_ref() != Some(&fresh) {
            return Err(violation(check, format!("expected the second state, loaded {loaded:?}")));
        }

        let check = "prune by age";
        let store = factory().await;
        store.save("old", &state, 1_000).await.map_err(port(check))?;
        store.save("new", &state, 5_000).await.map_err(port(check))?;
        let pruned = store.prune(3_000).await.map_err(port(check))?;
        if pruned != 1 {
            return Err(violation(check, format!("pruned {pruned}, expected 1")));
        }
        if store.load("old").await.map_err(port(check))?.is_some()
            || store.load("new").await.map_err(port(check))?.is_none()
        {
            return Err(violation(check, "the wrong session was deleted"));
        }

        let check = "concurrent keys";
        let store = factory().await;
        let mut tasks = Vec::new();
        for i in 0..16u64 {
            let store = Arc::clone(&store);
            let state = state.clone();
            tasks.push(tokio::spawn(async move { store.save(&format!("k{i}"), &state, i).await }));
        }
        for task in tasks {
            task.await.map_err(|e| violation(check, e.to_string()))?.map_err(port(check))?;
        }
        for i in 0..16u64 {
            if store.load(&format!("k{i}")).await.map_err(port(check))?.is_none() {
                return Err(violation(check, format!("k{i} was lost")));
            }
        }

        let check = "list pages in key order";
        let store = factory().await;
        if !store.list(None, 10).await.map_err(port(check))?.is_empty() {
            return Err(violation(check, "an empty store listed sessions"));
        }
        for i in (0..7u64).rev() {
            let saved = if i == 3 { &state } else { &fresh };
            store.save(&format!("s{i:02}"), saved, 100 + i).await.map_err(port(check))?;
        }
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = store.list(after.as_deref(), 3).await.map_err(port(check))?;
            if page.len() > 3 {
                return Err(violation(check, format!("a page of 3 held {}", page.len())));
            }
            let Some(last) = page.last() else { break };
            after = Some(last.key.clone());
            seen.extend(page);
        }
        let keys: Vec<&str> = seen.iter().map(|s| s.key.as_str()).collect();
        if keys != ["s00", "s01", "s02", "s03", "s04", "s05", "s06"] {
            return Err(violation(check, format!("listed {keys:?}")));
        }
        for (i, session) in seen.iter().enumerate() {
            let expected = if i == 3 { &state } else { &fresh };
            if &session.state != expected || session.saved_ms != 100 + i as u64 {
                return Err(violation(check, format!("{} read back as {session:?}", session.key)));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_store_passes_conformance() {
        conformance::check(|| async { Arc::new(MemorySessionStore::new()) as Arc<dyn SessionStore> })
            .await
            .unwrap();
    }
}
