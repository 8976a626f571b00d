//! P1: 2,000 runs of a 3-step agent (two tool calls, then an answer) at concurrency 64
//! against a zero-latency mock — executus beside the bare `reqwest` loop (the physical limit),
//! the same agent in rig, and (when it can be installed) the OpenAI Agents SDK; plus the
//! per-step harness overhead, CPU per run, and cold start.

pub mod engines;
pub mod peers;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::process::Command;

use self::engines::{Batch, Template};
use self::peers::PeerResult;
use crate::Opts;
use crate::harness;
use crate::mock::MockConfig;
use crate::mock::child::ChildMock;
use crate::report::{Row, Section, Verdict};
use crate::stats::{ms, percentile};

struct Sizes {
    runs: usize,
    concurrency: usize,
    warmup: usize,
    serial_runs: usize,
    rounds: usize,
    cold_samples: usize,
}

impl Sizes {
    fn new(smoke: bool) -> Self {
        if smoke {
            Self { runs: 128, concurrency: 64, warmup: 64, serial_runs: 20, rounds: 1, cold_samples: 1 }
        } else {
            Self { runs: 2_000, concurrency: 64, warmup: 256, serial_runs: 1_000, rounds: 7, cold_samples: 5 }
        }
    }
}

/// Per-step client gaps (µs) observed by the mock, per contender.
#[derive(Default)]
struct Gaps {
    wide: Vec<f64>,
    serial: Vec<f64>,
}

