//! Whole (non-streamed) responses.

use super::*;

#[tokio::test]
async fn response_text_usage_and_model_from_the_server() {
    let server = MockServer::start().await;
    expect_body(&server, json!({}), json_fixture("text.json")).await;
    let response = model(&server).generate(Request::user("Hello")).await.expect("generate");
    assert_eq!(response.message.role, Role::Assistant);
    // Adjacent text blocks form one part.
    assert_eq!(response.message.parts, vec![Part::Text { text: "Hello! How can I help you today?".into() }]);
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert_eq!(response.provider, "claude");
    assert_eq!(response.model, "claude-sonnet-4-5-20250929");
    assert_eq!((response.usage.input_tokens, response.usage.output_tokens), (12, 9));
}

#[tokio::test]
async fn response_two_tool_use_blocks() {
    let server = MockServer::start().await;
    expect_body(&server, json!({}), json_fixture("tool_use.json")).await;
    let request = Request { tools: vec![weather_tool(), time_tool()], ..Request::user("both") };
    let response = model(&server).generate(request).await.expect("generate");
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    assert_eq!(response.text(), "I'll check the weather in both cities.");
    let calls = response.tool_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].id, "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(calls[0].name, "get_weather");
    assert_eq!(calls[0].args, json!({"location": "Paris, France", "unit": "celsius"}));
    assert_eq!(calls[0].signature, None);
    assert_eq!(calls[1].id, "toolu_01B18r01rx01mr028946mr0");
    assert_eq!(calls[1].name, "get_time");
    assert_eq!(calls[1].args, json!({"timezone": "Asia/Tokyo"}));
}

#[tokio::test]
async fn response_usage_with_cache_read_and_write_tokens() {
    let server = MockServer::start().await;
    expect_body(&server, json!({}), json_fixture("cached.json")).await;
    let response = model(&server).generate(Request::user("q")).await.expect("generate");
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
    let response = model(&server).generate(Request::user("q")).await.expect("generate");
    assert_eq!(response.finish_reason, FinishReason::Other("pause_turn".into()));
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
    let first = model(&server).generate(request.clone()).await.expect("generate");
    assert_eq!(first.message.parts.len(), 1, "only the tool call: {:?}", first.message.parts);
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
