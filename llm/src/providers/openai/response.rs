//! Chat Completions response body -> canonical [`Response`], plus the field readers the
//! streaming parser shares (finish reason, usage, tool-call arguments, synthesised ids).
//!
//! The body is read as a `serde_json::Value` and picked apart field by field rather than
//! derived into structs: OpenAI-compatible servers differ in which fields they send, send
//! `null` where others omit, add their own (`timings`, `reasoning_content`), and one field of
//! an unexpected type must not fail the whole answer.
//!
//! [`parse_body`] first tries a fast path: the usual shape decoded straight into borrowed
//! structs (strings that need no unescaping are not copied, unknown fields are skipped
//! without being built), which saves building a `Value` tree of every answer — about 30 heap
//! allocations per call. Anything the fast path does not take exactly (an `error` member, a
//! field of another type, content as an array, arguments as an object, duplicate keys, not
//! an object) falls back to the `Value` reading, so both give the same answer for every body
//! the fast path accepts.

use std::borrow::Cow;
use std::collections::HashSet;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

use super::error::body_error;
use crate::error::{ErrorKind, Result};
use crate::http::{Http, preview};
use crate::types::{FinishReason, Message, Part, Response, Role, ToolCall, Usage};

/// Parses a complete (non-streamed) response body: the fast path when it takes the body,
/// else [`parse_response`] over the body as a `Value`.
pub(super) fn parse_body(http: &Http, model: &str, body: &[u8]) -> Result<Response> {
    if let Some(response) = fast::parse(http, model, body) {
        return Ok(response);
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        http.error(
            ErrorKind::Decode,
            model,
            format!("invalid JSON response ({e}); body starts: {}", preview(body)),
        )
    })?;
    parse_response(http, model, &value)
}

/// The fast path of [`parse_body`]: the usual answer shape, borrowed.
pub(super) mod fast {
    use super::*;

