//! The Anthropic Messages client against a real HTTP server on 127.0.0.1 (wiremock): the exact
//! request bodies and headers it sends, and recorded responses in the real wire format.

use std::collections::BTreeMap;
use std::time::Duration;

use executus_llm::providers::ProviderConfig;
use executus_llm::providers::anthropic::{Anthropic, AnthropicOptions};
use executus_llm::stream::collect;
use executus_llm::{
    ErrorKind, FinishReason, Message, Model, Part, Provider, ReasoningEffort, Request,
    ResponseSchema, Role, StreamEvent, ToolCall, ToolChoice, ToolResult, ToolSpec,
};
use futures::StreamExt;
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "sk-ant-api03-TESTKEY-0123456789abcdef";
const MODEL: &str = "claude-sonnet-4-5";

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/anthropic/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
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

// ---------------------------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn request_plain_chat_with_system_headers_and_default_max_tokens() {
    let server = MockServer::start().await;
    expect_body(
        &server,
        json!({
            "model": MODEL,
            "system": "You are terse.",
            "max_tokens": 4096,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
        }),
        json_fixture("text.json"),
    )
    .await;

    let response = model(&server)
        .generate(Request::user("Hello").with_system("You are terse."))
        .await
        .expect("generate");
    assert_eq!(response.text(), "Hello! How can I help you today?");

    let body = sent_body(&server).await;
    for absent in [
        "tools",
        "tool_choice",
        "thinking",
        "temperature",
        "stream",
        "stop_sequences",
    ] {
        assert!(
            body.get(absent).is_none(),
            "{absent} must not be sent: {body}"
        );
    }
}

#[tokio::test]
async fn request_merges_consecutive_same_role_messages() {
    let server = MockServer::start().await;
    expect_body(
        &server,
        json!({"messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "first"},
                {"type": "text", "text": "second"},
            ]},
            {"role": "assistant", "content": [{"type": "text", "text": "reply"}]},
            {"role": "user", "content": [{"type": "text", "text": "third"}]},
        ]}),
        json_fixture("text.json"),
    )
    .await;
    let request = Request {
        messages: vec![
            Message::user("first"),
            Message::user("second"),
            Message::assistant("reply"),
            // Empty messages and empty text parts are dropped (the API rejects them).
            Message {
                role: Role::Assistant,
                parts: vec![Part::Text {
                    text: String::new(),
                }],
            },
            Message::user("third"),
        ],
        ..Request::default()
    };
    model(&server).generate(request).await.expect("generate");
    assert_eq!(
        sent_body(&server).await["messages"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
}

#[tokio::test]
async fn request_tools_tool_choice_temperature_and_stop() {
    let server = MockServer::start().await;
    expect_body(
        &server,
        json!({
            "max_tokens": 256,
            "temperature": 0.25,
            "stop_sequences": ["END"],
            "tools": [
                {
                    "name": "get_weather",
                    "description": "Current weather for a location",
                    "input_schema": {
                        "type": "object",
                        "properties": {"location": {"type": "string"}},
                        "required": ["location"],
                    },
                },
                {"name": "get_time", "description": "Current time in a timezone"},
            ],
            "tool_choice": {"type": "tool", "name": "get_weather"},
        }),
        json_fixture("tool_use.json"),
    )
    .await;
    let request = Request {
        tools: vec![weather_tool(), time_tool()],
        tool_choice: ToolChoice::Tool("get_weather".into()),
        temperature: Some(0.25),
        max_tokens: Some(256),
        stop: vec!["END".into()],
        seed: Some(7),
        ..Request::user("Weather in Paris?")
    };
    model(&server).generate(request).await.expect("generate");
    // No seed on this API: it is not sent.
    assert!(sent_body(&server).await.get("seed").is_none());
}

#[tokio::test]
async fn request_tool_result_turn_with_native_is_error() {
    let server = MockServer::start().await;
    expect_body(
        &server,
        json!({"messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather and time?"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "21C sunny"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "clock unavailable", "is_error": true},
            ]},
        ]}),
        json_fixture("text.json"),
    )
    .await;
    let request = Request {
        messages: vec![
            Message::user("Weather and time?"),
            Message {
                role: Role::Assistant,
                parts: vec![
                    Part::Text {
                        text: "Checking.".into(),
                    },
                    Part::ToolCall(ToolCall {
                        id: "toolu_1".into(),
                        name: "get_weather".into(),
                        args: json!({"location": "Paris"}),
                        signature: None,
                    }),
                    Part::ToolCall(ToolCall {
                        id: "toolu_2".into(),
                        name: "get_time".into(),
                        args: Value::Null,
                        signature: None,
                    }),
                ],
            },
            Message::tool_results([
                ToolResult {
                    id: "toolu_1".into(),
                    name: "get_weather".into(),
                    content: "21C sunny".into(),
                    is_error: false,
                },
                ToolResult {
                    id: "toolu_2".into(),
                    name: "get_time".into(),
                    content: "clock unavailable".into(),
                    is_error: true,
                },
            ]),
        ],
        tools: vec![weather_tool(), time_tool()],
        ..Request::default()
    };
    model(&server).generate(request).await.expect("generate");
    let body = sent_body(&server).await;
    assert_eq!(body["tool_choice"], json!({"type": "auto"}));
    // A successful result carries no is_error at all.
    assert!(body["messages"][2]["content"][0].get("is_error").is_none());
}

