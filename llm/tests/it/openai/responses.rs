//! Non-streamed responses from recorded OpenAI, llama.cpp and vLLM bodies.

use super::*;

#[tokio::test]
async fn text_response_with_cached_and_reasoning_usage() {
    let server = MockServer::start().await;
    expect_body(&server, json!({ "model": "gpt-4o" }), json_response("chat_text.json")).await;
    let response =
        provider(&server).model("gpt-4o").generate(Request::user("Capital?")).await.expect("generate");
    assert_eq!(response.text(), "The capital of France is Paris.");
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert_eq!(response.provider, "local");
    // The answering model, as the server reports it, not the alias requested.
    assert_eq!(response.model, "gpt-4o-2024-08-06");
    assert_eq!(response.usage.input_tokens, 1117);
    assert_eq!(response.usage.output_tokens, 46);
    assert_eq!(response.usage.cache_read_tokens, 1024);
    assert_eq!(response.usage.reasoning_tokens, 32);
    assert_eq!(response.usage.cache_write_tokens, 0);
    assert!(response.tool_calls().is_empty());
}

#[tokio::test]
async fn llamacpp_response_ignores_timings_and_reasoning_content() {
    let server = MockServer::start().await;
    expect_body(&server, json!({}), json_response("llamacpp_text.json")).await;
    let response = provider(&server).model("qwen3").generate(Request::user("hi")).await.expect("generate");
    assert_eq!(response.text(), "Hello! How can I help you today?");
    assert_eq!(response.model, "qwen3-0.6b-q8_0.gguf");
    assert_eq!(response.usage.input_tokens, 14);
    assert_eq!(response.usage.output_tokens, 27);
    assert_eq!(response.usage.cache_read_tokens, 9);
}

#[tokio::test]
async fn parallel_tool_calls_response() {
    let server = MockServer::start().await;
    expect_body(&server, json!({}), json_response("chat_tool_calls.json")).await;
    let request = Request { tools: vec![weather_tool()], ..Request::user("Plan my day in Paris") };
    let response = provider(&server).model("gpt-4.1-mini").generate(request).await.expect("generate");
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    assert_eq!(response.text(), "");
    let calls = response.tool_calls();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0].id, "call_Vx2dQmL0bq8XbUzd0eYy1GkP");
    assert_eq!(calls[0].name, "get_weather");
    assert_eq!(calls[0].args, json!({ "city": "Paris", "unit": "celsius" }));
    assert_eq!(calls[1].name, "get_time");
    assert_eq!(calls[1].args, json!({ "timezone": "Europe/Paris" }));
    // Truncated arguments stay raw so the caller can report them back; the missing id is
    // synthesised and distinct from the others.
    assert_eq!(calls[2].name, "search");
    assert_eq!(calls[2].args, Value::String("{\"query\": \"paris events".into()));
    assert!(!calls[2].id.is_empty());
    assert_ne!(calls[2].id, calls[0].id);
    assert_ne!(calls[2].id, calls[1].id);
}

#[tokio::test]
async fn unknown_finish_reason_is_other() {
    let server = MockServer::start().await;
    expect_body(&server, json!({}), json_response("vllm_unknown_finish.json")).await;
    let response = provider(&server).model("qwen2.5").generate(Request::user("hi")).await.expect("generate");
    assert_eq!(response.finish_reason, FinishReason::Other("abort".into()));
    assert_eq!(response.text(), "The answer was cut");
    assert_eq!(response.model, "Qwen/Qwen2.5-7B-Instruct");
    assert_eq!(response.usage.output_tokens, 4);
}

#[tokio::test]
async fn capabilities_default_unknown_and_overridable() {
    let server = MockServer::start().await;
    let p = provider(&server);
    assert_eq!(p.model("any").capabilities(), Capabilities::UNKNOWN);
    let vision = Capabilities { vision: Some(true), ..Capabilities::UNKNOWN };
    let text_only = Capabilities { vision: Some(false), ..Capabilities::UNKNOWN };
    let mut options = OpenAiOptions { capabilities: text_only, ..OpenAiOptions::default() };
    options.model_capabilities.insert("llava".into(), vision);
    let p = p.with_options(options);
    assert_eq!(p.model("llava").capabilities(), vision);
    assert_eq!(p.model("qwen3").capabilities(), text_only);
}
