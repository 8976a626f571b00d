//! OpenAI Chat Completions, server side: request body -> [`ClientRequest`], [`Response`] ->
//! `chat.completion`, [`StreamEvent`]s -> `chat.completion.chunk` SSE.
//!
//! Request mapping: `system` and `developer` messages join the system prompt (in order, blank
//! line between); `user` content is a string or `text` / `image_url` (`data:` URLs only)
//! parts; `assistant` text and `tool_calls` (arguments parsed from their JSON string, kept as
//! `Value::String` when they are not JSON); each `tool` message is a tool result named after
//! the call it answers (consecutive ones share one canonical tool message); `tools`
//! (`function` only), `tool_choice`, `response_format` (`json_schema`, and `json_object` as
//! an object schema), `max_completion_tokens` (or `max_tokens`), `temperature`, `stop`,
//! `seed`, `reasoning_effort`, `stream`, `stream_options.include_usage`; sampling settings
//! without a canonical slot (`top_p`, `logit_bias`, ...) pass through as [`Request::extra`].
//!
//! Streaming: the first chunk carries `role: assistant`; text and reasoning
//! (`reasoning_content`, as llama.cpp writes it) stream as they come; each completed tool call
//! is one chunk with its whole arguments; the last choice chunk has the `finish_reason`; with
//! `include_usage` a usage-only chunk (empty `choices`) follows; then `data: [DONE]`. A
//! failure mid-stream is a `data: {"error": ...}` chunk, which the official SDK raises as an
//! `APIError`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::ApiError;
use std::fmt;

use super::{
    ClientRequest, DecodeError, Dialect, Path, Sampling, args_string, data_url, new_id, parse_args, sse,
};
use crate::stream::StreamEvent;
use crate::types::{
    FinishReason, Message, Part, ReasoningEffort, Request, Response, ResponseSchema, Role, ToolCall,
    ToolChoice, ToolResult, ToolSpec, Usage,
};

#[derive(Deserialize)]
struct Body {
    model: Option<String>,
    messages: Option<Vec<WireMessage>>,
    tools: Option<Vec<WireTool>>,
    tool_choice: Option<Value>,
    response_format: Option<Value>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    temperature: Option<f32>,
    stop: Option<Value>,
    seed: Option<u64>,
    reasoning_effort: Option<String>,
    metadata: Option<Value>,
    #[serde(flatten)]
    sampling: Sampling,
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
struct WireMessage {
    role: Option<String>,
    #[serde(default)]
    content: Value,
    tool_calls: Option<Vec<WireCall>>,
    tool_call_id: Option<String>,
}

#[derive(Deserialize)]
struct WireCall {
    id: Option<String>,
    function: Option<WireFunction>,
}

#[derive(Deserialize)]
struct WireFunction {
    name: Option<String>,
    arguments: Option<Value>,
}

#[derive(Deserialize)]
struct WireTool {
    #[serde(rename = "type")]
    kind: Option<String>,
    function: Option<WireToolFunction>,
}

#[derive(Deserialize)]
struct WireToolFunction {
    name: Option<String>,
    description: Option<String>,
    parameters: Option<Value>,
}

/// Decodes a Chat Completions request body.
///
/// # Errors
/// A [`DecodeError`] naming the field at fault.
pub fn decode(body: &[u8]) -> Result<ClientRequest, DecodeError> {
    let body: Body = serde_json::from_slice(body).map_err(|e| DecodeError::json(&e))?;
    let model =
        body.model.filter(|m| !m.trim().is_empty()).ok_or(DecodeError::Missing { field: "model".into() })?;
    let messages = body.messages.ok_or(DecodeError::Missing { field: "messages".into() })?;
    let mut request = Request::default();
    let mut system: Vec<String> = Vec::new();
    for (i, message) in messages.into_iter().enumerate() {
        push_message(&mut request.messages, &mut system, message, i)?;
    }
    if !system.is_empty() {
        request.system = Some(system.join("\n\n"));
    }
    for (i, tool) in body.tools.unwrap_or_default().into_iter().enumerate() {
        let field = Path::Index(&"tools", i);
        if tool.kind.as_deref().is_some_and(|k| k != "function") {
            return Err(DecodeError::Unsupported {
                what: format!("{field}: tool type {:?} (only function tools)", tool.kind.unwrap_or_default()),
            });
        }
        let function =
            tool.function.ok_or_else(|| DecodeError::Missing { field: format!("{field}.function") })?;
        let name = function
            .name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| DecodeError::Missing { field: format!("{field}.function.name") })?;
        request.tools.push(ToolSpec {
            name,
            description: function.description.unwrap_or_default(),
            parameters: function.parameters.unwrap_or_else(|| serde_json::json!({"type": "object"})),
        });
    }
    if let Some(choice) = body.tool_choice {
        request.tool_choice = tool_choice(&choice)?;
    }
    if let Some(format) = body.response_format {
        request.response_schema = response_format(&format)?;
    }
    request.max_tokens = body.max_completion_tokens.or(body.max_tokens);
    request.temperature = body.temperature;
    request.stop = stop(body.stop)?;
    request.seed = body.seed;
    request.reasoning_effort = match body.reasoning_effort {
        Some(effort) => reasoning_effort(&effort, "reasoning_effort")?,
        None => None,
    };
    body.sampling.apply(&mut request);
    let stream = body.stream.unwrap_or(false);
    let include_usage = body.stream_options.and_then(|o| o.include_usage).unwrap_or(false);
    Ok(ClientRequest {
        dialect: Dialect::Chat,
        model,
        request,
        stream,
        include_usage,
        metadata: body.metadata.filter(|m| !m.is_null()),
    })
}

