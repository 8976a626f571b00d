//! The gateway benchmark: what `executus-run serve` adds in front of an upstream, side by side
//! with calling the same upstream directly, through the floor of any proxy hop, and through the
//! LiteLLM proxy, in alternating rounds of one run.
//!
//! The upstream is the bench's mock server in a child process (it answers at once, with text);
//! `executus-run serve` (same profile as the bench), the proxy floor (`executus-bench-proxy`: a
//! bare hyper server and pooled hyper-util client forwarding the bytes, nothing parsed; see
//! `src/bin/proxy.rs`) and `litellm` (pinned, offline, one worker; bench/python/litellm.sh) run
//! as processes of their own, so their RSS and CPU are theirs alone. The client is one
//! keep-alive `reqwest` client in the bench process.
//!
//! The floor says what is possible at all: on a machine where the client, the mock and the
//! proxy share the cores, no proxy built on this stack serves more than the floor's rate, so
//! the gateway's rate is also given as a fraction of the floor's, and its CPU per request
//! beside the floor's.
//!
//! Figures:
//! - added latency, p50 and p99: sequential non-streamed requests (c = 1) through each path,
//!   minus the direct path's figure;
//! - added time to first byte: sequential streamed requests, time to the first body chunk;
//! - requests/s at concurrency 64 with zero think time;
//! - RSS of the gateway (and of LiteLLM's process tree) at the end of the load, and CPU time
//!   per request during it (`/proc/<pid>/stat`), from which requests/s per core.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt as _;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::Opts;
use crate::mock::MockConfig;
use crate::mock::child::ChildMock;
use crate::p1::peers::{repo_root, tail};
use crate::report::{Row, Section, Verdict};
use crate::stats::{percentile, us};
use crate::sys::cpu_time;

/// The model name the mock answers under.
const MODEL: &str = "bench-model";
/// LiteLLM's master key (it refuses to start without one).
const LITELLM_KEY: &str = "sk-bench-master";

/// One way to reach the upstream.
struct Route {
    name: &'static str,
    /// Chat Completions URL.
    url: String,
    model: String,
    key: Option<&'static str>,
    /// The serving process (none for the direct path).
    pid: Option<u32>,
}

