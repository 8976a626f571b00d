//! The P3 worker (`p3-worker`): one contender's batch of runs held in flight in a process of
//! its own, with its resident set sampled, and its live heap too when the binary counts its
//! allocations (`executus-bench-allocs p3-worker`, which P3 uses: a wrapping global allocator
//! that the timed benchmarks never run under).
//!
//! Shared by the bench binary and `executus-bench-allocs` (included by path), so it uses only
//! the harness and `sys`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use executus::RunRequest;
use serde::{Deserialize, Serialize};

use crate::harness;
use crate::sys;

/// Bytes of heap in use now (allocated minus freed), when the binary counts them.
pub type HeapInUse = fn() -> u64;

/// What a worker reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerResult {
    /// Runs started.
    pub runs: usize,
    /// Runs that ended as expected.
    pub ok: usize,
    /// RSS before the runs started (bytes).
    pub baseline: u64,
    /// Peak RSS while they ran (bytes): the larger of the sampled VmRSS and VmHWM.
    pub peak: u64,
    /// Heap in use before the runs started (bytes), when counted.
    #[serde(default)]
    pub heap_baseline: Option<u64>,
    /// Peak heap in use while they ran (bytes, sampled with the RSS), when counted.
    #[serde(default)]
    pub heap_peak: Option<u64>,
    /// Wall time of the batch.
    pub wall_s: f64,
    /// Time until every run had been admitted.
    pub admitted_s: f64,
    /// How the runs that did not end as expected ended, most frequent first (at most 5
    /// kinds, each with its count): the evidence when `ok < runs`.
    #[serde(default)]
    pub failures: Vec<(String, usize)>,
}

