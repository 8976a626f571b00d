//! [`PgAuditStore`]: the audit battery's `AuditStore` on PostgreSQL.
//!
//! Layout: one `audit_records` row per record (the [`AuditRecord`] as JSON plus the columns
//! queries filter on), indexes `(column, id)` per filter and `(at_ms, id)`.
//!
//! Guarantees (the SQLite store's):
//! - `append` is one transaction, taken under one transaction-level advisory lock, so ids
//!   increase in slice order and in commit order across every writer: a reader paging by id
//!   never skips a record that committed after a larger id (which plain sequences would
//!   allow). Ids are never reused.
//! - `query` returns exactly the records [`AuditQuery::matches`] accepts, ascending by id,
//!   `limit` (clamped to 1000) at a time with keyset pagination, from one statement (one
//!   snapshot) that PostgreSQL serves from the `(column, id)` index of its most selective
//!   filter.
//! - `prune(before_ms, max_rows)` deletes up to `max_rows` records with `at_ms < before_ms`,
//!   smallest ids first, in one statement.
//! - A stored record that does not decode is `PortError::Corrupt` naming its id.

use async_trait::async_trait;
use executus::ports::{AuditRecord, PortError};
use executus_audit::{AuditCursor, AuditPage, AuditQuery, AuditStore, StoredAuditRecord};
use sqlx::Row;
use uuid::Uuid;

use super::{PgStore, lock_class};
use crate::error::StoreError;

const PORT: &str = "audit";

/// The audit store on PostgreSQL. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PgAuditStore {
    store: PgStore,
}

impl PgAuditStore {
    /// The audit store over `store` (also [`PgStore::audit`]).
    pub fn new(store: PgStore) -> Self {
        Self { store }
    }