fn push_message(
    out: &mut Vec<Message>,
    system: &mut Vec<String>,
    message: WireMessage,
    i: usize,
) -> Result<(), DecodeError> {
    let field = Path::Index(&"messages", i);
    let role = message.role.ok_or_else(|| DecodeError::Missing { field: format!("{field}.role") })?;
    match role.as_str() {
        "system" | "developer" => {
            let text = text_content(message.content, &Path::Key(&field, "content"))?;
            if !text.is_empty() {
                system.push(text);
            }
        }
        "user" => {
            let parts = user_parts(message.content, &Path::Key(&field, "content"))?;
            out.push(Message { role: Role::User, parts });
        }
        "assistant" => {
            let mut parts = Vec::new();
            let text = text_content(message.content, &Path::Key(&field, "content"))?;
            if !text.is_empty() {
                parts.push(Part::Text { text });
            }
            for (j, call) in message.tool_calls.unwrap_or_default().into_iter().enumerate() {
                let calls = Path::Key(&field, "tool_calls");
                let call_field = Path::Index(&calls, j);
                let id = call
                    .id
                    .filter(|id| !id.is_empty())
                    .ok_or_else(|| DecodeError::Missing { field: format!("{call_field}.id") })?;
                let function = call
                    .function
                    .ok_or_else(|| DecodeError::Missing { field: format!("{call_field}.function") })?;
                let name = function.name.unwrap_or_default();
                let args = match function.arguments {
                    None | Some(Value::Null) => Value::Object(serde_json::Map::new()),
                    Some(Value::String(raw)) => parse_args(&raw),
                    Some(other) => other,
                };
                parts.push(Part::ToolCall(ToolCall { id, name, args, signature: None }));
            }
            out.push(Message { role: Role::Assistant, parts });
        }
        "tool" => {
            let id = message
                .tool_call_id
                .filter(|id| !id.is_empty())
                .ok_or_else(|| DecodeError::Missing { field: format!("{field}.tool_call_id") })?;
            let content = text_content(message.content, &Path::Key(&field, "content"))?;
            let name = tool_name(out, &id);
            let result = Part::ToolResult(ToolResult { id, name, content, is_error: false });
            match out.last_mut() {
                Some(last) if last.role == Role::Tool => last.parts.push(result),
                _ => out.push(Message { role: Role::Tool, parts: vec![result] }),
            }
        }
        "function" => {
            return Err(DecodeError::Unsupported {
                what: format!("{field}: the legacy `function` role (send `tool` messages with tool_call_id)"),
            });
        }
        other => return Err(DecodeError::field(format!("{field}.role"), format!("unknown role {other:?}"))),
    }
    Ok(())
}

