//! Request mapping decisions, and the small tables.

use serde_json::{Value, json};

use super::super::request::{self, Plan};
use super::super::response::finish_reason;
use super::super::{AnthropicOptions, messages_url, thinking};
use super::answer_plan;
use crate::types::{
    FinishReason, Message, Part, ReasoningEffort, Request, ResponseSchema, Role, ToolCall, ToolChoice,
    ToolSpec,
};

fn tool(name: &str) -> ToolSpec {
    ToolSpec { name: name.into(), description: String::new(), parameters: json!({"type": "object"}) }
}

fn build(request: &Request) -> (Value, Plan) {
    request::build(request, "m", &AnthropicOptions::default(), false)
}

#[test]
fn tool_choice_table() {
    let table = [
        (ToolChoice::Auto, json!({"type": "auto"})),
        (ToolChoice::None, json!({"type": "none"})),
        (ToolChoice::Required, json!({"type": "any"})),
        (ToolChoice::Tool("t".into()), json!({"type": "tool", "name": "t"})),
    ];
    for (choice, wire) in table {
        let request = Request { tools: vec![tool("t")], tool_choice: choice, ..Request::user("x") };
        assert_eq!(build(&request).0["tool_choice"], wire);
    }
    // No tools: no tool choice at all.
    let request = Request { tool_choice: ToolChoice::Required, ..Request::user("x") };
    assert!(build(&request).0.get("tool_choice").is_none());
}

#[test]
fn structured_output_with_the_request_s_own_tools() {
    let schema = ResponseSchema { name: "t".into(), schema: json!({"type": "object"}), strict: true };
    let cases = [
        (ToolChoice::Auto, json!({"type": "any", "disable_parallel_tool_use": true})),
        (ToolChoice::Required, json!({"type": "any", "disable_parallel_tool_use": true})),
        (ToolChoice::None, json!({"type": "tool", "name": "t_2", "disable_parallel_tool_use": true})),
    ];
    for (choice, wire) in cases {
        let request = Request {
            tools: vec![tool("t")],
            tool_choice: choice,
            response_schema: Some(schema.clone()),
            ..Request::user("x")
        };
        let (body, plan) = build(&request);
        assert_eq!(body["tool_choice"], wire);
        // The answer tool's name does not collide with the request's tool "t".
        assert_eq!(plan.answer.as_ref().map(|a| a.name.as_str()), Some("t_2"));
        assert_eq!(body["tools"][1]["name"], "t_2");
    }
}

#[test]
fn thinking_budget_max_tokens_and_forced_choice() {
    let request = Request {
        reasoning_effort: Some(ReasoningEffort::Medium),
        max_tokens: Some(20_000),
        temperature: Some(0.5),
        ..Request::user("x")
    };
    let (body, _) = build(&request);
    assert_eq!(body["thinking"], json!({"type": "enabled", "budget_tokens": 8192}));
    assert_eq!(body["max_tokens"], 20_000, "already above the budget: kept");
    assert!(body.get("temperature").is_none());

    let request = Request { max_tokens: Some(8192), ..request };
    assert_eq!(build(&request).0["max_tokens"], 8192 + 8192, "not above the budget: raised");

    // A forced tool choice cannot be combined with thinking: thinking is dropped.
    let forced = Request {
        tools: vec![tool("t")],
        tool_choice: ToolChoice::Required,
        reasoning_effort: Some(ReasoningEffort::High),
        temperature: Some(0.5),
        ..Request::user("x")
    };
    let (body, _) = build(&forced);
    assert!(body.get("thinking").is_none());
    assert_eq!(body["max_tokens"], 4096);
    assert_eq!(body["temperature"], 0.5);
}

#[test]
fn answer_tool_names_are_portable_and_unique() {
    let none: [&str; 0] = [];
    assert_eq!(request::answer_tool_name("weather report!", none.iter().copied()), "weatherreport");
    assert_eq!(request::answer_tool_name("", none.iter().copied()), "structured_output");
    assert_eq!(request::answer_tool_name("$$$", none.iter().copied()), "structured_output");
    let taken = ["a", "a_2"];
    assert_eq!(request::answer_tool_name("a", taken.iter().copied()), "a_3");
    let long = "x".repeat(200);
    assert!(request::answer_tool_name(&long, none.iter().copied()).len() <= 64);
}