#[tokio::test]
async fn request_image_block() {
    let server = MockServer::start().await;
    expect_body(
        &server,
        json!({"messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "text", "text": "What is this?"},
        ]}]}),
        json_fixture("text.json"),
    )
    .await;
    let request = Request {
        messages: vec![Message {
            role: Role::User,
            parts: vec![
                Part::Image {
                    mime: "image/png".into(),
                    data: vec![0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'],
                },
                Part::Text {
                    text: "What is this?".into(),
                },
            ],
        }],
        ..Request::default()
    };
    model(&server).generate(request).await.expect("generate");
}

#[tokio::test]
async fn request_prompt_caching_places_three_breakpoints() {
    let server = MockServer::start().await;
    let ephemeral = json!({"type": "ephemeral"});
    expect_body(
        &server,
        json!({
            "system": [{"type": "text", "text": "A long, stable system prompt.", "cache_control": ephemeral}],
            "tools": [{"name": "get_weather"}, {"name": "get_time", "cache_control": ephemeral}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "one"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "two"}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "three"},
                    {"type": "text", "text": "four", "cache_control": ephemeral},
                ]},
            ],
        }),
        json_fixture("cached.json"),
    )
    .await;
    let request = Request {
        system: Some("A long, stable system prompt.".into()),
        messages: vec![
            Message::user("one"),
            Message::assistant("two"),
            Message::user("three"),
            Message::user("four"),
        ],
        tools: vec![weather_tool(), time_tool()],
        prompt_caching: true,
        ..Request::default()
    };
    model(&server).generate(request).await.expect("generate");

    // Exactly three breakpoints: nothing else is marked.
    let body = sent_body(&server).await;
    let marks = body.to_string().matches("cache_control").count();
    assert_eq!(marks, 3, "{body}");
}

#[tokio::test]
async fn structured_output_forces_a_tool_and_returns_json_text() {
    let server = MockServer::start().await;
    let schema = json!({
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "temperature_c": {"type": "number"},
            "conditions": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["city", "temperature_c"],
    });
    expect_body(
        &server,
        json!({
            "tools": [{"name": "weather_report", "input_schema": schema}],
            "tool_choice": {"type": "tool", "name": "weather_report"},
        }),
        json_fixture("structured.json"),
    )
    .await;
    let request = Request {
        response_schema: Some(ResponseSchema {
            name: "weather_report".into(),
            schema: schema.clone(),
            strict: true,
        }),
        ..Request::user("Report the weather in Paris.")
    };
    let response = model(&server).generate(request).await.expect("generate");
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert!(
        response.tool_calls().is_empty(),
        "the answer tool is not a tool call"
    );
    let answer: Value = serde_json::from_str(&response.text()).expect("answer is JSON");
    assert_eq!(
        answer,
        json!({"city": "Paris", "temperature_c": 21.5, "conditions": ["sunny", "windy"]})
    );
}

