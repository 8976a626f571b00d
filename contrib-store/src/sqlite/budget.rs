//! [`SqliteBudgetStore`]: the budget battery's `BudgetStore` on SQLite.
//!
//! Layout (migration `0005_budget.sql`): `budget_reservations` (one row per granted
//! reservation, id assigned by SQLite, never reused), `budget_holds` (what each reservation
//! holds in each of its scopes, with its expiry), `budget_spend` (one row per scope per
//! settled call) and `budget_spend_hours` (that spend summed per scope per UTC hour, kept
//! equal to the detail rows by every write). A scope's window spend is the detail rows of
//! the window's first, partial hour plus the hour rows after it — at most an hour of rows
//! and one row per hour, whatever the scope spent in the window — and its live holds one
//! range; each a sum over a covering index or primary key.
//!
//! Guarantees:
//! - `try_reserve` is one `BEGIN IMMEDIATE` transaction: the write lock is taken before the
//!   sums are read, so between the check `spent + held + amount <= limit` (for every capped
//!   scope) and the insert of the reservation no other writer — another task, another
//!   connection, another process sharing the file — can change either. Concurrent
//!   reservations therefore never hold more than a cap; a denial holds nothing.
//! - `settle` deletes the reservation and records the spend in one transaction.
//! - Sums are exact integers (nano-dollars); a sum past `i64::MAX` saturates at
//!   [`Money::MAX`], like the in-memory store's saturating addition.
//! - `expire` and `prune` delete in transactions of `StoreOptions::prune_batch` rows, so a
//!   large backlog never holds the write lock for long; on an error the batches already
//!   committed stay deleted (they only ever delete rows that no longer count).
//! - Times past `i64::MAX` milliseconds are clamped to it (hundreds of millions of years
//!   out, so every comparison keeps its meaning).
//!
//! Not guaranteed: a settled cost larger than its reservation can take a scope past its cap
//! (by design of the battery: reservations are estimates).

use std::collections::BTreeMap;

use async_trait::async_trait;
use executus::ports::PortError;
use executus_budget::{
    BudgetStore, Denial, Money, ReserveOutcome, ReserveRequest, ScopeTotals, SettleRequest,
};
use sqlx::sqlite::{Sqlite, SqliteConnection};
use sqlx::{QueryBuilder, Row};

use crate::error::{StoreError, primary_code};
use crate::sqlite::SqliteStore;

const PORT: &str = "budget";

/// Holds (3 parameters each) or spend rows (3 parameters each) per insert statement.
const INSERT_CHUNK: usize = 200;

/// One hour, the rollup's granularity.
const HOUR_MS: i64 = 3_600_000;

const SUM_SPEND_DETAIL: &str =
    "SELECT sum(amount) FROM budget_spend WHERE scope = ?1 AND at_ms >= ?2 AND at_ms < ?3";
const SUM_SPEND_HOURS: &str = "SELECT sum(amount) FROM budget_spend_hours WHERE scope = ?1 AND hour_ms >= ?2";
const SUM_HELD: &str = "SELECT sum(amount) FROM budget_holds WHERE scope = ?1 AND expires_ms > ?2";

/// The queries `try_reserve` and `spent` run per scope (checked with `EXPLAIN QUERY PLAN`
/// in the tests): spend in the window's first partial hour, spend in the whole hours
/// after it, live holds.
pub const SUM_QUERIES: [&str; 3] = [SUM_SPEND_DETAIL, SUM_SPEND_HOURS, SUM_HELD];

const ADD_HOUR: &str = "INSERT INTO budget_spend_hours (scope, hour_ms, amount) VALUES (?1, ?2, ?3) \
     ON CONFLICT (scope, hour_ms) DO UPDATE SET amount = \
     iif(amount > 9223372036854775807 - excluded.amount, 9223372036854775807, amount + excluded.amount)";

/// The start of the hour holding `ms`.
fn hour_of(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS) * HOUR_MS
}

/// The budget store. Cheap to clone (shares the [`SqliteStore`]).
#[derive(Debug, Clone)]
pub struct SqliteBudgetStore {
    store: SqliteStore,
}

/// Unix milliseconds as a SQLite integer, clamped.
fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Money as a SQLite integer (every `Money` fits: at most `i64::MAX` nano-dollars).
fn nanos(m: Money) -> i64 {
    i64::try_from(m.nanos()).unwrap_or(i64::MAX)
}

impl SqliteBudgetStore {
    /// The budget store over `store` (also [`SqliteStore::budget`]).
    pub fn new(store: SqliteStore) -> Self {
        Self { store }
    }

