//! The server side of the wire protocols: what a program that *answers* OpenAI and Anthropic
//! clients needs (the gateway, `executus-run serve`). The client side lives in
//! [`crate::providers`]; both meet in the canonical types, so a request is converted once on
//! the way in (client dialect -> [`Request`]) and once on the way out ([`Request`] -> the
//! upstream's dialect), never twice.
//!
//! Three dialects ([`Dialect`]):
//! - [`chat`]: OpenAI Chat Completions (`POST /v1/chat/completions`), whole and streamed
//!   (`data:` chunks, `stream_options.include_usage`, `[DONE]`);
//! - [`responses`]: the OpenAI Responses API (`POST /v1/responses`, `store: false`): input
//!   items including `function_call` / `function_call_output`, typed SSE events ending in
//!   `response.completed`;
//! - [`messages`]: Anthropic Messages (`POST /v1/messages`): `system` as a string or blocks and
//!   as a `system` role message inside `messages`, `tool_use` / `tool_result`, `cache_control`,
//!   `thinking`; streamed as `message_start` / `content_block_*` / `message_delta` /
//!   `message_stop`.
//!
//! Each dialect module has `decode` (request body -> [`ClientRequest`]), `encode` (a
//! [`Response`] -> the whole JSON body) and an `Encoder` that turns [`StreamEvent`]s into SSE
//! bytes as they come. [`error`] writes each dialect's error body and maps a provider
//! [`crate::Error`] to the status code the official SDKs turn into the right exception.
//!
//! Guarantees:
//! - decoding never panics: a body that is not JSON, has the wrong shape, or asks for
//!   something the canonical types cannot carry (an image by URL, a stored
//!   `previous_response_id`) is a [`DecodeError`] naming the field — an HTTP 400 for the
//!   caller;
//! - tool calls are encoded whole: an encoder emits a call only from a completed
//!   [`StreamEvent::ToolCall`] (fragments are ignored), because the gateway holds each call
//!   until its policy has seen it;
//! - encoders keep the dialect's event order valid whatever they are fed (a text block is
//!   opened before its first delta and closed before a tool call, the final events come once).
//!
//! What it does not do: HTTP (no server, no routing: bytes in, bytes out), authentication,
//! storing responses (`previous_response_id` is refused), audio, files, or images by URL.

pub mod chat;
pub mod error;
pub mod messages;
pub mod responses;
mod sse;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::stream::StreamEvent;
use crate::types::{Request, Response};

pub use self::error::{ApiError, ErrorClass};

/// The API a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// OpenAI Chat Completions.
    Chat,
    /// The OpenAI Responses API.
    Responses,
    /// Anthropic Messages.
    Messages,
}

