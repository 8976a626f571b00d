//! A conformance suite for [`BudgetStore`] implementations: the contract of the trait as
//! executable checks. `MemoryBudgetStore` passes it; a SQL store should run it against a
//! fresh database in its own tests (on a multi-thread runtime, so the concurrency check
//! really races):
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use executus_budget::store::conformance;
//! use executus_budget::{BudgetStore, MemoryBudgetStore};
//!
//! # async fn demo() -> Result<(), conformance::Violation> {
//! // A SQL store would open a fresh database file here.
//! conformance::check(|| async { Arc::new(MemoryBudgetStore::new()) as Arc<dyn BudgetStore> }).await
//! # }
//! ```
//!
//! Each check gets a fresh store from the factory. Failures are returned, not panicked, and
//! name the check and what was observed.

use std::future::Future;
use std::sync::Arc;

use executus::ports::PortError;

use super::{BudgetStore, Denial, ReserveOutcome, ReserveRequest, ScopeLimit, ScopeTotals, SettleRequest};
use crate::money::Money;

/// A violated expectation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("budget store conformance: {check}: {detail}")]
pub struct Violation {
    /// The check that failed.
    pub check: &'static str,
    /// What was expected and what was observed.
    pub detail: String,
}

macro_rules! ensure {
    ($check:expr, $cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(Violation { check: $check, detail: format!($($fmt)+) });
        }
    };
}

fn port(check: &'static str) -> impl Fn(PortError) -> Violation {
    move |e| Violation { check, detail: format!("unexpected store error: {e}") }
}

const T0: u64 = 1_700_000_000_000;

fn request(scopes: &[(&str, Option<u64>)], amount: u64, now_ms: u64) -> ReserveRequest {
    ReserveRequest {
        scopes: scopes
            .iter()
            .map(|(s, l)| ScopeLimit { scope: (*s).to_owned(), limit: l.map(Money::from_nanos) })
            .collect(),
        amount: Money::from_nanos(amount),
        now_ms,
        window_start_ms: now_ms.saturating_sub(1_000_000),
        expires_ms: now_ms + 600_000,
    }
}

fn settle(id: u64, scopes: &[&str], actual: u64, now_ms: u64) -> SettleRequest {
    SettleRequest {
        reservation_id: id,
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        actual: Money::from_nanos(actual),
        now_ms,
    }
}

fn granted(check: &'static str, outcome: ReserveOutcome) -> Result<u64, Violation> {
    match outcome {
        ReserveOutcome::Granted { reservation_id } => Ok(reservation_id),
        ReserveOutcome::Denied(d) => Err(Violation { check, detail: format!("expected a grant, got {d:?}") }),
    }
}

fn totals(spent: u64, reserved: u64) -> ScopeTotals {
    ScopeTotals { spent: Money::from_nanos(spent), reserved: Money::from_nanos(reserved) }
}

/// Runs every check, each on a fresh store from `fresh`.
///
/// # Errors
/// The first [`Violation`].
pub async fn check<F, Fut>(fresh: F) -> Result<(), Violation>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn BudgetStore>>,
{
    reserve_checks_every_capped_scope(fresh().await.as_ref()).await?;
    reservations_hold_until_they_expire(fresh().await.as_ref()).await?;
    settle_replaces_the_hold_with_spend(fresh().await.as_ref()).await?;
    the_window_bounds_spend(fresh().await.as_ref()).await?;
    invalid_requests_are_rejected(fresh().await.as_ref()).await?;
    concurrent_reservations_never_overshoot(fresh().await).await?;
    Ok(())
}

