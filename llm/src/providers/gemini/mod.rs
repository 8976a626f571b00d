//! Google Gemini (Generative Language API): `POST {base}/models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`.
//!
//! - The base defaults to [`DEFAULT_BASE`]; the key travels in the `x-goog-api-key` header,
//!   never in the URL (URLs end up in logs and proxies).
//! - Model ids are `gemini-2.5-flash` or a full resource name (`models/...`,
//!   `tunedModels/...`); ids with characters that could change the URL (`?`, `#`, `:`, `..`,
//!   spaces) are refused with a permanent error.
//! - Thought parts (`thought: true`) are reasoning: streamed as
//!   [`StreamEvent::ReasoningDelta`], never part of the answer message. A function call keeps
//!   its `thoughtSignature` in [`crate::ToolCall::signature`] so it can be sent back.
//! - A prompt blocked outright (`promptFeedback.blockReason`, no candidates) is a permanent
//!   error naming the reason; a candidate stopped by a safety filter is a normal response with
//!   [`crate::FinishReason::ContentFilter`].
//! - Streaming: every SSE `data:` event is a whole `GenerateContentResponse` chunk. Usage and
//!   `Done` are emitted when the stream ends after some chunk carried a `finishReason`; a
//!   stream that ends without one is a transient truncation error, an error object in the
//!   stream is an error item (classified by its `code` when it has one, else transient), and a
//!   chunk that is not JSON is a decode error.
//!
//! Translation choices:
//! - the assistant role is `model`; tool results travel in a `user` turn as
//!   `functionResponse {name, response}` parts, with `response` = `{"output": <content>}`
//!   (the content parsed as JSON when it is JSON, else the text) or `{"error": <content>}`
//!   for an error result — the keys Gemini documents for output and error;
//! - consecutive turns of the same role are merged into one (a tool-result turn followed by a
//!   user message becomes one `user` turn), and empty turns are dropped, since Gemini rejects
//!   empty `parts`;
//! - a tool call is sent back with its `thoughtSignature` (from [`crate::ToolCall::signature`]),
//!   which thinking models require — except a signature another client wrote (the Anthropic
//!   client's carried thinking blocks, prefixed `anthropic-thinking:v1:`), which would be
//!   rejected and is dropped; call ids are sent only when Gemini made them (ids this
//!   module synthesised start with `gemini_call_` and stay local);
//! - tool choice -> `toolConfig.functionCallingConfig.mode`: `Auto` -> `AUTO`,
//!   `None` -> `NONE`, `Required` -> `ANY`, `Tool(name)` -> `ANY` with
//!   `allowedFunctionNames: [name]`;
//! - reasoning effort -> `generationConfig.thinkingConfig` (always with
//!   `includeThoughts: true`, so thought summaries stream as reasoning):
//!   Gemini 2.5 models take a token budget (`Minimal` 512 — the smallest budget every 2.5
//!   model accepts —, `Low` 2048, `Medium` 8192, `High` 24576); Gemini 1.x and 2.0 models
//!   cannot think and get no thinking config; every other model (Gemini 3 and later) takes
//!   `thinkingLevel` = `minimal` / `low` / `medium` / `high` (Gemini 3 Pro accepts only
//!   `low` and `high`; override with [`Request::extra`] if needed);
//! - `seed` is an int32 on the wire: larger seeds are reduced modulo 2^31;
//! - [`Request::extra`] is merged into the body last: objects merge key by key (so
//!   `{"generationConfig": {"topK": 5}}` adds to the generation config), other values
//!   replace, `null` removes.
//!
//! Usage: `promptTokenCount` is the input (cached tokens included, as Gemini counts them),
//! `cachedContentTokenCount` the cache read; the output is `candidatesTokenCount` *plus*
//! `thoughtsTokenCount`, since thoughts are billed as output, and the thoughts alone are the
//! reasoning tokens.

mod image;
mod wire;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use serde_json::Value;

