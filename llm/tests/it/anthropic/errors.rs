//! HTTP errors and their classification; the key never shows.

use super::*;

async fn error_with(template: ResponseTemplate) -> (executus_llm::Error, executus_llm::Error) {
    let server = MockServer::start().await;
    Mock::given(method("POST")).and(path("/v1/messages")).respond_with(template).mount(&server).await;
    let model = model(&server);
    let whole = model.generate(Request::user("Hi")).await.expect_err("generate fails");
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
    let (whole, streamed) = error_with(anthropic_error(529, "overloaded_error", "Overloaded")).await;
    for e in [whole, streamed] {
        assert_eq!(e.kind, ErrorKind::Transient);
        assert_eq!(e.status, Some(529));
        assert_eq!(e.message, "overloaded_error: Overloaded");
        assert_eq!((e.provider.as_str(), e.model.as_str()), ("claude", MODEL));
    }
}

#[tokio::test]
async fn error_429_carries_retry_after() {
    let template =
        anthropic_error(429, "rate_limit_error", "Number of requests has exceeded your rate limit")
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
    let (whole, streamed) =
        error_with(anthropic_error(401, "authentication_error", "invalid x-api-key")).await;
    for e in [whole, streamed] {
        assert_eq!(e.kind, ErrorKind::Permanent);
        assert_eq!(e.status, Some(401));
    }
}

#[tokio::test]
async fn error_404_unknown_model_is_not_found() {
    let (whole, streamed) =
        error_with(anthropic_error(404, "not_found_error", "model: claude-sonnet-4-5")).await;
    for e in [whole, streamed] {
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert_eq!(e.status, Some(404));
        assert_eq!(e.message, "not_found_error: model: claude-sonnet-4-5");
    }
}

#[tokio::test]
async fn error_body_echoing_the_key_never_shows_it() {
    let message = format!("invalid x-api-key: {KEY} is not a valid key");
    let (whole, streamed) = error_with(anthropic_error(401, "authentication_error", &message)).await;
    for e in [whole, streamed] {
        assert_eq!(e.kind, ErrorKind::Permanent);
        assert!(!e.to_string().contains(KEY), "Display leaks the key: {e}");
        assert!(!format!("{e:?}").contains(KEY), "Debug leaks the key: {e:?}");
        assert!(e.message.contains("[redacted]"), "{e}");
    }
    // Nor does the provider's or model's Debug.
    let provider = Anthropic::new(ProviderConfig::new("claude", "http://127.0.0.1:9").with_key(KEY));
    assert!(!format!("{provider:?}").contains(KEY));
    assert!(!format!("{:?}", provider.model(MODEL)).contains(KEY));
}

#[tokio::test]
async fn error_event_in_a_200_stream_that_is_permanent() {
    let server = MockServer::start().await;
    let body = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"prompt is too long\"}}\n\n";
    expect_body(&server, json!({}), ResponseTemplate::new(200).set_body_raw(body, "text/event-stream")).await;
    let stream = model(&server).stream(Request::user("Hi")).await.expect("stream");
    let failure = collect(stream).await.expect_err("error event");
    assert_eq!(failure.error.kind, ErrorKind::Permanent);
    assert_eq!(failure.error.message, "invalid_request_error: prompt is too long");
}

#[tokio::test]
async fn connection_refused_is_transient() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("bind").port();
    let base = format!("http://127.0.0.1:{port}");
    let provider = Anthropic::new(ProviderConfig::new("claude", base).with_key(KEY));
    let error = provider.model(MODEL).generate(Request::user("Hi")).await.expect_err("refused");
    assert_eq!(error.kind, ErrorKind::Transient);
    assert!(!error.to_string().contains(KEY));
}