/// Denials name the first scope that does not fit, with exact amounts; uncapped scopes
/// hold money without capping; ids are distinct and at least 1.
///
/// # Errors
/// The first [`Violation`].
pub async fn reserve_checks_every_capped_scope(store: &dyn BudgetStore) -> Result<(), Violation> {
    const C: &str = "reserve_checks_every_capped_scope";
    let e = port(C);
    let a = granted(
        C,
        store
            .try_reserve(&request(&[("user:a", Some(100)), ("tenant:t", Some(150))], 60, T0))
            .await
            .map_err(&e)?,
    )?;
    let b = granted(
        C,
        store
            .try_reserve(&request(&[("user:b", None), ("tenant:t", Some(150))], 60, T0))
            .await
            .map_err(&e)?,
    )?;
    ensure!(C, a >= 1 && b >= 1 && a != b, "ids {a} and {b} must be distinct and at least 1");
    // user:a has 60 held, so 41 does not fit there (first scope in order).
    let out = store
        .try_reserve(&request(&[("user:a", Some(100)), ("tenant:t", Some(150))], 41, T0))
        .await
        .map_err(&e)?;
    let want = Denial {
        scope: "user:a".into(),
        spent: Money::ZERO,
        reserved: Money::from_nanos(60),
        requested: Money::from_nanos(41),
        limit: Money::from_nanos(100),
    };
    ensure!(C, out == ReserveOutcome::Denied(want.clone()), "expected {want:?}, got {out:?}");
    // 30 fits user:a (90 <= 100) and tenant:t (150 <= 150): exactly at the cap is allowed.
    granted(
        C,
        store
            .try_reserve(&request(&[("user:a", Some(100)), ("tenant:t", Some(150))], 30, T0))
            .await
            .map_err(&e)?,
    )?;
    // Now the tenant is full; a user without a cap is refused by the tenant.
    let out =
        store.try_reserve(&request(&[("user:c", None), ("tenant:t", Some(150))], 1, T0)).await.map_err(&e)?;
    ensure!(
        C,
        matches!(&out, ReserveOutcome::Denied(d) if d.scope == "tenant:t" && d.reserved == Money::from_nanos(150)),
        "expected a tenant:t denial with 150 held, got {out:?}"
    );
    // A denied reservation holds nothing.
    let t = store.spent("tenant:t", 0, T0).await.map_err(&e)?;
    ensure!(C, t == totals(0, 150), "tenant:t should hold 150, has {t:?}");
    let b_totals = store.spent("user:b", 0, T0).await.map_err(&e)?;
    ensure!(C, b_totals == totals(0, 60), "an uncapped scope still holds its reservation: {b_totals:?}");
    // Zero-cost reservations fit a full scope.
    granted(C, store.try_reserve(&request(&[("tenant:t", Some(150))], 0, T0)).await.map_err(&e)?)?;
    Ok(())
}

/// A reservation holds money while `expires_ms > now_ms`, with no sweeper; `expire`
/// deletes exactly the dead ones.
///
/// # Errors
/// The first [`Violation`].
pub async fn reservations_hold_until_they_expire(store: &dyn BudgetStore) -> Result<(), Violation> {
    const C: &str = "reservations_hold_until_they_expire";
    let e = port(C);
    let mut r = request(&[("user:x", Some(100))], 100, T0);
    r.expires_ms = T0 + 1000;
    granted(C, store.try_reserve(&r).await.map_err(&e)?)?;
    let at = |now: u64| {
        let mut r = request(&[("user:x", Some(100))], 1, now);
        r.expires_ms = now + 5000;
        r
    };
    let before = store.try_reserve(&at(T0 + 999)).await.map_err(&e)?;
    ensure!(C, matches!(before, ReserveOutcome::Denied(_)), "still held 1 ms before expiry, got {before:?}");
    let held = store.spent("user:x", 0, T0 + 1000).await.map_err(&e)?;
    ensure!(C, held.reserved == Money::ZERO, "nothing held at expires_ms, got {held:?}");
    granted(C, store.try_reserve(&at(T0 + 1000)).await.map_err(&e)?)?;
    let n = store.expire(T0 + 1000).await.map_err(&e)?;
    ensure!(C, n == 1, "expire should delete the one dead reservation, deleted {n}");
    let n = store.expire(T0 + 1000).await.map_err(&e)?;
    ensure!(C, n == 0, "a second expire deletes nothing, deleted {n}");
    let held = store.spent("user:x", 0, T0 + 1000).await.map_err(&e)?;
    ensure!(C, held.reserved == Money::from_nanos(1), "the live reservation survives expire: {held:?}");
    Ok(())
}

