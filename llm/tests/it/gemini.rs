//! Google Gemini `generateContent` / `streamGenerateContent?alt=sse` against a wiremock server
//! on 127.0.0.1 speaking Gemini's wire format (fixtures in `tests/fixtures/gemini/`).

use std::sync::Arc;
use std::time::Duration;

use executus_llm::providers::ProviderConfig;
use executus_llm::providers::gemini::Gemini;
use executus_llm::stream::{DriveError, collect, drive};
use executus_llm::{
    ErrorKind, FinishReason, Message, Model, Part, Provider, ReasoningEffort, Request, ResponseSchema, Role,
    StreamEvent, ToolChoice, ToolResult, ToolSpec, Usage,
};
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "AIzaSyTestKey-7c3e9a1b5d2f8e4c6a0b";
const FLASH: &str = "/v1beta/models/gemini-2.5-flash:generateContent";
const FLASH_STREAM: &str = "/v1beta/models/gemini-2.5-flash:streamGenerateContent";

fn fixture(name: &str) -> Vec<u8> {
    let file = format!("{}/tests/fixtures/gemini/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&file).unwrap_or_else(|e| panic!("fixture {file}: {e}"))
}

fn json_reply(name: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(fixture(name), "application/json; charset=UTF-8")
}

fn sse_reply(name: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(fixture(name), "text/event-stream")
}

fn provider(server: &MockServer) -> Gemini {
    Gemini::new(ProviderConfig::new("gemini", format!("{}/v1beta", server.uri())).with_key(KEY))
}

fn model(server: &MockServer, id: &str) -> Arc<dyn Model> {
    provider(server).model(id)
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
async fn plain_chat_with_system_key_in_header_not_url() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(FLASH))
        .and(header("x-goog-api-key", KEY))
        .and(body_partial_json(json!({
            "systemInstruction": {"parts": [{"text": "Answer in one sentence."}]},
            "contents": [{"role": "user", "parts": [{"text": "What is the capital of France?"}]}],
            "generationConfig": {"temperature": 0.2, "maxOutputTokens": 128, "stopSequences": ["END"], "seed": 42},
        })))
        .respond_with(json_reply("generate_text.json"))
        .expect(1)
        .mount(&server)
        .await;

    let request = Request {
        temperature: Some(0.2),
        max_tokens: Some(128),
        stop: vec!["END".into()],
        seed: Some(42),
        ..Request::user("What is the capital of France?").with_system("Answer in one sentence.")
    };
    let response = model(&server, "gemini-2.5-flash").generate(request).await.expect("generate");

    assert_eq!(response.text(), "Paris is the capital of France.");
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert_eq!(response.usage, Usage { input_tokens: 12, output_tokens: 8, ..Usage::default() });
    assert_eq!((response.provider.as_str(), response.model.as_str()), ("gemini", "gemini-2.5-flash"));

    let requests = server.received_requests().await.unwrap_or_default();
    assert!(!requests[0].url.as_str().contains(KEY), "key in URL: {}", requests[0].url);
    assert_eq!(requests[0].url.query(), None);
    assert!(requests[0].headers.get("authorization").is_none());
}

#[tokio::test]
async fn two_function_calls_with_signature_and_thought_usage() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(FLASH))
        .and(body_partial_json(json!({
            "tools": [{"functionDeclarations": [
                {"name": "get_weather", "description": "Current weather for a city",
                 "parametersJsonSchema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
                {"name": "get_time", "description": "Local time in a time zone",
                 "parametersJsonSchema": {"type": "object", "properties": {"tz": {"type": "string"}}}},
            ]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}},
        })))
        .respond_with(json_reply("generate_tool_calls.json"))
        .expect(1)
        .mount(&server)
        .await;
    let request = Request {
        tools: weather_tools(),
        tool_choice: ToolChoice::Tool("get_weather".into()),
        ..Request::user("Weather and time in Paris?")
    };
    let response = model(&server, "gemini-2.5-flash").generate(request).await.expect("generate");

    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    assert_eq!(response.text(), "", "thought parts are not answer text");
    let calls = response.tool_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!((calls[0].name.as_str(), &calls[0].args), ("get_weather", &json!({"city": "Paris"})));
    assert_eq!(calls[0].signature.as_deref(), Some("CiQB0e2Kb7dGZ3VtbXktc2lnbmF0dXJlLWZvci10ZXN0cw=="));
    assert_eq!((calls[1].name.as_str(), calls[1].signature.as_deref()), ("get_time", None));
    assert!(!calls[0].id.is_empty() && calls[0].id != calls[1].id);
    assert_eq!(
        response.usage,
        Usage {
            input_tokens: 85,
            output_tokens: 130,
            cache_read_tokens: 40,
            cache_write_tokens: 0,
            reasoning_tokens: 100
        }
    );
    assert_eq!(response.model, "gemini-2.5-flash-preview-05-20");
}

