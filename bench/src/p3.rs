//! P3: runs in flight at once — 10,000 over HTTP/1.1 (mock think time 2 s) and 100,000 over
//! HTTP/2 with prior knowledge (20 s) — one lane as wide as the batch; the process's RSS
//! before starting them and at the peak.
//!
//! Each contender runs in a fresh process (`p3-worker`), so that memory freed by earlier
//! benchmarks cannot be reused and flatter the figure; the mock is another process. The
//! reference beside executus is the same number of 3-step request sequences held in flight by
//! bare `reqwest` (what the HTTP client alone costs).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use executus::RunRequest;
use serde::{Deserialize, Serialize};
use tokio::process::Command;

use crate::Opts;
use crate::harness;
use crate::mock::MockConfig;
use crate::mock::child::ChildMock;
use crate::report::{Row, Section, Verdict};
use crate::sys;

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
    /// Wall time of the batch.
    pub wall_s: f64,
    /// Time until every run had been admitted.
    pub admitted_s: f64,
    /// How the runs that did not end as expected ended, most frequent first (at most 5
    /// kinds, each with its count): the evidence when `ok < runs`.
    #[serde(default)]
    pub failures: Vec<(String, usize)>,
}

/// One P3 configuration: how many runs, how long the mock holds each request, the protocol.
struct Scale {
    runs: usize,
    latency: Duration,
    http2: bool,
}

impl Scale {
    fn protocol(&self) -> &'static str {
        if self.http2 { "HTTP/2 (h2c, prior knowledge)" } else { "HTTP/1.1" }
    }
}

