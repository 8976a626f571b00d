//! [`PgPersonaStore`]: the persona battery's `PersonaStore` on PostgreSQL.
//!
//! Layout: one `personas` row per persona, keyed by its exact name (`COLLATE "C"`: byte
//! order, as the in-memory and SQLite stores list them), the whole [`Persona`] as JSON.
//!
//! Guarantees: as the SQLite store's — every persona validated before anything is written;
//! `put` replaces a record whole; `put_all` is one transaction refusing a batch that names a
//! persona twice; a stored row that does not decode is `PortError::Corrupt` naming it.

use async_trait::async_trait;
use executus::ports::PortError;
use executus_persona::{Persona, PersonaStore, invalid, validate_batch};

use super::PgStore;
use super::checkpoint::i64_of;
use crate::error::StoreError;

const PORT: &str = executus_persona::PORT;

/// The persona store on PostgreSQL. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PgPersonaStore {
    store: PgStore,
}

impl PgPersonaStore {
    /// The persona store over `store` (also [`PgStore::personas`]).
    pub fn new(store: PgStore) -> Self {
        Self { store }
    }

    async fn write_all(&self, personas: &[Persona]) -> Result<(), StoreError> {
        const OP: &str = "persona put";
        let store = &self.store;
        let mut names = Vec::with_capacity(personas.len());
        let mut models = Vec::with_capacity(personas.len());
        let mut records = Vec::with_capacity(personas.len());
        for p in personas {
            names.push(p.name.as_str());
            models.push(p.model.as_str());
            records.push(
                serde_json::to_string(p)
                    .map_err(|e| store.rejected(format!("persona {:?}", p.name), e.to_string()))?,
            );
        }
        let now = i64_of(store, "time", store.now_ms())?;
        let (names, models, records) = (&names, &models, &records);
        store
            .write(OP, || async move {
                sqlx::query(
                    "INSERT INTO personas (name, model, record, updated_ms) \
                     SELECT n, m, r, $4 FROM UNNEST($1::text[], $2::text[], $3::text[]) AS v(n, m, r) \
                     ON CONFLICT (name) DO UPDATE SET model = excluded.model, record = excluded.record, \
                         updated_ms = excluded.updated_ms",
                )
                .bind(names)
                .bind(models)
                .bind(records)
                .bind(now)
                .execute(store.pool())
                .await
                .map_err(|e| store.db(OP, e))?;
                Ok(())
            })
            .await
    }

    async fn get_persona(&self, name: &str) -> Result<Option<Persona>, StoreError> {
        let store = &self.store;
        let json: Option<String> = sqlx::query_scalar("SELECT record FROM personas WHERE name = $1")
            .bind(name)
            .fetch_optional(store.pool())
            .await
            .map_err(|e| store.db("persona get", e))?;
        json.map(|json| {
            serde_json::from_str(&json).map_err(|e| store.undecodable(format!("persona {name:?}: {e}")))
        })
        .transpose()
    }

    async fn names(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar("SELECT name FROM personas ORDER BY name")
            .fetch_all(self.store.pool())
            .await
            .map_err(|e| self.store.db("persona list", e))
    }

    async fn delete_persona(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM personas WHERE name = $1")
            .bind(name)
            .execute(self.store.pool())
            .await
            .map_err(|e| self.store.db("persona delete", e))?;
        Ok(done.rows_affected() > 0)
    }

    /// Number of stored personas.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM personas")
            .fetch_one(self.store.pool())
            .await
            .map_err(|e| self.store.db("persona count", e))?;
        Ok(n.max(0) as u64)
    }
}

#[async_trait]
impl PersonaStore for PgPersonaStore {
    async fn get(&self, name: &str) -> Result<Option<Persona>, PortError> {
        self.get_persona(name).await.map_err(|e| e.into_port(PORT))
    }

    async fn list(&self) -> Result<Vec<String>, PortError> {
        self.names().await.map_err(|e| e.into_port(PORT))
    }

    async fn put(&self, persona: Persona) -> Result<(), PortError> {
        persona.validate().map_err(invalid)?;
        self.write_all(std::slice::from_ref(&persona)).await.map_err(|e| e.into_port(PORT))
    }

    async fn put_all(&self, personas: Vec<Persona>) -> Result<(), PortError> {
        validate_batch(&personas)?;
        self.write_all(&personas).await.map_err(|e| e.into_port(PORT))
    }

    async fn delete(&self, name: &str) -> Result<bool, PortError> {
        self.delete_persona(name).await.map_err(|e| e.into_port(PORT))
    }
}
