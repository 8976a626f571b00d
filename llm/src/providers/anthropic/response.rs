//! Messages API response -> canonical [`Response`], and the wire types both the whole and the
//! streamed response share.
//!
//! Parsing is lenient where the protocol grows (unknown block types, stop reasons and extra
//! fields are tolerated) and strict where a value is needed (a 200 without `content` is a
//! decode error, not an empty answer).

use serde::Deserialize;
use serde_json::Value;

use super::request::Plan;
use super::thinking;
use crate::error::{Error, ErrorKind, Result};
use crate::http::Http;
use crate::types::{FinishReason, Message, Part, Response, Role, ToolCall, Usage};

/// A whole (non-streamed) response, or an error object some servers send with status 200.
#[derive(Debug, Deserialize)]
pub(super) struct WireResponse {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    model: String,
    content: Option<Vec<WireBlock>>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: WireUsage,
    #[serde(default)]
    error: Option<WireError>,
}

/// A content block of a whole response.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum WireBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        #[serde(default)]
        id: String,
        #[serde(default)]
        name: String,
        #[serde(default)]
        input: Value,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
        #[serde(default)]
        signature: String,
    },
    RedactedThinking {
        #[serde(default)]
        data: String,
    },
    /// Block types this client does not use (server tool results, citations, ...).
    #[serde(other)]
    Other,
}

/// Token usage as the API reports it. Every field is optional: `message_delta` carries only
/// some of them.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub(super) struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
}

impl WireUsage {
    pub(super) fn to_usage(self) -> Usage {
        Usage {
            input_tokens: self.input_tokens.unwrap_or(0),
            output_tokens: self.output_tokens.unwrap_or(0),
            cache_read_tokens: self.cache_read_input_tokens.unwrap_or(0),
            cache_write_tokens: self.cache_creation_input_tokens.unwrap_or(0),
            reasoning_tokens: 0,
        }
    }
}

/// An error object: `{"type": "overloaded_error", "message": "Overloaded"}`.
#[derive(Debug, Default, Clone, Deserialize)]
pub(super) struct WireError {
    #[serde(rename = "type", default)]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) message: String,
}

impl WireError {
    /// The classified error for this error object (scrubbed by `http`).
    pub(super) fn to_error(&self, http: &Http, model: &str) -> Error {
        let kind = error_kind(&self.kind);
        let message = match (self.kind.is_empty(), self.message.is_empty()) {
            (false, false) => format!("{}: {}", self.kind, self.message),
            (false, true) => self.kind.clone(),
            (true, false) => self.message.clone(),
            (true, true) => "unspecified error".to_owned(),
        };
        http.error(kind, model, message)
    }
}

/// Classifies an Anthropic error type (`error.type`), for errors that arrive without a useful
/// HTTP status: mid-stream `event: error`, or an error object in a 200 body.
pub(super) fn error_kind(kind: &str) -> ErrorKind {
    match kind {
        "invalid_request_error"
        | "authentication_error"
        | "permission_error"
        | "request_too_large"
        | "billing_error" => ErrorKind::Permanent,
        "not_found_error" => ErrorKind::NotFound,
        // overloaded_error, api_error, rate_limit_error, timeout_error, and anything new: a
        // failure the server reports mid-answer is worth another try.
        _ => ErrorKind::Transient,
    }
}

/// Maps `stop_reason`.
pub(super) fn finish_reason(stop_reason: Option<&str>) -> FinishReason {
    match stop_reason {
        None | Some("end_turn" | "stop_sequence") => FinishReason::Stop,
        Some("max_tokens") => FinishReason::Length,
        Some("tool_use") => FinishReason::ToolCalls,
        Some("refusal") => FinishReason::ContentFilter,
        Some(other) => FinishReason::Other(other.to_owned()),
    }
}

/// The finish reason once the structured-output tool has been turned into text: a turn that
/// stopped only to "call" it is a normal stop.
pub(super) fn adjust_finish(reason: FinishReason, answered: bool, real_calls: usize) -> FinishReason {
    if answered && real_calls == 0 && reason == FinishReason::ToolCalls { FinishReason::Stop } else { reason }
}

/// Maps a whole response.
pub(super) fn into_response(http: &Http, model: &str, plan: &Plan, wire: WireResponse) -> Result<Response> {
    if wire.kind == "error" {
        return Err(wire.error.unwrap_or_default().to_error(http, model));
    }
    let Some(content) = wire.content else {
        return Err(http.error(ErrorKind::Decode, model, "response has no `content` array"));
    };
    let mut parts: Vec<Part> = Vec::with_capacity(content.len());
    let mut answer: Option<String> = None;
    let mut pending_thinking = Vec::new();
    let mut real_calls = 0usize;
    for (index, block) in content.into_iter().enumerate() {
        match block {
            WireBlock::Text { text } => {
                if let Some(Part::Text { text: last }) = parts.last_mut() {
                    last.push_str(&text);
                } else if !text.is_empty() {
                    parts.push(Part::Text { text });
                }
            }
            WireBlock::ToolUse { name, input, .. } if plan.is_answer(&name) => {
                let text = plan.answer_text(&input);
                answer.get_or_insert_with(String::new).push_str(&text);
            }
            WireBlock::ToolUse { id, name, input } => {
                real_calls += 1;
                parts.push(Part::ToolCall(ToolCall {
                    id: if id.is_empty() { format!("toolu_{index}") } else { id },
                    name,
                    args: if input.is_null() { Value::Object(Default::default()) } else { input },
                    signature: thinking::encode(std::mem::take(&mut pending_thinking)),
                }));
            }
            WireBlock::Thinking { thinking, signature } => {
                pending_thinking.extend(thinking::thinking_block(&thinking, &signature));
            }
            WireBlock::RedactedThinking { data } => pending_thinking.push(thinking::redacted_block(&data)),
            WireBlock::Other => {}
        }
    }
    if let Some(answer) = &answer {
        // The answer is the tool's input; text the model wrote around it is preamble.
        parts.retain(|p| !matches!(p, Part::Text { .. }));
        parts.insert(0, Part::Text { text: answer.clone() });
    }
    let finish = adjust_finish(finish_reason(wire.stop_reason.as_deref()), answer.is_some(), real_calls);
    Ok(Response {
        message: Message { role: Role::Assistant, parts },
        usage: wire.usage.to_usage(),
        finish_reason: finish,
        provider: http.provider.clone(),
        model: if wire.model.is_empty() { model.to_owned() } else { wire.model },
    })
}
