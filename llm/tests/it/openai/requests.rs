//! The exact request body sent, checked with partial-JSON matching and the recorded request.

use super::*;

#[tokio::test]
async fn plain_chat_body() {
    let server = MockServer::start().await;
    expect_body(
        &server,
        json!({
            "model": "gpt-4o-mini",
            "messages": [
                { "role": "system", "content": "Be brief." },
                { "role": "user", "content": "Capital of France?" },
                { "role": "assistant", "content": "Paris." },
                { "role": "user", "content": "And Spain?" }
            ],
            "temperature": 0.7,
            "max_completion_tokens": 256,
            "stop": ["\n\n"],
            "seed": 42
        }),
        json_response("chat_text.json"),
    )
    .await;
    let request = Request {
        system: Some("Be brief.".into()),
        messages: vec![
            Message::user("Capital of France?"),
            Message::assistant("Paris."),
            Message::user("And Spain?"),
        ],
        temperature: Some(0.7),
        max_tokens: Some(256),
        stop: vec!["\n\n".into()],
        seed: Some(42),
        ..Request::default()
    };
    provider(&server).model("gpt-4o-mini").generate(request).await.expect("generate");

    let body = sent_body(&server).await;
    for absent in ["tools", "tool_choice", "stream", "stream_options", "max_tokens", "response_format"] {
        assert!(body.get(absent).is_none(), "{absent} must not be sent: {body}");
    }
}

#[tokio::test]
async fn no_authorization_header_without_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(json_response("llamacpp_text.json"))
        .mount(&server)
        .await;
    let local = OpenAi::new(ProviderConfig::new("local", format!("{}/v1", server.uri())));
    local.model("qwen3").generate(Request::user("hi")).await.expect("generate");
    let requests = server.received_requests().await.expect("recording on");
    assert!(requests[0].headers.get("authorization").is_none());
}

#[tokio::test]
async fn tools_and_tool_choice_body() {
    let server = MockServer::start().await;
    expect_body(
        &server,
        json!({
            "tools": [{
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Current weather in a city",
                    "parameters": {
                        "type": "object",
                        "properties": { "city": { "type": "string" } },
                        "required": ["city"],
                        "additionalProperties": false
                    }
                }
            }],
            "tool_choice": { "type": "function", "function": { "name": "get_weather" } }
        }),
        json_response("chat_tool_calls.json"),
    )
    .await;
    let request = Request {
        tools: vec![weather_tool()],
        tool_choice: ToolChoice::Tool("get_weather".into()),
        ..Request::user("Weather in Paris?")
    };
    provider(&server).model("gpt-4.1-mini").generate(request).await.expect("generate");
}

#[tokio::test]
async fn tool_result_turn_body() {
    let server = MockServer::start().await;
    expect_body(
        &server,
        json!({
            "messages": [
                { "role": "user", "content": "Weather in Paris and Tokyo?" },
                {
                    "role": "assistant",
                    "content": null,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": { "name": "get_weather", "arguments": "{\"city\":\"Paris\"}" }
                        },
                        {
                            "id": "call_2",
                            "type": "function",
                            "function": { "name": "get_weather", "arguments": "{\"city\": \"Tok" }
                        }
                    ]
                },
                { "role": "tool", "tool_call_id": "call_1", "content": "18°C, sunny" },
                {
                    "role": "tool",
                    "tool_call_id": "call_2",
                    "content": "Error: arguments are not valid JSON"
                }
            ]
        }),
        json_response("chat_text.json"),
    )
    .await;
    let request = Request {
        tools: vec![weather_tool()],
        messages: vec![
            Message::user("Weather in Paris and Tokyo?"),
            Message {
                role: Role::Assistant,
                parts: vec![
                    Part::ToolCall(ToolCall {
                        id: "call_1".into(),
                        name: "get_weather".into(),
                        args: json!({ "city": "Paris" }),
                        signature: None,
                    }),
                    // Unparseable model output is sent back verbatim.
                    Part::ToolCall(ToolCall {
                        id: "call_2".into(),
                        name: "get_weather".into(),
                        args: Value::String("{\"city\": \"Tok".into()),
                        signature: None,
                    }),
                ],
            },
            Message::tool_results([
                ToolResult {
                    id: "call_1".into(),
                    name: "get_weather".into(),
                    content: "18°C, sunny".into(),
                    is_error: false,
                },
                ToolResult {
                    id: "call_2".into(),
                    name: "get_weather".into(),
                    content: "arguments are not valid JSON".into(),
                    is_error: true,
                },
            ]),
        ],
        ..Request::default()
    };
    provider(&server).model("gpt-4.1-mini").generate(request).await.expect("generate");
}

