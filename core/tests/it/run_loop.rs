//! The run loop over the fake provider: multi-step runs, parallel tool calls, every
//! `is_error` path, and the ends that keep the partial transcript.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use executus::llm::fake::{FakeProvider, Outcome};
use executus::llm::{Role, ToolCall, Usage};
use executus::ports::Ports;
use executus::tool::ToolError;
use executus::{Limits, LoopLimits, RunEnd, RuntimeConfig};
use serde_json::json;

use crate::common::{
    Concurrency, agent, all_results, build, call, config, results, runtime, text_tool, tool_loop, tools,
};
use crate::doubles::{BudgetCall, RecordingBudget};

#[tokio::test]
async fn multi_step_tool_run_completes() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::tool_calls([call("c1", "echo", "a")]));
    fake.push("m", Outcome::tool_calls([call("c2", "echo", "b")]));
    fake.push("m", Outcome::text("done"));
    let counter = Arc::new(AtomicUsize::new(0));
    let rt = runtime(&fake, counter.clone(), Ports::default());
    let out = rt.run(agent(), "go").await.unwrap();
    assert_eq!(out.end, RunEnd::Completed, "{out:?}");
    assert_eq!(out.status(), "completed");
    assert_eq!(out.output.as_deref(), Some("done"));
    assert_eq!(out.steps, 3);
    assert_eq!(counter.load(Ordering::SeqCst), 2);
    // user, assistant(call), tool, assistant(call), tool, assistant(text)
    let roles: Vec<Role> = out.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [Role::User, Role::Assistant, Role::Tool, Role::Assistant, Role::Tool, Role::Assistant]
    );
    // The model saw the tool result of the first call in its second request.
    let second = &fake.requests_for("m")[1];
    let last = second.messages.last().unwrap();
    assert_eq!(results(last)[0].content, "echo: a");
    assert_eq!(second.system.as_deref(), Some("You test."));
    assert_eq!(second.tools.len(), 4);
    assert_eq!(fake.calls_for("m"), 3);
}

#[tokio::test(start_paused = true)]
async fn tool_calls_of_one_step_run_concurrently_up_to_the_bound() {
    let fake = FakeProvider::new("fake");
    // Six calls in one answer; later calls finish first (shorter sleeps).
    let calls: Vec<ToolCall> = (0..6).map(|i| call(&format!("p{i}"), "par", &i.to_string())).collect();
    fake.push("m", Outcome::tool_calls(calls));
    fake.push("m", Outcome::text("done"));
    let conc = Arc::new(Concurrency::default());
    let c = conc.clone();
    let tools = tools(Arc::default()).with(text_tool("par", move |text| {
        let c = c.clone();
        async move {
            let _in = c.enter();
            let i: u64 = text.parse().unwrap();
            tokio::time::sleep(Duration::from_millis(100 * (6 - i))).await;
            Ok::<_, ToolError>(format!("par {i}"))
        }
    }));
    let rt = build(&fake, tools, Ports::default(), config(), None);
    let agent = agent().with_tools(["par"]).with_limits(Limits { tool_concurrency: 3, ..Limits::default() });
    let started = tokio::time::Instant::now();
    let out = rt.run(agent, "go").await.unwrap();
    assert_eq!(out.end, RunEnd::Completed, "{out:?}");
    assert_eq!(conc.max(), 3, "three calls overlapped, never more");
    // Sequential would take 2.1 s; three at a time finish in well under that.
    assert!(started.elapsed() < Duration::from_millis(1200), "took {:?}", started.elapsed());
    // One tool message, results in call order whatever the finish order.
    let tool_msg = &out.messages[2];
    assert_eq!(tool_msg.role, Role::Tool);
    let got: Vec<(String, String)> = results(tool_msg).into_iter().map(|r| (r.id, r.content)).collect();
    let want: Vec<(String, String)> = (0..6).map(|i| (format!("p{i}"), format!("par {i}"))).collect();
    assert_eq!(got, want);
}

