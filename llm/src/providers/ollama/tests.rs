use std::collections::BTreeMap;

use serde_json::json;

use super::wire::{self, Chunk};
use super::*;
use crate::types::{
    FinishReason, ReasoningEffort, ResponseSchema, ToolCall, ToolChoice, ToolResult, ToolSpec,
};

#[test]
fn normalize_host_table() {
    let table = [
        ("", "http://127.0.0.1:11434"),
        ("   ", "http://127.0.0.1:11434"),
        ("localhost", "http://localhost:11434"),
        ("0.0.0.0", "http://0.0.0.0:11434"),
        ("gpu-box:8080", "http://gpu-box:8080"),
        ("gpu-box:11434/", "http://gpu-box:11434"),
        (":11434", "http://127.0.0.1:11434"),
        ("http://gpu-box", "http://gpu-box"),
        ("http://gpu-box:11434", "http://gpu-box:11434"),
        ("http://gpu-box:11434///", "http://gpu-box:11434"),
        ("HTTP://gpu-box:80", "http://gpu-box"),
        ("https://ollama.com", "https://ollama.com"),
        ("https://ollama.com/", "https://ollama.com"),
        ("https://ollama.com:443", "https://ollama.com"),
        ("ollama.com", "https://ollama.com"),
        ("https://proxy.example/ollama/", "https://proxy.example/ollama"),
        ("[::1]:11434", "http://[::1]:11434"),
        ("[::1]", "http://[::1]:11434"),
        ("::1", "http://[::1]:11434"),
        ("http://[::1]", "http://[::1]"),
        ("https://[2001:db8::7]:9000", "https://[2001:db8::7]:9000"),
        ("10.0.0.5:11434", "http://10.0.0.5:11434"),
    ];
    for (input, want) in table {
        assert_eq!(normalize_host(input).as_deref(), Ok(want), "input {input:?}");
    }
}

#[test]
fn normalize_host_rejects_bad_input_without_echoing_credentials() {
    for bad in [
        "ftp://host",
        "host:notaport",
        "host:0",
        "host:70000",
        "[::1",
        "[::1]x",
        "http://host?x=1",
        "http://host#frag",
        "http://bad host",
    ] {
        assert!(normalize_host(bad).is_err(), "input {bad:?} should be rejected");
    }
    let err = normalize_host("http://user:sk-secret-123@host").expect_err("credentials");
    assert!(!err.to_string().contains("sk-secret-123"), "{err}");
}

#[test]
fn invalid_base_url_fails_every_call_permanently() {
    let provider = Ollama::new(ProviderConfig::new("ol", "ftp://nope"));
    assert_eq!(provider.base_url(), None);
    let model = provider.model("m");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let err = rt.block_on(model.generate(Request::user("hi"))).expect_err("invalid base");
    assert_eq!(err.kind, ErrorKind::Permanent);
    assert!(err.message.contains("ftp"), "{err}");
    let ok = Ollama::new(ProviderConfig::new("ol", "localhost:9999/"));
    assert_eq!(ok.base_url(), Some("http://localhost:9999"));
}

#[test]
fn think_levels() {
    assert_eq!(wire::think_value(ReasoningEffort::Minimal), json!(false));
    assert_eq!(wire::think_value(ReasoningEffort::Low), json!("low"));
    assert_eq!(wire::think_value(ReasoningEffort::Medium), json!("medium"));
    assert_eq!(wire::think_value(ReasoningEffort::High), json!("high"));
    let req = Request { reasoning_effort: Some(ReasoningEffort::High), ..Request::user("x") };
    assert_eq!(wire::build_body("m", &req, false)["think"], json!("high"));
    assert!(wire::build_body("m", &Request::user("x"), false).get("think").is_none());
}

#[test]
fn body_maps_messages_tools_and_options() {
    let req = Request {
        system: Some("be brief".into()),
        messages: vec![
            Message {
                role: Role::User,
                parts: vec![
                    Part::Text { text: "what is ".into() },
                    Part::Text { text: "this?".into() },
                    Part::Image { mime: "image/png".into(), data: vec![1, 2, 3] },
                ],
            },
            Message {
                role: Role::Assistant,
                parts: vec![Part::ToolCall(ToolCall {
                    id: "c1".into(),
                    name: "look".into(),
                    args: json!("not json"),
                    signature: None,
                })],
            },
            Message::tool_results([ToolResult {
                id: "c1".into(),
                name: "look".into(),
                content: "boom".into(),
                is_error: true,
            }]),
        ],
        tools: vec![ToolSpec {
            name: "look".into(),
            description: "looks".into(),
            parameters: json!({"type": "object"}),
        }],
        temperature: Some(0.5),
        max_tokens: Some(64),
        stop: vec!["END".into()],
        seed: Some(7),
        ..Request::default()
    };
    let body = wire::build_body("qwen3:8b", &req, true);
    assert_eq!(
        body,
        json!({
            "model": "qwen3:8b",
            "stream": true,
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "what is this?", "images": ["AQID"]},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": "c1", "function": {"name": "look", "arguments": {"_raw": "not json"}}}
                ]},
                {"role": "tool", "content": "Error: boom", "tool_name": "look", "tool_call_id": "c1"},
            ],
            "tools": [{"type": "function", "function": {
                "name": "look", "description": "looks", "parameters": {"type": "object"}
            }}],
            "options": {"temperature": 0.5, "num_predict": 64, "stop": ["END"], "seed": 7},
        })
    );
}