#[tokio::test]
async fn image_body_is_a_data_url() {
    let server = MockServer::start().await;
    expect_body(
        &server,
        json!({
            "messages": [{
                "role": "user",
                "content": [
                    { "type": "text", "text": "What is in this picture?" },
                    { "type": "image_url", "image_url": { "url": "data:image/png;base64,iVBORw0KGgo=" } }
                ]
            }]
        }),
        json_response("chat_text.json"),
    )
    .await;
    let request = Request {
        messages: vec![Message {
            role: Role::User,
            parts: vec![
                Part::Text { text: "What is in this picture?".into() },
                Part::Image {
                    mime: "image/png".into(),
                    data: vec![0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'],
                },
            ],
        }],
        ..Request::default()
    };
    provider(&server).model("gpt-4o").generate(request).await.expect("generate");
}

#[tokio::test]
async fn response_format_json_schema_body() {
    let server = MockServer::start().await;
    let schema = json!({
        "type": "object",
        "properties": { "city": { "type": "string" }, "population": { "type": "integer" } },
        "required": ["city", "population"],
        "additionalProperties": false
    });
    expect_body(
        &server,
        json!({
            "response_format": {
                "type": "json_schema",
                "json_schema": { "name": "city_facts", "schema": schema, "strict": true }
            }
        }),
        json_response("chat_text.json"),
    )
    .await;
    let request = Request {
        response_schema: Some(ResponseSchema { name: "city_facts".into(), schema, strict: true }),
        ..Request::user("Largest city in Japan?")
    };
    provider(&server).model("gpt-4o").generate(request).await.expect("generate");
}

#[tokio::test]
async fn legacy_max_tokens_and_reasoning_effort_body() {
    let server = MockServer::start().await;
    expect_body(
        &server,
        json!({ "max_tokens": 64, "reasoning_effort": "low" }),
        json_response("llamacpp_text.json"),
    )
    .await;
    let legacy =
        provider(&server).with_options(OpenAiOptions { legacy_max_tokens: true, ..OpenAiOptions::default() });
    let request =
        Request { max_tokens: Some(64), reasoning_effort: Some(ReasoningEffort::Low), ..Request::user("hi") };
    legacy.model("qwen3").generate(request).await.expect("generate");
    let body = sent_body(&server).await;
    assert!(body.get("max_completion_tokens").is_none(), "{body}");
}

#[tokio::test]
async fn extra_fields_are_merged_last() {
    let server = MockServer::start().await;
    expect_body(
        &server,
        json!({
            "logit_bias": { "50256": -100 },
            "temperature": 0.1,
            "stream": true,
            "top_k": 20
        }),
        sse_response("stream_text.sse"),
    )
    .await;
    let mut request = Request { temperature: Some(0.9), ..Request::user("hi") };
    request.extra.insert("logit_bias".into(), json!({ "50256": -100 }));
    request.extra.insert("temperature".into(), json!(0.1));
    request.extra.insert("top_k".into(), json!(20));
    // A null removes a key the client would send (for servers that reject it).
    request.extra.insert("stream_options".into(), Value::Null);
    let stream = provider(&server).model("gpt-4o-mini").stream(request).await.expect("stream");
    collect(stream).await.expect("collect");
    let body = sent_body(&server).await;
    assert!(body.get("stream_options").is_none(), "{body}");
}

#[tokio::test]
async fn stream_request_asks_for_usage() {
    let server = MockServer::start().await;
    expect_body(
        &server,
        json!({ "stream": true, "stream_options": { "include_usage": true } }),
        sse_response("stream_text.sse"),
    )
    .await;
    let stream = provider(&server).model("gpt-4o-mini").stream(Request::user("hi")).await.expect("stream");
    collect(stream).await.expect("collect");
    let requests = server.received_requests().await.expect("recording on");
    assert_eq!(requests[0].headers.get("accept").and_then(|v| v.to_str().ok()), Some("text/event-stream"));
}

#[tokio::test]
async fn a_borrowed_request_is_sent_byte_for_byte_like_an_owned_one() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(json_response("chat_text.json"))
        .mount(&server)
        .await;
    let request = Request {
        system: Some("Be brief.".into()),
        tools: vec![weather_tool()],
        temperature: Some(0.2),
        messages: vec![Message::user("Weather in Paris?")],
        ..Request::default()
    };
    let model = provider(&server).model("gpt-4.1-mini");
    model.generate(request.clone()).await.expect("generate");
    model.generate_ref(&request).await.expect("generate_ref");
    let requests = server.received_requests().await.expect("recording on");
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].body, requests[1].body, "the same bytes either way");
    assert_eq!(requests[0].headers.get("content-type"), requests[1].headers.get("content-type"));
}

/// A plain `http://` endpoint gets the request from the bare client (`http::direct`) with the
/// headers reqwest would send: the key, the JSON content type, `accept` as asked, `host`.
#[tokio::test]
async fn plain_http_requests_carry_the_usual_headers() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(json_response("chat_text.json"))
        .mount(&server)
        .await;
    let model = provider(&server).model("gpt-4o-mini");
    model.generate(Request::user("hi")).await.expect("generate");
    let requests = server.received_requests().await.expect("recording on");
    let headers = &requests[0].headers;
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(get("authorization"), format!("Bearer {KEY}"));
    assert_eq!(get("content-type"), "application/json");
    assert_eq!(get("accept"), "*/*");
    assert_eq!(get("host"), server.address().to_string());
    assert_eq!(get("content-length"), requests[0].body.len().to_string());
}

/// A redirect is followed (through reqwest, as before the bare client existed), the body and
/// the key sent again to the same origin.
#[tokio::test]
async fn a_redirect_is_followed_with_the_body() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(307).insert_header("location", "/v2/chat/completions"))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/chat/completions"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(body_partial_json(json!({"model": "gpt-4o-mini"})))
        .respond_with(json_response("chat_text.json"))
        .expect(1)
        .mount(&server)
        .await;
    let answer =
        provider(&server).model("gpt-4o-mini").generate(Request::user("hi")).await.expect("generate");
    assert!(!answer.text().is_empty(), "{answer:?}");
}
