//! P3: runs in flight at once — 10,000 over HTTP/1.1 (mock think time 2 s) and 100,000 over
//! HTTP/2 with prior knowledge (20 s) — one lane as wide as the batch; the process's RSS
//! before starting them and at the peak.
//!
//! Each contender runs in a fresh process (`p3-worker`), so that memory freed by earlier
//! benchmarks cannot be reused and flatter the figure; the mock is another process. The
//! reference beside executus is the same number of 3-step request sequences held in flight by
//! bare `reqwest` (what the HTTP client alone costs).

use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::Command;

use crate::Opts;
use crate::mock::MockConfig;
use crate::mock::child::ChildMock;
use crate::report::{Row, Section, Verdict};
use crate::sys;

pub mod worker;

use worker::WorkerResult;

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
         baseline. It spawns the batch's runs of the 3-step agent at once, unwatched \
         (`RunRequest::watch(false)`: the worker awaits outcomes and never subscribes to events; a \
         watched run also keeps its events and attempt log for a first subscriber, about 4 KiB more \
         per run at its third step); the mock (another process) \
         holds every request for the batch's latency, so the runs are in flight together (the mock's \
         peak concurrent requests proves it). A sampler reads VmRSS every 10 ms; the peak is the \
         larger of the sampled maximum and VmHWM. The workers run in `executus-bench-allocs` (a \
         wrapping global allocator, the system one beneath it), so the same sampler also reads the \
         live heap (bytes allocated minus bytes freed). Bytes per in-flight run = (peak - baseline) \
         / runs, from the live heap (what executus holds; the target's figure) and from RSS (which \
         adds the allocator's slack: freed memory it keeps, fragmentation, and the moment the peak \
         was sampled, so it moves by a few KiB per run between runs at 100,000). \
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
    // The workers run in the binary that counts its heap (the timed benchmarks never do).
    let bin = crate::p5::built_binary("executus-bench", "executus-bench-allocs").await?;
    let mut results = Vec::new();
    for engine in ["executus", "reqwest"] {
        mock.reset().await?;
        let mut cmd = Command::new(&bin);
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
    // The live heap (allocated minus freed) at its sampled peak, per run, minus the bare
    // loop's: what executus itself holds, without the allocator's slack that RSS adds.
    let heap = |r: &WorkerResult| {
        let (Some(base), Some(peak)) = (r.heap_baseline, r.heap_peak) else { return None };
        Some(peak.saturating_sub(base) as f64 / runs as f64)
    };
    let heap_own = heap(exe).zip(heap(req)).map(|(e, r)| (e - r, e, r));
    let label = format!("{runs} runs, {}", if http2 { "HTTP/2" } else { "HTTP/1.1" });
    let all_in_flight = *exe_peak_flight as usize >= runs && exe.ok == exe.runs;
    let heap_row = |first: bool| {
        let figure = format!("executus's own bytes per in-flight run, live heap ({label})");
        match heap_own {
            Some((own, e, r)) => {
                let value = format!("{own:.0} B ({:.2} KiB)", own / 1024.0);
                let reference = format!(
                    "{e:.0} B of heap per run in all, minus bare reqwest's {r:.0} B per in-flight sequence"
                );
                if first {
                    Row::new(
                        figure,
                        value,
                        reference,
                        "<= 4 KiB",
                        Verdict::of(own <= 4096.0 && all_in_flight),
                    )
                } else {
                    Row::info(format!("  {figure}"), value, reference)
                }
            }
            None => Row::new(
                figure,
                "not measured",
                "the worker did not count its heap",
                "-",
                Verdict::Unavailable,
            ),
        }
    };
    let rss_own = Row::info(
        format!("  executus's own bytes per in-flight run, from RSS ({label})"),
        format!("{own:.0} B ({:.2} KiB)", own / 1024.0),
        format!(
            "{per_run:.0} B per run in all, minus bare reqwest's {req_per_run:.0} B per in-flight sequence"
        ),
    );
    if http2 {
        section.rows.push(heap_row(true));
        section.rows.push(rss_own);
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
        section.rows.push(heap_row(false));
        section.rows.push(rss_own);
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
