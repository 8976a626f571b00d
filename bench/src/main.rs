//! `executus-bench`: the harness's own cost, side by side with the physical limit and with
//! peers, measured against a loopback mock OpenAI-compatible server (see `mock`).
//!
//! ```text
//! cargo run --release -p executus-bench -- all          # everything; writes BENCHMARKS.md
//! cargo run --release -p executus-bench -- p1|...|p6    # one benchmark; prints its table
//!     p1  2,000 3-step agent runs at concurrency 64 vs a bare reqwest loop and rig
//!     p2  fan-out 8 models x 6 lenses through one lane vs the ideal schedule
//!     p3  runs in flight: 10,000 over HTTP/1.1, 100,000 over HTTP/2 (h2c); bytes per run
//!     p4  a 500-turn chat in the SQLite store: bytes per transcript byte; step-saves/s
//!     p5  `executus-run` process start to the first byte at the mock
//!     p6  failover past a refusing head: added latency, attempts on the benched head
//!     p7  a dead OpenTelemetry collector vs no export: `executus-run` run and exit time
//!     fleet  `auto:*` routing decision (10 hosts x 20 models); connector memory per host
//!     media  normalising a 12-megapixel JPEG for Anthropic: time and peak memory (M1)
//!     gateway  `executus-run serve` vs direct and LiteLLM: added latency, first byte, c=64 rate, RSS, CPU
//!     workers  workers on one PostgreSQL: runs/s with 1, 2, 4 workers (S1), step-saves/s vs
//!              SQLite (S2), SIGKILL to resume (S3)
//!     --smoke      tiny sizes (seconds), no peers, writes nothing (what CI runs)
//!     --no-peers   skip the rig and Python references
//!     --out PATH   write the Markdown report to PATH (default for `all`: BENCHMARKS.md)
//!     --no-write   print only
//! ```
//!
//! Internal sub-commands (spawned by the bench itself): `mock` (a mock server process),
//! `fleet-host` (a llama-swap events server for the fleet's memory figure), `fleet-memory` (that
//! figure measured in a fresh process), `workers-child`
//! (one PostgreSQL queue worker of `workers`),
//! `coldstart` (one agent run, for the cold-start figure), `p3-worker` (P3 in a fresh process),
//! `media-worker` (one M1 operation in a fresh process),
//! `p1-only --engine executus|reqwest [--runs N] [--concurrency C] [--streaming]` (one P1
//! contender alone, for profiling it under `perf record`).

mod fleet;
mod gateway;
mod harness;
mod media;
mod mock;
mod p1;
mod p2;
mod p3;
mod p4;
mod p5;
mod p6;
mod p7;
mod report;
mod stats;
mod sys;
mod workers;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::mock::{Behaviour, MockConfig};
use crate::report::Section;

/// Options shared by the benchmarks.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Tiny sizes, no peers.
    pub smoke: bool,
    /// Run the rig and Python references.
    pub peers: bool,
}

struct Args {
    command: String,
    opts: Opts,
    out: Option<PathBuf>,
    write: bool,
    rest: Vec<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut it = std::env::args().skip(1);
    let command = it.next().unwrap_or_else(|| "help".into());
    let mut args =
        Args { command, opts: Opts { smoke: false, peers: true }, out: None, write: true, rest: Vec::new() };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--smoke" => args.opts.smoke = true,
            "--no-peers" => args.opts.peers = false,
            "--no-write" => args.write = false,
            "--out" => args.out = Some(PathBuf::from(it.next().context("--out needs a path")?)),
            _ => args.rest.push(a),
        }
    }
    if args.opts.smoke {
        args.opts.peers = false;
    }
    Ok(args)
}

fn flag_value(rest: &[String], name: &str) -> Option<String> {
    rest.iter().position(|a| a == name).and_then(|i| rest.get(i + 1)).cloned()
}

const HELP: &str =
    "usage: executus-bench <all|p1|p2|p3|p4|p5|p6|p7|fleet|media|gateway|workers> [--smoke] [--no-peers] [--out PATH] [--no-write]

  all  every benchmark; writes BENCHMARKS.md (unless --smoke or --no-write)
  p1   2,000 3-step agent runs at concurrency 64 vs a bare reqwest loop and rig
  p2   fan-out 8 models x 6 lenses through one lane vs the ideal schedule
  p3   runs in flight (10,000 over HTTP/1.1, 100,000 over HTTP/2): RSS, bytes per run
  p4   a 500-turn chat in the SQLite store: bytes per transcript byte; step-saves/s
  p5   `executus-run` process start to the first byte at the mock (builds it if stale)
  p6   failover past a refusing head: added latency, attempts on the benched head
  p7   a dead OpenTelemetry collector vs no export: run and exit time of `executus-run`
  fleet  auto:* routing decision (10 hosts x 20 models); connector memory per llama-swap host
  media  normalising a 12-megapixel JPEG for Anthropic: time and peak memory (M1)
  gateway  `executus-run serve` in front of the mock vs direct and the LiteLLM proxy
  workers  workers on one PostgreSQL: runs/s with 1, 2, 4 workers; step-saves/s vs SQLite; SIGKILL to resume (S1-S3)";