#[tokio::test]
async fn structured_output_streamed_as_json_text() {
    let server = MockServer::start().await;
    expect_body(
        &server,
        json!({"stream": true, "tool_choice": {"type": "tool", "name": "weather_report"}}),
        sse_fixture("stream_structured.sse"),
    )
    .await;
    let request = Request {
        response_schema: Some(ResponseSchema {
            name: "weather_report".into(),
            schema: json!({"type": "object"}),
            strict: false,
        }),
        ..Request::user("Report the weather in Paris.")
    };
    let stream = model(&server).stream(request).await.expect("stream");
    let response = collect(stream).await.expect("collect");
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert!(response.tool_calls().is_empty());
    let answer: Value = serde_json::from_str(&response.text()).expect("answer is JSON");
    assert_eq!(answer, json!({"city": "Paris", "temperature_c": 21.5}));
}

#[tokio::test]
async fn request_reasoning_effort_maps_to_thinking_within_max_tokens() {
    let server = MockServer::start().await;
    expect_body(
        &server,
        json!({
            "thinking": {"type": "enabled", "budget_tokens": 16384},
            // 4096 (the default) does not exceed the budget, so the budget is added.
            "max_tokens": 4096 + 16384,
        }),
        json_fixture("text.json"),
    )
    .await;
    let request = Request {
        reasoning_effort: Some(ReasoningEffort::High),
        temperature: Some(0.7),
        ..Request::user("Prove it.")
    };
    model(&server).generate(request).await.expect("generate");
    // The API rejects temperature together with thinking.
    assert!(sent_body(&server).await.get("temperature").is_none());
}

#[tokio::test]
async fn request_options_v1_base_and_extra_merged_last() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("anthropic-version", "2024-10-22"))
        .and(body_partial_json(json!({
            "max_tokens": 777,
            "metadata": {"user_id": "user-42"},
            "top_k": 5,
        })))
        .respond_with(json_fixture("text.json"))
        .expect(1)
        .mount(&server)
        .await;
    // No key configured: no x-api-key header (llama-server style); base already ends in /v1.
    let provider = Anthropic::new(ProviderConfig::new(
        "local",
        format!("{}/v1/", server.uri()),
    ))
    .with_options(AnthropicOptions {
        version: "2024-10-22".into(),
        default_max_tokens: 1000,
        beta: vec!["a-beta".into(), "another-beta".into()],
        ..AnthropicOptions::default()
    });
    let mut extra = BTreeMap::new();
    extra.insert("metadata".to_owned(), json!({"user_id": "user-42"}));
    extra.insert("top_k".to_owned(), json!(5));
    // Extra is merged last: it overrides the computed max_tokens.
    extra.insert("max_tokens".to_owned(), json!(777));
    let request = Request {
        extra,
        ..Request::user("hi")
    };
    let response = provider
        .model("local-model")
        .generate(request)
        .await
        .expect("generate");
    assert_eq!(response.provider, "local");

    let requests = server.received_requests().await.expect("recording is on");
    assert!(requests[0].headers.get("x-api-key").is_none());
    let beta = requests[0]
        .headers
        .get("anthropic-beta")
        .and_then(|v| v.to_str().ok());
    assert_eq!(beta, Some("a-beta,another-beta"));
}

// ---------------------------------------------------------------------------------------------
// Whole responses
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn response_text_usage_and_model_from_the_server() {
    let server = MockServer::start().await;
    expect_body(&server, json!({}), json_fixture("text.json")).await;
    let response = model(&server)
        .generate(Request::user("Hello"))
        .await
        .expect("generate");
    assert_eq!(response.message.role, Role::Assistant);
    // Adjacent text blocks form one part.
    assert_eq!(
        response.message.parts,
        vec![Part::Text {
            text: "Hello! How can I help you today?".into()
        }]
    );
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert_eq!(response.provider, "claude");
    assert_eq!(response.model, "claude-sonnet-4-5-20250929");
    assert_eq!(
        (response.usage.input_tokens, response.usage.output_tokens),
        (12, 9)
    );
}

