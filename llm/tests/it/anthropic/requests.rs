//! Request bodies and headers: what the client sends.

use super::*;

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
    for absent in ["tools", "tool_choice", "thinking", "temperature", "stream", "stop_sequences"] {
        assert!(body.get(absent).is_none(), "{absent} must not be sent: {body}");
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
            Message { role: Role::Assistant, parts: vec![Part::Text { text: String::new() }] },
            Message::user("third"),
        ],
        ..Request::default()
    };
    model(&server).generate(request).await.expect("generate");
    assert_eq!(sent_body(&server).await["messages"].as_array().map(Vec::len), Some(3));
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
                    Part::Text { text: "Checking.".into() },
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
                Part::Text { text: "What is this?".into() },
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
    assert!(response.tool_calls().is_empty(), "the answer tool is not a tool call");
    let answer: Value = serde_json::from_str(&response.text()).expect("answer is JSON");
    assert_eq!(answer, json!({"city": "Paris", "temperature_c": 21.5, "conditions": ["sunny", "windy"]}));
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
    let provider = Anthropic::new(ProviderConfig::new("local", format!("{}/v1/", server.uri())))
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
    let request = Request { extra, ..Request::user("hi") };
    let response = provider.model("local-model").generate(request).await.expect("generate");
    assert_eq!(response.provider, "local");

    let requests = server.received_requests().await.expect("recording is on");
    assert!(requests[0].headers.get("x-api-key").is_none());
    let beta = requests[0].headers.get("anthropic-beta").and_then(|v| v.to_str().ok());
    assert_eq!(beta, Some("a-beta,another-beta"));
}
