//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`; not a stable API).
//!
//! Each function feeds a response body, cut into the chunks the caller chose, through the
//! REAL code a wire client runs once response headers have arrived: [`Http`]'s line splitter,
//! SSE framing (`Http::sse`) or NDJSON lines (`Http::lines`), and the provider's chunk parser.
//! The body is an in-memory `reqwest::Response`, so no socket is opened; an optional
//! transport error after the last chunk stands for a connection reset.
//!
//! Guarantees: nothing here changes behaviour; these are thin adapters over crate-private
//! functions. Not for production use: the feature exists only so fuzzers can reach the
//! parsers without a server.

use bytes::Bytes;
use futures::{Stream, StreamExt};

use crate::error::Result;
use crate::http::{Http, HttpOptions};
use crate::providers::ProviderConfig;
use crate::secret::Secret;
use crate::stream::StreamEvent;
use crate::types::Request;

/// Which wire protocol's stream parser to run.
#[derive(Debug, Clone)]
pub enum Wire {
    /// OpenAI Chat Completions SSE chunks.
    OpenAi,
    /// Anthropic Messages SSE events; the request decides the structured-output plan.
    Anthropic(Box<Request>),
    /// Gemini `streamGenerateContent?alt=sse` chunks.
    Gemini,
    /// Ollama NDJSON lines.
    Ollama,
}

/// A response body as the transport would deliver it.
#[derive(Debug, Clone, Default)]
pub struct Body {
    /// The chunks, in order.
    pub chunks: Vec<Vec<u8>>,
    /// End with a transport error (a reset) instead of a clean end.
    pub reset: bool,
}

impl Body {
    /// The same bytes as one chunk (for chunking-invariance checks).
    pub fn joined(&self) -> Self {
        Self { chunks: vec![self.chunks.concat()], reset: self.reset }
    }
}

/// The provider name used in errors.
pub const PROVIDER: &str = "fuzz";

/// The model id used in errors.
pub const MODEL: &str = "fuzz-model";

fn response(body: Body, content_type: &str) -> reqwest::Response {
    let reset = body.reset;
    let items = body.chunks.into_iter().map(|c| Ok::<Bytes, std::io::Error>(Bytes::from(c)));
    let tail =
        reset.then(|| Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by fuzzer")));
    let stream = futures::stream::iter(items.chain(tail));
    let mut builder = http::Response::builder().status(200);
    if !content_type.is_empty() {
        builder = builder.header("content-type", content_type);
    }
    // A 200 status and a valid header value: the builder cannot fail here; fall back to an
    // empty response rather than panic if it ever did.
    let response = builder
        .body(reqwest::Body::wrap_stream(stream))
        .unwrap_or_else(|_| http::Response::new(reqwest::Body::from(Vec::new())));
    reqwest::Response::from(response)
}

fn http(options: &HttpOptions, secret: Option<&str>) -> Http {
    Http::new(PROVIDER, options.clone(), secret.map(Secret::new))
}

async fn drain<T>(stream: impl Stream<Item = Result<T>>) -> Vec<Result<T>> {
    stream.collect().await
}

/// SSE `(event name, data)` items of `body`, as `Http::sse` yields them.
pub async fn sse(body: Body, options: &HttpOptions, secret: Option<&str>) -> Vec<Result<(String, String)>> {
    drain(http(options, secret).sse(MODEL, response(body, "text/event-stream"))).await
}

/// NDJSON lines of `body`, as `Http::lines` yields them.
pub async fn ndjson(body: Body, options: &HttpOptions, secret: Option<&str>) -> Vec<Result<Vec<u8>>> {
    drain(http(options, secret).lines(MODEL, response(body, "application/x-ndjson"))).await
}

/// The stream events `wire`'s client makes of `body` (everything after the status check).
pub async fn events(
    wire: Wire,
    body: Body,
    options: &HttpOptions,
    secret: Option<&str>,
) -> Vec<Result<StreamEvent>> {
    let mut config = ProviderConfig::new(PROVIDER, "http://127.0.0.1:9").with_http(options.clone());
    config.api_key = secret.map(Secret::new);
    let stream = match wire {
        Wire::OpenAi => {
            crate::providers::openai::fuzz_event_stream(config, MODEL, response(body, "text/event-stream"))
        }
        Wire::Anthropic(request) => crate::providers::anthropic::fuzz_event_stream(
            config,
            MODEL,
            &request,
            response(body, "text/event-stream"),
        ),
        Wire::Gemini => {
            crate::providers::gemini::fuzz_event_stream(config, MODEL, response(body, "text/event-stream"))
        }
        Wire::Ollama => {
            crate::providers::ollama::fuzz_event_stream(config, MODEL, response(body, "application/x-ndjson"))
        }
    };
    drain(stream).await
}
