//! [`SqliteAuditStore`]: the audit battery's `AuditStore` on SQLite.
//!
//! Layout (migration `0004_audit.sql`): one `audit_records` row per record — the
//! [`AuditRecord`] as JSON plus the columns queries filter on (`run_id`, `user`, `tenant`,
//! `kind`, `at_ms`) and two the store derives for time ranges (`high_ms`, `off_step`).
//! Indexes: one per filter column (each ordered by id within a value, since SQLite appends
//! the rowid to every index), one on `high_ms`, and a partial index of off-step records.
//!
//! Guarantees:
//! - `append` is one transaction: the whole batch or nothing, ids strictly increasing in
//!   slice order and larger than any id ever assigned (`AUTOINCREMENT`: never reused, also
//!   not after pruning). A record with `at_ms >= i64::MAX` is refused (`Invalid`) with the
//!   batch.
//! - `query` returns exactly the records [`AuditQuery::matches`] accepts, ascending by id,
//!   `limit` (clamped to 1000) at a time with keyset pagination, and every statement it
//!   runs walks an index — never a scan of the table, never a sort of more than the few
//!   off-step records (see [`query`] for the plan and [`SqliteAuditStore::explain`] to see
//!   it). A page reads one consistent snapshot.
//! - `prune(before_ms, max_rows)` deletes up to `max_rows` records with `at_ms < before_ms`,
//!   smallest ids first, in one transaction, found through the same indexes.
//!   [`SqliteStore::prune_audit`](crate::SqliteStore::prune_audit) repeats it in small batches.
//! - A stored record that does not decode is `PortError::Corrupt` naming its id.
//!
//! Not guaranteed: ids are dense (a failed or rolled-back append leaves no gap, but pruning
//! does); `high_ms` and `off_step` describe the order records arrived in and are an
//! implementation detail of the indexes, not part of the record.

use async_trait::async_trait;
use executus::ports::{AuditRecord, PortError};
use executus_audit::{AuditCursor, AuditPage, AuditQuery, AuditStore, StoredAuditRecord};
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteConnection};
use sqlx::{QueryBuilder, Row};

use crate::error::StoreError;
use crate::sqlite::SqliteStore;
use crate::sqlite::checkpoint::i64_of;

pub mod query;

use query::{AHEAD_MS, Bind, Filters, STEP_MS, Stmt, upper_id_lookup};

const PORT: &str = "audit";

/// Records per multi-row insert (9 parameters each).
const INSERT_CHUNK: usize = 100;

/// The audit store. Cheap to clone (shares the [`SqliteStore`]).
#[derive(Debug, Clone)]
pub struct SqliteAuditStore {
    store: SqliteStore,
}

/// One statement of a query's plan, as SQLite's `EXPLAIN QUERY PLAN` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExplainedStatement {
    /// What the statement is for (`time range: first id`, `in-step: audit_records_run`...).
    pub label: String,
    /// The SQL, with `?` parameters.
    pub sql: String,
    /// SQLite's plan, one line per step (`SEARCH audit_records USING INDEX ...`).
    pub plan: Vec<String>,
}

/// A record ready to insert (encoded before the write lock is taken).
struct Encoded {
    at_ms: i64,
    run_id: Option<String>,
    user: String,
    tenant: String,
    kind: &'static str,
    json: String,
}

impl SqliteAuditStore {
    /// The audit store over `store` (also [`SqliteStore::audit`]).
    pub fn new(store: SqliteStore) -> Self {
        Self { store }
    }

    /// The underlying store.
    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    fn validate(&self, query: &AuditQuery) -> Result<usize, StoreError> {
        query.validate().map_err(|e| match e {
            PortError::Invalid { what, reason, .. } => self.store.rejected(what, reason),
            other => self.store.rejected("audit query", other.to_string()),
        })
    }

    fn encode(&self, record: &AuditRecord) -> Result<Encoded, StoreError> {
        let at_ms = i64::try_from(record.at_ms).ok().filter(|at| *at < i64::MAX).ok_or_else(|| {
            self.store.rejected(
                "audit record at_ms",
                format!("{} is past the range SQLite integers hold", record.at_ms),
            )
        })?;
        let json =
            serde_json::to_string(record).map_err(|e| self.store.rejected("audit record", e.to_string()))?;
        Ok(Encoded {
            at_ms,
            run_id: record.run_id.map(|r| r.to_string()),
            user: record.identity.user.clone(),
            tenant: record.identity.tenant.clone(),
            kind: record.event.kind(),
            json,
        })
    }