impl Dialect {
    /// A short name for logs and metrics (`chat`, `responses`, `messages`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Responses => "responses",
            Self::Messages => "messages",
        }
    }

    /// Decodes a request body of this dialect.
    ///
    /// # Errors
    /// A [`DecodeError`] naming what is wrong with the body.
    pub fn decode(self, body: &[u8]) -> Result<ClientRequest, DecodeError> {
        match self {
            Self::Chat => chat::decode(body),
            Self::Responses => responses::decode(body),
            Self::Messages => messages::decode(body),
        }
    }

    /// The whole (non-streamed) JSON body for `response`, answering `request`.
    pub fn encode(self, request: &ClientRequest, response: &Response) -> Vec<u8> {
        match self {
            Self::Chat => chat::encode(request, response),
            Self::Responses => responses::encode(request, response),
            Self::Messages => messages::encode(request, response),
        }
    }

    /// A streaming encoder for an answer to `request`.
    pub fn encoder(self, request: &ClientRequest) -> Encoder {
        match self {
            Self::Chat => Encoder::Chat(chat::Encoder::new(request)),
            Self::Responses => Encoder::Responses(responses::Encoder::new(request)),
            Self::Messages => Encoder::Messages(messages::Encoder::new(request)),
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decoded client request: the canonical [`Request`] plus what the answer must echo.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientRequest {
    /// The dialect it came in.
    pub dialect: Dialect,
    /// The `model` the client asked for, verbatim.
    pub model: String,
    /// The canonical request.
    pub request: Request,
    /// The client asked for a streamed answer.
    pub stream: bool,
    /// Chat Completions: `stream_options.include_usage` (a final usage-only chunk).
    pub include_usage: bool,
    /// `metadata` the client sent (Anthropic `metadata.user_id`, OpenAI `metadata`), kept for
    /// masked logging only: it is never forwarded upstream.
    pub metadata: Option<Value>,
}

impl ClientRequest {
    /// A request of `dialect` for `model` (not streamed).
    pub fn new(dialect: Dialect, model: impl Into<String>, request: Request) -> Self {
        Self { dialect, model: model.into(), request, stream: false, include_usage: false, metadata: None }
    }
}

/// Why a request body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The body is not JSON, or not a JSON object.
    #[error("the request body is not a JSON object: {reason}")]
    Json {
        /// The parser's message.
        reason: String,
    },
    /// A field has the wrong shape or value.
    #[error("invalid `{field}`: {reason}")]
    Field {
        /// The field, as a path (`messages[2].content`).
        field: String,
        /// Why.
        reason: String,
    },
    /// A required field is missing.
    #[error("missing required field `{field}`")]
    Missing {
        /// The field.
        field: String,
    },
    /// The request asks for something this server does not do.
    #[error("unsupported: {what}")]
    Unsupported {
        /// What, and what to send instead.
        what: String,
    },
}

impl DecodeError {
    pub(crate) fn field(field: impl fmt::Display, reason: impl Into<String>) -> Self {
        Self::Field { field: field.to_string(), reason: reason.into() }
    }

    pub(crate) fn json(error: &serde_json::Error) -> Self {
        Self::Json { reason: error.to_string() }
    }
}

/// A streaming encoder for one dialect. Open it with [`Encoder::start`], feed it events with
/// [`Encoder::event`] (a `Done` event ends the stream), or end it with [`Encoder::fail`] on an
/// error; each call appends SSE bytes to `out`.
#[derive(Debug)]
pub enum Encoder {
    /// Chat Completions chunks.
    Chat(chat::Encoder),
    /// Responses API events.
    Responses(responses::Encoder),
    /// Anthropic Messages events.
    Messages(messages::Encoder),
}

impl Encoder {
    /// The events that open the stream (none for Chat, whose first chunk carries the role).
    pub fn start(&mut self, out: &mut Vec<u8>) {
        match self {
            Self::Chat(e) => e.start(out),
            Self::Responses(e) => e.start(out),
            Self::Messages(e) => e.start(out),
        }
    }

    /// One canonical event. `Done` ends the stream (its final events are written);
    /// `ToolCallDelta` is ignored (calls are written whole from `ToolCall`).
    pub fn event(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        match self {
            Self::Chat(e) => e.event(event, out),
            Self::Responses(e) => e.event(event, out),
            Self::Messages(e) => e.event(event, out),
        }
    }

    /// Ends the stream with an error in the dialect's own form (nothing if already ended).
    pub fn fail(&mut self, error: &ApiError, out: &mut Vec<u8>) {
        match self {
            Self::Chat(e) => e.fail(error, out),
            Self::Responses(e) => e.fail(error, out),
            Self::Messages(e) => e.fail(error, out),
        }
    }

    /// True once the stream's final events were written (after `Done` or `fail`).
    pub fn is_finished(&self) -> bool {
        match self {
            Self::Chat(e) => e.is_finished(),
            Self::Responses(e) => e.is_finished(),
            Self::Messages(e) => e.is_finished(),
        }
    }

    /// The text written so far (for a host that must judge the answer after streaming it).
    pub fn text(&self) -> &str {
        match self {
            Self::Chat(e) => e.text(),
            Self::Responses(e) => e.text(),
            Self::Messages(e) => e.text(),
        }
    }
}

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A fresh id with `prefix`: 24 random hex digits (ids only need to be unique, not secret).
fn new_id(prefix: &str) -> String {
    use std::fmt::Write as _;
    let mut id = String::with_capacity(prefix.len() + 24);
    id.push_str(prefix);
    // Writing into a String cannot fail.
    let _ = write!(id, "{:016x}{:08x}", fastrand::u64(..), fastrand::u32(..));
    id
}

/// Sampling settings the canonical request has no slot for, passed through to the upstream
/// as [`Request::extra`] when the client sent them. Every other unknown field is dropped.
#[derive(Debug, Default, serde::Deserialize)]
struct Sampling {
    top_p: Option<Value>,
    top_k: Option<Value>,
    min_p: Option<Value>,
    logit_bias: Option<Value>,
    presence_penalty: Option<Value>,
    frequency_penalty: Option<Value>,
    repeat_penalty: Option<Value>,
}

impl Sampling {
    /// Moves the fields that were set into `request.extra`.
    fn apply(self, request: &mut Request) {
        let fields = [
            ("top_p", self.top_p),
            ("top_k", self.top_k),
            ("min_p", self.min_p),
            ("logit_bias", self.logit_bias),
            ("presence_penalty", self.presence_penalty),
            ("frequency_penalty", self.frequency_penalty),
            ("repeat_penalty", self.repeat_penalty),
        ];
        for (key, value) in fields {
            if let Some(value) = value.filter(|v| !v.is_null()) {
                request.extra.insert(key.to_owned(), value);
            }
        }
    }
}

/// Where a value sits in a client's request (`messages[3].content[1]`), for error messages:
/// formatted only when an error names it, so decoding a long transcript builds no path text.
#[derive(Clone, Copy)]
pub(crate) enum Path<'a> {
    /// `parent.name` (a top-level field is a plain `&str`).
    Key(&'a dyn fmt::Display, &'static str),
    /// `parent[index]`.
    Index(&'a dyn fmt::Display, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Key(parent, name) => write!(f, "{parent}.{name}"),
            Path::Index(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

/// Image bytes from a `data:` URL (`data:image/png;base64,...`).
fn data_url(url: &str, field: &dyn fmt::Display) -> Result<(String, Vec<u8>), DecodeError> {
    use base64::Engine as _;
    let Some(rest) = url.strip_prefix("data:") else {
        return Err(DecodeError::Unsupported {
            what: format!("{field}: images by URL (send the image inline as a data: URL or base64)"),
        });
    };
    let Some((meta, data)) = rest.split_once(',') else {
        return Err(DecodeError::field(field, "a data: URL without a comma"));
    };
    let Some(mime) = meta.strip_suffix(";base64") else {
        return Err(DecodeError::field(field, "only base64 data: URLs are accepted"));
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim().as_bytes())
        .map_err(|e| DecodeError::field(field, format!("invalid base64: {e}")))?;
    Ok((if mime.is_empty() { "application/octet-stream".to_owned() } else { mime.to_owned() }, bytes))
}

/// Tool-call arguments a client sent as a JSON string (Chat, Responses): parsed when they are
/// JSON, kept as `Value::String` otherwise (so the model can see what it wrote).
fn parse_args(raw: &str) -> Value {
    if raw.trim().is_empty() {
        return Value::Object(serde_json::Map::new());
    }
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))
}

/// Tool-call arguments as the JSON string Chat and Responses carry (raw text kept verbatim).
fn args_string(args: &Value) -> String {
    match args {
        Value::String(raw) => raw.clone(),
        other => other.to_string(),
    }
}