#[tokio::test]
async fn response_two_tool_use_blocks() {
    let server = MockServer::start().await;
    expect_body(&server, json!({}), json_fixture("tool_use.json")).await;
    let request = Request {
        tools: vec![weather_tool(), time_tool()],
        ..Request::user("both")
    };
    let response = model(&server).generate(request).await.expect("generate");
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    assert_eq!(response.text(), "I'll check the weather in both cities.");
    let calls = response.tool_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].id, "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(calls[0].name, "get_weather");
    assert_eq!(
        calls[0].args,
        json!({"location": "Paris, France", "unit": "celsius"})
    );
    assert_eq!(calls[0].signature, None);
    assert_eq!(calls[1].id, "toolu_01B18r01rx01mr028946mr0");
    assert_eq!(calls[1].name, "get_time");
    assert_eq!(calls[1].args, json!({"timezone": "Asia/Tokyo"}));
}

#[tokio::test]
async fn response_usage_with_cache_read_and_write_tokens() {
    let server = MockServer::start().await;
    expect_body(&server, json!({}), json_fixture("cached.json")).await;
    let response = model(&server)
        .generate(Request::user("q"))
        .await
        .expect("generate");
    let usage = response.usage;
    assert_eq!(usage.input_tokens, 21);
    assert_eq!(usage.output_tokens, 393);
    assert_eq!(usage.cache_read_tokens, 2048);
    assert_eq!(usage.cache_write_tokens, 188_086);
}

#[tokio::test]
async fn response_unknown_stop_reason_is_other() {
    let server = MockServer::start().await;
    expect_body(&server, json!({}), json_fixture("unknown_stop.json")).await;
    let response = model(&server)
        .generate(Request::user("q"))
        .await
        .expect("generate");
    assert_eq!(
        response.finish_reason,
        FinishReason::Other("pause_turn".into())
    );
    assert_eq!(response.text(), "Searching");
}

