//! Anthropic Messages, server side: request body -> [`ClientRequest`], [`Response`] ->
//! `message`, [`StreamEvent`]s -> `message_start` / `content_block_*` / `message_delta` /
//! `message_stop` SSE.
//!
//! Request mapping: `system` as a string or text blocks, plus any `system` role message
//! inside `messages` (Claude Code sends one), joins the system prompt in order; `user`
//! content: `text`, `image` (base64 source), and `tool_result` blocks (their text joined;
//! an image inside a result becomes a short placeholder line, since a canonical result is
//! text), results first (they answer the preceding assistant turn), then the rest of the
//! message; `assistant` content: `text`, `tool_use`, and signed `thinking` /
//! `redacted_thinking` blocks, carried on the next call's signature exactly as the Anthropic
//! wire client carries them (so an Anthropic upstream gets them back verbatim); server-tool
//! blocks are dropped. `tools` with an `input_schema` (server tools without one are skipped),
//! `tool_choice`, `max_tokens`, `temperature`, `stop_sequences`, `top_p` / `top_k`
//! (passed through), `thinking: {type: enabled, budget_tokens}` as a reasoning effort
//! (`adaptive` and `disabled` leave it unset), `output_config.format` (`json_schema`) as
//! structured output, and `cache_control` anywhere turns prompt
//! caching on. `metadata` is kept for masked logging only.
//!
//! Streaming: `message_start`, then one content block per run of text (opened on its first
//! delta), each completed tool call as a `tool_use` block whose input arrives in one
//! `input_json_delta` (preceded by the thinking blocks it carries), `message_delta` with the
//! stop reason and usage, `message_stop`. Reasoning deltas from an upstream that is not
//! Anthropic are not forwarded (a thinking block needs a signature). A failure mid-stream is
//! an `event: error`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::chat::{kind, tool_name};
use super::error::{AnthropicError, ApiError};
use std::fmt;

use super::{ClientRequest, DecodeError, Dialect, Path, Sampling, new_id, sse};
use crate::providers::anthropic::thinking;
use crate::providers::wire::args_object;
use crate::stream::StreamEvent;
use crate::types::{
    FinishReason, Message, Part, ReasoningEffort, Request, Response, ResponseSchema, Role, ToolCall,
    ToolChoice, ToolResult, ToolSpec, Usage,
};

#[derive(Deserialize)]
struct Body {
    model: Option<String>,
    messages: Option<Vec<WireMessage>>,
    system: Option<Value>,
    max_tokens: Option<u32>,
    tools: Option<Vec<Value>>,
    tool_choice: Option<Value>,
    stop_sequences: Option<Vec<String>>,
    temperature: Option<f32>,
    stream: Option<bool>,
    thinking: Option<Value>,
    output_config: Option<Value>,
    metadata: Option<Value>,
    #[serde(flatten)]
    sampling: Sampling,
}

#[derive(Deserialize)]
struct WireMessage {
    role: Option<String>,
    #[serde(default)]
    content: Value,
}

/// What decoding collects besides messages.
#[derive(Default)]
struct State {
    system: Vec<String>,
    caching: bool,
}

