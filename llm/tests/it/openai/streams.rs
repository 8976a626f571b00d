//! Streamed responses: SSE fixtures collected and inspected event by event.

use super::*;

#[tokio::test]
async fn stream_text_deltas_and_usage_only_final_chunk() {
    let server = MockServer::start().await;
    expect_body(&server, json!({ "stream": true }), sse_response("stream_text.sse")).await;
    let model = provider(&server).model("gpt-4o-mini");

    let events: Vec<StreamEvent> =
        model.stream(Request::user("hi")).await.expect("stream").map(|e| e.expect("event")).collect().await;
    let texts: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["Hello", ", world", "!"]);
    // Usage comes from the chunk with empty `choices`, before `Done`, which is last.
    let n = events.len();
    assert!(
        matches!(&events[n - 2], StreamEvent::Usage { usage } if usage.input_tokens == 19 && usage.output_tokens == 4)
    );
    assert_eq!(
        events[n - 1],
        StreamEvent::Done {
            finish_reason: FinishReason::Stop,
            provider: "local".into(),
            model: "gpt-4o-mini-2024-07-18".into()
        }
    );
}

#[tokio::test]
async fn stream_collects_into_response() {
    let server = MockServer::start().await;
    expect_body(&server, json!({ "stream": true }), sse_response("stream_text.sse")).await;
    let stream = provider(&server).model("gpt-4o-mini").stream(Request::user("hi")).await.expect("stream");
    let response = collect(stream).await.expect("collect");
    assert_eq!(response.text(), "Hello, world!");
    assert_eq!(response.usage.input_tokens, 19);
    assert_eq!(response.usage.output_tokens, 4);
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert_eq!(response.provider, "local");
    assert_eq!(response.model, "gpt-4o-mini-2024-07-18");
}

#[tokio::test]
async fn stream_two_parallel_tool_calls_from_interleaved_deltas() {
    let server = MockServer::start().await;
    expect_body(&server, json!({ "stream": true }), sse_response("stream_parallel_tools.sse")).await;
    let request = Request { tools: vec![weather_tool()], ..Request::user("Paris and Tokyo?") };
    let events: Vec<StreamEvent> = provider(&server)
        .model("gpt-4.1-mini")
        .stream(request)
        .await
        .expect("stream")
        .map(|e| e.expect("event"))
        .collect()
        .await;

    // Deltas keep their index; the first fragment of each call names it.
    let deltas: Vec<(u32, Option<&str>, &str)> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCallDelta { index, id, args, .. } => {
                Some((*index, id.as_deref(), args.as_str()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(deltas[0], (0, Some("call_Paris01"), ""));
    assert!(deltas.contains(&(1, Some("call_Tokyo02"), "")));

    // Completed calls arrive (in index order) before Done.
    let completed: Vec<&ToolCall> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCall { call } => Some(call),
            _ => None,
        })
        .collect();
    assert_eq!(completed.len(), 2);
    assert_eq!(completed[0].id, "call_Paris01");
    assert_eq!(completed[0].args, json!({ "city": "Paris" }));
    assert_eq!(completed[1].id, "call_Tokyo02");
    assert_eq!(completed[1].args, json!({ "city": "Tokyo" }));
    assert!(matches!(events.last(), Some(StreamEvent::Done { finish_reason: FinishReason::ToolCalls, .. })));

    // The same stream collected.
    let server2 = MockServer::start().await;
    expect_body(&server2, json!({ "stream": true }), sse_response("stream_parallel_tools.sse")).await;
    let stream =
        provider(&server2).model("gpt-4.1-mini").stream(Request::user("again")).await.expect("stream");
    let response = collect(stream).await.expect("collect");
    let calls = response.tool_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!((calls[0].name.as_str(), &calls[0].args), ("get_weather", &json!({ "city": "Paris" })));
    assert_eq!((calls[1].name.as_str(), &calls[1].args), ("get_weather", &json!({ "city": "Tokyo" })));
    assert_eq!(response.usage.cache_read_tokens, 64);
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
}

#[tokio::test]
async fn llamacpp_stream_with_reasoning_and_timings() {
    let server = MockServer::start().await;
    expect_body(&server, json!({ "stream": true }), sse_response("stream_llamacpp_reasoning.sse")).await;
    let events: Vec<StreamEvent> = provider(&server)
        .model("qwen3")
        .stream(Request::user("hi"))
        .await
        .expect("stream")
        .map(|e| e.expect("event"))
        .collect()
        .await;
    let reasoning: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ReasoningDelta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(reasoning, "User says hi. Reply briefly.");
    let mut collector = executus_llm::Collector::new();
    for e in &events {
        collector.push(e);
    }
    let response = collector.finish("local", "qwen3").expect("done");
    // Reasoning is not part of the answer.
    assert_eq!(response.text(), "Hi there.");
    assert_eq!(response.usage.input_tokens, 11);
    assert_eq!(response.usage.output_tokens, 9);
    assert_eq!(response.model, "qwen3-0.6b-q8_0.gguf");
}

#[tokio::test]
async fn mid_stream_error_keeps_partial_text() {
    let server = MockServer::start().await;
    expect_body(&server, json!({ "stream": true }), sse_response("stream_midstream_error.sse")).await;
    let stream = provider(&server).model("qwen3").stream(Request::user("hi")).await.expect("stream");
    let failure = collect(stream).await.expect_err("the stream fails");
    assert_eq!(failure.error.kind, ErrorKind::Transient);
    assert!(failure.error.message.contains("out of memory while decoding"), "{}", failure.error);
    assert_eq!(failure.error.provider, "local");
    assert_eq!(failure.error.model, "qwen3");
    assert_eq!(failure.partial.text, "Hello, wor");
}

#[tokio::test]
async fn mid_stream_error_with_client_error_code_is_permanent() {
    let server = MockServer::start().await;
    let body = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n\n\
                data: {\"error\":{\"code\":400,\"message\":\"invalid grammar\",\"type\":\"invalid_request_error\"}}\n\n";
    expect_body(&server, json!({}), ResponseTemplate::new(200).set_body_raw(body, "text/event-stream")).await;
    let stream = provider(&server).model("qwen3").stream(Request::user("hi")).await.expect("stream");
    let failure = collect(stream).await.expect_err("the stream fails");
    assert_eq!(failure.error.kind, ErrorKind::Permanent);
    assert_eq!(failure.partial.text, "x");
}

#[tokio::test]
async fn stream_without_done_after_finish_reason_is_accepted() {
    let server = MockServer::start().await;
    let body = "data: {\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"}}]}\n\n\
                data: {\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n";
    expect_body(&server, json!({}), ResponseTemplate::new(200).set_body_raw(body, "text/event-stream")).await;
    let stream = provider(&server).model("m").stream(Request::user("hi")).await.expect("stream");
    let response = collect(stream).await.expect("accepted");
    assert_eq!(response.text(), "ok");
    assert_eq!(response.finish_reason, FinishReason::Length);
}

