//! The executor: panics (tool and run), cancel, steer, status, queued runs, timeouts.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use executus::config::LaneSettings;
use executus::llm::fake::{FakeProvider, Outcome};
use executus::llm::{Message, Role};
use executus::ports::{AuditEvent, ChannelDelivery, Ports};
use executus::run::RunPhase;
use executus::tool::ToolError;
use executus::{Limits, RunEnd, RunEvent, RunRequest, RuntimeConfig, RuntimeError};

use crate::common::{
    DropFlag, agent, all_results, build, call, config, runtime, text_tool, tools, wait_for_event,
};
use crate::doubles::{AuditLog, BudgetCall, RecordingBudget};

#[tokio::test]
async fn a_panicking_tool_is_an_error_result_and_the_executor_keeps_serving() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::tool_calls([call("c1", "boom", "x")]));
    fake.push("m", Outcome::text("after the panic"));
    fake.push("m", Outcome::text("second run"));
    let rt = runtime(&fake, Arc::default(), Ports::default());
    let out = rt.run(agent(), "go").await.unwrap();
    assert_eq!(out.end, RunEnd::Completed, "{out:?}");
    let r = &all_results(&out.messages)[0];
    assert!(r.is_error && r.content.contains("tool exploded"), "{r:?}");
    let again = rt.run(agent(), "again").await.unwrap();
    assert_eq!(again.output.as_deref(), Some("second run"));
}

#[tokio::test]
async fn a_panicking_run_is_recorded_failed_and_the_executor_keeps_serving() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::tool_calls([call("c1", "echo", "a")]));
    fake.push("m", Outcome::text("fine"));
    // The audit sink panics inside the run actor's message handling (the tool-call audit
    // happens in `handle` when the tool result arrives) — for the doomed agent only.
    let audit = AuditLog::panicking(|r| {
        r.agent.as_deref() == Some("doomed") && matches!(r.event, AuditEvent::ToolCall { .. })
    });
    let ports = Ports { audit: audit.clone(), ..Ports::default() };
    let rt = runtime(&fake, Arc::default(), ports);
    let mut doomed = agent();
    doomed.name = "doomed".into();
    let handle = rt.spawn(doomed, "go").await.unwrap();
    let mut events = handle.events();
    let out = handle.outcome().await;
    let RunEnd::Failed { error } = &out.end else { panic!("expected failure: {out:?}") };
    assert!(error.contains("panicked") && error.contains("audit sink exploded"), "{error}");
    // The transcript is recovered from the checkpoint log.
    assert_eq!(out.messages.first(), Some(&Message::user("go")));
    assert_eq!(out.messages.get(1).map(|m| m.role), Some(Role::Assistant), "{:?}", out.messages);
    assert_eq!(out.steps, 1);
    let ended = wait_for_event(&mut events, |e| matches!(e, RunEvent::Ended { .. })).await;
    assert!(matches!(ended, RunEvent::Ended { end: RunEnd::Failed { .. }, .. }));
    // The failure is audited and the checkpoint is gone.
    assert!(
        audit.events().iter().any(|e| matches!(e, AuditEvent::RunEnded { status, .. } if status == "failed"))
    );
    // The executor survived: a new run completes.
    let ok = rt.run(agent(), "again").await.unwrap();
    assert_eq!(ok.output.as_deref(), Some("fine"));
    assert_eq!(rt.active_runs().await, 0);
    assert!(rt.ports().checkpoints.list_interrupted().await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_panicking_budget_fails_the_run_instead_of_hanging_it() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::text("unreachable"));
    let ports = Ports { budget: RecordingBudget::panicking(), ..Ports::default() };
    let rt = runtime(&fake, Arc::default(), ports);
    let started = tokio::time::Instant::now();
    let out = rt.run(agent(), "go").await.unwrap();
    let RunEnd::Failed { error } = &out.end else { panic!("expected failure: {out:?}") };
    assert!(error.contains("budget exploded"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(1), "no wait for the run timeout");
    assert_eq!(out.messages, [Message::user("go")]);
}

