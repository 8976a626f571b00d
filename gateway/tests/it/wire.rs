//! Every client dialect through the gateway to scripted OpenAI and Anthropic upstreams: whole
//! and streamed answers, tool calls, failover before the first byte, a stream that breaks,
//! unknown models, and the speculative switch.

use serde_json::{Value, json};

use crate::support::*;
use crate::tcp_stub::{Step, Stub, send};
use executus_gateway::ServeConfig;

#[tokio::test]
async fn chat_whole_and_streamed_through_an_openai_upstream() {
    let seen = Seen::default();
    let s = seen.clone();
    let stub = Stub::route(move |r| {
        s.push(r);
        Answer {
            text: "Hello there".into(),
            calls: vec![("call_1".into(), "read".into(), json!({"path": "a.txt"}))],
        }
        .openai(r)
    })
    .await;
    let registry = registry();
    add_openai(&registry, "mock", &stub);
    let gw = Gw::start(ServeConfig::default(), registry).await;

    let response = gw.post("/v1/chat/completions", &chat("mock/m1", false)).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["x-executus-served-by"], "mock/m1");
    assert!(headers["x-executus-session"].to_str().unwrap().starts_with("fp:"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "mock/m1");
    assert_eq!(body["choices"][0]["message"]["content"], "Hello there");
    assert_eq!(
        body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        "{\"path\":\"a.txt\"}"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(body["usage"]["total_tokens"], 17);

    let response = gw.post("/v1/chat/completions", &chat("mock/m1", true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = sse_events(&response.text().await.unwrap());
    let text: String =
        events.iter().filter_map(|(_, d)| d["choices"].get(0)?["delta"]["content"].as_str()).collect();
    assert_eq!(text, "Hello there");
    let calls: Vec<&Value> =
        events.iter().filter_map(|(_, d)| d["choices"].get(0)?["delta"].get("tool_calls")).collect();
    assert_eq!(calls.len(), 1, "the call arrives whole, in one chunk");
    assert_eq!(calls[0][0]["function"]["arguments"], "{\"path\":\"a.txt\"}");
    assert!(events.iter().any(|(_, d)| d["usage"]["total_tokens"] == 17), "include_usage is honoured");
    assert_eq!(events.last().unwrap().1, Value::String("[DONE]".into()));

    let heads = seen.heads();
    assert!(
        heads.iter().all(|h| h.contains("Bearer sk-upstream-secret")),
        "the upstream gets the gateway's own key"
    );
    let bodies = seen.bodies();
    assert_eq!(bodies[0]["model"], "m1");
    assert_eq!(bodies[1]["stream"], true);
}

#[tokio::test]
async fn anthropic_and_responses_clients_reach_an_openai_upstream() {
    let stub = Stub::route(|r| Answer::text("Hi from upstream").openai(r)).await;
    let registry = registry();
    add_openai(&registry, "mock", &stub);
    let gw = Gw::start(ServeConfig::default(), registry).await;

    let messages =
        json!({"model": "mock/m", "max_tokens": 100, "messages": [{"role": "user", "content": "hello"}]});
    let body: Value = gw.post("/v1/messages?beta=true", &messages).await.json().await.unwrap();
    assert_eq!(body["type"], "message");
    assert_eq!(body["content"][0]["text"], "Hi from upstream");
    assert_eq!(body["stop_reason"], "end_turn");

    let mut streamed = messages.clone();
    streamed["stream"] = json!(true);
    let events = sse_events(&gw.post("/v1/messages", &streamed).await.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_deref().unwrap_or("")).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.last(), Some(&"message_stop"));
    let text: String = events.iter().filter_map(|(_, d)| d["delta"]["text"].as_str()).collect();
    assert_eq!(text, "Hi from upstream");

    let responses = json!({"model": "mock/m", "input": "hello", "stream": true, "store": false});
    let events = sse_events(&gw.post("/v1/responses", &responses).await.text().await.unwrap());
    assert_eq!(events.first().unwrap().0.as_deref(), Some("response.created"));
    let done = &events.last().unwrap().1;
    assert_eq!(done["type"], "response.completed");
    assert_eq!(done["response"]["output"][0]["content"][0]["text"], "Hi from upstream");
}

#[tokio::test]
async fn an_openai_client_reaches_an_anthropic_upstream_with_tools() {
    let seen = Seen::default();
    let s = seen.clone();
    let stub = Stub::route(move |r| {
        s.push(r);
        Answer {
            text: "Let me look.".into(),
            calls: vec![("toolu_1".into(), "read".into(), json!({"path": "b"}))],
        }
        .anthropic(r)
    })
    .await;
    let registry = registry();
    add_anthropic(&registry, "claude", &stub);
    let gw = Gw::start(ServeConfig::default(), registry).await;
    let request = json!({
        "model": "claude/sonnet",
        "stream": true,
        "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "read b"}],
        "tools": [{"type": "function", "function": {"name": "read", "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}}]
    });
    let events = sse_events(&gw.post("/v1/chat/completions", &request).await.text().await.unwrap());
    let call = events.iter().find_map(|(_, d)| d["choices"].get(0)?["delta"].get("tool_calls")).unwrap();
    assert_eq!(call[0]["id"], "toolu_1");
    assert_eq!(call[0]["function"]["arguments"], "{\"path\":\"b\"}");
    let upstream = &seen.bodies()[0];
    assert_eq!(upstream["system"], "sys");
    assert_eq!(upstream["tools"][0]["name"], "read");
    assert!(seen.heads()[0].contains("x-api-key: sk-ant-upstream-secret"));
}

#[tokio::test]
async fn failover_before_the_first_byte_is_invisible() {
    let dead = Stub::route(|_| json_reply(500, &json!({"error": {"message": "boom"}}))).await;
    let alive = Stub::route(|r| Answer::text("from b").openai(r)).await;
    let registry = registry();
    add_openai(&registry, "a", &dead);
    add_openai(&registry, "b", &alive);
    registry.set_alias("fast", "a/m, b/m").unwrap();
    let gw = Gw::start(ServeConfig::default(), registry).await;
    for stream in [false, true] {
        let response = gw.post("/v1/chat/completions", &chat("fast", stream)).await;
        assert_eq!(response.status(), 200, "stream={stream}");
        assert_eq!(response.headers()["x-executus-served-by"], "b/m");
        let body = response.text().await.unwrap();
        let text: String = if stream {
            sse_events(&body)
                .iter()
                .filter_map(|(_, d)| d["choices"].get(0)?["delta"]["content"].as_str().map(str::to_owned))
                .collect()
        } else {
            serde_json::from_str::<Value>(&body).unwrap()["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(text, "from b");
    }
    let metrics = gw.client().get(format!("{}/metrics", gw.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("executus_gateway_failovers_total 2"), "{metrics}");
}

#[tokio::test]
async fn a_stream_that_breaks_before_output_is_reissued_and_after_output_ends_with_an_error_event() {
    // Target a: a usage chunk (an event, so the chain has committed to it), then a reset.
    let broken_early = Stub::route(|_| {
        vec![
            send("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"),
            send(format!(
                "data: {}\n\n",
                json!({"id": "x", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 0}})
            )),
            Step::Reset,
        ]
    })
    .await;
    let alive = Stub::route(|r| Answer::text("second target").openai(r)).await;
    // Target c: text, then a reset.
    let broken_late = Stub::route(|_| {
        vec![
            send("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"),
            send(format!(
                "data: {}\n\n",
                json!({"id": "x", "choices": [{"index": 0, "delta": {"content": "partial"}}]})
            )),
            Step::Reset,
        ]
    })
    .await;
    let registry = registry();
    add_openai(&registry, "a", &broken_early);
    add_openai(&registry, "b", &alive);
    add_openai(&registry, "c", &broken_late);
    registry.set_alias("early", "a/m, b/m").unwrap();
    registry.set_alias("late", "c/m, b/m").unwrap();
    let gw = Gw::start(ServeConfig::default(), registry).await;

    let body = gw.post("/v1/chat/completions", &chat("early", true)).await.text().await.unwrap();
    let events = sse_events(&body);
    let text: String =
        events.iter().filter_map(|(_, d)| d["choices"].get(0)?["delta"]["content"].as_str()).collect();
    assert_eq!(text, "second target");
    assert_eq!(events.last().unwrap().1, Value::String("[DONE]".into()), "one coherent stream");

    for (path, request) in [
        ("/v1/chat/completions", chat("late", true)),
        (
            "/v1/messages",
            json!({"model": "late", "max_tokens": 50, "stream": true, "messages": [{"role": "user", "content": "x"}]}),
        ),
    ] {
        let response = gw.post(path, &request).await;
        assert_eq!(response.status(), 200);
        let events = sse_events(&response.text().await.unwrap());
        let last = &events.last().unwrap();
        if path.contains("messages") {
            assert_eq!(last.0.as_deref(), Some("error"), "{events:?}");
            assert_eq!(last.1["error"]["type"], "api_error");
        } else {
            assert!(last.1["error"]["message"].as_str().is_some(), "{events:?}");
        }
        assert!(events.iter().any(|(_, d)| d.to_string().contains("partial")), "what was sent stays sent");
    }
}

#[tokio::test]
async fn unknown_models_are_404_in_the_clients_dialect() {
    let gw = Gw::start(ServeConfig::default(), registry()).await;
    let response = gw.post("/v1/chat/completions", &chat("nope", false)).await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "not_found_error");
    assert!(body["error"]["message"].as_str().unwrap().contains("nope"));
    let messages =
        json!({"model": "nope/x", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]});
    let response = gw.post("/v1/messages", &messages).await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "not_found_error");
    let agent = gw.post("/v1/chat/completions", &chat("agent:reviewer", false)).await;
    assert_eq!(agent.status(), 404);
}

#[tokio::test]
async fn speculative_decoding_is_switched_off_on_tool_turns_only() {
    let seen = Seen::default();
    let s = seen.clone();
    let stub = Stub::route(move |r| {
        s.push(r);
        Answer::text("ok").openai(r)
    })
    .await;
    let registry = registry();
    add_openai(&registry, "llama", &stub);
    let config = ServeConfig { speculative_off_on_tool_turns: true, ..ServeConfig::default() };
    let gw = Gw::start_with(config, registry, |b| b.speculative_providers(["llama".to_owned()])).await;
    let mut with_tools = chat("llama/m", false);
    with_tools["tools"] =
        json!([{"type": "function", "function": {"name": "t", "parameters": {"type": "object"}}}]);
    let response = gw.post("/v1/chat/completions", &with_tools).await;
    assert!(response.headers()["x-executus-applied-policies"].to_str().unwrap().contains("speculative-off"));
    gw.post("/v1/chat/completions", &chat("llama/m", false)).await;
    let bodies = seen.bodies();
    assert_eq!(bodies[0]["speculative.n_max"], 0);
    assert!(bodies[1].get("speculative.n_max").is_none(), "no tools, no switch");
}