/// Settle deletes the reservation and records the actual cost per scope; zero releases
/// only; a settle after the reservation is gone still records spend and says so.
///
/// # Errors
/// The first [`Violation`].
pub async fn settle_replaces_the_hold_with_spend(store: &dyn BudgetStore) -> Result<(), Violation> {
    const C: &str = "settle_replaces_the_hold_with_spend";
    let e = port(C);
    let scopes = [("user:s", Some(1000)), ("tenant:s", Some(1000))];
    let id = granted(C, store.try_reserve(&request(&scopes, 500, T0)).await.map_err(&e)?)?;
    let existed = store.settle(&settle(id, &["user:s", "tenant:s"], 120, T0 + 10)).await.map_err(&e)?;
    ensure!(C, existed, "settle of a held reservation reports it existed");
    for scope in ["user:s", "tenant:s"] {
        let t = store.spent(scope, 0, T0 + 10).await.map_err(&e)?;
        ensure!(C, t == totals(120, 0), "{scope} after settle: {t:?}");
    }
    let id = granted(C, store.try_reserve(&request(&scopes, 300, T0 + 20)).await.map_err(&e)?)?;
    store.settle(&settle(id, &["user:s", "tenant:s"], 0, T0 + 30)).await.map_err(&e)?;
    let t = store.spent("user:s", 0, T0 + 30).await.map_err(&e)?;
    ensure!(C, t == totals(120, 0), "a zero settle only releases: {t:?}");
    // Expired and swept, then settled late: the spend still counts.
    let mut r = request(&scopes, 100, T0 + 40);
    r.expires_ms = T0 + 50;
    let id = granted(C, store.try_reserve(&r).await.map_err(&e)?)?;
    store.expire(T0 + 60).await.map_err(&e)?;
    let existed = store.settle(&settle(id, &["user:s", "tenant:s"], 70, T0 + 70)).await.map_err(&e)?;
    ensure!(C, !existed, "a swept reservation no longer exists");
    let t = store.spent("tenant:s", 0, T0 + 70).await.map_err(&e)?;
    ensure!(C, t == totals(190, 0), "late settle recorded: {t:?}");
    // Spend counts against the cap: 190 spent + 811 > 1000.
    let out = store.try_reserve(&request(&scopes, 811, T0 + 80)).await.map_err(&e)?;
    ensure!(
        C,
        matches!(&out, ReserveOutcome::Denied(d) if d.spent == Money::from_nanos(190) && d.scope == "user:s"),
        "spend must count against caps, got {out:?}"
    );
    granted(C, store.try_reserve(&request(&scopes, 810, T0 + 80)).await.map_err(&e)?)?;
    Ok(())
}

