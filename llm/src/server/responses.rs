//! The OpenAI Responses API, server side (`store: false`: every request carries the whole
//! conversation, which is what the Codex CLI sends): request body -> [`ClientRequest`],
//! [`Response`] -> `response` object, [`StreamEvent`]s -> typed SSE events ending in
//! `response.completed`.
//!
//! Request mapping: `instructions` and `system` / `developer` message items form the system
//! prompt; `input` is a string (one user message) or items: `message` items (`input_text` /
//! `output_text` / `input_image` with a `data:` URL), `function_call` (joining the preceding
//! assistant message, as one canonical assistant turn), `function_call_output` (a tool result
//! named after its call); `reasoning` items are dropped (they are the upstream's own notes).
//! `tools`: `function` tools; others (`web_search`, `namespace`, `custom`, ...) are left out,
//! so the model never calls a tool this server cannot describe. `tool_choice`,
//! `text.format` (`json_schema`, `json_object`), `max_output_tokens`, `temperature`,
//! `reasoning.effort`, `top_p` (passed through). A non-null `previous_response_id` or an
//! `item_reference` is refused: nothing is stored here.
//!
//! Streaming: `response.created`, `response.in_progress`; a text run is a `message` output
//! item (`response.output_item.added`, `response.content_part.added`,
//! `response.output_text.delta`..., `response.output_text.done`, `response.content_part.done`,
//! `response.output_item.done`); each completed tool call is a `function_call` item
//! (`added`, one `response.function_call_arguments.delta`, `...done`, `output_item.done`);
//! then `response.completed` (or `response.incomplete` when the output cap or a content
//! filter cut it) with the whole response and usage. A failure is `response.failed`. Every
//! event carries a `sequence_number`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::chat::{kind, reasoning_effort, response_format, tool_name};
use super::error::ApiError;
use std::fmt;

use super::{
    ClientRequest, DecodeError, Dialect, Path, Sampling, args_string, data_url, new_id, parse_args, sse,
};
use crate::stream::StreamEvent;
use crate::types::{
    FinishReason, Message, Part, Request, Response, Role, ToolCall, ToolChoice, ToolResult, ToolSpec, Usage,
};

#[derive(Deserialize)]
struct Body {
    model: Option<String>,
    input: Option<Value>,
    instructions: Option<Value>,
    tools: Option<Vec<Value>>,
    tool_choice: Option<Value>,
    text: Option<TextConfig>,
    max_output_tokens: Option<u32>,
    temperature: Option<f32>,
    reasoning: Option<Reasoning>,
    stream: Option<bool>,
    previous_response_id: Option<Value>,
    metadata: Option<Value>,
    #[serde(flatten)]
    sampling: Sampling,
}

#[derive(Deserialize)]
struct TextConfig {
    format: Option<Value>,
}

#[derive(Deserialize)]
struct Reasoning {
    effort: Option<String>,
}

/// Decodes a Responses API request body.
///
/// # Errors
/// A [`DecodeError`] naming the field at fault.
pub fn decode(body: &[u8]) -> Result<ClientRequest, DecodeError> {
    let body: Body = serde_json::from_slice(body).map_err(|e| DecodeError::json(&e))?;
    let model =
        body.model.filter(|m| !m.trim().is_empty()).ok_or(DecodeError::Missing { field: "model".into() })?;
    if body.previous_response_id.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(DecodeError::Unsupported {
            what: "previous_response_id: responses are not stored here; send the whole conversation in \
                   `input` (store: false)"
                .into(),
        });
    }
    let mut request = Request::default();
    let mut system: Vec<String> = Vec::new();
    match body.instructions {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            if !s.is_empty() {
                system.push(s);
            }
        }
        Some(other) => {
            return Err(DecodeError::field(
                "instructions",
                format!("expected a string, got {}", kind(&other)),
            ));
        }
    }
    match body.input.ok_or(DecodeError::Missing { field: "input".into() })? {
        Value::String(text) => request.messages.push(Message::user(text)),
        Value::Array(items) => {
            for (i, item) in items.into_iter().enumerate() {
                push_item(&mut request.messages, &mut system, item, i)?;
            }
        }
        other => {
            return Err(DecodeError::field(
                "input",
                format!("expected a string or items, got {}", kind(&other)),
            ));
        }
    }
    if !system.is_empty() {
        request.system = Some(system.join("\n\n"));
    }
    for (i, tool) in body.tools.unwrap_or_default().into_iter().enumerate() {
        if tool.get("type").and_then(Value::as_str) != Some("function") {
            continue;
        }
        let name = tool
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| DecodeError::Missing { field: format!("tools[{i}].name") })?;
        request.tools.push(ToolSpec {
            name: name.to_owned(),
            description: tool.get("description").and_then(Value::as_str).unwrap_or_default().to_owned(),
            parameters: tool
                .get("parameters")
                .filter(|p| !p.is_null())
                .cloned()
                .unwrap_or_else(|| json!({"type": "object"})),
        });
    }
    if let Some(choice) = body.tool_choice.filter(|c| !c.is_null()) {
        request.tool_choice = tool_choice(&choice)?;
    }
    if let Some(format) = body.text.and_then(|t| t.format) {
        request.response_schema = response_format(&format)?;
    }
    request.max_tokens = body.max_output_tokens;
    request.temperature = body.temperature;
    if let Some(effort) = body.reasoning.and_then(|r| r.effort) {
        request.reasoning_effort = reasoning_effort(&effort, "reasoning.effort")?;
    }
    body.sampling.apply(&mut request);
    Ok(ClientRequest {
        dialect: Dialect::Responses,
        model,
        request,
        stream: body.stream.unwrap_or(false),
        include_usage: false,
        metadata: body.metadata.filter(|m| !m.is_null()),
    })
}

