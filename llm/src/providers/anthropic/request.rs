//! Canonical [`Request`] -> Messages API request body.
//!
//! Building never fails: every canonical value has a wire form, and what the API would reject
//! (a tool call in a user message, say) is sent as is so that the server's own error message
//! reaches the caller. The returned [`Plan`] tells the response side how to undo the
//! structured-output tool.

use serde_json::{Map, Value, json};

use super::{AnthropicOptions, thinking};
use crate::types::{Message, Part, Request, Role, ToolChoice, ToolResult};

/// What the response mapping must know about how the request was built.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Plan {
    /// The synthetic structured-output tool, when the request had a response schema.
    pub(super) answer: Option<AnswerTool>,
}

/// The synthetic tool that carries structured output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AnswerTool {
    /// Its name (unique among the request's tools).
    pub(super) name: String,
    /// True when the schema was wrapped as `{"value": schema}` (it was not an object).
    pub(super) wrapped: bool,
}

impl Plan {
    /// True if `name` is the structured-output tool.
    pub(super) fn is_answer(&self, name: &str) -> bool {
        self.answer.as_ref().is_some_and(|a| a.name == name)
    }

    /// The answer text for the structured-output tool's `input`.
    pub(super) fn answer_text(&self, input: &Value) -> String {
        match (&self.answer, input) {
            // A model that produced invalid JSON: hand the raw text on, the decoder reports it.
            (_, Value::String(raw)) => raw.clone(),
            (Some(AnswerTool { wrapped: true, .. }), Value::Object(map)) => {
                map.get("value").unwrap_or(input).to_string()
            }
            _ => input.to_string(),
        }
    }
}

fn ephemeral() -> Value {
    json!({"type": "ephemeral"})
}

/// Builds the request body for model `model`.
pub(super) fn build(
    request: &Request,
    model: &str,
    options: &AnthropicOptions,
    stream: bool,
) -> (Value, Plan) {
    let mut body = Map::new();
    body.insert("model".into(), json!(model));

    // System prompt: a plain string, or one text block when it carries a cache breakpoint.
    if let Some(system) = request.system.as_deref().filter(|s| !s.is_empty()) {
        let value = if request.prompt_caching {
            json!([{"type": "text", "text": system, "cache_control": ephemeral()}])
        } else {
            json!(system)
        };
        body.insert("system".into(), value);
    }

    let mut messages = messages(&request.messages);
    if request.prompt_caching {
        let last_block = messages
            .last_mut()
            .and_then(|m| m.get_mut("content"))
            .and_then(Value::as_array_mut)
            .and_then(|blocks| blocks.last_mut())
            .and_then(Value::as_object_mut);
        if let Some(block) = last_block {
            block.insert("cache_control".into(), ephemeral());
        }
    }
    body.insert("messages".into(), Value::Array(messages));

    // Tools, the structured-output tool, and the tool choice.
    let mut tools: Vec<Value> = request
        .tools
        .iter()
        .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
        .collect();
    let mut plan = Plan::default();
    let choice = if let Some(schema) = &request.response_schema {
        let name = answer_tool_name(&schema.name, request.tools.iter().map(|t| t.name.as_str()));
        let (input_schema, wrapped) = answer_schema(&schema.schema);
        tools.push(json!({
            "name": name,
            "description": "Give your final answer by calling this tool: its input is the \
                            answer, in the required JSON schema.",
            "input_schema": input_schema,
        }));
        let choice = match &request.tool_choice {
            _ if request.tools.is_empty() => json!({"type": "tool", "name": name}),
            ToolChoice::None => json!({"type": "tool", "name": name}),
            ToolChoice::Auto | ToolChoice::Required => json!({"type": "any"}),
            ToolChoice::Tool(tool) => json!({"type": "tool", "name": tool}),
        };
        plan.answer = Some(AnswerTool { name, wrapped });
        // One answer, not several parallel ones.
        let mut choice = choice;
        if let Some(obj) = choice.as_object_mut() {
            obj.insert("disable_parallel_tool_use".into(), json!(true));
        }
        Some(choice)
    } else if tools.is_empty() {
        None
    } else {
        Some(match &request.tool_choice {
            ToolChoice::Auto => json!({"type": "auto"}),
            ToolChoice::None => json!({"type": "none"}),
            ToolChoice::Required => json!({"type": "any"}),
            ToolChoice::Tool(name) => json!({"type": "tool", "name": name}),
        })
    };
    let forced = choice
        .as_ref()
        .and_then(|c| c.get("type"))
        .and_then(Value::as_str)
        .is_some_and(|t| t == "any" || t == "tool");
    let last_tool = tools.last_mut().filter(|_| request.prompt_caching).and_then(Value::as_object_mut);
    if let Some(last) = last_tool {
        last.insert("cache_control".into(), ephemeral());
    }
    if !tools.is_empty() {
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = choice {
        body.insert("tool_choice".into(), choice);
    }

    // Thinking (never with a forced tool choice, which the API rejects) and max_tokens.
    let mut max_tokens = request.max_tokens.unwrap_or(options.default_max_tokens);
    let budget = request.reasoning_effort.filter(|_| !forced).map(|e| options.thinking_budgets.budget(e));
    if let Some(budget) = budget {
        if max_tokens <= budget {
            max_tokens = max_tokens.saturating_add(budget);
        }
        body.insert("thinking".into(), json!({"type": "enabled", "budget_tokens": budget}));
    } else if request.reasoning_effort.is_some() {
        tracing::debug!(model, "thinking disabled: the request forces a tool choice");
    }
    body.insert("max_tokens".into(), json!(max_tokens));

    if let Some(t) = request.temperature.filter(|_| budget.is_none()) {
        body.insert("temperature".into(), crate::providers::wire::decimal(t));
    }
    if !request.stop.is_empty() {
        body.insert("stop_sequences".into(), json!(request.stop));
    }
    if stream {
        body.insert("stream".into(), json!(true));
    }
    crate::providers::wire::merge_extra_map(&mut body, &request.extra);
    (Value::Object(body), plan)
}

/// Wire messages: roles mapped (tool results travel as `user`), empty messages dropped,
/// consecutive same-role messages merged.
pub(super) fn messages(messages: &[Message]) -> Vec<Value> {
    let mut out: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for message in messages {
        let role = match message.role {
            Role::User | Role::Tool => "user",
            Role::Assistant => "assistant",
        };
        let blocks = blocks(message);
        if blocks.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some((last_role, last)) if *last_role == role => last.extend(blocks),
            _ => out.push((role, blocks)),
        }
    }
    out.into_iter().map(|(role, content)| json!({"role": role, "content": content})).collect()
}

