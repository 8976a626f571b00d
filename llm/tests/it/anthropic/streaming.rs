//! Streamed responses: the SSE parser against real-format event streams.

use super::*;

#[tokio::test]
async fn stream_text_deltas_collected() {
    let server = MockServer::start().await;
    expect_body(&server, json!({"stream": true, "max_tokens": 4096}), sse_fixture("stream_text.sse")).await;
    let mut stream = model(&server).stream(Request::user("Hi")).await.expect("stream");
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
    expect_body(&server, json!({"stream": true}), sse_fixture("stream_text.sse")).await;
    let stream = model(&server).stream(Request::user("Hi")).await.expect("stream");
    let response = collect(stream).await.expect("collect");
    assert_eq!(response.text(), "Hello, world!");
    assert_eq!(response.provider, "claude");
}

#[tokio::test]
async fn stream_usage_from_message_start_and_message_delta() {
    let server = MockServer::start().await;
    expect_body(&server, json!({"stream": true}), sse_fixture("stream_text.sse")).await;
    let stream = model(&server).stream(Request::user("Hi")).await.expect("stream");
    let usage = collect(stream).await.expect("collect").usage;
    assert_eq!(usage.input_tokens, 25, "from message_start");
    assert_eq!(usage.cache_write_tokens, 100, "from message_start");
    assert_eq!(usage.cache_read_tokens, 1800, "from message_start");
    assert_eq!(usage.output_tokens, 15, "from message_delta (cumulative)");
}

#[tokio::test]
async fn stream_tool_use_assembled_from_input_json_delta() {
    let server = MockServer::start().await;
    expect_body(&server, json!({"stream": true}), sse_fixture("stream_tool_use.sse")).await;
    let request = Request { tools: vec![weather_tool(), time_tool()], ..Request::user("weather") };
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
    assert_eq!(fragments, r#"{"location": "San Francisco, CA", "unit": "fahrenheit"}"#);
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
    assert_eq!(calls[0].args, json!({"location": "San Francisco, CA", "unit": "fahrenheit"}));
    // Only an empty partial_json: the arguments are `{}`.
    assert_eq!(calls[1].name, "get_time");
    assert_eq!(calls[1].args, json!({}));
}

#[tokio::test]
async fn stream_thinking_is_reasoning_and_rides_on_the_tool_call() {
    let server = MockServer::start().await;
    expect_body(&server, json!({"stream": true}), sse_fixture("stream_thinking_tool_use.sse")).await;
    let request = Request {
        tools: vec![weather_tool()],
        reasoning_effort: Some(ReasoningEffort::Minimal),
        ..Request::user("weather")
    };
    let mut stream = model(&server).stream(request.clone()).await.expect("stream");
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
    expect_body(&server, json!({"stream": true}), sse_fixture("stream_overloaded.sse")).await;
    let stream = model(&server).stream(Request::user("Hi")).await.expect("stream");
    let failure = collect(stream).await.expect_err("the stream fails");
    assert_eq!(failure.error.kind, ErrorKind::Transient);
    assert!(failure.error.message.contains("overloaded_error"), "{}", failure.error);
    assert_eq!(failure.error.provider, "claude");
    assert_eq!(failure.error.model, MODEL);
    assert_eq!(failure.partial.text, "The first half of an answer");
    assert_eq!(failure.partial.usage.input_tokens, 30);
}

#[tokio::test]
async fn stream_truncated_before_message_stop_is_transient() {
    let server = MockServer::start().await;
    expect_body(&server, json!({"stream": true}), sse_fixture("stream_truncated.sse")).await;
    let mut stream = model(&server).stream(Request::user("Hi")).await.expect("stream");
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
    expect_body(&server, json!({"stream": true}), sse_fixture("stream_truncated.sse")).await;
    let stream = model(&server).stream(Request::user("Hi")).await.expect("stream");
    let failure = collect(stream).await.expect_err("truncated");
    assert_eq!(failure.error.kind, ErrorKind::Transient);
    assert_eq!(failure.partial.text, "Cut off in the mid");
}

#[tokio::test]
async fn stream_answered_whole_by_a_server_that_ignores_stream_true() {
    let server = MockServer::start().await;
    expect_body(&server, json!({"stream": true}), json_fixture("tool_use.json")).await;
    let stream = model(&server).stream(Request::user("both")).await.expect("stream");
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
    expect_body(&server, json!({}), ResponseTemplate::new(200).set_body_raw(body, "text/event-stream")).await;
    let stream = model(&server).stream(Request::user("Hi")).await.expect("stream");
    let failure = collect(stream).await.expect_err("decode error");
    assert_eq!(failure.error.kind, ErrorKind::Decode);
}