    /// The underlying store.
    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    /// A sum of amounts, saturating at [`Money::MAX`] where SQLite's `sum` reports an
    /// integer overflow.
    async fn sum(
        &self,
        conn: &mut SqliteConnection,
        sql: &str,
        scope: &str,
        binds: &[i64],
    ) -> Result<Money, StoreError> {
        let mut query = sqlx::query_scalar::<_, Option<i64>>(sql).bind(scope);
        for b in binds {
            query = query.bind(*b);
        }
        match query.fetch_one(&mut *conn).await {
            Ok(v) => Ok(Money::from_nanos(v.unwrap_or(0).max(0) as u64)),
            Err(e) if is_overflow(&e) => Ok(Money::MAX),
            Err(e) => Err(self.store.db("budget sum", e)),
        }
    }

    /// Spend since `since` (detail rows up to the next whole hour, hour rows from there)
    /// and the holds live at `now`.
    async fn totals_in(
        &self,
        conn: &mut SqliteConnection,
        scope: &str,
        since: i64,
        now: i64,
    ) -> Result<ScopeTotals, StoreError> {
        let first_whole_hour =
            hour_of(since).saturating_add(if since.rem_euclid(HOUR_MS) == 0 { 0 } else { HOUR_MS });
        let partial = if first_whole_hour > since {
            self.sum(conn, SUM_SPEND_DETAIL, scope, &[since, first_whole_hour]).await?
        } else {
            Money::ZERO
        };
        let whole = self.sum(conn, SUM_SPEND_HOURS, scope, &[first_whole_hour]).await?;
        Ok(ScopeTotals {
            spent: partial.saturating_add(whole),
            reserved: self.sum(conn, SUM_HELD, scope, &[now]).await?,
        })
    }

