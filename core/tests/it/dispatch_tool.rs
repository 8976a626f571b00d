//! The `dispatch_agent` tool obeys every DispatchGuard cap.

use std::sync::Arc;

use executus::dispatch::DispatchLimits;
use executus::llm::fake::{FakeProvider, Outcome};
use executus::llm::{Message, Part, Request, Role, ToolCall};
use executus::tool::ToolRegistry;
use executus::tool::dispatch_agent::DispatchAgent;
use executus::{RunEnd, RunnableAgent, Runtime, RuntimeConfig};
use serde_json::json;

use crate::common::registry;

fn dispatch(id: &str, agent: &str, input: &str) -> Outcome {
    Outcome::tool_calls([ToolCall {
        id: id.into(),
        name: "dispatch_agent".into(),
        args: json!({ "agent": agent, "input": input }),
        signature: None,
    }])
}

/// The last tool result the model was sent, if the last message is a tool message.
fn last_result(request: &Request) -> Option<(String, bool)> {
    let last = request.messages.last()?;
    if last.role != Role::Tool {
        return None;
    }
    last.parts.iter().find_map(|p| match p {
        Part::ToolResult(r) => Some((r.content.clone(), r.is_error)),
        _ => None,
    })
}

fn first_user(request: &Request) -> String {
    request.messages.iter().find(|m| m.role == Role::User).map(Message::text).unwrap_or_default()
}

fn runtime(fake: &FakeProvider, limits: DispatchLimits, agents: &[&str]) -> Runtime {
    let mut config = RuntimeConfig { streaming: false, dispatch: limits, ..RuntimeConfig::default() };
    for name in agents {
        config.agents.insert(
            (*name).into(),
            RunnableAgent::new(*name, format!("You are {name}."), format!("fake/{name}"))
                .with_tools(["dispatch_agent"]),
        );
    }
    Runtime::builder()
        .registry(registry(fake))
        .tools(ToolRegistry::new().with(DispatchAgent::arc()))
        .config(config)
        .build()
}

/// An agent that, given input `n`, dispatches itself with `n+1` until told no, then reports
/// what the tool said.
fn recursive(fake: &FakeProvider, name: &'static str) {
    fake.fallback_for(
        name,
        Outcome::dynamic(move |req| {
            if let Some((content, is_error)) = last_result(req) {
                return Outcome::text(format!("{}:{content}", if is_error { "refused" } else { "ok" }));
            }
            let n: u32 = first_user(req).trim().parse().unwrap_or(0);
            dispatch(&format!("d{n}"), name, &(n + 1).to_string())
        }),
    );
}

#[tokio::test]
async fn depth_cap_refuses_the_dispatch_past_max_depth() {
    let fake = FakeProvider::new("fake");
    recursive(&fake, "deep");
    let rt = runtime(&fake, DispatchLimits { max_depth: 3, max_fanout: 8, max_total: 32 }, &["deep"]);
    let agent = rt.agent("deep").await.unwrap();
    let out = rt.run(agent, "0").await.unwrap();
    assert_eq!(out.end, RunEnd::Completed, "{out:?}");
    // Root (depth 0) -> 1 -> 2 -> 3; the depth-3 run's dispatch to depth 4 is refused, and
    // every level above reports its child's answer.
    let inputs: Vec<String> = fake.requests_for("deep").iter().map(first_user).collect();
    for n in ["0", "1", "2", "3"] {
        assert!(inputs.iter().any(|i| i == n), "level {n} ran: {inputs:?}");
    }
    assert!(!inputs.iter().any(|i| i == "4"), "depth 4 must not run: {inputs:?}");
    let answer = out.output.unwrap();
    assert!(answer.starts_with("ok:ok:ok:refused:"), "{answer}");
    assert!(answer.contains("depth"), "{answer}");
}

#[tokio::test]
async fn an_agent_dispatching_itself_with_its_own_input_is_a_loop() {
    let fake = FakeProvider::new("fake");
    fake.fallback_for(
        "loopy",
        Outcome::dynamic(|req| match last_result(req) {
            Some((content, true)) => Outcome::text(format!("refused:{content}")),
            Some((content, false)) => Outcome::text(format!("ok:{content}")),
            None => dispatch("l1", "loopy", &first_user(req)),
        }),
    );
    let rt = runtime(&fake, DispatchLimits::default(), &["loopy"]);
    let out = rt.run(rt.agent("loopy").await.unwrap(), "same input").await.unwrap();
    let answer = out.output.unwrap();
    assert!(answer.starts_with("refused:"), "{answer}");
    assert!(answer.to_lowercase().contains("loop"), "{answer}");
    assert_eq!(fake.calls_for("loopy"), 2, "no child run started");
}

#[tokio::test]
async fn fanout_and_total_caps_hold() {
    let fake = FakeProvider::new("fake");
    // The boss dispatches 4 workers in one step; the workers answer at once.
    let calls: Vec<ToolCall> = (0..4)
        .map(|i| ToolCall {
            id: format!("w{i}"),
            name: "dispatch_agent".into(),
            args: json!({ "agent": "worker", "input": format!("job {i}") }),
            signature: None,
        })
        .collect();
    fake.push("boss", Outcome::tool_calls(calls));
    fake.push("boss", Outcome::text("boss done"));
    fake.fallback_for("worker", Outcome::text("worked"));
    let rt =
        runtime(&fake, DispatchLimits { max_depth: 3, max_fanout: 3, max_total: 32 }, &["boss", "worker"]);
    let out = rt.run(rt.agent("boss").await.unwrap(), "plan").await.unwrap();
    assert_eq!(out.end, RunEnd::Completed);
    let results: Vec<(String, bool)> = out
        .messages
        .iter()
        .flat_map(|m| m.parts.iter())
        .filter_map(|p| match p {
            Part::ToolResult(r) => Some((r.content.clone(), r.is_error)),
            _ => None,
        })
        .collect();
    assert_eq!(results.len(), 4);
    assert_eq!(results.iter().filter(|(_, e)| !e).count(), 3, "{results:?}");
    let refused: Vec<_> = results.iter().filter(|(_, e)| *e).collect();
    assert!(refused[0].0.contains("children, the maximum is 3"), "{refused:?}");
    assert_eq!(fake.calls_for("worker"), 3);

    // Total cap: 2 per root, with fan-out 8.
    let fake = FakeProvider::new("fake");
    let calls: Vec<ToolCall> = (0..3)
        .map(|i| ToolCall {
            id: format!("t{i}"),
            name: "dispatch_agent".into(),
            args: json!({ "agent": "worker", "input": format!("task {i}") }),
            signature: None,
        })
        .collect();
    fake.push("boss", Outcome::tool_calls(calls));
    fake.push("boss", Outcome::text("done"));
    fake.fallback_for("worker", Outcome::text("worked"));
    let rt: Arc<Runtime> = Arc::new(runtime(
        &fake,
        DispatchLimits { max_depth: 3, max_fanout: 8, max_total: 2 },
        &["boss", "worker"],
    ));
    let out = rt.run(rt.agent("boss").await.unwrap(), "plan").await.unwrap();
    let errors = out
        .messages
        .iter()
        .flat_map(|m| m.parts.iter())
        .filter(|p| matches!(p, Part::ToolResult(r) if r.is_error && r.content.contains("already holds 2 dispatches")))
        .count();
    assert_eq!(errors, 1, "{:?}", out.messages);
    assert_eq!(fake.calls_for("worker"), 2);
}