    /// Appends `records` in one transaction (see the module docs).
    ///
    /// # Errors
    /// [`StoreError::Rejected`] for a record the store cannot hold (nothing is written),
    /// [`StoreError::Database`], [`StoreError::Contended`].
    pub async fn append_records(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        const OP: &str = "audit append";
        if records.is_empty() {
            return Ok(());
        }
        let encoded = records.iter().map(|r| self.encode(r)).collect::<Result<Vec<_>, _>>()?;
        let encoded = &encoded;
        let store = &self.store;
        store
            .write(OP, || async move {
                let now = i64_of(store, "time", store.now_ms())?;
                let ahead_limit = now.saturating_add(AHEAD_MS);
                let mut tx = store.begin_write(OP).await?;
                let mut high: Option<i64> =
                    sqlx::query_scalar("SELECT high_ms FROM audit_records ORDER BY id DESC LIMIT 1")
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(|e| store.db(OP, e))?;
                let mut rows = Vec::with_capacity(encoded.len());
                for r in encoded {
                    // The running maximum of at_ms in id order. A record stamped implausibly
                    // far ahead of the store's clock does not raise it (it is off-step
                    // itself), so one wrong clock cannot push the records after it off-step.
                    let ahead = r.at_ms > ahead_limit;
                    let h = match (high, ahead) {
                        (Some(h), true) => h,
                        (Some(h), false) => h.max(r.at_ms),
                        (None, true) => i64::MIN,
                        (None, false) => r.at_ms,
                    };
                    high = Some(h);
                    let off_step = r.at_ms > h || h.saturating_sub(r.at_ms) > STEP_MS;
                    rows.push((r, h, off_step));
                }
                for chunk in rows.chunks(INSERT_CHUNK) {
                    let mut insert = QueryBuilder::<Sqlite>::new(
                        "INSERT INTO audit_records (at_ms, high_ms, off_step, run_id, user, tenant, kind, record) ",
                    );
                    insert.push_values(chunk, |mut row, (r, h, off_step)| {
                        row.push_bind(r.at_ms)
                            .push_bind(*h)
                            .push_bind(i64::from(*off_step))
                            .push_bind(r.run_id.as_deref())
                            .push_bind(r.user.as_str())
                            .push_bind(r.tenant.as_str())
                            .push_bind(r.kind)
                            .push_bind(r.json.as_str());
                    });
                    insert.build().execute(&mut *tx).await.map_err(|e| store.db(OP, e))?;
                }
                tx.commit().await.map_err(|e| store.db(OP, e))?;
                Ok(())
            })
            .await
    }

