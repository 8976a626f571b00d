//! OpenAI Chat Completions: the wire client for OpenAI and every OpenAI-compatible server
//! (llama.cpp `llama-server`, llama-swap, vLLM, LiteLLM, Ollama's `/v1`), chosen by base URL.
//!
//! What it does: `POST {base_url}/chat/completions` with the canonical [`Request`] mapped to
//! the Chat Completions body, and the answer mapped back to a [`Response`] or a stream of
//! [`crate::StreamEvent`]s. `Authorization: Bearer <key>` is sent only when a key is set.
//!
//! Request mapping: the system prompt is a first `system` message; a user message that is a
//! single text part is a plain string, otherwise an array of `text` / `image_url` parts
//! (images as `data:` URLs); assistant tool calls are `tool_calls` with arguments as a JSON
//! string (unparseable model output, held as `Value::String`, is echoed verbatim); each tool
//! result is a `role: tool` message with `tool_call_id` — there is no wire `is_error`, so a
//! failed result's content starts with [`TOOL_ERROR_PREFIX`]; `tools` and `tool_choice`
//! (omitted without tools); `response_format: {type: json_schema, ...}`;
//! `max_completion_tokens`, or `max_tokens` with [`OpenAiOptions::legacy_max_tokens`];
//! `reasoning_effort`, `temperature`, `stop`, `seed`; streams add `stream: true` and
//! `stream_options: {include_usage: true}`. [`Request::extra`] is merged into the top level
//! last, overriding; a `null` there removes the key (e.g. `stream_options` for a server that
//! rejects it). Shapes Chat Completions cannot carry (an image in an assistant message, text
//! outside a tool result in a tool message) fail with [`crate::ErrorKind::Unsupported`]
//! before anything is sent.
//!
//! Guarantees:
//! - all HTTP goes through the crate's shared HTTP layer, so HTTP status, `Retry-After`,
//!   timeouts and secret scrubbing are uniform with the other providers;
//! - parsing is lenient where servers differ and strict where it matters: unknown
//!   `finish_reason` values become [`crate::FinishReason::Other`]; extra fields
//!   (`reasoning_content`, llama.cpp `timings`, `system_fingerprint`...) are ignored (reasoning
//!   text is surfaced as [`crate::StreamEvent::ReasoningDelta`] when streaming); tool-call
//!   arguments that are not JSON become `Value::String(raw)`; a missing tool-call id is
//!   synthesised; an error body whose `code` is an integer (llama.cpp) or a string (OpenAI)
//!   both parse; a `200` whose body is an `error` object is an error, classified by its
//!   code/type;
//! - a streamed request answered with a whole `application/json` body (a server or proxy
//!   that ignores `stream: true`) is parsed as one response and replayed as events;
//! - hostile input (malformed JSON, a truncated stream, absurd indices) ends in a classified
//!   error, never a panic or an unbounded buffer.
//!
//! What it does not do: the Responses API, legacy `/completions`, embeddings, `n > 1` (only the
//! first choice is read), or retries — retrying and failover belong to the caller (the chain).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::Value;

use super::ProviderConfig;
use crate::error::{ErrorKind, Result};
use crate::http::direct::DirectTarget;
use crate::http::{Http, join};
use crate::imagegen::{ImageModel, ImageRequest, ImageResponse};
use crate::media::{MediaKind, MediaLimits};
use crate::model::{Model, Provider};
use crate::stream::EventStream;
use crate::types::{Capabilities, Request, Response};

mod error;
mod images;
mod request;
mod response;
mod streaming;

pub use request::TOOL_ERROR_PREFIX;

#[cfg(test)]
mod tests;

/// Options of an OpenAI-compatible endpoint that the base URL alone does not say.
///
/// Construct with struct-update syntax:
/// `OpenAiOptions { legacy_max_tokens: true, ..OpenAiOptions::default() }`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpenAiOptions {
    /// Send the output cap as the legacy `max_tokens` instead of `max_completion_tokens`
    /// (older servers and some proxies know only the legacy name).
    pub legacy_max_tokens: bool,
    /// What every model of this endpoint is known to support. Defaults to all unknown
    /// ("try"), because an OpenAI-compatible server says nothing about its models.
    pub capabilities: Capabilities,
    /// Per-model overrides of [`OpenAiOptions::capabilities`], keyed by model id.
    pub model_capabilities: BTreeMap<String, Capabilities>,
}

/// An OpenAI Chat Completions endpoint: a [`Provider`] whose models speak `/chat/completions`.
#[derive(Debug, Clone)]
pub struct OpenAi {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: Http,
    url: String,
    /// `url`, parsed once (parsing per request is measurable at loopback speed). `None` if it
    /// does not parse: then every request reports that through the HTTP client, as before.
    parsed: Option<reqwest::Url>,
    /// The prepared parts of a chat request on the bare client, when `url` is plain
    /// `http://` and the client has one (see `http::direct`).
    direct: Option<DirectTarget>,
    options: OpenAiOptions,
    /// Image-input limits: the configured ones, else the row for this base URL's kind.
    media: MediaLimits,
    /// `{base}/images/generations`.
    images_url: String,
}

