//! Full agent runs over the fake provider with MCP tools in the registry: the model calls
//! them as `mcp__<server>__<tool>`, results and images come back, a server killed mid-call is
//! a tool error and the run goes on.

use std::sync::Arc;

use executus::llm::fake::{FakeProvider, Outcome};
use executus::llm::{Part, Registry, Role, ToolCall};
use executus::tool::ToolRegistry;
use executus::{RunEnd, Runtime, RuntimeConfig};
use executus_mcp::McpHub;
use serde_json::{Value, json};

pub fn runtime(fake: &FakeProvider, hub: &McpHub) -> Runtime {
    let registry = Registry::new();
    registry.add_provider(Arc::new(fake.clone())).unwrap();
    let mut tools = ToolRegistry::new();
    hub.register(&mut tools).unwrap();
    let config = RuntimeConfig { streaming: false, ..RuntimeConfig::default() };
    Runtime::builder().registry(registry).tools(tools).config(config).build()
}

pub fn call(id: &str, name: &str, args: Value) -> ToolCall {
    ToolCall { id: id.into(), name: name.into(), args, signature: None }
}

pub fn results(messages: &[executus::llm::Message]) -> Vec<executus::llm::ToolResult> {
    messages
        .iter()
        .flat_map(|m| m.parts.iter())
        .filter_map(|p| match p {
            Part::ToolResult(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn an_agent_calls_mcp_tools_through_a_full_run() {
    let peers = crate::peers!();
    let hub = McpHub::start(vec![peers.py_server("py", "serve"), peers.everything_stdio("everything")])
        .await
        .unwrap();
    let fake = FakeProvider::new("fake");
    fake.push(
        "m",
        Outcome::tool_calls([
            call("c1", "mcp__py__echo", json!({"text": "hi", "suffix": null})),
            call("c2", "mcp__py__picture", json!({})),
            call("c3", "mcp__everything__get-sum", json!({"a": 1, "b": 2})),
        ]),
    );
    fake.push("m", Outcome::text("done"));
    let rt = runtime(&fake, &hub);
    let tools =
        hub.expand("test", &["mcp:py/echo".into(), "mcp:py/picture".into(), "mcp:everything/*".into()]);
    let agent = executus::RunnableAgent::new("tester", "You test.", "fake/m").with_tools(tools.unwrap());
    let out = rt.run(agent, "go").await.unwrap();
    assert_eq!(out.end, RunEnd::Completed, "{out:?}");

    // The model was offered the MCP tools by their exposed names, with strict schemas.
    let first = &fake.requests_for("m")[0];
    let echo_spec = first.tools.iter().find(|t| t.name == "mcp__py__echo").unwrap();
    assert_eq!(echo_spec.parameters["additionalProperties"], json!(false));
    assert!(first.tools.iter().any(|t| t.name == "mcp__everything__echo"));
    assert!(!first.tools.iter().any(|t| t.name == "mcp__py__die"), "only the selected tools");

    // It saw every result, and the picture as an image after the results.
    let second = &fake.requests_for("m")[1];
    let got: Vec<(String, String, bool)> =
        results(&second.messages).into_iter().map(|r| (r.id, r.content, r.is_error)).collect();
    assert_eq!(got[0], ("c1".into(), "echo: hi".into(), false));
    assert_eq!(got[1], ("c2".into(), "a red pixel".into(), false));
    assert!(got[2].1.contains('3') && !got[2].2, "{got:?}");
    let last = second.messages.last().unwrap();
    assert_eq!(last.role, Role::User);
    assert!(
        matches!(&last.parts[1], Part::Image { mime, data } if mime == "image/png" && data.starts_with(b"\x89PNG"))
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn a_server_killed_mid_call_is_a_tool_error_and_the_run_continues() {
    let peers = crate::peers!();
    let hub = McpHub::start(vec![peers.py_server("py", "serve")]).await.unwrap();
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::tool_calls([call("c1", "mcp__py__die", json!({}))]));
    fake.push("m", Outcome::tool_calls([call("c2", "mcp__py__echo", json!({"text": "after"}))]));
    fake.push("m", Outcome::text("recovered"));
    let rt = runtime(&fake, &hub);
    let agent = executus::RunnableAgent::new("tester", "You test.", "fake/m")
        .with_tools(hub.expand("test", &["mcp:py/*".into()]).unwrap());
    let out = rt.run(agent, "go").await.unwrap();
    assert_eq!(out.end, RunEnd::Completed, "{out:?}");
    assert_eq!(out.output.as_deref(), Some("recovered"));
    let got = results(&out.messages);
    assert!(got[0].is_error && got[0].content.contains("exited during the call"), "{got:?}");
    assert_eq!(
        (got[1].content.as_str(), got[1].is_error),
        ("echo: after", false),
        "restarted for the next call"
    );
    hub.shutdown().await;
}