/// Runs the benchmark.
///
/// # Errors
/// A process that does not start, or a request that fails.
pub async fn run(opts: &Opts) -> anyhow::Result<Section> {
    let (sequential, rounds, load_secs) = if opts.smoke { (20, 2, 1.0) } else { (400, 5, 5.0) };
    let mut section =
        Section::new("GW", "`executus-run serve` in front of an upstream, vs direct and LiteLLM".to_owned());
    let mock = ChildMock::spawn(&MockConfig { tool_steps: 0, ..MockConfig::default() }).await?;
    let dir = tempfile::tempdir()?;
    let bin = crate::p5::binary().await?;
    let mut gateway = start_gateway(&bin, dir.path(), &mock.url(), true).await?;
    let floor = start_floor(&mock.url()).await?;
    // The same gateway with every provider call through reqwest (the bare client for plain
    // http:// upstreams switched off): what that client saves, in the same rounds.
    let reqwest_dir = tempfile::tempdir()?;
    let mut via_reqwest = start_gateway(&bin, reqwest_dir.path(), &mock.url(), false).await?;
    let mut paths = vec![
        Route {
            name: "direct",
            url: format!("{}/chat/completions", mock.url()),
            model: MODEL.into(),
            key: None,
            pid: None,
        },
        Route {
            name: "executus serve",
            url: format!("{}/v1/chat/completions", gateway.url),
            model: format!("mock/{MODEL}"),
            key: None,
            pid: gateway.child.id(),
        },
        Route {
            name: "proxy floor",
            url: format!("{}/v1/chat/completions", floor.url),
            model: MODEL.into(),
            key: None,
            pid: floor.child.id(),
        },
        Route {
            name: "executus serve, reqwest only",
            url: format!("{}/v1/chat/completions", via_reqwest.url),
            model: format!("mock/{MODEL}"),
            key: None,
            pid: via_reqwest.child.id(),
        },
    ];
    let mut litellm = None;
    if opts.peers {
        let proxy = start_litellm(dir.path(), &mock.url()).await?;
        paths.push(Route {
            name: "LiteLLM",
            url: format!("{}/v1/chat/completions", proxy.url),
            model: MODEL.into(),
            key: Some(LITELLM_KEY),
            pid: proxy.child.id(),
        });
        litellm = Some(proxy);
    }
    let client = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(256).build()?;
    for path in &paths {
        // Warm-up: connections open, caches filled.
        for _ in 0..20 {
            whole(&client, path).await?;
            first_byte(&client, path).await?;
        }
    }

    let mut latency: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    let mut ttfb: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    let mut cpu_per_request: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    let mut rss: Vec<u64> = vec![0; paths.len()];
    for round in 0..rounds {
        // Alternate the order each round, so no path always goes first.
        let order: Vec<usize> =
            if round % 2 == 0 { (0..paths.len()).collect() } else { (0..paths.len()).rev().collect() };
        for &i in &order {
            for _ in 0..sequential / rounds {
                latency[i].push(us(whole(&client, &paths[i]).await?));
                ttfb[i].push(us(first_byte(&client, &paths[i]).await?));
            }
        }
        for &i in &order {
            let (rate, cpu) = load(&client, &paths[i], 64, Duration::from_secs_f64(load_secs)).await?;
            rates[i].push(rate);
            if let Some(cpu) = cpu {
                cpu_per_request[i].push(cpu);
            }
            if let Some(pid) = paths[i].pid {
                rss[i] = rss[i].max(tree_rss(pid));
            }
        }
    }

    let p = |v: &[f64], q: f64| percentile(v, q);
    let med = |v: &[f64]| percentile(v, 50.0);
    let (d50, d99) = (p(&latency[0], 50.0), p(&latency[0], 99.0));
    let (f50, f99) = (p(&ttfb[0], 50.0), p(&ttfb[0], 99.0));
    let direct_rate = med(&rates[0]);
    // Paths: 0 direct, 1 executus serve, 2 the proxy floor, 3 serve through reqwest only,
    // 4 LiteLLM (with peers).
    for (i, path) in paths.iter().enumerate().skip(1) {
        if i == 2 {
            push_floor_rows(&mut section, &latency, &ttfb, &rates, &cpu_per_request, rss[2]);
            continue;
        }
        if i == 3 {
            let (rate, cpu) = (med(&rates[3]), med(&cpu_per_request[3]));
            section.rows.push(Row::info(
                "executus serve, provider calls through reqwest only (EXECUTUS_BARE_HTTP=0): requests/s at c=64; CPU per request",
                format!("{rate:.0} ({:.2}x direct); {cpu:.0} us", rate / direct_rate.max(1e-9)),
                format!(
                    "with the bare client: {:.0}/s; {:.0} us",
                    med(&rates[1]),
                    med(&cpu_per_request[1])
                ),
            ));
            continue;
        }
        let (a50, a99) = (p(&latency[i], 50.0) - d50, p(&latency[i], 99.0) - d99);
        let (t50, t99) = (p(&ttfb[i], 50.0) - f50, p(&ttfb[i], 99.0) - f99);
        let rate = med(&rates[i]);
        let cpu_us = med(&cpu_per_request[i]);
        let gw = i == 1;
        let target = |t: &str| if gw { t.to_owned() } else { "-".to_owned() };
        let verdict = |ok: bool| if gw { Verdict::of(ok) } else { Verdict::Info };
        // A p99 difference is mostly the machine's noise (it can come out negative): both
        // p99s are shown as they are.
        section.rows.push(Row::new(
            format!("{}: added latency p50, whole answer (p99: path vs direct)", path.name),
            format!("+{:.3} ms (p99 {:.3} vs {:.3} ms)", a50 / 1e3, (a99 + d99) / 1e3, d99 / 1e3),
            format!("direct p50 {:.3} ms", d50 / 1e3),
            target("p50 <= 0.3 ms"),
            verdict(a50 / 1e3 <= 0.3),
        ));
        section.rows.push(Row::new(
            format!("{}: added time to first byte p50, stream (p99: path vs direct)", path.name),
            format!("+{:.3} ms (p99 {:.3} vs {:.3} ms)", t50 / 1e3, (t99 + f99) / 1e3, f99 / 1e3),
            format!("direct p50 {:.3} ms", f50 / 1e3),
            target("p50 <= 0.3 ms"),
            verdict(t50 / 1e3 <= 0.3),
        ));
        section.rows.push(Row::new(
            format!("{}: requests/s at c=64", path.name),
            format!("{rate:.0} ({:.2}x direct)", rate / direct_rate.max(1e-9)),
            format!("direct: {direct_rate:.0}/s"),
            target(">= 0.5x direct"),
            verdict(rate >= 0.5 * direct_rate),
        ));
        section.rows.push(Row::new(
            format!("{}: RSS under that load", path.name),
            format!("{:.1} MB", rss[i] as f64 / 1e6),
            "end of each load round, max".to_owned(),
            target("<= 50 MB"),
            verdict(rss[i] as f64 <= 50e6),
        ));
        section.rows.push(Row::info(
            format!("{}: CPU per request (c=64)", path.name),
            format!("{cpu_us:.0} us ({:.0} requests/s per core)", 1e6 / cpu_us.max(1e-9)),
            "process CPU time over the load rounds / requests".to_owned(),
        ));
    }
    if paths.len() == 5 {
        let ours = 1e6 / med(&cpu_per_request[1]).max(1e-9);
        let theirs = 1e6 / med(&cpu_per_request[4]).max(1e-9);
        section.rows.push(Row::new(
            "requests/s per core, executus serve vs LiteLLM",
            format!("{:.0}x", ours / theirs.max(1e-9)),
            format!("{ours:.0} vs {theirs:.0} per core"),
            ">= 50x",
            Verdict::of(ours >= 50.0 * theirs),
        ));
    } else {
        section.rows.push(Row::new(
            "LiteLLM reference",
            "not measured",
            "run without --no-peers / --smoke",
            ">= 50x per core",
            Verdict::Unavailable,
        ));
    }
    section.notes.push(format!(
        "**Method.** One mock upstream (the bench's, in a child process, answering at once with \
         text) is reached five ways in alternating rounds of one run: directly, through \
         `executus-run serve` (the same profile as the bench{}, configured with one provider of kind \
         `openai` at the mock, the SQLite store in a temp dir, no keys, default limits), through \
         the proxy floor (`executus-bench-proxy`, same profile: a hyper 1 HTTP/1.1 server and a \
         pooled keep-alive hyper-util client on tokio's multi-threaded runtime with mimalloc, \
         forwarding each request's body bytes to the mock and streaming the answer back, nothing \
         parsed: the cheapest proxy hop on this stack), through a second `executus-run serve` \
         with `EXECUTUS_BARE_HTTP=0` (every provider call through reqwest, as before the bare \
         client), and through the LiteLLM proxy {} (`--num_workers 1`, `LITELLM_LOCAL_MODEL_COST_MAP=True`, one model \
         entry `openai/{MODEL}` at the mock, a master key). {rounds} rounds; each round sends \
         {} sequential whole and as many streamed Chat Completions requests per path (one keep-alive \
         client), then {load_secs} s of load at concurrency 64 with zero think time per path. Added \
         latency is the path's percentile minus the direct path's; time to first byte is to the \
         first chunk of the streamed body. CPU per request is the serving process tree's user + \
         system time over a load round divided by the requests it served (median of the rounds); \
         RSS is the tree's resident set at the end of each load round (max). The client, the mock \
         and the server share the machine's cores.",
        if cfg!(debug_assertions) { ": a debug build, the figures mean little" } else { ", release" },
        if opts.peers { "1.108.7" } else { "(not run)" },
        sequential / rounds,
    ));
    gateway.stop().await;
    via_reqwest.stop().await;
    drop(floor);
    if let Some(mut proxy) = litellm {
        proxy.stop().await;
    }
    Ok(section)
}

