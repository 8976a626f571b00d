//! Shared helpers: a runtime over the fake provider, counting tools, event collection.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use executus::llm::fake::{FakeProvider, Outcome};
use executus::llm::{Message, Part, Registry, Request, Role, ToolCall, ToolResult};
use executus::ports::Ports;
use executus::tool::policy::Policy;
use executus::tool::{ToolError, ToolRegistry, typed};
use executus::{RunEvent, RunnableAgent, Runtime, RuntimeConfig};
use serde::Deserialize;
use tokio::sync::broadcast;

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

/// Tools: `echo` (counts calls, idempotent, read-only), `fail` (always errors), `boom`
/// (panics), `slow` (never finishes).
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

/// A configuration without streaming (the fake's plain responses are used as they are).
pub fn config() -> RuntimeConfig {
    RuntimeConfig { streaming: false, ..RuntimeConfig::default() }
}

/// A runtime over `fake` with the test tools, non-streaming.
pub fn runtime(fake: &FakeProvider, counter: Arc<AtomicUsize>, ports: Ports) -> Runtime {
    build(fake, tools(counter), ports, config(), None)
}

/// A runtime over `fake` with everything given.
pub fn build(
    fake: &FakeProvider,
    tools: ToolRegistry,
    ports: Ports,
    config: RuntimeConfig,
    policy: Option<Policy>,
) -> Runtime {
    let mut builder = Runtime::builder().registry(registry(fake)).tools(tools).ports(ports).config(config);
    if let Some(policy) = policy {
        builder = builder.policy(policy);
    }
    builder.build()
}

/// Spawns `request` and waits for its outcome.
pub async fn run_req(rt: &Runtime, request: executus::RunRequest) -> Arc<executus::RunOutcome> {
    rt.spawn_with(request).await.unwrap().outcome().await
}

/// An agent on `fake/m` allowed every test tool.
pub fn agent() -> RunnableAgent {
    RunnableAgent::new("tester", "You test.", "fake/m").with_tools(["echo", "fail", "boom", "slow"])
}

/// A tool call with `{"text": text}` arguments.
pub fn call(id: &str, name: &str, text: &str) -> ToolCall {
    ToolCall { id: id.into(), name: name.into(), args: serde_json::json!({ "text": text }), signature: None }
}

/// A tool built from a closure over its `text` argument.
pub fn text_tool<F, Fut>(name: &str, f: F) -> Arc<dyn executus::tool::Tool>
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, ToolError>> + Send + 'static,
{
    typed(name.to_owned(), format!("test tool {name}"), move |_ctx, a: EchoArgs| f(a.text)).arc()
}

/// Model answers in a request so far (the step the request is for is this plus one).
pub fn answered(request: &Request) -> usize {
    request.messages.iter().filter(|m| m.role == Role::Assistant).count()
}

/// A model that calls `tool` with distinct text at each step until `steps` answers were
/// given, then answers `done`.
pub fn tool_loop(tool: &'static str, steps: usize) -> Outcome {
    Outcome::dynamic(move |req| {
        let n = answered(req);
        if n < steps {
            Outcome::tool_calls([call(&format!("c{n}"), tool, &format!("step {n}"))])
        } else {
            Outcome::text("done")
        }
    })
}

/// The tool results of a message, in order.
pub fn results(message: &Message) -> Vec<ToolResult> {
    message
        .parts
        .iter()
        .filter_map(|p| match p {
            Part::ToolResult(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

/// Every tool result in a transcript, in order.
pub fn all_results(messages: &[Message]) -> Vec<ToolResult> {
    messages.iter().flat_map(results).collect()
}

/// Receives events until the run's `Ended` event (inclusive).
pub async fn events_until_end(rx: &mut broadcast::Receiver<RunEvent>) -> Vec<RunEvent> {
    let mut out = Vec::new();
    loop {
        match rx.recv().await {
            Ok(event) => {
                let end = matches!(event, RunEvent::Ended { .. });
                out.push(event);
                if end {
                    return out;
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => panic!("lagged by {n} events"),
            Err(broadcast::error::RecvError::Closed) => return out,
        }
    }
}

/// Waits for the first event matching `pred`.
pub async fn wait_for_event(
    rx: &mut broadcast::Receiver<RunEvent>,
    pred: impl Fn(&RunEvent) -> bool,
) -> RunEvent {
    loop {
        let event = rx.recv().await.expect("run events end before the awaited event");
        if pred(&event) {
            return event;
        }
    }
}

/// Counts concurrent holders and records the highest count.
#[derive(Default)]
pub struct Concurrency {
    now: AtomicUsize,
    max: AtomicUsize,
}

/// Held while inside; leaving happens on drop.
pub struct Entered(Arc<Concurrency>);

impl Concurrency {
    pub fn enter(self: &Arc<Self>) -> Entered {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        Entered(Arc::clone(self))
    }

    pub fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Sets its flag when dropped (to prove a future was dropped, i.e. cancelled).
pub struct DropFlag(pub Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
struct ProductArgs {
    /// `A*B` with two integers.
    expression: String,
}

/// A tool named `calc` that multiplies `A*B` (the fault suites' scripted model asks
/// `calc({"expression": "6*7"})`); the real calculator lives in executus-tools, which the
/// core does not depend on.
pub fn product_tool() -> Arc<dyn executus::tool::Tool> {
    typed("calc", "Multiplies A*B", |_ctx, a: ProductArgs| async move {
        let bad =
            || ToolError::InvalidArgs { tool: "calc".into(), message: format!("not A*B: {}", a.expression) };
        let (l, r) = a.expression.split_once('*').ok_or_else(bad)?;
        let (l, r): (i64, i64) = (l.trim().parse().map_err(|_| bad())?, r.trim().parse().map_err(|_| bad())?);
        Ok::<_, ToolError>(l.saturating_mul(r).to_string())
    })
    .read_only()
    .idempotent()
    .arc()
}
