//! The provider fault matrix through the whole runtime: every fault of
//! `tests/support/fault_cases.rs` (429 with Retry-After in seconds and HTTP-date form, 5xx,
//! 529, refused, resets before and after the first streamed event, malformed SSE, truncated
//! JSON, invalid UTF-8, a 10 MB line, stalled headers and body, a server that never answers
//! and one that never accepts) meets step 2 of a real run over real sockets, with the faulty
//! head alone and in front of a healthy tail.
//!
//! For each case: the run's final status and answerer, the error class the head's failure
//! was audited with, whether the chain failed over (a `failover` audit record), the
//! transcript (input, step 1's tool call and result are all in the outcome), the time taken
//! (at least any `Retry-After`, at most what the configured timeouts, retries and backoff
//! allow), and that nothing is left behind (no tracked run, no interrupted checkpoint).
//! The table it prints (`--nocapture`) is the one in RELIABILITY.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use executus::llm::providers::ProviderConfig;
use executus::llm::providers::openai::OpenAi;
use executus::llm::{HttpOptions, Part, Registry};
use executus::ports::{AuditEvent, CheckpointStore, MemoryCheckpointStore, Ports};
use executus::tool::ToolRegistry;
use executus::{RunOutcome, RunRequest, RunnableAgent, Runtime, RuntimeConfig};
use futures::StreamExt;

use crate::doubles::AuditLog;
use crate::fault_cases::{
    CONNECT, Class, Expected, Fault, HEADERS, IDLE, INPUT, Mode, Shape, big_answer, cases, expect,
    start_head, start_tail,
};

/// Allowance on top of a case's timers when the timers are checked (release builds, by
/// `scripts/reliability.sh`, which sets `EXECUTUS_STRICT_TIMERS=1`; the tables in RELIABILITY.md
/// come from there).
const SLACK: Duration = Duration::from_secs(3);

/// A hang guard, not a timing claim: many times a case's timers, so a debug build on a busy
/// machine never trips it, while a run that never ends still fails.
fn hang_guard(at_most: Duration) -> Duration {
    at_most * 10 + Duration::from_secs(60)
}

/// True when the timers themselves are checked (see [`SLACK`]).
fn strict_timers() -> bool {
    std::env::var("EXECUTUS_STRICT_TIMERS").is_ok_and(|v| v == "1")
}

fn registry(head: &str, tail: &str) -> Registry {
    let http = HttpOptions {
        connect_timeout: CONNECT,
        headers_timeout: HEADERS,
        idle_timeout: IDLE,
        ..HttpOptions::default()
    };
    let registry = Registry::new();
    for (name, url) in [("head", head), ("tail", tail)] {
        let config = ProviderConfig::new(name, format!("{url}/v1")).with_http(http.clone());
        registry.add_provider(Arc::new(OpenAi::new(config))).unwrap();
    }
    registry
}

struct Ran {
    outcome: Arc<RunOutcome>,
    audit: Vec<AuditEvent>,
    elapsed: Duration,
}

async fn run_case(fault: Fault, mode: Mode, shape: Shape) -> Ran {
    let head = start_head(fault).await;
    let tail = start_tail().await;
    let audit = AuditLog::new();
    let checkpoints = Arc::new(MemoryCheckpointStore::new());
    let ports = Ports { audit: audit.clone(), checkpoints: checkpoints.clone(), ..Ports::default() };
    let config = RuntimeConfig { streaming: mode == Mode::Streamed, ..RuntimeConfig::default() };
    let runtime = Runtime::builder()
        .registry(registry(&head.url, &tail.url()))
        .tools(ToolRegistry::new().with(crate::common::product_tool()))
        .ports(ports)
        .config(config)
        .build();
    let agent = RunnableAgent::new("faulty", "You compute.", shape.spec()).with_tools(["calc"]);
    let expected = expect(fault, mode, shape);
    let label = format!("{} / {mode:?} / {shape:?}", fault.label(mode));
    let started = Instant::now();
    let handle = runtime.spawn_with(RunRequest::new(agent, INPUT)).await.unwrap();
    let guard = hang_guard(expected.at_most);
    let outcome = tokio::time::timeout(guard, handle.outcome())
        .await
        .unwrap_or_else(|_| panic!("{label}: no outcome within {guard:?} (hang)"));
    let elapsed = started.elapsed();
    runtime.shutdown(Duration::from_millis(100)).await;
    assert_eq!(runtime.tracked_runs(), 0, "{label}: the run is forgotten");
    assert!(checkpoints.list_interrupted().await.unwrap().is_empty(), "{label}: nothing left to resume");
    drop(head);
    Ran { outcome, audit: audit.events(), elapsed }
}