#[tokio::test]
async fn a_panicking_model_fails_the_run_and_releases_its_reservation() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::dynamic(|_| panic!("model exploded")));
    let budget = RecordingBudget::denying_at(u64::MAX);
    let rt = runtime(&fake, Arc::default(), Ports { budget: budget.clone(), ..Ports::default() });
    let out = rt.run(agent(), "go").await.unwrap();
    let RunEnd::Failed { error } = &out.end else { panic!("expected failure: {out:?}") };
    assert!(error.contains("model exploded"), "{error}");
    let calls = budget.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(matches!(&calls[1], BudgetCall::Settle { usage, .. } if *usage == Default::default()));
    assert_eq!(rt.run(agent(), "again").await.unwrap().status(), "failed", "no outcome left, but no panic");
}

#[tokio::test]
async fn cancel_while_a_tool_runs_keeps_the_transcript_and_stops_the_tool() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::tool_calls([call("c1", "echo", "a")]));
    fake.push("m", Outcome::tool_calls([call("c2", "hold", "b")]));
    let dropped = Arc::new(AtomicBool::new(false));
    let d = dropped.clone();
    let tools = tools(Arc::default()).with(text_tool("hold", move |_| {
        let flag = DropFlag(d.clone());
        async move {
            let _flag = flag;
            std::future::pending::<()>().await;
            Ok::<String, ToolError>(String::new())
        }
    }));
    let rt = build(&fake, tools, Ports::default(), config(), None);
    let handle = rt.spawn(agent().with_tools(["hold"]), "go").await.unwrap();
    let mut events = handle.events();
    wait_for_event(&mut events, |e| matches!(e, RunEvent::ToolStarted { call, .. } if call.id == "c2")).await;
    let status = handle.status().await.unwrap();
    assert_eq!((status.phase, status.step), (RunPhase::Tools, 2));
    handle.cancel().await;
    let out = handle.outcome().await;
    assert_eq!(out.end, RunEnd::Cancelled);
    assert_eq!(out.status(), "cancelled");
    assert_eq!(out.steps, 2);
    // user, assistant(c1), tool(c1), assistant(c2), ...
    assert!(out.messages.len() >= 4, "{:?}", out.messages);
    assert_eq!(all_results(&out.messages)[0].content, "echo: a");
    assert!(out.messages[3].tool_calls().any(|c| c.id == "c2"));
    tokio::task::yield_now().await;
    assert!(dropped.load(Ordering::SeqCst), "the in-flight tool was stopped");
    // The run is gone: no stale status, steering refused, nothing left to resume.
    wait_until_inactive(&rt).await;
    let status = rt.status(handle.id()).await;
    assert!(
        status.as_ref().is_none_or(|s| matches!(s.phase, RunPhase::Ended(_))),
        "a cancelled run must not look queued or running: {status:?}"
    );
    assert!(matches!(handle.steer("late").await, Err(RuntimeError::UnknownRun { .. })));
    // The runtime forgets the run (it is not "already active" forever).
    for _ in 0..1000 {
        if rt.status(handle.id()).await.is_none() {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(rt.status(handle.id()).await.is_none(), "the cancelled run is still tracked");
    assert!(matches!(rt.resume(handle.id()).await, Err(RuntimeError::UnknownRun { .. })));
    assert!(rt.ports().checkpoints.list_interrupted().await.unwrap().is_empty());
}

#[tokio::test]
async fn cancel_while_the_model_answers() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::hang());
    let rt = runtime(&fake, Arc::default(), Ports::default());
    let handle = rt.spawn(agent(), "go").await.unwrap();
    let mut events = handle.events();
    wait_for_event(&mut events, |e| matches!(e, RunEvent::StepStarted { .. })).await;
    assert_eq!(handle.status().await.unwrap().phase, RunPhase::Model);
    rt.cancel(handle.id()).await;
    let out = handle.outcome().await;
    assert_eq!(out.end, RunEnd::Cancelled);
    assert_eq!(out.messages, [Message::user("go")]);
    assert_eq!(out.steps, 0);
}

#[tokio::test(start_paused = true)]
async fn steering_mid_run_reaches_the_next_model_request() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::tool_calls([call("c1", "wait", "a")]));
    fake.push("m", Outcome::text("steered"));
    let tools = tools(Arc::default()).with(text_tool("wait", |_| async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        Ok::<_, ToolError>("waited".to_owned())
    }));
    let rt = build(&fake, tools, Ports::default(), config(), None);
    let handle = rt.spawn(agent().with_tools(["wait"]), "go").await.unwrap();
    let mut events = handle.events();
    wait_for_event(&mut events, |e| matches!(e, RunEvent::ToolStarted { .. })).await;
    handle.steer("also check the logs").await.unwrap();
    let out = handle.outcome().await;
    assert_eq!(out.end, RunEnd::Completed, "{out:?}");
    let second = &fake.requests_for("m")[1];
    let roles: Vec<Role> = second.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::User, Role::Assistant, Role::Tool, Role::User]);
    assert_eq!(second.messages[3], Message::user("also check the logs"));
    // The transcript holds the steering where the model saw it.
    assert_eq!(out.messages[3], Message::user("also check the logs"));
    assert_eq!(out.messages.len(), 5);
}