/// The proxy floor's rows (all `Info`: it is the reference, not a contender) and the
/// gateway's figures as a fraction of the floor's.
fn push_floor_rows(
    section: &mut Section,
    latency: &[Vec<f64>],
    ttfb: &[Vec<f64>],
    rates: &[Vec<f64>],
    cpu_per_request: &[Vec<f64>],
    rss: u64,
) {
    let med = |v: &[f64]| percentile(v, 50.0);
    let (direct, gateway, floor) = (med(&rates[0]), med(&rates[1]), med(&rates[2]));
    let (gateway_cpu, floor_cpu) = (med(&cpu_per_request[1]), med(&cpu_per_request[2]));
    section.rows.push(Row::info(
        "proxy floor (bare hyper hop, nothing parsed): added latency p50, whole answer / first byte",
        format!(
            "+{:.3} ms / +{:.3} ms",
            (med(&latency[2]) - med(&latency[0])) / 1e3,
            (med(&ttfb[2]) - med(&ttfb[0])) / 1e3
        ),
        format!("direct p50 {:.3} ms / {:.3} ms", med(&latency[0]) / 1e3, med(&ttfb[0]) / 1e3),
    ));
    section.rows.push(Row::info(
        "proxy floor (bare hyper hop, nothing parsed): requests/s at c=64, the most any proxy hop serves here",
        format!("{floor:.0} ({:.2}x direct)", floor / direct.max(1e-9)),
        format!("direct: {direct:.0}/s"),
    ));
    section.rows.push(Row::info(
        "proxy floor: CPU per request (c=64), the least any proxy hop costs here",
        format!(
            "{floor_cpu:.0} us ({:.0} requests/s per core; RSS {:.1} MB)",
            1e6 / floor_cpu.max(1e-9),
            rss as f64 / 1e6
        ),
        "process CPU time over the load rounds / requests".to_owned(),
    ));
    section.rows.push(Row::info(
        "executus serve vs the proxy floor: requests/s at c=64; CPU per request",
        format!(
            "{:.2}x the floor's rate; {:.2}x its CPU",
            gateway / floor.max(1e-9),
            gateway_cpu / floor_cpu.max(1e-9)
        ),
        format!("{gateway:.0} vs {floor:.0}/s; {gateway_cpu:.0} vs {floor_cpu:.0} us"),
    ));
}

