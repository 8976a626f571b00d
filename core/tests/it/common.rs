//! Shared helpers: a runtime over the fake provider, counting tools.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use executus::llm::fake::FakeProvider;
use executus::llm::{Registry, ToolCall};
use executus::ports::Ports;
use executus::tool::{ToolError, ToolRegistry, typed};
use executus::{RunnableAgent, Runtime, RuntimeConfig};
use serde::Deserialize;

/// A registry holding one fake provider named `fake`.
pub fn registry(fake: &FakeProvider) -> Registry {
    let registry = Registry::new();
    registry.add_provider(Arc::new(fake.clone())).unwrap();
    registry
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct EchoArgs {
    pub text: String,
}

/// Tools: `echo` (counts calls, idempotent), `fail` (always errors), `boom` (panics),
/// `slow` (never finishes).
pub fn tools(counter: Arc<AtomicUsize>) -> ToolRegistry {
    let c = counter.clone();
    ToolRegistry::new()
        .with(
            typed("echo", "Echoes its text", move |_ctx, a: EchoArgs| {
                let c = c.clone();
                async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, ToolError>(format!("echo: {}", a.text))
                }
            })
            .idempotent()
            .read_only()
            .arc(),
        )
        .with(
            typed("fail", "Always fails", |_ctx, _a: EchoArgs| async move {
                Err::<String, _>(ToolError::failed("fail", "it always fails"))
            })
            .arc(),
        )
        .with(
            typed("boom", "Panics", |_ctx, _a: EchoArgs| async move {
                if true {
                    panic!("tool exploded");
                }
                Ok::<String, ToolError>(String::new())
            })
            .arc(),
        )
        .with(
            typed("slow", "Never finishes", |_ctx, _a: EchoArgs| async move {
                std::future::pending::<()>().await;
                Ok::<String, ToolError>(String::new())
            })
            .arc(),
        )
}

/// A runtime over `fake` with the test tools, non-streaming unless asked.
pub fn runtime(fake: &FakeProvider, counter: Arc<AtomicUsize>, ports: Ports) -> Runtime {
    let config = RuntimeConfig { streaming: false, ..RuntimeConfig::default() };
    Runtime::builder().registry(registry(fake)).tools(tools(counter)).ports(ports).config(config).build()
}

/// An agent on `fake/m` allowed every test tool.
pub fn agent() -> RunnableAgent {
    RunnableAgent::new("tester", "You test.", "fake/m").with_tools(["echo", "fail", "boom", "slow"])
}

/// A tool call.
pub fn call(id: &str, name: &str, text: &str) -> ToolCall {
    ToolCall { id: id.into(), name: name.into(), args: serde_json::json!({ "text": text }), signature: None }
}