fn check(fault: Fault, mode: Mode, shape: Shape, expected: &Expected, ran: &Ran) {
    let label = format!("{} / {mode:?} / {shape:?}", fault.label(mode));
    let outcome = &ran.outcome;
    assert_eq!(outcome.status(), expected.status, "{label}: {:?}", outcome.end);
    match expected.answered_by {
        Some(_) if fault == Fault::TenMegabyteLine => {
            assert!(outcome.output.as_deref() == Some(big_answer()), "{label}: the 10 MB answer intact");
        }
        Some(who) => {
            assert_eq!(outcome.output.as_deref(), Some(format!("answered by {who}").as_str()), "{label}")
        }
        None => {
            let reason = outcome.end.reason().unwrap_or_default();
            assert!(reason.contains(expected.class.as_str()), "{label}: reason names the class: {reason}");
        }
    }
    // The transcript: the input, then step 1's call and its result.
    let first = outcome.messages.first().map(|m| m.text());
    assert_eq!(first.as_deref(), Some(INPUT), "{label}: the input is kept");
    let parts: Vec<&Part> = outcome.messages.iter().flat_map(|m| &m.parts).collect();
    let called = parts.iter().any(|p| matches!(p, Part::ToolCall(c) if c.id == "call_1" && c.name == "calc"));
    let result = parts
        .iter()
        .any(|p| matches!(p, Part::ToolResult(r) if r.id == "call_1" && r.content.contains("42")));
    assert_eq!((called, result), (expected.keeps_step_one, expected.keeps_step_one), "{label}: step 1 kept");
    if expected.status == "completed" {
        assert_eq!(outcome.steps, 2, "{label}: a tool step and the answer");
    }
    // The audit: the head's failed attempts carry the class; a failover is recorded exactly
    // when the chain moved on.
    let head_errors: Vec<&String> = ran
        .audit
        .iter()
        .filter_map(|e| match e {
            AuditEvent::ModelCall { provider, error: Some(error), .. } if provider == "head" => Some(error),
            _ => None,
        })
        .collect();
    if expected.class != Class::None && expected.fails_over {
        assert!(
            head_errors.iter().any(|e| e.contains(expected.class.as_str())),
            "{label}: a head attempt is audited as {}: {head_errors:?}",
            expected.class.as_str()
        );
    }
    let failovers = ran.audit.iter().filter(|e| matches!(e, AuditEvent::Failover { .. })).count();
    assert_eq!(failovers > 0, expected.fails_over, "{label}: failover audited: {:?}", ran.audit);
    assert!(ran.elapsed >= expected.at_least, "{label}: Retry-After honoured: {:?}", ran.elapsed);
    if strict_timers() {
        assert!(ran.elapsed < expected.at_most + SLACK, "{label}: took {:?}", ran.elapsed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_provider_fault_ends_the_run_cleanly_with_the_transcript_kept() {
    let mut all = Vec::new();
    for (fault, mode) in cases() {
        for shape in [Shape::Single, Shape::Chain] {
            all.push((fault, mode, shape));
        }
    }
    let results: Vec<_> = futures::stream::iter(all)
        .map(|(fault, mode, shape)| async move { (fault, mode, shape, run_case(fault, mode, shape).await) })
        .buffer_unordered(8)
        .collect()
        .await;
    let mut rows = Vec::new();
    for (fault, mode, shape, ran) in &results {
        let expected = expect(*fault, *mode, *shape);
        check(*fault, *mode, *shape, &expected, ran);
        rows.push(format!(
            "| {} | {:?} | {:?} | {} | {} | {} | {} ms |",
            fault.label(*mode),
            mode,
            shape,
            expected.class.as_str(),
            if expected.fails_over { "yes" } else { "no" },
            expected.status,
            ran.elapsed.as_millis()
        ));
    }
    rows.sort();
    println!("| fault | mode | model | class | failover | status | took |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for row in rows {
        println!("{row}");
    }
}