/// The name of the tool call `id` in the transcript so far (empty if no call has that id).
pub(super) fn tool_name(messages: &[Message], id: &str) -> String {
    messages
        .iter()
        .rev()
        .filter(|m| m.role == Role::Assistant)
        .flat_map(|m| m.tool_calls())
        .find(|c| c.id == id)
        .map(|c| c.name.clone())
        .unwrap_or_default()
}

/// Text content: a string, `null`, or an array of `text` (and `refusal`) parts.
fn text_content(content: Value, field: &dyn fmt::Display) -> Result<String, DecodeError> {
    match content {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s),
        Value::Array(parts) => {
            let mut text = String::new();
            for (i, part) in parts.into_iter().enumerate() {
                match part_type(&part) {
                    Some("text") | Some("input_text") | Some("output_text") => {
                        text.push_str(part.get("text").and_then(Value::as_str).unwrap_or_default());
                    }
                    Some("refusal") => {
                        text.push_str(part.get("refusal").and_then(Value::as_str).unwrap_or_default());
                    }
                    other => {
                        return Err(DecodeError::field(
                            format!("{field}[{i}]"),
                            format!("expected a text part, got type {}", other.unwrap_or("(none)")),
                        ));
                    }
                }
            }
            Ok(text)
        }
        other => Err(DecodeError::field(field, format!("expected a string or parts, got {}", kind(&other)))),
    }
}

fn user_parts(content: Value, field: &dyn fmt::Display) -> Result<Vec<Part>, DecodeError> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(text) => Ok(vec![Part::Text { text }]),
        Value::Array(parts) => {
            let mut out = Vec::with_capacity(parts.len());
            for (i, part) in parts.into_iter().enumerate() {
                let part_field = Path::Index(&field, i);
                match part_type(&part) {
                    Some("text") => {
                        let text = part.get("text").and_then(Value::as_str).unwrap_or_default().to_owned();
                        out.push(Part::Text { text });
                    }
                    Some("image_url") => {
                        let url = part
                            .get("image_url")
                            .and_then(|u| u.get("url").or(Some(u)))
                            .and_then(Value::as_str)
                            .ok_or_else(|| DecodeError::Missing {
                                field: format!("{part_field}.image_url.url"),
                            })?;
                        let (mime, data) = data_url(url, &part_field)?;
                        out.push(Part::Image { mime, data });
                    }
                    other => {
                        return Err(DecodeError::Unsupported {
                            what: format!("{part_field}: content part type {}", other.unwrap_or("(none)")),
                        });
                    }
                }
            }
            Ok(out)
        }
        other => Err(DecodeError::field(field, format!("expected a string or parts, got {}", kind(&other)))),
    }
}

fn part_type(part: &Value) -> Option<&str> {
    part.get("type").and_then(Value::as_str)
}

pub(super) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn tool_choice(choice: &Value) -> Result<ToolChoice, DecodeError> {
    match choice {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            other => Err(DecodeError::field("tool_choice", format!("unknown value {other:?}"))),
        },
        Value::Object(obj) => {
            let name = obj
                .get("function")
                .and_then(|f| f.get("name"))
                .or_else(|| obj.get("name"))
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty());
            match (obj.get("type").and_then(Value::as_str), name) {
                (Some("function"), Some(name)) => Ok(ToolChoice::Tool(name.to_owned())),
                (Some("allowed_tools"), _) => Ok(ToolChoice::Auto),
                _ => Err(DecodeError::field("tool_choice", "expected {type: function, function: {name}}")),
            }
        }
        Value::Null => Ok(ToolChoice::Auto),
        other => Err(DecodeError::field(
            "tool_choice",
            format!("expected a string or an object, got {}", kind(other)),
        )),
    }
}