#[test]
fn non_object_schemas_are_wrapped_with_definitions_at_the_root() {
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "oneOf": [{"$ref": "#/$defs/A"}, {"type": "string"}],
        "$defs": {"A": {"type": "object"}},
    });
    let (wrapped, is_wrapped) = request::answer_schema(&schema);
    assert!(is_wrapped);
    assert_eq!(
        wrapped,
        json!({
            "type": "object",
            "properties": {"value": {"oneOf": [{"$ref": "#/$defs/A"}, {"type": "string"}]}},
            "required": ["value"],
            "$defs": {"A": {"type": "object"}},
        })
    );
    let object = json!({"type": "object", "properties": {}});
    assert_eq!(request::answer_schema(&object), (object.clone(), false));

    let plan = answer_plan(true);
    assert_eq!(plan.answer_text(&json!({"value": [1, 2]})), "[1,2]");
    assert_eq!(plan.answer_text(&Value::String("{broken".into())), "{broken");
    assert_eq!(answer_plan(false).answer_text(&json!({"a": 1})), r#"{"a":1}"#);
}

#[test]
fn tool_call_arguments_always_go_out_as_objects() {
    let call = |args: Value| Message {
        role: Role::Assistant,
        parts: vec![Part::ToolCall(ToolCall { id: "i".into(), name: "n".into(), args, signature: None })],
    };
    let cases = [
        (json!({"a": 1}), json!({"a": 1})),
        (Value::Null, json!({})),
        (Value::String(r#"{"a": 2}"#.into()), json!({"a": 2})),
        (Value::String("not json".into()), json!({"_raw": "not json"})),
        (json!([1, 2]), json!({"_raw": [1, 2]})),
    ];
    for (args, input) in cases {
        let wire = request::messages(&[call(args)]);
        assert_eq!(wire[0]["content"][0]["input"], input);
    }
}

#[test]
fn thinking_carrier_round_trip_and_foreign_signatures() {
    let blocks = vec![thinking::thinking_block("t", "sig").expect("signed"), thinking::redacted_block("d")];
    let carried = thinking::encode(blocks.clone());
    assert_eq!(thinking::decode(carried.as_deref()), blocks);
    assert!(thinking::thinking_block("t", "").is_none(), "unsigned thinking is not carried");
    assert!(thinking::encode(Vec::new()).is_none());
    // Another provider's opaque signature, or a tampered carrier, is ignored.
    for foreign in ["CiQB0e2Kb3dRh", "anthropic-thinking:v1:{", "anthropic-thinking:v1:[{\"type\":\"text\"}]"]
    {
        assert!(thinking::decode(Some(foreign)).is_empty(), "{foreign}");
    }
    let message = Message {
        role: Role::Assistant,
        parts: vec![
            Part::Text { text: "Let me look.".into() },
            Part::ToolCall(ToolCall {
                id: "i".into(),
                name: "n".into(),
                args: json!({}),
                signature: Some("CiQB0e2Kb3dRh".into()),
            }),
        ],
    };
    let wire = request::messages(&[message]);
    assert_eq!(wire[0]["content"].as_array().map(Vec::len), Some(2));
    // The foreign signature is not sent anywhere (no thinking block, nothing on the tool_use).
    assert_eq!(wire[0]["content"][1], json!({"type": "tool_use", "id": "i", "name": "n", "input": {}}));
    assert!(!Value::Array(wire).to_string().contains("CiQB0e2Kb3dRh"));
}

#[test]
fn stop_reason_table() {
    let table = [
        (None, FinishReason::Stop),
        (Some("end_turn"), FinishReason::Stop),
        (Some("stop_sequence"), FinishReason::Stop),
        (Some("max_tokens"), FinishReason::Length),
        (Some("tool_use"), FinishReason::ToolCalls),
        (Some("refusal"), FinishReason::ContentFilter),
        (Some("pause_turn"), FinishReason::Other("pause_turn".into())),
        (Some("model_context_window_exceeded"), FinishReason::Other("model_context_window_exceeded".into())),
    ];
    for (wire, expected) in table {
        assert_eq!(finish_reason(wire), expected, "{wire:?}");
    }
}

#[test]
fn messages_url_accepts_root_and_v1_bases() {
    assert_eq!(messages_url("https://api.anthropic.com"), "https://api.anthropic.com/v1/messages");
    assert_eq!(messages_url("https://api.anthropic.com/"), "https://api.anthropic.com/v1/messages");
    assert_eq!(messages_url("http://127.0.0.1:8080/v1"), "http://127.0.0.1:8080/v1/messages");
    assert_eq!(messages_url("http://127.0.0.1:8080/v1/"), "http://127.0.0.1:8080/v1/messages");
    assert_eq!(messages_url("http://proxy/anthropic"), "http://proxy/anthropic/v1/messages");
}
