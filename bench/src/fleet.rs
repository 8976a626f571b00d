//! F1: the fleet's costs. (1) The `auto:*` routing decision per request with 10 hosts x 20
//! models — reading the routing board the state actor publishes and ranking the candidates —
//! beside building a static 10-target chain from the registry (what any chain spec costs per
//! parse). (2) Connector memory per host: RSS added by a fleet keeping N llama-swap events
//! streams open (connector, activity ingester, host state), beside N bare reqwest streams
//! held open on the same server.
//!
//! The llama-swap side of (2) is a child process (`fleet-host` sub-command) that answers
//! `GET /api/events` with llama-swap's exact framing and replay (logs, 20 models, in-flight
//! snapshot) and keeps the stream open, and `GET /api/metrics/activity` with an empty page.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::Utc;
use executus::llm::{Registry, providers::ProviderConfig, providers::openai::OpenAi};
use executus_fleet::route::{RoutingBoard, decide};
use executus_fleet::state::{Fact, FleetState};
use executus_fleet::wire::{ModelState, ModelStatus};
use executus_fleet::{Candidate, Fleet, FleetConfig, HostSpec, Liveness, MemoryFleetStore, RoutingView};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::Opts;
use crate::report::{Row, Section, Verdict};
use crate::stats::percentile;
use crate::sys;

const HOSTS: usize = 10;
const MODELS: usize = 20;

/// A fleet state of 10 hosts x 20 models in mixed states, in-flight counts and speeds.
fn board() -> (RoutingBoard, Vec<Candidate>) {
    let names: Vec<String> = (0..HOSTS).map(|h| format!("host{h}")).collect();
    let mut state = FleetState::new(names.iter().map(|n| (n.as_str(), "http://127.0.0.1:9")), Utc::now());
    let mut rng = fastrand::Rng::with_seed(7);
    for name in &names {
        state.apply(Fact::Connected { host: name.clone(), at: Utc::now() });
        let models = (0..MODELS)
            .map(|m| {
                let s = match rng.u8(0..10) {
                    0 => ModelState::Ready,
                    1 => ModelState::Starting,
                    _ => ModelState::Stopped,
                };
                ModelStatus::new(format!("org/model-{m}:q4_K_M"), s)
            })
            .collect();
        state.apply(Fact::Models { host: name.clone(), models });
        for m in 0..MODELS {
            state.apply(Fact::Bench {
                host: name.clone(),
                model: format!("org/model-{m}:q4_K_M"),
                gen_tps: rng.f64() * 100.0,
            });
        }
    }
    let board = RoutingBoard::new(&state);
    for name in &names {
        board.publish_host(state.host(name).expect("host"));
    }
    // `auto:NAME` offering one model on every host (the largest candidate list a model has).
    let candidates =
        names.iter().map(|h| Candidate { host: h.clone(), model: "org/model-3:q4_K_M".into() }).collect();
    (board, candidates)
}

/// Nanoseconds per call of `f`, measured over batches (a batch is timed as a whole so the
/// clock's own cost is spread); returns the per-call figure of every batch.
fn per_call(batches: usize, per_batch: usize, mut f: impl FnMut() -> usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(batches);
    let mut sink = 0usize;
    for _ in 0..batches {
        let t = Instant::now();
        for _ in 0..per_batch {
            sink = sink.wrapping_add(std::hint::black_box(f()));
        }
        out.push(t.elapsed().as_nanos() as f64 / per_batch as f64);
    }
    std::hint::black_box(sink);
    out
}

