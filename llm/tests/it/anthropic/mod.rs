//! The Anthropic Messages client against a real HTTP server on 127.0.0.1 (wiremock): the exact
//! request bodies and headers it sends, and recorded responses in the real wire format.

mod errors;
mod requests;
mod responses;
mod streaming;

use std::collections::BTreeMap;
use std::time::Duration;

use executus_llm::providers::ProviderConfig;
use executus_llm::providers::anthropic::{Anthropic, AnthropicOptions};
use executus_llm::stream::collect;
use executus_llm::{
    ErrorKind, FinishReason, Message, Model, Part, Provider, ReasoningEffort, Request, ResponseSchema, Role,
    StreamEvent, ToolCall, ToolChoice, ToolResult, ToolSpec,
};
use futures::StreamExt;
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "sk-ant-api03-TESTKEY-0123456789abcdef";
const MODEL: &str = "claude-sonnet-4-5";

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/anthropic/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

fn json_fixture(name: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(fixture(name), "application/json")
}

fn sse_fixture(name: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(fixture(name), "text/event-stream")
}

fn provider(server: &MockServer) -> Anthropic {
    Anthropic::new(ProviderConfig::new("claude", server.uri()).with_key(KEY))
}

fn model(server: &MockServer) -> std::sync::Arc<dyn Model> {
    provider(server).model(MODEL)
}

/// A mock that only answers a POST to /v1/messages carrying the key, the version header and
/// a body containing `body`; anything else gets wiremock's 404, which fails the test.
async fn expect_body(server: &MockServer, body: Value, answer: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("x-api-key", KEY))
        .and(header("anthropic-version", "2023-06-01"))
        .and(header("content-type", "application/json"))
        .and(body_partial_json(body))
        .respond_with(answer)
        .expect(1)
        .mount(server)
        .await;
}

/// The body of the only request the server received.
async fn sent_body(server: &MockServer) -> Value {
    let requests = server.received_requests().await.expect("recording is on");
    assert_eq!(requests.len(), 1, "exactly one request");
    serde_json::from_slice(&requests[0].body).expect("request body is JSON")
}

fn weather_tool() -> ToolSpec {
    ToolSpec {
        name: "get_weather".into(),
        description: "Current weather for a location".into(),
        parameters: json!({
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        }),
    }
}

fn time_tool() -> ToolSpec {
    ToolSpec {
        name: "get_time".into(),
        description: "Current time in a timezone".into(),
        parameters: json!({"type": "object", "properties": {"timezone": {"type": "string"}}}),
    }
}
