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
//!
//! The body is written straight to bytes from borrowed views of the request: no intermediate
//! `serde_json::Value` tree and no copy of the transcript. The request is checked (and its
//! messages laid out as wire messages) first, then serialised in one pass. Only a request
//! with [`Request::extra`] fields goes through a `Value`, to merge them.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde::ser::Serializer;
use serde_json::Value;

use super::OpenAiOptions;
use crate::types::{
    Message, Part, Request, ResponseSchema, Role, ToolCall, ToolChoice, ToolResult, ToolSpec,
};

/// Prefix put before the content of a tool result whose `is_error` is set.
pub const TOOL_ERROR_PREFIX: &str = "Error: ";

/// Encodes the request body for `model` as JSON bytes. `Err` carries why the request cannot
/// be expressed.
pub(crate) fn encode_body(
    model: &str,
    request: &Request,
    options: &OpenAiOptions,
    stream: bool,
) -> Result<Vec<u8>, String> {
    let body = Body::new(model, request, options, stream)?;
    let encoded = if request.extra.is_empty() {
        serde_json::to_vec(&body)
    } else {
        serde_json::to_value(&body).and_then(|mut value| {
            if let Value::Object(map) = &mut value {
                for (key, extra) in &request.extra {
                    if extra.is_null() {
                        map.remove(key);
                    } else {
                        map.insert(key.clone(), extra.clone());
                    }
                }
            }
            serde_json::to_vec(&value)
        })
    };
    // Plain data with string keys cannot fail to serialise; say so should it ever happen.
    encoded.map_err(|e| format!("the request could not be encoded: {e}"))
}

/// The body as a JSON value (what the unit tests inspect): the bytes [`encode_body`] sends,
/// parsed back.
#[cfg(test)]
pub(crate) fn build_body(
    model: &str,
    request: &Request,
    options: &OpenAiOptions,
    stream: bool,
) -> Result<Value, String> {
    let bytes = encode_body(model, request, options, stream)?;
    serde_json::from_slice(&bytes).map_err(|e| format!("the encoded body is not JSON: {e}"))
}

/// The Chat Completions body, borrowing from the canonical request.
#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<Tools<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Choice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<ResponseFormat<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<Temperature>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

impl<'a> Body<'a> {
    fn new(
        model: &'a str,
        request: &'a Request,
        options: &OpenAiOptions,
        stream: bool,
    ) -> Result<Self, String> {
        let with_tools = !request.tools.is_empty();
        let (max_completion_tokens, max_tokens) = match request.max_tokens {
            Some(max) if options.legacy_max_tokens => (None, Some(max)),
            Some(max) => (Some(max), None),
            None => (None, None),
        };
        Ok(Self {
            model,
            messages: messages(request)?,
            tools: with_tools.then_some(Tools(&request.tools)),
            tool_choice: with_tools.then_some(Choice(&request.tool_choice)),
            response_format: request.response_schema.as_ref().map(ResponseFormat::new),
            max_completion_tokens,
            max_tokens,
            reasoning_effort: request.reasoning_effort.map(|e| e.as_str()),
            temperature: request.temperature.map(Temperature),
            stop: &request.stop,
            seed: request.seed,
            stream,
            stream_options: stream.then_some(StreamOptions { include_usage: true }),
        })
    }
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

/// `{"type": "json_schema", "json_schema": {name, schema, strict}}`.
#[derive(Serialize)]
struct ResponseFormat<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    json_schema: JsonSchema<'a>,
}

#[derive(Serialize)]
struct JsonSchema<'a> {
    name: &'a str,
    schema: &'a Value,
    strict: bool,
}

impl<'a> ResponseFormat<'a> {
    fn new(schema: &'a ResponseSchema) -> Self {
        Self {
            kind: "json_schema",
            json_schema: JsonSchema { name: &schema.name, schema: &schema.schema, strict: schema.strict },
        }
    }
}

/// An `f32` as the JSON number a human wrote: `0.7`, not `0.699999988079071` (which is what a
/// plain widening to `f64` gives). Non-finite values are not JSON numbers and become `null`
/// (servers reject them anyway).
struct Temperature(f32);

impl Serialize for Temperature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Display prints the shortest decimal that round-trips the f32; parsing that as f64
        // keeps it.
        match self.0.to_string().parse::<f64>() {
            Ok(x) if x.is_finite() => serializer.serialize_f64(x),
            _ => serializer.serialize_none(),
        }
    }
}

/// Tools as `{"type": "function", "function": {name, description, parameters}}`.
struct Tools<'a>(&'a [ToolSpec]);

impl Serialize for Tools<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|t| Function {
            kind: "function",
            function: FunctionSpec { name: &t.name, description: &t.description, parameters: &t.parameters },
        }))
    }
}

#[derive(Serialize)]
struct Function<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionSpec<'a>,
}

#[derive(Serialize)]
struct FunctionSpec<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a Value,
}