fn routing(opts: &Opts, section: &mut Section) {
    let (board, candidates) = board();
    let (batches, per_batch) = if opts.smoke { (20, 100) } else { (2000, 200) };
    // Warm-up.
    per_call(10, per_batch, || decide(&board.view(), &candidates).order.len());
    let decision = per_call(batches, per_batch, || decide(&board.view(), &candidates).order.len());
    let registry = Registry::new();
    for h in 0..HOSTS {
        let p = OpenAi::new(ProviderConfig::new(format!("host{h}"), "http://127.0.0.1:9/v1"));
        registry.add_provider(Arc::new(p)).expect("name");
    }
    let spec: String =
        (0..HOSTS).map(|h| format!("host{h}/org/model-3:q4_K_M")).collect::<Vec<_>>().join(", ");
    per_call(10, per_batch, || registry.chain(&spec).map(|c| c.targets().count()).unwrap_or(0));
    let chain =
        per_call(batches, per_batch, || registry.chain(&spec).map(|c| c.targets().count()).unwrap_or(0));
    let p50 = percentile(&decision, 50.0);
    let p99 = percentile(&decision, 99.0);
    section.rows.push(Row::new(
        "routing decision per request, 10 hosts x 20 models: p50 / p99",
        format!("{:.2} / {:.2} us", p50 / 1000.0, p99 / 1000.0),
        format!(
            "static 10-target chain from the registry: {:.2} / {:.2} us",
            percentile(&chain, 50.0) / 1000.0,
            percentile(&chain, 99.0) / 1000.0
        ),
        "< 5 us p50",
        Verdict::of(p50 < 5000.0),
    ));
    let view: Arc<RoutingView> = board.view();
    let d = decide(&view, &candidates);
    section.rows.push(Row::info(
        "  candidates ranked / skipped",
        format!("{} / {}", d.order.len(), d.skipped.len()),
        format!("{batches} batches of {per_batch} decisions"),
    ));
}

/// The child: a llama-swap events server on a loopback port; prints `PORT <n>`.
pub async fn host_child() -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("PORT {}", listener.local_addr()?.port());
    let frame = |kind: &str, data: &serde_json::Value| {
        let envelope = serde_json::json!({"type": kind, "data": data.to_string()});
        format!("event:message\ndata:{envelope}\n\n")
    };
    let models: Vec<serde_json::Value> = (0..MODELS)
        .map(|m| serde_json::json!({"id": format!("org/model-{m}:q4_K_M"), "name": "", "description": "", "state": if m == 0 { "ready" } else { "stopped" }, "unlisted": false, "peerID": ""}))
        .collect();
    let replay: String = [
        frame("logData", &serde_json::json!({"source": "proxy", "data": "proxy log line\n".repeat(50)})),
        frame("logData", &serde_json::json!({"source": "upstream", "data": ""})),
        frame("modelStatus", &serde_json::Value::Array(models)),
        frame("uiConfig", &serde_json::json!({})),
        frame("profileChanged", &serde_json::json!({"active": null})),
        frame("inflight", &serde_json::json!({"operation": "snapshot", "requests": []})),
    ]
    .concat();
    let replay: Arc<str> = Arc::from(replay);
    loop {
        let (mut socket, _) = listener.accept().await?;
        let replay = Arc::clone(&replay);
        tokio::spawn(async move {
            let mut head = Vec::new();
            let mut buf = [0u8; 2048];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let line = String::from_utf8_lossy(&head);
            if line.starts_with("GET /api/events") {
                let start = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{replay}\r\n",
                    replay.len()
                );
                if socket.write_all(start.as_bytes()).await.is_err() {
                    return;
                }
                // Keep the stream open until the client goes.
                let _ = socket.read(&mut buf).await;
            } else {
                let body = r#"{"data":[],"page":1,"limit":500,"total":0,"total_pages":0}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
    }
}

async fn spawn_host() -> anyhow::Result<(tokio::process::Child, u16)> {
    let exe = std::env::current_exe()?;
    let mut child = tokio::process::Command::new(exe)
        .arg("fleet-host")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("spawning the llama-swap events server")?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let line = lines.next_line().await?.context("the events server said nothing")?;
    let port = line.strip_prefix("PORT ").context("PORT line")?.parse()?;
    Ok((child, port))
}

/// Waits until RSS stops moving (allocator and thread stacks settle).
async fn settled_rss() -> u64 {
    let mut last = sys::rss().0;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = sys::rss().0;
        if now.abs_diff(last) < 64 * 1024 {
            return now;
        }
        last = now;
    }
    last
}

/// What the memory worker measured: RSS added by the bare streams and by the fleet.
#[derive(serde::Serialize, serde::Deserialize)]
struct MemoryResult {
    hosts: usize,
    bare: u64,
    used: u64,
}

