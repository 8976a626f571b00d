//! The `/api/chat` wire format: canonical [`Request`] -> JSON body, and response chunks ->
//! canonical parts, usage and finish reason.
//!
//! The mapping rules are documented on the parent module, where users can read them.

pub(crate) use crate::providers::wire::{args_object, decimal, merge_extra};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::types::{FinishReason, Part, ReasoningEffort, Request, Role, ToolCall, ToolChoice, Usage};

/// Builds the JSON body of a `/api/chat` call.
pub(crate) fn build_body(model: &str, req: &Request, stream: bool) -> Value {
    let mut messages = Vec::new();
    if let Some(system) = system_prompt(req) {
        messages.push(json!({ "role": "system", "content": system }));
    }
    for message in &req.messages {
        push_message(&mut messages, message.role, &message.parts);
    }

    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("messages".into(), Value::Array(messages));
    body.insert("stream".into(), json!(stream));

    let tools: Vec<Value> = match &req.tool_choice {
        ToolChoice::None => Vec::new(),
        ToolChoice::Tool(name) => req.tools.iter().filter(|t| &t.name == name).map(tool_json).collect(),
        ToolChoice::Auto | ToolChoice::Required => req.tools.iter().map(tool_json).collect(),
    };
    if !tools.is_empty() {
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(schema) = &req.response_schema {
        body.insert("format".into(), schema.schema.clone());
    }

    let mut options = Map::new();
    if let Some(t) = req.temperature {
        options.insert("temperature".into(), decimal(t));
    }
    if let Some(n) = req.max_tokens {
        options.insert("num_predict".into(), json!(n));
    }
    if !req.stop.is_empty() {
        options.insert("stop".into(), json!(req.stop));
    }
    if let Some(seed) = req.seed {
        options.insert("seed".into(), json!(seed));
    }
    if !options.is_empty() {
        body.insert("options".into(), Value::Object(options));
    }
    if let Some(effort) = req.reasoning_effort {
        body.insert("think".into(), think_value(effort));
    }

    let mut body = Value::Object(body);
    merge_extra(&mut body, &req.extra);
    body
}

/// The `think` value for a reasoning effort (see the module docs).
pub(crate) fn think_value(effort: ReasoningEffort) -> Value {
    match effort {
        ReasoningEffort::Minimal => Value::Bool(false),
        other => Value::String(other.as_str().to_owned()),
    }
}

/// The system prompt with the notes Ollama needs: forced tool choice and the output schema.
fn system_prompt(req: &Request) -> Option<String> {
    let mut notes: Vec<String> = Vec::new();
    if let Some(system) = req.system.as_ref().filter(|s| !s.is_empty()) {
        notes.push(system.clone());
    }
    if !req.tools.is_empty() {
        match &req.tool_choice {
            ToolChoice::Required => {
                notes.push("You must call one of the provided tools in your reply.".to_owned());
            }
            ToolChoice::Tool(name) => notes.push(format!("You must call the tool `{name}` in your reply.")),
            ToolChoice::Auto | ToolChoice::None => {}
        }
    }
    if let Some(schema) = &req.response_schema {
        notes.push(format!(
            "Reply with only a JSON value (no prose, no code fences) that matches this JSON \
             schema named \"{}\":\n{}",
            schema.name, schema.schema
        ));
    }
    (!notes.is_empty()).then(|| notes.join("\n\n"))
}

fn tool_json(tool: &crate::types::ToolSpec) -> Value {
    json!({
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        }
    })
}

