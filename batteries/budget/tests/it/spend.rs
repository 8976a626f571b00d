//! `SpendBudget` on its own, on a manual clock: expiry, window rolling, pricing at settle,
//! store failures.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use executus::Identity;
use executus::llm::ManualClock;
use executus::llm::Usage;
use executus::ports::{Budget, BudgetDenied, Reservation};
use executus_budget::{
    BudgetSettings, BudgetStore, Caps, MemoryBudgetStore, Money, Price, PriceTable, SpendBudget,
};

use crate::common::{BrokenStore, SettleFails, spend};

const T0: u64 = 1_700_000_000_000;

/// `cheap/*` at $1/M in and out, `dear/*` at $10/M in and out.
fn prices() -> PriceTable {
    PriceTable::new()
        .with("cheap/*", Price::per_million(1.0, 1.0))
        .unwrap()
        .with("dear/*", Price::per_million(10.0, 10.0))
        .unwrap()
}

/// A budget capping every user at `cap`, on a manual clock at `T0`.
fn budget(cap: Money, store: Arc<dyn BudgetStore>) -> (SpendBudget, ManualClock) {
    let clock = ManualClock::at(T0);
    let settings = BudgetSettings::default().with_prices(prices()).with_caps(Caps::none().default_user(cap));
    (SpendBudget::new(settings, store).with_clock(Arc::new(clock.clone())), clock)
}

fn usage(input: u64, output: u64) -> Usage {
    Usage { input_tokens: input, output_tokens: output, ..Usage::default() }
}

#[tokio::test]
async fn the_dearest_target_is_reserved_and_the_answering_model_is_charged() {
    let store = Arc::new(MemoryBudgetStore::new());
    let (b, _) = budget(Money::usd(1.0), store.clone());
    let r = b.reserve(&spend("ann", "t", &["cheap/a", "dear/b"], 1000, 1000)).await.unwrap();
    // 2000 tokens at $10/M.
    assert_eq!(r.amount, 0.02);
    assert_eq!(store.spent("user:ann", 0, T0).await.unwrap().reserved, Money::usd(0.02));
    b.settle(r, &usage(100, 100), "cheap", "a").await;
    let t = store.spent("user:ann", 0, T0).await.unwrap();
    assert_eq!((t.spent, t.reserved), (Money::usd(0.0002), Money::ZERO));
}

#[tokio::test]
async fn an_unpriced_answering_model_is_charged_at_the_dearest_target_price() {
    let store = Arc::new(MemoryBudgetStore::new());
    let (b, _) = budget(Money::usd(1.0), store.clone());
    let r = b.reserve(&spend("ann", "t", &["cheap/a", "dear/b"], 10, 10)).await.unwrap();
    // The provider reported a model name the table does not know.
    b.settle(r, &usage(1000, 0), "mystery", "model-2025").await;
    assert_eq!(store.spent("user:ann", 0, T0).await.unwrap().spent, Money::usd(0.01));
}

#[tokio::test]
async fn a_failed_call_releases_its_reservation_and_a_second_settle_is_ignored() {
    let store = Arc::new(MemoryBudgetStore::new());
    let (b, _) = budget(Money::usd(1.0), store.clone());
    let r = b.reserve(&spend("ann", "t", &["dear/b"], 1000, 1000)).await.unwrap();
    b.settle(r.clone(), &Usage::default(), "", "").await;
    assert_eq!(store.spent("user:ann", 0, T0).await.unwrap(), Default::default());
    b.settle(r, &usage(1000, 1000), "dear", "b").await;
    assert_eq!(store.spent("user:ann", 0, T0).await.unwrap().spent, Money::ZERO, "settled once only");
    // A reservation this budget never granted changes nothing either.
    b.settle(Reservation { id: 4242, amount: 1.0 }, &usage(1, 1), "dear", "b").await;
    assert_eq!(store.spend_rows(), 0);
}

#[tokio::test]
async fn an_expired_reservation_stops_holding_money_and_a_late_settle_still_counts() {
    let store = Arc::new(MemoryBudgetStore::new());
    let (b, clock) = budget(Money::usd(0.03), store.clone());
    // $0.02 reserved and never settled: the process "crashed" mid-call.
    let leaked = b.reserve(&spend("ann", "t", &["dear/b"], 1000, 1000)).await.unwrap();
    let denied = b.reserve(&spend("ann", "t", &["dear/b"], 1000, 1000)).await.unwrap_err();
    let n = numbers(&denied);
    assert_eq!((n.0, n.2, n.4), ("user:ann", 0.02, 0.03));

    clock.advance(Duration::from_secs(600) - Duration::from_millis(1));
    assert!(b.reserve(&spend("ann", "t", &["dear/b"], 1000, 1000)).await.is_err(), "held until the TTL");
    clock.advance(Duration::from_millis(1));
    let fresh = b.reserve(&spend("ann", "t", &["dear/b"], 1000, 1000)).await.unwrap();
    // Expired rows hold nothing already; housekeeping only deletes them.
    assert_eq!(store.reservations(), 2);
    assert_eq!(b.housekeeping().await.unwrap().expired, 1);
    assert_eq!(store.reservations(), 1);
    b.settle(fresh, &usage(500, 500), "dear", "b").await;

    // The "crashed" call comes back after all: its spend is recorded.
    b.settle(leaked, &usage(1000, 0), "dear", "b").await;
    let status = b.status(&Identity::new("ann", "t")).await.unwrap();
    assert_eq!(status[0].spent, Money::usd(0.02));
    assert_eq!(status[0].reserved, Money::ZERO);
}

