//! The executus side of every benchmark: a runtime over the mock, the trivial in-process
//! tool, the 3-step agent and its input (which carries the `#run=` key the mock pairs steps by).

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::Arc;

use executus::config::LaneSettings;
use executus::llm::providers::ProviderConfig;
use executus::llm::providers::openai::OpenAi;
use executus::llm::{HttpOptions, Registry};
use executus::tool::{ToolError, ToolRegistry, typed};
use executus::{RunEnd, RunOutcome, RunnableAgent, Runtime, RuntimeConfig};
use serde::Deserialize;

/// The provider name the mock is registered under.
pub const PROVIDER: &str = "mock";
/// The model spec agents use.
pub const MODEL: &str = "mock/bench-model";
/// The system prompt (the same text in every framework).
pub const SYSTEM: &str = "You look keys up with the lookup tool, then answer.";
/// The tool's name and description (the same in every framework).
pub const TOOL: &str = "lookup";
/// The tool's description.
pub const TOOL_DESCRIPTION: &str = "Looks a key up and returns its value.";

/// The user message of run `key`.
pub fn input(key: u64) -> String {
    format!("Look up two keys, then answer. #run={key}")
}

/// A registry holding the mock as an OpenAI-compatible provider.
///
/// # Errors
/// Never in practice (the provider name is valid).
pub fn registry(url: &str) -> anyhow::Result<Registry> {
    registry_over(url, false)
}

/// [`registry`], speaking HTTP/2 with prior knowledge when `http2` (the mock accepts both).
///
/// # Errors
/// Never in practice (the provider name is valid).
pub fn registry_over(url: &str, http2: bool) -> anyhow::Result<Registry> {
    let registry = Registry::new();
    let http = HttpOptions { http2_prior_knowledge: http2, ..HttpOptions::default() };
    registry.add_provider(Arc::new(OpenAi::new(ProviderConfig::new(PROVIDER, url).with_http(http))))?;
    Ok(registry)
}

#[derive(Deserialize, schemars::JsonSchema)]
struct LookupArgs {
    /// The key to look up.
    key: String,
}

/// The trivial in-process tool: `lookup(key) -> "value of <key>"`.
pub fn tools() -> ToolRegistry {
    ToolRegistry::new().with(
        typed(TOOL, TOOL_DESCRIPTION, |_ctx, a: LookupArgs| async move {
            Ok::<_, ToolError>(format!("value of {}", a.key))
        })
        .read_only()
        .idempotent()
        .arc(),
    )
}

/// The agent: the system prompt, the mock model, the lookup tool.
pub fn agent() -> RunnableAgent {
    RunnableAgent::new("bench", SYSTEM, MODEL).with_tools([TOOL])
}

/// A runtime over the mock with one lane, `default`, of `capacity` (queue as deep).
///
/// # Errors
/// If the registry cannot be built.
pub fn runtime(url: &str, capacity: usize, streaming: bool) -> anyhow::Result<Runtime> {
    runtime_over(url, capacity, streaming, false)
}

/// [`runtime`] over HTTP/2 with prior knowledge when `http2`.
///
/// # Errors
/// If the registry cannot be built.
pub fn runtime_over(url: &str, capacity: usize, streaming: bool, http2: bool) -> anyhow::Result<Runtime> {
    let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
    let mut lanes = BTreeMap::new();
    lanes.insert("default".to_owned(), LaneSettings { capacity, max_queue: capacity.get().max(10_000) });
    let config = RuntimeConfig { lanes, streaming, ..RuntimeConfig::default() };
    Ok(Runtime::builder().registry(registry_over(url, http2)?).tools(tools()).config(config).try_build()?)
}

/// Whether an outcome is the expected 3-step completion (`steps` model calls).
pub fn is_expected(outcome: &RunOutcome, steps: u32) -> bool {
    outcome.end == RunEnd::Completed
        && outcome.steps == steps
        && outcome.output.as_deref().is_some_and(|o| o.starts_with("done after"))
}