/// Spend counts from `window_start_ms` (inclusive); `prune` deletes older rows only.
///
/// # Errors
/// The first [`Violation`].
pub async fn the_window_bounds_spend(store: &dyn BudgetStore) -> Result<(), Violation> {
    const C: &str = "the_window_bounds_spend";
    let e = port(C);
    for (i, at) in [T0, T0 + 100, T0 + 200].into_iter().enumerate() {
        let id = granted(C, store.try_reserve(&request(&[("user:w", None)], 10, at)).await.map_err(&e)?)?;
        store.settle(&settle(id, &["user:w"], 10 * (i as u64 + 1), at)).await.map_err(&e)?;
    }
    for (since, want) in [(T0, 60), (T0 + 1, 50), (T0 + 100, 50), (T0 + 101, 30), (T0 + 201, 0)] {
        let t = store.spent("user:w", since, T0 + 300).await.map_err(&e)?;
        ensure!(C, t.spent == Money::from_nanos(want), "spent since {since}: want {want}, got {t:?}");
    }
    let mut r = request(&[("user:w", Some(40))], 10, T0 + 300);
    r.window_start_ms = T0 + 100;
    let out = store.try_reserve(&r).await.map_err(&e)?;
    ensure!(C, matches!(out, ReserveOutcome::Denied(_)), "50 in window + 10 > 40, got {out:?}");
    r.window_start_ms = T0 + 101;
    granted(C, store.try_reserve(&r).await.map_err(&e)?)?;
    let n = store.prune(T0 + 100).await.map_err(&e)?;
    ensure!(C, n == 1, "prune before T0+100 deletes one row, deleted {n}");
    let t = store.spent("user:w", 0, T0 + 300).await.map_err(&e)?;
    ensure!(C, t.spent == Money::from_nanos(50), "after prune: {t:?}");
    let unknown = store.spent("user:nobody", 0, T0).await.map_err(&e)?;
    ensure!(C, unknown == ScopeTotals::default(), "an unknown scope is empty: {unknown:?}");
    Ok(())
}

/// Malformed reservations are `PortError::Invalid`, and change nothing.
///
/// # Errors
/// The first [`Violation`].
pub async fn invalid_requests_are_rejected(store: &dyn BudgetStore) -> Result<(), Violation> {
    const C: &str = "invalid_requests_are_rejected";
    let mut expired = request(&[("user:i", None)], 1, T0);
    expired.expires_ms = T0;
    let mut future_window = request(&[("user:i", None)], 1, T0);
    future_window.window_start_ms = T0 + 1;
    let twice = request(&[("user:i", None), ("user:i", Some(5))], 1, T0);
    for (what, r) in [("expired", expired), ("future window", future_window), ("duplicate scope", twice)] {
        let out = store.try_reserve(&r).await;
        ensure!(C, matches!(out, Err(PortError::Invalid { .. })), "{what}: expected Invalid, got {out:?}");
    }
    let t = store.spent("user:i", 0, T0).await.map_err(port(C))?;
    ensure!(C, t == ScopeTotals::default(), "rejected requests hold nothing: {t:?}");
    Ok(())
}

/// 64 concurrent reservations of 10 against a cap of 205: exactly 20 are granted.
///
/// # Errors
/// The first [`Violation`].
pub async fn concurrent_reservations_never_overshoot(store: Arc<dyn BudgetStore>) -> Result<(), Violation> {
    const C: &str = "concurrent_reservations_never_overshoot";
    let attempts = (0..64u64).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let user = format!("user:{i}");
            store.try_reserve(&request(&[(user.as_str(), None), ("tenant:c", Some(205))], 10, T0)).await
        })
    });
    let mut grants = 0;
    for attempt in futures_join(attempts).await {
        match attempt {
            Ok(Ok(ReserveOutcome::Granted { .. })) => grants += 1,
            Ok(Ok(ReserveOutcome::Denied(d))) => {
                ensure!(C, d.scope == "tenant:c", "denied by the wrong scope: {d:?}");
            }
            Ok(Err(e)) => return Err(port(C)(e)),
            Err(join) => return Err(Violation { check: C, detail: format!("task failed: {join}") }),
        }
    }
    ensure!(C, grants == 20, "exactly 20 x 10 fit under 205, granted {grants}");
    let t = store.spent("tenant:c", 0, T0).await.map_err(port(C))?;
    ensure!(C, t.reserved == Money::from_nanos(200), "held {t:?}");
    Ok(())
}

/// Awaits every handle in order.
async fn futures_join<T>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<Result<T, tokio::task::JoinError>> {
    let handles: Vec<_> = handles.collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await);
    }
    out
}
