//! Canonical [`Request`] -> Chat Completions request body.
//!
//! Mapping:
//! - the system prompt becomes a first `system` message;
//! - user text is a plain string when it is a single text part, otherwise an array of
//!   `text` / `image_url` parts; images travel as `data:` URLs;
//! - assistant tool calls become `tool_calls` with arguments as a JSON *string* (a
//!   `Value::String` holding unparseable model output is sent back verbatim);
//! - tool results become one `role: tool` message each, keyed by `tool_call_id`. Chat
//!   Completions has no `is_error` flag, so a failed result's content is prefixed with
//!   [`TOOL_ERROR_PREFIX`] to keep the failure visible to the model;
//! - tools, `tool_choice`, `response_format` (`json_schema`), `max_completion_tokens` (or the
//!   legacy `max_tokens`), `reasoning_effort`, `temperature`, `stop`, `seed`, and for streams
//!   `stream` + `stream_options.include_usage`;
//! - [`Request::extra`] is merged into the top level last, overriding; a `null` value removes
//!   the key (e.g. `stream_options` for a server that rejects it).
//!
//! Shapes Chat Completions cannot carry (an image in an assistant message, a tool call in a
//! user message, text in a tool message) are refused with a reason rather than dropped.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::OpenAiOptions;
use crate::types::{Message, Part, Request, Role, ToolCall, ToolChoice, ToolResult};

/// Prefix put before the content of a tool result whose `is_error` is set.
pub const TOOL_ERROR_PREFIX: &str = "Error: ";

