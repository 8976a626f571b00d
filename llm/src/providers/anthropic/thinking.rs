//! Carrying signed thinking blocks across a tool-use turn.
//!
//! With extended thinking on, the API requires an assistant turn that called tools to be sent
//! back with its thinking blocks, verbatim and signed. The canonical [`crate::Message`] has no
//! thinking part, so the blocks ride on the [`crate::ToolCall::signature`] of the tool call
//! that follows them, as `anthropic-thinking:v1:<JSON array of blocks>`. Only blocks a server
//! signed (a non-empty `signature`, or `redacted_thinking`) are carried: unsigned thinking from
//! local servers would be rejected or ignored anyway. Anything that does not decode as a carrier
//! (another provider's signature) is ignored.

use serde_json::{Value, json};

/// The prefix of every signature this module writes. Other wire clients must not send such a
/// signature as their own (Gemini would reject it as a `thoughtSignature`).
pub(crate) const PREFIX: &str = "anthropic-thinking:v1:";

/// A `thinking` block worth carrying, if it is signed.
pub(crate) fn thinking_block(thinking: &str, signature: &str) -> Option<Value> {
    (!signature.is_empty()).then(|| json!({"type": "thinking", "thinking": thinking, "signature": signature}))
}

/// A `redacted_thinking` block.
pub(crate) fn redacted_block(data: &str) -> Value {
    json!({"type": "redacted_thinking", "data": data})
}

/// The signature string carrying `blocks`, or `None` when there are none.
pub(crate) fn encode(blocks: Vec<Value>) -> Option<String> {
    if blocks.is_empty() {
        return None;
    }
    Some(format!("{PREFIX}{}", Value::Array(blocks)))
}

/// The blocks carried by `signature`, or an empty list if it is not a carrier.
pub(crate) fn decode(signature: Option<&str>) -> Vec<Value> {
    let Some(json) = signature.and_then(|s| s.strip_prefix(PREFIX)) else {
        return Vec::new();
    };
    let Ok(Value::Array(blocks)) = serde_json::from_str::<Value>(json) else {
        return Vec::new();
    };
    let valid = blocks
        .iter()
        .all(|b| matches!(b.get("type").and_then(Value::as_str), Some("thinking" | "redacted_thinking")));
    if valid { blocks } else { Vec::new() }
}
