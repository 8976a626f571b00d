use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::error::{Attempt, Error, ErrorKind};
use crate::types::{FinishReason, Message, Part, ReasoningEffort, Role, ToolCall, ToolChoice, Usage};

/// `(event name, data JSON)` for each SSE event in `bytes` (`[DONE]` as a string).
fn events(bytes: &[u8]) -> Vec<(Option<String>, Value)> {
    let text = std::str::from_utf8(bytes).unwrap();
    assert!(text.is_empty() || text.ends_with("\n\n"), "every event ends with a blank line: {text:?}");
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let mut name = None;
            let mut data = None;
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    assert!(data.is_none(), "one data line per event");
                    data = Some(serde_json::from_str(d).unwrap_or_else(|_| Value::String(d.to_owned())));
                } else {
                    panic!("unexpected line {line:?}");
                }
            }
            (name, data.unwrap())
        })
        .collect()
}

fn response(parts: Vec<Part>, finish: FinishReason) -> Response {
    Response {
        message: Message { role: Role::Assistant, parts },
        usage: Usage { input_tokens: 11, output_tokens: 7, cache_read_tokens: 3, ..Usage::default() },
        finish_reason: finish,
        provider: "up".into(),
        model: "real-model".into(),
    }
}

fn call(id: &str, name: &str, args: Value) -> ToolCall {
    ToolCall { id: id.into(), name: name.into(), args, signature: None }
}

fn stream(
    dialect: Dialect,
    request: &ClientRequest,
    events_in: &[StreamEvent],
) -> Vec<(Option<String>, Value)> {
    let mut encoder = dialect.encoder(request);
    let mut out = Vec::new();
    encoder.start(&mut out);
    for e in events_in {
        encoder.event(e, &mut out);
    }
    assert!(encoder.is_finished());
    events(&out)
}

fn script() -> Vec<StreamEvent> {
    vec![
        StreamEvent::TextDelta { text: "Hel".into() },
        StreamEvent::ReasoningDelta { text: "hmm".into() },
        StreamEvent::TextDelta { text: "lo".into() },
        StreamEvent::ToolCallDelta {
            index: 0,
            id: Some("c1".into()),
            name: Some("read".into()),
            args: "{".into(),
        },
        StreamEvent::ToolCall { call: call("c1", "read", json!({"path": "a.txt"})) },
        StreamEvent::Usage { usage: Usage { input_tokens: 5, output_tokens: 9, ..Usage::default() } },
        StreamEvent::Done {
            finish_reason: FinishReason::ToolCalls,
            provider: "up".into(),
            model: "m".into(),
        },
    ]
}

// ---------------------------------------------------------------- Chat Completions