/// Decodes a Messages request body.
///
/// # Errors
/// A [`DecodeError`] naming the field at fault.
pub fn decode(body: &[u8]) -> Result<ClientRequest, DecodeError> {
    let body: Body = serde_json::from_slice(body).map_err(|e| DecodeError::json(&e))?;
    let model =
        body.model.filter(|m| !m.trim().is_empty()).ok_or(DecodeError::Missing { field: "model".into() })?;
    let messages = body.messages.ok_or(DecodeError::Missing { field: "messages".into() })?;
    let mut state = State::default();
    if let Some(system) = body.system {
        system_text(system, &"system", &mut state)?;
    }
    let mut request = Request::default();
    for (i, message) in messages.into_iter().enumerate() {
        push_message(&mut request.messages, &mut state, message, i)?;
    }
    for (i, tool) in body.tools.unwrap_or_default().into_iter().enumerate() {
        if let Some(spec) = tool_spec(tool, i, &mut state)? {
            request.tools.push(spec);
        }
    }
    if let Some(choice) = body.tool_choice.filter(|c| !c.is_null()) {
        request.tool_choice = tool_choice(&choice)?;
    }
    if !state.system.is_empty() {
        request.system = Some(state.system.join("\n\n"));
    }
    request.max_tokens = body.max_tokens;
    request.temperature = body.temperature;
    request.stop = body.stop_sequences.unwrap_or_default();
    request.reasoning_effort = body.thinking.as_ref().and_then(thinking_effort);
    request.prompt_caching = state.caching;
    if let Some(format) = body.output_config.as_ref().and_then(|c| c.get("format")).filter(|f| !f.is_null()) {
        request.response_schema = output_format(format)?;
    }
    body.sampling.apply(&mut request);
    Ok(ClientRequest {
        dialect: Dialect::Messages,
        model,
        request,
        stream: body.stream.unwrap_or(false),
        include_usage: false,
        metadata: body.metadata.filter(|m| !m.is_null()),
    })
}

fn has_cache_control(block: &Value) -> bool {
    block.get("cache_control").is_some_and(|c| !c.is_null())
}

/// A system prompt: a string or text blocks.
fn system_text(value: Value, field: &dyn fmt::Display, state: &mut State) -> Result<(), DecodeError> {
    match value {
        Value::Null => {}
        Value::String(s) => {
            if !s.is_empty() {
                state.system.push(s);
            }
        }
        Value::Array(blocks) => {
            for (i, block) in blocks.into_iter().enumerate() {
                state.caching |= has_cache_control(&block);
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let text = block.get("text").and_then(Value::as_str).unwrap_or_default();
                        if !text.is_empty() {
                            state.system.push(text.to_owned());
                        }
                    }
                    other => {
                        return Err(DecodeError::field(
                            format!("{field}[{i}]"),
                            format!("expected a text block, got type {}", other.unwrap_or("(none)")),
                        ));
                    }
                }
            }
        }
        other => {
            return Err(DecodeError::field(
                field,
                format!("expected a string or text blocks, got {}", kind(&other)),
            ));
        }
    }
    Ok(())
}

fn push_message(
    out: &mut Vec<Message>,
    state: &mut State,
    message: WireMessage,
    i: usize,
) -> Result<(), DecodeError> {
    let field = Path::Index(&"messages", i);
    let role = message.role.ok_or_else(|| DecodeError::Missing { field: format!("{field}.role") })?;
    let content = Path::Key(&field, "content");
    match role.as_str() {
        "system" => system_text(message.content, &content, state),
        "user" => user_message(out, state, message.content, &content),
        "assistant" => assistant_message(out, state, message.content, &content),
        other => Err(DecodeError::field(format!("{field}.role"), format!("unknown role {other:?}"))),
    }
}

fn blocks(content: Value, field: &dyn fmt::Display) -> Result<Vec<Value>, DecodeError> {
    match content {
        Value::String(text) => Ok(vec![serde_json::json!({"type": "text", "text": text})]),
        Value::Array(blocks) => Ok(blocks),
        Value::Null => Ok(Vec::new()),
        other => Err(DecodeError::field(field, format!("expected a string or blocks, got {}", kind(&other)))),
    }
}

fn str_field(block: &Value, key: &str) -> String {
    block.get(key).and_then(Value::as_str).unwrap_or_default().to_owned()
}

