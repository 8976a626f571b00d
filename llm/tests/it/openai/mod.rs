//! The OpenAI Chat Completions client against wiremock on 127.0.0.1: the exact request body
//! sent, recorded responses (OpenAI, llama.cpp, vLLM) whole and streamed, and error bodies.

use std::time::Duration;

use executus_llm::providers::ProviderConfig;
use executus_llm::providers::openai::{OpenAi, OpenAiOptions};
use executus_llm::stream::collect;
use executus_llm::{
    Capabilities, ErrorKind, FinishReason, Message, Part, Provider, ReasoningEffort, Request, ResponseSchema,
    Role, StreamEvent, ToolCall, ToolChoice, ToolResult, ToolSpec,
};
use futures::StreamExt;
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The key used throughout; `error_openai_invalid_key.json` echoes it.
const KEY: &str = "sk-test-4f9a1c2e7b3d8e6f0a5b";

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/openai/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

fn provider(server: &MockServer) -> OpenAi {
    OpenAi::new(ProviderConfig::new("local", format!("{}/v1", server.uri())).with_key(KEY))
}

fn json_response(name: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(fixture(name), "application/json")
}

fn sse_response(name: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(fixture(name), "text/event-stream")
}

/// Mounts a chat mock that answers only a body containing `expected` (and the bearer key).
async fn expect_body(server: &MockServer, expected: Value, answer: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(body_partial_json(expected))
        .respond_with(answer)
        .expect(1)
        .mount(server)
        .await;
}

/// The one request body the server received.
async fn sent_body(server: &MockServer) -> Value {
    let requests = server.received_requests().await.expect("recording on");
    assert_eq!(requests.len(), 1, "exactly one request");
    serde_json::from_slice(&requests[0].body).expect("JSON body")
}

fn weather_tool() -> ToolSpec {
    ToolSpec {
        name: "get_weather".into(),
        description: "Current weather in a city".into(),
        parameters: json!({
            "type": "object",
            "properties": { "city": { "type": "string" } },
            "required": ["city"],
            "additionalProperties": false
        }),
    }
}

mod errors;
mod requests;
mod responses;
mod streams;
