//! The budget through the real core runtime over the fake provider.

use std::sync::Arc;
use std::time::Duration;

use executus::llm::fake::{FakeProvider, Outcome};
use executus::llm::{Role, Usage};
use executus::ports::BudgetDenied;
use executus::ports::audit::now_ms;
use executus::{Identity, RunEnd, RunRequest, RunnableAgent};
use executus_budget::{
    BudgetSettings, BudgetStore, Caps, MemoryBudgetStore, Money, Price, PriceTable, SpendBudget, UnknownModel,
};

use crate::common::runtime;

/// 410 characters of prompt: the core estimates ceil(410 / 4) = 103 input tokens.
const PROMPT_CHARS: usize = 400;
const SYSTEM: &str = "You count.";
const EST_INPUT: u64 = 103;
const MAX_OUTPUT: u32 = 200;
/// What every fake answer reports.
const USAGE: Usage = Usage {
    input_tokens: 100,
    output_tokens: 20,
    cache_read_tokens: 0,
    cache_write_tokens: 0,
    reasoning_tokens: 0,
};

/// $1/M input, $10/M output for every model of provider `fake`.
fn prices() -> PriceTable {
    PriceTable::new().with("fake/*", Price::per_million(1.0, 10.0)).unwrap()
}

/// Reservation per call: 103 x $1/M + 200 x $10/M.
fn reservation() -> Money {
    Money::from_nanos((EST_INPUT + u64::from(MAX_OUTPUT) * 10) * 1000)
}

/// Actual cost per call: 100 x $1/M + 20 x $10/M.
fn actual() -> Money {
    Money::from_nanos((100 + 20 * 10) * 1000)
}

fn agent(model: &str) -> RunnableAgent {
    let mut agent = RunnableAgent::new("counter", SYSTEM, model);
    agent.max_tokens = Some(MAX_OUTPUT);
    agent
}

fn prompt(i: usize) -> String {
    let head = format!("run {i:03} ");
    format!("{head}{}", "x".repeat(PROMPT_CHARS - head.len()))
}

fn budget(caps: Caps, store: Arc<MemoryBudgetStore>) -> Arc<SpendBudget> {
    Arc::new(SpendBudget::new(BudgetSettings::default().with_prices(prices()).with_caps(caps), store))
}

/// 100 concurrent runs, one tenant cap: settled spend never passes the cap, accounting is
/// exact, and runs past the cap end `budget_denied` with their transcript.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_runs_never_overshoot_one_cap() {
    let fake = FakeProvider::new("fake");
    fake.fallback(Outcome::text("ok").with_usage(USAGE));
    // Room for 35 calls at their real cost, or 4 at their reservation.
    let cap = Money::from_nanos(10_500_000);
    let store = Arc::new(MemoryBudgetStore::new());
    let caps = Caps::none().default_user(Money::usd(1.0)).tenant("acme", Some(cap));
    let rt = runtime(&[&fake], budget(caps, store.clone()), 100);

    let mut handles = Vec::new();
    for i in 0..100 {
        let req =
            RunRequest::new(agent("fake/m"), prompt(i)).identity(Identity::new(format!("u{i}"), "acme"));
        handles.push(rt.spawn_with(req).await.unwrap());
    }
    let mut completed = 0u64;
    let mut denied = 0u64;
    for (i, h) in handles.into_iter().enumerate() {
        let out = h.outcome().await;
        match &out.end {
            RunEnd::Completed => {
                completed += 1;
                let user = store.spent(&format!("user:u{i}"), 0, now_ms()).await.unwrap();
                assert_eq!(user.spent, actual(), "run {i} is charged its real cost");
            }
            RunEnd::BudgetDenied(BudgetDenied::Exhausted {
                scope,
                spent,
                reserved,
                requested,
                cap: limit,
                ..
            }) => {
                denied += 1;
                assert_eq!(out.status(), "budget_denied");
                assert_eq!(scope, "tenant:acme");
                assert_eq!(*limit, cap.as_usd());
                assert_eq!(*requested, reservation().as_usd());
                assert!(spent + reserved + requested > *limit, "{:?}", out.end);
                // The transcript so far is kept: the input, and no answer.
                assert_eq!(out.messages.len(), 1);
                assert_eq!(out.messages[0].role, Role::User);
                assert!(format!("{:?}", out.messages[0]).contains(&format!("run {i:03}")));
                assert_eq!(out.steps, 0);
            }
            other => panic!("run {i} ended {other:?}"),
        }
    }
    assert_eq!(completed + denied, 100);
    assert!(completed >= 4, "at least the first reservations fit: {completed}");
    assert!(denied > 0, "100 calls cannot fit: {denied}");
    let tenant = store.spent("tenant:acme", 0, now_ms()).await.unwrap();
    assert_eq!(tenant.reserved, Money::ZERO, "every reservation was settled");
    assert_eq!(tenant.spent.nanos(), completed * actual().nanos(), "settled spend is exact");
    assert!(tenant.spent <= cap.saturating_add(reservation()), "overshoot beyond one reservation");
    assert!(tenant.spent <= cap, "with costs under their reservations there is no overshoot at all");
    assert_eq!(store.reservations(), 0);
    rt.shutdown(Duration::from_secs(1)).await;
}

