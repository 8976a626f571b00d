//! The SSE state machine: every event type, and hostile input.

use serde_json::{Value, json};

use super::super::request::Plan;
use super::super::response::error_kind;
use super::super::sse::Parser;
use super::answer_plan;
use crate::error::{ErrorKind, Result};
use crate::http::{Http, HttpOptions};
use crate::secret::Secret;
use crate::stream::StreamEvent;
use crate::types::{FinishReason, ToolCall};

const KEY: &str = "sk-ant-unit-SECRET-42";

fn http() -> Http {
    Http::new("claude", HttpOptions::default(), Some(Secret::new(KEY)))
}

/// Feeds `(event, data)` pairs, then the end of the transport; returns every output item.
fn run_with(parser: &mut Parser, events: &[(&str, &str)]) -> Vec<Result<StreamEvent>> {
    for (name, data) in events {
        parser.event(name, data);
    }
    parser.end();
    std::iter::from_fn(|| parser.pop()).collect()
}

fn run(plan: Plan, events: &[(&str, &str)]) -> Vec<Result<StreamEvent>> {
    let mut parser = Parser::new(http(), "m", plan);
    run_with(&mut parser, events)
}

fn last_error(items: &[Result<StreamEvent>]) -> &crate::Error {
    match items.last() {
        Some(Err(e)) => e,
        other => panic!("expected an error last, got {other:?}"),
    }
}

const START: (&str, &str) = (
    "message_start",
    r#"{"type":"message_start","message":{"model":"claude-x","usage":{"input_tokens":3}}}"#,
);
const STOP: (&str, &str) = ("message_stop", r#"{"type":"message_stop"}"#);

fn tool_start(index: u64, name: &str) -> String {
    json!({"type": "content_block_start", "index": index,
           "content_block": {"type": "tool_use", "id": format!("toolu_{index}"), "name": name, "input": {}}})
    .to_string()
}

fn json_delta(index: u64, partial: &str) -> String {
    json!({"type": "content_block_delta", "index": index,
           "delta": {"type": "input_json_delta", "partial_json": partial}})
    .to_string()
}

fn block_stop(index: u64) -> String {
    json!({"type": "content_block_stop", "index": index}).to_string()
}

fn text_delta(text: &str) -> String {
    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}})
        .to_string()
}

fn tool_calls(items: &[Result<StreamEvent>]) -> Vec<ToolCall> {
    items
        .iter()
        .filter_map(|i| match i {
            Ok(StreamEvent::ToolCall { call }) => Some(call.clone()),
            _ => None,
        })
        .collect()
}

fn text_of(items: &[Result<StreamEvent>]) -> String {
    items
        .iter()
        .filter_map(|i| match i {
            Ok(StreamEvent::TextDelta { text }) => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn malformed_json_is_a_decode_error_and_ends_the_stream() {
    for data in ["{not json", r#"{"no_type": 1}"#, r#"{"type":"content_block_delta"}"#, "[]", "42"] {
        let items = run(Plan::default(), &[START, ("content_block_delta", data), STOP]);
        let error = last_error(&items);
        assert_eq!(error.kind, ErrorKind::Decode, "{data}: {error}");
        // Nothing after the error: no Done from the later message_stop.
        assert!(!items.iter().any(|i| matches!(i, Ok(StreamEvent::Done { .. }))), "{data}");
    }
}

#[test]
fn unknown_events_deltas_pings_and_empty_data_are_ignored() {
    let items = run(
        Plan::default(),
        &[
            START,
            ("ping", r#"{"type":"ping"}"#),
            ("ping", ""),
            ("brand_new", r#"{"type":"brand_new","x":[1,2]}"#),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"server_tool_use","id":"s"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"citations_delta","citation":{}}}"#,
            ),
            ("content_block_stop", &block_stop(0)),
            ("content_block_delta", &text_delta("ok")),
            STOP,
        ],
    );
    assert!(items.iter().all(Result::is_ok), "{items:?}");
    assert_eq!(text_of(&items), "ok");
    assert!(matches!(
        items.last(),
        Some(Ok(StreamEvent::Done { finish_reason: FinishReason::Stop, model, .. })) if model == "claude-x"
    ));
}

#[test]
fn tool_arguments_invalid_json_become_a_string_and_empty_become_an_object() {
    let items = run(
        Plan::default(),
        &[
            START,
            ("content_block_start", &tool_start(0, "a")),
            ("content_block_delta", &json_delta(0, "{\"x\": tru")),
            ("content_block_stop", &block_stop(0)),
            ("content_block_start", &tool_start(1, "b")),
            ("content_block_stop", &block_stop(1)),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"t2","name":"c","input":{"k":1}}}"#,
            ),
            ("content_block_stop", &block_stop(2)),
            STOP,
        ],
    );
    let calls = tool_calls(&items);
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0].args, Value::String("{\"x\": tru".into()));
    assert_eq!(calls[1].args, json!({}));
    // A server that puts the whole input in the start event (and sends no fragments).
    assert_eq!(calls[2].args, json!({"k": 1}));
}