fn user_message(
    out: &mut Vec<Message>,
    state: &mut State,
    content: Value,
    field: &dyn fmt::Display,
) -> Result<(), DecodeError> {
    let mut results = Vec::new();
    let mut parts = Vec::new();
    for (i, block) in blocks(content, field)?.into_iter().enumerate() {
        let block_field = Path::Index(&field, i);
        state.caching |= has_cache_control(&block);
        match block.get("type").and_then(Value::as_str) {
            Some("text") => parts.push(Part::Text { text: str_field(&block, "text") }),
            Some("image") => parts.push(image(&block, &block_field)?),
            Some("tool_result") => {
                let id = block
                    .get("tool_use_id")
                    .and_then(Value::as_str)
                    .filter(|id| !id.is_empty())
                    .ok_or_else(|| DecodeError::Missing { field: format!("{block_field}.tool_use_id") })?
                    .to_owned();
                let content = result_text(block.get("content"), &Path::Key(&block_field, "content"))?;
                let is_error = block.get("is_error").and_then(Value::as_bool).unwrap_or(false);
                let name = tool_name(out, &id);
                results.push(Part::ToolResult(ToolResult { id, name, content, is_error }));
            }
            other => {
                return Err(DecodeError::Unsupported {
                    what: format!(
                        "{block_field}: block type {} in a user message",
                        other.unwrap_or("(none)")
                    ),
                });
            }
        }
    }
    if !results.is_empty() {
        out.push(Message { role: Role::Tool, parts: results });
    }
    if !parts.is_empty() {
        out.push(Message { role: Role::User, parts });
    }
    Ok(())
}

/// A tool result's content as text: a string, or blocks whose text is joined with newlines.
fn result_text(content: Option<&Value>, field: &dyn fmt::Display) -> Result<String, DecodeError> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(blocks)) => {
            let mut lines: Vec<String> = Vec::with_capacity(blocks.len());
            for block in blocks {
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => lines.push(str_field(block, "text")),
                    Some(other) => {
                        let media = block
                            .get("source")
                            .and_then(|s| s.get("media_type"))
                            .and_then(Value::as_str)
                            .unwrap_or("unknown type");
                        lines.push(format!(
                            "[{other} ({media}) omitted: the gateway forwards text results only]"
                        ));
                    }
                    None => {}
                }
            }
            Ok(lines.join("\n"))
        }
        Some(other) => {
            Err(DecodeError::field(field, format!("expected a string or blocks, got {}", kind(other))))
        }
    }
}

fn image(block: &Value, field: &dyn fmt::Display) -> Result<Part, DecodeError> {
    let source =
        block.get("source").ok_or_else(|| DecodeError::Missing { field: format!("{field}.source") })?;
    match source.get("type").and_then(Value::as_str) {
        Some("base64") => {
            use base64::Engine as _;
            let data = source.get("data").and_then(Value::as_str).unwrap_or_default();
            let bytes =
                base64::engine::general_purpose::STANDARD.decode(data.trim().as_bytes()).map_err(|e| {
                    DecodeError::field(format!("{field}.source.data"), format!("invalid base64: {e}"))
                })?;
            let mime = source.get("media_type").and_then(Value::as_str).unwrap_or("application/octet-stream");
            Ok(Part::Image { mime: mime.to_owned(), data: bytes })
        }
        other => Err(DecodeError::Unsupported {
            what: format!("{field}: image source type {} (send base64)", other.unwrap_or("(none)")),
        }),
    }
}