    /// One page of the records matching `query` (see the module docs).
    ///
    /// # Errors
    /// [`StoreError::Rejected`] for a query [`AuditQuery::validate`] refuses,
    /// [`StoreError::Undecodable`] for a stored record that does not decode,
    /// [`StoreError::Database`].
    pub async fn query_page(&self, query: &AuditQuery) -> Result<AuditPage, StoreError> {
        const OP: &str = "audit query";
        let limit = self.validate(query)?;
        let fetch = limit.saturating_add(1);
        let Some(filters) = Filters::new(query, fetch) else {
            return Ok(AuditPage { records: Vec::new(), next: None });
        };
        let filters = &filters;
        let store = &self.store;
        let mut rows: Vec<(i64, String)> = store
            .read(OP, || async move {
                let mut tx = store.begin_read(OP).await?;
                let (lo, hi) = self.bounds(&mut tx, filters).await?;
                let mut rows = Vec::new();
                for stmt in filters.branches(lo, hi) {
                    let found = bind(sqlx::query(&stmt.sql), &stmt.binds)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(|e| store.db(OP, e))?;
                    for row in found {
                        let id: i64 = row.try_get(0).map_err(|e| store.db(OP, e))?;
                        let json: String = row.try_get(1).map_err(|e| store.db(OP, e))?;
                        rows.push((id, json));
                    }
                }
                tx.commit().await.map_err(|e| store.db(OP, e))?;
                Ok(rows)
            })
            .await?;
        rows.sort_unstable_by_key(|(id, _)| *id);
        rows.dedup_by_key(|(id, _)| *id);
        // The row past the limit only proves a next page exists; it is not decoded.
        let more = rows.len() > limit;
        rows.truncate(limit);
        let records = rows
            .into_iter()
            .map(|(id, json)| {
                let record: AuditRecord = serde_json::from_str(&json)
                    .map_err(|e| store.undecodable(format!("audit record {id}: {e}")))?;
                Ok(StoredAuditRecord { id: id.max(0) as u64, record })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let next = if more { records.last().map(|r| AuditCursor::after(r.id)) } else { None };
        Ok(AuditPage { records, next })
    }

    /// The id bounds of the query's time range (`None`: no such bound; `Some(None)`: the
    /// bound excludes every in-step record).
    async fn bounds(
        &self,
        conn: &mut SqliteConnection,
        filters: &Filters,
    ) -> Result<(Option<Option<i64>>, Option<Option<i64>>), StoreError> {
        let lo = match filters.lo_lookup() {
            Some(stmt) => Some(self.lookup_id(conn, &stmt).await?),
            None => None,
        };
        let hi = match filters.hi_lookup() {
            Some(stmt) => Some(self.lookup_id(conn, &stmt).await?),
            None => None,
        };
        Ok((lo, hi))
    }

    async fn lookup_id(&self, conn: &mut SqliteConnection, stmt: &Stmt) -> Result<Option<i64>, StoreError> {
        bind_scalar(sqlx::query_scalar(&stmt.sql), &stmt.binds)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| self.store.db("audit id lookup", e))
    }

    /// SQLite's plan for every statement `query` runs (the id-bound lookups are executed
    /// to build the rest, then each statement is explained, not run). For operators and
    /// the index test.
    ///
    /// # Errors
    /// [`StoreError::Rejected`] for a query [`AuditQuery::validate`] refuses,
    /// [`StoreError::Database`].
    pub async fn explain(&self, query: &AuditQuery) -> Result<Vec<ExplainedStatement>, StoreError> {
        const OP: &str = "audit explain";
        let limit = self.validate(query)?;
        let Some(filters) = Filters::new(query, limit + 1) else { return Ok(Vec::new()) };
        let filters = &filters;
        let store = &self.store;
        store
            .read(OP, || async move {
                let mut tx = store.begin_read(OP).await?;
                let (lo, hi) = self.bounds(&mut tx, filters).await?;
                let mut stmts: Vec<Stmt> =
                    filters.lo_lookup().into_iter().chain(filters.hi_lookup()).collect();
                stmts.extend(filters.branches(lo, hi));
                let mut out = Vec::with_capacity(stmts.len());
                for stmt in stmts {
                    out.push(self.explain_in(&mut tx, stmt).await?);
                }
                tx.commit().await.map_err(|e| store.db(OP, e))?;
                Ok(out)
            })
            .await
    }

    /// The plan of the statements one `prune(before_ms, max_rows)` runs to find its rows.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn explain_prune(
        &self,
        before_ms: u64,
        max_rows: usize,
    ) -> Result<Vec<ExplainedStatement>, StoreError> {
        const OP: &str = "audit explain prune";
        let store = &self.store;
        store
            .read(OP, || async move {
                let mut tx = store.begin_read(OP).await?;
                let before = i64::try_from(before_ms).unwrap_or(i64::MAX);
                let upper = upper_id_lookup(before, "prune: last in-step id");
                let hi = self.lookup_id(&mut tx, &upper).await?;
                let mut stmts = vec![upper];
                stmts.extend(prune_candidates(before, hi, max_rows));
                let mut out = Vec::with_capacity(stmts.len());
                for stmt in stmts {
                    out.push(self.explain_in(&mut tx, stmt).await?);
                }
                tx.commit().await.map_err(|e| store.db(OP, e))?;
                Ok(out)
            })
            .await
    }