fn main() -> anyhow::Result<()> {
    sys::raise_nofile();
    let args = parse_args()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(dispatch(args))
}

async fn dispatch(args: Args) -> anyhow::Result<()> {
    match args.command.as_str() {
        "mock" => {
            let ms: u64 = flag_value(&args.rest, "--latency-ms").and_then(|v| v.parse().ok()).unwrap_or(0);
            let steps = flag_value(&args.rest, "--tool-steps").and_then(|v| v.parse().ok()).unwrap_or(2);
            let config = MockConfig {
                latency: Duration::from_millis(ms),
                tool_steps: steps,
                behaviour: Behaviour::Answer,
                record_gaps: args.rest.iter().any(|a| a == "--record-gaps"),
                capture_key: flag_value(&args.rest, "--capture-key").and_then(|v| v.parse().ok()),
            };
            mock::serve_child(config).await
        }
        "coldstart" => {
            let url = flag_value(&args.rest, "--url").context("coldstart needs --url")?;
            let rt = harness::runtime(&url, 1, false)?;
            let out = rt.run(harness::agent(), harness::input(1)).await?;
            if !harness::is_expected(&out, 3) {
                bail!("cold-start run did not complete: {:?}", out.end);
            }
            Ok(())
        }
        "p3-worker" => p3::worker::worker(&args.rest, None).await,
        "fleet-host" => fleet::host_child().await,
        "fleet-memory" => fleet::memory_worker(&args.rest).await,
        "workers-child" => workers::worker(&args.rest).await,
        "media-worker" => media::worker(&args.rest),
        "p1-only" => p1::only(&args.rest).await,
        "help" | "--help" | "-h" => {
            println!("{HELP}");
            Ok(())
        }
        "all" | "p1" | "p2" | "p3" | "p4" | "p5" | "p6" | "p7" | "fleet" | "media" | "gateway"
        | "workers" => benchmarks(args).await,
        other => bail!("unknown command {other:?}\n{HELP}"),
    }
}

async fn benchmarks(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    // Before anything runs: the figures belong to the tree as it was when they were measured.
    let source = sys::source(&p1::peers::repo_root());
    println!("{source}");
    let which: Vec<&str> = match args.command.as_str() {
        "all" => vec!["p1", "p2", "p3", "p4", "p5", "p6", "p7", "fleet", "media", "gateway", "workers"],
        one => vec![one],
    };
    let mut sections: Vec<Section> = Vec::new();
    for id in which {
        eprintln!("running {id}{}...", if args.opts.smoke { " (smoke)" } else { "" });
        let result = match id {
            "p1" => p1::run(&args.opts).await,
            "p2" => p2::run(&args.opts).await,
            "p3" => p3::run(&args.opts).await,
            "p4" => p4::run(&args.opts).await,
            "p5" => p5::run(&args.opts).await,
            "p6" => p6::run(&args.opts).await,
            "p7" => p7::run(&args.opts).await,
            "fleet" => fleet::run(&args.opts).await,
            "workers" => workers::run(&args.opts).await,
            "media" => media::run(&args.opts).await,
            "gateway" => gateway::run(&args.opts).await,
            _ => unreachable_id(id),
        };
        match result {
            Ok(section) => sections.push(section),
            Err(e) => {
                // A benchmark that cannot run fails the command: no figure is made up.
                bail!("{id} failed: {e:#}");
            }
        }
        println!("{}", report::table(sections.last().map(std::slice::from_ref).unwrap_or_default()));
    }
    println!("\n{}", report::table(&sections));
    let out = match (&args.out, args.command.as_str(), args.opts.smoke) {
        (Some(p), _, _) => Some(p.clone()),
        (None, "all", false) => Some(p1::peers::repo_root().join("BENCHMARKS.md")),
        _ => None,
    };
    if let (Some(path), true) = (out, args.write) {
        let mut command = String::from("cargo run --release -p executus-bench -- ");
        command.push_str(&std::env::args().skip(1).collect::<Vec<_>>().join(" "));
        let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
        let machine = sys::machine();
        let ctx = report::Context {
            command: &command,
            date: &date,
            source: &source,
            machine: &machine,
            load: &load,
            elapsed_s: started.elapsed().as_secs_f64(),
        };
        report::write_markdown(&path, &sections, &ctx)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn unreachable_id(id: &str) -> anyhow::Result<Section> {
    bail!("no benchmark called {id}")
}