/// A whole (non-streamed) request; its latency.
async fn whole(client: &reqwest::Client, path: &Route) -> anyhow::Result<Duration> {
    let body =
        serde_json::json!({"model": path.model, "messages": [{"role": "user", "content": "Say something."}]});
    let t0 = Instant::now();
    let mut request = client.post(&path.url).json(&body);
    if let Some(key) = path.key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.with_context(|| format!("{}: request", path.name))?;
    let status = response.status();
    let bytes = response.bytes().await?;
    let elapsed = t0.elapsed();
    if !status.is_success() {
        bail!("{}: HTTP {status}: {}", path.name, String::from_utf8_lossy(&bytes));
    }
    Ok(elapsed)
}

/// A streamed request; the time to its first body chunk (the rest is read too).
async fn first_byte(client: &reqwest::Client, path: &Route) -> anyhow::Result<Duration> {
    let body = serde_json::json!({"model": path.model, "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "Say something."}]});
    let t0 = Instant::now();
    let mut request = client.post(&path.url).json(&body);
    if let Some(key) = path.key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.with_context(|| format!("{}: stream", path.name))?;
    if !response.status().is_success() {
        bail!("{}: HTTP {}", path.name, response.status());
    }
    let mut stream = response.bytes_stream();
    let first = stream.next().await.context("an empty stream")??;
    let elapsed = t0.elapsed();
    let mut all = first.to_vec();
    while let Some(chunk) = stream.next().await {
        all.extend_from_slice(&chunk?);
    }
    if !String::from_utf8_lossy(&all).contains("[DONE]") {
        bail!("{}: a stream without [DONE]", path.name);
    }
    Ok(elapsed)
}

/// `concurrency` workers for `time`; requests/s, and the server's CPU microseconds per request.
async fn load(
    client: &reqwest::Client,
    path: &Route,
    concurrency: usize,
    time: Duration,
) -> anyhow::Result<(f64, Option<f64>)> {
    let done = Arc::new(AtomicU64::new(0));
    let cpu0 = path.pid.map(tree_cpu);
    let t0 = Instant::now();
    let deadline = t0 + time;
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let client = client.clone();
        let done = done.clone();
        let (url, model, key, name) = (path.url.clone(), path.model.clone(), path.key, path.name);
        workers.push(tokio::spawn(async move {
            let probe = Route { name, url, model, key, pid: None };
            while Instant::now() < deadline {
                whole(&client, &probe).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for worker in workers {
        worker.await??;
    }
    let secs = t0.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    let cpu = match (cpu0, path.pid) {
        (Some(before), Some(pid)) => Some(us(tree_cpu(pid).saturating_sub(before)) / n.max(1) as f64),
        _ => None,
    };
    Ok((n as f64 / secs, cpu))
}

/// A process and its descendants (LiteLLM runs its worker as a child).
fn tree(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let parent = all[i];
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                    continue;
                };
                let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
                let ppid = stat
                    .rfind(')')
                    .and_then(|i| stat[i + 1..].split_whitespace().nth(1))
                    .and_then(|p| p.parse::<u32>().ok());
                if ppid == Some(parent) && !all.contains(&child) {
                    all.push(child);
                }
            }
        }
        i += 1;
    }
    all
}

fn tree_cpu(pid: u32) -> Duration {
    tree(pid).into_iter().map(|p| cpu_time(Some(p))).sum()
}

fn tree_rss(pid: u32) -> u64 {
    tree(pid)
        .into_iter()
        .map(|p| {
            let status = std::fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default();
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map_or(0, |kb| kb * 1024)
        })
        .sum()
}

/// A serving child process.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    async fn stop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        let _ = self.child.kill().await;
    }
}