    /// Appends `records` in one transaction (see the module docs).
    ///
    /// # Errors
    /// [`StoreError::Rejected`] for a record the store cannot hold (nothing is written),
    /// [`StoreError::Database`].
    pub async fn append_records(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        const OP: &str = "audit append";
        if records.is_empty() {
            return Ok(());
        }
        let store = &self.store;
        let mut at = Vec::with_capacity(records.len());
        let mut runs: Vec<Option<Uuid>> = Vec::with_capacity(records.len());
        let mut users = Vec::with_capacity(records.len());
        let mut tenants = Vec::with_capacity(records.len());
        let mut kinds = Vec::with_capacity(records.len());
        let mut json = Vec::with_capacity(records.len());
        for r in records {
            at.push(i64::try_from(r.at_ms).ok().filter(|at| *at < i64::MAX).ok_or_else(|| {
                store.rejected("audit record at_ms", format!("{} is past the range a bigint holds", r.at_ms))
            })?);
            runs.push(r.run_id.map(|r| r.0));
            users.push(r.identity.user.as_str());
            tenants.push(r.identity.tenant.as_str());
            kinds.push(r.event.kind());
            json.push(serde_json::to_string(r).map_err(|e| store.rejected("audit record", e.to_string()))?);
        }
        let (at, runs, users, tenants, kinds, json) = (&at, &runs, &users, &tenants, &kinds, &json);
        store
            .write(OP, || async move {
                let mut tx = store.begin(OP).await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1, 0)")
                    .bind(lock_class::AUDIT_APPEND)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| store.db(OP, e))?;
                sqlx::query(
                    "INSERT INTO audit_records (at_ms, run_id, \"user\", tenant, kind, record) \
                     SELECT a, r, u, t, k, j FROM UNNEST($1::bigint[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[]) \
                         WITH ORDINALITY AS v(a, r, u, t, k, j, n) ORDER BY n",
                )
                .bind(at)
                .bind(runs)
                .bind(users)
                .bind(tenants)
                .bind(kinds)
                .bind(json)
                .execute(&mut *tx)
                .await
                .map_err(|e| store.db(OP, e))?;
                tx.commit().await.map_err(|e| store.db(OP, e))?;
                Ok(())
            })
            .await
    }

    /// One page of the records matching `query`.
    ///
    /// # Errors
    /// [`StoreError::Rejected`] for a query [`AuditQuery::validate`] refuses,
    /// [`StoreError::Undecodable`], [`StoreError::Database`].
    pub async fn query_page(&self, query: &AuditQuery) -> Result<AuditPage, StoreError> {
        const OP: &str = "audit query";
        let store = &self.store;
        let limit = query.validate().map_err(|e| match e {
            PortError::Invalid { what, reason, .. } => store.rejected(what, reason),
            other => store.rejected("audit query", other.to_string()),
        })?;
        let Ok(after) = i64::try_from(query.cursor.map_or(0, |c| c.after_id)) else {
            return Ok(AuditPage { records: Vec::new(), next: None });
        };
        // Records hold at_ms < i64::MAX, so clamping a bound keeps `from <= at < to` exact.
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let mut sql = String::from("SELECT id, record FROM audit_records WHERE id > $1");
        let mut n = 1;
        let mut param = |cond: &str| {
            n += 1;
            sql.push_str(&format!(" AND {}", cond.replace('?', &format!("${n}"))));
        };
        if query.run_id.is_some() {
            param("run_id = ?");
        }
        if query.user.is_some() {
            param("\"user\" = ?");
        }
        if query.tenant.is_some() {
            param("tenant = ?");
        }
        if !query.kinds.is_empty() {
            param("kind = ANY(?)");
        }
        if query.from_ms.is_some() {
            param("at_ms >= ?");
        }
        if query.to_ms.is_some() {
            param("at_ms < ?");
        }
        n += 1;
        sql.push_str(&format!(" ORDER BY id LIMIT ${n}"));
        let mut q = sqlx::query(&sql).bind(after);
        if let Some(run) = query.run_id {
            q = q.bind(run.0);
        }
        if let Some(user) = &query.user {
            q = q.bind(user);
        }
        if let Some(tenant) = &query.tenant {
            q = q.bind(tenant);
        }
        if !query.kinds.is_empty() {
            q = q.bind(&query.kinds);
        }
        if let Some(from) = query.from_ms {
            q = q.bind(clamp(from));
        }
        if let Some(to) = query.to_ms {
            q = q.bind(clamp(to));
        }
        let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        let rows = q.bind(fetch).fetch_all(store.pool()).await.map_err(|e| store.db(OP, e))?;
        // The row past the limit only proves a next page exists; it is not decoded.
        let more = rows.len() > limit;
        let mut records = Vec::with_capacity(rows.len().min(limit));
        for row in rows.iter().take(limit) {
            let id: i64 = row.try_get(0).map_err(|e| store.db(OP, e))?;
            let json: String = row.try_get(1).map_err(|e| store.db(OP, e))?;
            let record: AuditRecord = serde_json::from_str(&json)
                .map_err(|e| store.undecodable(format!("audit record {id}: {e}")))?;
            records.push(StoredAuditRecord { id: id.max(0) as u64, record });
        }
        let next = if more { records.last().map(|r| AuditCursor::after(r.id)) } else { None };
        Ok(AuditPage { records, next })
    }

    /// Deletes up to `max_rows` records with `at_ms < before_ms`, smallest ids first.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn prune_before(&self, before_ms: u64, max_rows: usize) -> Result<u64, StoreError> {
        if max_rows == 0 {
            return Ok(0);
        }
        let before = i64::try_from(before_ms).unwrap_or(i64::MAX);
        let done = sqlx::query(
            "DELETE FROM audit_records WHERE id IN ( \
                 SELECT id FROM audit_records WHERE at_ms < $1 ORDER BY id LIMIT $2)",
        )
        .bind(before)
        .bind(i64::try_from(max_rows).unwrap_or(i64::MAX))
        .execute(self.store.pool())
        .await
        .map_err(|e| self.store.db("audit prune", e))?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl AuditStore for PgAuditStore {
    async fn append(&self, records: &[AuditRecord]) -> Result<(), PortError> {
        self.append_records(records).await.map_err(|e| e.into_port(PORT))
    }

    async fn query(&self, query: &AuditQuery) -> Result<AuditPage, PortError> {
        query.validate()?;
        self.query_page(query).await.map_err(|e| e.into_port(PORT))
    }

    async fn prune(&self, before_ms: u64, max_rows: usize) -> Result<usize, PortError> {
        let n = self.prune_before(before_ms, max_rows).await.map_err(|e| e.into_port(PORT))?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}