#[tokio::test]
async fn spend_older_than_the_window_no_longer_counts() {
    let store = Arc::new(MemoryBudgetStore::new());
    let (b, clock) = budget(Money::usd(0.03), store.clone());
    let r = b.reserve(&spend("ann", "t", &["dear/b"], 1000, 1000)).await.unwrap();
    b.settle(r, &usage(1000, 1000), "dear", "b").await;
    let denied = b.reserve(&spend("ann", "t", &["dear/b"], 1000, 1000)).await.unwrap_err();
    let n = numbers(&denied);
    assert_eq!((n.1, n.2, n.3), (0.02, 0.0, 0.02));

    let week = Duration::from_secs(7 * 24 * 3600);
    clock.advance(week);
    assert!(b.reserve(&spend("ann", "t", &["dear/b"], 1000, 1000)).await.is_err(), "still inside the window");
    clock.advance(Duration::from_millis(1));
    let r = b.reserve(&spend("ann", "t", &["dear/b"], 1000, 1000)).await.unwrap();
    b.settle(r, &Usage::default(), "", "").await;
    assert_eq!(store.spend_rows(), 2, "old rows stay until housekeeping; they just do not count");
    let swept = b.housekeeping().await.unwrap();
    assert_eq!(swept.pruned, 2, "one row per scope (user and tenant)");
    assert_eq!(store.spend_rows(), 0);
    assert_eq!(b.status(&Identity::new("ann", "t")).await.unwrap()[0].spent, Money::ZERO);
}

#[tokio::test]
async fn caps_apply_per_user_and_per_tenant_and_overrides_win() {
    let store = Arc::new(MemoryBudgetStore::new());
    let clock = ManualClock::at(T0);
    let caps = Caps::none()
        .default_user(Money::usd(0.03))
        .user("vip", Some(Money::usd(1.0)))
        .user("root", None)
        .default_tenant(Money::usd(0.05));
    let settings = BudgetSettings::default().with_prices(prices()).with_caps(caps);
    let b = SpendBudget::new(settings, store).with_clock(Arc::new(clock));
    let req = |user: &str, tenant: &str| spend(user, tenant, &["dear/b"], 1000, 1000);
    b.reserve(&req("vip", "t")).await.unwrap();
    b.reserve(&req("vip", "t")).await.unwrap();
    // vip's own cap is fine, but the tenant holds 0.04 of 0.05 now.
    let denied = b.reserve(&req("vip", "t")).await.unwrap_err();
    let n = numbers(&denied);
    assert_eq!((n.0, n.4), ("tenant:t", 0.05));
    let denied = b.reserve(&req("root", "t")).await.unwrap_err();
    assert_eq!(numbers(&denied).0, "tenant:t", "an unlimited user is still inside a capped tenant");
    // A default user in another tenant: two calls, then the user cap.
    b.reserve(&req("bob", "u")).await.unwrap();
    let denied = b.reserve(&req("bob", "u")).await.unwrap_err();
    let n = numbers(&denied);
    assert_eq!((n.0, n.4), ("user:bob", 0.03));
}

#[tokio::test]
async fn a_broken_store_fails_closed() {
    let store = Arc::new(BrokenStore::default());
    let (b, _) = budget(Money::usd(1.0), store.clone());
    let denied = b.reserve(&spend("ann", "t", &["dear/b"], 10, 10)).await.unwrap_err();
    assert!(matches!(denied, BudgetDenied::StoreUnavailable { .. }), "{denied:?}");
    assert!(b.status(&Identity::new("ann", "t")).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_failing_settle_is_retried() {
    let store = Arc::new(SettleFails {
        inner: MemoryBudgetStore::new(),
        settle_failures: 2,
        settles: Default::default(),
    });
    let (b, _) = budget(Money::usd(1.0), store.clone());
    let r = b.reserve(&spend("ann", "t", &["dear/b"], 10, 10)).await.unwrap();
    b.settle(r, &usage(100, 0), "dear", "b").await;
    assert_eq!(store.settles.load(Ordering::SeqCst), 3);
    assert_eq!(store.inner.spent("user:ann", 0, T0).await.unwrap().spent, Money::usd(0.001));

    let store = Arc::new(SettleFails {
        inner: MemoryBudgetStore::new(),
        settle_failures: 100,
        settles: Default::default(),
    });
    let (b, _) = budget(Money::usd(1.0), store.clone());
    let r = b.reserve(&spend("ann", "t", &["dear/b"], 10, 10)).await.unwrap();
    b.settle(r, &usage(100, 0), "dear", "b").await;
    assert_eq!(store.settles.load(Ordering::SeqCst), 3, "two retries, then reported");
}

#[tokio::test]
async fn estimates_name_the_unpriced_target() {
    let (b, _) = budget(Money::usd(1.0), Arc::new(MemoryBudgetStore::new()));
    assert_eq!(b.estimate(&spend("a", "t", &["cheap/x", "dear/y"], 100, 100)).unwrap(), Money::usd(0.002));
    let err = b.estimate(&spend("a", "t", &["cheap/x", "nope/z"], 100, 100)).unwrap_err();
    assert_eq!(err.target, "nope/z");
    let denied = b.reserve(&spend("a", "t", &[], 100, 100)).await.unwrap_err();
    assert_eq!(denied, BudgetDenied::Unpriced { model: "(no targets)".into() });
}

/// The numbers of a refusal for an exhausted cap: (scope, spent, reserved, requested, cap).
fn numbers(d: &BudgetDenied) -> (&str, f64, f64, f64, f64) {
    match d {
        BudgetDenied::Exhausted { scope, spent, reserved, requested, cap, .. } => {
            (scope.as_str(), *spent, *reserved, *requested, *cap)
        }
        other => panic!("expected an exhausted cap, got {other:?}"),
    }
}