#[test]
fn chat_request_decodes_every_field() {
    let body = json!({
        "model": "fast",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": [{"type": "text", "text": "use tools"}]},
            {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAEC"}}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "read", "arguments": "{\"path\":\"a\"}"}},
                {"id": "c2", "type": "function", "function": {"name": "bad", "arguments": "not json"}}
            ]},
            {"role": "tool", "tool_call_id": "c1", "content": "A"},
            {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "B"}]},
            {"role": "user", "content": "go on"}
        ],
        "tools": [{"type": "function", "function": {"name": "read", "description": "d", "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "read"}},
        "response_format": {"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": true}},
        "stream": true, "stream_options": {"include_usage": true},
        "max_tokens": 10, "max_completion_tokens": 20, "temperature": 0.5, "stop": "END", "seed": 3,
        "reasoning_effort": "low", "logit_bias": {"90": 50}, "top_p": 0.9, "n": 1,
        "metadata": {"user": "x"}
    });
    let r = chat::decode(body.to_string().as_bytes()).unwrap();
    assert_eq!(r.model, "fast");
    assert!(r.stream && r.include_usage);
    assert_eq!(r.metadata, Some(json!({"user": "x"})));
    let q = &r.request;
    assert_eq!(q.system.as_deref(), Some("be brief\n\nuse tools"));
    assert_eq!(q.messages.len(), 4);
    assert_eq!(q.messages[0].parts[1], Part::Image { mime: "image/png".into(), data: vec![0, 1, 2] });
    let calls: Vec<_> = q.messages[1].tool_calls().collect();
    assert_eq!(calls[0].args, json!({"path": "a"}));
    assert_eq!(calls[1].args, Value::String("not json".into()), "unparseable arguments are kept verbatim");
    assert_eq!(q.messages[2].role, Role::Tool);
    assert_eq!(q.messages[2].parts.len(), 2, "consecutive tool messages share one canonical message");
    match &q.messages[2].parts[1] {
        Part::ToolResult(r) => assert_eq!((r.name.as_str(), r.content.as_str()), ("bad", "B")),
        other => panic!("{other:?}"),
    }
    assert_eq!(q.tool_choice, ToolChoice::Tool("read".into()));
    assert_eq!(q.response_schema.as_ref().map(|s| (s.name.as_str(), s.strict)), Some(("out", true)));
    assert_eq!(q.max_tokens, Some(20), "max_completion_tokens wins");
    assert_eq!((q.temperature, q.seed), (Some(0.5), Some(3)));
    assert_eq!(q.stop, vec!["END".to_owned()]);
    assert_eq!(q.reasoning_effort, Some(ReasoningEffort::Low));
    assert_eq!(q.extra.get("logit_bias"), Some(&json!({"90": 50})));
    assert_eq!(q.extra.get("top_p"), Some(&json!(0.9)));
    assert!(!q.extra.contains_key("n"), "only sampling settings pass through");
}

