//! [`PgChatStore`]: the chat battery's `ChatHistory` on PostgreSQL.
//!
//! Layout: `chat_messages`, one row per message keyed by tenant, user, persona and a gapless
//! sequence number, the message as JSON.
//!
//! Guarantees (the SQLite store's): `append` is one transaction that takes a transaction-level
//! advisory lock on the conversation first, so concurrent writers on any machines number
//! their messages one after the other — all or none, in order; a stored message that does not
//! decode is `PortError::Corrupt` naming the conversation and the row.

use async_trait::async_trait;
use executus::llm::Message;
use executus::ports::PortError;
use executus_chat::{ChatHistory, ChatKey};
use sqlx::Row;

use super::checkpoint::i64_of;
use super::{PgStore, lock_class};
use crate::error::StoreError;

const PORT: &str = "chat history";

/// The chat history on PostgreSQL. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PgChatStore {
    store: PgStore,
}

impl PgChatStore {
    /// The chat store over `store` (also [`PgStore::chats`]).
    pub fn new(store: PgStore) -> Self {
        Self { store }
    }

    /// Every conversation that holds a message, in key order (what `copy` moves).
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn conversations(&self) -> Result<Vec<ChatKey>, StoreError> {
        const OP: &str = "chat conversations";
        let store = &self.store;
        let rows = sqlx::query(
            "SELECT DISTINCT tenant, \"user\", persona FROM chat_messages ORDER BY tenant, \"user\", persona",
        )
        .fetch_all(store.pool())
        .await
        .map_err(|e| store.db(OP, e))?;
        rows.iter()
            .map(|row| {
                Ok(ChatKey {
                    tenant: row.try_get(0).map_err(|e| store.db(OP, e))?,
                    user: row.try_get(1).map_err(|e| store.db(OP, e))?,
                    persona: row.try_get(2).map_err(|e| store.db(OP, e))?,
                })
            })
            .collect()
    }

    async fn load_rows(&self, key: &ChatKey) -> Result<Vec<Message>, StoreError> {
        const OP: &str = "chat load";
        let store = &self.store;
        let rows = sqlx::query(
            "SELECT seq, message FROM chat_messages WHERE tenant = $1 AND \"user\" = $2 AND persona = $3 ORDER BY seq",
        )
        .bind(&key.tenant)
        .bind(&key.user)
        .bind(&key.persona)
        .fetch_all(store.pool())
        .await
        .map_err(|e| store.db(OP, e))?;
        rows.iter()
            .map(|row| {
                let seq: i64 = row.try_get(0).map_err(|e| store.db(OP, e))?;
                let text: String = row.try_get(1).map_err(|e| store.db(OP, e))?;
                serde_json::from_str(&text)
                    .map_err(|e| store.undecodable(format!("conversation {key}, message {seq}: {e}")))
            })
            .collect()
    }

    async fn append_rows(&self, key: &ChatKey, messages: &[Message]) -> Result<(), StoreError> {
        const OP: &str = "chat append";
        let store = &self.store;
        let texts = messages
            .iter()
            .map(|m| serde_json::to_string(m).map_err(|e| store.rejected("message", e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let now = i64_of(store, "time", store.now_ms())?;
        let lock = format!("{}\u{1f}{}\u{1f}{}", key.tenant, key.user, key.persona);
        let (texts, lock) = (&texts, &lock);
        store
            .write(OP, || async move {
                let mut tx = store.begin(OP).await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
                    .bind(lock_class::CHAT)
                    .bind(lock)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| store.db(OP, e))?;
                sqlx::query(
                    "INSERT INTO chat_messages (tenant, \"user\", persona, seq, message, created_ms) \
                     SELECT $1, $2, $3, \
                         (SELECT coalesce(max(seq) + 1, 0) FROM chat_messages \
                          WHERE tenant = $1 AND \"user\" = $2 AND persona = $3) + v.n - 1, v.m, $5 \
                     FROM UNNEST($4::text[]) WITH ORDINALITY AS v(m, n)",
                )
                .bind(&key.tenant)
                .bind(&key.user)
                .bind(&key.persona)
                .bind(texts)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| store.db(OP, e))?;
                tx.commit().await.map_err(|e| store.db(OP, e))
            })
            .await
    }

    async fn delete(&self, key: &ChatKey) -> Result<usize, StoreError> {
        let done =
            sqlx::query("DELETE FROM chat_messages WHERE tenant = $1 AND \"user\" = $2 AND persona = $3")
                .bind(&key.tenant)
                .bind(&key.user)
                .bind(&key.persona)
                .execute(self.store.pool())
                .await
                .map_err(|e| self.store.db("chat reset", e))?;
        Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
    }
}

#[async_trait]
impl ChatHistory for PgChatStore {
    async fn load(&self, key: &ChatKey) -> Result<Vec<Message>, PortError> {
        self.load_rows(key).await.map_err(|e| e.into_port(PORT))
    }

    async fn append(&self, key: &ChatKey, messages: &[Message]) -> Result<(), PortError> {
        if messages.is_empty() {
            return Ok(());
        }
        self.append_rows(key, messages).await.map_err(|e| e.into_port(PORT))
    }

    async fn reset(&self, key: &ChatKey) -> Result<usize, PortError> {
        self.delete(key).await.map_err(|e| e.into_port(PORT))
    }
}