#[tokio::test]
async fn thought_signature_and_tool_results_are_sent_back() {
    let server = MockServer::start().await;
    // Turn 1: the model asks for two calls, the first signed.
    Mock::given(method("POST"))
        .and(path(FLASH))
        .and(body_partial_json(
            json!({"contents": [{"role": "user", "parts": [{"text": "Weather and time in Paris?"}]}]}),
        ))
        .respond_with(json_reply("generate_tool_calls.json"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let gemini = model(&server, "gemini-2.5-flash");
    let mut request = Request { tools: weather_tools(), ..Request::user("Weather and time in Paris?") };
    let first = gemini.generate(request.clone()).await.expect("turn 1");
    let calls = first.tool_calls();

    // Turn 2: the transcript with the model's calls and our results (one failed).
    Mock::given(method("POST"))
        .and(path(FLASH))
        .and(body_partial_json(json!({
            "contents": [
                {"role": "user", "parts": [{"text": "Weather and time in Paris?"}]},
                {"role": "model", "parts": [
                    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                     "thoughtSignature": "CiQB0e2Kb7dGZ3VtbXktc2lnbmF0dXJlLWZvci10ZXN0cw=="},
                    {"functionCall": {"name": "get_time", "args": {"tz": "Europe/Paris"}}},
                ]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"output": {"temp_c": 21}}}},
                    {"functionResponse": {"name": "get_time", "response": {"error": "clock service down"}}},
                ]},
            ],
        })))
        .respond_with(json_reply("generate_text.json"))
        .expect(1)
        .mount(&server)
        .await;
    request.messages.push(first.message.clone());
    request.messages.push(Message::tool_results([
        ToolResult {
            id: calls[0].id.clone(),
            name: "get_weather".into(),
            content: "{\"temp_c\":21}".into(),
            is_error: false,
        },
        ToolResult {
            id: calls[1].id.clone(),
            name: "get_time".into(),
            content: "clock service down".into(),
            is_error: true,
        },
    ]));
    let second = gemini.generate(request).await.expect("turn 2");
    assert_eq!(second.text(), "Paris is the capital of France.");

    // Synthesised ids stay local: Gemini never sees an id it did not make.
    let bodies = sent_bodies(&server).await;
    let model_turn = &bodies[1]["contents"][1]["parts"];
    assert!(model_turn[0]["functionCall"].get("id").is_none(), "{model_turn}");
}

#[tokio::test]
async fn image_travels_as_inline_data() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(FLASH))
        .and(body_partial_json(json!({
            "contents": [{"role": "user", "parts": [
                {"text": "Describe this."},
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
            ]}],
        })))
        .respond_with(json_reply("generate_text.json"))
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
    model(&server, "gemini-2.5-flash").generate(request).await.expect("generate");
}

#[tokio::test]
async fn structured_output_uses_response_json_schema() {
    let schema = json!({
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
    });
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(FLASH))
        .and(body_partial_json(json!({
            "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": schema},
        })))
        .respond_with(json_reply("generate_structured.json"))
        .expect(1)
        .mount(&server)
        .await;
    let request = Request {
        response_schema: Some(ResponseSchema {
            name: "city_info".into(),
            schema: schema.clone(),
            strict: true,
        }),
        ..Request::user("Largest city of France?")
    };
    let response = model(&server, "gemini-2.5-flash").generate(request).await.expect("generate");
    let parsed: Value = serde_json::from_str(&response.text()).expect("JSON answer");
    assert_eq!(parsed, json!({"city": "Paris", "population": 2_102_650}));
}