/// Runs P1.
///
/// # Errors
/// If the mock cannot start or executus cannot be set up.
pub async fn run(opts: &Opts) -> anyhow::Result<Section> {
    let z = Sizes::new(opts.smoke);
    let mut section = Section::new(
        "P1",
        format!(
            "{} runs of a 3-step agent (two tool calls, then an answer) at concurrency {} against a zero-latency mock",
            z.runs, z.concurrency
        ),
    );
    let mock =
        ChildMock::spawn(&MockConfig { record_gaps: true, capture_key: Some(0), ..MockConfig::default() })
            .await?;
    let url = mock.url();
    let rt = harness::runtime(&url, z.concurrency, false)?;

    // One executus run whose bodies the mock keeps: the reqwest loop replays them.
    let first = rt.run(harness::agent(), harness::input(0)).await?;
    anyhow::ensure!(
        harness::is_expected(&first, 3),
        "the warm-up run did not complete as expected: {first:?}"
    );
    let template = Arc::new(Template::from_captured(&mock.snapshot().await?.captured, 0)?);
    let client = reqwest::Client::builder().no_proxy().build()?;

    // The peers, built or installed before anything is timed.
    let rig = if opts.peers { Some(peers::build_rig().await) } else { None };
    let python = if opts.peers { Some(peers::setup_python().await) } else { None };

    // Warm-up: connections pooled, code paths hot, for every contender.
    engines::executus_batch(&rt, 1..1 + z.warmup as u64).await?;
    engines::reqwest_batch(&client, &url, &template, 10_000_000..10_000_000 + z.warmup as u64, z.concurrency)
        .await?;

    let registry = harness::registry(&url)?;
    engines::llm_batch(&registry, 20_000_000..20_000_000 + z.warmup as u64, z.concurrency).await?;
    let mut llm_batches: Vec<Batch> = Vec::new();
    let mut exe_batches: Vec<Batch> = Vec::new();
    let mut req_batches: Vec<Batch> = Vec::new();
    let mut rig_results: Vec<PeerResult> = Vec::new();
    let mut rig_error: Option<String> = None;
    let (mut exe_gaps, mut req_gaps, mut rig_gaps) = (Gaps::default(), Gaps::default(), Gaps::default());
    for round in 0..z.rounds as u64 {
        let base = 100_000_000 * (round + 1);
        mock.reset().await?;
        req_batches.push(
            engines::reqwest_batch(&client, &url, &template, base..base + z.runs as u64, z.concurrency)
                .await?,
        );
        req_gaps.wide.extend(gaps(&mock).await?);
        mock.reset().await?;
        let base = base + 10_000_000;
        exe_batches.push(engines::executus_batch(&rt, base..base + z.runs as u64).await?);
        exe_gaps.wide.extend(gaps(&mock).await?);
        let base = base + 5_000_000;
        llm_batches.push(engines::llm_batch(&registry, base..base + z.runs as u64, z.concurrency).await?);
        if let Some(Ok(bin)) = &rig {
            mock.reset().await?;
            let base = base + 10_000_000;
            // Every round is a fresh rig process: it warms up (connections pooled, code paths
            // hot) in every round, as executus's runtime and the reqwest client already are.
            match peers::run_peer(Command::new(bin), &url, z.runs, z.concurrency, z.warmup, base).await {
                Ok(r) => {
                    rig_results.push(r);
                    rig_gaps.wide.extend(gaps(&mock).await?);
                }
                Err(e) => rig_error = Some(format!("{e:#}")),
            }
        }
    }

    // Serial runs (concurrency 1): the per-step gap without CPU contention, in alternating
    // chunks so that the machine's load drifts over both alike.
    let chunk = (z.serial_runs / 10).max(1) as u64;
    for c in 0..(z.serial_runs as u64).div_ceil(chunk) {
        let base = 900_000_000 + c * chunk;
        mock.reset().await?;
        engines::reqwest_batch(&client, &url, &template, base..base + chunk, 1).await?;
        req_gaps.serial.extend(gaps(&mock).await?);
        mock.reset().await?;
        for key in base + 5_000_000..base + 5_000_000 + chunk {
            rt.run(harness::agent(), harness::input(key)).await?;
        }
        exe_gaps.serial.extend(gaps(&mock).await?);
    }
    if let Some(Ok(bin)) = &rig {
        mock.reset().await?;
        if peers::run_peer(Command::new(bin), &url, z.serial_runs, 1, 0, 920_000_000).await.is_ok() {
            rig_gaps.serial.extend(gaps(&mock).await?);
        }
    }

    // Streaming: the same comparison with `stream: true` on both sides.
    let streaming = streaming_round(&z).await;

    // Python.
    let mut py_result: Option<Result<PeerResult, String>> = None;
    let mut py_gaps = Gaps::default();
    if let Some(setup) = &python {
        py_result = Some(match setup {
            Ok(py) => {
                mock.reset().await?;
                let r = peers::run_peer(
                    peers::python_command(py),
                    &url,
                    z.runs,
                    z.concurrency,
                    z.warmup,
                    700_000_000,
                )
                .await
                .map_err(|e| format!("{e:#}"));
                py_gaps.wide.extend(gaps(&mock).await.unwrap_or_default());
                r
            }
            Err(e) => Err(format!("{e:#}")),
        });
    }

    // Cold start: process start to the first request byte at the mock.
    let exe = std::env::current_exe()?;
    let exe_cold = peers::cold_start(z.cold_samples, |url| {
        let mut c = Command::new(&exe);
        c.arg("coldstart").arg("--url").arg(url);
        c
    })
    .await?;
    let rig_cold = match &rig {
        Some(Ok(bin)) => Some(
            peers::cold_start(z.cold_samples, |url| {
                let mut c = Command::new(bin);
                c.args(["--runs", "1", "--concurrency", "1", "--url", url]);
                c
            })
            .await,
        ),
        _ => None,
    };
    let py_cold = match &python {
        Some(Ok(py)) => Some(
            peers::cold_start(z.cold_samples, |url| {
                let mut c = peers::python_command(py);
                c.args(["--runs", "1", "--concurrency", "1", "--url", url]);
                c
            })
            .await,
        ),
        _ => None,
    };
    let mock_pid = mock.pid();
    drop(mock);

    // Figures.
    let cpu = |b: &[Batch]| {
        let runs: usize = b.iter().map(|x| x.ok).sum();
        b.iter().map(|x| x.cpu.as_secs_f64()).sum::<f64>() * 1e6 / runs.max(1) as f64
    };
    let exe_rate = median(exe_batches.iter().map(Batch::rate));
    let req_rate = median(req_batches.iter().map(Batch::rate));
    // Each round runs the contenders back to back: the per-round ratio shares that round's
    // machine load, so the median of the paired ratios is the figure judged.
    let ratio = median(exe_batches.iter().zip(&req_batches).map(|(e, r)| e.rate() / r.rate().max(1e-9)));
    let failed: usize = exe_batches.iter().map(|b| b.runs - b.ok).sum();
    let per_round: Vec<String> = exe_batches
        .iter()
        .zip(&req_batches)
        .map(|(e, r)| format!("{:.3}", e.rate() / r.rate().max(1e-9)))
        .collect();
    section.rows.push(Row::new(
        "runs/s, executus vs (a) bare reqwest loop",
        format!("{exe_rate:.0} runs/s"),
        format!("{req_rate:.0} runs/s"),
        ">= 0.60 x (a)",
        Verdict::of(ratio >= 0.60 && failed == 0),
    ));
    section.rows.push(Row::info(
        "  ratio executus / (a)",
        format!("{ratio:.3} (per round: {})", per_round.join(", ")),
        format!("median of {} paired rounds", z.rounds),
    ));
    match (&rig, rig_results.is_empty()) {
        (Some(Ok(_)), false) => {
            let rig_rate = median(rig_results.iter().map(PeerResult::rate));
            let rig_failed: usize = rig_results.iter().map(|r| r.runs - r.ok).sum();
            section.rows.push(Row::new(
                "runs/s, executus vs (b) rig 0.44 agent",
                format!("{exe_rate:.0} runs/s"),
                format!(
                    "{rig_rate:.0} runs/s{}",
                    if rig_failed > 0 { format!(" ({rig_failed} rig runs failed)") } else { String::new() }
                ),
                "ahead of (b)",
                Verdict::of(exe_rate > rig_rate),
            ));
            if let Some(e) = rig_results.iter().find_map(|r| r.error.clone()) {
                section.notes.push(format!("rig reported: `{e}`"));
            }
        }
        (Some(Err(e)), _) => section.rows.push(Row::new(
            "runs/s, (b) rig",
            "not measured",
            first_line(&format!("{e:#}")),
            "ahead of (b)",
            Verdict::Unavailable,
        )),
        (Some(Ok(_)), true) => section.rows.push(Row::new(
            "runs/s, (b) rig",
            "not measured",
            first_line(rig_error.as_deref().unwrap_or("no result")),
            "ahead of (b)",
            Verdict::Unavailable,
        )),
        (None, _) => section.rows.push(Row::new(
            "runs/s, (b) rig",
            "skipped (--smoke / --no-peers)",
            "-",
            "ahead of (b)",
            Verdict::Unavailable,
        )),
    }
    let llm_rate = median(llm_batches.iter().map(Batch::rate));
    section.rows.push(Row::info(
        "  runs/s, provider layer alone (executus-llm chain + hand loop)",
        format!(
            "{llm_rate:.0} runs/s ({:.3} x (a), {:.0} us CPU/run)",
            llm_rate / req_rate.max(1e-9),
            cpu(&llm_batches)
        ),
        "splits the cost: provider crate vs runtime",
    ));
    overhead_rows(&mut section, "c=64", &exe_gaps.wide, &req_gaps.wide, None);
    overhead_rows(&mut section, "c=1", &exe_gaps.serial, &req_gaps.serial, Some(30.0));
    if !rig_gaps.wide.is_empty() {
        section.rows.push(Row::info(
            "  rig per-step client gap p50 / p99, c=64 / c=1",
            format!(
                "{:.0} / {:.0} us, {:.0} / {:.0} us",
                percentile(&rig_gaps.wide, 50.0),
                percentile(&rig_gaps.wide, 99.0),
                percentile(&rig_gaps.serial, 50.0),
                percentile(&rig_gaps.serial, 99.0)
            ),
            "same method",
        ));
    }
    let (exe_cpu, req_cpu) = (cpu(&exe_batches), cpu(&req_batches));
    // Paired per round, as the rate ratio: each round's contenders shared its machine load.
    let cpu_ratio = median(exe_batches.iter().zip(&req_batches).map(|(e, r)| {
        let per = |b: &Batch| b.cpu.as_secs_f64() / b.ok.max(1) as f64;
        per(e) / per(r).max(1e-12)
    }));
    section.rows.push(Row::new(
        "client CPU per run (bench process, user+sys)",
        format!(
            "{exe_cpu:.0} us executus ({:.0} us/step above (a)); {cpu_ratio:.2} x (a), median of paired rounds",
            (exe_cpu - req_cpu) / 3.0
        ),
        format!("{req_cpu:.0} us (a)"),
        "<= 2.0 x (a)",
        Verdict::of(cpu_ratio <= 2.0),
    ));
    match allocations(opts).await {
        Ok(a) => {
            let step = |c: &AllocCounts| c.allocations_per_run / 3.0;
            let beyond = step(&a.executus) - step(&a.reqwest);
            section.rows.push(Row::new(
                "heap allocations per step, c=1 (beyond the bare loop's)",
                format!(
                    "{:.1} per step ({beyond:.1} beyond (a)); {:.0} B allocated per step",
                    step(&a.executus),
                    a.executus.bytes_per_run / 3.0
                ),
                format!(
                    "(a) {:.1} per step ({:.0} B); provider layer alone {:.1} per step ({:.0} B)",
                    step(&a.reqwest),
                    a.reqwest.bytes_per_run / 3.0,
                    step(&a.llm),
                    a.llm.bytes_per_run / 3.0
                ),
                "<= 40 per step beyond (a)",
                Verdict::of(beyond <= 40.0 && a.executus.ok == a.executus.runs),
            ));
        }
        Err(e) => section.notes.push(format!("The allocation count did not run: {e:#}")),
    }
    if let Some(rig_rate) = (!rig_results.is_empty()).then(|| {
        let runs: usize = rig_results.iter().map(|r| r.ok).sum();
        rig_results.iter().map(|r| r.cpu_s).sum::<f64>() * 1e6 / runs.max(1) as f64
    }) {
        section.rows.push(Row::info("  client CPU per run, rig", format!("{rig_rate:.0} us"), "-"));
    }
    match streaming {
        Ok((exe, req)) => section.rows.push(Row::info(
            "runs/s with streaming (SSE, usage in final chunk)",
            format!(
                "{:.0} runs/s ({:.3} x (a){})",
                exe.rate(),
                exe.rate() / req.rate().max(1e-9),
                if exe.ok == exe.runs {
                    String::new()
                } else {
                    format!(", {} runs failed", exe.runs - exe.ok)
                }
            ),
            format!("{:.0} runs/s (a) streaming", req.rate()),
        )),
        Err(e) => section.notes.push(format!("The streaming comparison did not run: {e:#}")),
    }
    match &py_result {
        Some(Ok(r)) => {
            section.rows.push(Row::info(
                "runs/s, OpenAI Agents SDK 0.24.0 (Python)",
                format!(
                    "{:.0} runs/s ({}/{} ok, {:.0} us CPU/run)",
                    r.rate(),
                    r.ok,
                    r.runs,
                    r.cpu_s * 1e6 / r.ok.max(1) as f64
                ),
                format!("executus {exe_rate:.0} runs/s"),
            ));
            if !py_gaps.wide.is_empty() {
                section.rows.push(Row::info(
                    "  Agents SDK per-step client gap p50 / p99, c=64",
                    format!(
                        "{:.0} / {:.0} us",
                        percentile(&py_gaps.wide, 50.0),
                        percentile(&py_gaps.wide, 99.0)
                    ),
                    "same method",
                ));
            }
            if let Some(e) = &r.error {
                section.notes.push(format!("The Agents SDK reported: `{e}`"));
            }
        }
        Some(Err(e)) => section.rows.push(Row::new(
            "runs/s, OpenAI Agents SDK (Python)",
            "not measured",
            first_line(e),
            "-",
            Verdict::Unavailable,
        )),
        None => {}
    }
    let cold = |v: &[Duration]| {
        let ms: Vec<f64> = v.iter().map(|d| ms(*d)).collect();
        format!(
            "{:.1} ms median ({} samples, max {:.1})",
            percentile(&ms, 50.0),
            ms.len(),
            percentile(&ms, 100.0)
        )
    };
    section.rows.push(Row::info(
        "cold start: process start -> first byte at the mock, executus",
        cold(&exe_cold),
        "minimal host (bench binary `coldstart`), not executus-run (P5)",
    ));
    if let Some(r) = &rig_cold {
        match r {
            Ok(v) => section.rows.push(Row::info("  cold start, rig", cold(v), "-")),
            Err(e) => section.notes.push(format!("rig cold start failed: {e:#}")),
        }
    }
    if let Some(r) = &py_cold {
        match r {
            Ok(v) => section.rows.push(Row::info("  cold start, OpenAI Agents SDK (Python)", cold(v), "-")),
            Err(e) => section.notes.push(format!("Agents SDK cold start failed: {e:#}")),
        }
    }
    if failed > 0 {
        section.notes.push(format!("{failed} executus runs did not complete as expected."));
    }
    section.notes.extend(method_notes(&z, mock_pid.is_some()));
    Ok(section)
}

