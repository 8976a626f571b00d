//! Anthropic Messages API (`POST {base}/v1/messages`): Claude, and servers that speak the same
//! protocol (llama.cpp `llama-server` answers it at its root URL).
//!
//! What it does:
//! - Maps a canonical [`Request`] to the wire body (`request`): top-level `system`,
//!   `max_tokens` always present (defaulted from [`AnthropicOptions::default_max_tokens`]),
//!   consecutive same-role messages merged, tool results sent as `user` messages holding
//!   `tool_result` blocks with the native `is_error`, tool choice, stop sequences, extended
//!   thinking, prompt caching (`cache_control` on the system prompt, the last tool and the last
//!   block of the last message) and [`Request::extra`] merged into the body last.
//! - Maps the response back (`response`) and parses the full SSE event stream (`sse`):
//!   text, tool calls assembled from `input_json_delta` fragments, thinking as
//!   [`StreamEvent::ReasoningDelta`](crate::StreamEvent), usage from `message_start` and
//!   `message_delta`, a mid-stream `event: error` as a classified error item, and a stream
//!   that ends before `message_stop` as a transient truncation error.
//!
//! Choices worth knowing:
//! - **Structured output** uses a forced tool, the one method that works on every Claude model
//!   and on compatible servers: the schema becomes the `input_schema` of a synthetic tool named
//!   after [`crate::ResponseSchema::name`], `tool_choice` forces it (or `any` when the request
//!   also offers its own tools, so the model can still call those first), and the tool's
//!   input comes back as a JSON text part with finish reason `Stop`. A schema whose top level
//!   is not an object is wrapped in `{"value": ...}` (tool inputs must be objects) and
//!   unwrapped on the way back.
//! - **Reasoning effort** maps to `thinking: {type: enabled, budget_tokens}` with the budgets
//!   of [`ThinkingBudgets`]. The API requires `max_tokens > budget_tokens`: when the request's
//!   `max_tokens` does not exceed the budget, the budget is added to it (the caller's cap is
//!   then read as the allowance for the answer itself). The API rejects `temperature` and a
//!   forced tool choice while thinking, so `temperature` is omitted when thinking, and a
//!   forced tool choice (`Required`, a named tool, or structured output) disables thinking for
//!   that request.
//! - **Thinking and tool use**: the API requires the thinking blocks of an assistant turn that
//!   called tools to be sent back verbatim (with their signature) with the tool results. The
//!   canonical message has no thinking part, so the signed blocks ride on the first
//!   following tool call's [`crate::ToolCall::signature`] (prefixed `anthropic-thinking:v1:`)
//!   and are restored in front of it. Unsigned thinking (local servers) is not carried.
//! - [`Request::seed`] has no Anthropic equivalent and is ignored.
//!
//! It does not retry or fail over (the chain does), and it never puts the API key anywhere
//! but the `x-api-key` header: every error goes through the shared HTTP plumbing
//! ([`crate::http`]), which scrubs it.

mod request;
mod response;
mod sse;
mod thinking;

pub(crate) use thinking::PREFIX as THINKING_SIGNATURE_PREFIX;

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;

use super::ProviderConfig;
use crate::error::Result;
use crate::http::{Http, join};
use crate::media::{MediaKind, MediaLimits};
use crate::model::{Model, Provider};
use crate::stream::EventStream;
use crate::types::{Capabilities, ReasoningEffort, Request, Response};

/// The `anthropic-version` header sent by default.
pub const DEFAULT_VERSION: &str = "2023-06-01";

/// Thinking-token budgets per [`ReasoningEffort`] level (`thinking.budget_tokens`; the API's
/// minimum is 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThinkingBudgets {
    /// Budget for [`ReasoningEffort::Minimal`].
    pub minimal: u32,
    /// Budget for [`ReasoningEffort::Low`].
    pub low: u32,
    /// Budget for [`ReasoningEffort::Medium`].
    pub medium: u32,
    /// Budget for [`ReasoningEffort::High`].
    pub high: u32,
}

impl Default for ThinkingBudgets {
    fn default() -> Self {
        Self { minimal: 1024, low: 2048, medium: 8192, high: 16384 }
    }
}

impl ThinkingBudgets {
    /// The budget for `effort`.
    pub fn budget(&self, effort: ReasoningEffort) -> u32 {
        match effort {
            ReasoningEffort::Minimal => self.minimal,
            ReasoningEffort::Low => self.low,
            ReasoningEffort::Medium => self.medium,
            ReasoningEffort::High => self.high,
        }
    }
}

/// Settings of the Anthropic wire client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnthropicOptions {
    /// The `anthropic-version` header ([`DEFAULT_VERSION`] by default).
    pub version: String,
    /// `max_tokens` sent when the request has none (the API requires the field). 4096 by default.
    pub default_max_tokens: u32,
    /// Thinking budgets per reasoning-effort level.
    pub thinking_budgets: ThinkingBudgets,
    /// Beta feature names sent comma-separated in the `anthropic-beta` header (none by default).
    pub beta: Vec<String>,
}

