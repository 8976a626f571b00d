//! Shared by `core/tests/memory.rs` and `core/tests/memory_leak.rs`: waves of tool-using runs
//! from 3 tenants through 4 lanes, and the live heap measured after each wave (see
//! `memory.rs` for the claim). Each binary installs its own counting global allocator and
//! passes a reader of it.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use async_trait::async_trait;
use executus::config::LaneSettings;
use executus::llm::{
    Capabilities, EventStream, FinishReason, Message, Model, Part, Provider, Registry, Request, Response,
    Role, ToolCall, Usage,
};
use executus::ports::{CheckpointStore, MemoryCheckpointStore, Ports};
use executus::tool::{ToolError, ToolRegistry, typed};
use executus::{Identity, RunRequest, Runtime, RuntimeConfig};

use crate::common;

/// A model that calls `echo` once, then answers — 20 ms (virtual) per call. Holds no state
/// per request (the fake provider records every request, which would itself look like a
/// leak).
#[derive(Debug)]
struct Scripted;

#[async_trait]
impl Model for Scripted {
    fn provider(&self) -> &str {
        "fake"
    }

    fn model_id(&self) -> &str {
        "m"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::UNKNOWN
    }

    async fn generate(&self, request: Request) -> executus::llm::Result<Response> {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let answered =
            request.messages.iter().any(|m| m.parts.iter().any(|p| matches!(p, Part::ToolResult(_))));
        let (parts, finish_reason) = if answered {
            (vec![Part::Text { text: "done".into() }], FinishReason::Stop)
        } else {
            let call = ToolCall {
                id: "c1".into(),
                name: "echo".into(),
                args: serde_json::json!({ "text": "x" }),
                signature: None,
            };
            (vec![Part::ToolCall(call)], FinishReason::ToolCalls)
        };
        Ok(Response {
            message: Message { role: Role::Assistant, parts },
            usage: Usage { input_tokens: 10, output_tokens: 2, ..Usage::default() },
            finish_reason,
            provider: "fake".into(),
            model: "m".into(),
        })
    }

    async fn stream(&self, request: Request) -> executus::llm::Result<EventStream> {
        Ok(executus::llm::stream::response_to_stream(self.generate(request).await?))
    }
}

#[derive(Debug)]
struct ScriptedProvider;

impl Provider for ScriptedProvider {
    fn name(&self) -> &str {
        "fake"
    }

    fn model(&self, _id: &str) -> Arc<dyn Model> {
        Arc::new(Scripted)
    }
}

pub const LANES: [&str; 4] = ["l0", "l1", "l2", "l3"];

/// One wave: `runs` runs, tenants a/b/c at 6:3:1, each tenant's runs spread over the lanes;
/// all must complete.
async fn wave(rt: &Runtime, runs: usize) {
    let tenants = ["a", "a", "a", "a", "a", "a", "b", "b", "b", "c"];
    let mut handles = Vec::with_capacity(runs);
    for i in 0..runs {
        let tenant = tenants[i % tenants.len()];
        let request = RunRequest::new(common::agent(), format!("job {i}"))
            .identity(Identity::new(format!("u{i}"), tenant))
            .lane(LANES[i % LANES.len()]);
        handles.push(rt.spawn_with(request).await.unwrap());
    }
    for handle in handles {
        let outcome = handle.outcome().await;
        assert!(outcome.is_completed(), "{:?}", outcome.end);
        assert_eq!(outcome.steps, 2);
    }
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    text: String,
}

/// Tools for the waves: the usual `echo`, or one that leaks one byte per call (the proof
/// that the measurement can fail).
fn tools(leak: bool) -> ToolRegistry {
    if !leak {
        return common::tools(Arc::new(AtomicUsize::new(0)));
    }
    ToolRegistry::new().with(
        typed("echo", "Echoes its text, leaking a byte", |_ctx, a: EchoArgs| async move {
            std::mem::forget(Box::new(0u8));
            Ok::<_, ToolError>(format!("echo: {}", a.text))
        })
        .arc(),
    )
}

/// Waits until every run has been forgotten and the heap reading has stopped moving, so a
/// wave is measured after its actors and tasks have wound down, however slow the machine.
async fn settle(rt: &Runtime, heap: &dyn Fn() -> usize) {
    let mut last = usize::MAX;
    let mut same = 0;
    for _ in 0..10_000 {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        if rt.tracked_runs() > 0 || rt.active_runs().await > 0 {
            same = 0;
            continue;
        }
        let now = heap();
        same = if now == last { same + 1 } else { 0 };
        last = now;
        if same >= 5 {
            return;
        }
    }
}

/// Runs the warm-up wave and `EXECUTUS_MEMORY_WAVES` more (default 4) of
/// `EXECUTUS_LOAD_RUNS` runs each (default 2,000), and asserts the heap returned to its
/// baseline: within 256 KiB, and at least one wave leaving it where it found it (to within
/// half a byte per run). Panics with "every wave" when each wave grew it.
pub async fn heap_returns_to_baseline(heap: &dyn Fn() -> usize, leak: bool) {
    let runs: usize = std::env::var("EXECUTUS_LOAD_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000);
    let store = Arc::new(MemoryCheckpointStore::new());
    let mut config = RuntimeConfig { streaming: false, ..RuntimeConfig::default() };
    for lane in LANES {
        let capacity = std::num::NonZeroUsize::new(16).unwrap();
        config.lanes.insert(lane.into(), LaneSettings { capacity, max_queue: runs });
    }
    let registry = Registry::new();
    registry.add_provider(Arc::new(ScriptedProvider)).unwrap();
    let rt = Runtime::builder()
        .registry(registry)
        .tools(tools(leak))
        .ports(Ports { checkpoints: store.clone(), ..Ports::default() })
        .config(config)
        .build();

    // A first wave grows what grows once (lanes, per-tenant queues, table capacities, lazily
    // initialised statics); what it leaves is the baseline.
    wave(&rt, runs).await;
    settle(&rt, heap).await;
    let baseline = heap();
    let mut after = Vec::new();
    let waves: usize = std::env::var("EXECUTUS_MEMORY_WAVES").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    for _ in 0..waves {
        wave(&rt, runs).await;
        settle(&rt, heap).await;
        after.push(heap());
    }
    let growth: Vec<i64> = after.iter().map(|a| *a as i64 - baseline as i64).collect();
    println!(
        "runs per wave {runs}: live heap baseline {baseline} B, after each further wave {after:?} (growth {growth:?} B)"
    );
    // Nothing of any run is left.
    assert_eq!(rt.tracked_runs(), 0);
    assert_eq!(rt.active_runs().await, 0);
    assert!(store.list_interrupted().await.unwrap().is_empty());
    // Tables keep their high-water capacity (a map that grew for a wave's busiest moment is
    // not shrunk), so a wave may step the heap up once by a bounded amount — any wave, as the
    // busiest moment varies. A leak grows it at every wave. So at least one wave must leave
    // the heap where it found it, to within half a byte per run.
    let mut steps = vec![growth[0]];
    steps.extend(growth.windows(2).map(|w| w[1] - w[0]));
    let calmest = steps.iter().map(|d| d.unsigned_abs()).min().unwrap_or(0);
    assert!(
        calmest < runs as u64 / 2,
        "every wave of {runs} runs grew the heap (by {steps:?} B; after each wave: {after:?})"
    );
    assert!(growth.iter().all(|g| *g < 256 * 1024), "more than a table's high-water mark: {growth:?}");
}
