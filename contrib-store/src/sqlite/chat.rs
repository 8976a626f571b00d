//! [`SqliteChatStore`]: the chat battery's `ChatHistory` on SQLite.
//!
//! Layout (migration `0008_chat.sql`): `chat_messages`, one row per message keyed by tenant,
//! user, persona and a gapless sequence number, the message as JSON.
//!
//! Guarantees:
//! - `append` is one write transaction (the write lock taken first, so writers in other
//!   processes wait on the busy timeout instead of failing), numbering its messages after the
//!   conversation's last one: all or none, in order.
//! - A stored message that does not decode is `PortError::Corrupt` naming the conversation
//!   and the row, never a panic.

use async_trait::async_trait;
use executus::llm::Message;
use executus::ports::PortError;
use executus_chat::{ChatHistory, ChatKey};
use sqlx::Row;

use crate::error::StoreError;
use crate::sqlite::SqliteStore;
use crate::sqlite::checkpoint::i64_of;

const PORT: &str = "chat history";

/// The chat history store. Cheap to clone (shares the [`SqliteStore`]).
#[derive(Debug, Clone)]
pub struct SqliteChatStore {
    store: SqliteStore,
}

impl SqliteChatStore {
    /// The chat store over `store` (also [`SqliteStore::chats`]).
    pub fn new(store: SqliteStore) -> Self {
        Self { store }
    }

    /// The underlying store.
    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    /// Every conversation that holds a message, in key order (what `copy` moves).
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn conversations(&self) -> Result<Vec<ChatKey>, StoreError> {
        const OP: &str = "chat conversations";
        let store = &self.store;
        let rows = store
            .read(OP, || async move {
                sqlx::query(
                    "SELECT DISTINCT tenant, user, persona FROM chat_messages ORDER BY tenant, user, persona",
                )
                .fetch_all(store.reader_pool())
                .await
                .map_err(|e| store.db(OP, e))
            })
            .await?;
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
        let rows = store
            .read(OP, || async move {
                sqlx::query(
                    "SELECT seq, message FROM chat_messages WHERE tenant = ?1 AND user = ?2 AND persona = ?3 \
                     ORDER BY seq",
                )
                .bind(&key.tenant)
                .bind(&key.user)
                .bind(&key.persona)
                .fetch_all(store.reader_pool())
                .await
                .map_err(|e| store.db(OP, e))
            })
            .await?;
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
        let texts = &texts;
        store
            .write(OP, || async move {
                let now = i64_of(store, "time", store.now_ms())?;
                let mut tx = store.begin_write(OP).await?;
                let next: i64 = sqlx::query_scalar(
                    "SELECT COALESCE(MAX(seq) + 1, 0) FROM chat_messages WHERE tenant = ?1 AND user = ?2 \
                     AND persona = ?3",
                )
                .bind(&key.tenant)
                .bind(&key.user)
                .bind(&key.persona)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| store.db(OP, e))?;
                for (i, text) in texts.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO chat_messages (tenant, user, persona, seq, message, created_ms) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )
                    .bind(&key.tenant)
                    .bind(&key.user)
                    .bind(&key.persona)
                    .bind(next + i as i64)
                    .bind(text)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| store.db(OP, e))?;
                }
                tx.commit().await.map_err(|e| store.db(OP, e))
            })
            .await
    }

    async fn delete(&self, key: &ChatKey) -> Result<usize, StoreError> {
        const OP: &str = "chat reset";
        let store = &self.store;
        store
            .write(OP, || async move {
                let mut tx = store.begin_write(OP).await?;
                let done =
                    sqlx::query("DELETE FROM chat_messages WHERE tenant = ?1 AND user = ?2 AND persona = ?3")
                        .bind(&key.tenant)
                        .bind(&key.user)
                        .bind(&key.persona)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| store.db(OP, e))?;
                tx.commit().await.map_err(|e| store.db(OP, e))?;
                Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
            })
            .await
    }
}

#[async_trait]
impl ChatHistory for SqliteChatStore {
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