fn push_item(
    out: &mut Vec<Message>,
    system: &mut Vec<String>,
    item: Value,
    i: usize,
) -> Result<(), DecodeError> {
    let field = Path::Index(&"input", i);
    let kind_name = item.get("type").and_then(Value::as_str).map(str::to_owned);
    match kind_name.as_deref() {
        // A message item may leave its type out (`{"role": "user", "content": "..."}`).
        None | Some("message") => {
            let role = item.get("role").and_then(Value::as_str).unwrap_or_default().to_owned();
            let content = item.get("content").cloned().unwrap_or(Value::Null);
            let parts = content_parts(content, &Path::Key(&field, "content"))?;
            match role.as_str() {
                "system" | "developer" => {
                    let text: String = parts
                        .iter()
                        .filter_map(|p| match p {
                            Part::Text { text } => Some(text.as_str()),
                            _ => None,
                        })
                        .collect();
                    if !text.is_empty() {
                        system.push(text);
                    }
                }
                "user" => out.push(Message { role: Role::User, parts }),
                "assistant" => out.push(Message { role: Role::Assistant, parts }),
                other => {
                    return Err(DecodeError::field(
                        format!("{field}.role"),
                        format!("unknown role {other:?}"),
                    ));
                }
            }
        }
        Some("function_call") => {
            let id = item
                .get("call_id")
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty())
                .ok_or_else(|| DecodeError::Missing { field: format!("{field}.call_id") })?
                .to_owned();
            let name = item.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
            let args = match item.get("arguments") {
                Some(Value::String(raw)) => parse_args(raw),
                Some(Value::Null) | None => Value::Object(serde_json::Map::new()),
                Some(other) => other.clone(),
            };
            let call = Part::ToolCall(ToolCall { id, name, args, signature: None });
            match out.last_mut() {
                Some(last) if last.role == Role::Assistant => last.parts.push(call),
                _ => out.push(Message { role: Role::Assistant, parts: vec![call] }),
            }
        }
        Some("function_call_output") => {
            let id = item
                .get("call_id")
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty())
                .ok_or_else(|| DecodeError::Missing { field: format!("{field}.call_id") })?
                .to_owned();
            let content = match item.get("output") {
                Some(Value::String(s)) => s.clone(),
                None | Some(Value::Null) => String::new(),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join("\n"),
                Some(other) => {
                    return Err(DecodeError::field(
                        format!("{field}.output"),
                        format!("expected a string, got {}", kind(other)),
                    ));
                }
            };
            let name = tool_name(out, &id);
            let result = Part::ToolResult(ToolResult { id, name, content, is_error: false });
            match out.last_mut() {
                Some(last) if last.role == Role::Tool => last.parts.push(result),
                _ => out.push(Message { role: Role::Tool, parts: vec![result] }),
            }
        }
        // The upstream's own reasoning notes and server-run tool calls: nothing to forward.
        Some("reasoning" | "web_search_call") => {}
        Some(other) => {
            return Err(DecodeError::Unsupported { what: format!("{field}: input item type {other:?}") });
        }
    }
    Ok(())
}

