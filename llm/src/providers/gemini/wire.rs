//! The `generateContent` wire format: canonical [`Request`] -> JSON body, and
//! `GenerateContentResponse` -> canonical parts, usage and finish reason.
//!
//! The mapping rules are documented on the parent module, where users can read them.

use std::collections::HashMap;

pub(crate) use crate::providers::wire::{args_object, decimal, merge_extra};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::providers::anthropic::THINKING_SIGNATURE_PREFIX;
use crate::types::{
    FinishReason, Part, ReasoningEffort, Request, Role, ToolCall, ToolChoice, ToolResult, Usage,
};

/// Prefix of tool-call ids this module invents (Gemini usually sends none).
pub(crate) const SYNTH_PREFIX: &str = "gemini_call_";

/// Builds the JSON body of a `generateContent` / `streamGenerateContent` call.
pub(crate) fn build_body(model: &str, req: &Request) -> Value {
    let mut body = Map::new();
    if let Some(system) = req.system.as_deref().filter(|s| !s.is_empty()) {
        body.insert("systemInstruction".into(), json!({ "parts": [{ "text": system }] }));
    }
    body.insert("contents".into(), Value::Array(contents(req)));

    if !req.tools.is_empty() {
        let declarations: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                let mut d = Map::new();
                d.insert("name".into(), json!(t.name));
                d.insert("description".into(), json!(t.description));
                if !t.parameters.is_null() {
                    d.insert("parametersJsonSchema".into(), t.parameters.clone());
                }
                Value::Object(d)
            })
            .collect();
        body.insert("tools".into(), json!([{ "functionDeclarations": declarations }]));
        let config = match &req.tool_choice {
            ToolChoice::Auto => json!({ "mode": "AUTO" }),
            ToolChoice::None => json!({ "mode": "NONE" }),
            ToolChoice::Required => json!({ "mode": "ANY" }),
            ToolChoice::Tool(name) => json!({ "mode": "ANY", "allowedFunctionNames": [name] }),
        };
        body.insert("toolConfig".into(), json!({ "functionCallingConfig": config }));
    }

    let mut generation = Map::new();
    if let Some(t) = req.temperature {
        generation.insert("temperature".into(), decimal(t));
    }
    if let Some(n) = req.max_tokens {
        generation.insert("maxOutputTokens".into(), json!(n));
    }
    if !req.stop.is_empty() {
        generation.insert("stopSequences".into(), json!(req.stop));
    }
    if let Some(seed) = req.seed {
        generation.insert("seed".into(), json!(seed % (1 << 31)));
    }
    if let Some(schema) = &req.response_schema {
        generation.insert("responseMimeType".into(), json!("application/json"));
        generation.insert("responseJsonSchema".into(), schema.schema.clone());
    }
    if let Some(thinking) = req.reasoning_effort.and_then(|e| thinking_config(model, e)) {
        generation.insert("thinkingConfig".into(), thinking);
    }
    if !generation.is_empty() {
        body.insert("generationConfig".into(), Value::Object(generation));
    }

    let mut body = Value::Object(body);
    merge_extra(&mut body, &req.extra);
    body
}

/// The `thinkingConfig` for a model and effort (see the module docs), or `None` for models
/// that cannot think.
pub(crate) fn thinking_config(model: &str, effort: ReasoningEffort) -> Option<Value> {
    let bare = model.rsplit('/').next().unwrap_or(model);
    if bare.starts_with("gemini-1") || bare.starts_with("gemini-2.0") {
        return None;
    }
    if bare.starts_with("gemini-2") {
        let budget = match effort {
            ReasoningEffort::Minimal => 512,
            ReasoningEffort::Low => 2048,
            ReasoningEffort::Medium => 8192,
            ReasoningEffort::High => 24576,
        };
        return Some(json!({ "thinkingBudget": budget, "includeThoughts": true }));
    }
    Some(json!({ "thinkingLevel": effort.as_str(), "includeThoughts": true }))
}

fn contents(req: &Request) -> Vec<Value> {
    // Results normally carry their tool's name; fall back to the call's name by id.
    let names: HashMap<&str, &str> =
        req.messages.iter().flat_map(|m| m.tool_calls()).map(|c| (c.id.as_str(), c.name.as_str())).collect();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for message in &req.messages {
        let role = match message.role {
            Role::Assistant => "model",
            Role::User | Role::Tool => "user",
        };
        let mut results = Vec::new();
        let mut others = Vec::new();
        for part in &message.parts {
            match part {
                Part::Text { text } if text.is_empty() => {}
                Part::Text { text } => others.push(json!({ "text": text })),
                Part::Image { mime, data } => others.push(json!({
                    "inlineData": { "mimeType": mime, "data": STANDARD.encode(data) }
                })),
                Part::ToolCall(call) => others.push(function_call_part(call)),
                Part::ToolResult(result) => results.push(function_response_part(result, &names)),
            }
        }
        // Function responses answer the previous model turn, so they lead the user turn.
        results.extend(others);
        if results.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, parts)) if *last == role => parts.extend(results),
            _ => turns.push((role, results)),
        }
    }
    turns.into_iter().map(|(role, parts)| json!({ "role": role, "parts": parts })).collect()
}

fn function_call_part(call: &ToolCall) -> Value {
    let mut function_call = Map::new();
    if !call.id.is_empty() && !call.id.starts_with(SYNTH_PREFIX) {
        function_call.insert("id".into(), json!(call.id));
    }
    function_call.insert("name".into(), json!(call.name));
    function_call.insert("args".into(), args_object(&call.args));
    let mut part = Map::new();
    part.insert("functionCall".into(), Value::Object(function_call));
    // A signature the Anthropic client wrote (its thinking blocks) is not Gemini's to send.
    let own = call.signature.as_deref().filter(|s| !s.starts_with(THINKING_SIGNATURE_PREFIX));
    if let Some(signature) = own {
        part.insert("thoughtSignature".into(), json!(signature));
    }
    Value::Object(part)
}