/// `"auto"`, `"none"`, `"required"`, or `{"type": "function", "function": {"name": ...}}`.
struct Choice<'a>(&'a ToolChoice);

#[derive(Serialize)]
struct Named<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct NamedFunction<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: Named<'a>,
}

impl Serialize for Choice<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            ToolChoice::Auto => serializer.serialize_str("auto"),
            ToolChoice::None => serializer.serialize_str("none"),
            ToolChoice::Required => serializer.serialize_str("required"),
            ToolChoice::Tool(name) => {
                NamedFunction { kind: "function", function: Named { name } }.serialize(serializer)
            }
        }
    }
}

/// One Chat Completions message.
#[derive(Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
enum WireMessage<'a> {
    System {
        content: &'a str,
    },
    User {
        content: UserContent<'a>,
    },
    Assistant {
        /// `null` is the documented form for a turn that only calls tools.
        content: Option<Cow<'a, str>>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<WireCall<'a>>,
    },
    Tool {
        tool_call_id: &'a str,
        content: Cow<'a, str>,
    },
}

/// A single text part is sent as a plain string (the form every server accepts); anything
/// else as an array of `text` / `image_url` parts.
#[derive(Serialize)]
#[serde(untagged)]
enum UserContent<'a> {
    Text(&'a str),
    Parts(Vec<UserPart<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum UserPart<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: ImageUrl },
}

#[derive(Serialize)]
struct ImageUrl {
    url: String,
}

#[derive(Serialize)]
struct WireCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: CallFunction<'a>,
}

#[derive(Serialize)]
struct CallFunction<'a> {
    name: &'a str,
    arguments: Cow<'a, str>,
}

fn messages(request: &Request) -> Result<Vec<WireMessage<'_>>, String> {
    let mut out = Vec::with_capacity(request.messages.len() + 1);
    if let Some(system) = &request.system {
        out.push(WireMessage::System { content: system });
    }
    for (i, message) in request.messages.iter().enumerate() {
        push_message(&mut out, message).map_err(|reason| format!("message {i}: {reason}"))?;
    }
    Ok(out)
}

fn push_message<'a>(out: &mut Vec<WireMessage<'a>>, message: &'a Message) -> Result<(), String> {
    match message.role {
        Role::User => {
            // Tool results may ride in a user message (the Anthropic convention); Chat
            // Completions wants them as `tool` messages, which must directly follow the
            // assistant turn, so they go first.
            let mut content: Vec<&Part> = Vec::new();
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
                out.push(WireMessage::User { content: user_content(&content) });
            }
        }
        Role::Assistant => {
            let mut text: Option<Cow<'a, str>> = None;
            let mut tool_calls = Vec::new();
            for part in &message.parts {
                match part {
                    Part::Text { text: t } => match &mut text {
                        None => text = Some(Cow::Borrowed(t)),
                        Some(all) => all.to_mut().push_str(t),
                    },
                    Part::ToolCall(c) => tool_calls.push(tool_call(c)),
                    Part::Image { .. } => {
                        return Err("Chat Completions does not accept images in assistant messages".into());
                    }
                    Part::ToolResult(r) => {
                        return Err(format!("an assistant message cannot carry tool result {:?}", r.id));
                    }
                }
            }
            let text = text.unwrap_or(Cow::Borrowed(""));
            let content = if text.is_empty() && !tool_calls.is_empty() { None } else { Some(text) };
            out.push(WireMessage::Assistant { content, tool_calls });
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

fn user_content<'a>(parts: &[&'a Part]) -> UserContent<'a> {
    if let [Part::Text { text }] = parts {
        return UserContent::Text(text);
    }
    let parts = parts
        .iter()
        .filter_map(|part| match part {
            Part::Text { text } => Some(UserPart::Text { text }),
            Part::Image { mime, data } => Some(UserPart::ImageUrl {
                image_url: ImageUrl { url: format!("data:{mime};base64,{}", STANDARD.encode(data)) },
            }),
            Part::ToolCall(_) | Part::ToolResult(_) => None,
        })
        .collect();
    UserContent::Parts(parts)
}

fn tool_call(call: &ToolCall) -> WireCall<'_> {
    let arguments = match &call.args {
        // Unparseable arguments the model produced are echoed back verbatim, so the model
        // sees exactly what it sent next to the error the caller reports.
        Value::String(raw) => Cow::Borrowed(raw.as_str()),
        other => Cow::Owned(other.to_string()),
    };
    WireCall { id: &call.id, kind: "function", function: CallFunction { name: &call.name, arguments } }
}

fn tool_message(result: &ToolResult) -> WireMessage<'_> {
    let content = if result.is_error {
        Cow::Owned(format!("{TOOL_ERROR_PREFIX}{}", result.content))
    } else {
        Cow::Borrowed(result.content.as_str())
    };
    WireMessage::Tool { tool_call_id: &result.id, content }
}