/// `p1-only`: one contender's P1 batch alone (after a warm-up), for profiling. Prints runs/s,
/// CPU per run and the per-step gap percentiles.
///
/// # Errors
/// If the mock or the runtime cannot start.
pub async fn only(rest: &[String]) -> anyhow::Result<()> {
    let get = |name: &str| rest.iter().position(|a| a == name).and_then(|i| rest.get(i + 1)).cloned();
    let engine = get("--engine").unwrap_or_else(|| "executus".into());
    let runs: u64 = get("--runs").and_then(|v| v.parse().ok()).unwrap_or(2_000);
    let concurrency: usize = get("--concurrency").and_then(|v| v.parse().ok()).unwrap_or(64);
    let streaming = rest.iter().any(|a| a == "--streaming");
    let mock =
        ChildMock::spawn(&MockConfig { record_gaps: true, capture_key: Some(0), ..MockConfig::default() })
            .await?;
    let url = mock.url();
    let rt = harness::runtime(&url, concurrency, streaming)?;
    let first = rt.run(harness::agent(), harness::input(0)).await?;
    anyhow::ensure!(harness::is_expected(&first, 3), "warm-up run failed: {first:?}");
    let template = Arc::new(Template::from_captured(&mock.snapshot().await?.captured, 0)?);
    let client = reqwest::Client::builder().no_proxy().build()?;
    let is_executus = engine == "executus";
    let registry = harness::registry(&url)?;
    let batch = |base: u64, n: u64| {
        let (rt, client, url, template, registry, engine) =
            (&rt, &client, &url, &template, &registry, &engine);
        async move {
            if is_executus {
                engines::executus_batch(rt, base..base + n).await
            } else if engine == "llm" {
                engines::llm_batch(registry, base..base + n, concurrency).await
            } else {
                engines::reqwest_batch(client, url, template, base..base + n, concurrency).await
            }
        }
    };
    batch(1, 256).await?;
    mock.reset().await?;
    let b = if concurrency == 1 && is_executus {
        let t0 = std::time::Instant::now();
        let cpu0 = crate::sys::cpu_time(None);
        let mut ok = 0;
        for key in 1_000_000..1_000_000 + runs {
            ok += usize::from(harness::is_expected(&rt.run(harness::agent(), harness::input(key)).await?, 3));
        }
        Batch { runs: runs as usize, ok, wall: t0.elapsed(), cpu: crate::sys::cpu_time(None) - cpu0 }
    } else {
        batch(1_000_000, runs).await?
    };
    let g = gaps(&mock).await?;
    println!(
        "{engine}: {:.0} runs/s ({}/{} ok), {:.0} us CPU/run, step gap p50 {:.0} us p99 {:.0} us",
        b.rate(),
        b.ok,
        b.runs,
        b.cpu.as_secs_f64() * 1e6 / b.ok.max(1) as f64,
        percentile(&g, 50.0),
        percentile(&g, 99.0)
    );
    Ok(())
}