/// A free loopback port.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `executus-run serve` in front of `upstream`; `bare_http`: whether plain http:// provider
/// calls may use the bare client (`EXECUTUS_BARE_HTTP`).
async fn start_gateway(bin: &Path, dir: &Path, upstream: &str, bare_http: bool) -> anyhow::Result<Server> {
    let config = dir.join("executus.toml");
    std::fs::write(
        &config,
        format!(
            "[providers.mock]\nkind = \"openai\"\nbase_url = \"{upstream}\"\n[store]\nurl = \"sqlite://{}\"\n[serve]\nlisten = \"127.0.0.1:0\"\n",
            dir.join("executus.db").display()
        ),
    )?;
    let mut child = Command::new(bin)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("EXECUTUS_BARE_HTTP", if bare_http { "1" } else { "0" })
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {} serve", bin.display()))?;
    let stderr = child.stderr.take().context("serve has no stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let url = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(url) = line.split("listening on ").nth(1) {
                return anyhow::Ok(url.trim().to_owned());
            }
        }
        bail!("serve exited before listening")
    })
    .await
    .context("serve did not start within 60 s")??;
    // Keep draining its stderr so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Server { child, url })
}

/// The proxy floor in a child process; it stops when dropped (its stdin closes, and it is
/// killed on drop).
struct Floor {
    child: Child,
    url: String,
}

async fn start_floor(upstream: &str) -> anyhow::Result<Floor> {
    let bin = crate::p5::built_binary("executus-bench", "executus-bench-proxy").await?;
    let mut child = Command::new(&bin)
        .arg("--upstream")
        .arg(upstream)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let addr = crate::mock::child::announced_addr(&mut child, "the proxy floor").await?;
    Ok(Floor { child, url: format!("http://{addr}") })
}

async fn start_litellm(dir: &Path, upstream: &str) -> anyhow::Result<Server> {
    let setup = repo_root().join("bench/python/litellm.sh");
    let out = Command::new(&setup)
        .arg("setup")
        .stderr(Stdio::inherit())
        .output()
        .await
        .context("installing LiteLLM")?;
    if !out.status.success() {
        bail!("bench/python/litellm.sh setup failed");
    }
    let litellm = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let config = dir.join("litellm.yaml");
    std::fs::write(
        &config,
        format!(
            "model_list:\n  - model_name: {MODEL}\n    litellm_params:\n      model: openai/{MODEL}\n      api_base: {upstream}\n      api_key: sk-mock\n\
             general_settings:\n  master_key: {LITELLM_KEY}\n"
        ),
    )?;
    let port = free_port()?;
    let log = std::fs::File::create(dir.join("litellm.log"))?;
    let child = Command::new(&litellm)
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .env("LITELLM_LOG", "ERROR")
        .env("NO_PROXY", "*")
        .arg("--config")
        .arg(&config)
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--num_workers", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("starting litellm")?;
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().no_proxy().build()?;
    let started = Instant::now();
    loop {
        if let Ok(r) = client.get(format!("{url}/health/liveliness")).send().await
            && r.status().is_success()
        {
            break;
        }
        if started.elapsed() > Duration::from_secs(180) {
            let mut child = child;
            let _ = child.kill().await;
            let log = std::fs::read_to_string(dir.join("litellm.log")).unwrap_or_default();
            bail!("litellm did not come up in 180 s:\n{}", tail(&log, 20));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(Server { child, url })
}