use super::ProviderConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::http::{Http, classify_status, error_message, preview};
use crate::imagegen::{ImageModel, ImageRequest, ImageResponse};
use crate::media::{MediaKind, MediaLimits};
use crate::model::{Model, Provider};
use crate::stream::{EventStream, StreamEvent};
use crate::types::{FinishReason, Message, Part, Request, Response, Role, Usage};
use wire::{GenerateResponse, Item};

/// The public Gemini API endpoint.
pub const DEFAULT_BASE: &str = "https://generativelanguage.googleapis.com/v1beta";

/// A Gemini endpoint. Cheap to clone; clones share one connection pool.
#[derive(Debug, Clone)]
pub struct Gemini {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    /// The base URL without a trailing slash, or why the configured one is invalid.
    base: std::result::Result<String, String>,
    http: Http,
    media: MediaLimits,
}

impl Gemini {
    /// A provider from its config. An empty `base_url` means [`DEFAULT_BASE`]; an invalid one
    /// makes every call fail with a permanent error that says why.
    pub fn new(config: ProviderConfig) -> Self {
        let raw = config.base_url.trim();
        let base = if raw.is_empty() { DEFAULT_BASE } else { raw.trim_end_matches('/') };
        let base = match url::Url::parse(base) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.query().is_none() => {
                Ok(base.to_owned())
            }
            Ok(_) => Err(format!("invalid Gemini base URL {base:?}: expected http(s) without a query")),
            Err(e) => Err(format!("invalid Gemini base URL {base:?}: {e}")),
        };
        let http = Http::new(&config.name, config.http.clone(), config.api_key.clone());
        let media = config.media_or(MediaKind::Gemini);
        Self { inner: Arc::new(Inner { name: config.name, base, http, media }) }
    }

    /// The base URL in use, or `None` when the configured one is invalid.
    pub fn base_url(&self) -> Option<&str> {
        self.inner.base.as_deref().ok()
    }
}

impl Provider for Gemini {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn model(&self, id: &str) -> Arc<dyn Model> {
        Arc::new(GeminiModel { inner: Arc::clone(&self.inner), id: id.to_owned() })
    }

    /// Image output through `generateContent` (see the `image` module docs).
    fn image_model(&self, id: &str) -> Option<Arc<dyn ImageModel>> {
        Some(Arc::new(GeminiModel { inner: Arc::clone(&self.inner), id: id.to_owned() }))
    }
}

/// One Gemini model.
#[derive(Debug)]
struct GeminiModel {
    inner: Arc<Inner>,
    id: String,
}

/// The resource path of a model id (`models/<id>` unless already a resource name), or `None`
/// when the id could alter the URL.
fn model_path(id: &str) -> Option<String> {
    let safe = !id.is_empty()
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | '@'))
        && !id.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..");
    if !safe {
        return None;
    }
    if id.starts_with("models/") || id.starts_with("tunedModels/") {
        Some(id.to_owned())
    } else {
        Some(format!("models/{id}"))
    }
}

impl GeminiModel {
    fn http(&self) -> &Http {
        &self.inner.http
    }

    /// `{base}/models/{id}:generateContent` (or the streaming method).
    fn url(&self, stream: bool) -> Result<String> {
        let http = self.http();
        let base =
            self.inner.base.as_ref().map_err(|reason| http.error(ErrorKind::Permanent, &self.id, reason))?;
        let path = model_path(&self.id).ok_or_else(|| {
            http.error(
                ErrorKind::Permanent,
                &self.id,
                "invalid Gemini model id (allowed: letters, digits, - _ . / @)",
            )
        })?;
        Ok(if stream {
            format!("{base}/{path}:streamGenerateContent?alt=sse")
        } else {
            format!("{base}/{path}:generateContent")
        })
    }

    async fn send(&self, request: &Request, stream: bool) -> Result<reqwest::Response> {
        self.post(self.url(stream)?, &wire::build_body(&self.id, request)).await
    }

    async fn post(&self, url: String, body: &Value) -> Result<reqwest::Response> {
        let http = self.http();
        let mut builder = http.client.post(url).json(body);
        if let Some(key) = &http.secret {
            builder = builder.header("x-goog-api-key", key.expose());
        }
        http.send(&self.id, builder).await
    }