#[tokio::test(start_paused = true)]
async fn every_failing_call_becomes_an_error_result_the_model_sees() {
    let fake = FakeProvider::new("fake");
    let raw =
        ToolCall { id: "raw".into(), name: "echo".into(), args: json!("{\"text\": oops"), signature: None };
    let list = ToolCall { id: "list".into(), name: "echo".into(), args: json!([1, 2]), signature: None };
    fake.push(
        "m",
        Outcome::tool_calls([
            call("unknown", "nope", "x"),
            call("denied", "secret", "x"),
            raw,
            list,
            call("err", "fail", "x"),
            call("panic", "boom", "x"),
            call("late", "slow", "x"),
            call("big", "big", "x"),
            call("ok", "echo", "fine"),
        ]),
    );
    fake.push("m", Outcome::text("recovered"));
    let counter = Arc::new(AtomicUsize::new(0));
    let tools = tools(counter.clone())
        .with(text_tool("secret", |_| async { Ok::<_, ToolError>("classified".to_owned()) }))
        .with(text_tool("big", |_| async { Ok::<_, ToolError>("x".repeat(10_000)) }));
    let config = RuntimeConfig { max_tool_output_bytes: 1000, ..config() };
    let rt = build(&fake, tools, Ports::default(), config, None);
    let limits = Limits { tool_timeout: Duration::from_secs(5), tool_error_limit: 100, ..Limits::default() };
    let agent = agent().with_tools(["big"]).with_limits(limits);
    let started = tokio::time::Instant::now();
    let out = rt.run(agent, "go").await.unwrap();
    assert_eq!(out.end, RunEnd::Completed, "the run goes on after failing calls: {out:?}");
    assert_eq!(out.output.as_deref(), Some("recovered"));
    // The slow tool was cut at its own timeout, not the run's.
    assert!(started.elapsed() < Duration::from_secs(6), "took {:?}", started.elapsed());

    let request = &fake.requests_for("m")[1];
    let got = results(request.messages.last().unwrap());
    let by_id =
        |id: &str| got.iter().find(|r| r.id == id).unwrap_or_else(|| panic!("no result {id}")).clone();
    let expect_error = |id: &str, needles: &[&str]| {
        let r = by_id(id);
        assert!(r.is_error, "{id} should be an error: {r:?}");
        for n in needles {
            assert!(r.content.contains(n), "{id}: {:?} lacks {n:?}", r.content);
        }
    };
    expect_error("unknown", &["unknown tool \"nope\"", "echo"]);
    expect_error("denied", &["not allowed", "tester"]);
    expect_error("raw", &["not valid JSON", "oops"]);
    expect_error("list", &["must be a JSON object", "[1,2]"]);
    expect_error("err", &["it always fails"]);
    expect_error("panic", &["panicked", "tool exploded"]);
    expect_error("late", &["timed out", "5s"]);
    let big = by_id("big");
    assert!(!big.is_error);
    assert!(big.content.len() < 1200, "truncated to about the cap: {}", big.content.len());
    assert!(big.content.starts_with(&"x".repeat(1000)));
    assert!(big.content.contains("truncated: 10000 bytes"), "{}", big.content);
    let ok = by_id("ok");
    assert_eq!((ok.is_error, ok.content.as_str()), (false, "echo: fine"));
    // One result per call, in call order.
    let ids: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["unknown", "denied", "raw", "list", "err", "panic", "late", "big", "ok"]);
    // Refused calls never reached a tool; the only echo call that ran is "ok".
    assert_eq!(counter.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn max_steps_keeps_the_partial_transcript() {
    let fake = FakeProvider::new("fake");
    fake.fallback_for("m", tool_loop("echo", usize::MAX));
    let counter = Arc::new(AtomicUsize::new(0));
    let rt = runtime(&fake, counter.clone(), Ports::default());
    let agent = agent().with_limits(Limits { max_steps: 3, ..Limits::default() });
    let out = rt.run(agent, "go").await.unwrap();
    assert_eq!(out.end, RunEnd::MaxSteps { steps: 3 });
    assert_eq!(out.status(), "partial");
    assert_eq!(out.steps, 3);
    assert_eq!(fake.calls_for("m"), 3, "no model call past the cap");
    assert_eq!(counter.load(Ordering::SeqCst), 3);
    // user + 3 x (assistant, tool)
    assert_eq!(out.messages.len(), 7);
    let contents: Vec<String> = all_results(&out.messages).into_iter().map(|r| r.content).collect();
    assert_eq!(contents, ["echo: step 0", "echo: step 1", "echo: step 2"]);
}

#[tokio::test]
async fn budget_denial_keeps_the_transcript_and_settles_with_real_usage() {
    let fake = FakeProvider::new("fake");
    let usage = Usage { input_tokens: 120, output_tokens: 30, ..Usage::default() };
    fake.push("m", Outcome::tool_calls([call("c1", "echo", "a")]).with_usage(usage));
    fake.push("m", Outcome::text("never served"));
    let budget = RecordingBudget::denying_at(2);
    let ports = Ports { budget: budget.clone(), ..Ports::default() };
    let rt = runtime(&fake, Arc::default(), ports);
    let out = rt.run(agent(), "go").await.unwrap();
    let RunEnd::BudgetDenied(denied) = &out.end else { panic!("expected budget denial: {out:?}") };
    assert!(
        matches!(denied, executus::ports::BudgetDenied::Exhausted { scope, .. } if scope == "user:anonymous"),
        "{denied:?}"
    );
    assert_eq!(out.status(), "budget_denied");
    assert_eq!(fake.calls_for("m"), 1, "the denied call never reached the model");
    assert_eq!(out.usage, usage, "usage spent so far is returned");
    let roles: Vec<Role> = out.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::User, Role::Assistant, Role::Tool], "transcript so far is kept");

    let calls = budget.calls();
    assert_eq!(calls.len(), 3, "{calls:?}");
    let BudgetCall::Reserve(first) = &calls[0] else { panic!("reserve first: {calls:?}") };
    assert_eq!(first.targets, ["fake/m"]);
    assert_eq!(first.run_id, out.run_id);
    assert!(first.input_tokens > 0);
    assert_eq!(first.max_output_tokens, 4096);
    assert_eq!(
        calls[1],
        BudgetCall::Settle {
            reservation: executus::ports::Reservation { id: 1, amount: 0.25 },
            usage,
            provider: "fake".into(),
            model: "m".into(),
        }
    );
    let BudgetCall::Reserve(second) = &calls[2] else { panic!("second reserve: {calls:?}") };
    assert!(second.input_tokens > first.input_tokens, "the second prompt is longer");
}

