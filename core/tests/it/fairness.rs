//! Load and fairness: many runs through 4 lanes from 3 tenants with skewed arrival. While
//! every tenant is backlogged, per-tenant throughput is fair (Jain's index >= 0.99); nothing
//! deadlocks; every table is empty again afterwards.
//!
//! `EXECUTUS_LOAD_RUNS` sets the number of runs (default 2,000 here; the reliability suite
//! runs 10,000).

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use executus::config::LaneSettings;
use executus::llm::fake::{FakeProvider, Outcome};
use executus::ports::{CheckpointStore, MemoryCheckpointStore, Ports};
use executus::{Identity, RunRequest, RuntimeConfig};
use tokio::time::Instant;

use crate::common::{agent, build, tools};

/// Jain's fairness index of `xs`: (sum x)^2 / (n * sum x^2); 1.0 is perfectly fair.
fn jain(xs: &[f64]) -> f64 {
    let sum: f64 = xs.iter().sum();
    let sq: f64 = xs.iter().map(|x| x * x).sum();
    if sq == 0.0 { 1.0 } else { sum * sum / (xs.len() as f64 * sq) }
}

#[tokio::test(start_paused = true)]
async fn tenants_share_lanes_fairly_under_skewed_load() {
    let total: usize = std::env::var("EXECUTUS_LOAD_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000);
    let fake = FakeProvider::new("fake");
    fake.fallback_for("m", Outcome::text("ok").after(Duration::from_millis(20)));
    let store = Arc::new(MemoryCheckpointStore::new());
    let mut config = RuntimeConfig { streaming: false, ..RuntimeConfig::default() };
    for lane in ["l0", "l1", "l2", "l3"] {
        config.lanes.insert(
            lane.into(),
            LaneSettings { capacity: std::num::NonZeroUsize::new(4).unwrap(), max_queue: total },
        );
    }
    let ports = Ports { checkpoints: store.clone(), ..Ports::default() };
    let rt = build(&fake, tools(Arc::new(AtomicUsize::new(0))), ports, config, None);

    // Skewed arrival: tenant a submits 60 %, b 30 %, c 10 %, interleaved as they come.
    let shares = [("a", 6), ("b", 3), ("c", 1)];
    let mut plan = Vec::with_capacity(total);
    while plan.len() < total {
        for (tenant, weight) in shares {
            for _ in 0..weight {
                if plan.len() < total {
                    plan.push(tenant);
                }
            }
        }
    }
    let started = Instant::now();
    let done: Arc<Mutex<Vec<(&'static str, Duration)>>> = Arc::default();
    let mut handles = Vec::with_capacity(total);
    // Each tenant spreads its runs over all four lanes (its k-th run goes to lane k mod 4).
    let mut per_tenant: HashMap<&str, usize> = HashMap::new();
    for (i, tenant) in plan.iter().enumerate() {
        let k = per_tenant.entry(tenant).or_default();
        let lane = format!("l{}", *k % 4);
        *k += 1;
        let request = RunRequest::new(agent(), format!("job {i}"))
            .identity(Identity::new(format!("u{i}"), *tenant))
            .lane(lane);
        let handle = rt.spawn_with(request).await.unwrap();
        let done = done.clone();
        let tenant = *tenant;
        handles.push(tokio::spawn(async move {
            let out = handle.outcome().await;
            assert!(out.is_completed(), "{:?}", out.end);
            done.lock().unwrap().push((tenant, started.elapsed()));
        }));
    }
    // No deadlock: everything finishes well within the (virtual) time it should take.
    let deadline = Duration::from_secs(3600);
    tokio::time::timeout(deadline, futures::future::join_all(handles)).await.expect("no deadlock");

    let done = done.lock().unwrap().clone();
    assert_eq!(done.len(), total);
    // The window in which all tenants were backlogged ends when the first tenant finished
    // its last run.
    let mut last: HashMap<&str, Duration> = HashMap::new();
    for (tenant, at) in &done {
        let e = last.entry(tenant).or_default();
        *e = (*e).max(*at);
    }
    let window = last.values().min().copied().unwrap();
    let throughput: Vec<f64> = shares
        .iter()
        .map(|(t, _)| done.iter().filter(|(tenant, at)| tenant == t && *at <= window).count() as f64)
        .collect();
    let index = jain(&throughput);
    println!(
        "runs {total}: backlogged window {window:?}, per-tenant completions {throughput:?}, Jain {index:.4}"
    );
    assert!(index >= 0.99, "Jain's index {index} < 0.99 for {throughput:?}");

    // Memory returns to baseline: nothing tracked, no actor, no stored checkpoint left.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(rt.tracked_runs(), 0);
    assert_eq!(rt.active_runs().await, 0);
    assert!(store.list_interrupted().await.unwrap().is_empty());
    for lane in ["l0", "l1", "l2", "l3"] {
        let stats = rt.lane(lane).await.unwrap().stats().await.unwrap();
        assert_eq!((stats.running, stats.queued_total()), (0, 0), "{stats:?}");
    }
}

#[test]
fn jain_index_reference_values() {
    assert!((jain(&[1.0, 1.0, 1.0]) - 1.0).abs() < 1e-12);
    assert!((jain(&[1.0, 0.0, 0.0]) - 1.0 / 3.0).abs() < 1e-12);
}
