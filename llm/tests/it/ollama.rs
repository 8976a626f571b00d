//! Ollama native `/api/chat` against a wiremock server on 127.0.0.1 speaking Ollama's wire
//! format (fixtures in `tests/fixtures/ollama/`).

use std::sync::Arc;
use std::time::Duration;

use executus_llm::providers::ProviderConfig;
use executus_llm::providers::ollama::Ollama;
use executus_llm::stream::{DriveError, collect, drive};
use executus_llm::{
    ErrorKind, FinishReason, Message, Model, Part, Provider, ReasoningEffort, Request, ResponseSchema, Role,
    StreamEvent, ToolCall, ToolResult, ToolSpec, Usage,
};
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "ollama-cloud-key-5f2b9c71d4e8";

fn fixture(name: &str) -> Vec<u8> {
    let file = format!("{}/tests/fixtures/ollama/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&file).unwrap_or_else(|e| panic!("fixture {file}: {e}"))
}

fn json_reply(name: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(fixture(name), "application/json; charset=utf-8")
}

fn ndjson_reply(name: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(fixture(name), "application/x-ndjson")
}

fn local(server: &MockServer, model: &str) -> Arc<dyn Model> {
    Ollama::new(ProviderConfig::new("ollama", server.uri())).model(model)
}

fn cloud(server: &MockServer, model: &str) -> Arc<dyn Model> {
    Ollama::new(ProviderConfig::new("ollama-cloud", server.uri()).with_key(KEY)).model(model)
}

async fn sent_bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).expect("request body is JSON"))
        .collect()
}

fn weather_tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "get_weather".into(),
            description: "Current weather for a city".into(),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        },
        ToolSpec {
            name: "get_time".into(),
            description: "Local time in a time zone".into(),
            parameters: json!({"type": "object", "properties": {"tz": {"type": "string"}}}),
        },
    ]
}

#[tokio::test]
async fn plain_chat_with_system_local_sends_no_auth() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat"))
        .and(body_partial_json(json!({
            "model": "qwen3:8b",
            "stream": false,
            "messages": [
                {"role": "system", "content": "Answer in one sentence."},
                {"role": "user", "content": "What is the capital of France?"},
            ],
            "options": {"temperature": 0.2, "num_predict": 128, "stop": ["\n\n"], "seed": 42},
        })))
        .respond_with(json_reply("chat_text.json"))
        .expect(1)
        .mount(&server)
        .await;

    let request = Request {
        temperature: Some(0.2),
        max_tokens: Some(128),
        stop: vec!["\n\n".into()],
        seed: Some(42),
        ..Request::user("What is the capital of France?").with_system("Answer in one sentence.")
    };
    let response = local(&server, "qwen3:8b").generate(request).await.expect("generate");

    assert_eq!(response.text(), "Paris is the capital of France.");
    assert_eq!(response.message.parts.len(), 1, "thinking must not become message text");
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert_eq!(response.usage, Usage { input_tokens: 26, output_tokens: 9, ..Usage::default() });
    assert_eq!((response.provider.as_str(), response.model.as_str()), ("ollama", "qwen3:8b"));

    let requests = server.received_requests().await.unwrap_or_default();
    assert!(requests[0].headers.get("authorization").is_none(), "a local server gets no key");
    assert_eq!(sent_bodies(&server).await[0].get("think"), None, "no effort -> server default");
}

#[tokio::test]
async fn cloud_key_is_a_bearer_header() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .respond_with(json_reply("chat_text.json"))
        .expect(1)
        .mount(&server)
        .await;
    let response = cloud(&server, "gpt-oss:120b").generate(Request::user("hi")).await.expect("generate");
    assert_eq!(response.provider, "ollama-cloud");
    let requests = server.received_requests().await.unwrap_or_default();
    assert!(!requests[0].url.as_str().contains(KEY), "the key never goes in the URL");
}