impl Default for AnthropicOptions {
    fn default() -> Self {
        Self {
            version: DEFAULT_VERSION.to_owned(),
            default_max_tokens: 4096,
            thinking_budgets: ThinkingBudgets::default(),
            beta: Vec::new(),
        }
    }
}

/// An Anthropic Messages endpoint: hands out [`Model`]s that share one connection pool.
#[derive(Debug, Clone)]
pub struct Anthropic {
    config: Arc<ProviderConfig>,
    options: Arc<AnthropicOptions>,
    http: Http,
    media: Arc<MediaLimits>,
}

impl Anthropic {
    /// A provider from its config. `config.base_url` is the server root
    /// (`https://api.anthropic.com`, `http://127.0.0.1:8080`); a root that already ends in
    /// `/v1` is accepted too.
    pub fn new(config: ProviderConfig) -> Self {
        let http = Http::new(&config.name, config.http.clone(), config.api_key.clone());
        let media = Arc::new(config.media_or(MediaKind::Anthropic));
        Self { config: Arc::new(config), options: Arc::new(AnthropicOptions::default()), http, media }
    }

    /// Replaces the client settings.
    #[must_use]
    pub fn with_options(mut self, options: AnthropicOptions) -> Self {
        self.options = Arc::new(options);
        self
    }

    /// The settings in use.
    pub fn options(&self) -> &AnthropicOptions {
        &self.options
    }

    /// The full URL requests are sent to.
    pub fn messages_url(&self) -> String {
        messages_url(&self.config.base_url)
    }
}

fn messages_url(base: &str) -> String {
    if base.trim_end_matches('/').ends_with("/v1") {
        join(base, "messages")
    } else {
        join(base, "v1/messages")
    }
}

impl Provider for Anthropic {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn model(&self, id: &str) -> Arc<dyn Model> {
        Arc::new(AnthropicModel { provider: self.clone(), url: self.messages_url(), id: id.to_owned() })
    }
}

/// One model served by an [`Anthropic`] provider.
#[derive(Debug)]
struct AnthropicModel {
    provider: Anthropic,
    url: String,
    id: String,
}

impl AnthropicModel {
    fn post(&self, body: &serde_json::Value, streaming: bool) -> reqwest::RequestBuilder {
        let options = &self.provider.options;
        let mut builder = self
            .provider
            .http
            .client
            .post(&self.url)
            .header("anthropic-version", options.version.as_str())
            .header(reqwest::header::ACCEPT, if streaming { "text/event-stream" } else { "application/json" })
            .json(body);
        if let Some(key) = &self.provider.config.api_key {
            builder = builder.header("x-api-key", key.expose());
        }
        if !options.beta.is_empty() {
            builder = builder.header("anthropic-beta", options.beta.join(","));
        }
        builder
    }
}

#[async_trait]
impl Model for AnthropicModel {
    fn provider(&self) -> &str {
        &self.provider.config.name
    }

    fn model_id(&self) -> &str {
        &self.id
    }

    fn media_limits(&self) -> Option<MediaLimits> {
        Some(MediaLimits::clone(&self.provider.media))
    }

    fn capabilities(&self) -> Capabilities {
        // Vision depends on the model (every current Claude has it, most local models served
        // through this protocol do not): leave it unknown so the request is tried.
        Capabilities { tools: Some(true), vision: None, structured_output: Some(true), streaming: Some(true) }
    }

    async fn generate(&self, request: Request) -> Result<Response> {
        let http = &self.provider.http;
        let (body, plan) = request::build(&request, &self.id, &self.provider.options, false);
        let response = http.send(&self.id, self.post(&body, false)).await?;
        let wire: response::WireResponse = http.read_json(&self.id, response).await?;
        response::into_response(http, &self.id, &plan, wire)
    }

    async fn stream(&self, request: Request) -> Result<EventStream> {
        let http = &self.provider.http;
        let (body, plan) = request::build(&request, &self.id, &self.provider.options, true);
        let response = http.send(&self.id, self.post(&body, true)).await?;
        if is_json(&response) {
            // A compatible server that ignored `stream: true` and answered whole.
            let wire: response::WireResponse = http.read_json(&self.id, response).await?;
            let whole = response::into_response(http, &self.id, &plan, wire)?;
            return Ok(crate::stream::response_to_stream(whole));
        }
        let events = http.sse(&self.id, response);
        let parser = sse::Parser::new(http.clone(), &self.id, plan);
        Ok(sse::drive(events.boxed(), parser))
    }
}

/// The event stream an Anthropic model called `model` makes of a streamed `response` to
/// `request` (which decides the structured-output plan) (for `crate::fuzzing`).
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_event_stream(
    config: ProviderConfig,
    model: &str,
    request: &Request,
    response: reqwest::Response,
) -> EventStream {
    let http = Http::new(&config.name, config.http.clone(), config.api_key.clone());
    let (_, plan) = request::build(request, model, &AnthropicOptions::default(), true);
    let events = http.sse(model, response);
    sse::drive(events.boxed(), sse::Parser::new(http, model, plan))
}

fn is_json(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/json"))
}

#[cfg(test)]
mod tests;
