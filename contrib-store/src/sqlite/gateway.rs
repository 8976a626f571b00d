//! [`SqliteSessionStore`]: the gateway's `SessionStore` on SQLite, so that a gateway restart
//! does not reset any session's loop protection or its finalize hard cap.
//!
//! Layout (migration `0009_gateway_sessions.sql`): `gateway_sessions`, one row per session
//! (`key`, the JSON of its [`SessionState`], `updated_ms`), indexed by age for pruning.
//!
//! Guarantees: `save` is one upsert (the last save wins; the gateway serialises the requests of
//! one session in its process); a state that does not decode is `PortError::Corrupt` naming the
//! session; `prune` deletes by age in one statement.

use async_trait::async_trait;
use executus::ports::PortError;
use executus_gateway::guard::SessionState;
use executus_gateway::store::{SessionStore, StoredSession};

use crate::error::StoreError;
use crate::sqlite::SqliteStore as Store;
use crate::sqlite::checkpoint::i64_of;

const PORT: &str = "gateway sessions";

/// The session store. Cheap to clone (shares the [`Store`]).
#[derive(Debug, Clone)]
pub struct SqliteSessionStore {
    store: Store,
}

impl SqliteSessionStore {
    /// The session store over `store` (also `SqliteStore::gateway_sessions`).
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    async fn load_state(&self, key: &str) -> Result<Option<SessionState>, StoreError> {
        const OP: &str = "gateway session load";
        let store = &self.store;
        let text: Option<String> = store
            .read(OP, || async move {
                sqlx::query_scalar("SELECT state FROM gateway_sessions WHERE key = ?1")
                    .bind(key)
                    .fetch_optional(store.reader_pool())
                    .await
                    .map_err(|e| store.db(OP, e))
            })
            .await?;
        text.map(|t| {
            serde_json::from_str(&t).map_err(|e| store.undecodable(format!("gateway session {key:?}: {e}")))
        })
        .transpose()
    }

    async fn save_state(&self, key: &str, state: &SessionState, now_ms: u64) -> Result<(), StoreError> {
        const OP: &str = "gateway session save";
        let store = &self.store;
        let text = serde_json::to_string(state)
            .map_err(|e| store.rejected(format!("gateway session {key:?}"), e.to_string()))?;
        let at = i64_of(store, "time", now_ms)?;
        store
            .write(OP, || async {
                let mut tx = store.begin_write(OP).await?;
                sqlx::query(
                    "INSERT INTO gateway_sessions (key, state, updated_ms) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (key) DO UPDATE SET state = excluded.state, updated_ms = excluded.updated_ms",
                )
                .bind(key)
                .bind(&text)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(|e| store.db(OP, e))?;
                tx.commit().await.map_err(|e| store.db(OP, e))
            })
            .await
    }

    async fn list_page(&self, after: Option<&str>, limit: u32) -> Result<Vec<StoredSession>, StoreError> {
        const OP: &str = "gateway session list";
        let store = &self.store;
        let rows: Vec<(String, String, i64)> = store
            .read(OP, || async move {
                sqlx::query_as(
                    "SELECT key, state, updated_ms FROM gateway_sessions WHERE ?1 IS NULL OR key > ?1 \
                     ORDER BY key LIMIT ?2",
                )
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(store.reader_pool())
                .await
                .map_err(|e| store.db(OP, e))
            })
            .await?;
        rows.into_iter()
            .map(|(key, text, at)| {
                let state = serde_json::from_str(&text)
                    .map_err(|e| store.undecodable(format!("gateway session {key:?}: {e}")))?;
                Ok(StoredSession { key, state, saved_ms: at.max(0) as u64 })
            })
            .collect()
    }

    async fn prune_before(&self, before_ms: u64) -> Result<u64, StoreError> {
        const OP: &str = "gateway session prune";
        let store = &self.store;
        let before = i64_of(store, "time", before_ms)?;
        store
            .write(OP, || async {
                let mut tx = store.begin_write(OP).await?;
                let done = sqlx::query("DELETE FROM gateway_sessions WHERE updated_ms < ?1")
                    .bind(before)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| store.db(OP, e))?;
                tx.commit().await.map_err(|e| store.db(OP, e))?;
                Ok(done.rows_affected())
            })
            .await
    }
}

#[async_trait]
impl SessionStore for SqliteSessionStore {
    async fn load(&self, key: &str) -> Result<Option<SessionState>, PortError> {
        self.load_state(key).await.map_err(|e| e.into_port(PORT))
    }

    async fn save(&self, key: &str, state: &SessionState, now_ms: u64) -> Result<(), PortError> {
        self.save_state(key, state, now_ms).await.map_err(|e| e.into_port(PORT))
    }

    async fn prune(&self, before_ms: u64) -> Result<u64, PortError> {
        self.prune_before(before_ms).await.map_err(|e| e.into_port(PORT))
    }

    async fn list(&self, after: Option<&str>, limit: u32) -> Result<Vec<StoredSession>, PortError> {
        self.list_page(after, limit).await.map_err(|e| e.into_port(PORT))
    }
}