    /// [`BudgetStore::try_reserve`] with the store's error.
    ///
    /// # Errors
    /// [`StoreError::Rejected`] for a request [`ReserveRequest::validate`] refuses,
    /// [`StoreError::Database`], [`StoreError::Contended`] (nothing was held).
    pub async fn reserve(&self, request: &ReserveRequest) -> Result<ReserveOutcome, StoreError> {
        const OP: &str = "budget reserve";
        request.validate().map_err(|e| match e {
            PortError::Invalid { what, reason, .. } => self.store.rejected(what, reason),
            other => self.store.rejected("reservation", other.to_string()),
        })?;
        let (now, since, expires) = (ms(request.now_ms), ms(request.window_start_ms), ms(request.expires_ms));
        let amount = nanos(request.amount);
        let store = &self.store;
        store
            .write(OP, || async move {
                let created = i64::try_from(store.now_ms()).unwrap_or(i64::MAX);
                let mut tx = store.begin_write(OP).await?;
                for scope in &request.scopes {
                    let Some(limit) = scope.limit else { continue };
                    let totals = self.totals_in(&mut tx, &scope.scope, since, now).await?;
                    if totals.spent.saturating_add(totals.reserved).saturating_add(request.amount) > limit {
                        tx.rollback().await.map_err(|e| store.db(OP, e))?;
                        return Ok(ReserveOutcome::Denied(Denial {
                            scope: scope.scope.clone(),
                            spent: totals.spent,
                            reserved: totals.reserved,
                            requested: request.amount,
                            limit,
                        }));
                    }
                }
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO budget_reservations (amount, created_ms, expires_ms) VALUES (?1, ?2, ?3) RETURNING id",
                )
                .bind(amount)
                .bind(created)
                .bind(expires)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| store.db(OP, e))?;
                for chunk in request.scopes.chunks(INSERT_CHUNK) {
                    let mut insert = QueryBuilder::<Sqlite>::new(
                        "INSERT INTO budget_holds (reservation, scope, amount, expires_ms) ",
                    );
                    insert.push_values(chunk, |mut row, scope| {
                        row.push_bind(id).push_bind(scope.scope.as_str()).push_bind(amount).push_bind(expires);
                    });
                    insert.build().execute(&mut *tx).await.map_err(|e| store.db(OP, e))?;
                }
                tx.commit().await.map_err(|e| store.db(OP, e))?;
                let reservation_id = u64::try_from(id)
                    .map_err(|_| store.undecodable(format!("SQLite assigned reservation id {id}")))?;
                Ok(ReserveOutcome::Granted { reservation_id })
            })
            .await
    }

    /// [`BudgetStore::settle`] with the store's error.
    ///
    /// # Errors
    /// [`StoreError::Database`], [`StoreError::Contended`] (nothing changed).
    pub async fn settle_reservation(&self, request: &SettleRequest) -> Result<bool, StoreError> {
        const OP: &str = "budget settle";
        // An id SQLite cannot hold was never assigned by this store.
        let id = i64::try_from(request.reservation_id).ok();
        let (at, actual) = (ms(request.now_ms), nanos(request.actual));
        let store = &self.store;
        store
            .write(OP, || async move {
                let mut tx = store.begin_write(OP).await?;
                let mut existed = false;
                if let Some(id) = id {
                    sqlx::query("DELETE FROM budget_holds WHERE reservation = ?1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| store.db(OP, e))?;
                    existed = sqlx::query("DELETE FROM budget_reservations WHERE id = ?1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| store.db(OP, e))?
                        .rows_affected()
                        > 0;
                }
                if actual > 0 {
                    for chunk in request.scopes.chunks(INSERT_CHUNK) {
                        let mut insert =
                            QueryBuilder::<Sqlite>::new("INSERT INTO budget_spend (scope, at_ms, amount) ");
                        insert.push_values(chunk, |mut row, scope| {
                            row.push_bind(scope.as_str()).push_bind(at).push_bind(actual);
                        });
                        insert.build().execute(&mut *tx).await.map_err(|e| store.db(OP, e))?;
                    }
                    for scope in &request.scopes {
                        sqlx::query(ADD_HOUR)
                            .bind(scope)
                            .bind(hour_of(at))
                            .bind(actual)
                            .execute(&mut *tx)
                            .await
                            .map_err(|e| store.db(OP, e))?;
                    }
                }
                tx.commit().await.map_err(|e| store.db(OP, e))?;
                Ok(existed)
            })
            .await
    }

    /// [`BudgetStore::spent`] with the store's error: both sums from one snapshot.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn totals(&self, scope: &str, since_ms: u64, now_ms: u64) -> Result<ScopeTotals, StoreError> {
        const OP: &str = "budget spent";
        let store = &self.store;
        store
            .read(OP, || async move {
                let mut tx = store.begin_read(OP).await?;
                let totals = self.totals_in(&mut tx, scope, ms(since_ms), ms(now_ms)).await?;
                tx.commit().await.map_err(|e| store.db(OP, e))?;
                Ok(totals)
            })
            .await
    }

    /// Deletes, in batches, the rows `select` (`?1` the bound, `?2` the batch size) finds;
    /// `deletes` are run with `?1` a JSON array of those ids.
    async fn delete_batched(
        &self,
        op: &'static str,
        select: &'static str,
        deletes: &'static [&'static str],
        bound: i64,
    ) -> Result<u64, StoreError> {
        let store = &self.store;
        let batch = i64::from(store.options().prune_batch.max(1));
        let mut total = 0u64;
        loop {
            let deleted = store
                .write(op, || async move {
                    let mut tx = store.begin_write(op).await?;
                    let ids: Vec<i64> = sqlx::query_scalar(select)
                        .bind(bound)
                        .bind(batch)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(|e| store.db(op, e))?;
                    if ids.is_empty() {
                        tx.rollback().await.map_err(|e| store.db(op, e))?;
                        return Ok(0u64);
                    }
                    let list = serde_json::Value::from(ids.clone()).to_string();
                    for sql in deletes {
                        sqlx::query(sql).bind(&list).execute(&mut *tx).await.map_err(|e| store.db(op, e))?;
                    }
                    tx.commit().await.map_err(|e| store.db(op, e))?;
                    Ok(ids.len() as u64)
                })
                .await?;
            total += deleted;
            if deleted < batch as u64 {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }

    /// [`BudgetStore::expire`] with the store's error.
    ///
    /// # Errors
    /// [`StoreError::Database`], [`StoreError::Contended`].
    pub async fn expire_before(&self, now_ms: u64) -> Result<u64, StoreError> {
        self.delete_batched(
            "budget expire",
            "SELECT id FROM budget_reservations WHERE expires_ms <= ?1 ORDER BY expires_ms LIMIT ?2",
            &[
                "DELETE FROM budget_holds WHERE reservation IN (SELECT value FROM json_each(?1))",
                "DELETE FROM budget_reservations WHERE id IN (SELECT value FROM json_each(?1))",
            ],
            ms(now_ms),
        )
        .await
    }

    /// [`BudgetStore::prune`] with the store's error: deletes spend rows with
    /// `at_ms < before_ms` in batches, subtracting each from its hour row in the same
    /// transaction.
    ///
    /// # Errors
    /// [`StoreError::Database`], [`StoreError::Contended`].
    pub async fn prune_spend(&self, before_ms: u64) -> Result<u64, StoreError> {
        const OP: &str = "budget prune";
        let store = &self.store;
        let before = ms(before_ms);
        let batch = i64::from(store.options().prune_batch.max(1));
        let mut total = 0u64;
        loop {
            let deleted = store
                .write(OP, || async move {
                    let mut tx = store.begin_write(OP).await?;
                    let rows = sqlx::query(
                        "SELECT id, scope, at_ms, amount FROM budget_spend WHERE at_ms < ?1 ORDER BY at_ms LIMIT ?2",
                    )
                    .bind(before)
                    .bind(batch)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(|e| store.db(OP, e))?;
                    if rows.is_empty() {
                        tx.rollback().await.map_err(|e| store.db(OP, e))?;
                        return Ok(0u64);
                    }
                    let mut ids = Vec::with_capacity(rows.len());
                    let mut hours: BTreeMap<(String, i64), Money> = BTreeMap::new();
                    for row in &rows {
                        let id: i64 = row.try_get(0).map_err(|e| store.db(OP, e))?;
                        let scope: String = row.try_get(1).map_err(|e| store.db(OP, e))?;
                        let at: i64 = row.try_get(2).map_err(|e| store.db(OP, e))?;
                        let amount: i64 = row.try_get(3).map_err(|e| store.db(OP, e))?;
                        ids.push(id);
                        let sum = hours.entry((scope, hour_of(at))).or_default();
                        *sum = sum.saturating_add(Money::from_nanos(amount.max(0) as u64));
                    }
                    for ((scope, hour), amount) in &hours {
                        sqlx::query(
                            "UPDATE budget_spend_hours SET amount = max(amount - ?3, 0) WHERE scope = ?1 AND hour_ms = ?2",
                        )
                        .bind(scope)
                        .bind(*hour)
                        .bind(nanos(*amount))
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| store.db(OP, e))?;
                        sqlx::query("DELETE FROM budget_spend_hours WHERE scope = ?1 AND hour_ms = ?2 AND amount = 0")
                            .bind(scope)
                            .bind(*hour)
                            .execute(&mut *tx)
                            .await
                            .map_err(|e| store.db(OP, e))?;
                    }
                    let list = serde_json::Value::from(ids).to_string();
                    sqlx::query("DELETE FROM budget_spend WHERE id IN (SELECT value FROM json_each(?1))")
                        .bind(list)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| store.db(OP, e))?;
                    tx.commit().await.map_err(|e| store.db(OP, e))?;
                    Ok(rows.len() as u64)
                })
                .await?;
            total += deleted;
            if deleted < batch as u64 {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }

    /// Reservations stored (live, or expired and not yet deleted by `expire`).
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn reservation_count(&self) -> Result<u64, StoreError> {
        self.count("SELECT count(*) FROM budget_reservations").await
    }

    /// Spend rows stored, over all scopes.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn spend_row_count(&self) -> Result<u64, StoreError> {
        self.count("SELECT count(*) FROM budget_spend").await
    }

    async fn count(&self, sql: &'static str) -> Result<u64, StoreError> {
        const OP: &str = "budget count";
        let store = &self.store;
        store
            .read(OP, || async move {
                let row =
                    sqlx::query(sql).fetch_one(store.reader_pool()).await.map_err(|e| store.db(OP, e))?;
                let n: i64 = row.try_get(0).map_err(|e| store.db(OP, e))?;
                Ok(n.max(0) as u64)
            })
            .await
    }
}

