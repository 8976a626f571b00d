//! `executus-budget-worker`: a second OS process for the cross-process budget test
//! (`tests/it/budget_processes.rs`).
//!
//! It opens the SQLite store at `<db>`, builds the budget battery's `SpendBudget` over the
//! store's `BudgetStore` with one price (`test/model`: 1 USD per million input tokens, 3 per
//! million output tokens) and a cap of `<cap-nanos>` on tenant `shared`, prints `READY`, and
//! waits for a line on stdin. Then `<tasks>` concurrent "runs" each loop: reserve a call of
//! 100 input tokens and at most 200 output tokens (700 000 nano-dollars), hold it across a
//! short simulated call, settle it — with exactly the reserved usage (`exact`) or a random
//! output of 0 to 200 tokens (`random`). A run stops when the budget refuses it while no
//! reservation is in flight anywhere (so no later call can fit either). At the end it prints
//! `DONE grants=<n> denials=<n> settled=<nano-dollars>`.
//!
//! ```text
//! executus-budget-worker <db> <tasks> <cap-nanos> <exact|random> <seed>
//! ```

use std::io::BufRead as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use executus::llm::Usage;
use executus::ports::{Budget, BudgetDenied, SpendRequest};
use executus::{Identity, RunId};
use executus_budget::{BudgetSettings, Caps, Money, Price, PriceTable, SpendBudget};
use executus_store::{Store, StoreOptions};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Prompt tokens of every call.
const INPUT_TOKENS: u64 = 100;
/// Output cap of every call.
const MAX_OUTPUT_TOKENS: u64 = 200;

struct Args {
    db: String,
    tasks: usize,
    cap: Money,
    exact: bool,
    seed: u64,
}

fn parse() -> Result<Args, BoxError> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 {
        return Err("usage: executus-budget-worker <db> <tasks> <cap-nanos> <exact|random> <seed>".into());
    }
    let exact = match args[4].as_str() {
        "exact" => true,
        "random" => false,
        other => return Err(format!("mode must be exact or random, not {other:?}").into()),
    };
    Ok(Args {
        db: args[1].clone(),
        tasks: args[2].parse()?,
        cap: Money::from_nanos(args[3].parse()?),
        exact,
        seed: args[5].parse()?,
    })
}

#[derive(Default)]
struct Tally {
    grants: AtomicU64,
    denials: AtomicU64,
    settled: AtomicU64,
}

async fn run(args: Args) -> Result<(), BoxError> {
    let store = Store::open_path(Path::new(&args.db), StoreOptions::default()).await?;
    let prices = PriceTable::new().with("test/model", Price::per_million(1.0, 3.0))?;
    let settings =
        BudgetSettings::default().with_prices(prices).with_caps(Caps::none().default_tenant(args.cap));
    let budget = Arc::new(SpendBudget::new(settings, Arc::new(store.budget())));
    let price = Price::per_million(1.0, 3.0);
    println!("READY");
    // Wait for the test's go, so every process starts reserving at once.
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;

    let tally = Arc::new(Tally::default());
    let pid = std::process::id();
    let mut tasks = Vec::new();
    for t in 0..args.tasks {
        let (budget, tally) = (budget.clone(), tally.clone());
        let mut rng = fastrand::Rng::with_seed(args.seed.wrapping_mul(1_000).wrapping_add(t as u64));
        let exact = args.exact;
        tasks.push(tokio::spawn(async move {
            let identity = Identity::new(format!("p{pid}-t{t}"), "shared");
            loop {
                let request = SpendRequest {
                    run_id: RunId::new(),
                    identity: identity.clone(),
                    targets: vec!["test/model".into()],
                    input_tokens: INPUT_TOKENS,
                    max_output_tokens: MAX_OUTPUT_TOKENS,
                };
                match budget.reserve(&request).await {
                    Ok(reservation) => {
                        tally.grants.fetch_add(1, Ordering::SeqCst);
                        // The call in flight: the reservation is held meanwhile.
                        if rng.bool() {
                            tokio::time::sleep(Duration::from_micros(rng.u64(100..2_000))).await;
                        } else {
                            tokio::task::yield_now().await;
                        }
                        let output = if exact { MAX_OUTPUT_TOKENS } else { rng.u64(0..=MAX_OUTPUT_TOKENS) };
                        let usage =
                            Usage { input_tokens: INPUT_TOKENS, output_tokens: output, ..Usage::default() };
                        tally.settled.fetch_add(price.cost(&usage).nanos(), Ordering::SeqCst);
                        budget.settle(reservation, &usage, "test", "model").await;
                    }
                    Err(denied @ (BudgetDenied::StoreUnavailable { .. } | BudgetDenied::Unpriced { .. })) => {
                        return Err(format!("the budget refused for another reason than the cap: {denied}"));
                    }
                    Err(denied) => {
                        tally.denials.fetch_add(1, Ordering::SeqCst);
                        if matches!(denied, BudgetDenied::Exhausted { reserved, .. } if reserved == 0.0) {
                            return Ok(()); // nothing in flight anywhere: no call can fit again
                        }
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    println!(
        "DONE grants={} denials={} settled={}",
        tally.grants.load(Ordering::SeqCst),
        tally.denials.load(Ordering::SeqCst),
        tally.settled.load(Ordering::SeqCst)
    );
    store.close().await;
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("executus-budget-worker: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("executus-budget-worker: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
