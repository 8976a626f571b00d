//! A streamed answer that breaks after its first event: the chain cannot fail over (output
//! was seen), so the run re-issues the step's model call (`RuntimeConfig::stream_restarts`)
//! — on the same target when it is the only one — and watchers are told to drop the step's
//! partial text. Real sockets: an OpenAI-compatible stub that resets mid-stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use executus::llm::Registry;
use executus::llm::providers::ProviderConfig;
use executus::llm::providers::openai::OpenAi;
use executus::ports::{AuditEvent, Ports};
use executus::tool::ToolRegistry;
use executus::{RunEnd, RunEvent, RunRequest, RunnableAgent, Runtime, RuntimeConfig};

use crate::common::events_until_end;
use crate::doubles::AuditLog;
use crate::fault_cases::{INPUT, first_event, has_tool_result, is_stream, text_answer, tool_call};
use crate::tcp_stub::{Step, Stub, head};

/// A head whose first step-2 answer resets after one streamed event; later ones are whole.
async fn flaky_once(breaks: usize) -> (Stub, Arc<AtomicUsize>) {
    let step2 = Arc::new(AtomicUsize::new(0));
    let counter = step2.clone();
    let stub = Stub::route(move |req| {
        if !has_tool_result(req) {
            return tool_call(is_stream(req));
        }
        if counter.fetch_add(1, Ordering::SeqCst) < breaks {
            vec![head("text/event-stream"), crate::tcp_stub::send(first_event("partial ")), Step::Reset]
        } else {
            text_answer(is_stream(req), "answered by head")
        }
    })
    .await;
    (stub, step2)
}

fn runtime(url: &str, restarts: u32, audit: Arc<AuditLog>) -> Runtime {
    let registry = Registry::new();
    registry.add_provider(Arc::new(OpenAi::new(ProviderConfig::new("head", format!("{url}/v1"))))).unwrap();
    let config = RuntimeConfig { streaming: true, stream_restarts: restarts, ..RuntimeConfig::default() };
    Runtime::builder()
        .registry(registry)
        .tools(ToolRegistry::new().with(crate::common::product_tool()))
        .ports(Ports { audit, ..Ports::default() })
        .config(config)
        .build()
}

fn agent() -> RunnableAgent {
    RunnableAgent::new("flaky", "You compute.", "head/m").with_tools(["calc"])
}

#[tokio::test]
async fn a_stream_broken_after_its_first_event_is_reissued_and_the_run_completes() {
    let (stub, step2) = flaky_once(1).await;
    let audit = AuditLog::new();
    let rt = runtime(&stub.url(), 1, audit.clone());
    let handle = rt.spawn_with(RunRequest::new(agent(), INPUT)).await.unwrap();
    let mut rx = handle.events();
    let events = tokio::time::timeout(Duration::from_secs(20), events_until_end(&mut rx)).await.unwrap();
    let outcome = handle.outcome().await;
    assert_eq!(outcome.end, RunEnd::Completed, "{:?}", outcome.end);
    assert_eq!(outcome.output.as_deref(), Some("answered by head"));
    assert_eq!(outcome.steps, 2, "the broken call is not a step");
    assert_eq!(step2.load(Ordering::SeqCst), 2, "step 2 was asked twice");
    // The partial text streamed before the break is announced as void, then the step reruns.
    let labels: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            RunEvent::StepStarted { step, .. } => Some(format!("step {step}")),
            RunEvent::TextDelta { text, .. } => Some(format!("delta {text}")),
            RunEvent::StepRestarted { step, target, error, .. } => {
                assert!(error.contains("transient"), "{error}");
                Some(format!("restart {step} {target}"))
            }
            _ => None,
        })
        .collect();
    let restart = labels.iter().position(|l| l == "restart 2 head/m").unwrap_or_else(|| panic!("{labels:?}"));
    assert_eq!(labels[restart - 1], "delta partial ", "{labels:?}");
    assert_eq!(labels[restart + 1], "step 2", "{labels:?}");
    // Nothing of the broken answer is kept.
    assert!(outcome.messages.iter().all(|m| !m.text().contains("partial")), "{:?}", outcome.messages);
    // The broken attempt is audited with its error; a single target means no failover.
    let events = audit.events();
    let broken = events.iter().any(|e| {
        matches!(e, AuditEvent::ModelCall { step: 2, provider, error: Some(error), .. }
            if provider == "head" && error.contains("transient"))
    });
    assert!(broken, "{events:?}");
    assert!(!events.iter().any(|e| matches!(e, AuditEvent::Failover { .. })), "{events:?}");
    rt.shutdown(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn restarts_are_bounded_and_zero_turns_them_off() {
    for (restarts, asked) in [(0, 1), (2, 3)] {
        let (stub, step2) = flaky_once(usize::MAX).await;
        let rt = runtime(&stub.url(), restarts, AuditLog::new());
        let outcome =
            tokio::time::timeout(Duration::from_secs(20), rt.run(agent(), INPUT)).await.unwrap().unwrap();
        let reason = outcome.end.reason().unwrap_or_default();
        assert_eq!(outcome.end.status(), "failed", "restarts {restarts}: {:?}", outcome.end);
        assert!(reason.contains("transient"), "{reason}");
        assert_eq!(step2.load(Ordering::SeqCst), asked, "restarts {restarts}");
        assert_eq!(outcome.steps, 1, "step 1 kept, step 2 never answered");
        rt.shutdown(Duration::from_millis(100)).await;
    }
}