#[test]
fn tool_choice_mapping() {
    let tools = vec![
        ToolSpec { name: "a".into(), description: String::new(), parameters: json!({}) },
        ToolSpec { name: "b".into(), description: String::new(), parameters: json!({}) },
    ];
    let base = Request { tools, ..Request::user("x") };

    let none = Request { tool_choice: ToolChoice::None, ..base.clone() };
    assert!(wire::build_body("m", &none, false).get("tools").is_none());

    let one = Request { tool_choice: ToolChoice::Tool("b".into()), ..base.clone() };
    let body = wire::build_body("m", &one, false);
    assert_eq!(body["tools"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["tools"][0]["function"]["name"], "b");
    assert!(body["messages"][0]["content"].as_str().is_some_and(|s| s.contains("`b`")));

    let required = Request { tool_choice: ToolChoice::Required, ..base };
    let body = wire::build_body("m", &required, false);
    assert_eq!(body["tools"].as_array().map(Vec::len), Some(2));
    assert_eq!(body["messages"][0]["role"], "system");
}

#[test]
fn schema_goes_to_format_and_system_prompt() {
    let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}});
    let req = Request {
        response_schema: Some(ResponseSchema { name: "count".into(), schema: schema.clone(), strict: true }),
        ..Request::user("count")
    };
    let body = wire::build_body("m", &req, false);
    assert_eq!(body["format"], schema);
    let system = body["messages"][0]["content"].as_str().unwrap_or_default();
    assert!(system.contains(&schema.to_string()), "{system}");
    assert!(system.contains("count"), "{system}");
}

#[test]
fn extra_merges_deeply_and_null_removes() {
    let mut extra = BTreeMap::new();
    extra.insert("options".to_owned(), json!({"num_ctx": 8192}));
    extra.insert("keep_alive".to_owned(), json!("5m"));
    extra.insert("stream".to_owned(), serde_json::Value::Null);
    let req = Request { temperature: Some(0.0), extra, ..Request::user("x") };
    let body = wire::build_body("m", &req, true);
    assert_eq!(body["options"], json!({"temperature": 0.0, "num_ctx": 8192}));
    assert_eq!(body["keep_alive"], "5m");
    assert!(body.get("stream").is_none());
}

#[test]
fn args_object_never_sends_a_non_object() {
    assert_eq!(wire::args_object(&json!({"a": 1})), json!({"a": 1}));
    assert_eq!(wire::args_object(&serde_json::Value::Null), json!({}));
    assert_eq!(wire::args_object(&json!("{\"a\":1}")), json!({"a": 1}));
    assert_eq!(wire::args_object(&json!("oops")), json!({"_raw": "oops"}));
    assert_eq!(wire::args_object(&json!([1])), json!({"_raw": [1]}));
}

#[test]
fn chunk_parsing_is_lenient() {
    let mut chunk: Chunk = serde_json::from_value(json!({
        "message": {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "a", "arguments": {"x": 1}}},
            {"id": "srv-1", "function": {"name": "b", "arguments": "{\"y\":2}"}},
            {"function": {"name": "c", "arguments": "not json"}},
        ]},
        "done": true,
        "unknown_field": [1, 2],
    }))
    .expect("chunk");
    let calls = chunk.take_tool_calls();
    assert_eq!(calls.len(), 3);
    assert!(calls[0].id.starts_with("call_"));
    assert_ne!(calls[0].id, calls[2].id);
    assert_eq!(calls[1].id, "srv-1");
    assert_eq!(calls[1].args, json!({"y": 2}));
    assert_eq!(calls[2].args, json!("not json"));
    let err: Chunk = serde_json::from_value(json!({"error": {"message": "boom"}})).expect("err");
    assert_eq!(err.error_message().as_deref(), Some("boom"));
}

#[test]
fn finish_reasons() {
    assert_eq!(wire::finish_reason(Some("stop"), false), FinishReason::Stop);
    assert_eq!(wire::finish_reason(None, false), FinishReason::Stop);
    assert_eq!(wire::finish_reason(Some("length"), false), FinishReason::Length);
    assert_eq!(wire::finish_reason(Some("load"), false), FinishReason::Other("load".into()));
    assert_eq!(wire::finish_reason(Some("stop"), true), FinishReason::ToolCalls);
}

#[test]
fn temperatures_are_sent_as_written() {
    assert_eq!(wire::decimal(0.2), json!(0.2));
    assert_eq!(wire::decimal(0.7), json!(0.7));
    assert_eq!(wire::decimal(1.0), json!(1.0));
    assert_eq!(wire::decimal(f32::NAN), serde_json::Value::Null);
    let req = Request { temperature: Some(0.1), ..Request::user("x") };
    assert_eq!(wire::build_body("m", &req, false)["options"]["temperature"], json!(0.1));
}