#[tokio::test]
async fn tools_and_tool_result_turn_then_two_tool_calls() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat"))
        .and(body_partial_json(json!({
            "messages": [
                {"role": "user", "content": "Weather and time in Paris?"},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": "call_1", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
                ]},
                {"role": "tool", "content": "{\"temp_c\":21}", "tool_name": "get_weather", "tool_call_id": "call_1"},
            ],
            "tools": [
                {"type": "function", "function": {
                    "name": "get_weather",
                    "description": "Current weather for a city",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                }},
                {"type": "function", "function": {
                    "name": "get_time",
                    "description": "Local time in a time zone",
                    "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}},
                }},
            ],
        })))
        .respond_with(json_reply("chat_tool_calls.json"))
        .expect(1)
        .mount(&server)
        .await;

    let request = Request {
        messages: vec![
            Message::user("Weather and time in Paris?"),
            Message {
                role: Role::Assistant,
                parts: vec![Part::ToolCall(ToolCall {
                    id: "call_1".into(),
                    name: "get_weather".into(),
                    args: json!({"city": "Paris"}),
                    signature: None,
                })],
            },
            Message::tool_results([ToolResult {
                id: "call_1".into(),
                name: "get_weather".into(),
                content: "{\"temp_c\":21}".into(),
                is_error: false,
            }]),
        ],
        tools: weather_tools(),
        ..Request::default()
    };
    let response = local(&server, "qwen3:8b").generate(request).await.expect("generate");

    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    assert_eq!(response.text(), "");
    let calls = response.tool_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        (calls[0].name.as_str(), &calls[0].args),
        ("get_weather", &json!({"city": "Paris", "unit": "celsius"}))
    );
    assert_eq!((calls[1].name.as_str(), &calls[1].args), ("get_time", &json!({"tz": "Europe/Paris"})));
    assert!(!calls[0].id.is_empty() && calls[0].id != calls[1].id, "synthesised ids are unique");
    assert_eq!(response.usage, Usage { input_tokens: 120, output_tokens: 38, ..Usage::default() });
}

#[tokio::test]
async fn image_travels_base64_in_images() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat"))
        .and(body_partial_json(json!({
            "messages": [{"role": "user", "content": "Describe this.", "images": ["iVBORw0KGgo="]}],
        })))
        .respond_with(json_reply("chat_text.json"))
        .expect(1)
        .mount(&server)
        .await;
    let request = Request {
        messages: vec![Message {
            role: Role::User,
            parts: vec![
                Part::Text { text: "Describe this.".into() },
                Part::Image {
                    mime: "image/png".into(),
                    data: vec![0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'],
                },
            ],
        }],
        ..Request::default()
    };
    local(&server, "llava:7b").generate(request).await.expect("generate");
}

#[tokio::test]
async fn structured_output_sets_format_and_states_schema_in_system_prompt() {
    let schema = json!({
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
    });
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat"))
        .and(body_partial_json(json!({"format": schema})))
        .respond_with(json_reply("chat_structured.json"))
        .expect(1)
        .mount(&server)
        .await;
    let request = Request {
        response_schema: Some(ResponseSchema {
            name: "city_info".into(),
            schema: schema.clone(),
            strict: true,
        }),
        ..Request::user("Largest city of France?").with_system("You are a geographer.")
    };
    let response = local(&server, "llama3.2:3b").generate(request).await.expect("generate");
    let parsed: Value = serde_json::from_str(&response.text()).expect("JSON answer");
    assert_eq!(parsed["city"], "Paris");

    let body = &sent_bodies(&server).await[0];
    let system = &body["messages"][0];
    assert_eq!(system["role"], "system");
    let text = system["content"].as_str().expect("system text");
    assert!(text.starts_with("You are a geographer."), "{text}");
    assert!(text.contains(&schema.to_string()), "schema stated in the system prompt: {text}");
}