    #[derive(Deserialize)]
    struct Body<'a> {
        #[serde(default)]
        error: Option<IgnoredAny>,
        #[serde(borrow)]
        choices: Vec<Choice<'a>>,
        #[serde(default)]
        usage: Option<WireUsage>,
        #[serde(borrow, default)]
        model: Option<Cow<'a, str>>,
    }

    #[derive(Deserialize)]
    struct Choice<'a> {
        #[serde(default)]
        index: Option<u64>,
        #[serde(borrow, default)]
        message: Option<WireMessage<'a>>,
        #[serde(borrow, default)]
        finish_reason: Option<Cow<'a, str>>,
    }

    #[derive(Deserialize)]
    struct WireMessage<'a> {
        #[serde(borrow, default)]
        content: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        refusal: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        tool_calls: Option<Vec<Call<'a>>>,
    }

    #[derive(Deserialize)]
    struct Call<'a> {
        #[serde(borrow, default)]
        id: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        function: Option<Function<'a>>,
    }

    #[derive(Deserialize)]
    struct Function<'a> {
        #[serde(borrow, default)]
        name: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        arguments: Option<Cow<'a, str>>,
    }

    #[derive(Deserialize)]
    struct WireUsage {
        #[serde(default)]
        prompt_tokens: Option<u64>,
        #[serde(default)]
        completion_tokens: Option<u64>,
        #[serde(default)]
        prompt_tokens_details: Option<Details>,
        #[serde(default)]
        completion_tokens_details: Option<Details>,
    }

    #[derive(Deserialize)]
    struct Details {
        #[serde(default)]
        cached_tokens: Option<u64>,
        #[serde(default)]
        reasoning_tokens: Option<u64>,
    }

    /// The answer, or `None` when the body is not exactly the usual shape.
    pub(in crate::providers::openai) fn parse(http: &Http, model: &str, body: &[u8]) -> Option<Response> {
        let body: Body<'_> = serde_json::from_slice(body).ok()?;
        if body.error.is_some() {
            return None;
        }
        let choice = body.choices.iter().find(|c| c.index == Some(0)).or_else(|| body.choices.first())?;
        let mut parts = Vec::new();
        if let Some(message) = &choice.message {
            let text = message.content.as_deref().filter(|t| !t.is_empty()).or(message.refusal.as_deref());
            if let Some(text) = text.filter(|t| !t.is_empty()) {
                parts.push(Part::Text { text: text.to_owned() });
            }
            if let Some(calls) = &message.tool_calls {
                let mut ids = IdSynth::new();
                for (i, call) in calls.iter().enumerate() {
                    let id = ids.assign(call.id.as_deref(), i);
                    let function = call.function.as_ref();
                    let name = function.and_then(|f| f.name.as_deref()).unwrap_or_default().to_owned();
                    let args = arguments(function.and_then(|f| f.arguments.as_deref()));
                    parts.push(Part::ToolCall(ToolCall { id, name, args, signature: None }));
                }
            }
        }
        let has_calls = parts.iter().any(|p| matches!(p, Part::ToolCall(_)));
        let finish_reason = match choice.finish_reason.as_deref().filter(|r| !r.is_empty()) {
            Some(reason) => finish_reason(reason),
            None if has_calls => FinishReason::ToolCalls,
            None => FinishReason::Stop,
        };
        let usage = body.usage.map(|u| Usage {
            input_tokens: u.prompt_tokens.unwrap_or(0),
            output_tokens: u.completion_tokens.unwrap_or(0),
            cache_read_tokens: u.prompt_tokens_details.and_then(|d| d.cached_tokens).unwrap_or(0),
            cache_write_tokens: 0,
            reasoning_tokens: u.completion_tokens_details.and_then(|d| d.reasoning_tokens).unwrap_or(0),
        });
        Some(Response {
            message: Message { role: Role::Assistant, parts },
            usage: usage.unwrap_or_default(),
            finish_reason,
            provider: http.provider.clone(),
            model: body.model.as_deref().filter(|m| !m.is_empty()).unwrap_or(model).to_owned(),
        })
    }

    /// [`parse_arguments`] of a string (or absent) `arguments`.
    fn arguments(raw: Option<&str>) -> Value {
        match raw {
            None => Value::Object(serde_json::Map::new()),
            Some(raw) if raw.trim().is_empty() => Value::Object(serde_json::Map::new()),
            Some(raw) => serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned())),
        }
    }
}

/// Parses a complete (non-streamed) response.
pub(super) fn parse_response(http: &Http, model: &str, body: &Value) -> Result<Response> {
    if let Some(error) = body.get("error").filter(|e| e.is_object() || e.is_string()) {
        // A 200 carrying an error (some proxies relay upstream failures this way). The server
        // gave no HTTP signal, so an unclassifiable one is treated as transient.
        return Err(body_error(http, model, error, ErrorKind::Transient));
    }
    let Some(choices) = body.get("choices").and_then(Value::as_array) else {
        return Err(http.error(
            ErrorKind::Decode,
            model,
            format!("response has no `choices` array; body starts: {}", preview(body.to_string().as_bytes())),
        ));
    };
    // `n > 1` is not requested; if a server sends several choices, the one with index 0 (or
    // else the first) is the answer.
    let choice = choices
        .iter()
        .find(|c| c.get("index").and_then(Value::as_u64) == Some(0))
        .or_else(|| choices.first());
    let Some(choice) = choice else {
        return Err(http.error(ErrorKind::Decode, model, "response has an empty `choices` array"));
    };
    let message = choice.get("message").unwrap_or(&Value::Null);

    let mut parts = Vec::new();
    let mut text = content_text(message.get("content"));
    if text.is_empty() {
        // A structured-output refusal carries no content; keep its explanation visible.
        if let Some(refusal) = message.get("refusal").and_then(Value::as_str) {
            text = refusal.to_owned();
        }
    }
    if !text.is_empty() {
        parts.push(Part::Text { text });
    }
    if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
        let mut ids = IdSynth::new();
        for (i, call) in calls.iter().enumerate() {
            let function = call.get("function").unwrap_or(&Value::Null);
            let id = ids.assign(call.get("id").and_then(Value::as_str), i);
            let name = non_empty_str(function.get("name")).unwrap_or_default().to_owned();
            let args = parse_arguments(function.get("arguments"));
            parts.push(Part::ToolCall(ToolCall { id, name, args, signature: None }));
        }
    }
    let has_calls = parts.iter().any(|p| matches!(p, Part::ToolCall(_)));
    let finish_reason = match non_empty_str(choice.get("finish_reason")) {
        Some(reason) => finish_reason(reason),
        None if has_calls => FinishReason::ToolCalls,
        None => FinishReason::Stop,
    };
    Ok(Response {
        message: Message { role: Role::Assistant, parts },
        usage: body.get("usage").map(usage).unwrap_or_default(),
        finish_reason,
        provider: http.provider.clone(),
        model: answering_model(body, model),
    })
}