fn blocks(message: &Message) -> Vec<Value> {
    let mut blocks = Vec::with_capacity(message.parts.len());
    let mut hoisted = false;
    for part in &message.parts {
        match part {
            // The API rejects empty text blocks.
            Part::Text { text } if text.is_empty() => {}
            Part::Text { text } => blocks.push(json!({"type": "text", "text": text})),
            Part::Image { mime, data } => {
                use base64::Engine as _;
                let data = base64::engine::general_purpose::STANDARD.encode(data);
                blocks.push(json!({
                    "type": "image",
                    "source": {"type": "base64", "media_type": mime, "data": data},
                }));
            }
            Part::ToolCall(call) => {
                let carried = thinking::decode(call.signature.as_deref());
                if !carried.is_empty() {
                    // The first thinking run opens the assistant turn, as the API requires;
                    // later runs (interleaved thinking) stay in front of their call.
                    if hoisted {
                        blocks.extend(carried);
                    } else {
                        blocks.splice(0..0, carried);
                        hoisted = true;
                    }
                }
                blocks.push(json!({
                    "type": "tool_use",
                    "id": call.id,
                    "name": call.name,
                    "input": tool_input(&call.args),
                }));
            }
            Part::ToolResult(result) => blocks.push(tool_result(result)),
        }
    }
    blocks
}

fn tool_result(result: &ToolResult) -> Value {
    let mut block = Map::new();
    block.insert("type".into(), json!("tool_result"));
    block.insert("tool_use_id".into(), json!(result.id));
    block.insert("content".into(), json!(result.content));
    if result.is_error {
        block.insert("is_error".into(), json!(true));
    }
    Value::Object(block)
}

/// A tool call's arguments as a wire `input`, which must be an object.
fn tool_input(args: &Value) -> Value {
    match args {
        Value::Object(_) => args.clone(),
        Value::Null => json!({}),
        Value::String(raw) => match serde_json::from_str::<Value>(raw) {
            Ok(parsed @ Value::Object(_)) => parsed,
            // Arguments the model got wrong: keep them visible to it rather than drop them.
            _ => json!({"_raw": raw}),
        },
        other => json!({"_raw": other}),
    }
}

/// A tool name for the structured-output tool: the schema name restricted to the portable
/// `[a-zA-Z0-9_-]{1,64}`, made unique among `taken`.
pub(super) fn answer_tool_name<'a>(
    schema_name: &str,
    taken: impl Iterator<Item = &'a str> + Clone,
) -> String {
    let mut name: String = schema_name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(56)
        .collect();
    if name.is_empty() {
        name = "structured_output".to_owned();
    }
    let base = name.clone();
    let mut n = 1u32;
    while taken.clone().any(|t| t == name) {
        n += 1;
        name = format!("{base}_{n}");
    }
    name
}

/// The structured-output tool's `input_schema` and whether it wraps the schema: tool inputs
/// must be objects, so any other schema becomes `{"value": schema}`, with its definitions
/// moved to the new root so that `#/$defs/..` references still resolve.
pub(super) fn answer_schema(schema: &Value) -> (Value, bool) {
    if schema.get("type").and_then(Value::as_str) == Some("object") {
        return (schema.clone(), false);
    }
    let mut inner = schema.clone();
    let mut root = Map::new();
    root.insert("type".into(), json!("object"));
    if let Some(obj) = inner.as_object_mut() {
        for key in ["$defs", "definitions"] {
            if let Some(defs) = obj.remove(key) {
                root.insert(key.into(), defs);
            }
        }
        obj.remove("$schema");
    }
    root.insert("properties".into(), json!({"value": inner}));
    root.insert("required".into(), json!(["value"]));
    (Value::Object(root), true)
}
