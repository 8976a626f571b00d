//! Shared helpers: a runtime over the fake provider with a judge model, a recording
//! escalator, a slow agent.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use executus::llm::fake::{FakeProvider, Outcome};
use executus::llm::{Registry, ToolCall};
use executus::meta::MetaLlm;
use executus::ports::{PortError, Ports};
use executus::tool::{ToolError, ToolRegistry, typed};
use executus::{Limits, RunnableAgent, Runtime, RuntimeConfig};
use executus_critic::{CriticConfig, Escalation, Escalator, LlmCritic};
use serde::Deserialize;

/// Model id of the judge.
pub const JUDGE: &str = "judge";

/// An escalator that records what it is told.
#[derive(Default)]
pub struct Recorder(pub Mutex<Vec<Escalation>>);

#[async_trait]
impl Escalator for Recorder {
    async fn escalate(&self, escalation: Escalation) -> Result<(), PortError> {
        self.0.lock().unwrap().push(escalation);
        Ok(())
    }
}

impl Recorder {
    pub fn taken(&self) -> Vec<Escalation> {
        self.0.lock().unwrap().clone()
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct EchoArgs {
    pub text: String,
}

/// A registry holding `fake`.
pub fn registry(fake: &FakeProvider) -> Registry {
    let registry = Registry::new();
    registry.add_provider(Arc::new(fake.clone())).unwrap();
    registry
}

/// A critic judging with `fake/judge`, escalating to a recorder.
pub fn critic(fake: &FakeProvider, config: CriticConfig) -> (LlmCritic, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let meta = MetaLlm::new(&registry(fake), &format!("fake/{JUDGE}")).unwrap();
    let critic = LlmCritic::new(meta, config).unwrap().with_escalator(recorder.clone());
    (critic, recorder)
}

/// A runtime over `fake` with an `echo` tool and `critic` as its critic.
pub fn runtime(fake: &FakeProvider, critic: LlmCritic) -> Runtime {
    let tools = ToolRegistry::new().with(
        typed("echo", "Echoes its text", |_ctx, a: EchoArgs| async move {
            Ok::<_, ToolError>(format!("echo: {}", a.text))
        })
        .idempotent()
        .read_only()
        .arc(),
    );
    let config = RuntimeConfig { streaming: false, ..RuntimeConfig::default() };
    let ports = Ports { critic: Arc::new(critic), ..Ports::default() };
    Runtime::builder().registry(registry(fake)).tools(tools).ports(ports).config(config).build()
}

/// The agent model `fake/m` answers every request after `delay` with a fresh `echo` call
/// (distinct arguments, so loop protection stays quiet): a run that never finishes.
pub fn slow_agent_model(fake: &FakeProvider, delay: Duration) {
    fake.fallback_for(
        "m",
        Outcome::dynamic(move |req| {
            let n = req.messages.len();
            let call = ToolCall {
                id: format!("c{n}"),
                name: "echo".into(),
                args: serde_json::json!({ "text": format!("step {n}") }),
                signature: None,
            };
            Outcome::delay(delay, Outcome::tool_calls([call]))
        }),
    );
}

/// An agent on `fake/m` with `echo`, these limits.
pub fn agent(limits: Limits) -> RunnableAgent {
    RunnableAgent::new("worker", "You work.", "fake/m").with_tools(["echo"]).with_limits(limits)
}

/// A judge answer.
pub fn judgement(verdict: &str, reason: &str) -> Outcome {
    Outcome::json(&serde_json::json!({ "verdict": verdict, "reason": reason }))
}