fn assistant_message(
    out: &mut Vec<Message>,
    state: &mut State,
    content: Value,
    field: &dyn fmt::Display,
) -> Result<(), DecodeError> {
    let mut parts = Vec::new();
    let mut carried: Vec<Value> = Vec::new();
    for (i, block) in blocks(content, field)?.into_iter().enumerate() {
        state.caching |= has_cache_control(&block);
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                let text = str_field(&block, "text");
                match parts.last_mut() {
                    Some(Part::Text { text: last }) => last.push_str(&text),
                    _ => parts.push(Part::Text { text }),
                }
            }
            Some("tool_use") => {
                let id = block
                    .get("id")
                    .and_then(Value::as_str)
                    .filter(|id| !id.is_empty())
                    .ok_or_else(|| DecodeError::Missing { field: format!("{field}[{i}].id") })?
                    .to_owned();
                let args =
                    block.get("input").cloned().unwrap_or_else(|| Value::Object(serde_json::Map::new()));
                let signature = thinking::encode(std::mem::take(&mut carried));
                parts.push(Part::ToolCall(ToolCall { id, name: str_field(&block, "name"), args, signature }));
            }
            Some("thinking") => {
                carried.extend(thinking::thinking_block(
                    &str_field(&block, "thinking"),
                    &str_field(&block, "signature"),
                ));
            }
            Some("redacted_thinking") => carried.push(thinking::redacted_block(&str_field(&block, "data"))),
            // Blocks of tools the server ran (web search...): nothing the canonical turn can hold.
            Some("server_tool_use" | "web_search_tool_result" | "web_fetch_tool_result") => {}
            other => {
                return Err(DecodeError::Unsupported {
                    what: format!(
                        "{field}[{i}]: block type {} in an assistant message",
                        other.unwrap_or("(none)")
                    ),
                });
            }
        }
    }
    out.push(Message { role: Role::Assistant, parts });
    Ok(())
}

fn tool_spec(tool: Value, i: usize, state: &mut State) -> Result<Option<ToolSpec>, DecodeError> {
    let field = Path::Index(&"tools", i);
    state.caching |= has_cache_control(&tool);
    // Server tools (`web_search_20250305`, ...) have a type and no input schema: the
    // upstream model cannot run them through this gateway.
    let Some(schema) = tool.get("input_schema").filter(|s| !s.is_null()) else {
        if tool.get("type").is_some_and(|t| t.as_str() != Some("custom")) {
            return Ok(None);
        }
        return Err(DecodeError::Missing { field: format!("{field}.input_schema") });
    };
    let name = tool
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| DecodeError::Missing { field: format!("{field}.name") })?;
    Ok(Some(ToolSpec {
        name: name.to_owned(),
        description: str_field(&tool, "description"),
        parameters: schema.clone(),
    }))
}

fn tool_choice(choice: &Value) -> Result<ToolChoice, DecodeError> {
    match choice.get("type").and_then(Value::as_str) {
        Some("auto") => Ok(ToolChoice::Auto),
        Some("any") => Ok(ToolChoice::Required),
        Some("none") => Ok(ToolChoice::None),
        Some("tool") => match choice.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) {
            Some(name) => Ok(ToolChoice::Tool(name.to_owned())),
            None => Err(DecodeError::Missing { field: "tool_choice.name".into() }),
        },
        other => {
            Err(DecodeError::field("tool_choice.type", format!("unknown value {:?}", other.unwrap_or(""))))
        }
    }
}

/// `output_config.format`: `{type: json_schema, schema}` (structured output).
fn output_format(format: &Value) -> Result<Option<ResponseSchema>, DecodeError> {
    match format.get("type").and_then(Value::as_str) {
        Some("json_schema") => {
            let schema = format
                .get("schema")
                .filter(|s| s.is_object())
                .ok_or_else(|| DecodeError::Missing { field: "output_config.format.schema".into() })?;
            Ok(Some(ResponseSchema { name: "output".into(), schema: schema.clone(), strict: true }))
        }
        other => Err(DecodeError::field(
            "output_config.format.type",
            format!("unknown value {:?}", other.unwrap_or("")),
        )),
    }
}

/// `thinking: {type: enabled, budget_tokens}` as an effort level (the Anthropic wire client's
/// budgets, read backwards).
fn thinking_effort(thinking: &Value) -> Option<ReasoningEffort> {
    if thinking.get("type").and_then(Value::as_str) != Some("enabled") {
        return None;
    }
    let budget = thinking.get("budget_tokens").and_then(Value::as_u64).unwrap_or(0);
    let budgets = crate::providers::anthropic::ThinkingBudgets::default();
    Some(if budget <= u64::from(budgets.minimal) {
        ReasoningEffort::Minimal
    } else if budget <= u64::from(budgets.low) {
        ReasoningEffort::Low
    } else if budget <= u64::from(budgets.medium) {
        ReasoningEffort::Medium
    } else {
        ReasoningEffort::High
    })
}