#[tokio::test]
async fn thinking_blocks_ride_on_the_tool_call_and_go_back_first() {
    // Turn 1: thinking + redacted thinking + tool_use. Thinking is not part of the message.
    let server = MockServer::start().await;
    expect_body(&server, json!({}), json_fixture("thinking_tool_use.json")).await;
    let request = Request {
        tools: vec![weather_tool()],
        reasoning_effort: Some(ReasoningEffort::Low),
        ..Request::user("Weather in Paris?")
    };
    let first = model(&server)
        .generate(request.clone())
        .await
        .expect("generate");
    assert_eq!(
        first.message.parts.len(),
        1,
        "only the tool call: {:?}",
        first.message.parts
    );
    assert_eq!(first.text(), "");
    let call = first.tool_calls().remove(0);
    assert_eq!(call.args, json!({"location": "Paris"}));

    // Turn 2: the signed blocks are sent back verbatim, opening the assistant turn.
    let server = MockServer::start().await;
    expect_body(
        &server,
        json!({"messages": [
            {"role": "user"},
            {"role": "assistant", "content": [
                {"type": "thinking",
                 "thinking": "The user wants the weather; I should call get_weather for Paris.",
                 "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"},
                {"type": "redacted_thinking",
                 "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP"},
                {"type": "tool_use", "id": "toolu_01Think8w", "name": "get_weather"},
            ]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01Think8w"}]},
        ]}),
        json_fixture("text.json"),
    )
    .await;
    let mut next = request;
    next.messages.push(first.message.clone());
    next.messages.push(Message::tool_results([ToolResult {
        id: call.id.clone(),
        name: call.name.clone(),
        content: "21C".into(),
        is_error: false,
    }]));
    model(&server).generate(next).await.expect("generate");
}

// ---------------------------------------------------------------------------------------------
// Streaming
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn stream_text_deltas_collected() {
    let server = MockServer::start().await;
    expect_body(
        &server,
        json!({"stream": true, "max_tokens": 4096}),
        sse_fixture("stream_text.sse"),
    )
    .await;
    let mut stream = model(&server)
        .stream(Request::user("Hi"))
        .await
        .expect("stream");
    let mut deltas = Vec::new();
    let mut collector = executus_llm::Collector::new();
    while let Some(event) = stream.next().await {
        let event = event.expect("no error");
        if let StreamEvent::TextDelta { text } = &event {
            deltas.push(text.clone());
        }
        collector.push(&event);
    }
    assert_eq!(deltas, ["Hello", ", world", "!"]);
    let response = collector.finish("claude", MODEL).expect("complete");
    assert_eq!(response.text(), "Hello, world!");
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert_eq!(response.model, "claude-sonnet-4-5-20250929");

    // The same stream through `collect`.
    let server = MockServer::start().await;
    expect_body(
        &server,
        json!({"stream": true}),
        sse_fixture("stream_text.sse"),
    )
    .await;
    let stream = model(&server)
        .stream(Request::user("Hi"))
        .await
        .expect("stream");
    let response = collect(stream).await.expect("collect");
    assert_eq!(response.text(), "Hello, world!");
    assert_eq!(response.provider, "claude");
}

#[tokio::test]
async fn stream_usage_from_message_start_and_message_delta() {
    let server = MockServer::start().await;
    expect_body(
        &server,
        json!({"stream": true}),
        sse_fixture("stream_text.sse"),
    )
    .await;
    let stream = model(&server)
        .stream(Request::user("Hi"))
        .await
        .expect("stream");
    let usage = collect(stream).await.expect("collect").usage;
    assert_eq!(usage.input_tokens, 25, "from message_start");
    assert_eq!(usage.cache_write_tokens, 100, "from message_start");
    assert_eq!(usage.cache_read_tokens, 1800, "from message_start");
    assert_eq!(usage.output_tokens, 15, "from message_delta (cumulative)");
}

#[tokio::test]
async fn stream_tool_use_assembled_from_input_json_delta() {
    let server = MockServer::start().await;
    expect_body(
        &server,
        json!({"stream": true}),
        sse_fixture("stream_tool_use.sse"),
    )
    .await;
    let request = Request {
        tools: vec![weather_tool(), time_tool()],
        ..Request::user("weather")
    };
    let mut stream = model(&server).stream(request).await.expect("stream");
    let mut fragments = String::new();
    let mut events = Vec::new();
    while let Some(event) = stream.next().await {
        let event = event.expect("no error");
        if let StreamEvent::ToolCallDelta { index: 1, args, .. } = &event {
            fragments.push_str(args);
        }
        events.push(event);
    }
    assert_eq!(
        fragments,
        r#"{"location": "San Francisco, CA", "unit": "fahrenheit"}"#
    );
    // The first delta of a call carries its id and name.
    assert!(events.iter().any(|e| matches!(e,
        StreamEvent::ToolCallDelta { index: 1, id: Some(id), name: Some(name), .. }
            if id == "toolu_01T1x1fJ34qAmk2tNTrN7Up6" && name == "get_weather")));

    let mut collector = executus_llm::Collector::new();
    events.iter().for_each(|e| collector.push(e));
    let response = collector.finish("claude", MODEL).expect("complete");
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    assert_eq!(response.text(), "Okay, let's check the weather.");
    let calls = response.tool_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].id, "toolu_01T1x1fJ34qAmk2tNTrN7Up6");
    assert_eq!(
        calls[0].args,
        json!({"location": "San Francisco, CA", "unit": "fahrenheit"})
    );
    // Only an empty partial_json: the arguments are `{}`.
    assert_eq!(calls[1].name, "get_time");
    assert_eq!(calls[1].args, json!({}));
}

#[tokio::test]
async fn stream_thinking_is_reasoning_and_rides_on_the_tool_call() {
    let server = MockServer::start().await;
    expect_body(
        &server,
        json!({"stream": true}),
        sse_fixture("stream_thinking_tool_use.sse"),
    )
    .await;
    let request = Request {
        tools: vec![weather_tool()],
        reasoning_effort: Some(ReasoningEffort::Minimal),
        ..Request::user("weather")
    };
    let mut stream = model(&server)
        .stream(request.clone())
        .await
        .expect("stream");
    let mut reasoning = String::new();
    let mut collector = executus_llm::Collector::new();
    while let Some(event) = stream.next().await {
        let event = event.expect("no error");
        if let StreamEvent::ReasoningDelta { text } = &event {
            reasoning.push_str(text);
        }
        collector.push(&event);
    }
    assert_eq!(reasoning, "The user wants the weather; call get_weather.");
    let response = collector.finish("claude", MODEL).expect("complete");
    assert_eq!(response.text(), "", "thinking is not part of the message");
    let call = response.tool_calls().remove(0);

    // Sent back, the signed thinking block opens the assistant turn.
    let server = MockServer::start().await;
    expect_body(
        &server,
        json!({"messages": [
            {"role": "user"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "The user wants the weather; call get_weather.",
                 "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"},
                {"type": "tool_use", "id": "toolu_01ThinkS", "input": {"location": "Paris"}},
            ]},
        ]}),
        json_fixture("text.json"),
    )
    .await;
    let mut next = request;
    next.messages.push(response.message);
    next.messages.push(Message::tool_results([ToolResult {
        id: call.id,
        name: call.name,
        content: "21C".into(),
        is_error: false,
    }]));
    model(&server).generate(next).await.expect("generate");
}