/// `{type: text}` (none), `{type: json_object}` (an object schema), or
/// `{type: json_schema, json_schema: {name, schema, strict}}`.
pub(super) fn response_format(format: &Value) -> Result<Option<ResponseSchema>, DecodeError> {
    let kind = format.get("type").and_then(Value::as_str);
    match kind {
        None | Some("text") => Ok(None),
        Some("json_object") => Ok(Some(ResponseSchema {
            name: "json_object".into(),
            schema: serde_json::json!({"type": "object"}),
            strict: false,
        })),
        Some("json_schema") => {
            // Chat nests it under `json_schema`; the Responses API's `text.format` is flat.
            let spec = format.get("json_schema").unwrap_or(format);
            let schema = spec
                .get("schema")
                .filter(|s| s.is_object())
                .ok_or_else(|| DecodeError::Missing { field: "response_format.json_schema.schema".into() })?;
            Ok(Some(ResponseSchema {
                name: spec.get("name").and_then(Value::as_str).unwrap_or("response").to_owned(),
                schema: schema.clone(),
                strict: spec.get("strict").and_then(Value::as_bool).unwrap_or(false),
            }))
        }
        Some(other) => Err(DecodeError::field("response_format.type", format!("unknown value {other:?}"))),
    }
}

fn stop(stop: Option<Value>) -> Result<Vec<String>, DecodeError> {
    match stop {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s]),
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s),
                other => Err(DecodeError::field(
                    format!("stop[{i}]"),
                    format!("expected a string, got {}", kind(&other)),
                )),
            })
            .collect(),
        Some(other) => {
            Err(DecodeError::field("stop", format!("expected a string or strings, got {}", kind(&other))))
        }
    }
}

/// `minimal` / `low` / `medium` / `high` (`xhigh` counts as high, `none` as unset).
pub(super) fn reasoning_effort(effort: &str, field: &str) -> Result<Option<ReasoningEffort>, DecodeError> {
    match effort {
        "none" => Ok(None),
        "minimal" => Ok(Some(ReasoningEffort::Minimal)),
        "low" => Ok(Some(ReasoningEffort::Low)),
        "medium" => Ok(Some(ReasoningEffort::Medium)),
        "high" | "xhigh" => Ok(Some(ReasoningEffort::High)),
        other => Err(DecodeError::field(field, format!("unknown value {other:?}"))),
    }
}

/// The Chat Completions `finish_reason`.
pub(super) fn finish_reason(reason: &FinishReason) -> &str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
        FinishReason::Other(other) => other,
    }
}

#[derive(Serialize)]
struct Completion<'a> {
    id: String,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    usage: WireUsage,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: OutMessage<'a>,
    finish_reason: &'a str,
    logprobs: Option<()>,
}

#[derive(Serialize)]
struct OutMessage<'a> {
    role: &'static str,
    content: Option<String>,
    refusal: Option<()>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<OutCall<'a>>,
}

#[derive(Serialize)]
struct OutCall<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<u32>,
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: OutFunction<'a>,
}

#[derive(Serialize)]
struct OutFunction<'a> {
    name: &'a str,
    arguments: String,
}

#[derive(Serialize)]
struct WireUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: CachedTokens,
    completion_tokens_details: ReasoningTokens,
}

#[derive(Serialize)]
struct CachedTokens {
    cached_tokens: u64,
}

#[derive(Serialize)]
struct ReasoningTokens {
    reasoning_tokens: u64,
}

impl WireUsage {
    fn new(usage: &Usage) -> Self {
        Self {
            prompt_tokens: usage.input_tokens,
            completion_tokens: usage.output_tokens,
            total_tokens: usage.total(),
            prompt_tokens_details: CachedTokens { cached_tokens: usage.cache_read_tokens },
            completion_tokens_details: ReasoningTokens { reasoning_tokens: usage.reasoning_tokens },
        }
    }
}

fn out_call(call: &ToolCall, index: Option<u32>) -> OutCall<'_> {
    OutCall {
        index,
        id: &call.id,
        kind: "function",
        function: OutFunction { name: &call.name, arguments: args_string(&call.args) },
    }
}