#[tokio::test]
async fn think_levels_on_the_wire() {
    let server = MockServer::start().await;
    let cases = [
        (
            "gemini-2.5-flash",
            ReasoningEffort::Minimal,
            json!({"thinkingBudget": 512, "includeThoughts": true}),
        ),
        (
            "gemini-2.5-flash",
            ReasoningEffort::High,
            json!({"thinkingBudget": 24576, "includeThoughts": true}),
        ),
        (
            "gemini-3-pro-preview",
            ReasoningEffort::Low,
            json!({"thinkingLevel": "low", "includeThoughts": true}),
        ),
        (
            "gemini-3-flash-preview",
            ReasoningEffort::Medium,
            json!({"thinkingLevel": "medium", "includeThoughts": true}),
        ),
    ];
    for (id, effort, thinking) in cases {
        server.reset().await;
        Mock::given(method("POST"))
            .and(path(format!("/v1beta/models/{id}:generateContent")))
            .and(body_partial_json(json!({"generationConfig": {"thinkingConfig": thinking}})))
            .respond_with(json_reply("generate_text.json"))
            .expect(1)
            .mount(&server)
            .await;
        let request = Request { reasoning_effort: Some(effort), ..Request::user("think") };
        model(&server, id).generate(request).await.expect("generate");
        server.verify().await;
    }
}

#[tokio::test]
async fn streaming_text_reasoning_and_usage() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(FLASH_STREAM))
        .and(query_param("alt", "sse"))
        .and(header("x-goog-api-key", KEY))
        .respond_with(sse_reply("stream_text.sse"))
        .expect(2)
        .mount(&server)
        .await;
    let gemini = model(&server, "gemini-2.5-flash");

    let response = collect(gemini.stream(Request::user("hi")).await.expect("stream")).await.expect("collect");
    assert_eq!(response.text(), "Hello, world!");
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert_eq!(
        response.usage,
        Usage { input_tokens: 9, output_tokens: 24, reasoning_tokens: 20, ..Usage::default() }
    );
    assert_eq!(response.model, "gemini-2.5-flash");

    let mut reasoning = String::new();
    let mut done = 0;
    drive(gemini.stream(Request::user("hi")).await.expect("stream"), |event| {
        match event {
            StreamEvent::ReasoningDelta { text } => reasoning.push_str(text),
            StreamEvent::Done { .. } => done += 1,
            _ => {}
        }
        Ok::<(), std::convert::Infallible>(())
    })
    .await
    .expect("drive");
    assert_eq!((reasoning.as_str(), done), ("The user greets me.", 1));

    let requests = server.received_requests().await.unwrap_or_default();
    assert!(requests.iter().all(|r| !r.url.as_str().contains(KEY)));
}

#[tokio::test]
async fn streaming_tool_calls_keep_signature() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(FLASH_STREAM))
        .respond_with(sse_reply("stream_tool_calls.sse"))
        .mount(&server)
        .await;
    let request = Request { tools: weather_tools(), ..Request::user("Weather and time in Paris?") };
    let response = collect(model(&server, "gemini-2.5-flash").stream(request).await.expect("stream"))
        .await
        .expect("collect");
    assert_eq!(response.text(), "Let me check.");
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    let calls = response.tool_calls();
    assert_eq!(calls.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["get_weather", "get_time"]);
    assert_eq!(calls[0].signature.as_deref(), Some("c2lnbmF0dXJlLXN0cmVhbQ=="));
    assert_eq!(calls[1].args, json!({"tz": "Europe/Paris"}));
    assert_eq!(
        response.usage,
        Usage { input_tokens: 70, output_tokens: 65, reasoning_tokens: 40, ..Usage::default() }
    );
}

#[tokio::test]
async fn mid_stream_error_keeps_partial_text() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(FLASH_STREAM))
        .respond_with(sse_reply("stream_error.sse"))
        .mount(&server)
        .await;
    let failure =
        collect(model(&server, "gemini-2.5-flash").stream(Request::user("q")).await.expect("stream"))
            .await
            .expect_err("stream error");
    assert_eq!((failure.error.kind, failure.error.status), (ErrorKind::Transient, Some(503)));
    assert!(failure.error.message.contains("overloaded"), "{}", failure.error);
    assert_eq!(failure.partial.text, "The answer is");
}

#[tokio::test]
async fn stream_without_finish_reason_is_truncated() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(FLASH_STREAM))
        .respond_with(sse_reply("stream_truncated.sse"))
        .mount(&server)
        .await;
    let failure =
        collect(model(&server, "gemini-2.5-flash").stream(Request::user("q")).await.expect("stream"))
            .await
            .expect_err("truncated");
    assert_eq!(failure.error.kind, ErrorKind::Transient);
    assert!(failure.error.message.contains("truncated"), "{}", failure.error);
    assert_eq!(failure.partial.text, "Once upon a time");
}