/// The model that answered: the body's `model` field, else the requested id.
pub(super) fn answering_model(body: &Value, requested: &str) -> String {
    non_empty_str(body.get("model")).unwrap_or(requested).to_owned()
}

/// A string field that is present and non-empty.
pub(super) fn non_empty_str(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Message content: a string, `null`, or (some servers) an array of `{type: text, text}`.
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect()
        }
        _ => String::new(),
    }
}

/// Maps a wire `finish_reason`; unknown values are kept verbatim.
pub(super) fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}

/// Reads a `usage` object; absent or ill-typed fields count as zero.
pub(super) fn usage(u: &Value) -> Usage {
    let n = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
    Usage {
        input_tokens: n(u.get("prompt_tokens")),
        output_tokens: n(u.get("completion_tokens")),
        cache_read_tokens: n(u.get("prompt_tokens_details").and_then(|d| d.get("cached_tokens"))),
        cache_write_tokens: 0,
        reasoning_tokens: n(u.get("completion_tokens_details").and_then(|d| d.get("reasoning_tokens"))),
    }
}

/// Tool-call arguments. The wire form is a JSON string; a string that is not JSON is kept as
/// `Value::String(raw)` so the caller can report it back to the model. An empty string means
/// "no arguments". Some servers send an object instead of a string; it is taken as is.
pub(super) fn parse_arguments(args: Option<&Value>) -> Value {
    match args {
        None | Some(Value::Null) => Value::Object(serde_json::Map::new()),
        Some(Value::String(raw)) if raw.trim().is_empty() => Value::Object(serde_json::Map::new()),
        Some(Value::String(raw)) => serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.clone())),
        Some(other) => other.clone(),
    }
}

/// Assigns tool-call ids: the server's own when it sent a usable one, else a synthesised
/// one. A missing, empty or repeated id (a buggy server giving two parallel calls the same
/// id would make their results indistinguishable) is replaced. Synthesised ids are unique
/// within a response (the position) and, with overwhelming probability, across responses (a
/// random prefix), so results from different turns never collide.
#[derive(Debug)]
pub(super) struct IdSynth {
    prefix: u64,
    seen: HashSet<String>,
}

impl IdSynth {
    pub(super) fn new() -> Self {
        Self { prefix: fastrand::u64(..), seen: HashSet::new() }
    }

    /// True if `id` has not been handed out in this response.
    pub(super) fn is_free(&self, id: &str) -> bool {
        !self.seen.contains(id)
    }

    pub(super) fn assign(&mut self, given: Option<&str>, position: usize) -> String {
        let id = match given.filter(|id| !id.is_empty() && !self.seen.contains(*id)) {
            Some(id) => id.to_owned(),
            None => format!("call_{:016x}_{position}", self.prefix),
        };
        self.seen.insert(id.clone());
        id
    }
}