/// Connector memory, measured in a fresh process (`fleet-memory`): in the bench's own process
/// the benchmarks before this one leave freed memory the allocator reuses, and RSS would not
/// show what the streams and the fleet take.
async fn memory(opts: &Opts, section: &mut Section) -> anyhow::Result<()> {
    let n = if opts.smoke { 5 } else { 200 };
    let out = tokio::process::Command::new(std::env::current_exe()?)
        .args(["fleet-memory", "--hosts", &n.to_string()])
        .kill_on_drop(true)
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or("");
    let MemoryResult { hosts, bare, used } = serde_json::from_str(line).with_context(|| {
        format!("fleet-memory exited {}: {}", out.status, String::from_utf8_lossy(&out.stderr))
    })?;
    section.rows.push(Row::info(
        "connector memory per host (RSS, events stream open, 20 models)",
        format!(
            "{:.1} KiB ({hosts} hosts: {:.1} MiB)",
            used as f64 / hosts as f64 / 1024.0,
            used as f64 / (1 << 20) as f64
        ),
        format!("bare reqwest stream: {:.1} KiB per stream", bare as f64 / hosts as f64 / 1024.0),
    ));
    Ok(())
}

/// `fleet-memory --hosts N`: the memory measurement in a process of its own; prints a
/// [`MemoryResult`] line.
///
/// # Errors
/// The events server could not start, or the hosts did not connect.
pub async fn memory_worker(rest: &[String]) -> anyhow::Result<()> {
    let n: usize = rest
        .iter()
        .position(|a| a == "--hosts")
        .and_then(|i| rest.get(i + 1))
        .and_then(|v| v.parse().ok())
        .context("--hosts N")?;
    let (_child, port) = spawn_host().await?;
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();

    // Reference: N bare streams on one reqwest client, each read up to its replay.
    let before = settled_rss().await;
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        let mut r = http.get(format!("{url}/api/events")).send().await?;
        let mut got = 0;
        while got < 100 {
            match r.chunk().await? {
                Some(c) => got += c.len(),
                None => bail!("the events stream ended"),
            }
        }
        streams.push(r);
    }
    let bare = settled_rss().await.saturating_sub(before);
    drop(streams);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The fleet: N hosts (one server), every connector connected and synced.
    let before = settled_rss().await;
    let config = FleetConfig {
        hosts: (0..n).map(|i| HostSpec::new(format!("h{i}"), url.clone())).collect(),
        perf_poll: None,
        ..FleetConfig::default()
    };
    let fleet = Fleet::builder(config)
        .store(Arc::new(MemoryFleetStore::new()))
        .http(http.clone())
        .retention(false)
        .build()
        .await?;
    fleet.start();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = fleet.snapshot().await?;
        if s.hosts.iter().all(|h| h.synced && h.liveness == Liveness::Connected) {
            break;
        }
        if Instant::now() > deadline {
            bail!("not every host connected within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let used = settled_rss().await.saturating_sub(before);
    drop(fleet);
    println!("{}", serde_json::to_string(&MemoryResult { hosts: n, bare, used })?);
    Ok(())
}

/// Runs F1.
///
/// # Errors
/// The events server could not start, or the hosts did not connect.
pub async fn run(opts: &Opts) -> anyhow::Result<Section> {
    let mut section = Section::new(
        "F1",
        "the fleet: `auto:*` routing decision with 10 hosts x 20 models; connector memory per llama-swap host",
    );
    routing(opts, &mut section);
    memory(opts, &mut section).await?;
    section.notes.push(
        "**Routing.** A fleet state of 10 hosts x 20 models (about 10 % ready, 10 % starting, the rest \
         stopped, every model with a bench speed) is built once and published to the routing board, as \
         the state actor does. One decision = reading the board (a read lock and an `Arc` clone) and \
         ranking the 10 candidates of `auto:NAME` (one model on every host) by the policy (skip down and \
         leased hosts; connected first; loaded first; fewest in flight; fastest). Timed in batches of \
         decisions; p50 and p99 are over batches. The reference is `Registry::chain` of a static \
         10-target spec, which any request through a chain spec pays (parse + chain construction); the \
         decision is paid on top of building the ranked chain."
            .into(),
    );
    section.notes.push(
        "**Memory.** A child process serves llama-swap's `/api/events` (exact framing, a replay of logs, \
         20 models and an in-flight snapshot, then an open stream) and an empty activity page. In a \
         fresh process of the bench binary (`fleet-memory`: no earlier benchmark's freed memory to \
         reuse), RSS (after it settles) is read before and after (a) holding N bare reqwest \
         streams open, each read past its replay, and (b) a started `Fleet` with N hosts on that server, \
         every host connected and synced (connector task, activity ingester, SSE decoder, the host's \
         state view and the routing board entry, perf polling off). Per host = the difference / N."
            .into(),
    );
    Ok(section)
}
