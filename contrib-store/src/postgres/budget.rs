//! [`PgBudgetStore`]: the budget battery's `BudgetStore` on PostgreSQL.
//!
//! Layout: as the SQLite store's — `budget_reservations`, `budget_holds` (per scope),
//! `budget_spend` (per scope per settled call) and `budget_spend_hours` (that spend summed per
//! scope per UTC hour, kept equal to the detail rows by every write).
//!
//! Guarantees:
//! - `try_reserve` is one transaction that first takes a transaction-level advisory lock on
//!   every scope of the request (in sorted order, so two requests never deadlock), then sums
//!   spend and live holds and inserts the reservation. Between the check
//!   `spent + held + amount <= limit` and the insert, no other reservation or settlement of
//!   those scopes — from any worker on any machine — can commit: concurrent reservations
//!   never hold more than a cap. A denial holds nothing.
//! - `settle` deletes the reservation and records the spend in one transaction, under the
//!   same scope locks.
//! - Sums are exact (PostgreSQL sums `bigint` into `numeric`) and saturate at
//!   [`Money::MAX`].
//!
//! Not guaranteed: a settled cost larger than its reservation can take a scope past its cap
//! (by design of the battery: reservations are estimates).

use std::collections::BTreeMap;

use async_trait::async_trait;
use executus::ports::PortError;
use executus_budget::{
    BudgetStore, Denial, Money, ReserveOutcome, ReserveRequest, ScopeTotals, SettleRequest,
};
use sqlx::Row;
use sqlx::postgres::PgConnection;

use super::{PgStore, lock_class};
use crate::error::StoreError;

const PORT: &str = "budget";

/// One hour, the rollup's granularity.
const HOUR_MS: i64 = 3_600_000;

/// `sum(...)` of `bigint`s is `numeric`: saturated back into a `bigint`.
const SUM_SPEND_DETAIL: &str = "SELECT LEAST(coalesce(sum(amount), 0), 9223372036854775807)::bigint \
     FROM budget_spend WHERE scope = $1 AND at_ms >= $2 AND at_ms < $3";
const SUM_SPEND_HOURS: &str = "SELECT LEAST(coalesce(sum(amount), 0), 9223372036854775807)::bigint \
     FROM budget_spend_hours WHERE scope = $1 AND hour_ms >= $2";
const SUM_HELD: &str = "SELECT LEAST(coalesce(sum(amount), 0), 9223372036854775807)::bigint \
     FROM budget_holds WHERE scope = $1 AND expires_ms > $2";

const ADD_HOURS: &str = "INSERT INTO budget_spend_hours (scope, hour_ms, amount) \
     SELECT s, $2, $3 FROM UNNEST($1::text[]) AS v(s) \
     ON CONFLICT (scope, hour_ms) DO UPDATE SET amount = \
         LEAST(budget_spend_hours.amount::numeric + excluded.amount, 9223372036854775807)::bigint";

fn hour_of(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS) * HOUR_MS
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn nanos(m: Money) -> i64 {
    i64::try_from(m.nanos()).unwrap_or(i64::MAX)
}

/// The budget store on PostgreSQL. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PgBudgetStore {
    store: PgStore,
}

impl PgBudgetStore {
    /// The budget store over `store` (also [`PgStore::budget`]).
    pub fn new(store: PgStore) -> Self {
        Self { store }
    }

    async fn sum(
        &self,
        conn: &mut PgConnection,
        sql: &str,
        scope: &str,
        binds: &[i64],
    ) -> Result<Money, StoreError> {
        let mut query = sqlx::query_scalar::<_, i64>(sql).bind(scope);
        for b in binds {
            query = query.bind(*b);
        }
        let v = query.fetch_one(&mut *conn).await.map_err(|e| self.store.db("budget sum", e))?;
        Ok(Money::from_nanos(v.max(0) as u64))
    }