    async fn explain_in(
        &self,
        conn: &mut SqliteConnection,
        stmt: Stmt,
    ) -> Result<ExplainedStatement, StoreError> {
        let sql = format!("EXPLAIN QUERY PLAN {}", stmt.sql);
        let rows = bind(sqlx::query(&sql), &stmt.binds)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| self.store.db("audit explain", e))?;
        let plan = rows
            .iter()
            .map(|r| r.try_get::<String, _>(3))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.store.db("audit explain", e))?;
        Ok(ExplainedStatement { label: stmt.label, sql: stmt.sql, plan })
    }

    /// Deletes up to `max_rows` records with `at_ms < before_ms`, smallest ids first, in one
    /// transaction; returns how many.
    ///
    /// # Errors
    /// [`StoreError::Database`], [`StoreError::Contended`] (nothing was deleted).
    pub async fn prune_before(&self, before_ms: u64, max_rows: usize) -> Result<u64, StoreError> {
        const OP: &str = "audit prune";
        if max_rows == 0 {
            return Ok(0);
        }
        let before = i64::try_from(before_ms).unwrap_or(i64::MAX);
        let store = &self.store;
        store
            .write(OP, || async move {
                let mut tx = store.begin_write(OP).await?;
                let upper = upper_id_lookup(before, "prune: last in-step id");
                let hi = self.lookup_id(&mut tx, &upper).await?;
                let mut ids: Vec<i64> = Vec::new();
                for stmt in prune_candidates(before, hi, max_rows) {
                    let found: Vec<i64> = bind_scalar(sqlx::query_scalar(&stmt.sql), &stmt.binds)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(|e| store.db(OP, e))?;
                    ids.extend(found);
                }
                ids.sort_unstable();
                ids.dedup();
                ids.truncate(max_rows);
                if ids.is_empty() {
                    tx.rollback().await.map_err(|e| store.db(OP, e))?;
                    return Ok(0);
                }
                let list = serde_json::Value::from(ids).to_string();
                let done =
                    sqlx::query("DELETE FROM audit_records WHERE id IN (SELECT value FROM json_each(?1))")
                        .bind(list)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| store.db(OP, e))?;
                tx.commit().await.map_err(|e| store.db(OP, e))?;
                Ok(done.rows_affected())
            })
            .await
    }
}

/// The statements finding prune candidates: in-step records up to the last id that can
/// hold one older than `before` (a rowid walk from the oldest), and off-step records by
/// time through their partial index.
fn prune_candidates(before: i64, hi: Option<i64>, max_rows: usize) -> Vec<Stmt> {
    let limit = Bind::Int(i64::try_from(max_rows).unwrap_or(i64::MAX));
    let mut out = Vec::with_capacity(2);
    if let Some(hi) = hi {
        out.push(Stmt {
            label: "prune: in-step, oldest ids".into(),
            sql:
                "SELECT id FROM audit_records NOT INDEXED WHERE id <= ?1 AND at_ms < ?2 ORDER BY id LIMIT ?3"
                    .into(),
            binds: vec![Bind::Int(hi), Bind::Int(before), limit.clone()],
        });
    }
    out.push(Stmt {
        label: "prune: off-step".into(),
        sql: "SELECT id FROM audit_records INDEXED BY audit_records_off_step \
              WHERE off_step = 1 AND at_ms < ?1 ORDER BY id LIMIT ?2"
            .into(),
        binds: vec![Bind::Int(before), limit],
    });
    out
}

fn bind<'q>(
    mut q: sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>,
    binds: &'q [Bind],
) -> sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>> {
    for b in binds {
        q = match b {
            Bind::Int(v) => q.bind(*v),
            Bind::Text(v) => q.bind(v.as_str()),
        };
    }
    q
}

fn bind_scalar<'q, O>(
    mut q: sqlx::query::QueryScalar<'q, Sqlite, O, SqliteArguments<'q>>,
    binds: &'q [Bind],
) -> sqlx::query::QueryScalar<'q, Sqlite, O, SqliteArguments<'q>> {
    for b in binds {
        q = match b {
            Bind::Int(v) => q.bind(*v),
            Bind::Text(v) => q.bind(v.as_str()),
        };
    }
    q
}

#[async_trait]
impl AuditStore for SqliteAuditStore {
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
