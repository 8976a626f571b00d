//! The canonical vocabulary every provider speaks: messages, requests, responses, usage.
//!
//! These types are provider-neutral. Each wire client translates them to and from its own
//! protocol; nothing here knows about HTTP. All of them are `serde` round-trippable so that a
//! transcript can be checkpointed and replayed byte for byte.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who wrote a message. The system prompt is not a message: it lives in [`Request::system`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The human or host program.
    User,
    /// The model.
    Assistant,
    /// Results of tool calls, answering an assistant message's calls.
    Tool,
}

/// One part of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
    /// An image, carried as bytes (base64 in serialised form).
    Image {
        /// MIME type, e.g. `image/png`.
        mime: String,
        /// The raw image bytes.
        #[serde(with = "b64")]
        data: Vec<u8>,
    },
    /// A tool call the model asked for.
    ToolCall(ToolCall),
    /// The result of a tool call, sent back to the model.
    ToolResult(ToolResult),
}

/// A tool call requested by the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Provider-assigned (or synthesised) call id; tool results refer to it.
    pub id: String,
    /// Tool name.
    pub name: String,
    /// Arguments as JSON. A model that emits arguments that are not JSON yields
    /// `Value::String` holding the raw text, so the caller can report it back.
    pub args: Value,
    /// Opaque signature some providers (Gemini) require to be sent back with the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// The result of executing a tool call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolResult {
    /// The id of the [`ToolCall`] this answers.
    pub id: String,
    /// The tool's name (some providers, e.g. Gemini, key results by name).
    pub name: String,
    /// The result content, as text (JSON results are serialised).
    pub content: String,
    /// True when the tool failed; the model sees this as an error result.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_error: bool,
}

/// A message: a role and its parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Author.
    pub role: Role,
    /// Content parts, in order.
    pub parts: Vec<Part>,
}

impl Message {
    /// A user message holding one text part.
    pub fn user(text: impl Into<String>) -> Self {
        Self { role: Role::User, parts: vec![Part::Text { text: text.into() }] }
    }

    /// An assistant message holding one text part.
    pub fn assistant(text: impl Into<String>) -> Self {
        Self { role: Role::Assistant, parts: vec![Part::Text { text: text.into() }] }
    }

    /// A tool message holding the given results.
    pub fn tool_results(results: impl IntoIterator<Item = ToolResult>) -> Self {
        Self { role: Role::Tool, parts: results.into_iter().map(Part::ToolResult).collect() }
    }

    /// All text parts concatenated.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for part in &self.parts {
            if let Part::Text { text } = part {
                out.push_str(text);
            }
        }
        out
    }

    /// The tool calls in this message, in order.
    pub fn tool_calls(&self) -> impl Iterator<Item = &ToolCall> {
        self.parts.iter().filter_map(|p| match p {
            Part::ToolCall(c) => Some(c),
            _ => None,
        })
    }

    /// True if any part is an image.
    pub fn has_image(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Image { .. }))
    }
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// Tool name (`^[a-zA-Z0-9_-]{1,64}$` is the portable subset).
    pub name: String,
    /// What the tool does, for the model.
    pub description: String,
    /// JSON schema of the arguments object.
    pub parameters: Value,
}

/// Whether and which tool the model must call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides.
    #[default]
    Auto,
    /// The model must not call tools.
    None,
    /// The model must call some tool.
    Required,
    /// The model must call this tool.
    Tool(String),
}

/// How hard a reasoning model should think.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasoningEffort {
    /// Minimal reasoning.
    Minimal,
    /// Low effort.
    Low,
    /// Medium effort.
    Medium,
    /// High effort.
    High,
}

impl ReasoningEffort {
    /// The lower-case wire name (`low`, `medium`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minimal => "minimal",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

/// A JSON schema the response must match (structured output).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseSchema {
    /// Schema name (`^[a-zA-Z0-9_-]+$`), required by OpenAI.
    pub name: String,
    /// The JSON schema.
    pub schema: Value,
    /// Ask for strict adherence where the provider supports it.
    #[serde(default)]
    pub strict: bool,
}

/// A model request in canonical form.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// The system prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    /// Tool choice; ignored when `tools` is empty.
    #[serde(default)]
    pub tool_choice: ToolChoice,
    /// Structured output schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_schema: Option<ResponseSchema>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Output token cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Reasoning effort, for models that reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<ReasoningEffort>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// Sampling seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Ask the provider to cache the prompt prefix (Anthropic `cache_control`; others cache
    /// automatically and ignore this).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prompt_caching: bool,
    /// Provider-specific body fields merged into the wire request last (e.g. `logit_bias`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Value>,
}

impl Request {
    /// A request with one user message.
    pub fn user(text: impl Into<String>) -> Self {
        Self { messages: vec![Message::user(text)], ..Self::default() }
    }

    /// Sets the system prompt.
    #[must_use]
    pub fn with_system(mut self, system: impl Into<String>) -> Self {
        self.system = Some(system.into());
        self
    }

    /// True if any message carries an image.
    pub fn has_images(&self) -> bool {
        self.messages.iter().any(Message::has_image)
    }
}