/// Appends one canonical message as Ollama messages: tool results first (each its own
/// `tool` message), then the text, images and tool calls.
fn push_message(out: &mut Vec<Value>, role: Role, parts: &[Part]) {
    let mut text = String::new();
    let mut images = Vec::new();
    let mut calls = Vec::new();
    for part in parts {
        match part {
            Part::Text { text: t } => text.push_str(t),
            Part::Image { data, .. } => images.push(Value::String(STANDARD.encode(data))),
            Part::ToolCall(call) => calls.push(json!({
                "id": call.id,
                "function": { "name": call.name, "arguments": args_object(&call.args) },
            })),
            Part::ToolResult(result) => {
                let content = if result.is_error {
                    format!("Error: {}", result.content)
                } else {
                    result.content.clone()
                };
                out.push(json!({
                    "role": "tool",
                    "content": content,
                    "tool_name": result.name,
                    "tool_call_id": result.id,
                }));
            }
        }
    }
    if text.is_empty() && images.is_empty() && calls.is_empty() {
        return;
    }
    let role = match role {
        Role::User | Role::Tool => "user",
        Role::Assistant => "assistant",
    };
    let mut message = Map::new();
    message.insert("role".into(), json!(role));
    message.insert("content".into(), Value::String(text));
    if !images.is_empty() {
        message.insert("images".into(), Value::Array(images));
    }
    if !calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    out.push(Value::Object(message));
}

/// One `/api/chat` response object: the whole non-streamed answer, or one NDJSON line.
/// Every field is optional so that a lenient server (or a hostile one) never panics us.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Chunk {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub message: Option<ChunkMessage>,
    #[serde(default)]
    pub done: bool,
    #[serde(default)]
    pub done_reason: Option<String>,
    #[serde(default)]
    pub prompt_eval_count: Option<u64>,
    #[serde(default)]
    pub eval_count: Option<u64>,
    /// `{"error": "..."}` (Ollama) or `{"error": {"message": ...}}` (proxies).
    #[serde(default)]
    pub error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ChunkMessage {
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub thinking: Option<String>,
    #[serde(default)]
    pub tool_calls: Option<Vec<WireToolCall>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireToolCall {
    #[serde(default)]
    pub id: Option<String>,
    pub function: WireFunction,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireFunction {
    pub name: String,
    #[serde(default)]
    pub arguments: Value,
}

impl Chunk {
    /// The error message, when this chunk is an error report.
    pub fn error_message(&self) -> Option<String> {
        match self.error.as_ref()? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => {
                Some(o.get("message").and_then(Value::as_str).map_or_else(|| o_to_string(o), str::to_owned))
            }
            other => Some(other.to_string()),
        }
    }

    /// The usage this chunk reports (the final chunk carries it).
    pub fn usage(&self) -> Usage {
        Usage {
            input_tokens: self.prompt_eval_count.unwrap_or(0),
            output_tokens: self.eval_count.unwrap_or(0),
            ..Usage::default()
        }
    }

    /// The tool calls in this chunk, with ids (synthesised when the server sends none).
    pub fn take_tool_calls(&mut self) -> Vec<ToolCall> {
        let Some(calls) = self.message.as_mut().and_then(|m| m.tool_calls.take()) else {
            return Vec::new();
        };
        calls
            .into_iter()
            .map(|c| ToolCall {
                id: c.id.filter(|id| !id.is_empty()).unwrap_or_else(synth_id),
                name: c.function.name,
                args: parse_args(c.function.arguments),
                signature: None,
            })
            .collect()
    }
}

fn o_to_string(o: &Map<String, Value>) -> String {
    Value::Object(o.clone()).to_string()
}

/// Arguments as sent by the server: an object normally; a JSON string is parsed; anything
/// that is not JSON stays a string so the caller can report it back.
fn parse_args(args: Value) -> Value {
    match args {
        Value::Null => Value::Object(Map::new()),
        Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        other => other,
    }
}

/// A fresh, unique tool-call id (Ollama usually sends none).
pub(crate) fn synth_id() -> String {
    format!("call_{:016x}", fastrand::u64(..))
}

/// Maps Ollama's `done_reason`; tool calls take precedence.
pub(crate) fn finish_reason(done_reason: Option<&str>, has_tool_calls: bool) -> FinishReason {
    if has_tool_calls {
        return FinishReason::ToolCalls;
    }
    match done_reason {
        None | Some("" | "stop") => FinishReason::Stop,
        Some("length") => FinishReason::Length,
        Some(other) => FinishReason::Other(other.to_owned()),
    }
}