/// The Messages `stop_reason`.
fn stop_reason(reason: &FinishReason) -> &'static str {
    match reason {
        FinishReason::Length => "max_tokens",
        FinishReason::ToolCalls => "tool_use",
        FinishReason::ContentFilter => "refusal",
        FinishReason::Stop | FinishReason::Other(_) => "end_turn",
    }
}

#[derive(Serialize)]
struct WireUsage {
    input_tokens: u64,
    output_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
}

impl WireUsage {
    fn new(usage: &Usage) -> Self {
        Self {
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cache_creation_input_tokens: usage.cache_write_tokens,
            cache_read_input_tokens: usage.cache_read_tokens,
        }
    }
}

#[derive(Serialize)]
struct WireResponse<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<Value>,
    stop_reason: Option<&'static str>,
    stop_sequence: Option<()>,
    usage: WireUsage,
}

/// The content blocks of one tool call: the thinking blocks it carries, then `tool_use`.
fn call_blocks(call: &ToolCall, out: &mut Vec<Value>) {
    out.extend(thinking::decode(call.signature.as_deref()));
    out.push(serde_json::json!({
        "type": "tool_use",
        "id": call.id,
        "name": call.name,
        "input": args_object(&call.args),
    }));
}

/// The `message` body for `response`.
pub fn encode(request: &ClientRequest, response: &Response) -> Vec<u8> {
    let mut content = Vec::with_capacity(response.message.parts.len());
    for part in &response.message.parts {
        match part {
            Part::Text { text } if !text.is_empty() => {
                content.push(serde_json::json!({"type": "text", "text": text}));
            }
            Part::ToolCall(call) => call_blocks(call, &mut content),
            _ => {}
        }
    }
    let body = WireResponse {
        id: new_id("msg_"),
        kind: "message",
        role: "assistant",
        model: &request.model,
        content,
        stop_reason: Some(stop_reason(&response.finish_reason)),
        stop_sequence: None,
        usage: WireUsage::new(&response.usage),
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

#[derive(Serialize)]
struct MessageStart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: WireResponse<'a>,
}

#[derive(Serialize)]
struct BlockStart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
    content_block: &'a Value,
}

#[derive(Serialize)]
struct BlockDelta<'a, D: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
    delta: &'a D,
}

#[derive(Serialize)]
struct BlockStop {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
}

#[derive(Serialize)]
struct TextDelta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

#[derive(Serialize)]
struct MessageDelta {
    #[serde(rename = "type")]
    kind: &'static str,
    delta: StopDelta,
    usage: WireUsage,
}

#[derive(Serialize)]
struct StopDelta {
    stop_reason: &'static str,
    stop_sequence: Option<()>,
}

#[derive(Serialize)]
struct Kind {
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct ErrorEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: AnthropicError<'a>,
}

/// The Messages streaming encoder (see the module docs for the event sequence).
#[derive(Debug)]
pub struct Encoder {
    id: String,
    model: String,
    started: bool,
    /// Index of the text block being written, if one is open.
    open_text: Option<u32>,
    next_index: u32,
    usage: Usage,
    text: String,
    finished: bool,
}

impl Encoder {
    /// An encoder answering `request`.
    pub fn new(request: &ClientRequest) -> Self {
        Self {
            id: new_id("msg_"),
            model: request.model.clone(),
            started: false,
            open_text: None,
            next_index: 0,
            usage: Usage::default(),
            text: String::new(),
            finished: false,
        }
    }

    /// `message_start`.
    pub fn start(&mut self, out: &mut Vec<u8>) {
        if self.started || self.finished {
            return;
        }
        self.started = true;
        let start = MessageStart {
            kind: "message_start",
            message: WireResponse {
                id: self.id.clone(),
                kind: "message",
                role: "assistant",
                model: &self.model,
                content: Vec::new(),
                stop_reason: None,
                stop_sequence: None,
                usage: WireUsage::new(&Usage::default()),
            },
        };
        sse::frame(out, Some("message_start"), &start);
    }