#[tokio::test(start_paused = true)]
async fn steering_while_the_model_answers_is_seen_by_a_further_step() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::text("first answer").after(Duration::from_secs(5)));
    fake.push("m", Outcome::text("answer after steering"));
    let rt = runtime(&fake, Arc::default(), Ports::default());
    let handle = rt.spawn(agent(), "go").await.unwrap();
    let mut events = handle.events();
    wait_for_event(&mut events, |e| matches!(e, RunEvent::StepStarted { .. })).await;
    handle.steer("wait, one more thing").await.unwrap();
    let out = handle.outcome().await;
    assert_eq!(out.output.as_deref(), Some("answer after steering"));
    assert_eq!(fake.calls_for("m"), 2);
    let second = &fake.requests_for("m")[1];
    assert_eq!(second.messages.last(), Some(&Message::user("wait, one more thing")));
    assert_eq!(
        out.messages,
        [
            Message::user("go"),
            Message::assistant("first answer"),
            Message::user("wait, one more thing"),
            Message::assistant("answer after steering"),
        ]
    );
}

fn solo_lane_config() -> RuntimeConfig {
    let mut cfg = config();
    cfg.lanes =
        BTreeMap::from([("default".to_owned(), LaneSettings { capacity: NonZeroUsize::MIN, max_queue: 10 })]);
    cfg
}

#[tokio::test]
async fn queued_runs_report_status_take_steering_and_can_be_cancelled() {
    let fake = FakeProvider::new("fake");
    fake.push("blocker", Outcome::hang());
    fake.push("queued", Outcome::text("ran after the blocker"));
    let rt = build(&fake, tools(Arc::default()), Ports::default(), solo_lane_config(), None);
    let on = |model: &str| {
        let mut a = agent();
        a.model = format!("fake/{model}");
        a
    };
    let first = rt.spawn(on("blocker"), "one").await.unwrap();
    let mut first_events = first.events();
    wait_for_event(&mut first_events, |e| matches!(e, RunEvent::StepStarted { .. })).await;
    let second = rt.spawn(on("queued"), "two").await.unwrap();
    let third = rt.spawn(on("queued"), "three").await.unwrap();

    assert_eq!(first.status().await.unwrap().phase, RunPhase::Model);
    let s2 = second.status().await.unwrap();
    assert_eq!((s2.phase, s2.step, s2.run_id), (RunPhase::Queued, 0, second.id()));

    second.steer("also this").await.unwrap();
    third.cancel().await;
    let t = third.outcome().await;
    assert_eq!((t.end.clone(), t.steps), (RunEnd::Cancelled, 0));
    assert!(third.status().await.is_none_or(|s| matches!(s.phase, RunPhase::Ended(_))));

    first.cancel().await;
    assert_eq!(first.outcome().await.end, RunEnd::Cancelled);
    let out = second.outcome().await;
    assert_eq!(out.output.as_deref(), Some("ran after the blocker"));
    let request = &fake.requests_for("queued")[0];
    assert_eq!(request.messages, [Message::user("two"), Message::user("also this")]);
    assert_eq!(fake.calls_for("queued"), 1, "the cancelled queued run never called the model");
}

#[tokio::test(start_paused = true)]
async fn the_run_timeout_holds_after_the_caller_dropped_its_handle() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::hang());
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let ports = Ports { delivery: Arc::new(ChannelDelivery(tx)), ..Ports::default() };
    let rt = runtime(&fake, Arc::default(), ports);
    let agent = agent().with_limits(Limits { timeout: Duration::from_secs(30), ..Limits::default() });
    let started = tokio::time::Instant::now();
    let handle = rt.spawn_with(RunRequest::new(agent, "go").deliver()).await.unwrap();
    let run_id = handle.id();
    drop(handle);
    let item = rx.recv().await.unwrap();
    assert_eq!(item.run_id, run_id);
    assert_eq!(item.status, "partial");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_secs(30) && elapsed < Duration::from_secs(31), "{elapsed:?}");
    wait_until_inactive(&rt).await;
    assert!(rt.ports().checkpoints.list_interrupted().await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_run_returns_its_transcript() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::tool_calls([call("c1", "echo", "a")]));
    fake.push("m", Outcome::hang());
    let rt = runtime(&fake, Arc::default(), Ports::default());
    let agent = agent().with_limits(Limits { timeout: Duration::from_secs(30), ..Limits::default() });
    let out = rt.run(agent, "go").await.unwrap();
    assert_eq!(out.end, RunEnd::TimedOut { after: Duration::from_secs(30) });
    assert_eq!(out.messages.len(), 3);
    assert_eq!(out.steps, 1);
}