async fn gaps(mock: &ChildMock) -> anyhow::Result<Vec<f64>> {
    Ok(mock.snapshot().await?.gaps_us.into_iter().map(|g| g as f64).collect())
}

fn overhead_rows(section: &mut Section, label: &str, exe: &[f64], req: &[f64], p50_target: Option<f64>) {
    let (e50, e99, r50, r99) =
        (percentile(exe, 50.0), percentile(exe, 99.0), percentile(req, 50.0), percentile(req, 99.0));
    let figure = format!("harness overhead per step, {label}: p50 / p99");
    let value = format!("{} / {} us", diff(e50 - r50), diff(e99 - r99));
    let reference = format!("gap executus {e50:.0} / {e99:.0} us minus (a) {r50:.0} / {r99:.0} us");
    section.rows.push(match p50_target {
        Some(target) => Row::new(
            figure,
            value,
            reference,
            format!("p50 <= {target:.0} us"),
            Verdict::of(e50 - r50 <= target),
        ),
        None => Row::info(figure, value, reference),
    });
}

/// Allocation counts per run, from the `executus-bench-allocs` binary.
#[derive(Debug, serde::Deserialize)]
struct AllocCounts {
    runs: usize,
    ok: usize,
    allocations_per_run: f64,
    bytes_per_run: f64,
}