/// With every answer delayed, all 100 runs reserve while the first calls are in flight:
/// exactly as many as fit at their reservation go through. Then settling frees the
/// over-estimate, so a later run fits again.
#[tokio::test(start_paused = true)]
async fn reservations_in_flight_hold_the_cap_and_settle_corrects_the_estimate() {
    let fake = FakeProvider::new("fake");
    fake.fallback(Outcome::text("ok").with_usage(USAGE).after(Duration::from_secs(2)));
    let cap = Money::from_nanos(10_500_000);
    let store = Arc::new(MemoryBudgetStore::new());
    let rt = runtime(&[&fake], budget(Caps::none().tenant("acme", Some(cap)), store.clone()), 100);

    let mut handles = Vec::new();
    for i in 0..100 {
        let req =
            RunRequest::new(agent("fake/m"), prompt(i)).identity(Identity::new(format!("u{i}"), "acme"));
        handles.push(rt.spawn_with(req).await.unwrap());
    }
    let mut completed = 0;
    for h in handles {
        let out = h.outcome().await;
        match &out.end {
            RunEnd::Completed => completed += 1,
            RunEnd::BudgetDenied(BudgetDenied::Exhausted { spent, reserved, .. }) => {
                // Denied while four reservations were held and nothing was spent yet.
                assert_eq!(*spent, 0.0);
                assert_eq!(*reserved, Money::from_nanos(reservation().nanos() * 4).as_usd());
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(completed, 4, "floor(10.5M / 2.103M) reservations fit at once");
    assert_eq!(fake.calls(), 4, "denied runs never reached the model");
    let tenant = store.spent("tenant:acme", 0, now_ms()).await.unwrap();
    assert_eq!(tenant.spent.nanos(), 4 * actual().nanos(), "settled at the real cost, not the estimate");
    assert_eq!(tenant.reserved, Money::ZERO);

    let req = RunRequest::new(agent("fake/m"), prompt(100)).identity(Identity::new("late", "acme"));
    let out = rt.spawn_with(req).await.unwrap().outcome().await;
    assert_eq!(out.end, RunEnd::Completed, "the freed over-estimate makes room again");
    rt.shutdown(Duration::from_secs(1)).await;
}

/// A multi-step run is charged per model call, each at its real cost.
#[tokio::test]
async fn each_step_is_reserved_and_settled() {
    let fake = FakeProvider::new("fake");
    let call = executus::llm::ToolCall {
        id: "c1".into(),
        name: "missing_tool".into(),
        args: serde_json::json!({}),
        signature: None,
    };
    fake.push("m", Outcome::tool_calls([call]).with_usage(USAGE));
    fake.push("m", Outcome::text("done").with_usage(USAGE));
    let store = Arc::new(MemoryBudgetStore::new());
    let b = budget(Caps::none().default_user(Money::usd(1.0)), store.clone());
    let rt = runtime(&[&fake], b.clone(), 4);
    let req = RunRequest::new(agent("fake/m"), "go").identity(Identity::new("ann", "acme"));
    let out = rt.spawn_with(req).await.unwrap().outcome().await;
    assert_eq!(out.end, RunEnd::Completed, "{out:?}");
    assert_eq!(out.steps, 2);
    let status = b.status(&Identity::new("ann", "acme")).await.unwrap();
    assert_eq!(status[0].scope, "user:ann");
    assert_eq!(status[0].spent.nanos(), 2 * actual().nanos());
    assert_eq!(status[0].reserved, Money::ZERO);
    assert_eq!(status[0].limit, Some(Money::usd(1.0)));
    assert_eq!(status[1].scope, "tenant:acme");
    assert_eq!(status[1].spent.nanos(), 2 * actual().nanos(), "uncapped scopes are tracked too");
    assert_eq!(status[1].limit, None);
}

/// A chain that could fail over to an unpriced model is refused for capped callers,
/// allowed for uncapped ones, and priced by the default when one is configured.
#[tokio::test]
async fn unknown_models_are_denied_when_capped_unless_a_default_price_is_set() {
    let fake = FakeProvider::new("fake");
    let other = FakeProvider::new("other");
    fake.fallback(Outcome::text("ok").with_usage(USAGE));
    other.fallback(Outcome::text("ok").with_usage(USAGE));
    let spec = "fake/m, other/x";
    let caps = Caps::none().default_user(Money::usd(1.0)).user("root", None);

    let store = Arc::new(MemoryBudgetStore::new());
    let rt = runtime(&[&fake, &other], budget(caps.clone(), store.clone()), 4);
    let capped = rt
        .spawn_with(RunRequest::new(agent(spec), "hi").identity(Identity::new("ann", "t")))
        .await
        .unwrap()
        .outcome()
        .await;
    match &capped.end {
        RunEnd::BudgetDenied(d) => assert_eq!(*d, BudgetDenied::Unpriced { model: "other/x".into() }),
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.calls(), 0);
    let root = rt
        .spawn_with(RunRequest::new(agent("other/x"), "hi").identity(Identity::new("root", "t")))
        .await
        .unwrap()
        .outcome()
        .await;
    assert_eq!(root.end, RunEnd::Completed, "uncapped callers may use unpriced models");
    assert_eq!(store.spent("user:root", 0, now_ms()).await.unwrap().spent, Money::ZERO);

    let settings = BudgetSettings::default()
        .with_prices(prices())
        .with_caps(caps)
        .with_unknown_model(UnknownModel::Price(Price::per_million(100.0, 100.0)));
    let store = Arc::new(MemoryBudgetStore::new());
    let rt = runtime(&[&fake, &other], Arc::new(SpendBudget::new(settings, store.clone())), 4);
    let out = rt
        .spawn_with(RunRequest::new(agent("other/x"), "hi").identity(Identity::new("ann", "t")))
        .await
        .unwrap()
        .outcome()
        .await;
    assert_eq!(out.end, RunEnd::Completed);
    // 120 tokens at $100/M.
    assert_eq!(store.spent("user:ann", 0, now_ms()).await.unwrap().spent, Money::from_nanos(12_000_000));
}