/// Runs P3: 10,000 runs over HTTP/1.1 (the figure kept from the first runs, for comparison)
/// and 100,000 over HTTP/2, each beside bare `reqwest` holding as many sequences in flight.
///
/// # Errors
/// If a worker fails.
pub async fn run(opts: &Opts) -> anyhow::Result<Section> {
    let scales = if opts.smoke {
        vec![
            Scale { runs: 300, latency: Duration::from_millis(300), http2: false },
            Scale { runs: 1_000, latency: Duration::from_millis(1_500), http2: true },
        ]
    } else {
        vec![
            Scale { runs: 10_000, latency: Duration::from_secs(2), http2: false },
            // 100,000 runs take seconds to admit: each request is held long enough that the
            // first step of every run is in flight at once.
            Scale { runs: 100_000, latency: Duration::from_secs(20), http2: true },
        ]
    };
    let limit = sys::raise_nofile();
    let mut section = Section::new(
        "P3",
        format!(
            "runs in flight at once, one lane as wide as the batch: {}",
            scales
                .iter()
                .map(|s| format!(
                    "{} runs over {} (mock latency {} ms)",
                    s.runs,
                    s.protocol(),
                    s.latency.as_millis()
                ))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    );
    for scale in &scales {
        if !scale.http2 && (limit as usize) < scale.runs + 512 {
            bail!(
                "the open-file limit is {limit}; {} connections need more (raise the hard limit)",
                scale.runs
            );
        }
        measure(&mut section, scale).await?;
    }
    section.notes.push(format!(
        "**Method.** A fresh worker process (`executus-bench p3-worker`) builds a `Runtime` with lane \
         `default` as wide as the batch (`streaming = false`, in-memory checkpoints), runs one warm-up \
         run (code paths touched, connections pooled), then reads VmRSS from /proc/self/status as the \
         baseline. It spawns the batch's runs of the 3-step agent at once; the mock (another process) \
         holds every request for the batch's latency, so the runs are in flight together (the mock's \
         peak concurrent requests proves it). A sampler reads VmRSS every 10 ms; the peak is the \
         larger of the sampled maximum and VmHWM. Bytes per in-flight run = (peak - baseline) / runs. \
         The reference worker holds the same number of 3-request sequences in flight with bare \
         `reqwest` (one shared client, one task per sequence), over the same protocol: the part of \
         the figure that is the HTTP client's own. executus's own bytes per run = the difference. \
         Over HTTP/1.1 every in-flight request holds a connection of its own (hyper's buffers, a \
         dispatch channel and a task each); over HTTP/2 (the mock speaks h2c to clients that open \
         with the preface; both clients use `http2_prior_knowledge`) the requests are streams \
         multiplexed on one connection, as with real providers over TLS, so the HTTP client's part \
         shrinks to a stream's and executus's own cost is what is left. {}",
        if limit < 20_000 { format!("(open-file limit {limit}.)") } else { String::new() }
    ));
    Ok(section)
}

async fn measure(section: &mut Section, scale: &Scale) -> anyhow::Result<()> {
    let Scale { runs, latency, http2 } = *scale;
    let mock = ChildMock::spawn(&MockConfig { latency, ..MockConfig::default() }).await?;
    let mut results = Vec::new();
    for engine in ["executus", "reqwest"] {
        mock.reset().await?;
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args(["p3-worker", "--engine", engine, "--url", &mock.url(), "--runs", &runs.to_string()]);
        if http2 {
            cmd.arg("--http2");
        }
        let out = cmd.kill_on_drop(true).output().await?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or("");
        let result: WorkerResult = serde_json::from_str(line).with_context(|| {
            format!("p3 worker ({engine}) exited {}: {}", out.status, String::from_utf8_lossy(&out.stderr))
        })?;
        let snap = mock.snapshot().await?;
        results.push((engine, result, snap.max_in_flight, snap.connections));
    }
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let (_, exe, exe_peak_flight, exe_connections) = &results[0];
    let (_, req, req_peak_flight, _) = &results[1];
    let delta = exe.peak.saturating_sub(exe.baseline);
    let req_delta = req.peak.saturating_sub(req.baseline);
    let per_run = delta as f64 / runs as f64;
    let req_per_run = req_delta as f64 / runs as f64;
    let own = per_run - req_per_run;
    let label = format!("{runs} runs, {}", if http2 { "HTTP/2" } else { "HTTP/1.1" });
    let all_in_flight = *exe_peak_flight as usize >= runs && exe.ok == exe.runs;
    if http2 {
        section.rows.push(Row::new(
            format!("executus's own bytes per in-flight run ({label})"),
            format!("{own:.0} B ({:.2} KiB)", own / 1024.0),
            format!("{per_run:.0} B per run in all, minus bare reqwest's {req_per_run:.0} B per in-flight sequence"),
            "<= 4 KiB",
            Verdict::of(own <= 4096.0 && all_in_flight),
        ));
    } else {
        // The 300 MB target is kept for comparison with the first runs.
        const TARGET_BYTES: u64 = 300_000_000;
        section.rows.push(Row::new(
            format!("RSS above baseline at the peak ({label})"),
            format!("{:.1} MiB ({:.1} -> {:.1} MiB)", mib(delta), mib(exe.baseline), mib(exe.peak)),
            format!("baseline {:.1} MiB", mib(exe.baseline)),
            format!("<= 300 MB ({:.1} MiB) above baseline", mib(TARGET_BYTES)),
            Verdict::of(delta <= TARGET_BYTES && all_in_flight),
        ));
        section.rows.push(Row::info(
            format!("  executus's own bytes per in-flight run ({label})"),
            format!("{own:.0} B ({:.2} KiB)", own / 1024.0),
            format!("{per_run:.0} B per run in all, minus bare reqwest's {req_per_run:.0} B per in-flight sequence"),
        ));
    }
    section.rows.push(Row::info(
        format!("  RSS at the peak, total ({label})"),
        format!("{:.1} MiB ({:.1} MiB above the baseline)", mib(exe.peak), mib(delta)),
        format!("bare reqwest: {:.1} MiB ({:.1} MiB above its baseline)", mib(req.peak), mib(req_delta)),
    ));
    for (engine, result, _, _) in &results {
        if result.ok < result.runs {
            let kinds: Vec<String> = result.failures.iter().map(|(k, n)| format!("{n} x {k}")).collect();
            section.rows.push(Row::info(
                format!("  runs that did not complete, {engine} ({label})"),
                format!("{} of {}", result.runs - result.ok, result.runs),
                kinds.join("; "),
            ));
        }
    }
    section.rows.push(Row::info(
        format!("  runs in flight at once (peak at the mock) / completed ({label})"),
        format!("{exe_peak_flight} / {} of {runs} ({exe_connections} connections)", exe.ok),
        format!(
            "all admitted in {:.2} s; batch {:.1} s; bare reqwest peak {req_peak_flight}",
            exe.admitted_s, exe.wall_s
        ),
    ));
    Ok(())
}

/// `p3-worker --engine executus|reqwest --url URL --runs N`: prints a [`WorkerResult`].
///
/// # Errors
/// If the runtime cannot start or a run cannot be admitted.
pub async fn worker(rest: &[String]) -> anyhow::Result<()> {
    let get = |name: &str| rest.iter().position(|a| a == name).and_then(|i| rest.get(i + 1)).cloned();
    let engine = get("--engine").context("--engine")?;
    let url = get("--url").context("--url")?;
    let runs: usize = get("--runs").and_then(|v| v.parse().ok()).context("--runs")?;
    let http2 = rest.iter().any(|a| a == "--http2");
    let peak = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let result = match engine.as_str() {
        "executus" => {
            let rt = harness::runtime_over(&url, runs, false, http2)?;
            let warm = rt.run(harness::agent(), harness::input(0)).await?;
            anyhow::ensure!(harness::is_expected(&warm, 3), "warm-up run failed: {:?}", warm.end);
            tokio::time::sleep(Duration::from_millis(200)).await;
            let baseline = sys::rss().0;
            let sampler = spawn_sampler(peak.clone(), sampling.clone());
            let t0 = Instant::now();
            let mut handles = Vec::with_capacity(runs);
            for key in 1..=runs as u64 {
                handles.push(rt.spawn_with(RunRequest::new(harness::agent(), harness::input(key))).await?);
            }
            let admitted_s = t0.elapsed().as_secs_f64();
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
            let wall_s = t0.elapsed().as_secs_f64();
            sampling.store(false, Ordering::Relaxed);
            let _ = sampler.await;
            WorkerResult {
                runs,
                ok,
                baseline,
                peak: peak.load(Ordering::Relaxed).max(sys::rss().1),
                wall_s,
                admitted_s,
                failures: failures.top(),
            }
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
            let baseline = sys::rss().0;
            let sampler = spawn_sampler(peak.clone(), sampling.clone());
            let t0 = Instant::now();
            let tasks: Vec<_> = (1..=runs as u64)
                .map(|key| {
                    let (client, endpoint) = (client.clone(), endpoint.clone());
                    tokio::spawn(async move { sequence(&client, &endpoint, key).await })
                })
                .collect();
            let admitted_s = t0.elapsed().as_secs_f64();
            let mut ok = 0;
            let mut failures = Failures::default();
            for t in tasks {
                match t.await {
                    Ok(Ok(())) => ok += 1,
                    Ok(Err(why)) => failures.add(why),
                    Err(e) => failures.add(format!("task: {e}")),
                }
            }
            let wall_s = t0.elapsed().as_secs_f64();
            sampling.store(false, Ordering::Relaxed);
            let _ = sampler.await;
            WorkerResult {
                runs,
                ok,
                baseline,
                peak: peak.load(Ordering::Relaxed).max(sys::rss().1),
                wall_s,
                admitted_s,
                failures: failures.top(),
            }
        }
        other => bail!("unknown engine {other:?}"),
    };
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

fn spawn_sampler(
    peak: Arc<AtomicU64>,
    sampling: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while sampling.load(Ordering::Relaxed) {
            peak.fetch_max(sys::rss().0, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
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
