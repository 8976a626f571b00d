//! Error statuses and bodies: classification, Retry-After, and the key never shown.

use super::*;

async fn error_of(status: u16, body: &str, headers: &[(&str, &str)]) -> executus_llm::Error {
    let server = MockServer::start().await;
    let mut answer = ResponseTemplate::new(status).set_body_raw(body.to_owned(), "application/json");
    for (k, v) in headers {
        answer = answer.insert_header(*k, *v);
    }
    Mock::given(method("POST")).and(path("/v1/chat/completions")).respond_with(answer).mount(&server).await;
    provider(&server).model("gpt-4o-mini").generate(Request::user("hi")).await.expect_err("error status")
}

#[tokio::test]
async fn rate_limit_is_transient_with_retry_after() {
    let e = error_of(429, &fixture("error_openai_rate_limit.json"), &[("retry-after", "7")]).await;
    assert_eq!(e.kind, ErrorKind::Transient);
    assert_eq!(e.status, Some(429));
    assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
    assert!(e.message.contains("Rate limit reached"), "{e}");
    assert_eq!((e.provider.as_str(), e.model.as_str()), ("local", "gpt-4o-mini"));
}

#[tokio::test]
async fn unauthorized_is_permanent_and_never_shows_the_key() {
    let body = fixture("error_openai_invalid_key.json");
    assert!(body.contains(KEY), "the fixture echoes the key");
    let e = error_of(401, &body, &[]).await;
    assert_eq!(e.kind, ErrorKind::Permanent);
    assert_eq!(e.status, Some(401));
    assert!(e.message.contains("Incorrect API key provided"), "{e}");
    assert!(!e.to_string().contains(KEY), "Display leaks the key: {e}");
    assert!(!format!("{e:?}").contains(KEY), "Debug leaks the key: {e:?}");

    // The same for a stream, whose error arrives before the first event.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_raw(body, "application/json"))
        .mount(&server)
        .await;
    let p = provider(&server);
    assert!(!format!("{p:?}").contains(KEY), "provider Debug leaks the key");
    let e = p.model("gpt-4o").stream(Request::user("hi")).await.err().expect("401");
    assert_eq!(e.kind, ErrorKind::Permanent);
    assert!(!e.to_string().contains(KEY) && !format!("{e:?}").contains(KEY));
}

#[tokio::test]
async fn unknown_model_is_not_found() {
    let e = error_of(404, &fixture("error_openai_model_not_found.json"), &[]).await;
    assert_eq!(e.kind, ErrorKind::NotFound);
    // A 400 that says the model is unknown (Ollama's /v1, vLLM) too.
    let e = error_of(
        400,
        r#"{"error":{"message":"model \"qwen9\" not found, try pulling it first","type":"api_error"}}"#,
        &[],
    )
    .await;
    assert_eq!(e.kind, ErrorKind::NotFound);
    // llama-swap's wording for a model it does not serve (plain text).
    let e = error_of(400, "could not find suitable inference handler for qwen9", &[]).await;
    assert_eq!(e.kind, ErrorKind::NotFound);
}

#[tokio::test]
async fn a_server_without_vision_is_unsupported_not_transient() {
    // llama-server started without a multimodal projector, as the real one answers.
    let body = r#"{"error":{"code":500,"message":"image input is not supported - hint: if this is unexpected, you may need to provide the mmproj","type":"server_error"}}"#;
    let e = error_of(500, body, &[]).await;
    assert_eq!((e.kind, e.status), (ErrorKind::Unsupported, Some(500)), "{e}");
}

#[tokio::test]
async fn server_errors_are_transient() {
    let e = error_of(500, &fixture("error_llamacpp_server.json"), &[]).await;
    assert_eq!((e.kind, e.status), (ErrorKind::Transient, Some(500)));
    let e = error_of(503, &fixture("error_llamacpp_loading.json"), &[]).await;
    assert_eq!((e.kind, e.status), (ErrorKind::Transient, Some(503)));
    assert!(e.message.contains("Loading model"), "{e}");
}

#[tokio::test]
async fn llamacpp_error_body_with_integer_code() {
    let e = error_of(400, &fixture("error_llamacpp_context.json"), &[]).await;
    assert_eq!(e.kind, ErrorKind::Permanent);
    assert_eq!(e.status, Some(400));
    assert!(e.message.contains("exceeds the available context size"), "{e}");
}

#[tokio::test]
async fn error_object_in_a_200_is_an_error() {
    let server = MockServer::start().await;
    expect_body(&server, json!({}), json_response("error_in_200.json")).await;
    let e = provider(&server).model("m").generate(Request::user("hi")).await.expect_err("error body");
    assert_eq!(e.kind, ErrorKind::Transient);
    assert_eq!(e.status, Some(502));
    assert!(e.message.contains("Provider returned error"), "{e}");
}

#[tokio::test]
async fn garbage_200_body_is_decode_error() {
    let server = MockServer::start().await;
    expect_body(
        &server,
        json!({}),
        ResponseTemplate::new(200).set_body_raw("<html>gateway</html>", "text/html"),
    )
    .await;
    let e = provider(&server).model("m").generate(Request::user("hi")).await.expect_err("decode");
    assert_eq!(e.kind, ErrorKind::Decode);
    let server = MockServer::start().await;
    expect_body(
        &server,
        json!({}),
        ResponseTemplate::new(200).set_body_json(json!({ "object": "chat.completion" })),
    )
    .await;
    let e = provider(&server).model("m").generate(Request::user("hi")).await.expect_err("decode");
    assert_eq!(e.kind, ErrorKind::Decode);
}

#[tokio::test]
async fn unexpressible_request_is_unsupported_before_any_io() {
    let server = MockServer::start().await;
    let request = Request {
        messages: vec![Message {
            role: Role::Assistant,
            parts: vec![Part::Image { mime: "image/png".into(), data: vec![1, 2, 3] }],
        }],
        ..Request::default()
    };
    let e = provider(&server).model("m").generate(request).await.expect_err("unsupported");
    assert_eq!(e.kind, ErrorKind::Unsupported);
    assert!(server.received_requests().await.expect("recording on").is_empty());
}
