//! Run events: what a subscriber sees, in order; text deltas when streaming.

use std::sync::Arc;

use executus::llm::fake::{FakeProvider, Outcome, StreamScript};
use executus::ports::Ports;
use executus::{RunEnd, RunEvent, RuntimeConfig};

use crate::common::{agent, build, call, events_until_end, tools};

/// A compact name for an event, with the details that matter for ordering.
fn label(e: &RunEvent) -> String {
    match e {
        RunEvent::StepStarted { step, .. } => format!("step {step}"),
        RunEvent::TextDelta { text, .. } => format!("delta {text}"),
        RunEvent::ModelAnswered { provider, model, .. } => format!("answered {provider}/{model}"),
        RunEvent::ModelAttempt { step, target, attempt, .. } => format!("attempt {step} {target} #{attempt}"),
        RunEvent::Failover { step, from, to, .. } => format!("failover {step} {from} -> {to}"),
        RunEvent::ToolStarted { call, .. } => format!("tool start {}", call.id),
        RunEvent::ToolFinished { call_id, is_error, .. } => format!("tool done {call_id} error={is_error}"),
        RunEvent::LoopProtection { trigger, .. } => format!("loop {trigger}"),
        RunEvent::ApprovalRequested { call, .. } => format!("approval {}", call.id),
        RunEvent::Ended { end, .. } => format!("ended {}", end.status()),
        other => format!("{other:?}"),
    }
}

// Multi-threaded, so the run really races ahead of the caller between `spawn` and `events`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_sees_every_event_in_order() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::tool_calls([call("c1", "echo", "a"), call("c2", "fail", "b")]));
    fake.push("m", Outcome::text("done"));
    let config = RuntimeConfig { streaming: false, ..RuntimeConfig::default() };
    let rt = build(&fake, tools(Arc::default()), Ports::default(), config, None);
    let handle = rt.spawn(agent(), "go").await.unwrap();
    // Subscribing right after spawn misses nothing, even though the run may already be going.
    let mut rx = handle.events();
    let events = events_until_end(&mut rx).await;
    let labels: Vec<String> = events.iter().map(label).collect();
    let (start_c1, start_c2) = (pos(&labels, "tool start c1"), pos(&labels, "tool start c2"));
    let (done_c1, done_c2) =
        (pos(&labels, "tool done c1 error=false"), pos(&labels, "tool done c2 error=true"));
    assert_eq!(&labels[..3], ["step 1", "attempt 1 fake/m #1", "answered fake/m"], "{labels:?}");
    assert!(start_c1 < done_c1 && start_c2 < done_c2, "{labels:?}");
    assert!(start_c1 < start_c2, "{labels:?}");
    let step2 = pos(&labels, "step 2");
    assert!(done_c1 < step2 && done_c2 < step2, "{labels:?}");
    assert_eq!(
        &labels[step2..],
        ["step 2", "attempt 2 fake/m #1", "answered fake/m", "ended completed"],
        "{labels:?}"
    );
    assert_eq!(labels.len(), 11, "{labels:?}");
    assert!(events.iter().all(|e| run_id(e) == handle.id()));
    assert_eq!(handle.outcome().await.end, RunEnd::Completed);
}

#[tokio::test]
async fn streaming_runs_emit_text_deltas_before_the_answer() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::stream(StreamScript::new().text("Hel").text("lo, ").text("world").done()));
    let config = RuntimeConfig { streaming: true, ..RuntimeConfig::default() };
    let rt = build(&fake, tools(Arc::default()), Ports::default(), config, None);
    let handle = rt.spawn(agent(), "go").await.unwrap();
    let mut rx = handle.events();
    let labels: Vec<String> = events_until_end(&mut rx).await.iter().map(label).collect();
    assert_eq!(
        labels,
        [
            "step 1",
            "attempt 1 fake/m #1",
            "delta Hel",
            "delta lo, ",
            "delta world",
            "answered fake/m",
            "ended completed"
        ],
    );
    let out = handle.outcome().await;
    assert_eq!(out.output.as_deref(), Some("Hello, world"));
    assert!(fake.requests()[0].streamed, "the model was called through stream()");
}