#[tokio::test]
async fn a_duplicate_run_id_is_refused_without_disturbing_the_queued_run() {
    let fake = FakeProvider::new("fake");
    fake.push("blocker", Outcome::hang());
    fake.push("m", Outcome::text("must not run"));
    let rt = build(&fake, tools(Arc::default()), Ports::default(), solo_lane_config(), None);
    let mut blocker_agent = agent();
    blocker_agent.model = "fake/blocker".into();
    let blocker = rt.spawn(blocker_agent, "block").await.unwrap();
    let id = executus::RunId::new();
    let queued = rt.spawn_with(RunRequest::new(agent(), "one").run_id(id)).await.unwrap();
    match rt.spawn_with(RunRequest::new(agent(), "two").run_id(id)).await {
        Err(RuntimeError::AlreadyActive { run }) => assert_eq!(run, id),
        other => panic!("expected AlreadyActive, got {other:?}"),
    }
    // The queued run is still the one tracked under its id: cancelling it works.
    assert_eq!(rt.status(id).await.unwrap().phase, RunPhase::Queued);
    rt.cancel(id).await;
    assert_eq!(queued.outcome().await.end, RunEnd::Cancelled);
    blocker.cancel().await;
    blocker.outcome().await;
    assert_eq!(fake.calls_for("m"), 0, "the cancelled run never started");
}

#[tokio::test]
async fn finished_runs_leave_no_tasks_behind() {
    let fake = FakeProvider::new("fake");
    fake.fallback_for("m", Outcome::text("ok"));
    let rt = runtime(&fake, Arc::default(), Ports::default());
    let limits = Limits { soft_timeout: Some(Duration::from_secs(300)), ..Limits::default() };
    let settle = || async {
        wait_until_inactive(&rt).await;
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        tokio::runtime::Handle::current().metrics().num_alive_tasks()
    };
    rt.run(agent().with_limits(limits.clone()), "warm up").await.unwrap();
    let baseline = settle().await;
    for i in 0..20 {
        rt.run(agent().with_limits(limits.clone()), format!("run {i}")).await.unwrap();
    }
    let after = settle().await;
    assert!(after <= baseline + 2, "{baseline} tasks before, {after} after 20 runs: timers linger");
}

/// Waits (yielding) until the executor has no active run.
async fn wait_until_inactive(rt: &executus::Runtime) {
    for _ in 0..1000 {
        if rt.active_runs().await == 0 {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("runs still active");
}

/// A run whose actor panics still does what its own `finish` would have: the host asked for
/// delivery, so the failure is delivered (a scheduled job's failure must not vanish).
#[tokio::test]
async fn a_panicking_run_marked_for_delivery_is_delivered_as_failed() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::tool_calls([call("c1", "echo", "a")]));
    let audit = AuditLog::panicking(|r| matches!(r.event, AuditEvent::ToolCall { .. }));
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let ports = Ports { audit, delivery: Arc::new(ChannelDelivery(tx)), ..Ports::default() };
    let rt = runtime(&fake, Arc::default(), ports);
    let identity = executus::Identity::new("bob", "acme");
    let request = RunRequest::new(agent(), "go").identity(identity.clone()).deliver();
    let out = rt.spawn_with(request).await.unwrap().outcome().await;
    assert!(matches!(out.end, RunEnd::Failed { .. }), "{:?}", out.end);
    // A hang guard: the delivery follows the failure at once.
    let item = tokio::time::timeout(std::time::Duration::from_secs(60), rx.recv()).await.unwrap().unwrap();
    assert_eq!((item.run_id, item.status.as_str()), (out.run_id, "failed"));
    assert_eq!(item.identity, identity, "recovered from the checkpoint log");
}