/// Builds the request body for `model`. `Err` carries why the request cannot be expressed.
pub(crate) fn build_body(
    model: &str,
    request: &Request,
    options: &OpenAiOptions,
    stream: bool,
) -> Result<Value, String> {
    let mut body = Map::new();
    body.insert("model".into(), Value::String(model.to_owned()));
    body.insert("messages".into(), Value::Array(messages(request)?));

    if !request.tools.is_empty() {
        let tools = request
            .tools
            .iter()
            .map(|t| {
                json!({
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.parameters,
                    }
                })
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
        body.insert("tool_choice".into(), tool_choice(&request.tool_choice));
    }
    if let Some(schema) = &request.response_schema {
        body.insert(
            "response_format".into(),
            json!({
                "type": "json_schema",
                "json_schema": {
                    "name": schema.name,
                    "schema": schema.schema,
                    "strict": schema.strict,
                }
            }),
        );
    }
    if let Some(max) = request.max_tokens {
        let key = if options.legacy_max_tokens { "max_tokens" } else { "max_completion_tokens" };
        body.insert(key.into(), Value::from(max));
    }
    if let Some(effort) = request.reasoning_effort {
        body.insert("reasoning_effort".into(), Value::String(effort.as_str().to_owned()));
    }
    if let Some(t) = request.temperature {
        body.insert("temperature".into(), f32_value(t));
    }
    if !request.stop.is_empty() {
        body.insert("stop".into(), json!(request.stop));
    }
    if let Some(seed) = request.seed {
        body.insert("seed".into(), Value::from(seed));
    }
    if stream {
        body.insert("stream".into(), Value::Bool(true));
        body.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    for (key, value) in &request.extra {
        if value.is_null() {
            body.remove(key);
        } else {
            body.insert(key.clone(), value.clone());
        }
    }
    Ok(Value::Object(body))
}

/// An `f32` as the JSON number a human wrote: `0.7`, not `0.699999988079071` (which is what a
/// plain widening to `f64` gives).
fn f32_value(x: f32) -> Value {
    // Display prints the shortest decimal that round-trips the f32; parsing that as f64 keeps
    // it. Non-finite values are not JSON numbers and become null (servers reject them anyway).
    x.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

fn tool_choice(choice: &ToolChoice) -> Value {
    match choice {
        ToolChoice::Auto => Value::String("auto".into()),
        ToolChoice::None => Value::String("none".into()),
        ToolChoice::Required => Value::String("required".into()),
        ToolChoice::Tool(name) => json!({ "type": "function", "function": { "name": name } }),
    }
}

fn messages(request: &Request) -> Result<Vec<Value>, String> {
    let mut out = Vec::with_capacity(request.messages.len() + 1);
    if let Some(system) = &request.system {
        out.push(json!({ "role": "system", "content": system }));
    }
    for (i, message) in request.messages.iter().enumerate() {
        push_message(&mut out, message).map_err(|reason| format!("message {i}: {reason}"))?;
    }
    Ok(out)
}

fn push_message(out: &mut Vec<Value>, message: &Message) -> Result<(), String> {
    match message.role {
        Role::User => {
            // Tool results may ride in a user message (the Anthropic convention); Chat
            // Completions wants them as `tool` messages, which must directly follow the
            // assistant turn, so they go first.
            let mut content = Vec::new();
            for part in &message.parts {
                match part {
                    Part::ToolResult(r) => out.push(tool_message(r)),
                    Part::Text { .. } | Part::Image { .. } => content.push(part),
                    Part::ToolCall(c) => {
                        return Err(format!("a user message cannot carry tool call {:?}", c.id));
                    }
                }
            }
            if !content.is_empty() {
                out.push(json!({ "role": "user", "content": user_content(&content) }));
            }
        }
        Role::Assistant => {
            let mut text = String::new();
            let mut calls = Vec::new();
            for part in &message.parts {
                match part {
                    Part::Text { text: t } => text.push_str(t),
                    Part::ToolCall(c) => calls.push(tool_call(c)),
                    Part::Image { .. } => {
                        return Err("Chat Completions does not accept images in assistant messages".into());
                    }
                    Part::ToolResult(r) => {
                        return Err(format!("an assistant message cannot carry tool result {:?}", r.id));
                    }
                }
            }
            let mut m = Map::new();
            m.insert("role".into(), Value::String("assistant".into()));
            // `content: null` is the documented form for a turn that only calls tools.
            let content =
                if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) };
            m.insert("content".into(), content);
            if !calls.is_empty() {
                m.insert("tool_calls".into(), Value::Array(calls));
            }
            out.push(Value::Object(m));
        }
        Role::Tool => {
            for part in &message.parts {
                match part {
                    Part::ToolResult(r) => out.push(tool_message(r)),
                    Part::Text { .. } => {
                        return Err(
                            "a tool message's text must be inside a tool result (it needs a call id)".into(),
                        );
                    }
                    Part::Image { .. } => {
                        return Err("Chat Completions does not accept images in tool messages".into());
                    }
                    Part::ToolCall(c) => {
                        return Err(format!("a tool message cannot carry tool call {:?}", c.id));
                    }
                }
            }
        }
    }
    Ok(())
}

/// A single text part is sent as a plain string (the form every server accepts); anything
/// else as an array of `text` / `image_url` parts.
fn user_content(parts: &[&Part]) -> Value {
    if let [Part::Text { text }] = parts {
        return Value::String(text.clone());
    }
    let parts = parts
        .iter()
        .filter_map(|part| match part {
            Part::Text { text } => Some(json!({ "type": "text", "text": text })),
            Part::Image { mime, data } => Some(image_part(mime, data)),
            Part::ToolCall(_) | Part::ToolResult(_) => None,
        })
        .collect();
    Value::Array(parts)
}

fn image_part(mime: &str, data: &[u8]) -> Value {
    let url = format!("data:{mime};base64,{}", STANDARD.encode(data));
    json!({ "type": "image_url", "image_url": { "url": url } })
}

fn tool_call(call: &ToolCall) -> Value {
    let arguments = match &call.args {
        // Unparseable arguments the model produced are echoed back verbatim, so the model
        // sees exactly what it sent next to the error the caller reports.
        Value::String(raw) => raw.clone(),
        other => other.to_string(),
    };
    json!({
        "id": call.id,
        "type": "function",
        "function": { "name": call.name, "arguments": arguments },
    })
}

fn tool_message(result: &ToolResult) -> Value {
    let content = if result.is_error {
        format!("{TOOL_ERROR_PREFIX}{}", result.content)
    } else {
        result.content.clone()
    };
    json!({ "role": "tool", "tool_call_id": result.id, "content": content })
}
