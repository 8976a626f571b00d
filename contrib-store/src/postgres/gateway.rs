//! [`PgSessionStore`]: the gateway's `SessionStore` on PostgreSQL, with the SQLite store's
//! layout and guarantees (migration `0003_gateway_sessions.sql`): a gateway restart — or another
//! gateway on the same database — does not reset any session's loop protection or its finalize
//! hard cap.
//!
//! Guarantees: `save` is one upsert (the last save wins); a state that does not decode is
//! `PortError::Corrupt` naming the session; `prune` deletes by age in one statement through the
//! `updated_ms` index.
//!
//! What it does not do: serialise two gateways' requests of one session (each gateway
//! serialises its own; across gateways the last save wins).

use async_trait::async_trait;
use executus::ports::PortError;
use executus_gateway::guard::SessionState;
use executus_gateway::store::{SessionStore, StoredSession};

use super::PgStore;
use super::checkpoint::i64_of;
use crate::error::StoreError;

const PORT: &str = "gateway sessions";

/// The session store on PostgreSQL. Cheap to clone (shares the [`PgStore`]).
#[derive(Debug, Clone)]
pub struct PgSessionStore {
    store: PgStore,
}

impl PgSessionStore {
    /// The session store in `store`'s database (also [`PgStore::gateway_sessions`]).
    pub fn new(store: PgStore) -> Self {
        Self { store }
    }

    async fn load_state(&self, key: &str) -> Result<Option<SessionState>, StoreError> {
        let store = &self.store;
        let text: Option<String> = sqlx::query_scalar("SELECT state FROM gateway_sessions WHERE key = $1")
            .bind(key)
            .fetch_optional(store.pool())
            .await
            .map_err(|e| store.db("gateway session load", e))?;
        text.map(|t| {
            serde_json::from_str(&t).map_err(|e| store.undecodable(format!("gateway session {key:?}: {e}")))
        })
        .transpose()
    }

    async fn save_state(&self, key: &str, state: &SessionState, now_ms: u64) -> Result<(), StoreError> {
        let store = &self.store;
        let text = serde_json::to_string(state)
            .map_err(|e| store.rejected(format!("gateway session {key:?}"), e.to_string()))?;
        let at = i64_of(store, "time", now_ms)?;
        sqlx::query(
            "INSERT INTO gateway_sessions (key, state, updated_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET state = excluded.state, updated_ms = excluded.updated_ms",
        )
        .bind(key)
        .bind(&text)
        .bind(at)
        .execute(store.pool())
        .await
        .map_err(|e| store.db("gateway session save", e))?;
        Ok(())
    }

    async fn list_page(&self, after: Option<&str>, limit: u32) -> Result<Vec<StoredSession>, StoreError> {
        let store = &self.store;
        // Byte order (COLLATE "C"), whatever the database's collation: the same order as SQLite's.
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT key, state, updated_ms FROM gateway_sessions \
             WHERE $1::text IS NULL OR key COLLATE \"C\" > $1::text COLLATE \"C\" \
             ORDER BY key COLLATE \"C\" LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(store.pool())
        .await
        .map_err(|e| store.db("gateway session list", e))?;
        rows.into_iter()
            .map(|(key, text, at)| {
                let state = serde_json::from_str(&text)
                    .map_err(|e| store.undecodable(format!("gateway session {key:?}: {e}")))?;
                Ok(StoredSession { key, state, saved_ms: at.max(0) as u64 })
            })
            .collect()
    }

    async fn prune_before(&self, before_ms: u64) -> Result<u64, StoreError> {
        let store = &self.store;
        let before = i64_of(store, "time", before_ms)?;
        let done = sqlx::query("DELETE FROM gateway_sessions WHERE updated_ms < $1")
            .bind(before)
            .execute(store.pool())
            .await
            .map_err(|e| store.db("gateway session prune", e))?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl SessionStore for PgSessionStore {
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
