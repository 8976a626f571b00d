//! Ollama's native chat API (`POST {base}/api/chat`), for a local server and for Ollama cloud.
//!
//! - The base URL goes through [`normalize_host`], so every `OLLAMA_HOST` spelling works
//!   (`localhost`, `host:port`, `[::1]:11434`, `https://ollama.com`); an empty base is the
//!   default local server.
//! - A configured key is sent as `Authorization: Bearer <key>` (Ollama cloud); local servers
//!   need none.
//! - Streaming is NDJSON: one JSON object per line (lines are capped by
//!   [`crate::HttpOptions::max_line_bytes`]). Text and thinking arrive as deltas, tool calls
//!   arrive whole; the `done: true` line carries usage and the finish reason. A
//!   `{"error": ...}` line is a transient error item, a line that is not JSON a decode error,
//!   and a stream that ends without `done: true` a transient truncation error.
//! - Thinking text is exposed only as [`StreamEvent::ReasoningDelta`]; it never becomes part
//!   of the answer message.
//!
//! Translation choices (Ollama has no field for some canonical concepts):
//! - tool results become `role: "tool"` messages with `tool_name` (and `tool_call_id`); an
//!   error result's content is prefixed with `Error: ` since Ollama has no error flag;
//! - tool choice: `None` sends no tools; `Required` and `Tool(name)` (which also narrows the
//!   tools to that one) are stated in the system prompt, as Ollama cannot force a call;
//! - structured output sets `format` to the schema *and* states the schema in the system
//!   prompt, because some Ollama-compatible endpoints ignore `format`;
//! - reasoning effort -> `think`: `Minimal` is `false` (thinking off: Ollama has no "minimal"
//!   level and off is the nearest), `Low`/`Medium`/`High` are the strings `"low"`,
//!   `"medium"`, `"high"`; unset leaves `think` out (the server's default). A model that
//!   cannot think answers any `think` with a 400, which surfaces as a permanent error;
//! - tool-call arguments are always sent as an object, as Ollama requires: a call whose
//!   arguments were not a JSON object is sent as `{"_raw": <original>}`;
//! - [`Request::extra`] is merged into the body last: objects merge key by key (so
//!   `{"options": {"num_ctx": 8192}}` adds to `options`), other values replace, `null` removes.
//!
//! Ollama does not report reasoning or cache tokens, so those usage fields stay zero.

mod host;
mod wire;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;

pub use host::{DEFAULT_HOST, DEFAULT_PORT, normalize_host};

use super::ProviderConfig;
use crate::error::{ErrorKind, Result};
use crate::http::{Http, join, preview};
use crate::media::{MediaKind, MediaLimits};
use crate::model::{Model, Provider};
use crate::stream::{EventStream, StreamEvent};
use crate::types::{Message, Part, Request, Response, Role};
use wire::Chunk;

/// An Ollama endpoint (native `/api/chat`). Cheap to clone; clones share one connection pool.
#[derive(Debug, Clone)]
pub struct Ollama {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    /// The normalised base URL, or why the configured one is invalid (reported by each call,
    /// since the constructor cannot fail).
    base: std::result::Result<String, String>,
    http: Http,
    media: MediaLimits,
}

impl Ollama {
    /// A provider from its config. `base_url` is normalised with [`normalize_host`]; an
    /// invalid one makes every call fail with a permanent error that says why.
    pub fn new(config: ProviderConfig) -> Self {
        let base = normalize_host(&config.base_url).map_err(|e| e.to_string());
        let http = Http::new(&config.name, config.http.clone(), config.api_key.clone());
        let media = config.media_or(MediaKind::Ollama);
        Self { inner: Arc::new(Inner { name: config.name, base, http, media }) }
    }

    /// The normalised base URL, or `None` when the configured one is invalid.
    pub fn base_url(&self) -> Option<&str> {
        self.inner.base.as_deref().ok()
    }
}

impl Provider for Ollama {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn model(&self, id: &str) -> Arc<dyn Model> {
        Arc::new(OllamaModel { inner: Arc::clone(&self.inner), id: id.to_owned() })
    }
}

/// One model on an Ollama endpoint.
#[derive(Debug)]
struct OllamaModel {
    inner: Arc<Inner>,
    id: String,
}

impl OllamaModel {
    /// Sends the chat request and returns the successful HTTP response.
    async fn send(&self, request: &Request, stream: bool) -> Result<reqwest::Response> {
        let http = &self.inner.http;
        let base =
            self.inner.base.as_ref().map_err(|reason| http.error(ErrorKind::Permanent, &self.id, reason))?;
        let body = wire::build_body(&self.id, request, stream);
        let mut builder = http.client.post(join(base, "api/chat")).json(&body);
        if let Some(key) = &http.secret {
            builder = builder.bearer_auth(key.expose());
        }
        http.send(&self.id, builder).await
    }
}

#[async_trait]
impl Model for OllamaModel {
    fn provider(&self) -> &str {
        &self.inner.name
    }