/// The `chat.completion` body for `response`.
pub fn encode(request: &ClientRequest, response: &Response) -> Vec<u8> {
    let text = response.text();
    let calls: Vec<OutCall<'_>> = response.message.tool_calls().map(|c| out_call(c, None)).collect();
    let content = if text.is_empty() && !calls.is_empty() { None } else { Some(text) };
    let body = Completion {
        id: new_id("chatcmpl-"),
        object: "chat.completion",
        created: super::unix_now(),
        model: &request.model,
        choices: [Choice {
            index: 0,
            message: OutMessage { role: "assistant", content, refusal: None, tool_calls: calls },
            finish_reason: finish_reason(&response.finish_reason),
            logprobs: None,
        }],
        usage: WireUsage::new(&response.usage),
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<ChunkChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<WireUsage>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    finish_reason: Option<&'a str>,
}

#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<OutCall<'a>>,
}

#[derive(Serialize)]
struct ErrorChunk<'a> {
    error: ErrorObject<'a>,
}

#[derive(Serialize)]
struct ErrorObject<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    code: &'static str,
}

/// The Chat Completions streaming encoder (see the module docs for the chunk sequence).
#[derive(Debug)]
pub struct Encoder {
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    started: bool,
    calls: u32,
    usage: Usage,
    text: String,
    finished: bool,
}

impl Encoder {
    /// An encoder answering `request`.
    pub fn new(request: &ClientRequest) -> Self {
        Self {
            id: new_id("chatcmpl-"),
            model: request.model.clone(),
            created: super::unix_now(),
            include_usage: request.include_usage,
            started: false,
            calls: 0,
            usage: Usage::default(),
            text: String::new(),
            finished: false,
        }
    }

    fn chunk(&self, out: &mut Vec<u8>, delta: Delta<'_>, finish_reason: Option<&str>) {
        let chunk = Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: vec![ChunkChoice { index: 0, delta, finish_reason }],
            usage: None,
        };
        sse::frame(out, None, &chunk);
    }

    /// The first chunk: the assistant role.
    pub fn start(&mut self, out: &mut Vec<u8>) {
        if self.started || self.finished {
            return;
        }
        self.started = true;
        self.chunk(out, Delta { role: Some("assistant"), content: Some(""), ..Delta::default() }, None);
    }

    /// One event (see [`super::Encoder::event`]).
    pub fn event(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        self.start(out);
        match event {
            StreamEvent::TextDelta { text } if !text.is_empty() => {
                self.text.push_str(text);
                self.chunk(out, Delta { content: Some(text), ..Delta::default() }, None);
            }
            StreamEvent::ReasoningDelta { text } if !text.is_empty() => {
                self.chunk(out, Delta { reasoning_content: Some(text), ..Delta::default() }, None);
            }
            StreamEvent::ToolCall { call } => {
                let index = self.calls;
                self.calls += 1;
                self.chunk(
                    out,
                    Delta { tool_calls: vec![out_call(call, Some(index))], ..Delta::default() },
                    None,
                );
            }
            StreamEvent::Usage { usage } => crate::stream::merge_usage(&mut self.usage, usage),
            StreamEvent::Done { finish_reason: reason, .. } => {
                self.finished = true;
                self.chunk(out, Delta::default(), Some(finish_reason(reason)));
                if self.include_usage {
                    let chunk = Chunk {
                        id: &self.id,
                        object: "chat.completion.chunk",
                        created: self.created,
                        model: &self.model,
                        choices: Vec::new(),
                        usage: Some(WireUsage::new(&self.usage)),
                    };
                    sse::frame(out, None, &chunk);
                }
                sse::raw(out, "[DONE]");
            }
            StreamEvent::TextDelta { .. }
            | StreamEvent::ReasoningDelta { .. }
            | StreamEvent::ToolCallDelta { .. } => {}
        }
    }

    /// Ends the stream with an error chunk.
    pub fn fail(&mut self, error: &ApiError, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        self.finished = true;
        let chunk = ErrorChunk {
            error: ErrorObject {
                message: &error.message,
                kind: error.class.openai_type(),
                code: error.class.openai_code(),
            },
        };
        sse::frame(out, None, &chunk);
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