#[tokio::test]
async fn the_first_subscriber_gets_every_event_even_after_the_run_ended() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::tool_calls([call("c1", "echo", "a")]));
    fake.push("m", Outcome::text("done"));
    let config = RuntimeConfig { streaming: false, ..RuntimeConfig::default() };
    let rt = build(&fake, tools(Arc::default()), Ports::default(), config, None);
    let handle = rt.spawn(agent(), "go").await.unwrap();
    handle.outcome().await;
    let mut late = handle.clone().events();
    let labels: Vec<String> = events_until_end(&mut late).await.iter().map(label).collect();
    assert_eq!(labels.first().map(String::as_str), Some("step 1"), "{labels:?}");
    assert_eq!(labels.last().map(String::as_str), Some("ended completed"));
    assert_eq!(labels.len(), 9, "{labels:?}");
    // Later subscribers see only what comes next (here: nothing).
    let mut again = handle.events();
    assert!(matches!(again.try_recv(), Err(tokio::sync::broadcast::error::TryRecvError::Empty)));
}

#[tokio::test]
async fn attempts_and_failovers_are_announced_as_they_happen() {
    let fake = FakeProvider::new("fake");
    fake.push("a", Outcome::error(executus::llm::ErrorKind::NotFound, "no such model"));
    fake.push("b", Outcome::text("done"));
    let config = RuntimeConfig { streaming: false, ..RuntimeConfig::default() };
    let rt = build(&fake, tools(Arc::default()), Ports::default(), config, None);
    let agent = executus::RunnableAgent::new("tester", "You test.", "fake/a, fake/b");
    let handle = rt.spawn(agent, "go").await.unwrap();
    let mut rx = handle.events();
    let events = events_until_end(&mut rx).await;
    let labels: Vec<String> = events.iter().map(label).collect();
    assert_eq!(
        labels,
        [
            "step 1",
            "attempt 1 fake/a #1",
            "failover 1 fake/a -> fake/b",
            "attempt 1 fake/b #1",
            "answered fake/b",
            "ended completed"
        ]
    );
    let error = events.iter().find_map(|e| match e {
        RunEvent::Failover { error, .. } => Some(error.clone()),
        _ => None,
    });
    assert!(error.is_some_and(|e| e.contains("no such model")));
    assert!(events.iter().all(|e| run_id(e) == handle.id()));
}

fn pos(labels: &[String], want: &str) -> usize {
    labels.iter().position(|l| l == want).unwrap_or_else(|| panic!("no {want:?} in {labels:?}"))
}

fn run_id(e: &RunEvent) -> executus::RunId {
    match e {
        RunEvent::StepStarted { run_id, .. }
        | RunEvent::TextDelta { run_id, .. }
        | RunEvent::ModelAnswered { run_id, .. }
        | RunEvent::ModelAttempt { run_id, .. }
        | RunEvent::Failover { run_id, .. }
        | RunEvent::ToolStarted { run_id, .. }
        | RunEvent::ToolFinished { run_id, .. }
        | RunEvent::LoopProtection { run_id, .. }
        | RunEvent::ApprovalRequested { run_id, .. }
        | RunEvent::Ended { run_id, .. } => *run_id,
        other => panic!("unexpected event {other:?}"),
    }
}

#[tokio::test]
async fn an_unwatched_run_keeps_no_events_and_a_watched_one_keeps_them_all() {
    let fake = FakeProvider::new("fake");
    for _ in 0..2 {
        fake.push("m", Outcome::tool_calls([call("c1", "echo", "a")]));
        fake.push("m", Outcome::text("done"));
    }
    let config = RuntimeConfig { streaming: false, ..RuntimeConfig::default() };
    let rt = build(&fake, tools(Arc::default()), Ports::default(), config, None);
    let quiet = rt.spawn_with(executus::RunRequest::new(agent(), "go").watch(false)).await.unwrap();
    assert_eq!(quiet.outcome().await.end, RunEnd::Completed);
    // Subscribed after the end: nothing was kept for it.
    let mut rx = quiet.events();
    assert!(matches!(rx.try_recv(), Err(tokio::sync::broadcast::error::TryRecvError::Empty)));
    let watched = rt.spawn_with(executus::RunRequest::new(agent(), "go")).await.unwrap();
    assert_eq!(watched.outcome().await.end, RunEnd::Completed);
    let mut rx = watched.events();
    let labels: Vec<String> = events_until_end(&mut rx).await.iter().map(label).collect();
    assert_eq!(labels.first().map(String::as_str), Some("step 1"), "{labels:?}");
    assert_eq!(labels.last().map(String::as_str), Some("ended completed"), "{labels:?}");
}