/// Token usage of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens, including cached ones where the provider counts them so.
    pub input_tokens: u64,
    /// Completion tokens, including reasoning tokens where the provider counts them so.
    pub output_tokens: u64,
    /// Prompt tokens served from cache.
    #[serde(default)]
    pub cache_read_tokens: u64,
    /// Prompt tokens written to cache.
    #[serde(default)]
    pub cache_write_tokens: u64,
    /// Reasoning ("thinking") tokens.
    #[serde(default)]
    pub reasoning_tokens: u64,
}

impl Usage {
    /// Adds another call's usage to this one.
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_read_tokens += other.cache_read_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
        self.reasoning_tokens += other.reasoning_tokens;
    }

    /// Input plus output tokens.
    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// A natural end or a stop sequence.
    #[default]
    Stop,
    /// The output token cap was hit.
    Length,
    /// The model asked for tool calls.
    ToolCalls,
    /// Content was filtered.
    ContentFilter,
    /// A value this crate does not know, verbatim.
    Other(String),
}

/// A complete model response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The assistant message.
    pub message: Message,
    /// Token usage.
    pub usage: Usage,
    /// Why generation stopped.
    pub finish_reason: FinishReason,
    /// The provider that actually answered (after any failover).
    pub provider: String,
    /// The model that actually answered, as reported by the server when it says.
    pub model: String,
}

impl Response {
    /// The response text.
    pub fn text(&self) -> String {
        self.message.text()
    }

    /// The tool calls the model asked for.
    pub fn tool_calls(&self) -> Vec<ToolCall> {
        self.message.tool_calls().cloned().collect()
    }
}

/// What a model can do. `None` means unknown, and unknown means "try".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Capabilities {
    /// Tool calling.
    pub tools: Option<bool>,
    /// Image input.
    pub vision: Option<bool>,
    /// Native structured output.
    pub structured_output: Option<bool>,
    /// Streaming.
    pub streaming: Option<bool>,
}

impl Capabilities {
    /// Everything unknown (try everything).
    pub const UNKNOWN: Self = Self { tools: None, vision: None, structured_output: None, streaming: None };

    /// True unless the capability is known to be absent.
    pub fn allows(flag: Option<bool>) -> bool {
        flag != Some(false)
    }
}

mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(data: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(data))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD.decode(s.as_bytes()).map_err(serde::de::Error::custom)
    }
}

/// JSON text that is equal exactly for equal values: object keys sorted, no whitespace. Used
/// wherever a value's identity matters (a tool call's arguments for loop protection, a
/// request's key in a replay transcript).
pub fn canonical_json(value: &Value) -> String {
    fn entry(i: usize, key: &str, value: &Value, out: &mut Vec<u8>) {
        if i > 0 {
            out.push(b',');
        }
        // A string serialises infallibly into a `Vec`, escaped exactly as `Value`'s Display.
        let _ = serde_json::to_writer(&mut *out, key);
        out.push(b':');
        write(value, out);
    }
    fn write(value: &Value, out: &mut Vec<u8>) {
        match value {
            Value::Object(map) => {
                out.push(b'{');
                // The map is usually ordered already (a `BTreeMap` unless `preserve_order`
                // is on); sort a list of references only when it is not.
                if map.keys().is_sorted() {
                    for (i, (k, v)) in map.iter().enumerate() {
                        entry(i, k, v, out);
                    }
                } else {
                    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                    entries.sort_by(|a, b| a.0.cmp(b.0));
                    for (i, (k, v)) in entries.into_iter().enumerate() {
                        entry(i, k, v, out);
                    }
                }
                out.push(b'}');
            }
            Value::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write(item, out);
                }
                out.push(b']');
            }
            scalar => {
                let _ = serde_json::to_writer(&mut *out, scalar);
            }
        }
    }
    let mut out = Vec::with_capacity(64);
    write(value, &mut out);
    // serde_json writes UTF-8 only.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::canonical_json;

    #[test]
    fn canonical_json_sorts_keys_at_every_depth_and_escapes_like_serde_json() {
        let value = json!({
            "b": 1,
            "a": {"z": [1, "x\"y", null, true, 1.5, {"d": -2, "c": "\u{1}"}], "é": "\n", "": {}},
            "a\"": []
        });
        assert_eq!(
            canonical_json(&value),
            r#"{"a":{"":{},"z":[1,"x\"y",null,true,1.5,{"c":"\u0001","d":-2}],"é":"\n"},"a\"":[],"b":1}"#
        );
        // Key order in the source text does not matter; the result is valid JSON of the same value.
        let reordered: serde_json::Value = serde_json::from_str(
            r#"{"a\"":[],"b":1,"a":{"é":"\n","":{},"z":[1,"x\"y",null,true,1.5,{"c":"\u0001","d":-2}]}}"#,
        )
        .unwrap();
        assert_eq!(canonical_json(&reordered), canonical_json(&value));
        let back: serde_json::Value = serde_json::from_str(&canonical_json(&value)).unwrap();
        assert_eq!(back, value);
        assert_eq!(canonical_json(&json!("s")), r#""s""#);
        assert_eq!(canonical_json(&json!(null)), "null");
    }
}
