//! Battery-store benchmark (not a timed test): audit appends per second and query latency
//! per query shape over a large trail, first page and deep page; budget reservation
//! throughput on one and on two `Store`s sharing the file, and what a window sum costs when
//! a scope has a week of heavy spend.
//!
//! ```text
//! cargo run --release -p executus-store --example battery_bench [audit-records] [spend-rows]
//! ```
//!
//! Every measurement uses a fresh database file in a temp dir with the store's defaults
//! (WAL, synchronous = NORMAL). Latencies are medians of repeated runs, measured through
//! the battery traits (what a host calls), JSON decoding included.

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use executus::llm::ManualClock;
use executus::llm::Usage;
use executus::ports::{AuditEvent, AuditRecord};
use executus::{Identity, RunId};
use executus_audit::{AuditCursor, AuditQuery, AuditStore};
use executus_budget::{BudgetStore, Money, ReserveOutcome, ReserveRequest, ScopeLimit, SettleRequest};
use executus_store::{Store, StoreOptions};

type BoxError = Box<dyn Error + Send + Sync>;

const DAY_MS: u64 = 86_400_000;
const NOW: u64 = 1_700_000_000_000;

fn audit_record(i: u64, records: u64, rng: &mut fastrand::Rng, runs: &[RunId]) -> AuditRecord {
    let start = NOW - 7 * DAY_MS;
    // A week-long trail, evenly spread, a few ms of jitter, 0.5% of records minutes late.
    let base = start + i * (7 * DAY_MS / records.max(1));
    let at_ms = if rng.u32(0..200) == 0 { base - rng.u64(120_000..1_800_000) } else { base - rng.u64(0..5) };
    let event = match rng.u32(0..100) {
        0..=39 => AuditEvent::ModelCall {
            step: rng.u32(1..20),
            provider: "openai".into(),
            model: "gpt-4o".into(),
            attempt: 1,
            latency_ms: rng.u64(200..4_000),
            usage: Usage {
                input_tokens: rng.u64(100..8_000),
                output_tokens: rng.u64(10..900),
                ..Usage::default()
            },
            error: None,
        },
        40..=79 => AuditEvent::ToolCall {
            step: rng.u32(1..20),
            tool: ["read_file", "grep", "shell"][rng.usize(0..3)].into(),
            call_id: format!("call_{i}"),
            decision: executus::ports::ToolDecision::Allow,
            rule: None,
            reason: None,
            is_error: rng.u32(0..20) == 0,
            latency_ms: rng.u64(1..500),
        },
        80..=87 => AuditEvent::RunStarted { model: "smart".into(), parent: None, resumed: false },
        88..=95 => AuditEvent::RunEnded {
            status: executus::RunStatus::Completed,
            reason: None,
            steps: rng.u32(1..20),
            usage: Usage::default(),
        },
        _ => AuditEvent::Failover {
            from: "openai/gpt-4o".into(),
            to: "anthropic/claude".into(),
            error: "503".into(),
        },
    };
    AuditRecord {
        at_ms,
        run_id: Some(runs[rng.usize(0..runs.len())]),
        identity: Identity::new(format!("user{}", rng.u32(0..200)), format!("tenant{}", rng.u32(0..5))),
        agent: Some("assistant".into()),
        event,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn time_query(
    audit: &dyn AuditStore,
    q: &AuditQuery,
    reps: usize,
) -> Result<(Duration, usize), BoxError> {
    let mut times = Vec::with_capacity(reps);
    let mut n = 0;
    for _ in 0..reps {
        let t = Instant::now();
        let page = audit.query(q).await?;
        times.push(t.elapsed());
        n = page.records.len();
    }
    Ok((median(times), n))
}

async fn audit_bench(records: u64) -> Result<(), BoxError> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench.db");
    let store =
        Store::open_path(&path, StoreOptions::default().clock(Arc::new(ManualClock::at(NOW)))).await?;
    let audit = store.audit();
    let mut rng = fastrand::Rng::with_seed(42);
    let runs: Vec<RunId> = (0..2_000).map(|_| RunId::new()).collect();
    let all: Vec<AuditRecord> = (0..records).map(|i| audit_record(i, records, &mut rng, &runs)).collect();
    let t = Instant::now();
    for batch in all.chunks(64) {
        audit.append(batch).await?;
    }
    let took = t.elapsed();
    store.checkpoint_wal().await?;
    let bytes = std::fs::metadata(&path)?.len();
    println!(
        "audit: {records} records appended in batches of 64: {:.0} records/s, {:.0} bytes per record on disk",
        records as f64 / took.as_secs_f64(),
        bytes as f64 / records as f64
    );

    let mid = all[all.len() / 2].at_ms;
    let deep = AuditCursor::after(records * 9 / 10);
    let shapes: Vec<(&str, AuditQuery)> = vec![
        ("everything", AuditQuery::new()),
        ("by run", AuditQuery::new().run(all[all.len() / 3].run_id.unwrap_or_default())),
        ("by user", AuditQuery::new().user("user7")),
        ("by tenant", AuditQuery::new().tenant("tenant3")),
        ("by kind (failover, 4%)", AuditQuery::new().kind("failover")),
        ("by two kinds", AuditQuery::new().kind("run_started").kind("run_ended")),
        ("time range (10 min)", AuditQuery::new().between(Some(mid), Some(mid + 600_000))),
        ("time range from (last day)", AuditQuery::new().between(Some(NOW - DAY_MS), None)),
        ("user + time range (1 day)", AuditQuery::new().user("user7").between(Some(mid), Some(mid + DAY_MS))),
    ];
    println!(
        "audit query latency, page of 100 (median of 15; first page / page after id {}):",
        deep.after_id
    );
    for (name, q) in shapes {
        let (first, n1) = time_query(&audit, &q, 15).await?;
        let (deep_t, n2) = time_query(&audit, &q.clone().after(Some(deep)), 15).await?;
        println!(
            "  {name:<28} {:>8.2} ms ({n1:>3} rows)   {:>8.2} ms ({n2:>3} rows)",
            first.as_secs_f64() * 1e3,
            deep_t.as_secs_f64() * 1e3
        );
    }
    let t = Instant::now();
    let report = store.prune_audit_before(NOW - 6 * DAY_MS).await?;
    println!(
        "audit retention: {} records older than 6 days deleted in {} transactions, {:.0} records/s",
        report.audit_records,
        report.batches,
        report.audit_records as f64 / t.elapsed().as_secs_f64()
    );
    store.close().await;
    Ok(())
}

fn reserve_request(user: &str, cap: Money, now: u64) -> ReserveRequest {
    ReserveRequest {
        scopes: vec![
            ScopeLimit { scope: format!("user:{user}"), limit: None },
            ScopeLimit { scope: "tenant:bench".into(), limit: Some(cap) },
        ],
        amount: Money::from_nanos(700_000),
        now_ms: now,
        window_start_ms: now - 7 * DAY_MS,
        expires_ms: now + 600_000,
    }
}

/// Reserve + settle pairs per second with `tasks` concurrent callers spread over `stores`.
async fn budget_throughput(stores: &[Store], tasks: usize, pairs_per_task: usize) -> Result<f64, BoxError> {
    let t = Instant::now();
    let mut handles = Vec::new();
    for i in 0..tasks {
        let budget = stores[i % stores.len()].budget();
        handles.push(tokio::spawn(async move {
            let user = format!("u{i}");
            for _ in 0..pairs_per_task {
                match budget.try_reserve(&reserve_request(&user, Money::MAX, NOW)).await? {
                    ReserveOutcome::Granted { reservation_id } => {
                        budget
                            .settle(&SettleRequest {
                                reservation_id,
                                scopes: vec![format!("user:{user}"), "tenant:bench".into()],
                                actual: Money::from_nanos(500_000),
                                now_ms: NOW,
                            })
                            .await?;
                    }
                    ReserveOutcome::Denied(d) => return Err(format!("denied: {d:?}").into()),
                }
            }
            Ok::<(), BoxError>(())
        }));
    }
    for h in handles {
        h.await??;
    }
    Ok((tasks * pairs_per_task) as f64 / t.elapsed().as_secs_f64())
}

async fn budget_bench(heavy: u64) -> Result<(), BoxError> {
    for (stores_n, tasks) in [(1, 1), (1, 16), (1, 64), (2, 64)] {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("budget.db");
        let mut stores = Vec::new();
        for _ in 0..stores_n {
            stores.push(Store::open_path(&path, StoreOptions::default()).await?);
        }
        let per_task = 3_000 / tasks.max(1);
        let rate = budget_throughput(&stores, tasks, per_task.max(20)).await?;
        println!(
            "budget: {tasks:>2} concurrent callers on {stores_n} store(s): {rate:.0} reserve+settle pairs/s"
        );
        for s in stores {
            s.close().await;
        }
    }

    // A tenant with a heavy week: `heavy` settled calls spread over 7 days.
    let dir = tempfile::tempdir()?;
    let store = Store::open_path(dir.path().join("heavy.db"), StoreOptions::default()).await?;
    let budget = store.budget();
    let mut rng = fastrand::Rng::with_seed(3);
    let t = Instant::now();
    for i in 0..heavy {
        let at = NOW - 7 * DAY_MS + rng.u64(0..7 * DAY_MS);
        budget
            .settle(&SettleRequest {
                reservation_id: 0,
                scopes: vec![format!("user:u{}", i % 500), "tenant:bench".into()],
                actual: Money::from_nanos(rng.u64(1_000..2_000_000)),
                now_ms: at,
            })
            .await?;
    }
    println!(
        "budget: {heavy} settles (one transaction each): {:.0} settles/s",
        heavy as f64 / t.elapsed().as_secs_f64()
    );
    let mut times = Vec::new();
    for k in 0..50u64 {
        let t = Instant::now();
        let out = budget.try_reserve(&reserve_request("heavy", Money::MAX, NOW + k * 7_919)).await?;
        times.push(t.elapsed());
        if let ReserveOutcome::Granted { reservation_id } = out {
            budget
                .settle(&SettleRequest { reservation_id, scopes: vec![], actual: Money::ZERO, now_ms: NOW })
                .await?;
        }
    }
    println!(
        "budget: try_reserve against a tenant with {heavy} spend rows in its window: {:.2} ms median (hourly rollup)",
        median(times).as_secs_f64() * 1e3
    );
    // For comparison: the plain sum over the detail rows the rollup avoids.
    let pool = sqlx::SqlitePool::connect_with(
        sqlx::sqlite::SqliteConnectOptions::new().filename(dir.path().join("heavy.db")).read_only(true),
    )
    .await?;
    let mut times = Vec::new();
    for _ in 0..15 {
        let t = Instant::now();
        let _: Option<i64> = sqlx::query_scalar(
            "SELECT sum(amount) FROM budget_spend WHERE scope = 'tenant:bench' AND at_ms >= ?1",
        )
        .bind((NOW - 7 * DAY_MS) as i64)
        .fetch_one(&pool)
        .await?;
        times.push(t.elapsed());
    }
    println!(
        "budget: (a plain window sum over those detail rows would take {:.2} ms, under the write lock)",
        median(times).as_secs_f64() * 1e3
    );
    pool.close().await;
    store.close().await;
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let records = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(200_000u64);
    let heavy = std::env::args().nth(2).map(|a| a.parse()).transpose()?.unwrap_or(200_000u64);
    audit_bench(records).await?;
    budget_bench(heavy).await?;
    Ok(())
}
