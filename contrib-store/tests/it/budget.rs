//! The SQLite budget store beyond the battery's conformance suite: many concurrent reservers
//! on two `Store`s sharing one file (two "processes") never hold or spend past a cap, sums
//! saturate instead of overflowing, state survives reopening, sums are index range reads,
//! and housekeeping deletes in batches.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use executus_budget::{BudgetStore, Money, ReserveOutcome, ReserveRequest, ScopeLimit, SettleRequest};
use executus_store::budget::SUM_QUERIES;
use executus_store::{Store, StoreOptions};

use crate::common::TempStore;

const T0: u64 = 1_700_000_000_000;

fn reserve(scopes: &[(&str, Option<Money>)], amount: Money, now: u64) -> ReserveRequest {
    ReserveRequest {
        scopes: scopes.iter().map(|(s, l)| ScopeLimit { scope: (*s).to_owned(), limit: *l }).collect(),
        amount,
        now_ms: now,
        window_start_ms: now - 1_000_000,
        expires_ms: now + 600_000,
    }
}

fn settle(id: u64, scopes: &[&str], actual: Money, now: u64) -> SettleRequest {
    SettleRequest {
        reservation_id: id,
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        actual,
        now_ms: now,
    }
}

/// Reserve-settle loops until the cap is provably exhausted (denied with nothing in
/// flight); returns (grants, settled nano-dollars).
async fn reserver(
    store: Arc<dyn BudgetStore>,
    user: String,
    cap: Money,
    amount: Money,
    exact: bool,
    seed: u64,
) -> (u64, u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let (mut grants, mut settled) = (0, 0);
    let scopes = [(user.as_str(), None), ("tenant:shared", Some(cap))];
    loop {
        match store.try_reserve(&reserve(&scopes, amount, T0)).await.expect("no reservation may fail") {
            ReserveOutcome::Granted { reservation_id } => {
                grants += 1;
                tokio::task::yield_now().await;
                let actual = if exact { amount } else { Money::from_nanos(rng.u64(0..=amount.nanos())) };
                settled += actual.nanos();
                store
                    .settle(&settle(reservation_id, &[user.as_str(), "tenant:shared"], actual, T0))
                    .await
                    .expect("no settle may fail");
            }
            ReserveOutcome::Denied(d) => {
                assert_eq!(d.scope, "tenant:shared", "only the tenant is capped");
                if d.reserved == Money::ZERO {
                    return (grants, settled);
                }
                tokio::task::yield_now().await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_file_never_let_many_reservers_overshoot_a_cap() {
    let tmp = TempStore::new();
    let (a, b) = (tmp.open().await, tmp.open().await);
    let amount = Money::from_nanos(7);
    for (round, exact) in [(0u64, true), (1, false)] {
        let cap = Money::from_nanos(1_000 + round * 1_000);
        let scope_base = round * 10_000;
        // A monitor reads spent + reserved as one snapshot, all the while, from a third store.
        let monitor_store = tmp.open().await.budget();
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(AtomicU64::new(0));
        let monitor = {
            let (stop, samples) = (stop.clone(), samples.clone());
            tokio::spawn(async move {
                let mut worst = Money::ZERO;
                while !stop.load(Ordering::SeqCst) {
                    let t = monitor_store.spent("tenant:shared", 0, T0).await.unwrap();
                    worst = worst.max(t.spent.saturating_add(t.reserved));
                    samples.fetch_add(1, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                }
                worst
            })
        };
        let mut tasks = Vec::new();
        for i in 0..48u64 {
            let store: Arc<dyn BudgetStore> = Arc::new(if i % 2 == 0 { a.budget() } else { b.budget() });
            tasks.push(tokio::spawn(reserver(
                store,
                format!("user:{}", scope_base + i),
                cap,
                amount,
                exact,
                scope_base + i,
            )));
        }
        let (mut grants, mut settled) = (0, 0);
        for t in tasks {
            let (g, s) = t.await.unwrap();
            grants += g;
            settled += s;
        }
        stop.store(true, Ordering::SeqCst);
        let worst = monitor.await.unwrap();
        let end = a.budget().spent("tenant:shared", 0, T0).await.unwrap();
        assert!(samples.load(Ordering::SeqCst) > 10, "the monitor must have watched the race");
        assert!(worst <= cap, "round {round}: spent + reserved reached {worst} > cap {cap}");
        assert_eq!(end.reserved, Money::ZERO, "every reservation was settled");
        assert_eq!(end.spent.nanos(), settled, "round {round}: recorded spend equals what was settled");
        assert!(end.spent <= cap, "round {round}: spent {} > cap {cap}", end.spent);
        if exact {
            assert_eq!(grants, 1_000 / 7, "exactly floor(cap / amount) reservations fit");
        } else {
            assert!(
                end.spent.saturating_add(amount) > cap,
                "the cap was exhausted: {} + {amount} <= {cap}",
                end.spent
            );
        }
        // Reset the tenant's spend for the next round.
        a.budget().prune(u64::MAX).await.unwrap();
    }
}

#[tokio::test]
async fn sums_saturate_instead_of_overflowing() {
    let tmp = TempStore::new();
    let store = tmp.open().await.budget();
    for id in [1, 2, 3] {
        store.settle(&settle(id, &["user:big"], Money::MAX, T0)).await.unwrap();
    }
    let t = store.spent("user:big", 0, T0).await.unwrap();
    assert_eq!(t.spent, Money::MAX);
    // (A cap of exactly Money::MAX can never be passed: amounts saturate there, as in the
    // in-memory store.)
    let cap = Money::from_nanos(Money::MAX.nanos() - 1);
    let out =
        store.try_reserve(&reserve(&[("user:big", Some(cap))], Money::from_nanos(1), T0)).await.unwrap();
    assert!(matches!(&out, ReserveOutcome::Denied(d) if d.spent == Money::MAX), "{out:?}");
    // Holds saturate too.
    for _ in 0..3 {
        store.try_reserve(&reserve(&[("user:held", None)], Money::MAX, T0)).await.unwrap();
    }
    assert_eq!(store.spent("user:held", 0, T0).await.unwrap().reserved, Money::MAX);
}

#[tokio::test]
async fn reservations_and_spend_survive_reopening_and_ids_are_never_reused() {
    let tmp = TempStore::new();
    let scopes = [("user:r", None), ("tenant:r", Some(Money::from_nanos(100)))];
    let first = {
        let store = tmp.open().await;
        let budget = store.budget();
        let ReserveOutcome::Granted { reservation_id } =
            budget.try_reserve(&reserve(&scopes, Money::from_nanos(60), T0)).await.unwrap()
        else {
            panic!("denied")
        };
        store.close().await;
        reservation_id
    };
    let store = tmp.open().await;
    let budget = store.budget();
    assert_eq!(budget.spent("tenant:r", 0, T0).await.unwrap().reserved, Money::from_nanos(60));
    let out = budget.try_reserve(&reserve(&scopes, Money::from_nanos(41), T0)).await.unwrap();
    assert!(matches!(out, ReserveOutcome::Denied(_)), "the held 60 still counts after reopening: {out:?}");
    assert!(budget.settle(&settle(first, &["user:r", "tenant:r"], Money::from_nanos(50), T0)).await.unwrap());
    let t = budget.spent("tenant:r", 0, T0).await.unwrap();
    assert_eq!((t.spent, t.reserved), (Money::from_nanos(50), Money::ZERO));
    // Expire everything, then reserve again: the id is new.
    budget.expire(u64::MAX).await.unwrap();
    let ReserveOutcome::Granted { reservation_id } =
        budget.try_reserve(&reserve(&scopes, Money::from_nanos(1), T0)).await.unwrap()
    else {
        panic!("denied")
    };
    assert!(reservation_id > first, "id {reservation_id} reused (first was {first})");
    // A settle for an id no store could have assigned still records the spend.
    assert!(!budget.settle(&settle(u64::MAX, &["user:r"], Money::from_nanos(5), T0)).await.unwrap());
    assert_eq!(budget.spent("user:r", 0, T0).await.unwrap().spent, Money::from_nanos(55));
}

#[tokio::test]
async fn sums_are_covering_index_range_reads() {
    let tmp = TempStore::new();
    let store = tmp.open().await;
    let budget = store.budget();
    for i in 0..200u64 {
        let scope = format!("user:{}", i % 10);
        if let ReserveOutcome::Granted { reservation_id } = budget
            .try_reserve(&reserve(&[(scope.as_str(), None)], Money::from_nanos(5), T0 + i))
            .await
            .unwrap()
            && i.is_multiple_of(2)
        {
            budget
                .settle(&settle(reservation_id, &[scope.as_str()], Money::from_nanos(3), T0 + i))
                .await
                .unwrap();
        }
    }
    let pool = sqlx::SqlitePool::connect(&tmp.url()).await.unwrap();
    sqlx::query("ANALYZE").execute(&pool).await.unwrap();
    let expected = [
        "USING COVERING INDEX budget_spend_window (scope=? AND at_ms>? AND at_ms<?)",
        "USING PRIMARY KEY (scope=? AND hour_ms>?)",
        "USING COVERING INDEX budget_holds_live (scope=? AND expires_ms>?)",
    ];
    for (sql, want) in SUM_QUERIES.iter().zip(expected) {
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let mut query = sqlx::query_as::<_, (i64, i64, i64, String)>(&explain).bind("user:3");
        for _ in 1..sql.matches('?').count() {
            query = query.bind(T0 as i64);
        }
        let lines: Vec<String> = query.fetch_all(&pool).await.unwrap().into_iter().map(|r| r.3).collect();
        assert!(lines.iter().any(|l| l.starts_with("SEARCH") && l.contains(want)), "{sql}: {lines:?}");
        assert!(lines.iter().all(|l| !l.starts_with("SCAN")), "{sql}: {lines:?}");
    }
}

/// The hourly rollup equals the detail rows whatever the window start, across hours,
/// settles and prunes (checked against a plain sum of the detail rows).
#[tokio::test]
async fn window_sums_through_the_hourly_rollup_are_exact() {
    let tmp = TempStore::new();
    let store = Store::open_with(&tmp.url(), StoreOptions::default().prune_batch(7)).await.unwrap();
    let budget = store.as_sqlite().unwrap().budget();
    let hour = 3_600_000u64;
    let base = (T0 / hour) * hour; // an hour boundary
    let mut rng = fastrand::Rng::with_seed(5);
    let mut rows: Vec<(u64, u64)> = Vec::new(); // (at, amount) of user:w
    for _ in 0..300 {
        let at = base + rng.u64(0..30 * hour);
        let amount = rng.u64(1..1_000);
        budget.settle(&settle(0, &["user:w", "tenant:w"], Money::from_nanos(amount), at)).await.unwrap();
        rows.push((at, amount));
    }
    let check = |rows: Vec<(u64, u64)>, budget: executus_store::SqliteBudgetStore| async move {
        for since in [
            0,
            base,
            base + 1,
            base + hour - 1,
            base + hour,
            base + 7 * hour + 12_345,
            base + 29 * hour + 1,
            base + 40 * hour,
        ] {
            let want: u64 = rows.iter().filter(|(at, _)| *at >= since).map(|(_, a)| a).sum();
            let got = budget.spent("user:w", since, T0).await.unwrap().spent;
            assert_eq!(got, Money::from_nanos(want), "spent since {since}");
        }
    };
    check(rows.clone(), budget.clone()).await;
    for cut in [base + 2 * hour + 17, base + 2 * hour + 17, base + 11 * hour, base + 11 * hour + 59_000] {
        let n = budget.prune(cut).await.unwrap();
        let before = rows.len();
        rows.retain(|(at, _)| *at >= cut);
        assert_eq!(n as usize, 2 * (before - rows.len()), "prune({cut}): a row per scope");
        check(rows.clone(), budget.clone()).await;
    }
    // Hour rows that reach zero are deleted, none go negative.
    let pool = sqlx::SqlitePool::connect(&tmp.url()).await.unwrap();
    let (hours, negative): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE amount <= 0) FROM budget_spend_hours WHERE scope = 'user:w'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let live_hours =
        rows.iter().map(|(at, _)| at / hour).collect::<std::collections::BTreeSet<_>>().len() as i64;
    assert_eq!((hours, negative), (live_hours, 0));
}

#[tokio::test]
async fn expire_and_prune_delete_in_small_batches() {
    let tmp = TempStore::new();
    let store = Store::open_with(&tmp.url(), StoreOptions::default().prune_batch(10)).await.unwrap();
    let budget = store.budget();
    for i in 0..35u64 {
        let mut r = reserve(&[("user:e", None), ("tenant:e", None)], Money::from_nanos(1), T0);
        r.expires_ms = T0 + 1 + i % 2;
        budget.try_reserve(&r).await.unwrap();
    }
    for i in 0..25u64 {
        budget.settle(&settle(0, &["user:e"], Money::from_nanos(2), T0 - 100 + i)).await.unwrap();
    }
    assert_eq!(budget.expire(T0 + 1).await.unwrap(), 18, "the ones expiring at T0 + 1");
    assert_eq!(budget.reservation_count().await.unwrap(), 17);
    assert_eq!(budget.spent("tenant:e", 0, T0 + 1).await.unwrap().reserved, Money::from_nanos(17));
    assert_eq!(budget.expire(T0 + 2).await.unwrap(), 17);
    assert_eq!(
        budget.spent("tenant:e", 0, T0).await.unwrap().reserved,
        Money::ZERO,
        "no hold outlives its reservation"
    );
    assert_eq!(budget.prune(T0 - 80).await.unwrap(), 20);
    assert_eq!(budget.spend_row_count().await.unwrap(), 5);
    assert_eq!(budget.spent("user:e", 0, T0).await.unwrap().spent, Money::from_nanos(10));
}