#[test]
fn chat_request_errors_name_the_field() {
    let cases: &[(&str, &str)] = &[
        ("not json", "not a JSON object"),
        ("[1,2]", "not a JSON object"),
        (r#"{"messages": []}"#, "missing required field `model`"),
        (r#"{"model": "m"}"#, "missing required field `messages`"),
        (r#"{"model": "m", "messages": [{"role": "wizard", "content": "x"}]}"#, "messages[0].role"),
        (r#"{"model": "m", "messages": [{"role": "tool", "content": "x"}]}"#, "messages[0].tool_call_id"),
        (r#"{"model": "m", "messages": [{"role": "user", "content": 5}]}"#, "messages[0].content"),
        (
            r#"{"model": "m", "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]}]}"#,
            "messages[1].tool_calls[0].id",
        ),
        (
            r#"{"model": "m", "messages": [{"role": "user", "content": ["a", {"type": "text", "text": "b"}, 7]}]}"#,
            "messages[0].content[0]",
        ),
        (r#"{"model": "m", "messages": [], "tools": [{"type": "function"}]}"#, "tools[0].function"),
        (
            r#"{"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}"#,
            "images by URL",
        ),
        (r#"{"model": "m", "messages": [], "tool_choice": "sometimes"}"#, "tool_choice"),
        (r#"{"model": "m", "messages": [], "max_tokens": -1}"#, "not a JSON object"),
        (r#"{"model": "m", "messages": [], "reasoning_effort": "extreme"}"#, "reasoning_effort"),
    ];
    for (body, expected) in cases {
        let err = chat::decode(body.as_bytes()).unwrap_err().to_string();
        assert!(err.contains(expected), "{body}: {err}");
    }
}

#[test]
fn chat_response_encodes_the_completion_shape() {
    let request = ClientRequest::new(Dialect::Chat, "fast", Request::default());
    let text = response(vec![Part::Text { text: "hi".into() }], FinishReason::Stop);
    let body: Value = serde_json::from_slice(&Dialect::Chat.encode(&request, &text)).unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "fast", "the model the client asked for");
    assert_eq!(body["choices"][0]["message"], json!({"role": "assistant", "content": "hi", "refusal": null}));
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["prompt_tokens"], 11);
    assert_eq!(body["usage"]["total_tokens"], 18);
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 3);

    let calls = response(vec![Part::ToolCall(call("c1", "read", json!({"p": 1})))], FinishReason::ToolCalls);
    let body: Value = serde_json::from_slice(&Dialect::Chat.encode(&request, &calls)).unwrap();
    let message = &body["choices"][0]["message"];
    assert_eq!(message["content"], Value::Null);
    assert_eq!(message["tool_calls"][0]["function"]["arguments"], "{\"p\":1}");
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
}

#[test]
fn chat_stream_sends_role_text_whole_calls_finish_usage_done() {
    let mut request = ClientRequest::new(Dialect::Chat, "fast", Request::default());
    request.include_usage = true;
    let out = stream(Dialect::Chat, &request, &script());
    assert!(out.iter().all(|(name, _)| name.is_none()), "Chat chunks have no event names");
    let deltas: Vec<&Value> =
        out.iter().filter_map(|(_, d)| d["choices"].get(0).map(|c| &c["delta"])).collect();
    assert_eq!(deltas[0]["role"], "assistant");
    assert_eq!(deltas[1]["content"], "Hel");
    assert_eq!(deltas[2]["reasoning_content"], "hmm");
    assert_eq!(deltas[3]["content"], "lo");
    assert_eq!(
        deltas[4]["tool_calls"][0],
        json!({"index": 0, "id": "c1", "type": "function", "function": {"name": "read", "arguments": "{\"path\":\"a.txt\"}"}})
    );
    assert_eq!(out[5].1["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(out[6].1["choices"], json!([]));
    assert_eq!(out[6].1["usage"]["completion_tokens"], 9);
    assert_eq!(out[7].1, Value::String("[DONE]".into()));
    assert_eq!(out.len(), 8);
    let ids: std::collections::HashSet<&str> =
        out[..7].iter().map(|(_, d)| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 1, "one id per stream");
}

#[test]
fn chat_stream_error_is_an_error_chunk() {
    let request = ClientRequest::new(Dialect::Chat, "fast", Request::default());
    let mut encoder = Dialect::Chat.encoder(&request);
    let mut out = Vec::new();
    encoder.event(&StreamEvent::TextDelta { text: "partial".into() }, &mut out);
    encoder.fail(&ApiError::new(ErrorClass::BadGateway, "upstream reset"), &mut out);
    encoder.event(&StreamEvent::TextDelta { text: "ignored".into() }, &mut out);
    let out = events(&out);
    assert_eq!(out.last().unwrap().1["error"]["message"], "upstream reset");
    assert_eq!(out.len(), 3);
    assert_eq!(encoder.text(), "partial");
}

// ---------------------------------------------------------------- Anthropic Messages

#[test]
fn messages_request_decodes_claude_code_shapes() {
    let body = json!({
        "model": "claude-sonnet",
        "max_tokens": 128000,
        "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "system", "content": "Today is 2026-01-01."},
            {"role": "user", "content": [{"type": "text", "text": "fix it"}, {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAEC"}}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "let me see", "signature": "sig1"},
                {"type": "text", "text": "Reading."},
                {"type": "tool_use", "id": "t1", "name": "Read", "input": {"file_path": "/a"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "line 1"}, {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}}], "is_error": true},
                {"type": "text", "text": "<system-reminder>x</system-reminder>"}
            ]}
        ],
        "tools": [
            {"name": "Read", "description": "read a file", "input_schema": {"type": "object"}},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
        ],
        "tool_choice": {"type": "any"},
        "thinking": {"type": "enabled", "budget_tokens": 4000},
        "stop_sequences": ["###"], "temperature": 1, "top_k": 40,
        "stream": true, "metadata": {"user_id": "device-123"},
        "context_management": {"edits": []}, "output_config": {"effort": "high", "format": {"type": "json_schema", "schema": {"type": "object"}}}
    });
    let r = messages::decode(body.to_string().as_bytes()).unwrap();
    let q = &r.request;
    assert_eq!(q.system.as_deref(), Some("You are Claude Code.\n\nToday is 2026-01-01."));
    assert!(q.prompt_caching, "cache_control turns prompt caching on");
    assert_eq!(q.messages.len(), 4);
    assert_eq!(q.messages[0].parts[1], Part::Image { mime: "image/png".into(), data: vec![0, 1, 2] });
    let assistant = &q.messages[1];
    assert_eq!(assistant.text(), "Reading.");
    let carried = assistant.tool_calls().next().unwrap().signature.clone().unwrap();
    assert!(carried.starts_with(crate::providers::anthropic::THINKING_SIGNATURE_PREFIX), "{carried}");
    assert_eq!(q.messages[2].role, Role::Tool, "results first");
    match &q.messages[2].parts[0] {
        Part::ToolResult(r) => {
            assert_eq!(r.name, "Read");
            assert!(r.is_error);
            assert!(r.content.starts_with("line 1\n[image (image/png) omitted"), "{}", r.content);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(q.messages[3].role, Role::User);
    assert_eq!(q.tools.len(), 1, "server tools without an input schema are left out");
    assert_eq!(q.tool_choice, ToolChoice::Required);
    assert_eq!(q.reasoning_effort, Some(ReasoningEffort::Medium));
    assert_eq!(q.max_tokens, Some(128_000));
    assert_eq!(q.extra.get("top_k"), Some(&json!(40)));
    assert_eq!(r.metadata, Some(json!({"user_id": "device-123"})));
    assert_eq!(q.response_schema.as_ref().map(|s| &s.schema), Some(&json!({"type": "object"})));
    assert!(r.stream);
}

#[test]
fn messages_request_errors_name_the_field() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"model": "m", "messages": [{"role": "user", "content": [{"type": "document"}]}]}"#,
            "messages[0].content[0]",
        ),
        (
            r#"{"model": "m", "messages": [{"role": "user", "content": [{"type": "tool_result"}]}]}"#,
            "tool_use_id",
        ),
        (r#"{"model": "m", "messages": [], "system": 4}"#, "system"),
        (
            r#"{"model": "m", "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": [{"type": "text", "text": "b"}, {"type": "tool_result", "tool_use_id": "t", "content": 3}]}]}"#,
            "messages[1].content[1].content",
        ),
        (r#"{"model": "m", "messages": [], "tools": [{"name": "x"}]}"#, "tools[0].input_schema"),
        (r#"{"model": "m", "messages": [], "tool_choice": {"type": "tool"}}"#, "tool_choice.name"),
        (
            r#"{"model": "m", "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "https://x"}}]}]}"#,
            "image source type url",
        ),
        (
            r#"{"model": "m", "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": "%%%"}}]}]}"#,
            "invalid base64",
        ),
    ];
    for (body, expected) in cases {
        let err = messages::decode(body.as_bytes()).unwrap_err().to_string();
        assert!(err.contains(expected), "{body}: {err}");
    }
}

#[test]
fn messages_response_carries_thinking_back_before_its_call() {
    let request = ClientRequest::new(Dialect::Messages, "claude", Request::default());
    let signature = crate::providers::anthropic::thinking::encode(vec![
        json!({"type": "thinking", "thinking": "t", "signature": "s"}),
    ]);
    let mut with_thinking = call("t1", "Read", Value::String("{broken".into()));
    with_thinking.signature = signature;
    let r = response(
        vec![Part::Text { text: "ok".into() }, Part::ToolCall(with_thinking)],
        FinishReason::ToolCalls,
    );
    let body: Value = serde_json::from_slice(&Dialect::Messages.encode(&request, &r)).unwrap();
    assert_eq!(body["type"], "message");
    assert_eq!(body["stop_reason"], "tool_use");
    let content = body["content"].as_array().unwrap();
    assert_eq!(content[0], json!({"type": "text", "text": "ok"}));
    assert_eq!(content[1], json!({"type": "thinking", "thinking": "t", "signature": "s"}));
    assert_eq!(content[2]["input"], json!({"_raw": "{broken"}), "tool input is always an object");
    assert_eq!(body["usage"]["cache_read_input_tokens"], 3);
}

#[test]
fn messages_stream_opens_and_closes_blocks_in_order() {
    let request = ClientRequest::new(Dialect::Messages, "claude", Request::default());
    let out = stream(Dialect::Messages, &request, &script());
    let names: Vec<&str> = out.iter().map(|(n, _)| n.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    for (name, data) in &out {
        assert_eq!(data["type"], name.as_deref().unwrap(), "the data's type matches the event name");
    }
    assert_eq!(out[0].1["message"]["model"], "claude");
    assert_eq!(out[1].1["index"], 0);
    assert_eq!(out[5].1["index"], 1);
    assert_eq!(out[5].1["content_block"]["type"], "tool_use");
    assert_eq!(out[6].1["delta"]["partial_json"], "{\"path\":\"a.txt\"}");
    assert_eq!(out[8].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(out[8].1["usage"]["output_tokens"], 9);
}

#[test]
fn messages_stream_error_event() {
    let request = ClientRequest::new(Dialect::Messages, "claude", Request::default());
    let mut encoder = Dialect::Messages.encoder(&request);
    let mut out = Vec::new();
    encoder.start(&mut out);
    encoder.fail(&ApiError::new(ErrorClass::Overloaded, "busy"), &mut out);
    let out = events(&out);
    assert_eq!(out[1].0.as_deref(), Some("error"));
    assert_eq!(out[1].1, json!({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}));
}

// ---------------------------------------------------------------- Responses API

#[test]
fn responses_request_decodes_codex_shapes() {
    let body = json!({
        "model": "probe-model",
        "instructions": "You are Codex.",
        "input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "sandbox: read-only"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "list files"}]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Listing."}]},
            {"type": "function_call", "call_id": "call_1", "name": "shell", "arguments": "{\"command\":[\"ls\"]}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "a\nb"},
            {"role": "user", "content": "thanks"}
        ],
        "tools": [
            {"type": "function", "name": "shell", "description": "run", "parameters": {"type": "object"}, "strict": false},
            {"type": "web_search"},
            {"type": "namespace", "name": "mcp", "tools": []}
        ],
        "tool_choice": "auto", "parallel_tool_calls": false,
        "reasoning": {"effort": "high", "summary": "auto"},
        "store": false, "stream": true, "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "abc", "text": {"format": {"type": "json_schema", "name": "o", "schema": {"type": "object"}}},
        "max_output_tokens": 50
    });
    let r = responses::decode(body.to_string().as_bytes()).unwrap();
    let q = &r.request;
    assert_eq!(q.system.as_deref(), Some("You are Codex.\n\nsandbox: read-only"));
    assert_eq!(q.messages.len(), 4);
    assert_eq!(q.messages[1].role, Role::Assistant);
    assert_eq!(q.messages[1].text(), "Listing.");
    assert_eq!(q.messages[1].tool_calls().next().unwrap().args, json!({"command": ["ls"]}));
    match &q.messages[2].parts[0] {
        Part::ToolResult(r) => {
            assert_eq!((r.id.as_str(), r.name.as_str(), r.content.as_str()), ("call_1", "shell", "a\nb"))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(q.tools.len(), 1);
    assert_eq!(q.reasoning_effort, Some(ReasoningEffort::High));
    assert_eq!(q.response_schema.as_ref().unwrap().name, "o");
    assert_eq!(q.max_tokens, Some(50));
    assert!(r.stream);

    let plain = responses::decode(br#"{"model": "m", "input": "hi"}"#).unwrap();
    assert_eq!(plain.request.messages, vec![Message::user("hi")]);
    // An error deep in the input names its place.
    let err = responses::decode(
        br#"{"model": "m", "input": [{"role": "user", "content": "a"}, {"role": "user", "content": [{"type": "input_text", "text": "b"}, {"type": "input_audio"}]}]}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("input[1].content[1]: content part type input_audio"), "{err}");
}

#[test]
fn responses_request_refuses_stored_state() {
    let err =
        responses::decode(br#"{"model": "m", "input": "hi", "previous_response_id": "resp_1"}"#).unwrap_err();
    assert!(err.to_string().contains("previous_response_id"), "{err}");
    let err = responses::decode(br#"{"model": "m", "input": [{"type": "item_reference", "id": "x"}]}"#)
        .unwrap_err();
    assert!(err.to_string().contains("item_reference"), "{err}");
    let err = responses::decode(br#"{"model": "m"}"#).unwrap_err();
    assert!(err.to_string().contains("input"), "{err}");
}

#[test]
fn responses_body_lists_output_items_and_usage() {
    let request = ClientRequest::new(Dialect::Responses, "probe", Request::default());
    let r = response(
        vec![Part::Text { text: "a".into() }, Part::ToolCall(call("call_9", "shell", json!({"c": 1})))],
        FinishReason::ToolCalls,
    );
    let body: Value = serde_json::from_slice(&Dialect::Responses.encode(&request, &r)).unwrap();
    assert_eq!(body["object"], "response");
    assert_eq!(body["status"], "completed");
    assert_eq!(body["output"][0]["content"][0]["text"], "a");
    assert_eq!(body["output"][1]["type"], "function_call");
    assert_eq!(body["output"][1]["call_id"], "call_9");
    assert_eq!(body["output"][1]["arguments"], "{\"c\":1}");
    assert_eq!(body["usage"]["input_tokens_details"]["cached_tokens"], 3);

    let cut = response(vec![Part::Text { text: "a".into() }], FinishReason::Length);
    let body: Value = serde_json::from_slice(&Dialect::Responses.encode(&request, &cut)).unwrap();
    assert_eq!(body["status"], "incomplete");
    assert_eq!(body["incomplete_details"]["reason"], "max_output_tokens");
}

#[test]
fn responses_stream_is_a_valid_typed_event_sequence() {
    let request = ClientRequest::new(Dialect::Responses, "probe", Request::default());
    let out = stream(Dialect::Responses, &request, &script());
    let names: Vec<&str> = out.iter().map(|(n, _)| n.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    for (i, (name, data)) in out.iter().enumerate() {
        assert_eq!(data["type"], name.as_deref().unwrap());
        assert_eq!(data["sequence_number"], i as u64);
    }
    assert_eq!(out[6].1["text"], "Hello");
    assert_eq!(out[9].1["output_index"], 1);
    assert_eq!(out[11].1["arguments"], "{\"path\":\"a.txt\"}");
    let done = &out[13].1["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"].as_array().unwrap().len(), 2);
    assert_eq!(done["usage"]["output_tokens"], 9);
    let ids: std::collections::HashSet<&str> =
        out.iter().filter_map(|(_, d)| d.get("response")).map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 1);
}

#[test]
fn responses_stream_failure_is_response_failed() {
    let request = ClientRequest::new(Dialect::Responses, "probe", Request::default());
    let mut encoder = Dialect::Responses.encoder(&request);
    let mut out = Vec::new();
    encoder.fail(&ApiError::new(ErrorClass::Unavailable, "no upstream"), &mut out);
    let out = events(&out);
    let last = &out.last().unwrap().1;
    assert_eq!(last["type"], "response.failed");
    assert_eq!(last["response"]["status"], "failed");
    assert_eq!(last["response"]["error"]["message"], "no upstream");
}

// ---------------------------------------------------------------- errors

#[test]
fn error_bodies_per_dialect() {
    let e = ApiError::new(ErrorClass::RateLimited, "slow down")
        .with_retry_after(Some(Duration::from_millis(1500)));
    assert_eq!(e.status(), 429);
    assert_eq!(e.retry_after_secs(), Some(2));
    let openai: Value = serde_json::from_slice(&e.body(Dialect::Chat)).unwrap();
    assert_eq!(
        openai,
        json!({"error": {"message": "slow down", "type": "rate_limit_error", "param": null, "code": "rate_limit_exceeded"}})
    );
    let anthropic: Value = serde_json::from_slice(&e.body(Dialect::Messages)).unwrap();
    assert_eq!(
        anthropic,
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
    );
}

#[test]
fn upstream_errors_map_to_client_statuses() {
    let status = |kind, status: Option<u16>| {
        let mut e = Error::new(kind, "up", "m", "x");
        e.status = status;
        ApiError::from_llm(&e).status()
    };
    assert_eq!(status(ErrorKind::Transient, Some(429)), 429);
    assert_eq!(status(ErrorKind::Transient, Some(529)), 529);
    assert_eq!(status(ErrorKind::Transient, None), 502);
    assert_eq!(status(ErrorKind::Permanent, Some(400)), 400);
    assert_eq!(
        status(ErrorKind::Permanent, Some(401)),
        502,
        "the gateway's own upstream key is not the client's fault"
    );
    assert_eq!(status(ErrorKind::NotFound, Some(404)), 404);
    assert_eq!(status(ErrorKind::Decode, None), 502);
    let mut exhausted = Error::new(ErrorKind::Exhausted, "chain", "a, b", "all failed");
    exhausted.attempts = vec![Attempt {
        provider: "a".into(),
        model: "m".into(),
        attempt: 1,
        kind: ErrorKind::Transient,
        status: Some(429),
        message: "busy".into(),
    }];
    exhausted.retry_after = Some(Duration::from_secs(3));
    let mapped = ApiError::from_llm(&exhausted);
    assert_eq!((mapped.status(), mapped.retry_after_secs()), (429, Some(3)));
    exhausted.attempts[0].status = Some(500);
    assert_eq!(ApiError::from_llm(&exhausted).status(), 503);
    exhausted.attempts[0].kind = ErrorKind::Decode;
    exhausted.attempts[0].status = None;
    assert_eq!(
        ApiError::from_llm(&exhausted).status(),
        502,
        "answers nobody could read are the upstream's fault"
    );
}

// ---------------------------------------------------------------- hostile input

#[test]
fn hostile_bodies_are_errors_not_panics() {
    let seeds = [
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"name": "x"}}]}),
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a", "content": [{"type": "text", "text": "r"}]}]}]}),
        json!({"model": "m", "input": [{"type": "function_call", "call_id": "c", "name": "n", "arguments": "{}"}, {"type": "function_call_output", "call_id": "c", "output": "o"}]}),
    ];
    let mut rng = fastrand::Rng::with_seed(14);
    let mut decoded = 0;
    for round in 0..3000 {
        let seed = seeds[round % seeds.len()].to_string().into_bytes();
        let mut body = seed.clone();
        for _ in 0..rng.usize(1..6) {
            if body.is_empty() {
                break;
            }
            let at = rng.usize(..body.len());
            match rng.u8(..4) {
                0 => body[at] = rng.u8(..),
                1 => {
                    body.remove(at);
                }
                2 => body.insert(at, b"{}[]\",:0-e\\"[rng.usize(..11)]),
                _ => body.truncate(at),
            }
        }
        for dialect in [Dialect::Chat, Dialect::Messages, Dialect::Responses] {
            if dialect.decode(&body).is_ok() {
                decoded += 1;
            }
        }
    }
    assert!(decoded > 0, "some mutations still decode (the seeds are valid)");
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(Dialect::Chat.decode(deep.as_bytes()).is_err());
    let deep_content = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":{}1{}}}]}}"#,
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    assert!(Dialect::Messages.decode(deep_content.as_bytes()).is_err());
}

#[test]
fn ids_are_the_prefix_and_24_hex_digits_and_differ() {
    let (a, b) = (super::new_id("chatcmpl-"), super::new_id("chatcmpl-"));
    for id in [&a, &b] {
        let digits = id.strip_prefix("chatcmpl-").expect("the prefix");
        assert_eq!(digits.len(), 24, "{id}");
        assert!(digits.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{id}");
    }
    assert_ne!(a, b);
}