/// What `executus-bench-allocs` prints.
#[derive(Debug, serde::Deserialize)]
struct AllocReport {
    executus: AllocCounts,
    llm: AllocCounts,
    reqwest: AllocCounts,
}

/// Heap allocations per run of each in-process contender at concurrency 1, counted by the
/// `executus-bench-allocs` binary (built beside this one when stale): a wrapping global
/// allocator in a process of its own, so the counting never touches the timed figures.
async fn allocations(opts: &Opts) -> anyhow::Result<AllocReport> {
    let bin = crate::p5::built_binary("executus-bench", "executus-bench-allocs").await?;
    let exe = std::env::current_exe()?;
    let runs = if opts.smoke { 50 } else { 1_000 };
    let out = Command::new(bin)
        .arg("--mock")
        .arg(&exe)
        .args(["--runs", &runs.to_string()])
        .kill_on_drop(true)
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or("");
    serde_json::from_str(line).with_context(|| {
        format!("executus-bench-allocs exited {}: {}", out.status, String::from_utf8_lossy(&out.stderr))
    })
}

/// A difference of percentiles; a negative one means the two are within the noise.
fn diff(d: f64) -> String {
    if d < 0.0 { format!("<= 0 (within noise: {d:.0})") } else { format!("{d:.0}") }
}