#[tokio::test]
async fn a_permanent_model_error_fails_the_run_with_its_transcript() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::tool_calls([call("c1", "echo", "a")]));
    fake.push("m", Outcome::permanent("model refuses: bad request"));
    let rt = runtime(&fake, Arc::default(), Ports::default());
    let out = rt.run(agent(), "go").await.unwrap();
    let RunEnd::Failed { error } = &out.end else { panic!("expected failure: {out:?}") };
    assert!(error.contains("model refuses: bad request"), "{error}");
    assert_eq!(out.status(), "failed");
    assert_eq!(out.steps, 1);
    assert_eq!(out.messages.len(), 3);
    assert_eq!(all_results(&out.messages)[0].content, "echo: a");
}

#[tokio::test]
async fn consecutive_tool_failures_end_the_run_at_the_limit() {
    let fake = FakeProvider::new("fake");
    fake.fallback_for("m", tool_loop("fail", usize::MAX));
    let rt = runtime(&fake, Arc::default(), Ports::default());
    let limits = Limits {
        tool_error_limit: 3,
        loops: LoopLimits { unproductive: 100, stagnation: 100, ..LoopLimits::default() },
        ..Limits::default()
    };
    let out = rt.run(agent().with_limits(limits), "go").await.unwrap();
    assert_eq!(out.end, RunEnd::ToolErrorLimit { failures: 3 });
    assert_eq!(out.status(), "stopped");
    assert_eq!(out.steps, 3);
    assert_eq!(all_results(&out.messages).len(), 3, "the failing results are kept");
}

#[tokio::test]
async fn a_success_resets_the_tool_error_streak() {
    let fake = FakeProvider::new("fake");
    // fail, fail, echo, fail, fail, text: never 3 failures in a row.
    for (i, tool) in ["fail", "fail", "echo", "fail", "fail"].into_iter().enumerate() {
        fake.push("m", Outcome::tool_calls([call(&format!("c{i}"), tool, &i.to_string())]));
    }
    fake.push("m", Outcome::text("done"));
    let rt = runtime(&fake, Arc::default(), Ports::default());
    let limits = Limits {
        tool_error_limit: 3,
        loops: LoopLimits { unproductive: 100, stagnation: 100, ..LoopLimits::default() },
        ..Limits::default()
    };
    let out = rt.run(agent().with_limits(limits), "go").await.unwrap();
    assert_eq!(out.end, RunEnd::Completed, "{out:?}");
    assert_eq!(out.steps, 6);
}

#[tokio::test]
async fn images_a_tool_returns_follow_the_tool_results_as_a_user_message() {
    use executus::llm::Part;
    use executus::tool::{ToolImage, ToolOutput, typed};

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    struct Shot {}
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::tool_calls([call("s1", "shot", "x"), call("e1", "echo", "plain")]));
    fake.push("m", Outcome::text("seen"));
    let shot = typed("shot", "Returns a picture", |_ctx, _a: Shot| async {
        Ok::<_, ToolError>(ToolOutput {
            text: "one picture".into(),
            images: vec![ToolImage { mime: "image/png".into(), data: vec![0x89, b'P', b'N', b'G'] }],
        })
    })
    .arc();
    let rt = build(&fake, tools(Arc::default()).with(shot), Ports::default(), config(), None);
    let out = rt.run(agent().with_tools(["shot"]), "go").await.unwrap();
    assert_eq!(out.end, RunEnd::Completed, "{out:?}");
    // user, assistant(calls), tool(results), user(images), assistant(text)
    let roles: Vec<Role> = out.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::User, Role::Assistant, Role::Tool, Role::User, Role::Assistant]);
    let second = &fake.requests_for("m")[1];
    let n = second.messages.len();
    let tool_msg = &second.messages[n - 2];
    let got: Vec<(String, String)> = results(tool_msg).into_iter().map(|r| (r.id, r.content)).collect();
    assert_eq!(
        got,
        [("s1".to_owned(), "one picture".to_owned()), ("e1".to_owned(), "echo: plain".to_owned())]
    );
    let images = &second.messages[n - 1];
    assert_eq!(images.role, Role::User);
    assert_eq!(
        images.parts,
        [
            Part::Text { text: "[images returned by tool shot (call s1)]".into() },
            Part::Image { mime: "image/png".into(), data: vec![0x89, b'P', b'N', b'G'] },
        ]
    );
}