#[tokio::test]
async fn think_levels_on_the_wire() {
    let server = MockServer::start().await;
    for (effort, think) in [
        (ReasoningEffort::Minimal, json!(false)),
        (ReasoningEffort::Low, json!("low")),
        (ReasoningEffort::Medium, json!("medium")),
        (ReasoningEffort::High, json!("high")),
    ] {
        server.reset().await;
        Mock::given(method("POST"))
            .and(path("/api/chat"))
            .and(body_partial_json(json!({"think": think})))
            .respond_with(json_reply("chat_text.json"))
            .expect(1)
            .mount(&server)
            .await;
        let request = Request { reasoning_effort: Some(effort), ..Request::user("think") };
        local(&server, "gpt-oss:20b").generate(request).await.expect("generate");
        server.verify().await;
    }
}

#[tokio::test]
async fn streaming_text_reasoning_and_usage() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat"))
        .and(body_partial_json(json!({"stream": true})))
        .respond_with(ndjson_reply("stream_text.ndjson"))
        .expect(2)
        .mount(&server)
        .await;
    let model = local(&server, "qwen3:8b");

    let response = collect(model.stream(Request::user("hi")).await.expect("stream")).await.expect("collect");
    assert_eq!(response.text(), "Hello, world!");
    assert_eq!(response.finish_reason, FinishReason::Length);
    assert_eq!(response.usage, Usage { input_tokens: 14, output_tokens: 5, ..Usage::default() });
    assert_eq!(response.model, "qwen3:8b");

    let mut reasoning = String::new();
    let mut kinds = Vec::new();
    drive(model.stream(Request::user("hi")).await.expect("stream"), |event| {
        if let StreamEvent::ReasoningDelta { text } = event {
            reasoning.push_str(text);
        }
        kinds.push(std::mem::discriminant(event));
        Ok::<(), std::convert::Infallible>(())
    })
    .await
    .expect("drive");
    assert_eq!(reasoning, "Greeting requested.");
    assert_eq!(kinds.len(), 2 + 3 + 2, "2 reasoning + 3 text deltas + usage + done");
}

#[tokio::test]
async fn streaming_tool_calls_arrive_whole() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat"))
        .respond_with(ndjson_reply("stream_tool_calls.ndjson"))
        .mount(&server)
        .await;
    let request = Request { tools: weather_tools(), ..Request::user("Weather and time in Paris?") };
    let response =
        collect(local(&server, "qwen3:8b").stream(request).await.expect("stream")).await.expect("collect");
    assert_eq!(response.text(), "Checking.");
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    let calls = response.tool_calls();
    assert_eq!(calls.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["get_weather", "get_time"]);
    assert_eq!(calls[0].args, json!({"city": "Paris"}));
    assert_ne!(calls[0].id, calls[1].id);
    assert_eq!(response.usage, Usage { input_tokens: 140, output_tokens: 41, ..Usage::default() });
}

#[tokio::test]
async fn mid_stream_error_keeps_partial_text() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat"))
        .respond_with(ndjson_reply("stream_error.ndjson"))
        .mount(&server)
        .await;
    let failure = collect(local(&server, "qwen3:8b").stream(Request::user("q")).await.expect("stream"))
        .await
        .expect_err("stream error");
    assert_eq!(failure.error.kind, ErrorKind::Transient);
    assert!(failure.error.message.contains("unexpected EOF"), "{}", failure.error);
    assert_eq!(failure.partial.text, "The answer is");
}

#[tokio::test]
async fn truncated_stream_is_transient() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat"))
        .respond_with(ndjson_reply("stream_truncated.ndjson"))
        .mount(&server)
        .await;
    let failure = collect(local(&server, "qwen3:8b").stream(Request::user("q")).await.expect("stream"))
        .await
        .expect_err("truncated");
    assert_eq!(failure.error.kind, ErrorKind::Transient);
    assert!(failure.error.message.contains("truncated"), "{}", failure.error);
    assert_eq!(failure.partial.text, "Once upon a time");
}