async fn streaming_round(z: &Sizes) -> anyhow::Result<(Batch, Batch)> {
    let mock = ChildMock::spawn(&MockConfig { capture_key: Some(0), ..MockConfig::default() }).await?;
    let url = mock.url();
    let rt = harness::runtime(&url, z.concurrency, true)?;
    let first = rt.run(harness::agent(), harness::input(0)).await?;
    anyhow::ensure!(harness::is_expected(&first, 3), "streaming warm-up run failed: {first:?}");
    let template = Arc::new(Template::from_captured(&mock.snapshot().await?.captured, 0)?);
    let client = reqwest::Client::builder().no_proxy().build()?;
    engines::executus_batch(&rt, 1..1 + z.warmup as u64).await?;
    engines::reqwest_batch(&client, &url, &template, 10_000_000..10_000_000 + z.warmup as u64, z.concurrency)
        .await?;
    let req = engines::reqwest_batch(
        &client,
        &url,
        &template,
        20_000_000..20_000_000 + z.runs as u64,
        z.concurrency,
    )
    .await
    .context("streaming reqwest batch")?;
    let exe = engines::executus_batch(&rt, 30_000_000..30_000_000 + z.runs as u64).await?;
    Ok((exe, req))
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = values.collect();
    percentile(&v, 50.0)
}

