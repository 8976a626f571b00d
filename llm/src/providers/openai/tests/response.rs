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