/// SQLite's `sum()` raises "integer overflow" (`SQLITE_ERROR`) past `i64::MAX`.
fn is_overflow(e: &sqlx::Error) -> bool {
    primary_code(e) == Some(1)
        && matches!(e, sqlx::Error::Database(db) if db.message().contains("integer overflow"))
}

#[async_trait]
impl BudgetStore for SqliteBudgetStore {
    async fn try_reserve(&self, request: &ReserveRequest) -> Result<ReserveOutcome, PortError> {
        request.validate()?;
        self.reserve(request).await.map_err(|e| e.into_port(PORT))
    }

    async fn settle(&self, request: &SettleRequest) -> Result<bool, PortError> {
        self.settle_reservation(request).await.map_err(|e| e.into_port(PORT))
    }

    async fn spent(&self, scope: &str, since_ms: u64, now_ms: u64) -> Result<ScopeTotals, PortError> {
        self.totals(scope, since_ms, now_ms).await.map_err(|e| e.into_port(PORT))
    }

    async fn expire(&self, now_ms: u64) -> Result<u64, PortError> {
        self.expire_before(now_ms).await.map_err(|e| e.into_port(PORT))
    }

    async fn prune(&self, before_ms: u64) -> Result<u64, PortError> {
        self.prune_spend(before_ms).await.map_err(|e| e.into_port(PORT))
    }
}