#[tokio::test]
async fn garbage_chunk_is_a_decode_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(FLASH_STREAM))
        .respond_with(sse_reply("stream_garbage.sse"))
        .mount(&server)
        .await;
    let mut seen = Vec::new();
    let result =
        drive(model(&server, "gemini-2.5-flash").stream(Request::user("q")).await.expect("stream"), |e| {
            seen.push(e.clone());
            Ok::<(), std::convert::Infallible>(())
        })
        .await;
    let Err(DriveError::Stream(failure)) = result else { panic!("expected a stream failure") };
    assert_eq!(failure.error.kind, ErrorKind::Decode);
    assert_eq!(failure.partial.text, "Partial");
    assert!(!seen.iter().any(|e| matches!(e, StreamEvent::Done { .. })), "nothing after the bad chunk");
}

#[tokio::test]
async fn blocked_prompt_is_permanent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(FLASH))
        .respond_with(json_reply("generate_blocked.json"))
        .mount(&server)
        .await;
    let err = model(&server, "gemini-2.5-flash").generate(Request::user("q")).await.expect_err("blocked");
    assert_eq!(err.kind, ErrorKind::Permanent);
    assert!(err.message.contains("PROHIBITED_CONTENT"), "{err}");
}

#[tokio::test]
async fn error_statuses_are_classified() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1beta/models/gemini-9-ultra:generateContent"))
        .respond_with(ResponseTemplate::new(404).set_body_raw(
            br#"{"error": {"code": 404, "message": "models/gemini-9-ultra is not found for API version v1beta, or is not supported for generateContent.", "status": "NOT_FOUND"}}"#.to_vec(),
            "application/json",
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(FLASH_STREAM))
        .respond_with(
            ResponseTemplate::new(429).insert_header("retry-after", "13").set_body_raw(
                br#"{"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED"}}"#.to_vec(),
                "application/json",
            ),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(FLASH))
        .respond_with(ResponseTemplate::new(400).set_body_raw(
            br#"{"error": {"code": 400, "message": "Invalid JSON payload received. Unknown name \"bogus\": Cannot find field.", "status": "INVALID_ARGUMENT"}}"#.to_vec(),
            "application/json",
        ))
        .mount(&server)
        .await;

    let err = model(&server, "gemini-9-ultra").generate(Request::user("q")).await.expect_err("404");
    assert_eq!((err.kind, err.status), (ErrorKind::NotFound, Some(404)));
    assert_eq!((err.provider.as_str(), err.model.as_str()), ("gemini", "gemini-9-ultra"));

    let Err(err) = model(&server, "gemini-2.5-flash").stream(Request::user("q")).await else {
        panic!("a 429 fails before the first event")
    };
    assert_eq!((err.kind, err.status), (ErrorKind::Transient, Some(429)));
    assert_eq!(err.retry_after, Some(Duration::from_secs(13)));
    assert!(err.message.contains("RESOURCE_EXHAUSTED"), "{err}");

    let err = model(&server, "gemini-2.5-flash").generate(Request::user("q")).await.expect_err("400");
    assert_eq!((err.kind, err.status), (ErrorKind::Permanent, Some(400)));
    assert!(err.message.contains("INVALID_ARGUMENT"), "{err}");
}

#[tokio::test]
async fn unauthorized_error_never_shows_the_key() {
    let server = MockServer::start().await;
    let body = format!(
        r#"{{"error": {{"code": 401, "message": "API key {KEY} is not valid. Please pass a valid API key.", "status": "UNAUTHENTICATED"}}}}"#
    );
    Mock::given(method("POST"))
        .and(path(FLASH))
        .respond_with(ResponseTemplate::new(401).set_body_raw(body.into_bytes(), "application/json"))
        .mount(&server)
        .await;
    let gemini = provider(&server);
    let err = gemini.model("gemini-2.5-flash").generate(Request::user("q")).await.expect_err("401");
    assert_eq!((err.kind, err.status), (ErrorKind::Permanent, Some(401)));
    assert!(err.message.contains("is not valid"), "the server's message is kept: {err}");
    for shown in [err.to_string(), format!("{err:?}"), format!("{gemini:?}")] {
        assert!(!shown.contains(KEY), "key leaked: {shown}");
    }
}

#[tokio::test]
async fn hostile_model_id_is_refused_before_any_request() {
    let server = MockServer::start().await;
    let err = model(&server, "gemini-2.5-flash:generateContent?key=x#")
        .generate(Request::user("q"))
        .await
        .expect_err("refused");
    assert_eq!(err.kind, ErrorKind::Permanent);
    assert!(server.received_requests().await.unwrap_or_default().is_empty());
}
