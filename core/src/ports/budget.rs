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

/// A refusal, with the numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{}", self.describe())]
pub struct BudgetDenied {
    /// The scope that is exhausted (e.g. `user:alice`, `tenant:acme`).
    pub scope: String,
    /// Spent in the current window.
    pub spent: f64,
    /// Reserved by calls in flight.
    pub reserved: f64,
    /// What this call would reserve.
    pub requested: f64,
    /// The cap.
    pub limit: f64,
    /// Why, when the refusal is not about the numbers (an unpriced model, a failed store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl BudgetDenied {
    fn describe(&self) -> String {
        match &self.reason {
            Some(reason) => format!("budget refused the call for {}: {reason}", self.scope),
            None => format!(
                "budget exhausted for {}: spent {:.4} + reserved {:.4} + this call {:.4} > limit {:.4}",
                self.scope, self.spent, self.reserved, self.requested, self.limit
            ),
        }
    }
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
}