fn content_parts(content: Value, field: &dyn fmt::Display) -> Result<Vec<Part>, DecodeError> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(text) => Ok(vec![Part::Text { text }]),
        Value::Array(parts) => {
            let mut out = Vec::with_capacity(parts.len());
            for (i, part) in parts.into_iter().enumerate() {
                let part_field = Path::Index(&field, i);
                match part.get("type").and_then(Value::as_str) {
                    Some("input_text" | "output_text" | "text") => {
                        let text = part.get("text").and_then(Value::as_str).unwrap_or_default().to_owned();
                        match out.last_mut() {
                            Some(Part::Text { text: last }) => last.push_str(&text),
                            _ => out.push(Part::Text { text }),
                        }
                    }
                    Some("refusal") => {
                        let text = part.get("refusal").and_then(Value::as_str).unwrap_or_default().to_owned();
                        out.push(Part::Text { text });
                    }
                    Some("input_image") => {
                        let url = part.get("image_url").and_then(Value::as_str).ok_or_else(|| {
                            DecodeError::Unsupported {
                                what: format!(
                                    "{part_field}: images by file id (send image_url as a data: URL)"
                                ),
                            }
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

fn tool_choice(choice: &Value) -> Result<ToolChoice, DecodeError> {
    match choice {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            other => Err(DecodeError::field("tool_choice", format!("unknown value {other:?}"))),
        },
        Value::Object(obj) => {
            match (obj.get("type").and_then(Value::as_str), obj.get("name").and_then(Value::as_str)) {
                (Some("function"), Some(name)) if !name.is_empty() => Ok(ToolChoice::Tool(name.to_owned())),
                (Some("allowed_tools"), _) => Ok(ToolChoice::Auto),
                _ => Err(DecodeError::field("tool_choice", "expected {type: function, name}")),
            }
        }
        other => Err(DecodeError::field(
            "tool_choice",
            format!("expected a string or an object, got {}", kind(other)),
        )),
    }
}

/// `completed`, or `incomplete` with its reason.
fn status(reason: &FinishReason) -> (&'static str, Option<&'static str>) {
    match reason {
        FinishReason::Length => ("incomplete", Some("max_output_tokens")),
        FinishReason::ContentFilter => ("incomplete", Some("content_filter")),
        FinishReason::Stop | FinishReason::ToolCalls | FinishReason::Other(_) => ("completed", None),
    }
}

#[derive(Serialize)]
struct WireUsage {
    input_tokens: u64,
    input_tokens_details: CachedTokens,
    output_tokens: u64,
    output_tokens_details: ReasoningTokens,
    total_tokens: u64,
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
            input_tokens: usage.input_tokens,
            input_tokens_details: CachedTokens { cached_tokens: usage.cache_read_tokens },
            output_tokens: usage.output_tokens,
            output_tokens_details: ReasoningTokens { reasoning_tokens: usage.reasoning_tokens },
            total_tokens: usage.total(),
        }
    }
}

#[derive(Serialize)]
struct IncompleteDetails {
    reason: &'static str,
}

#[derive(Serialize)]
struct ErrorObject<'a> {
    code: &'static str,
    message: &'a str,
}

/// The `response` object. Fields a client may read are all present, most with their
/// defaults.
#[derive(Serialize)]
struct WireResponse<'a> {
    id: &'a str,
    object: &'static str,
    created_at: u64,
    status: &'static str,
    error: Option<ErrorObject<'a>>,
    incomplete_details: Option<IncompleteDetails>,
    instructions: Option<()>,
    max_output_tokens: Option<u32>,
    model: &'a str,
    output: &'a [Value],
    parallel_tool_calls: bool,
    previous_response_id: Option<()>,
    store: bool,
    temperature: Option<f32>,
    text: Value,
    tool_choice: &'static str,
    tools: [(); 0],
    top_p: Option<()>,
    truncation: &'static str,
    usage: Option<WireUsage>,
    metadata: Value,
}

impl<'a> WireResponse<'a> {
    fn new(id: &'a str, created_at: u64, model: &'a str, output: &'a [Value]) -> Self {
        Self {
            id,
            object: "response",
            created_at,
            status: "in_progress",
            error: None,
            incomplete_details: None,
            instructions: None,
            max_output_tokens: None,
            model,
            output,
            parallel_tool_calls: true,
            previous_response_id: None,
            store: false,
            temperature: None,
            text: json!({"format": {"type": "text"}}),
            tool_choice: "auto",
            tools: [],
            top_p: None,
            truncation: "disabled",
            usage: None,
            metadata: json!({}),
        }
    }
}

fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({
        "id": id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    })
}

fn call_item(id: &str, call: &ToolCall, arguments: &str, status: &str) -> Value {
    json!({
        "id": id,
        "type": "function_call",
        "status": status,
        "call_id": call.id,
        "name": call.name,
        "arguments": arguments,
    })
}