#[tokio::test]
async fn stream_mid_stream_overloaded_error_is_transient_with_partial_text() {
    let server = MockServer::start().await;
    expect_body(
        &server,
        json!({"stream": true}),
        sse_fixture("stream_overloaded.sse"),
    )
    .await;
    let stream = model(&server)
        .stream(Request::user("Hi"))
        .await
        .expect("stream");
    let failure = collect(stream).await.expect_err("the stream fails");
    assert_eq!(failure.error.kind, ErrorKind::Transient);
    assert!(
        failure.error.message.contains("overloaded_error"),
        "{}",
        failure.error
    );
    assert_eq!(failure.error.provider, "claude");
    assert_eq!(failure.error.model, MODEL);
    assert_eq!(failure.partial.text, "The first half of an answer");
    assert_eq!(failure.partial.usage.input_tokens, 30);
}

#[tokio::test]
async fn stream_truncated_before_message_stop_is_transient() {
    let server = MockServer::start().await;
    expect_body(
        &server,
        json!({"stream": true}),
        sse_fixture("stream_truncated.sse"),
    )
    .await;
    let mut stream = model(&server)
        .stream(Request::user("Hi"))
        .await
        .expect("stream");
    let mut items = Vec::new();
    while let Some(item) = stream.next().await {
        items.push(item);
    }
    let last = items.pop().expect("items");
    let error = last.expect_err("the last item is the truncation error");
    assert_eq!(error.kind, ErrorKind::Transient);
    assert!(error.message.contains("truncated"), "{error}");
    assert!(items.iter().all(Result::is_ok));

    let server = MockServer::start().await;
    expect_body(
        &server,
        json!({"stream": true}),
        sse_fixture("stream_truncated.sse"),
    )
    .await;
    let stream = model(&server)
        .stream(Request::user("Hi"))
        .await
        .expect("stream");
    let failure = collect(stream).await.expect_err("truncated");
    assert_eq!(failure.error.kind, ErrorKind::Transient);
    assert_eq!(failure.partial.text, "Cut off in the mid");
}

#[tokio::test]
async fn stream_answered_whole_by_a_server_that_ignores_stream_true() {
    let server = MockServer::start().await;
    expect_body(
        &server,
        json!({"stream": true}),
        json_fixture("tool_use.json"),
    )
    .await;
    let stream = model(&server)
        .stream(Request::user("both"))
        .await
        .expect("stream");
    let response = collect(stream).await.expect("collect");
    assert_eq!(response.text(), "I'll check the weather in both cities.");
    assert_eq!(response.tool_calls().len(), 2);
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    assert_eq!(response.usage.input_tokens, 472);
}

#[tokio::test]
async fn stream_malformed_event_is_a_decode_error() {
    let server = MockServer::start().await;
    let body = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"m\"}}\n\n\
                event: content_block_delta\ndata: {not json\n\n";
    expect_body(
        &server,
        json!({}),
        ResponseTemplate::new(200).set_body_raw(body, "text/event-stream"),
    )
    .await;
    let stream = model(&server)
        .stream(Request::user("Hi"))
        .await
        .expect("stream");
    let failure = collect(stream).await.expect_err("decode error");
    assert_eq!(failure.error.kind, ErrorKind::Decode);
}

// ---------------------------------------------------------------------------------------------
// HTTP errors
// ---------------------------------------------------------------------------------------------

