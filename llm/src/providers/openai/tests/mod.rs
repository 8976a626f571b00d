//! Unit tests of the pure mapping and parsing functions.

use serde_json::{Value, json};

use super::error::{body_error, classify};
use super::request::build_body;
use super::response::{IdSynth, fast, finish_reason, parse_arguments, parse_body, parse_response, usage};
use super::streaming::{ChunkParser, MAX_TOOL_CALLS};
use super::*;
use crate::error::ErrorKind;
use crate::http::HttpOptions;
use crate::secret::Secret;
use crate::stream::StreamEvent;
use crate::types::{FinishReason, Message, Part, Role, ToolCall, ToolChoice, ToolResult, ToolSpec};

const SECRET: &str = "sk-unit-secret-123456";

fn http() -> Http {
    Http::new("p", HttpOptions::default(), Some(Secret::new(SECRET)))
}

fn body(request: &Request) -> Value {
    build_body("m", request, &OpenAiOptions::default(), false).expect("expressible")
}

fn tool() -> ToolSpec {
    ToolSpec { name: "t".into(), description: "d".into(), parameters: json!({ "type": "object" }) }
}

mod errors;
mod request;
mod response;
mod streaming;
