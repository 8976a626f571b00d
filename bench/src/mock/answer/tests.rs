//! The mock's answers: the decision rule, both wire shapes, the run key.

use super::*;

fn body(tool_msgs: usize, tools: bool, stream: bool) -> Vec<u8> {
    let mut messages = vec![serde_json::json!({"role": "user", "content": "go #run=42"})];
    for i in 0..tool_msgs {
        messages.push(serde_json::json!({"role": "assistant", "content": null, "tool_calls": []}));
        messages.push(serde_json::json!({"role": "tool", "tool_call_id": format!("c{i}"), "content": "v"}));
    }
    let mut b = serde_json::json!({"model": "m\"x", "messages": messages, "stream": stream});
    if tools {
        b["tools"] =
            serde_json::json!([{"type": "function", "function": {"name": "lookup", "parameters": {}}}]);
    }
    serde_json::to_vec(&b).unwrap()
}

#[test]
fn calls_the_tool_until_the_steps_are_used_then_answers() {
    for (n, expect_call) in [(0, true), (1, true), (2, false), (3, false)] {
        let d = answer(&body(n, true, false), 2).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&d.body).unwrap();
        assert_eq!(d.tool_results, n);
        assert_eq!(v["model"], "m\"x", "the model name is echoed, escaped");
        let msg = &v["choices"][0]["message"];
        if expect_call {
            assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
            assert_eq!(msg["tool_calls"][0]["function"]["name"], "lookup");
            assert_eq!(msg["tool_calls"][0]["id"], format!("call_{}", n + 1));
            let args: serde_json::Value =
                serde_json::from_str(msg["tool_calls"][0]["function"]["arguments"].as_str().unwrap())
                    .unwrap();
            assert_eq!(args["key"], format!("k{}", n + 1));
        } else {
            assert_eq!(msg["content"], format!("done after {n} lookups"));
            assert_eq!(v["choices"][0]["finish_reason"], "stop");
        }
        assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    }
}

#[test]
fn without_tools_it_answers_at_once() {
    let d = answer(&body(0, false, false), 2).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&d.body).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "done after 0 lookups");
}

#[test]
fn streams_are_sse_with_usage_in_the_final_chunk() {
    let d = answer(&body(0, true, true), 2).unwrap();
    assert_eq!(d.content_type, "text/event-stream");
    let text = String::from_utf8(d.body).unwrap();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.last(), Some(&"data: [DONE]"));
    let chunks: Vec<serde_json::Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"].as_array().unwrap().len(), 0);
    assert!(last["usage"]["total_tokens"].as_u64().unwrap() > 0);
    assert_eq!(chunks[0]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"], "lookup");
    assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    assert!(answer(b"{not json", 2).is_err());
    assert!(answer(b"", 2).is_err());
}

#[test]
fn run_keys_are_found_anywhere() {
    assert_eq!(run_key(b"xx #run=123\" yy"), Some(123));
    assert_eq!(run_key(b"no marker"), None);
    assert_eq!(run_key(b"#run="), None);
}