#[tokio::test]
async fn garbage_line_is_a_decode_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat"))
        .respond_with(ndjson_reply("stream_garbage.ndjson"))
        .mount(&server)
        .await;
    let mut seen = Vec::new();
    let result = drive(local(&server, "qwen3:8b").stream(Request::user("q")).await.expect("stream"), |e| {
        seen.push(e.clone());
        Ok::<(), std::convert::Infallible>(())
    })
    .await;
    let Err(DriveError::Stream(failure)) = result else { panic!("expected a stream failure") };
    assert_eq!(failure.error.kind, ErrorKind::Decode);
    assert!(failure.error.message.contains("502 Bad Gateway"), "{}", failure.error);
    assert_eq!(failure.partial.text, "Partial");
    assert!(!seen.iter().any(|e| matches!(e, StreamEvent::Done { .. })), "nothing after the bad line");
}

#[tokio::test]
async fn non_json_body_is_a_decode_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(b"{\"model\":\"x\",\"message\":".to_vec(), "application/json"),
        )
        .mount(&server)
        .await;
    let err = local(&server, "qwen3:8b").generate(Request::user("q")).await.expect_err("decode");
    assert_eq!(err.kind, ErrorKind::Decode);
}

#[tokio::test]
async fn error_statuses_are_classified() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat"))
        .and(body_partial_json(json!({"model": "missing:1b"})))
        .respond_with(ResponseTemplate::new(404).set_body_raw(
            br#"{"error":"model \"missing:1b\" not found, try pulling it first"}"#.to_vec(),
            "application/json",
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/chat"))
        .and(body_partial_json(json!({"model": "busy:1b"})))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "7")
                .set_body_raw(br#"{"error":"too many concurrent requests"}"#.to_vec(), "application/json"),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/chat"))
        .and(body_partial_json(json!({"model": "bad:1b"})))
        .respond_with(ResponseTemplate::new(400).set_body_raw(
            br#"{"error":"json: cannot unmarshal string into Go struct field"}"#.to_vec(),
            "application/json",
        ))
        .mount(&server)
        .await;

    let err = local(&server, "missing:1b").generate(Request::user("q")).await.expect_err("404");
    assert_eq!((err.kind, err.status), (ErrorKind::NotFound, Some(404)));
    assert!(err.message.contains("try pulling it first"), "{err}");
    assert_eq!((err.provider.as_str(), err.model.as_str()), ("ollama", "missing:1b"));

    let Err(err) = local(&server, "busy:1b").stream(Request::user("q")).await else {
        panic!("a 429 fails before the first event")
    };
    assert_eq!((err.kind, err.status), (ErrorKind::Transient, Some(429)));
    assert_eq!(err.retry_after, Some(Duration::from_secs(7)));

    let err = local(&server, "bad:1b").generate(Request::user("q")).await.expect_err("400");
    assert_eq!((err.kind, err.status), (ErrorKind::Permanent, Some(400)));
}

#[tokio::test]
async fn unauthorized_error_never_shows_the_key() {
    let server = MockServer::start().await;
    let body = format!(r#"{{"error":"unauthorized: invalid key {KEY}"}}"#);
    Mock::given(method("POST"))
        .and(path("/api/chat"))
        .respond_with(ResponseTemplate::new(401).set_body_raw(body.into_bytes(), "application/json"))
        .mount(&server)
        .await;
    let provider = Ollama::new(ProviderConfig::new("ollama-cloud", server.uri()).with_key(KEY));
    let err = provider.model("gpt-oss:120b").generate(Request::user("q")).await.expect_err("401");
    assert_eq!((err.kind, err.status), (ErrorKind::Permanent, Some(401)));
    assert!(err.message.contains("invalid key"), "the server's message is kept: {err}");
    for shown in [err.to_string(), format!("{err:?}"), format!("{provider:?}")] {
        assert!(!shown.contains(KEY), "key leaked: {shown}");
    }
}