    /// The error for an `{"error": ...}` object received with a success status.
    fn body_error(&self, error: &Value) -> Error {
        let wrapped = serde_json::json!({ "error": error });
        let message = error_message(wrapped.to_string().as_bytes());
        let code = error.get("code").and_then(Value::as_u64).and_then(|c| u16::try_from(c).ok());
        match code.filter(|c| (400..600).contains(c)) {
            Some(code) => {
                self.http().error(classify_status(code, &message), &self.id, message).with_status(code)
            }
            None => self.http().error(ErrorKind::Transient, &self.id, message),
        }
    }
}

#[async_trait]
impl Model for GeminiModel {
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
        let response = self.send(&request, false).await?;
        let mut body: GenerateResponse = self.http().read_json(&self.id, response).await?;
        if let Some(error) = body.error.as_ref().filter(|e| !e.is_null()) {
            return Err(self.body_error(error));
        }
        if let Some(reason) = body.blocked() {
            return Err(self.http().error(ErrorKind::Permanent, &self.id, reason));
        }
        let Some(mut candidate) = body.take_candidate() else {
            return Err(self.http().error(ErrorKind::Decode, &self.id, "response has no candidates"));
        };
        let mut parts: Vec<Part> = Vec::new();
        let mut has_calls = false;
        for item in candidate.take_items() {
            match item {
                Item::Text(text) => match parts.last_mut() {
                    Some(Part::Text { text: last }) => last.push_str(&text),
                    _ => parts.push(Part::Text { text }),
                },
                Item::Thought(_) => {}
                Item::Call(call) => {
                    has_calls = true;
                    parts.push(Part::ToolCall(call));
                }
            }
        }
        Ok(Response {
            message: Message { role: Role::Assistant, parts },
            usage: body.usage_metadata.as_ref().map(wire::UsageMetadata::usage).unwrap_or_default(),
            finish_reason: wire::finish_reason(candidate.finish_reason.as_deref(), has_calls),
            provider: self.inner.name.clone(),
            model: body.model_version().map_or_else(|| self.id.clone(), str::to_owned),
        })
    }

    async fn stream(&self, request: Request) -> Result<EventStream> {
        let response = self.send(&request, true).await?;
        Ok(self.event_stream(response))
    }
}

impl GeminiModel {
    /// The event stream of a streamed response whose headers have arrived.
    fn event_stream(&self, response: reqwest::Response) -> EventStream {
        let events = Box::pin(self.http().sse(&self.id, response));
        let decoder = Decoder {
            model: GeminiModel { inner: Arc::clone(&self.inner), id: self.id.clone() },
            usage: Usage::default(),
            finish: None,
            answered_by: None,
            saw_tool_calls: false,
            finished: false,
        };
        let state = (events, decoder, VecDeque::new());
        Box::pin(futures::stream::unfold(Some(state), |state| async move {
            let (mut events, mut decoder, mut queue) = state?;
            loop {
                if let Some(event) = queue.pop_front() {
                    return Some((Ok(event), Some((events, decoder, queue))));
                }
                if decoder.finished {
                    return None;
                }
                let step = match events.next().await {
                    Some(Ok((_, data))) => decoder.chunk(&data),
                    Some(Err(e)) => Err(e),
                    None => decoder.end(),
                };
                match step {
                    Ok(new) => queue.extend(new),
                    // The first error ends the stream; dropping `events` closes the connection.
                    Err(e) => return Some((Err(e), None)),
                }
            }
        }))
    }
}

#[async_trait]
impl ImageModel for GeminiModel {
    fn provider(&self) -> &str {
        &self.inner.name
    }

    fn model_id(&self) -> &str {
        &self.id
    }