fn first_line(s: &str) -> String {
    let line = s.lines().find(|l| !l.trim().is_empty()).unwrap_or(s);
    line.chars().take(160).collect()
}

fn method_notes(z: &Sizes, _child: bool) -> Vec<String> {
    vec![
        format!(
            "**Setup.** The mock runs in a child process (the bench binary's `mock` sub-command), so the \
             bench process's CPU time is the client's alone; both share the machine's cores. executus: one \
             `Runtime` (lane `default` of capacity {c}, in-memory checkpoints, no-op audit, \
             `streaming = false`, defaults otherwise), every run spawned at once with `Runtime::spawn_with` \
             and admitted by the lane; the tool is an in-process `typed` tool returning a string. \
             (a): {c} tokio tasks on one `reqwest::Client`, each taking the next run and POSTing its three \
             bodies in sequence, reading and JSON-parsing each answer. The bodies are the ones executus \
             sent for a warm-up run, captured by the mock and replayed byte for byte with the run key \
             substituted, so (a) sends exactly executus's request shape. (b): rig 0.44.0's classic agent \
             (`AgentBuilder` + a `PortableTool`, Chat Completions wire, `max_turns(5)`), {c} tasks, in its \
             own process built from `bench/rig` (a separate Cargo workspace, because rig turns on \
             serde_json's `preserve_order`, which would leak into executus through feature unification). \
             Each contender first runs {w} warm-up runs; then {r} rounds of {n} runs alternate (a), \
             executus, the provider layer alone, (b) — rig runs in a fresh process each round, so it \
             warms up with {w} untimed runs in every round; runs/s is the median over rounds, and the ratio \
             judged is the median of the per-round ratios (each round's contenders ran back to back, \
             under the same machine load). The provider \
             layer alone is the same agent loop written by hand on `executus-llm` (a chain from the \
             registry, the OpenAI client, the tool called inline, no runtime): it splits executus's \
             cost between the provider crate and the runtime. Every run's answer is checked; a run that \
             does not end with the expected final answer after three model calls is not counted.",
            c = z.concurrency,
            w = z.warmup,
            r = z.rounds,
            n = z.runs
        ),
        "**Harness overhead per step.** The mock timestamps, on its own monotonic clock, the moment it \
         finished writing a tool-call answer and the moment the same run's next request was fully read. \
         That gap is everything the client does between two model calls: read and parse the answer, \
         run the tool, checkpoint, build and serialise the next request, send it. The bare loop's gap is \
         the floor of any client (read, parse, send a ready body); executus's gap minus the bare loop's, \
         percentile by percentile, is the harness overhead per step. At c=64 it includes queueing for \
         the two CPUs behind 63 other runs (it is what a step costs under this load); at c=1 it is the \
         pure latency cost."
            .to_owned(),
        "**Streaming.** The same comparison with `RuntimeConfig.streaming = true` on a second mock: executus consumes the Server-Sent Events (usage in the final chunk); the bare loop replays executus's own streamed bodies and JSON-parses every event. One round, after the same warm-up."
            .to_owned(),
        "**Python.** The OpenAI Agents SDK 0.24.0, installed (pinned, with pip) by `bench/python/run.sh` into a virtualenv under `target/bench-venv`, runs the same agent (`Agent` with the same instructions and a `@function_tool` `lookup(key)`) on `OpenAIChatCompletionsModel` over an `AsyncOpenAI` client whose base URL is the mock, tracing disabled, 64 asyncio workers calling `Runner.run(agent, input, max_turns=5)`; 256 warm-up runs, then the runs once (not in every round: at about 40 runs/s a round would take a minute). Its process's CPU time comes from `os.times()`."
            .to_owned(),
        "**Cold start.** The parent starts a fresh in-process mock, records the time, spawns the \
         process (one run of the agent), and reads the time of the first request byte at the mock. \
         For executus the process is the bench binary's `coldstart` sub-command (build a `Runtime`, run \
         the agent once): a minimal host, not `executus-run` (that is P5). For Python it includes the \
         interpreter start and the SDK's imports, as a user experiences it."
            .to_owned(),
    ]
}