impl Inner {
    fn new(http: Http, url: String, options: OpenAiOptions, media: MediaLimits, images_url: String) -> Self {
        let parsed = reqwest::Url::parse(&url).ok();
        let direct = match (&http.direct, &parsed) {
            (Some(_), Some(url)) => DirectTarget::new(url, http.secret.as_ref()),
            _ => None,
        };
        Self { http, url, parsed, direct, options, media, images_url }
    }
}

impl OpenAi {
    /// A provider from its config. `config.base_url` is the `/v1` base, e.g.
    /// `https://api.openai.com/v1` or `http://127.0.0.1:8080/v1`.
    pub fn new(config: ProviderConfig) -> Self {
        // An empty key means "no key": sending `Bearer ` would be rejected by servers that
        // run without authentication.
        let media = config.media_or(MediaKind::for_openai_base(&config.base_url));
        let secret = config.api_key.filter(|k| !k.expose().is_empty());
        let http = Http::new(&config.name, config.http, secret);
        let url = join(&config.base_url, "chat/completions");
        let images_url = join(&config.base_url, "images/generations");
        let options = OpenAiOptions::default();
        Self { inner: Arc::new(Inner::new(http, url, options, media, images_url)) }
    }

    /// The same endpoint with these options.
    #[must_use]
    pub fn with_options(self, options: OpenAiOptions) -> Self {
        let inner = Inner::new(
            self.inner.http.clone(),
            self.inner.url.clone(),
            options,
            self.inner.media.clone(),
            self.inner.images_url.clone(),
        );
        Self { inner: Arc::new(inner) }
    }

    /// The options in effect.
    pub fn options(&self) -> &OpenAiOptions {
        &self.inner.options
    }

    /// The HTTP client (shared with llama-swap's management calls).
    pub(crate) fn http(&self) -> &Http {
        &self.inner.http
    }
}

impl Provider for OpenAi {
    fn name(&self) -> &str {
        &self.inner.http.provider
    }

    fn model(&self, id: &str) -> Arc<dyn Model> {
        Arc::new(OpenAiModel { inner: Arc::clone(&self.inner), id: id.to_owned() })
    }

    /// `POST {base}/images/generations` (see the `images` module docs).
    fn image_model(&self, id: &str) -> Option<Arc<dyn ImageModel>> {
        Some(Arc::new(OpenAiImageModel { inner: Arc::clone(&self.inner), id: id.to_owned() }))
    }
}

/// One image model of an [`OpenAi`] endpoint.
#[derive(Debug)]
struct OpenAiImageModel {
    inner: Arc<Inner>,
    id: String,
}

impl OpenAiImageModel {
    /// GETs an image the answer pointed to. The key goes only back to the endpoint's own
    /// origin (LocalAI serves its images there); a storage host gets no credentials.
    async fn fetch(&self, url: String) -> Result<Vec<u8>> {
        let http = &self.inner.http;
        let parsed = reqwest::Url::parse(&url).map_err(|e| {
            http.error(ErrorKind::Decode, &self.id, format!("the answer's image URL does not parse: {e}"))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(http.error(
                ErrorKind::Decode,
                &self.id,
                format!("the answer's image URL has scheme {:?} (expected http or https)", parsed.scheme()),
            ));
        }
        let same_origin =
            reqwest::Url::parse(&self.inner.images_url).is_ok_and(|own| own.origin() == parsed.origin());
        let mut builder = http.client.get(parsed);
        if same_origin && let Some(key) = &http.secret {
            builder = builder.bearer_auth(key.expose());
        }
        let response = http.send(&self.id, builder).await?;
        http.read_body(&self.id, response, http.options.max_body_bytes).await.map(Vec::from)
    }
}

#[async_trait]
impl ImageModel for OpenAiImageModel {
    fn provider(&self) -> &str {
        &self.inner.http.provider
    }

    fn model_id(&self) -> &str {
        &self.id
    }