    async fn totals_in(
        &self,
        conn: &mut PgConnection,
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

    /// Takes the advisory locks of `scopes` (sorted, deduplicated) for this transaction.
    async fn lock_scopes<'a>(
        &self,
        conn: &mut PgConnection,
        scopes: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), StoreError> {
        let mut sorted: Vec<&str> = scopes.into_iter().collect();
        sorted.sort_unstable();
        sorted.dedup();
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext(s)) FROM UNNEST($2::text[]) WITH ORDINALITY AS v(s, n) ORDER BY n")
            .bind(lock_class::BUDGET_SCOPE)
            .bind(&sorted)
            .execute(&mut *conn)
            .await
            .map_err(|e| self.store.db("budget lock scopes", e))?;
        Ok(())
    }

    /// [`BudgetStore::try_reserve`] with the store's error.
    ///
    /// # Errors
    /// [`StoreError::Rejected`] for a request [`ReserveRequest::validate`] refuses,
    /// [`StoreError::Database`] (nothing was held).
    pub async fn reserve(&self, request: &ReserveRequest) -> Result<ReserveOutcome, StoreError> {
        const OP: &str = "budget reserve";
        let store = &self.store;
        request.validate().map_err(|e| match e {
            PortError::Invalid { what, reason, .. } => store.rejected(what, reason),
            other => store.rejected("reservation", other.to_string()),
        })?;
        let (now, since, expires) = (ms(request.now_ms), ms(request.window_start_ms), ms(request.expires_ms));
        let amount = nanos(request.amount);
        let created = ms(store.now_ms());
        store
            .write(OP, || async move {
                let mut tx = store.begin(OP).await?;
                self.lock_scopes(&mut tx, request.scopes.iter().map(|s| s.scope.as_str())).await?;
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
                    "INSERT INTO budget_reservations (amount, created_ms, expires_ms) VALUES ($1, $2, $3) RETURNING id",
                )
                .bind(amount)
                .bind(created)
                .bind(expires)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| store.db(OP, e))?;
                let scopes: Vec<&str> = request.scopes.iter().map(|s| s.scope.as_str()).collect();
                sqlx::query(
                    "INSERT INTO budget_holds (reservation, scope, amount, expires_ms) \
                     SELECT $1, s, $3, $4 FROM UNNEST($2::text[]) AS v(s) ON CONFLICT DO NOTHING",
                )
                .bind(id)
                .bind(&scopes)
                .bind(amount)
                .bind(expires)
                .execute(&mut *tx)
                .await
                .map_err(|e| store.db(OP, e))?;
                tx.commit().await.map_err(|e| store.db(OP, e))?;
                let reservation_id = u64::try_from(id)
                    .map_err(|_| store.undecodable(format!("PostgreSQL assigned reservation id {id}")))?;
                Ok(ReserveOutcome::Granted { reservation_id })
            })
            .await
    }

    /// [`BudgetStore::settle`] with the store's error.
    ///
    /// # Errors
    /// [`StoreError::Database`] (nothing changed).
    pub async fn settle_reservation(&self, request: &SettleRequest) -> Result<bool, StoreError> {
        const OP: &str = "budget settle";
        let store = &self.store;
        let id = i64::try_from(request.reservation_id).ok();
        let (at, actual) = (ms(request.now_ms), nanos(request.actual));
        let scopes: Vec<&str> = request.scopes.iter().map(String::as_str).collect();
        let scopes = &scopes;
        store
            .write(OP, || async move {
                let mut tx = store.begin(OP).await?;
                self.lock_scopes(&mut tx, scopes.iter().copied()).await?;
                let mut existed = false;
                if let Some(id) = id {
                    existed = sqlx::query("DELETE FROM budget_reservations WHERE id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| store.db(OP, e))?
                        .rows_affected()
                        > 0;
                }
                if actual > 0 && !scopes.is_empty() {
                    sqlx::query(
                        "INSERT INTO budget_spend (scope, at_ms, amount) SELECT s, $2, $3 FROM UNNEST($1::text[]) AS v(s)",
                    )
                    .bind(scopes)
                    .bind(at)
                    .bind(actual)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| store.db(OP, e))?;
                    let mut unique = scopes.clone();
                    unique.sort_unstable();
                    unique.dedup();
                    // Duplicates in one statement would hit the same hour row twice.
                    let counts: BTreeMap<&str, i64> = scopes.iter().fold(BTreeMap::new(), |mut m, s| {
                        *m.entry(*s).or_insert(0) += 1;
                        m
                    });
                    for (times, group) in group_by_count(&counts) {
                        sqlx::query(ADD_HOURS)
                            .bind(&group)
                            .bind(hour_of(at))
                            .bind(actual.saturating_mul(times))
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
        let mut tx = store.begin(OP).await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(|e| store.db(OP, e))?;
        let totals = self.totals_in(&mut tx, scope, ms(since_ms), ms(now_ms)).await?;
        tx.commit().await.map_err(|e| store.db(OP, e))?;
        Ok(totals)
    }

    /// [`BudgetStore::expire`] with the store's error: deletes reservations expired at
    /// `now_ms` (their holds go with them), in batches.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn expire_before(&self, now_ms: u64) -> Result<u64, StoreError> {
        let store = &self.store;
        let batch = i64::from(store.options().prune_batch.max(1));
        let mut total = 0;
        loop {
            let done = sqlx::query(
                "DELETE FROM budget_reservations WHERE id IN ( \
                     SELECT id FROM budget_reservations WHERE expires_ms <= $1 ORDER BY expires_ms LIMIT $2)",
            )
            .bind(ms(now_ms))
            .bind(batch)
            .execute(store.pool())
            .await
            .map_err(|e| store.db("budget expire", e))?
            .rows_affected();
            total += done;
            if done < batch as u64 {
                return Ok(total);
            }
        }
    }

    /// [`BudgetStore::prune`] with the store's error: deletes spend rows with
    /// `at_ms < before_ms` in batches, subtracting each from its hour row in the same
    /// transaction.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn prune_spend(&self, before_ms: u64) -> Result<u64, StoreError> {
        const OP: &str = "budget prune";
        let store = &self.store;
        let before = ms(before_ms);
        let batch = i64::from(store.options().prune_batch.max(1));
        let mut total = 0u64;
        loop {
            let deleted = store
                .write(OP, || async move {
                    let mut tx = store.begin(OP).await?;
                    let rows = sqlx::query(
                        "DELETE FROM budget_spend WHERE id IN ( \
                             SELECT id FROM budget_spend WHERE at_ms < $1 ORDER BY at_ms LIMIT $2 FOR UPDATE SKIP LOCKED) \
                         RETURNING scope, at_ms, amount",
                    )
                    .bind(before)
                    .bind(batch)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(|e| store.db(OP, e))?;
                    let mut hours: BTreeMap<(String, i64), i64> = BTreeMap::new();
                    for row in &rows {
                        let scope: String = row.try_get(0).map_err(|e| store.db(OP, e))?;
                        let at: i64 = row.try_get(1).map_err(|e| store.db(OP, e))?;
                        let amount: i64 = row.try_get(2).map_err(|e| store.db(OP, e))?;
                        let sum = hours.entry((scope, hour_of(at))).or_default();
                        *sum = sum.saturating_add(amount);
                    }
                    self.lock_scopes(&mut tx, hours.keys().map(|(s, _)| s.as_str())).await?;
                    for ((scope, hour), amount) in &hours {
                        sqlx::query(
                            "UPDATE budget_spend_hours SET amount = GREATEST(amount - $3, 0) WHERE scope = $1 AND hour_ms = $2",
                        )
                        .bind(scope)
                        .bind(*hour)
                        .bind(*amount)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| store.db(OP, e))?;
                        sqlx::query("DELETE FROM budget_spend_hours WHERE scope = $1 AND hour_ms = $2 AND amount = 0")
                            .bind(scope)
                            .bind(*hour)
                            .execute(&mut *tx)
                            .await
                            .map_err(|e| store.db(OP, e))?;
                    }
                    tx.commit().await.map_err(|e| store.db(OP, e))?;
                    Ok(rows.len() as u64)
                })
                .await?;
            total += deleted;
            if deleted < batch as u64 {
                return Ok(total);
            }
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
        let n: i64 = sqlx::query_scalar(sql)
            .fetch_one(self.store.pool())
            .await
            .map_err(|e| self.store.db("budget count", e))?;
        Ok(n.max(0) as u64)
    }
}

/// Scopes grouped by how often a request names them (a scope named twice is charged twice,
/// as the detail rows record it twice).
fn group_by_count<'a>(counts: &BTreeMap<&'a str, i64>) -> Vec<(i64, Vec<&'a str>)> {
    let mut groups: BTreeMap<i64, Vec<&'a str>> = BTreeMap::new();
    for (scope, n) in counts {
        groups.entry(*n).or_default().push(scope);
    }
    groups.into_iter().collect()
}

#[async_trait]
impl BudgetStore for PgBudgetStore {
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
