//! [`SqliteChatHistory`]: conversations in the same SQLite file as the other executus
//! stores, in one table of their own (`chatbot_messages`: one row per message, keyed by
//! tenant, user, persona and a gapless sequence number; the message as JSON).
//!
//! It is opened from an already opened [`executus_store::Store`], never from a bare path:
//! the store decides whether the file may be written at all (it refuses files that are not
//! its own) and marks it, after which this table lives beside the store's without
//! disturbing them.
//!
//! Guarantees: `append` is one `BEGIN IMMEDIATE` transaction (the write lock is taken
//! first, so concurrent writers in other processes wait on the busy timeout instead of
//! failing), numbering its messages after the conversation's last one: all or none, in
//! order. A stored message that does not decode is [`PortError::Corrupt`] naming the
//! conversation and row, never a panic.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use executus::ports::PortError;
use executus_llm::Message;
use sqlx::Row as _;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

use super::{ChatHistory, ChatKey};

const PORT: &str = "chat history";

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS chatbot_messages (
    tenant TEXT NOT NULL,
    user TEXT NOT NULL,
    persona TEXT NOT NULL,
    seq INTEGER NOT NULL,
    message TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, user, persona, seq)
) WITHOUT ROWID";

/// Conversations in the store's SQLite file (see the module docs).
#[derive(Debug, Clone)]
pub struct SqliteChatHistory {
    pool: SqlitePool,
    location: String,
}

fn backend(location: &str, op: &str, e: impl std::fmt::Display) -> PortError {
    PortError::Backend { port: PORT, message: format!("{op} in {location}: {e}") }
}

impl SqliteChatHistory {
    /// The conversations table in `store`'s database file, created if missing.
    ///
    /// # Errors
    /// [`PortError::Invalid`] for an in-memory store (it cannot be shared with a second
    /// connection); [`PortError::Backend`] naming the file when it cannot be opened.
    pub async fn open(store: &executus_store::Store) -> Result<Self, PortError> {
        let location = store.location().to_owned();
        if location == ":memory:" {
            return Err(PortError::Invalid {
                port: PORT,
                what: "store".into(),
                reason: "an in-memory store cannot hold conversations for another connection; use a file"
                    .into(),
            });
        }
        let options = SqliteConnectOptions::new()
            .filename(&location)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .map_err(|e| backend(&location, "open", e))?;
        sqlx::query(SCHEMA).execute(&pool).await.map_err(|e| backend(&location, "create table", e))?;
        Ok(Self { pool, location })
    }
}

#[async_trait]
impl ChatHistory for SqliteChatHistory {
    async fn load(&self, key: &ChatKey) -> Result<Vec<Message>, PortError> {
        let rows = sqlx::query(
            "SELECT seq, message FROM chatbot_messages WHERE tenant = ?1 AND user = ?2 AND persona = ?3 ORDER BY seq",
        )
        .bind(&key.tenant)
        .bind(&key.user)
        .bind(&key.persona)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| backend(&self.location, "load", e))?;
        rows.iter()
            .map(|row| {
                let seq: i64 = row.try_get(0).map_err(|e| backend(&self.location, "load", e))?;
                let text: String = row.try_get(1).map_err(|e| backend(&self.location, "load", e))?;
                serde_json::from_str(&text).map_err(|e| PortError::Corrupt {
                    port: PORT,
                    message: format!("conversation {key}, message {seq}: {e}"),
                })
            })
            .collect()
    }

    async fn append(&self, key: &ChatKey, messages: &[Message]) -> Result<(), PortError> {
        if messages.is_empty() {
            return Ok(());
        }
        let fail = |op: &str, e: sqlx::Error| backend(&self.location, op, e);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(|e| fail("append", e))?;
        let next: i64 = sqlx::query(
            "SELECT COALESCE(MAX(seq) + 1, 0) FROM chatbot_messages WHERE tenant = ?1 AND user = ?2 AND persona = ?3",
        )
        .bind(&key.tenant)
        .bind(&key.user)
        .bind(&key.persona)
        .fetch_one(&mut *tx)
        .await
        .and_then(|row| row.try_get(0))
        .map_err(|e| fail("append", e))?;
        for (i, message) in messages.iter().enumerate() {
            let text = serde_json::to_string(message).map_err(|e| PortError::Invalid {
                port: PORT,
                what: "message".into(),
                reason: e.to_string(),
            })?;
            sqlx::query(
                "INSERT INTO chatbot_messages (tenant, user, persona, seq, message, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .bind(&key.tenant)
            .bind(&key.user)
            .bind(&key.persona)
            .bind(next + i as i64)
            .bind(text)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| fail("append", e))?;
        }
        tx.commit().await.map_err(|e| fail("append", e))
    }

    async fn reset(&self, key: &ChatKey) -> Result<usize, PortError> {
        let done =
            sqlx::query("DELETE FROM chatbot_messages WHERE tenant = ?1 AND user = ?2 AND persona = ?3")
                .bind(&key.tenant)
                .bind(&key.user)
                .bind(&key.persona)
                .execute(&self.pool)
                .await
                .map_err(|e| backend(&self.location, "reset", e))?;
        Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
    }
}
