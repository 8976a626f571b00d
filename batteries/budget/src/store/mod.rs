//! [`BudgetStore`]: where spend and reservations live, and [`MemoryBudgetStore`], the
//! in-memory default.
//!
//! The model, shaped for SQL (two tables, each method one transaction):
//! - **reservations** `(id, amount, created_ms, expires_ms)` plus the scopes each one holds
//!   money in (a child table or a JSON column). A reservation *holds* money in its scopes
//!   while `expires_ms > now_ms`; no sweeper is needed for an expired reservation to stop
//!   holding, [`BudgetStore::expire`] only deletes the dead rows.
//! - **spend** `(scope, amount, at_ms)`, one row per scope per settled call, indexed by
//!   `(scope, at_ms)`. A scope's spend in the window is the sum of its rows with
//!   `at_ms >= window_start_ms` (rows stamped in the future by a skewed clock count too).
//!
//! [`BudgetStore::try_reserve`] is the atomic step: for every scope with a limit it checks
//! `spent + held + amount <= limit` and, only if all pass, inserts the reservation, all in
//! one transaction (SQLite: `BEGIN IMMEDIATE`). So concurrent reservations, also from
//! several processes sharing the database, never hold more than a cap; what can exceed a
//! cap is only a settled cost larger than its reservation.
//!
//! Amounts are [`Money`] (integer nano-dollars, at most `i64::MAX`).
//!
//! [`conformance`] holds the contract as executable checks, for any implementation's tests.

use async_trait::async_trait;
use executus::ports::PortError;
use serde::{Deserialize, Serialize};

use crate::money::Money;

pub mod conformance;
mod memory;

pub use memory::MemoryBudgetStore;

/// One scope a reservation holds money in, with its cap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeLimit {
    /// The scope (`user:alice`, `tenant:acme`).
    pub scope: String,
    /// The cap over the window; `None` tracks spend without capping it.
    pub limit: Option<Money>,
}

/// An atomic reservation attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReserveRequest {
    /// Every scope the call is charged to, in the order denials are reported.
    pub scopes: Vec<ScopeLimit>,
    /// What to hold.
    pub amount: Money,
    /// The time of the request (Unix ms).
    pub now_ms: u64,
    /// Spend at or after this time counts against the caps.
    pub window_start_ms: u64,
    /// The reservation stops holding money at this time.
    pub expires_ms: u64,
}

impl ReserveRequest {
    /// Checks the request is well formed. Stores call this first.
    ///
    /// # Errors
    /// [`PortError::Invalid`] when the reservation would already be expired, the window
    /// starts in the future, or a scope is listed twice.
    pub fn validate(&self) -> Result<(), PortError> {
        let invalid =
            |what: &str, reason: String| PortError::Invalid { port: "budget", what: what.into(), reason };
        if self.expires_ms <= self.now_ms {
            return Err(invalid(
                "reservation",
                format!("expires_ms {} is not after now_ms {}", self.expires_ms, self.now_ms),
            ));
        }
        if self.window_start_ms > self.now_ms {
            return Err(invalid(
                "window",
                format!("window_start_ms {} is after now_ms {}", self.window_start_ms, self.now_ms),
            ));
        }
        for (i, s) in self.scopes.iter().enumerate() {
            if self.scopes[..i].iter().any(|t| t.scope == s.scope) {
                return Err(invalid("scopes", format!("scope {:?} is listed twice", s.scope)));
            }
        }
        Ok(())
    }
}

/// Why a reservation was refused, in exact amounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denial {
    /// The first scope (in request order) the reservation did not fit.
    pub scope: String,
    /// Spent in that scope within the window.
    pub spent: Money,
    /// Held in that scope by live reservations.
    pub reserved: Money,
    /// The amount that did not fit.
    pub requested: Money,
    /// That scope's cap.
    pub limit: Money,
}

/// The result of [`BudgetStore::try_reserve`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReserveOutcome {
    /// Held; settle with this id.
    Granted {
        /// Store-assigned id, at least 1, never reused.
        reservation_id: u64,
    },
    /// Nothing was held.
    Denied(Denial),
}

/// Replaces a reservation with what the call really cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettleRequest {
    /// The reservation (it may already have expired or been deleted).
    pub reservation_id: u64,
    /// The scopes to charge (the reservation's scopes; given by the caller so a settle
    /// that arrives after the reservation was swept still records the spend).
    pub scopes: Vec<String>,
    /// The real cost; zero only releases the reservation.
    pub actual: Money,
    /// The time of the settle: the spend rows' `at_ms`.
    pub now_ms: u64,
}

/// A scope's standing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeTotals {
    /// Spent within the window.
    pub spent: Money,
    /// Held by live reservations.
    pub reserved: Money,
}

/// Keeps spend and reservations. Every method is atomic on its own.
#[async_trait]
pub trait BudgetStore: Send + Sync {
    /// In one transaction: for every scope with a limit, checks
    /// `spent(window) + held(live at now_ms) + amount <= limit`; if every scope passes,
    /// inserts a reservation of `amount` in all the request's scopes, live until
    /// `expires_ms`, and returns its id. Otherwise holds nothing and reports the first
    /// scope (in request order) that did not fit.
    ///
    /// # Errors
    /// [`PortError::Invalid`] for a request [`ReserveRequest::validate`] rejects; a
    /// [`PortError`] if the backend fails (nothing was held).
    async fn try_reserve(&self, request: &ReserveRequest) -> Result<ReserveOutcome, PortError>;

    /// In one transaction: deletes the reservation (if it still exists, expired or not)
    /// and, if `actual` is above zero, records one spend row of `actual` per scope at
    /// `now_ms`. Returns true if the reservation still existed.
    ///
    /// Not idempotent: settling the same id twice records the spend twice (the caller
    /// settles each reservation once).
    ///
    /// # Errors
    /// A [`PortError`] if the backend fails (nothing changed).
    async fn settle(&self, request: &SettleRequest) -> Result<bool, PortError>;

    /// A scope's spend since `since_ms` and the money live reservations hold in it at
    /// `now_ms`.
    ///
    /// # Errors
    /// A [`PortError`] if the backend fails.
    async fn spent(&self, scope: &str, since_ms: u64, now_ms: u64) -> Result<ScopeTotals, PortError>;

    /// Deletes reservations with `expires_ms <= now_ms` (they already hold nothing) and
    /// returns how many.
    ///
    /// # Errors
    /// A [`PortError`] if the backend fails.
    async fn expire(&self, now_ms: u64) -> Result<u64, PortError>;

    /// Deletes spend rows with `at_ms < before_ms` (outside every window that matters)
    /// and returns how many.
    ///
    /// # Errors
    /// A [`PortError`] if the backend fails.
    async fn prune(&self, before_ms: u64) -> Result<u64, PortError>;
}
