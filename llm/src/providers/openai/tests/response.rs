//! Response parsing: finish reasons, arguments, usage, ids, shapes.

use super::*;

#[test]
fn finish_reasons() {
    assert_eq!(finish_reason("stop"), FinishReason::Stop);
    assert_eq!(finish_reason("length"), FinishReason::Length);
    assert_eq!(finish_reason("tool_calls"), FinishReason::ToolCalls);
    assert_eq!(finish_reason("function_call"), FinishReason::ToolCalls);
    assert_eq!(finish_reason("content_filter"), FinishReason::ContentFilter);
    assert_eq!(finish_reason("eos"), FinishReason::Other("eos".into()));
}

#[test]
fn arguments_parsing() {
    assert_eq!(parse_arguments(Some(&json!("{\"a\":1}"))), json!({ "a": 1 }));
    assert_eq!(parse_arguments(Some(&json!(""))), json!({}));
    assert_eq!(parse_arguments(None), json!({}));
    assert_eq!(parse_arguments(Some(&Value::Null)), json!({}));
    assert_eq!(parse_arguments(Some(&json!("{\"a\":"))), json!("{\"a\":"));
    assert_eq!(parse_arguments(Some(&json!({ "a": 1 }))), json!({ "a": 1 }));
}

#[test]
fn usage_is_lenient() {
    let u = usage(&json!({
        "prompt_tokens": 10.5,
        "completion_tokens": 3,
        "prompt_tokens_details": null,
        "completion_tokens_details": { "reasoning_tokens": "many" }
    }));
    assert_eq!((u.input_tokens, u.output_tokens, u.cache_read_tokens, u.reasoning_tokens), (0, 3, 0, 0));
}

#[test]
fn ids_are_synthesised_for_missing_empty_and_repeated() {
    let mut ids = IdSynth::new();
    assert_eq!(ids.assign(Some("a"), 0), "a");
    let dup = ids.assign(Some("a"), 1);
    let empty = ids.assign(Some(""), 2);
    let missing = ids.assign(None, 3);
    assert!(dup != "a" && empty != dup && missing != empty && !missing.is_empty());
    // Another response gets other ids.
    assert_ne!(IdSynth::new().assign(None, 3), missing);
}

#[test]
fn response_with_duplicate_ids_content_array_and_refusal() {
    let body = json!({
        "model": "",
        "choices": [{
            "index": 0,
            "message": {
                "content": [{ "type": "text", "text": "a" }, { "type": "text", "text": "b" }],
                "tool_calls": [
                    { "id": "same", "function": { "name": "t", "arguments": "{}" } },
                    { "id": "same", "function": { "name": "t", "arguments": "{}" } }
                ]
            },
            "finish_reason": null
        }]
    });
    let r = parse_response(&http(), "requested", &body).expect("parsed");
    assert_eq!(r.text(), "ab");
    assert_eq!(r.model, "requested");
    assert_eq!(r.finish_reason, FinishReason::ToolCalls);
    let calls = r.tool_calls();
    assert_eq!(calls[0].id, "same");
    assert_ne!(calls[1].id, "same");

    let refusal = json!({ "choices": [{ "message": { "content": null, "refusal": "I can't." }, "finish_reason": "stop" }] });
    assert_eq!(parse_response(&http(), "m", &refusal).expect("parsed").text(), "I can't.");
}

#[test]
fn response_shape_errors() {
    for body in [json!({}), json!({ "choices": [] }), json!({ "choices": "x" }), json!([1, 2]), json!(null)] {
        let e = parse_response(&http(), "m", &body).expect_err("decode");
        assert_eq!(e.kind, ErrorKind::Decode, "{body}");
    }
    let e = parse_response(
        &http(),
        "m",
        &json!({ "error": { "message": "x", "type": "invalid_request_error" } }),
    )
    .expect_err("error body");
    assert_eq!(e.kind, ErrorKind::Permanent);
    // `error: null` next to a normal answer is not an error.
    let ok = json!({ "error": null, "choices": [{ "message": { "content": "hi" } }] });
    assert_eq!(parse_response(&http(), "m", &ok).expect("ok").text(), "hi");
}

