//! [`MemoryBudgetStore`]: the [`BudgetStore`] contract in one process, under one mutex.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use executus::ports::PortError;

use super::{BudgetStore, Denial, ReserveOutcome, ReserveRequest, ScopeTotals, SettleRequest};
use crate::money::Money;

/// Spend and reservations in memory. Every method takes one lock, so each is atomic.
/// Spend is lost when the process ends: use a SQL store where caps must survive restarts.
#[derive(Debug, Default)]
pub struct MemoryBudgetStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    last_id: u64,
    reservations: BTreeMap<u64, Held>,
    /// Per scope: `(at_ms, amount)`, ascending by `at_ms`.
    spend: HashMap<String, Vec<(u64, Money)>>,
}

#[derive(Debug)]
struct Held {
    scopes: Vec<String>,
    amount: Money,
    expires_ms: u64,
}

impl Inner {
    fn spent(&self, scope: &str, since_ms: u64) -> Money {
        self.spend.get(scope).map_or(Money::ZERO, |rows| {
            let start = rows.partition_point(|(at, _)| *at < since_ms);
            rows[start..].iter().map(|(_, amount)| *amount).sum()
        })
    }

    fn held(&self, scope: &str, now_ms: u64) -> Money {
        self.reservations
            .values()
            .filter(|h| h.expires_ms > now_ms && h.scopes.iter().any(|s| s == scope))
            .map(|h| h.amount)
            .sum()
    }
}

impl MemoryBudgetStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reservations held (live or expired but not yet swept).
    pub fn reservations(&self) -> usize {
        self.lock().reservations.len()
    }

    /// Spend rows held, over all scopes.
    pub fn spend_rows(&self) -> usize {
        self.lock().spend.values().map(Vec::len).sum()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every mutation below completes its checks before changing anything, so a
        // poisoned lock still guards consistent data.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl BudgetStore for MemoryBudgetStore {
    async fn try_reserve(&self, request: &ReserveRequest) -> Result<ReserveOutcome, PortError> {
        request.validate()?;
        let mut inner = self.lock();
        for scope in &request.scopes {
            let Some(limit) = scope.limit else { continue };
            let spent = inner.spent(&scope.scope, request.window_start_ms);
            let reserved = inner.held(&scope.scope, request.now_ms);
            if spent.saturating_add(reserved).saturating_add(request.amount) > limit {
                return Ok(ReserveOutcome::Denied(Denial {
                    scope: scope.scope.clone(),
                    spent,
                    reserved,
                    requested: request.amount,
                    limit,
                }));
            }
        }
        inner.last_id += 1;
        let id = inner.last_id;
        inner.reservations.insert(
            id,
            Held {
                scopes: request.scopes.iter().map(|s| s.scope.clone()).collect(),
                amount: request.amount,
                expires_ms: request.expires_ms,
            },
        );
        Ok(ReserveOutcome::Granted { reservation_id: id })
    }

    async fn settle(&self, request: &SettleRequest) -> Result<bool, PortError> {
        let mut inner = self.lock();
        let existed = inner.reservations.remove(&request.reservation_id).is_some();
        if request.actual > Money::ZERO {
            for scope in &request.scopes {
                let rows = inner.spend.entry(scope.clone()).or_default();
                let at = rows.partition_point(|(at, _)| *at <= request.now_ms);
                rows.insert(at, (request.now_ms, request.actual));
            }
        }
        Ok(existed)
    }

    async fn spent(&self, scope: &str, since_ms: u64, now_ms: u64) -> Result<ScopeTotals, PortError> {
        let inner = self.lock();
        Ok(ScopeTotals { spent: inner.spent(scope, since_ms), reserved: inner.held(scope, now_ms) })
    }

    async fn expire(&self, now_ms: u64) -> Result<u64, PortError> {
        let mut inner = self.lock();
        let before = inner.reservations.len();
        inner.reservations.retain(|_, h| h.expires_ms > now_ms);
        Ok((before - inner.reservations.len()) as u64)
    }

    async fn prune(&self, before_ms: u64) -> Result<u64, PortError> {
        let mut inner = self.lock();
        let mut deleted = 0u64;
        inner.spend.retain(|_, rows| {
            let cut = rows.partition_point(|(at, _)| *at < before_ms);
            deleted += cut as u64;
            rows.drain(..cut);
            !rows.is_empty()
        });
        Ok(deleted)
    }
}