    fn close_text(&mut self, out: &mut Vec<u8>) {
        if let Some(index) = self.open_text.take() {
            sse::frame(out, Some("content_block_stop"), &BlockStop { kind: "content_block_stop", index });
        }
    }

    fn block(&mut self, out: &mut Vec<u8>, start: &Value, deltas: &[Value]) {
        let index = self.next_index;
        self.next_index += 1;
        sse::frame(
            out,
            Some("content_block_start"),
            &BlockStart { kind: "content_block_start", index, content_block: start },
        );
        for delta in deltas {
            sse::frame(
                out,
                Some("content_block_delta"),
                &BlockDelta { kind: "content_block_delta", index, delta },
            );
        }
        sse::frame(out, Some("content_block_stop"), &BlockStop { kind: "content_block_stop", index });
    }

    /// One event (see [`super::Encoder::event`]).
    pub fn event(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        self.start(out);
        match event {
            StreamEvent::TextDelta { text } if !text.is_empty() => {
                let index = match self.open_text {
                    Some(index) => index,
                    None => {
                        let index = self.next_index;
                        self.next_index += 1;
                        self.open_text = Some(index);
                        let start = serde_json::json!({"type": "text", "text": ""});
                        sse::frame(
                            out,
                            Some("content_block_start"),
                            &BlockStart { kind: "content_block_start", index, content_block: &start },
                        );
                        index
                    }
                };
                self.text.push_str(text);
                let delta = TextDelta { kind: "text_delta", text };
                sse::frame(
                    out,
                    Some("content_block_delta"),
                    &BlockDelta { kind: "content_block_delta", index, delta: &delta },
                );
            }
            StreamEvent::ToolCall { call } => {
                self.close_text(out);
                for carried in thinking::decode(call.signature.as_deref()) {
                    if carried.get("type").and_then(Value::as_str) == Some("thinking") {
                        let start = serde_json::json!({"type": "thinking", "thinking": "", "signature": ""});
                        let deltas = [
                            serde_json::json!({"type": "thinking_delta", "thinking": carried.get("thinking")}),
                            serde_json::json!({"type": "signature_delta", "signature": carried.get("signature")}),
                        ];
                        self.block(out, &start, &deltas);
                    } else {
                        self.block(out, &carried, &[]);
                    }
                }
                let start =
                    serde_json::json!({"type": "tool_use", "id": call.id, "name": call.name, "input": {}});
                let input = args_object(&call.args).to_string();
                let delta = serde_json::json!({"type": "input_json_delta", "partial_json": input});
                self.block(out, &start, &[delta]);
            }
            StreamEvent::Usage { usage } => crate::stream::merge_usage(&mut self.usage, usage),
            StreamEvent::Done { finish_reason, .. } => {
                self.close_text(out);
                self.finished = true;
                let delta = MessageDelta {
                    kind: "message_delta",
                    delta: StopDelta { stop_reason: stop_reason(finish_reason), stop_sequence: None },
                    usage: WireUsage::new(&self.usage),
                };
                sse::frame(out, Some("message_delta"), &delta);
                sse::frame(out, Some("message_stop"), &Kind { kind: "message_stop" });
            }
            StreamEvent::TextDelta { .. }
            | StreamEvent::ReasoningDelta { .. }
            | StreamEvent::ToolCallDelta { .. } => {}
        }
    }

    /// Ends the stream with an `error` event.
    pub fn fail(&mut self, error: &ApiError, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        self.finished = true;
        let event = ErrorEvent {
            kind: "error",
            error: AnthropicError { kind: error.class.anthropic_type(), message: &error.message },
        };
        sse::frame(out, Some("error"), &event);
    }

    /// True once ended.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The text written so far.
    pub fn text(&self) -> &str {
        &self.text
    }
}