/// The fast path of `parse_body` answers exactly as the `Value` reading for every body it
/// takes, and leaves every body it cannot read exactly to it.
#[test]
fn fast_path_agrees_with_the_value_reading() {
    let http = crate::http::Http::new("p", crate::http::HttpOptions::default(), None);
    let fixtures =
        ["chat_text.json", "chat_tool_calls.json", "llamacpp_text.json", "vllm_unknown_finish.json"];
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/openai/");
    let mut bodies: Vec<(String, bool)> =
        fixtures.iter().map(|f| (std::fs::read_to_string(format!("{dir}{f}")).unwrap(), true)).collect();
    let call = r#"{"id":"c1","type":"function","function":{"name":"get","arguments":"{\"k\":\"v\\n\"}"}}"#;
    let usual = [
        // escaped content (copied, not borrowed), refusal, null fields, unknown fields
        r#"{"model":"m\u00e9","choices":[{"index":0,"message":{"content":"a\"b\nc"},"finish_reason":"stop"}]}"#.to_owned(),
        r#"{"choices":[{"message":{"content":null,"refusal":"no"},"finish_reason":null}],"usage":null}"#.to_owned(),
        format!(r#"{{"choices":[{{"index":1,"message":{{"content":"second"}}}},{{"index":0,"message":{{"content":"","tool_calls":[{call}]}}}}],"timings":{{"x":1}},"error":null}}"#),
        r#"{"choices":[{"index":0,"message":{"tool_calls":[{"id":"a","function":{"name":"f","arguments":"not json"}},{"id":"b","function":{"name":"g","arguments":"  "}},{"id":"c"}]}}],"usage":{"prompt_tokens":3,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":2},"completion_tokens_details":{"reasoning_tokens":1}}}"#.to_owned(),
        r#"{"choices":[{"index":0}],"model":""}"#.to_owned(),
    ];
    bodies.extend(usual.into_iter().map(|b| (b, true)));
    let unusual = [
        r#"{"error":{"message":"overloaded","type":"server_error"}}"#,
        r#"{"choices":[{"message":{"content":[{"type":"text","text":"parts"}]}}]}"#,
        r#"{"choices":[{"message":{"tool_calls":[{"id":"a","function":{"name":"f","arguments":{"k":1}}}]}}]}"#,
        r#"{"choices":[{"message":{"content":"x"}}],"usage":{"prompt_tokens":10.5}}"#,
        r#"{"choices":[],"model":"m"}"#,
        r#"{"choices":[{"message":{"content":"a"}}],"choices":[{"message":{"content":"b"}}]}"#,
        r#"[1,2]"#,
    ];
    bodies.extend(unusual.into_iter().map(|b| (b.to_owned(), false)));
    for (body, fast_takes_it) in bodies {
        let fast = fast::parse(&http, "req", body.as_bytes());
        assert_eq!(fast.is_some(), fast_takes_it, "fast path on {body}");
        let value: Result<Value, _> = serde_json::from_str(&body);
        let slow = value
            .map_err(|e| e.to_string())
            .and_then(|v| parse_response(&http, "req", &v).map_err(|e| e.to_string()));
        let whole = parse_body(&http, "req", body.as_bytes()).map_err(|e| e.to_string());
        assert_eq!(whole.is_ok(), slow.is_ok(), "parse_body vs the Value reading on {body}");
        if let (Some(fast), Ok(slow)) = (fast, slow) {
            assert_eq!(unrandom(fast), unrandom(slow), "fast vs Value reading on {body}");
        }
    }
}

/// A response with its synthesised tool-call ids' random prefix taken out.
fn unrandom(mut response: Response) -> Response {
    for part in &mut response.message.parts {
        if let Part::ToolCall(call) = part
            && let Some(rest) = call.id.strip_prefix("call_")
            && let Some((prefix, position)) = rest.split_once('_')
            && prefix.len() == 16
            && prefix.chars().all(|c| c.is_ascii_hexdigit())
        {
            call.id = format!("call_synthesised_{position}");
        }
    }
    response
}