/// The `response` body for `response`.
pub fn encode(request: &ClientRequest, response: &Response) -> Vec<u8> {
    let mut output = Vec::new();
    let mut text = String::new();
    let flush = |text: &mut String, output: &mut Vec<Value>| {
        if !text.is_empty() {
            output.push(message_item(&new_id("msg_"), text, "completed"));
            text.clear();
        }
    };
    for part in &response.message.parts {
        match part {
            Part::Text { text: t } => text.push_str(t),
            Part::ToolCall(call) => {
                flush(&mut text, &mut output);
                output.push(call_item(&new_id("fc_"), call, &args_string(&call.args), "completed"));
            }
            _ => {}
        }
    }
    flush(&mut text, &mut output);
    let id = new_id("resp_");
    let mut body = WireResponse::new(&id, super::unix_now(), &request.model, &output);
    let (state, reason) = status(&response.finish_reason);
    body.status = state;
    body.incomplete_details = reason.map(|reason| IncompleteDetails { reason });
    body.usage = Some(WireUsage::new(&response.usage));
    serde_json::to_vec(&body).unwrap_or_default()
}

#[derive(Serialize)]
struct Lifecycle<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    sequence_number: u64,
    response: WireResponse<'a>,
}

#[derive(Serialize)]
struct ItemEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    sequence_number: u64,
    output_index: u32,
    item: &'a Value,
}

#[derive(Serialize)]
struct PartEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    sequence_number: u64,
    item_id: &'a str,
    output_index: u32,
    content_index: u32,
    part: Value,
}

#[derive(Serialize)]
struct TextDeltaEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    sequence_number: u64,
    item_id: &'a str,
    output_index: u32,
    content_index: u32,
    delta: &'a str,
    logprobs: [(); 0],
}

#[derive(Serialize)]
struct TextDoneEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    sequence_number: u64,
    item_id: &'a str,
    output_index: u32,
    content_index: u32,
    text: &'a str,
    logprobs: [(); 0],
}

#[derive(Serialize)]
struct ArgsEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    sequence_number: u64,
    item_id: &'a str,
    output_index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    delta: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arguments: Option<&'a str>,
}

/// The text item being streamed.
#[derive(Debug)]
struct OpenText {
    id: String,
    index: u32,
    text: String,
}

/// The Responses API streaming encoder (see the module docs for the event sequence).
#[derive(Debug)]
pub struct Encoder {
    id: String,
    model: String,
    created_at: u64,
    seq: u64,
    started: bool,
    output: Vec<Value>,
    open: Option<OpenText>,
    usage: Usage,
    text: String,
    finished: bool,
}

impl Encoder {
    /// An encoder answering `request`.
    pub fn new(request: &ClientRequest) -> Self {
        Self {
            id: new_id("resp_"),
            model: request.model.clone(),
            created_at: super::unix_now(),
            seq: 0,
            started: false,
            output: Vec::new(),
            open: None,
            usage: Usage::default(),
            text: String::new(),
            finished: false,
        }
    }

    fn next_seq(&mut self) -> u64 {
        let seq = self.seq;
        self.seq += 1;
        seq
    }

    fn lifecycle(
        &mut self,
        out: &mut Vec<u8>,
        kind: &'static str,
        finish: Option<&FinishReason>,
        error: Option<&ApiError>,
    ) {
        let sequence_number = self.next_seq();
        let mut response = WireResponse::new(&self.id, self.created_at, &self.model, &self.output);
        if let Some(reason) = finish {
            let (state, incomplete) = status(reason);
            response.status = state;
            response.incomplete_details = incomplete.map(|reason| IncompleteDetails { reason });
            response.usage = Some(WireUsage::new(&self.usage));
        }
        if let Some(error) = error {
            response.status = "failed";
            response.error = Some(ErrorObject { code: error.class.openai_code(), message: &error.message });
        }
        sse::frame(out, Some(kind), &Lifecycle { kind, sequence_number, response });
    }

    /// `response.created` and `response.in_progress`.
    pub fn start(&mut self, out: &mut Vec<u8>) {
        if self.started || self.finished {
            return;
        }
        self.started = true;
        self.lifecycle(out, "response.created", None, None);
        self.lifecycle(out, "response.in_progress", None, None);
    }

    fn output_index(&self) -> u32 {
        u32::try_from(self.output.len()).unwrap_or(u32::MAX)
    }

