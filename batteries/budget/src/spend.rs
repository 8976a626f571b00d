//! [`SpendBudget`]: the core's `Budget` port over a price table, caps and a
//! [`BudgetStore`].
//!
//! Before each model call, `reserve` prices the worst case — the request's estimated
//! prompt tokens at the input price plus the whole output cap at the output price, using
//! the dearest target of the failover chain, since any of them may answer — and reserves
//! it atomically against the caller's user cap and tenant cap (scopes `user:<id>` and
//! `tenant:<id>`). After the call, `settle` replaces the reservation with the real cost,
//! priced by the model that answered.
//!
//! Guarantees:
//! - Reservations are atomic in the store, so concurrent runs (also across processes
//!   sharing a SQL store) never hold more than a cap. Spend can pass a cap only by what
//!   settled calls cost beyond their reservations (the prompt estimate is ~4 characters
//!   per token), so by at most about one call's reservation in practice.
//! - A reservation that is never settled (the process died mid-call) stops holding money
//!   after the reservation TTL; no sweeper has to run for that.
//! - Spend older than the window no longer counts.
//! - Unknown models: with [`UnknownModel::Deny`] (the default) a call that could reach a
//!   model missing from the price table is refused when any cap applies to the caller, with
//!   scope `unpriced:<provider/model>`. Uncapped callers are allowed and such calls are
//!   recorded at zero cost with a warning.
//! - A settle whose answering model is not in the table is priced at the reservation's
//!   dearest target price (never at zero when a target was priced).
//! - If the store fails during `reserve`, the call is refused (fail closed) with scope
//!   `budget-store-unavailable`; a failing `settle` is retried twice, then logged at error
//!   level with the unrecorded amount (its reservation expires after the TTL).
//!
//! Not guaranteed: a cap is not a hard ceiling on the provider's bill (estimates are
//! estimates), and a settle arriving more than a day after its reservation expired is
//! logged and dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use executus::Identity;
use executus::llm::{Target, Usage};
use executus::ports::{Budget, BudgetDenied, PortError, Reservation, SpendRequest};

use crate::config::BudgetSettings;
use crate::money::Money;
use crate::price::{Price, UnknownModel, Unpriced};
use crate::store::{
    BudgetStore, MemoryBudgetStore, ReserveOutcome, ReserveRequest, ScopeLimit, SettleRequest,
};
use executus::llm::{Clock, SystemClock};

/// How often `reserve` sweeps expired reservations and spend outside the window.
const HOUSEKEEPING_EVERY_MS: u64 = 60_000;
/// How long after its expiry a reservation can still be settled.
const LATE_SETTLE_GRACE_MS: u64 = 24 * 3600 * 1000;

/// The scope of a user's spend.
pub fn user_scope(user: &str) -> String {
    format!("user:{user}")
}

/// The scope of a tenant's spend.
pub fn tenant_scope(tenant: &str) -> String {
    format!("tenant:{tenant}")
}

/// A scope's standing, for display ("you have spent $3.20 of $5.00 this week").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeStatus {
    /// The scope (`user:alice`, `tenant:acme`).
    pub scope: String,
    /// Spent within the window.
    pub spent: Money,
    /// Held by calls in flight.
    pub reserved: Money,
    /// The cap, if any.
    pub limit: Option<Money>,
}

/// What a housekeeping pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Housekeeping {
    /// Expired reservations deleted from the store.
    pub expired: u64,
    /// Spend rows older than the window deleted.
    pub pruned: u64,
}

/// What `settle` needs to know about a reservation it granted.
#[derive(Debug)]
struct Pending {
    scopes: Vec<String>,
    /// The dearest target's price, for answers from a model the table does not know.
    fallback: Option<Price>,
    expires_ms: u64,
}

/// The worst-case price of a call.
struct Estimate {
    amount: Money,
    price: Option<Price>,
    unpriced: Vec<String>,
}

/// Rolling-window spend caps per user and tenant. See the module docs.
pub struct SpendBudget {
    settings: BudgetSettings,
    store: Arc<dyn BudgetStore>,
    clock: Arc<dyn Clock>,
    pending: Mutex<HashMap<u64, Pending>>,
    last_housekeeping_ms: AtomicU64,
}

