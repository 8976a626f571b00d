//! Request mapping: canonical request -> Chat Completions body.

use super::*;

#[test]
fn tool_choice_variants() {
    let cases = [
        (ToolChoice::Auto, json!("auto")),
        (ToolChoice::None, json!("none")),
        (ToolChoice::Required, json!("required")),
        (ToolChoice::Tool("t".into()), json!({ "type": "function", "function": { "name": "t" } })),
    ];
    for (choice, wire) in cases {
        let r = Request { tools: vec![tool()], tool_choice: choice, ..Request::user("x") };
        assert_eq!(body(&r)["tool_choice"], wire);
    }
    // No tools: neither tools nor tool_choice, whatever the choice says.
    let r = Request { tool_choice: ToolChoice::Required, ..Request::user("x") };
    let b = body(&r);
    assert!(b.get("tools").is_none() && b.get("tool_choice").is_none(), "{b}");
}

#[test]
fn temperature_is_sent_as_written() {
    let b = body(&Request { temperature: Some(0.7), ..Request::user("x") });
    assert_eq!(b["temperature"].as_f64(), Some(0.7));
    assert_eq!(b["temperature"].to_string(), "0.7");
    let b = body(&Request { temperature: Some(f32::NAN), ..Request::user("x") });
    assert!(b["temperature"].is_null());
}

#[test]
fn system_prompt_is_first_and_optional() {
    let b = body(&Request::user("hi").with_system("sys"));
    assert_eq!(b["messages"][0], json!({ "role": "system", "content": "sys" }));
    assert_eq!(b["messages"][1], json!({ "role": "user", "content": "hi" }));
    let b = body(&Request::user("hi"));
    assert_eq!(b["messages"].as_array().map(Vec::len), Some(1));
}

#[test]
fn several_text_parts_become_an_array() {
    let r = Request {
        messages: vec![Message {
            role: Role::User,
            parts: vec![Part::Text { text: "a".into() }, Part::Text { text: "b".into() }],
        }],
        ..Request::default()
    };
    assert_eq!(
        body(&r)["messages"][0]["content"],
        json!([{ "type": "text", "text": "a" }, { "type": "text", "text": "b" }])
    );
}

#[test]
fn tool_results_in_a_user_message_come_first_and_errors_are_visible() {
    let r = Request {
        messages: vec![Message {
            role: Role::User,
            parts: vec![
                Part::Text { text: "also this".into() },
                Part::ToolResult(ToolResult {
                    id: "c1".into(),
                    name: "t".into(),
                    content: "boom".into(),
                    is_error: true,
                }),
            ],
        }],
        ..Request::default()
    };
    let b = body(&r);
    assert_eq!(b["messages"][0], json!({ "role": "tool", "tool_call_id": "c1", "content": "Error: boom" }));
    assert_eq!(b["messages"][1], json!({ "role": "user", "content": "also this" }));
}

#[test]
fn assistant_text_and_tool_calls() {
    let r = Request {
        messages: vec![Message {
            role: Role::Assistant,
            parts: vec![
                Part::Text { text: "Let me check.".into() },
                Part::ToolCall(ToolCall {
                    id: "c1".into(),
                    name: "t".into(),
                    args: json!({ "a": [1, 2] }),
                    signature: None,
                }),
            ],
        }],
        ..Request::default()
    };
    let m = &body(&r)["messages"][0];
    assert_eq!(m["content"], json!("Let me check."));
    assert_eq!(m["tool_calls"][0]["function"]["arguments"], json!("{\"a\":[1,2]}"));
    assert_eq!(m["tool_calls"][0]["type"], json!("function"));
}

#[test]
fn unexpressible_shapes_are_refused() {
    let bad = [
        Message {
            role: Role::Assistant,
            parts: vec![Part::Image { mime: "image/png".into(), data: vec![1] }],
        },
        Message { role: Role::Tool, parts: vec![Part::Text { text: "orphan".into() }] },
        Message {
            role: Role::User,
            parts: vec![Part::ToolCall(ToolCall {
                id: "c".into(),
                name: "t".into(),
                args: json!({}),
                signature: None,
            })],
        },
        Message {
            role: Role::Assistant,
            parts: vec![Part::ToolResult(ToolResult {
                id: "c".into(),
                name: "t".into(),
                content: String::new(),
                is_error: false,
            })],
        },
    ];
    for message in bad {
        let r = Request { messages: vec![Message::user("first"), message.clone()], ..Request::default() };
        let err = build_body("m", &r, &OpenAiOptions::default(), false).expect_err("refused");
        assert!(err.starts_with("message 1:"), "{err} for {message:?}");
    }
}

#[test]
fn extra_overrides_and_null_removes() {
    let mut r = Request { seed: Some(1), ..Request::user("x") };
    r.extra.insert("seed".into(), json!(2));
    r.extra.insert("stream_options".into(), Value::Null);
    r.extra.insert("model".into(), json!("other"));
    let b = build_body("m", &r, &OpenAiOptions::default(), true).expect("ok");
    assert_eq!(b["seed"], json!(2));
    assert_eq!(b["model"], json!("other"));
    assert_eq!(b["stream"], json!(true));
    assert!(b.get("stream_options").is_none());
}