#[test]
fn hostile_block_references_are_decode_errors_not_panics() {
    let cases: Vec<Vec<(&str, String)>> = vec![
        // A fragment for a block that was never started.
        vec![("content_block_delta", json_delta(7, "{}"))],
        // A fragment for a text block.
        vec![
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#
                    .into(),
            ),
            ("content_block_delta", json_delta(0, "{}")),
        ],
        // A tool block index past u32.
        vec![("content_block_start", tool_start(u64::from(u32::MAX) + 1, "x"))],
        // A negative index.
        vec![("content_block_stop", r#"{"type":"content_block_stop","index":-1}"#.into())],
    ];
    for case in cases {
        let mut events: Vec<(&str, &str)> = vec![START];
        events.extend(case.iter().map(|(n, d)| (*n, d.as_str())));
        let items = run(Plan::default(), &events);
        assert_eq!(last_error(&items).kind, ErrorKind::Decode, "{case:?}");
    }
    // Stops and deltas of blocks that do not exist are otherwise harmless.
    let items = run(
        Plan::default(),
        &[START, ("content_block_stop", &block_stop(3)), ("content_block_delta", &text_delta("t")), STOP],
    );
    assert!(items.iter().all(Result::is_ok));
}

#[test]
fn tool_arguments_are_capped() {
    let http = Http::new("claude", HttpOptions { max_body_bytes: 16, ..HttpOptions::default() }, None);
    let mut parser = Parser::new(http, "m", Plan::default());
    let items = run_with(
        &mut parser,
        &[
            START,
            ("content_block_start", &tool_start(0, "a")),
            ("content_block_delta", &json_delta(0, "{\"a\": \"0123")),
            ("content_block_delta", &json_delta(0, "456789\"}")),
        ],
    );
    let error = last_error(&items);
    assert_eq!(error.kind, ErrorKind::Decode);
    assert!(error.message.contains("exceed"), "{error}");
}

#[test]
fn error_events_are_classified_and_scrubbed() {
    let table = [
        ("overloaded_error", ErrorKind::Transient),
        ("api_error", ErrorKind::Transient),
        ("rate_limit_error", ErrorKind::Transient),
        ("timeout_error", ErrorKind::Transient),
        ("something_new_error", ErrorKind::Transient),
        ("invalid_request_error", ErrorKind::Permanent),
        ("authentication_error", ErrorKind::Permanent),
        ("permission_error", ErrorKind::Permanent),
        ("request_too_large", ErrorKind::Permanent),
        ("not_found_error", ErrorKind::NotFound),
    ];
    for (kind, expected) in table {
        assert_eq!(error_kind(kind), expected, "{kind}");
        let data = json!({"type": "error", "error": {"type": kind, "message": format!("key {KEY} bad")}})
            .to_string();
        let items = run(Plan::default(), &[START, ("error", &data), STOP]);
        let error = last_error(&items);
        assert_eq!(error.kind, expected, "{kind}");
        assert!(!error.to_string().contains(KEY), "{error}");
        assert!(error.message.starts_with(kind), "{error}");
    }
    // llama-server's shape: the error object itself, with an integer code.
    let data = r#"{"code":500,"message":"The model produced output that does not match the expected peg-native format","type":"server_error"}"#;
    let items = run(Plan::default(), &[START, ("error", data)]);
    let error = last_error(&items);
    assert_eq!(error.kind, ErrorKind::Transient);
    assert!(error.message.starts_with("server_error: The model produced output"), "{error}");
    // Not JSON, or no data at all: still an error, never ignored.
    for data in ["upstream exploded", ""] {
        let items = run(Plan::default(), &[START, ("error", data), STOP]);
        let error = last_error(&items);
        assert_eq!(error.kind, ErrorKind::Transient);
        assert!(error.message.contains(data), "{error}");
    }
    // An error object with nothing in it still makes a transient error.
    let items = run(Plan::default(), &[("error", r#"{"type":"error"}"#)]);
    assert_eq!(last_error(&items).kind, ErrorKind::Transient);
}

#[test]
fn a_stream_without_message_stop_is_truncated() {
    for events in [
        vec![],
        vec![START],
        vec![START, ("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"}}"#)],
    ] {
        let items = run(Plan::default(), &events);
        let error = last_error(&items);
        assert_eq!(error.kind, ErrorKind::Transient);
        assert!(error.message.contains("truncated"));
    }
}

#[test]
fn nothing_is_emitted_after_message_stop() {
    let mut parser = Parser::new(http(), "m", Plan::default());
    let items = run_with(
        &mut parser,
        &[START, STOP, ("content_block_delta", &text_delta("late")), ("error", r#"{"type":"error"}"#)],
    );
    assert!(items.iter().all(Result::is_ok));
    assert!(matches!(items.last(), Some(Ok(StreamEvent::Done { .. }))));
    assert_eq!(text_of(&items), "");
    assert!(parser.is_finished());
}

#[test]
fn structured_answer_streams_as_text_and_drops_preamble() {
    let items = run(
        answer_plan(false),
        &[
            START,
            ("content_block_delta", &text_delta("Sure, here it is: ")),
            ("content_block_start", &tool_start(1, "answer")),
            ("content_block_delta", &json_delta(1, "{\"a\":")),
            ("content_block_delta", &json_delta(1, " 1}")),
            ("content_block_stop", &block_stop(1)),
            ("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"}}"#),
            STOP,
        ],
    );
    assert_eq!(text_of(&items), "{\"a\": 1}");
    assert!(tool_calls(&items).is_empty());
    assert!(!items.iter().any(|i| matches!(i, Ok(StreamEvent::ToolCallDelta { .. }))));
    assert!(matches!(items.last(), Some(Ok(StreamEvent::Done { finish_reason: FinishReason::Stop, .. }))));
}

#[test]
fn wrapped_structured_answer_is_unwrapped_at_block_stop() {
    let items = run(
        answer_plan(true),
        &[
            START,
            ("content_block_start", &tool_start(0, "answer")),
            ("content_block_delta", &json_delta(0, "{\"value\": [1, ")),
            ("content_block_delta", &json_delta(0, "2]}")),
            ("content_block_stop", &block_stop(0)),
            STOP,
        ],
    );
    assert_eq!(text_of(&items), "[1,2]");

    // An answer tool called with no fragments at all answers `{}`.
    let items = run(
        answer_plan(false),
        &[
            START,
            ("content_block_start", &tool_start(0, "answer")),
            ("content_block_stop", &block_stop(0)),
            STOP,
        ],
    );
    assert_eq!(text_of(&items), "{}");
}

#[test]
fn structured_mode_without_the_answer_tool_flushes_held_text() {
    let items = run(answer_plan(false), &[START, ("content_block_delta", &text_delta("plain")), STOP]);
    assert_eq!(text_of(&items), "plain");
    // On an error, held text is flushed first so that it lands in the partial output.
    let items = run(
        answer_plan(false),
        &[
            START,
            ("content_block_delta", &text_delta("half")),
            ("error", r#"{"type":"error","error":{"type":"api_error"}}"#),
        ],
    );
    assert_eq!(text_of(&items), "half");
    assert_eq!(last_error(&items).kind, ErrorKind::Transient);
}

#[test]
fn unsigned_thinking_is_reasoning_only() {
    // llama-server sends thinking with an empty signature: shown as reasoning, never carried.
    let items = run(
        Plan::default(),
        &[
            START,
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":""}}"#,
            ),
            ("content_block_stop", &block_stop(0)),
            ("content_block_start", &tool_start(1, "t")),
            ("content_block_stop", &block_stop(1)),
            STOP,
        ],
    );
    assert!(items.iter().any(|i| matches!(i, Ok(StreamEvent::ReasoningDelta { text }) if text == "hmm")));
    assert_eq!(tool_calls(&items)[0].signature, None);
}