impl std::fmt::Debug for SpendBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpendBudget")
            .field("settings", &self.settings)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl SpendBudget {
    /// A budget over `store`, on the system clock.
    pub fn new(settings: BudgetSettings, store: Arc<dyn BudgetStore>) -> Self {
        Self {
            settings,
            store,
            clock: Arc::new(SystemClock),
            pending: Mutex::new(HashMap::new()),
            last_housekeeping_ms: AtomicU64::new(0),
        }
    }

    /// A budget over a fresh [`MemoryBudgetStore`].
    pub fn in_memory(settings: BudgetSettings) -> Self {
        Self::new(settings, Arc::new(MemoryBudgetStore::new()))
    }

    /// Uses `clock` instead of the system clock.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The settings in effect.
    pub fn settings(&self) -> &BudgetSettings {
        &self.settings
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn BudgetStore> {
        &self.store
    }

    /// The caller's scopes with their caps: user first, then tenant.
    pub fn scopes_for(&self, identity: &Identity) -> Vec<ScopeLimit> {
        vec![
            ScopeLimit {
                scope: user_scope(&identity.user),
                limit: self.settings.caps.user_cap(&identity.user),
            },
            ScopeLimit {
                scope: tenant_scope(&identity.tenant),
                limit: self.settings.caps.tenant_cap(&identity.tenant),
            },
        ]
    }

    /// Where `identity` stands in each of its scopes.
    ///
    /// # Errors
    /// A [`PortError`] if the store fails.
    pub async fn status(&self, identity: &Identity) -> Result<Vec<ScopeStatus>, PortError> {
        let now = self.clock.now_ms();
        let since = self.window_start(now);
        let mut out = Vec::new();
        for scope in self.scopes_for(identity) {
            let totals = self.store.spent(&scope.scope, since, now).await?;
            out.push(ScopeStatus {
                scope: scope.scope,
                spent: totals.spent,
                reserved: totals.reserved,
                limit: scope.limit,
            });
        }
        Ok(out)
    }

    /// Deletes expired reservations and spend older than the window from the store, and
    /// forgets reservations too old to be settled. `reserve` runs this at most once a
    /// minute on its own; hosts may call it on a timer instead.
    ///
    /// # Errors
    /// A [`PortError`] if the store fails.
    pub async fn housekeeping(&self) -> Result<Housekeeping, PortError> {
        let now = self.clock.now_ms();
        self.lock_pending().retain(|_, p| p.expires_ms.saturating_add(LATE_SETTLE_GRACE_MS) > now);
        let expired = self.store.expire(now).await?;
        let pruned = self.store.prune(self.window_start(now)).await?;
        Ok(Housekeeping { expired, pruned })
    }

    /// The worst-case cost of `request` under the price table (without reserving).
    ///
    /// # Errors
    /// [`Unpriced`] naming the first target without a price, under [`UnknownModel::Deny`].
    pub fn estimate(&self, request: &SpendRequest) -> Result<Money, Unpriced> {
        let e = self.estimate_inner(request);
        match e.unpriced.into_iter().next() {
            Some(target) => Err(Unpriced { target }),
            None => Ok(e.amount),
        }
    }

    fn estimate_inner(&self, request: &SpendRequest) -> Estimate {
        let mut best: Option<(Money, Price)> = None;
        let mut unpriced = Vec::new();
        let targets: Vec<&str> = if request.targets.is_empty() {
            // Nothing to price by; treat as one unknown model so the policy decides.
            vec!["(no targets)"]
        } else {
            request.targets.iter().map(String::as_str).collect()
        };
        for target in targets {
            let price = self.settings.prices.lookup(target).or(match self.settings.unknown_model {
                UnknownModel::Price(p) => Some(p),
                UnknownModel::Deny => None,
            });
            match price {
                Some(p) => {
                    let amount = p.estimate(request.input_tokens, request.max_output_tokens);
                    if best.is_none_or(|(b, _)| amount > b) {
                        best = Some((amount, p));
                    }
                }
                None => unpriced.push(target.to_owned()),
            }
        }
        Estimate { amount: best.map_or(Money::ZERO, |b| b.0), price: best.map(|b| b.1), unpriced }
    }

    fn window_start(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(millis(self.settings.window))
    }

    fn lock_pending(&self) -> MutexGuard<'_, HashMap<u64, Pending>> {
        // Insert and remove only; a poisoned map is still a consistent map.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn maybe_housekeep(&self, now: u64) {
        let last = self.last_housekeeping_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < HOUSEKEEPING_EVERY_MS
            || self
                .last_housekeeping_ms
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        if let Err(e) = self.housekeeping().await {
            tracing::warn!(target: "executus::budget", error = %e, "budget housekeeping failed");
        }
    }

    /// The cost of a settled call.
    fn actual_cost(&self, pending: &Pending, usage: &Usage, provider: &str, model: &str) -> Money {
        if *usage == Usage::default() {
            return Money::ZERO;
        }
        let price =
            self.settings.prices.lookup_target(&Target::new(provider, model)).or(pending.fallback).or(
                match self.settings.unknown_model {
                    UnknownModel::Price(p) => Some(p),
                    UnknownModel::Deny => None,
                },
            );
        match price {
            Some(p) => p.cost(usage),
            None => {
                tracing::warn!(
                    target: "executus::budget",
                    provider,
                    model,
                    input_tokens = usage.input_tokens,
                    output_tokens = usage.output_tokens,
                    "no price for this model; the call is recorded at zero cost"
                );
                Money::ZERO
            }
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[async_trait]
impl Budget for SpendBudget {
    async fn reserve(&self, request: &SpendRequest) -> Result<Reservation, BudgetDenied> {
        let now = self.clock.now_ms();
        self.maybe_housekeep(now).await;
        let scopes = self.scopes_for(&request.identity);
        let capped = scopes.iter().any(|s| s.limit.is_some());
        let estimate = self.estimate_inner(request);
        if let Some(target) = estimate.unpriced.first() {
            if capped {
                tracing::warn!(
                    target: "executus::budget",
                    run_id = %request.run_id,
                    model = target.as_str(),
                    "refusing a capped call to a model without a price (unknown_model = deny)"
                );
                return Err(BudgetDenied::Unpriced { model: target.clone() });
            }
            tracing::warn!(
                target: "executus::budget",
                run_id = %request.run_id,
                model = target.as_str(),
                "model without a price; uncapped caller, so the call is allowed"
            );
        }
        let reserve = ReserveRequest {
            scopes,
            amount: estimate.amount,
            now_ms: now,
            window_start_ms: self.window_start(now),
            expires_ms: now.saturating_add(millis(self.settings.reservation_ttl)),
        };
        match self.store.try_reserve(&reserve).await {
            Ok(ReserveOutcome::Granted { reservation_id }) => {
                self.lock_pending().insert(
                    reservation_id,
                    Pending {
                        scopes: reserve.scopes.into_iter().map(|s| s.scope).collect(),
                        fallback: estimate.price,
                        expires_ms: reserve.expires_ms,
                    },
                );
                Ok(Reservation { id: reservation_id, amount: estimate.amount.as_usd() })
            }
            Ok(ReserveOutcome::Denied(d)) => {
                tracing::info!(
                    target: "executus::budget",
                    run_id = %request.run_id,
                    scope = d.scope.as_str(),
                    spent = %d.spent,
                    reserved = %d.reserved,
                    requested = %d.requested,
                    limit = %d.limit,
                    "budget denied a model call"
                );
                Err(BudgetDenied::Exhausted {
                    scope: d.scope,
                    spent: d.spent.as_usd(),
                    reserved: d.reserved.as_usd(),
                    requested: d.requested.as_usd(),
                    cap: d.limit.as_usd(),
                    window: self.settings.window,
                })
            }
            Err(e) => {
                tracing::error!(
                    target: "executus::budget",
                    run_id = %request.run_id,
                    error = %e,
                    "budget store failed; refusing the call"
                );
                Err(BudgetDenied::StoreUnavailable { reason: e.to_string() })
            }
        }
    }

    async fn settle(&self, reservation: Reservation, usage: &Usage, provider: &str, model: &str) {
        let Some(pending) = self.lock_pending().remove(&reservation.id) else {
            tracing::warn!(
                target: "executus::budget",
                reservation = reservation.id,
                "settle for a reservation this budget does not hold (settled twice, or too late); ignored"
            );
            return;
        };
        let actual = self.actual_cost(&pending, usage, provider, model);
        let request = SettleRequest {
            reservation_id: reservation.id,
            scopes: pending.scopes,
            actual,
            now_ms: self.clock.now_ms(),
        };
        let mut attempt = 0u32;
        loop {
            match self.store.settle(&request).await {
                Ok(existed) => {
                    if !existed && actual > Money::ZERO {
                        tracing::info!(
                            target: "executus::budget",
                            reservation = reservation.id,
                            actual = %actual,
                            "settled after the reservation expired; spend recorded"
                        );
                    }
                    return;
                }
                Err(e @ PortError::Backend { .. }) if attempt < 2 => {
                    attempt += 1;
                    tracing::warn!(target: "executus::budget", error = %e, attempt, "budget settle failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50) * attempt).await;
                }
                Err(e) => {
                    tracing::error!(
                        target: "executus::budget",
                        error = %e,
                        reservation = reservation.id,
                        unrecorded = %actual,
                        scopes = ?request.scopes,
                        "budget settle failed; this call's spend is not recorded"
                    );
                    return;
                }
            }
        }
    }
}
