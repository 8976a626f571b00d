//! [`SqlitePersonaStore`]: the persona battery's `PersonaStore` on SQLite.
//!
//! Layout (migration `0002_personas.sql`): one `personas` row per persona, keyed by its exact
//! name (case-sensitive: SQLite's `BINARY` collation compares bytes, which is also how Rust
//! orders `String`s, so `list` comes back in the same order as the in-memory store's), the
//! whole [`Persona`] as JSON.
//!
//! Guarantees:
//! - Every persona is validated with [`Persona::validate`] before anything is written; an
//!   invalid one is `PortError::Invalid` and nothing is written.
//! - `put` replaces a record whole; `put_all` is one transaction (all of the batch or none
//!   of it), refusing a batch that names a persona twice.
//! - A stored row that does not decode (someone edited the file) is `PortError::Corrupt`
//!   naming the persona, never a panic.
//!
//! Not guaranteed: an order between concurrent writers of one name beyond "the last commit
//! wins, whole".

use async_trait::async_trait;
use executus::ports::PortError;
use executus_persona::{Persona, PersonaStore, invalid, validate_batch};
use sqlx::Row;

use crate::error::StoreError;
use crate::sqlite::SqliteStore;
use crate::sqlite::checkpoint::i64_of;

const PORT: &str = executus_persona::PORT;

const UPSERT: &str = "INSERT INTO personas (name, model, record, updated_ms) VALUES (?1, ?2, ?3, ?4) \
     ON CONFLICT (name) DO UPDATE SET model = excluded.model, record = excluded.record, \
     updated_ms = excluded.updated_ms";

/// The persona store. Cheap to clone (shares the [`SqliteStore`]).
#[derive(Debug, Clone)]
pub struct SqlitePersonaStore {
    store: SqliteStore,
}

/// A persona ready to write: its name, model and JSON.
struct Encoded {
    name: String,
    model: String,
    json: String,
}

impl SqlitePersonaStore {
    /// The persona store over `store` (also [`SqliteStore::personas`]).
    pub fn new(store: SqliteStore) -> Self {
        Self { store }
    }

    /// The underlying store.
    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    fn encode(&self, persona: &Persona) -> Result<Encoded, StoreError> {
        let json = serde_json::to_string(persona)
            .map_err(|e| self.store.rejected(format!("persona {:?}", persona.name), e.to_string()))?;
        Ok(Encoded { name: persona.name.clone(), model: persona.model.clone(), json })
    }

    /// Writes every record in one transaction.
    async fn write_all(&self, records: &[Encoded]) -> Result<(), StoreError> {
        const OP: &str = "persona put";
        let store = &self.store;
        store
            .write(OP, || async move {
                let now = i64_of(store, "time", store.now_ms())?;
                let mut tx = store.begin_write(OP).await?;
                for r in records {
                    sqlx::query(UPSERT)
                        .bind(&r.name)
                        .bind(&r.model)
                        .bind(&r.json)
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| store.db(OP, e))?;
                }
                tx.commit().await.map_err(|e| store.db(OP, e))?;
                Ok(())
            })
            .await
    }

    async fn get_persona(&self, name: &str) -> Result<Option<Persona>, StoreError> {
        const OP: &str = "persona get";
        let store = &self.store;
        let json: Option<String> = store
            .read(OP, || async move {
                sqlx::query_scalar("SELECT record FROM personas WHERE name = ?1")
                    .bind(name)
                    .fetch_optional(store.reader_pool())
                    .await
                    .map_err(|e| store.db(OP, e))
            })
            .await?;
        json.map(|json| {
            serde_json::from_str(&json).map_err(|e| store.undecodable(format!("persona {name:?}: {e}")))
        })
        .transpose()
    }

    async fn names(&self) -> Result<Vec<String>, StoreError> {
        const OP: &str = "persona list";
        let store = &self.store;
        store
            .read(OP, || async move {
                sqlx::query_scalar("SELECT name FROM personas ORDER BY name")
                    .fetch_all(store.reader_pool())
                    .await
                    .map_err(|e| store.db(OP, e))
            })
            .await
    }

    async fn delete_persona(&self, name: &str) -> Result<bool, StoreError> {
        const OP: &str = "persona delete";
        let store = &self.store;
        store
            .write(OP, || async move {
                let mut tx = store.begin_write(OP).await?;
                let done = sqlx::query("DELETE FROM personas WHERE name = ?1")
                    .bind(name)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| store.db(OP, e))?;
                tx.commit().await.map_err(|e| store.db(OP, e))?;
                Ok(done.rows_affected() > 0)
            })
            .await
    }

    /// Number of stored personas.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn count(&self) -> Result<u64, StoreError> {
        const OP: &str = "persona count";
        let store = &self.store;
        store
            .read(OP, || async move {
                let row = sqlx::query("SELECT count(*) FROM personas")
                    .fetch_one(store.reader_pool())
                    .await
                    .map_err(|e| store.db(OP, e))?;
                let n: i64 = row.try_get(0).map_err(|e| store.db(OP, e))?;
                Ok(n.max(0) as u64)
            })
            .await
    }
}

#[async_trait]
impl PersonaStore for SqlitePersonaStore {
    async fn get(&self, name: &str) -> Result<Option<Persona>, PortError> {
        self.get_persona(name).await.map_err(|e| e.into_port(PORT))
    }

    async fn list(&self) -> Result<Vec<String>, PortError> {
        self.names().await.map_err(|e| e.into_port(PORT))
    }

    async fn put(&self, persona: Persona) -> Result<(), PortError> {
        persona.validate().map_err(invalid)?;
        let record = self.encode(&persona).map_err(|e| e.into_port(PORT))?;
        self.write_all(std::slice::from_ref(&record)).await.map_err(|e| e.into_port(PORT))
    }

    async fn put_all(&self, personas: Vec<Persona>) -> Result<(), PortError> {
        validate_batch(&personas)?;
        let records = personas
            .iter()
            .map(|p| self.encode(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.into_port(PORT))?;
        self.write_all(&records).await.map_err(|e| e.into_port(PORT))
    }

    async fn delete(&self, name: &str) -> Result<bool, PortError> {
        self.delete_persona(name).await.map_err(|e| e.into_port(PORT))
    }
}