fn function_response_part(result: &ToolResult, names: &HashMap<&str, &str>) -> Value {
    let name = if result.name.is_empty() {
        names.get(result.id.as_str()).copied().unwrap_or_default()
    } else {
        result.name.as_str()
    };
    let response = if result.is_error {
        json!({ "error": result.content })
    } else {
        let output = serde_json::from_str::<Value>(&result.content).unwrap_or_else(|_| json!(result.content));
        json!({ "output": output })
    };
    let mut function_response = Map::new();
    if !result.id.is_empty() && !result.id.starts_with(SYNTH_PREFIX) {
        function_response.insert("id".into(), json!(result.id));
    }
    function_response.insert("name".into(), json!(name));
    function_response.insert("response".into(), response);
    json!({ "functionResponse": function_response })
}

/// A `GenerateContentResponse` (a whole answer, or one streamed chunk), or an error object.
/// Every field is optional so that unexpected shapes decode or fail cleanly.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GenerateResponse {
    #[serde(default)]
    pub candidates: Option<Vec<Candidate>>,
    #[serde(default)]
    pub prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    pub usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    pub model_version: Option<String>,
    #[serde(default)]
    pub error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Candidate {
    #[serde(default)]
    pub content: Option<Content>,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Content {
    #[serde(default)]
    pub parts: Option<Vec<WirePart>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WirePart {
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub thought: Option<bool>,
    #[serde(default)]
    pub thought_signature: Option<String>,
    #[serde(default)]
    pub function_call: Option<FunctionCall>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FunctionCall {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub args: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PromptFeedback {
    #[serde(default)]
    pub block_reason: Option<String>,
    #[serde(default)]
    pub block_reason_message: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UsageMetadata {
    #[serde(default)]
    pub prompt_token_count: Option<u64>,
    #[serde(default)]
    pub candidates_token_count: Option<u64>,
    #[serde(default)]
    pub thoughts_token_count: Option<u64>,
    #[serde(default)]
    pub cached_content_token_count: Option<u64>,
}

impl UsageMetadata {
    /// Canonical usage (see the module docs for the output/reasoning split).
    pub fn usage(&self) -> Usage {
        let thoughts = self.thoughts_token_count.unwrap_or(0);
        Usage {
            input_tokens: self.prompt_token_count.unwrap_or(0),
            output_tokens: self.candidates_token_count.unwrap_or(0).saturating_add(thoughts),
            cache_read_tokens: self.cached_content_token_count.unwrap_or(0),
            cache_write_tokens: 0,
            reasoning_tokens: thoughts,
        }
    }
}

/// One decoded response part.
#[derive(Debug, PartialEq)]
pub(crate) enum Item {
    /// Answer text.
    Text(String),
    /// Thought (summary) text: reasoning, not answer.
    Thought(String),
    /// A whole function call.
    Call(ToolCall),
}

impl GenerateResponse {
    /// Why the prompt was blocked, when it was and no candidate came back.
    pub fn blocked(&self) -> Option<String> {
        if self.candidates.as_ref().is_some_and(|c| !c.is_empty()) {
            return None;
        }
        let feedback = self.prompt_feedback.as_ref()?;
        let reason = feedback.block_reason.as_deref()?;
        Some(match feedback.block_reason_message.as_deref() {
            Some(m) if !m.is_empty() => format!("prompt blocked ({reason}): {m}"),
            _ => format!("prompt blocked ({reason})"),
        })
    }

    /// The first candidate, taken out.
    pub fn take_candidate(&mut self) -> Option<Candidate> {
        let candidates = self.candidates.as_mut()?;
        (!candidates.is_empty()).then(|| candidates.swap_remove(0))
    }

    /// The answering model, when reported.
    pub fn model_version(&self) -> Option<&str> {
        self.model_version.as_deref().filter(|m| !m.is_empty())
    }
}

impl Candidate {
    /// The candidate's parts as items, in order.
    pub fn take_items(&mut self) -> Vec<Item> {
        let parts = self.content.as_mut().and_then(|c| c.parts.take()).unwrap_or_default();
        let mut items = Vec::new();
        for part in parts {
            if let Some(call) = part.function_call {
                items.push(Item::Call(ToolCall {
                    id: call.id.filter(|id| !id.is_empty()).unwrap_or_else(synth_id),
                    name: call.name,
                    args: match call.args {
                        None | Some(Value::Null) => Value::Object(Map::new()),
                        Some(args) => args,
                    },
                    signature: part.thought_signature.filter(|s| !s.is_empty()),
                }));
            } else if let Some(text) = part.text.filter(|t| !t.is_empty()) {
                if part.thought == Some(true) {
                    items.push(Item::Thought(text));
                } else {
                    items.push(Item::Text(text));
                }
            }
        }
        items
    }
}

/// A fresh, unique tool-call id.
pub(crate) fn synth_id() -> String {
    format!("{SYNTH_PREFIX}{:016x}", fastrand::u64(..))
}

/// Maps Gemini's `finishReason`; function calls take precedence.
pub(crate) fn finish_reason(reason: Option<&str>, has_tool_calls: bool) -> FinishReason {
    if has_tool_calls {
        return FinishReason::ToolCalls;
    }
    match reason {
        None | Some("" | "STOP") => FinishReason::Stop,
        Some("MAX_TOKENS") => FinishReason::Length,
        Some("SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY") => {
            FinishReason::ContentFilter
        }
        Some(other) => FinishReason::Other(other.to_owned()),
    }
}