    fn close_text(&mut self, out: &mut Vec<u8>) {
        let Some(open) = self.open.take() else { return };
        let seq = self.next_seq();
        let done = TextDoneEvent {
            kind: "response.output_text.done",
            sequence_number: seq,
            item_id: &open.id,
            output_index: open.index,
            content_index: 0,
            text: &open.text,
            logprobs: [],
        };
        sse::frame(out, Some(done.kind), &done);
        let seq = self.next_seq();
        let part = PartEvent {
            kind: "response.content_part.done",
            sequence_number: seq,
            item_id: &open.id,
            output_index: open.index,
            content_index: 0,
            part: json!({"type": "output_text", "text": open.text, "annotations": []}),
        };
        sse::frame(out, Some(part.kind), &part);
        let item = message_item(&open.id, &open.text, "completed");
        let seq = self.next_seq();
        let event = ItemEvent {
            kind: "response.output_item.done",
            sequence_number: seq,
            output_index: open.index,
            item: &item,
        };
        sse::frame(out, Some(event.kind), &event);
        self.output.push(item);
    }

    fn text_delta(&mut self, text: &str, out: &mut Vec<u8>) {
        if self.open.is_none() {
            let open = OpenText { id: new_id("msg_"), index: self.output_index(), text: String::new() };
            let item = json!({"id": open.id, "type": "message", "status": "in_progress", "role": "assistant", "content": []});
            let seq = self.next_seq();
            let added = ItemEvent {
                kind: "response.output_item.added",
                sequence_number: seq,
                output_index: open.index,
                item: &item,
            };
            sse::frame(out, Some(added.kind), &added);
            let seq = self.next_seq();
            let part = PartEvent {
                kind: "response.content_part.added",
                sequence_number: seq,
                item_id: &open.id,
                output_index: open.index,
                content_index: 0,
                part: json!({"type": "output_text", "text": "", "annotations": []}),
            };
            sse::frame(out, Some(part.kind), &part);
            self.open = Some(open);
        }
        let seq = self.next_seq();
        if let Some(open) = &mut self.open {
            open.text.push_str(text);
            let delta = TextDeltaEvent {
                kind: "response.output_text.delta",
                sequence_number: seq,
                item_id: &open.id,
                output_index: open.index,
                content_index: 0,
                delta: text,
                logprobs: [],
            };
            sse::frame(out, Some(delta.kind), &delta);
        }
        self.text.push_str(text);
    }

    fn tool_call(&mut self, call: &ToolCall, out: &mut Vec<u8>) {
        self.close_text(out);
        let id = new_id("fc_");
        let index = self.output_index();
        let arguments = args_string(&call.args);
        let added = call_item(&id, call, "", "in_progress");
        let seq = self.next_seq();
        let event = ItemEvent {
            kind: "response.output_item.added",
            sequence_number: seq,
            output_index: index,
            item: &added,
        };
        sse::frame(out, Some(event.kind), &event);
        for (kind, delta, whole) in [
            ("response.function_call_arguments.delta", Some(arguments.as_str()), None),
            ("response.function_call_arguments.done", None, Some(arguments.as_str())),
        ] {
            let seq = self.next_seq();
            let event = ArgsEvent {
                kind,
                sequence_number: seq,
                item_id: &id,
                output_index: index,
                delta,
                arguments: whole,
            };
            sse::frame(out, Some(kind), &event);
        }
        let done = call_item(&id, call, &arguments, "completed");
        let seq = self.next_seq();
        let event = ItemEvent {
            kind: "response.output_item.done",
            sequence_number: seq,
            output_index: index,
            item: &done,
        };
        sse::frame(out, Some(event.kind), &event);
        self.output.push(done);
    }

    /// One event (see [`super::Encoder::event`]).
    pub fn event(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        self.start(out);
        match event {
            StreamEvent::TextDelta { text } if !text.is_empty() => self.text_delta(text, out),
            StreamEvent::ToolCall { call } => self.tool_call(call, out),
            StreamEvent::Usage { usage } => crate::stream::merge_usage(&mut self.usage, usage),
            StreamEvent::Done { finish_reason, .. } => {
                self.close_text(out);
                self.finished = true;
                let kind = match status(finish_reason).0 {
                    "incomplete" => "response.incomplete",
                    _ => "response.completed",
                };
                self.lifecycle(out, kind, Some(finish_reason), None);
            }
            StreamEvent::TextDelta { .. }
            | StreamEvent::ReasoningDelta { .. }
            | StreamEvent::ToolCallDelta { .. } => {}
        }
    }

    /// Ends the stream with `response.failed`.
    pub fn fail(&mut self, error: &ApiError, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        self.start(out);
        self.finished = true;
        self.lifecycle(out, "response.failed", None, Some(error));
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