async fn error_with(template: ResponseTemplate) -> (executus_llm::Error, executus_llm::Error) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(template)
        .mount(&server)
        .await;
    let model = model(&server);
    let whole = model
        .generate(Request::user("Hi"))
        .await
        .expect_err("generate fails");
    let streamed = match model.stream(Request::user("Hi")).await {
        Err(e) => e,
        Ok(_) => panic!("an HTTP error is returned before the stream starts"),
    };
    (whole, streamed)
}

fn anthropic_error(status: u16, kind: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
    }))
}

#[tokio::test]
async fn error_529_overloaded_is_transient() {
    let (whole, streamed) =
        error_with(anthropic_error(529, "overloaded_error", "Overloaded")).await;
    for e in [whole, streamed] {
        assert_eq!(e.kind, ErrorKind::Transient);
        assert_eq!(e.status, Some(529));
        assert_eq!(e.message, "overloaded_error: Overloaded");
        assert_eq!((e.provider.as_str(), e.model.as_str()), ("claude", MODEL));
    }
}

#[tokio::test]
async fn error_429_carries_retry_after() {
    let template = anthropic_error(
        429,
        "rate_limit_error",
        "Number of requests has exceeded your rate limit",
    )
    .insert_header("retry-after", "17");
    let (whole, streamed) = error_with(template).await;
    for e in [whole, streamed] {
        assert_eq!(e.kind, ErrorKind::Transient);
        assert_eq!(e.status, Some(429));
        assert_eq!(e.retry_after, Some(Duration::from_secs(17)));
        assert!(e.message.starts_with("rate_limit_error"), "{e}");
    }
}

#[tokio::test]
async fn error_401_is_permanent() {
    let (whole, streamed) = error_with(anthropic_error(
        401,
        "authentication_error",
        "invalid x-api-key",
    ))
    .await;
    for e in [whole, streamed] {
        assert_eq!(e.kind, ErrorKind::Permanent);
        assert_eq!(e.status, Some(401));
    }
}

#[tokio::test]
async fn error_404_unknown_model_is_not_found() {
    let (whole, streamed) = error_with(anthropic_error(
        404,
        "not_found_error",
        "model: claude-sonnet-4-5",
    ))
    .await;
    for e in [whole, streamed] {
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert_eq!(e.status, Some(404));
        assert_eq!(e.message, "not_found_error: model: claude-sonnet-4-5");
    }
}

#[tokio::test]
async fn error_body_echoing_the_key_never_shows_it() {
    let message = format!("invalid x-api-key: {KEY} is not a valid key");
    let (whole, streamed) =
        error_with(anthropic_error(401, "authentication_error", &message)).await;
    for e in [whole, streamed] {
        assert_eq!(e.kind, ErrorKind::Permanent);
        assert!(!e.to_string().contains(KEY), "Display leaks the key: {e}");
        assert!(
            !format!("{e:?}").contains(KEY),
            "Debug leaks the key: {e:?}"
        );
        assert!(e.message.contains("[redacted]"), "{e}");
    }
    // Nor does the provider's or model's Debug.
    let provider =
        Anthropic::new(ProviderConfig::new("claude", "http://127.0.0.1:9").with_key(KEY));
    assert!(!format!("{provider:?}").contains(KEY));
    assert!(!format!("{:?}", provider.model(MODEL)).contains(KEY));
}

#[tokio::test]
async fn error_event_in_a_200_stream_that_is_permanent() {
    let server = MockServer::start().await;
    let body = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"prompt is too long\"}}\n\n";
    expect_body(
        &server,
        json!({}),
        ResponseTemplate::new(200).set_body_raw(body, "text/event-stream"),
    )
    .await;
    let stream = model(&server)
        .stream(Request::user("Hi"))
        .await
        .expect("stream");
    let failure = collect(stream).await.expect_err("error event");
    assert_eq!(failure.error.kind, ErrorKind::Permanent);
    assert_eq!(
        failure.error.message,
        "invalid_request_error: prompt is too long"
    );
}

#[tokio::test]
async fn connection_refused_is_transient() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind")
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let provider = Anthropic::new(ProviderConfig::new("claude", base).with_key(KEY));
    let error = provider
        .model(MODEL)
        .generate(Request::user("Hi"))
        .await
        .expect_err("refused");
    assert_eq!(error.kind, ErrorKind::Transient);
    assert!(!error.to_string().contains(KEY));
}