    fn model_id(&self) -> &str {
        &self.id
    }

    fn media_limits(&self) -> Option<MediaLimits> {
        Some(self.inner.media.clone())
    }

    async fn generate(&self, request: Request) -> Result<Response> {
        let http = &self.inner.http;
        let response = self.send(&request, false).await?;
        let mut chunk: Chunk = http.read_json(&self.id, response).await?;
        if let Some(message) = chunk.error_message() {
            return Err(http.error(ErrorKind::Transient, &self.id, message));
        }
        let calls = chunk.take_tool_calls();
        let finish = wire::finish_reason(chunk.done_reason.as_deref(), !calls.is_empty());
        let text = chunk.message.as_mut().and_then(|m| m.content.take()).unwrap_or_default();
        let mut parts = Vec::new();
        if !text.is_empty() {
            parts.push(Part::Text { text });
        }
        parts.extend(calls.into_iter().map(Part::ToolCall));
        Ok(Response {
            message: Message { role: Role::Assistant, parts },
            usage: chunk.usage(),
            finish_reason: finish,
            provider: self.inner.name.clone(),
            model: chunk.model.filter(|m| !m.is_empty()).unwrap_or_else(|| self.id.clone()),
        })
    }

    async fn stream(&self, request: Request) -> Result<EventStream> {
        let response = self.send(&request, true).await?;
        Ok(self.event_stream(response))
    }
}

impl OllamaModel {
    /// The event stream of a streamed response whose headers have arrived.
    fn event_stream(&self, response: reqwest::Response) -> EventStream {
        let lines = Box::pin(self.inner.http.lines(&self.id, response));
        let decoder = Decoder {
            http: self.inner.http.clone(),
            provider: self.inner.name.clone(),
            model: self.id.clone(),
            saw_tool_calls: false,
            finished: false,
        };
        let state = (lines, decoder, VecDeque::new());
        Box::pin(futures::stream::unfold(Some(state), |state| async move {
            let (mut lines, mut decoder, mut queue) = state?;
            loop {
                if let Some(event) = queue.pop_front() {
                    return Some((Ok(event), Some((lines, decoder, queue))));
                }
                if decoder.finished {
                    return None;
                }
                let step = match lines.next().await {
                    Some(Ok(line)) => decoder.line(&line),
                    Some(Err(e)) => Err(e),
                    None => Err(decoder.truncated()),
                };
                match step {
                    Ok(events) => queue.extend(events),
                    // The first error ends the stream; dropping `lines` closes the connection.
                    Err(e) => return Some((Err(e), None)),
                }
            }
        }))
    }
}

/// The event stream an Ollama model called `model` makes of `response` (for `crate::fuzzing`).
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_event_stream(
    config: ProviderConfig,
    model: &str,
    response: reqwest::Response,
) -> EventStream {
    let inner = Ollama::new(config).inner;
    OllamaModel { inner, id: model.to_owned() }.event_stream(response)
}

/// Turns NDJSON lines into stream events.
struct Decoder {
    http: Http,
    provider: String,
    model: String,
    saw_tool_calls: bool,
    finished: bool,
}

impl Decoder {
    /// The events of one line. After the `done: true` line the decoder is finished.
    #[allow(
        clippy::result_large_err,
        reason = "crate::Error is the crate-wide error type; boxing it here alone would not help"
    )]
    fn line(&mut self, line: &[u8]) -> Result<Vec<StreamEvent>> {
        let mut chunk: Chunk = serde_json::from_slice(line).map_err(|e| {
            self.http.error(
                ErrorKind::Decode,
                &self.model,
                format!("invalid JSON line in stream ({e}); line starts: {}", preview(line)),
            )
        })?;
        if let Some(message) = chunk.error_message() {
            return Err(self.http.error(ErrorKind::Transient, &self.model, message));
        }
        let mut events = Vec::new();
        if let Some(message) = chunk.message.as_mut() {
            if let Some(text) = message.thinking.take().filter(|t| !t.is_empty()) {
                events.push(StreamEvent::ReasoningDelta { text });
            }
            if let Some(text) = message.content.take().filter(|t| !t.is_empty()) {
                events.push(StreamEvent::TextDelta { text });
            }
        }
        for call in chunk.take_tool_calls() {
            self.saw_tool_calls = true;
            events.push(StreamEvent::ToolCall { call });
        }
        if chunk.done {
            self.finished = true;
            events.push(StreamEvent::Usage { usage: chunk.usage() });
            events.push(StreamEvent::Done {
                finish_reason: wire::finish_reason(chunk.done_reason.as_deref(), self.saw_tool_calls),
                provider: self.provider.clone(),
                model: chunk.model.filter(|m| !m.is_empty()).unwrap_or_else(|| self.model.clone()),
            });
        }
        Ok(events)
    }

    /// The error for a stream that ended before its `done: true` line.
    fn truncated(&self) -> crate::Error {
        self.http.error(
            ErrorKind::Transient,
            &self.model,
            "stream ended before its final `done: true` line (truncated)",
        )
    }
}