/// `p3-worker --engine executus|reqwest --url URL --runs N`: prints a [`WorkerResult`].
///
/// # Errors
/// If the runtime cannot start or a run cannot be admitted.
pub async fn worker(rest: &[String], heap: Option<HeapInUse>) -> anyhow::Result<()> {
    let get = |name: &str| rest.iter().position(|a| a == name).and_then(|i| rest.get(i + 1)).cloned();
    let engine = get("--engine").context("--engine")?;
    let url = get("--url").context("--url")?;
    let runs: usize = get("--runs").and_then(|v| v.parse().ok()).context("--runs")?;
    let http2 = rest.iter().any(|a| a == "--http2");
    let result = match engine.as_str() {
        "executus" => {
            let rt = harness::runtime_over(&url, runs, false, http2)?;
            let warm = rt.run(harness::agent(), harness::input(0)).await?;
            anyhow::ensure!(harness::is_expected(&warm, 3), "warm-up run failed: {:?}", warm.end);
            tokio::time::sleep(Duration::from_millis(200)).await;
            let measure = Measure::start(heap);
            let mut handles = Vec::with_capacity(runs);
            for key in 1..=runs as u64 {
                // Only outcomes are awaited: unwatched, as such a host spawns them.
                let request = RunRequest::new(harness::agent(), harness::input(key)).watch(false);
                handles.push(rt.spawn_with(request).await?);
            }
            let admitted_s = measure.t0.elapsed().as_secs_f64();
            let mut ok = 0;
            let mut failures = Failures::default();
            for h in handles {
                let outcome = h.outcome().await;
                if harness::is_expected(outcome.as_ref(), 3) {
                    ok += 1;
                } else {
                    failures.add(format!("{:?} after {} steps", outcome.end, outcome.steps));
                }
            }
            measure.finish(runs, ok, admitted_s, failures).await
        }
        "reqwest" => {
            // The same HTTP/2 connection window as executus's client (the default one).
            let window = executus_llm::HttpOptions::default().http2_connection_window;
            let mut builder =
                reqwest::Client::builder().no_proxy().http2_initial_connection_window_size(window);
            if http2 {
                builder = builder.http2_prior_knowledge();
            }
            let client = builder.build()?;
            let endpoint: Arc<str> = Arc::from(format!("{url}/chat/completions"));
            if let Err(why) = sequence(&client, &endpoint, 0).await {
                bail!("warm-up sequence failed: {why}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let measure = Measure::start(heap);
            let tasks: Vec<_> = (1..=runs as u64)
                .map(|key| {
                    let (client, endpoint) = (client.clone(), endpoint.clone());
                    tokio::spawn(async move { sequence(&client, &endpoint, key).await })
                })
                .collect();
            let admitted_s = measure.t0.elapsed().as_secs_f64();
            let mut ok = 0;
            let mut failures = Failures::default();
            for t in tasks {
                match t.await {
                    Ok(Ok(())) => ok += 1,
                    Ok(Err(why)) => failures.add(why),
                    Err(e) => failures.add(format!("task: {e}")),
                }
            }
            measure.finish(runs, ok, admitted_s, failures).await
        }
        other => bail!("unknown engine {other:?}"),
    };
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

/// The batch's clock and the sampler of its resident set (and live heap, when counted).
struct Measure {
    t0: Instant,
    baseline: u64,
    heap: Option<HeapInUse>,
    heap_baseline: Option<u64>,
    peak: Arc<AtomicU64>,
    heap_peak: Arc<AtomicU64>,
    sampling: Arc<AtomicBool>,
    sampler: tokio::task::JoinHandle<()>,
}

impl Measure {
    /// Reads the baselines and starts sampling every 10 ms.
    fn start(heap: Option<HeapInUse>) -> Self {
        let (peak, heap_peak) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let sampling = Arc::new(AtomicBool::new(true));
        let baseline = sys::rss().0;
        let heap_baseline = heap.map(|f| f());
        let sampler = tokio::spawn({
            let (peak, heap_peak, sampling) = (peak.clone(), heap_peak.clone(), sampling.clone());
            async move {
                while sampling.load(Ordering::Relaxed) {
                    peak.fetch_max(sys::rss().0, Ordering::Relaxed);
                    if let Some(f) = heap {
                        heap_peak.fetch_max(f(), Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        });
        Self { t0: Instant::now(), baseline, heap, heap_baseline, peak, heap_peak, sampling, sampler }
    }

    /// Stops sampling; the batch's result.
    async fn finish(self, runs: usize, ok: usize, admitted_s: f64, failures: Failures) -> WorkerResult {
        let wall_s = self.t0.elapsed().as_secs_f64();
        self.sampling.store(false, Ordering::Relaxed);
        let _ = self.sampler.await;
        WorkerResult {
            runs,
            ok,
            baseline: self.baseline,
            peak: self.peak.load(Ordering::Relaxed).max(sys::rss().1),
            heap_baseline: self.heap_baseline,
            heap_peak: self.heap.map(|_| self.heap_peak.load(Ordering::Relaxed)),
            wall_s,
            admitted_s,
            failures: failures.top(),
        }
    }
}

/// Counts of how runs ended when they did not end as expected.
#[derive(Default)]
struct Failures(std::collections::HashMap<String, usize>);

impl Failures {
    fn add(&mut self, why: String) {
        // Numbers (ids, ports, durations) differ per run; the kind is what counts.
        let kind: Vec<char> = why.chars().map(|c| if c.is_ascii_digit() { '#' } else { c }).collect();
        let kind: String = if kind.len() > 400 {
            kind[..150].iter().chain(['.'; 3].iter()).chain(&kind[kind.len() - 250..]).collect()
        } else {
            kind.into_iter().collect()
        };
        *self.0.entry(kind).or_default() += 1;
    }

    fn top(self) -> Vec<(String, usize)> {
        let mut all: Vec<_> = self.0.into_iter().collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(5);
        all
    }
}

/// A 3-request sequence shaped like the agent's (system, user, then the tool call and result
/// of each step appended), answered by the mock as call, call, answer. `Err` says what went
/// wrong.
async fn sequence(client: &reqwest::Client, endpoint: &str, key: u64) -> Result<(), String> {
    let mut messages = vec![
        serde_json::json!({"role": "system", "content": harness::SYSTEM}),
        serde_json::json!({"role": "user", "content": harness::input(key)}),
    ];
    let tools = serde_json::json!([{"type": "function", "function": {
        "name": harness::TOOL, "description": harness::TOOL_DESCRIPTION,
        "parameters": {"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]}}}]);
    for step in 1..=3 {
        let body = serde_json::json!({"model": "bench-model", "messages": messages, "tools": tools});
        let response = client.post(endpoint).json(&body).send().await.map_err(|e| format!("send: {e:?}"))?;
        let status = response.status();
        let value =
            response.json::<serde_json::Value>().await.map_err(|e| format!("body ({status}): {e:?}"))?;
        let message = value.pointer("/choices/0/message").cloned().unwrap_or_default();
        if step == 3 {
            let content = message.get("content").and_then(|c| c.as_str()).unwrap_or_default();
            return if content.starts_with("done after 2") {
                Ok(())
            } else {
                Err(format!("unexpected answer ({status})"))
            };
        }
        let id = message.pointer("/tool_calls/0/id").and_then(|v| v.as_str()).unwrap_or("call").to_owned();
        messages.push(message);
        messages.push(
            serde_json::json!({"role": "tool", "tool_call_id": id, "content": format!("value of k{step}")}),
        );
    }
    Err("no answer after 3 steps".to_owned())
}
