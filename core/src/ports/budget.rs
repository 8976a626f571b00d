//! [`Budget`]: reserve before a model call, settle after it. Default: unlimited.

use async_trait::async_trait;
use executus_llm::Usage;
use serde::{Deserialize, Serialize};

use crate::identity::Identity;
use crate::ids::RunId;

/// What a model call is about to cost, as far as the core can tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpendRequest {
    /// The run.
    pub run_id: RunId,
    /// Who pays.
    pub identity: Identity,
    /// The chain's targets as `provider/model`, in order (the budget may price the dearest).
    pub targets: Vec<String>,
    /// Estimated prompt tokens.
    pub input_tokens: u64,
    /// The output token cap of the call.
    pub max_output_tokens: u64,
}

/// A granted reservation; hand it back to [`Budget::settle`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reservation {
    /// Budget-assigned id (0 for the unlimited budget).
    pub id: u64,
    /// Amount reserved, in the budget's currency.
    pub amount: f64,
}

/// Why the budget refused a model call, with the evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "denied", rename_all = "snake_case")]
#[non_exhaustive]
pub enum BudgetDenied {
    /// A cap would be exceeded in the current window.
    #[error(
        "budget exhausted for {scope}: spent {spent:.4} + reserved {reserved:.4} + this call {requested:.4} > limit {cap:.4}"
    )]
    Exhausted {
        /// The scope whose cap is reached (e.g. `user:alice`, `tenant:acme`).
        scope: String,
        /// Spent in the current window.
        spent: f64,
        /// Reserved by calls in flight.
        reserved: f64,
        /// What this call would reserve.
        requested: f64,
        /// The cap.
        cap: f64,
        /// The rolling window the cap applies to.
        #[serde(with = "crate::duration_serde")]
        window: std::time::Duration,
    },
    /// The model has no price and the caller has a spending cap.
    #[error(
        "budget refused the call for unpriced:{model}: model {model} has no price in the price table and this caller has a spending cap"
    )]
    Unpriced {
        /// The target without a price (`provider/model`).
        model: String,
    },
    /// The budget's store failed, so spending cannot be checked (the call is refused rather
    /// than allowed unaccounted).
    #[error(
        "budget refused the call for budget-store-unavailable: the budget store failed ({reason}), so spending cannot be checked"
    )]
    StoreUnavailable {
        /// The store's error.
        reason: String,
    },
}

/// Approves and accounts spending.
#[async_trait]
pub trait Budget: Send + Sync {
    /// Reserves the estimated cost of a call, atomically with respect to other reservations.
    ///
    /// # Errors
    /// [`BudgetDenied`] when the reservation would exceed a cap.
    async fn reserve(&self, request: &SpendRequest) -> Result<Reservation, BudgetDenied>;

    /// Replaces a reservation with the call's real cost (`usage` of `provider`/`model`; zero
    /// usage releases it).
    async fn settle(&self, reservation: Reservation, usage: &Usage, provider: &str, model: &str);

    /// Whether this budget can refuse a call or counts what calls cost. `false` (the default
    /// budget) lets the run loop skip reserving and settling altogether — and building the
    /// spend request each model call would otherwise need.
    fn limits_spending(&self) -> bool {
        true
    }
}

/// The default budget: everything is allowed and nothing is counted.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unlimited;

#[async_trait]
impl Budget for Unlimited {
    async fn reserve(&self, _request: &SpendRequest) -> Result<Reservation, BudgetDenied> {
        Ok(Reservation { id: 0, amount: 0.0 })
    }

    async fn settle(&self, _reservation: Reservation, _usage: &Usage, _provider: &str, _model: &str) {}

    fn limits_spending(&self) -> bool {
        false
    }
}