    async fn generate_image(&self, request: &ImageRequest) -> Result<ImageResponse> {
        let http = self.http();
        if let Some(problem) = request.problem() {
            return Err(http.error(ErrorKind::Permanent, &self.id, problem));
        }
        let url = self.url(false)?;
        let body = image::body(request);
        let mut out = ImageResponse {
            images: Vec::new(),
            text: None,
            usage: Usage::default(),
            provider: self.inner.name.clone(),
            model: self.id.clone(),
        };
        let mut text = String::new();
        // One image per call: `n` calls.
        for _ in 0..request.n {
            let response = self.post(url.clone(), &body).await?;
            let answer: Value = http.read_json(&self.id, response).await?;
            if let Some(error) = answer.get("error").filter(|e| !e.is_null()) {
                return Err(self.body_error(error));
            }
            let one = image::parse(http, &self.id, &answer)?;
            out.images.extend(one.images);
            out.usage.add(&one.usage);
            text.push_str(&one.text);
            if let Some(model) = one.model {
                out.model = model;
            }
        }
        out.text = (!text.is_empty()).then_some(text);
        Ok(out)
    }
}

/// The event stream a Gemini model called `model` makes of `response` (for `crate::fuzzing`).
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_event_stream(
    config: ProviderConfig,
    model: &str,
    response: reqwest::Response,
) -> EventStream {
    let inner = Gemini::new(config).inner;
    GeminiModel { inner, id: model.to_owned() }.event_stream(response)
}

/// Turns SSE chunks into stream events.
struct Decoder {
    model: GeminiModel,
    usage: Usage,
    finish: Option<String>,
    answered_by: Option<String>,
    saw_tool_calls: bool,
    finished: bool,
}

impl Decoder {
    #[allow(
        clippy::result_large_err,
        reason = "crate::Error is the crate-wide error type; boxing it here alone would not help"
    )]
    fn chunk(&mut self, data: &str) -> Result<Vec<StreamEvent>> {
        let data = data.trim();
        if data.is_empty() {
            return Ok(Vec::new());
        }
        let http = self.model.http();
        let mut chunk: GenerateResponse = serde_json::from_str(data).map_err(|e| {
            http.error(
                ErrorKind::Decode,
                &self.model.id,
                format!("invalid JSON in stream chunk ({e}); chunk starts: {}", preview(data.as_bytes())),
            )
        })?;
        if let Some(error) = chunk.error.as_ref().filter(|e| !e.is_null()) {
            return Err(self.model.body_error(error));
        }
        if let Some(reason) = chunk.blocked() {
            return Err(http.error(ErrorKind::Permanent, &self.model.id, reason));
        }
        if let Some(usage) = &chunk.usage_metadata {
            self.usage = usage.usage();
        }
        if let Some(model) = chunk.model_version() {
            self.answered_by = Some(model.to_owned());
        }
        let mut events = Vec::new();
        if let Some(mut candidate) = chunk.take_candidate() {
            for item in candidate.take_items() {
                events.push(match item {
                    Item::Text(text) => StreamEvent::TextDelta { text },
                    Item::Thought(text) => StreamEvent::ReasoningDelta { text },
                    Item::Call(call) => {
                        self.saw_tool_calls = true;
                        StreamEvent::ToolCall { call }
                    }
                });
            }
            if let Some(reason) = candidate.finish_reason.filter(|r| !r.is_empty()) {
                self.finish = Some(reason);
            }
        }
        Ok(events)
    }

    /// Usage and `Done` once the stream ended after a finish reason; a truncation error
    /// otherwise.
    #[allow(
        clippy::result_large_err,
        reason = "crate::Error is the crate-wide error type; boxing it here alone would not help"
    )]
    fn end(&mut self) -> Result<Vec<StreamEvent>> {
        let Some(reason) = self.finish.as_deref() else {
            return Err(self.model.http().error(
                ErrorKind::Transient,
                &self.model.id,
                "stream ended before any chunk carried a finishReason (truncated)",
            ));
        };
        self.finished = true;
        let finish_reason: FinishReason = wire::finish_reason(Some(reason), self.saw_tool_calls);
        Ok(vec![
            StreamEvent::Usage { usage: self.usage },
            StreamEvent::Done {
                finish_reason,
                provider: self.model.inner.name.clone(),
                model: self.answered_by.clone().unwrap_or_else(|| self.model.id.clone()),
            },
        ])
    }
}