#[tokio::test]
async fn stream_without_finish_or_done_is_truncated() {
    let server = MockServer::start().await;
    let body = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"half an ans\"}}]}\n\n";
    expect_body(&server, json!({}), ResponseTemplate::new(200).set_body_raw(body, "text/event-stream")).await;
    let stream = provider(&server).model("m").stream(Request::user("hi")).await.expect("stream");
    let failure = collect(stream).await.expect_err("truncated");
    assert_eq!(failure.error.kind, ErrorKind::Transient);
    assert!(failure.error.message.contains("truncated"), "{}", failure.error);
    assert_eq!(failure.partial.text, "half an ans");
}

#[tokio::test]
async fn malformed_json_in_stream_is_decode_error() {
    let server = MockServer::start().await;
    let body = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n\
                data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\n\n\
                data: [DONE]\n\n";
    expect_body(&server, json!({}), ResponseTemplate::new(200).set_body_raw(body, "text/event-stream")).await;
    let stream = provider(&server).model("m").stream(Request::user("hi")).await.expect("stream");
    let failure = collect(stream).await.expect_err("decode");
    assert_eq!(failure.error.kind, ErrorKind::Decode);
    assert_eq!(failure.partial.text, "a");
}

#[tokio::test]
async fn stream_answered_with_a_whole_json_body_is_replayed() {
    let server = MockServer::start().await;
    expect_body(&server, json!({ "stream": true }), json_response("chat_text.json")).await;
    let stream = provider(&server).model("gpt-4o").stream(Request::user("hi")).await.expect("stream");
    let response = collect(stream).await.expect("collect");
    assert_eq!(response.text(), "The capital of France is Paris.");
    assert_eq!(response.usage.cache_read_tokens, 1024);
    assert_eq!(response.model, "gpt-4o-2024-08-06");

    // ...and an error object in such a body is returned before any event.
    let server = MockServer::start().await;
    expect_body(&server, json!({ "stream": true }), json_response("error_in_200.json")).await;
    let e = provider(&server).model("m").stream(Request::user("hi")).await.err().expect("error body");
    assert_eq!((e.kind, e.status), (ErrorKind::Transient, Some(502)));
}

#[tokio::test]
async fn stalled_stream_ends_with_transient_idle_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // A raw server that sends headers and one event, then goes silent with the socket open.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut buf = vec![0u8; 64 << 10];
        let _ = socket.read(&mut buf).await;
        let event = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"partial\"}}]}\n\n";
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{event}\r\n",
            event.len()
        );
        socket.write_all(head.as_bytes()).await.expect("write");
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(socket);
    });
    let http = executus_llm::HttpOptions { idle_timeout: Duration::from_millis(200), ..Default::default() };
    let p = OpenAi::new(ProviderConfig::new("local", format!("http://{addr}/v1")).with_http(http));
    let stream = p.model("m").stream(Request::user("hi")).await.expect("headers arrive");
    // A hang guard; which timer ended the stream is in the error (the server would close it
    // after 10 s anyway, with a different error).
    let failure = tokio::time::timeout(Duration::from_secs(60), collect(stream))
        .await
        .expect("no hang")
        .expect_err("idle timeout");
    assert_eq!(failure.error.kind, ErrorKind::Transient);
    assert!(failure.error.message.contains("idle timeout"), "{}", failure.error);
    assert_eq!(failure.partial.text, "partial");
    server.abort();
}
