//! `executus-bench-allocs --mock PATH`: heap allocations per step, counted by a wrapping
//! global allocator — in a binary of its own, so that the allocator's counting never touches
//! the timed benchmarks of `executus-bench`.
//!
//! It starts the mock as a child process (`PATH mock`, the main bench binary: the mock's own
//! allocations are not counted), runs the P1 agent serially (concurrency 1) through executus,
//! through the provider layer alone (`executus-llm`, a hand-written loop) and through the bare
//! `reqwest` loop replaying executus's bodies, and prints one JSON line: allocations,
//! reallocations and bytes allocated per run of each. A run is three steps (two tool calls,
//! then the answer).
//!
//! `executus-bench-allocs p3-worker ...` is P3's worker (`p3/worker.rs`) with the live heap
//! counted beside the resident set.

#[path = "../p1/engines.rs"]
#[allow(dead_code)]
mod engines;
#[path = "../harness.rs"]
#[allow(dead_code)]
mod harness;
#[path = "../mock/mod.rs"]
#[allow(dead_code)]
mod mock;
#[path = "../p3/worker.rs"]
mod p3_worker;
#[path = "../sys.rs"]
#[allow(dead_code)]
mod sys;

use std::alloc::System;
use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Per-run counts of one contender.
#[derive(Debug, Serialize)]
struct Counts {
    runs: usize,
    ok: usize,
    allocations_per_run: f64,
    reallocations_per_run: f64,
    bytes_per_run: f64,
}

/// What the binary prints.
#[derive(Debug, Serialize)]
struct Report {
    executus: Counts,
    llm: Counts,
    reqwest: Counts,
}

fn counts(runs: usize, ok: usize, region: &Region<'_, System>) -> Counts {
    let stats = region.change();
    let n = runs.max(1) as f64;
    Counts {
        runs,
        ok,
        allocations_per_run: stats.allocations as f64 / n,
        reallocations_per_run: stats.reallocations as f64 / n,
        bytes_per_run: stats.bytes_allocated as f64 / n,
    }
}

/// Bytes of heap in use now: allocated minus freed (reallocations count their growth).
fn heap_in_use() -> u64 {
    let s = GLOBAL.stats();
    let live = s.bytes_allocated as i128 - s.bytes_deallocated as i128 + s.bytes_reallocated as i128;
    u64::try_from(live.max(0)).unwrap_or(u64::MAX)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    // `p3-worker ...`: P3's worker with its live heap counted (see `p3/worker.rs`).
    if args.get(1).is_some_and(|a| a == "p3-worker") {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        return runtime.block_on(p3_worker::worker(&args[2..], Some(heap_in_use)));
    }
    let get = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let mock_exe = get("--mock").context("--mock PATH (the executus-bench binary) is required")?;
    let runs: usize = get("--runs").and_then(|v| v.parse().ok()).unwrap_or(500);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = runtime.block_on(measure(mock_exe, runs))?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

async fn measure(mock_exe: String, runs: usize) -> anyhow::Result<Report> {
    let config = mock::MockConfig { capture_key: Some(0), ..mock::MockConfig::default() };
    let mock = mock::child::ChildMock::spawn_exe(std::path::Path::new(&mock_exe), &config).await?;
    let url = mock.url();
    let rt = harness::runtime(&url, 1, false)?;
    let first = rt.run(harness::agent(), harness::input(0)).await?;
    anyhow::ensure!(harness::is_expected(&first, 3), "the warm-up run did not complete: {:?}", first.end);
    let template = Arc::new(engines::Template::from_captured(&mock.snapshot().await?.captured, 0)?);
    let client = reqwest::Client::builder().no_proxy().build()?;
    let registry = harness::registry(&url)?;
    // Warm-up: connections pooled, lazily built tables built, for each contender.
    for key in 1..=50 {
        rt.run(harness::agent(), harness::input(key)).await?;
    }
    engines::reqwest_batch(&client, &url, &template, 100..150, 1).await?;
    engines::llm_batch(&registry, 200..250, 1).await?;

    let keys = 1_000_000..1_000_000 + runs as u64;
    let region = Region::new(GLOBAL);
    let mut ok = 0;
    for key in keys.clone() {
        ok += usize::from(harness::is_expected(&rt.run(harness::agent(), harness::input(key)).await?, 3));
    }
    let executus = counts(runs, ok, &region);

    let region = Region::new(GLOBAL);
    let batch = engines::llm_batch(&registry, 2_000_000..2_000_000 + runs as u64, 1).await?;
    let llm = counts(runs, batch.ok, &region);

    let region = Region::new(GLOBAL);
    let batch =
        engines::reqwest_batch(&client, &url, &template, 3_000_000..3_000_000 + runs as u64, 1).await?;
    let reqwest = counts(runs, batch.ok, &region);
    Ok(Report { executus, llm, reqwest })
}