    async fn generate_image(&self, request: &ImageRequest) -> Result<ImageResponse> {
        let http = &self.inner.http;
        if let Some(problem) = request.problem() {
            return Err(http.error(ErrorKind::Permanent, &self.id, problem));
        }
        let body = images::body(&self.id, request);
        let mut builder = http.client.post(&self.inner.images_url).json(&body);
        if let Some(key) = &http.secret {
            builder = builder.bearer_auth(key.expose());
        }
        let response = http.send(&self.id, builder).await.map_err(error::refine)?;
        let answer: Value = http.read_json(&self.id, response).await?;
        images::parse(http, &http.provider, &self.id, &answer, |url| self.fetch(url)).await
    }
}

/// One model of an [`OpenAi`] endpoint.
#[derive(Debug)]
struct OpenAiModel {
    inner: Arc<Inner>,
    id: String,
}

impl OpenAiModel {
    fn post(&self, body: Bytes) -> reqwest::RequestBuilder {
        let http = &self.inner.http;
        let builder = match &self.inner.parsed {
            Some(url) => http.client.post(url.clone()),
            None => http.client.post(&self.inner.url),
        };
        let mut builder = builder.header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
        if let Some(key) = &http.secret {
            builder = builder.bearer_auth(key.expose());
        }
        builder
    }

    /// The encoded body. The caller drops the request right after: nothing of it needs to
    /// stay alive while the answer is awaited.
    fn body(&self, request: &Request, stream: bool) -> Result<Vec<u8>> {
        request::encode_body(&self.id, request, &self.inner.options, stream)
            .map_err(|reason| self.inner.http.error(ErrorKind::Unsupported, &self.id, reason))
    }
}

#[async_trait]
impl Model for OpenAiModel {
    fn provider(&self) -> &str {
        &self.inner.http.provider
    }

    fn model_id(&self) -> &str {
        &self.id
    }

    fn capabilities(&self) -> Capabilities {
        let options = &self.inner.options;
        options.model_capabilities.get(&self.id).copied().unwrap_or(options.capabilities)
    }

    fn media_limits(&self) -> Option<MediaLimits> {
        Some(self.inner.media.clone())
    }

    async fn generate(&self, request: Request) -> Result<Response> {
        let body = self.body(&request, false)?;
        drop(request);
        self.answer(body).await
    }

    async fn stream(&self, request: Request) -> Result<EventStream> {
        let body = self.body(&request, true)?;
        drop(request);
        self.open_stream(body).await
    }

    async fn generate_ref(&self, request: &Request) -> Result<Response> {
        self.answer(self.body(request, false)?).await
    }

    async fn stream_ref(&self, request: &Request) -> Result<EventStream> {
        self.open_stream(self.body(request, true)?).await
    }
}

impl OpenAiModel {
    /// Sends an encoded body and waits for the answer's headers: on the bare client for a
    /// plain `http://` endpoint (a redirect is then re-sent through reqwest, which follows
    /// it), through reqwest otherwise.
    async fn exchange(&self, body: Vec<u8>, stream: bool) -> Result<reqwest::Response> {
        let http = &self.inner.http;
        let accept = if stream { "text/event-stream" } else { "*/*" };
        let body = Bytes::from(body);
        if let (Some(client), Some(target)) = (&http.direct, &self.inner.direct) {
            let request = target.post(body.clone(), accept);
            if let Some(response) = http.send_direct(&self.id, client, target, request).await? {
                return Ok(response);
            }
        }
        let mut builder = self.post(body);
        if stream {
            builder = builder.header(reqwest::header::ACCEPT, accept);
        }
        http.send(&self.id, builder).await
    }

    /// Sends an encoded body and reads the whole answer.
    async fn answer(&self, body: Vec<u8>) -> Result<Response> {
        let http = &self.inner.http;
        let response = if let (Some(_), Some(target)) = (&http.direct, &self.inner.direct) {
            // A whole answer over a connection this task drives (`http::inline`).
            let body = Bytes::from(body);
            if let Some(answer) =
                http.answer_inline(&self.id, target, body.clone()).await.map_err(error::refine)?
            {
                return response::parse_body(http, &self.id, &answer);
            }
            // A redirect: reqwest follows it.
            http.send(&self.id, self.post(body)).await.map_err(error::refine)?
        } else {
            self.exchange(body, false).await.map_err(error::refine)?
        };
        let body = http.read_body(&self.id, response, http.options.max_body_bytes).await?;
        response::parse_body(http, &self.id, &body)
    }

    /// Sends an encoded streaming body and returns the events.
    async fn open_stream(&self, body: Vec<u8>) -> Result<EventStream> {
        let http = &self.inner.http;
        let response = self.exchange(body, true).await.map_err(error::refine)?;
        if is_json(&response) {
            // A server (or proxy) that ignores `stream: true` answers with a whole body.
            let body = http.read_body(&self.id, response, http.options.max_body_bytes).await?;
            let whole = response::parse_body(http, &self.id, &body)?;
            return Ok(crate::stream::response_to_stream(whole));
        }
        Ok(streaming::event_stream(http, &self.id, response))
    }
}

/// The event stream an OpenAI-compatible model called `model` makes of a streamed
/// `response` (for `crate::fuzzing`).
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_event_stream(
    config: ProviderConfig,
    model: &str,
    response: reqwest::Response,
) -> EventStream {
    streaming::event_stream(&OpenAi::new(config).inner.http, model, response)
}

fn is_json(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("application/json"))
}
