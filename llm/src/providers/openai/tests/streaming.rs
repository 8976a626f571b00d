//! The chunk parser, fed directly: ends, tool-call assembly, hostile input.

use super::*;

fn events(parser: &mut ChunkParser, chunks: &[&str]) -> Vec<Result<StreamEvent, crate::Error>> {
    let mut out = Vec::new();
    for c in chunks {
        out.extend(parser.on_event("message", c));
    }
    out
}

fn ok(items: Vec<Result<StreamEvent, crate::Error>>) -> Vec<StreamEvent> {
    items.into_iter().map(|e| e.expect("event")).collect()
}

fn completed(events: &[StreamEvent]) -> Vec<ToolCall> {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCall { call } => Some(call.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn done_without_finish_reason_infers_it() {
    let mut p = ChunkParser::new(http(), "m");
    let ev = ok(events(&mut p, &[r#"{"choices":[{"delta":{"content":"hi"}}]}"#, "[DONE]"]));
    assert!(
        matches!(ev.last(), Some(StreamEvent::Done { finish_reason: FinishReason::Stop, model, .. }) if model == "m")
    );
    assert!(p.is_finished());
    // Nothing after [DONE] is read.
    assert!(p.on_event("message", r#"{"choices":[{"delta":{"content":"late"}}]}"#).is_empty());
    assert!(p.on_end().is_empty());

    let mut p = ChunkParser::new(http(), "m");
    let ev = ok(events(
        &mut p,
        &[
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"t","arguments":"{}"}}]}}]}"#,
            "[DONE]",
        ],
    ));
    assert_eq!(completed(&ev).len(), 1);
    assert!(matches!(ev.last(), Some(StreamEvent::Done { finish_reason: FinishReason::ToolCalls, .. })));
}

#[test]
fn tool_calls_without_index_or_id() {
    let mut p = ChunkParser::new(http(), "m");
    let ev = ok(events(
        &mut p,
        &[
            // No index: a new id starts a new call, fragments continue the last one.
            r#"{"choices":[{"delta":{"tool_calls":[{"id":"a","function":{"name":"t1","arguments":"{\"x\""}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":":1}"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"id":"b","function":{"name":"t2","arguments":{"y":2}}}]}}]}"#,
            // An index-keyed call with no id at all.
            r#"{"choices":[{"delta":{"tool_calls":[{"index":7,"function":{"name":"t3","arguments":"oops"}}]}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
            "[DONE]",
        ],
    ));
    let calls = completed(&ev);
    assert_eq!(calls.len(), 3);
    assert_eq!(
        (calls[0].id.as_str(), calls[0].name.as_str(), &calls[0].args),
        ("a", "t1", &json!({ "x": 1 }))
    );
    assert_eq!((calls[1].id.as_str(), &calls[1].args), ("b", &json!({ "y": 2 })));
    assert_eq!(calls[2].name, "t3");
    assert_eq!(calls[2].args, json!("oops"));
    assert!(!calls[2].id.is_empty() && calls[2].id != "a" && calls[2].id != "b");
    // The synthesised id was announced in the first delta, so a collector can match it.
    assert!(ev.iter().any(
        |e| matches!(e, StreamEvent::ToolCallDelta { index: 7, id: Some(id), .. } if *id == calls[2].id)
    ));
}

#[test]
fn a_late_real_id_replaces_the_synthesised_one() {
    let mut p = ChunkParser::new(http(), "m");
    let ev = ok(events(
        &mut p,
        &[
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"t","arguments":"{"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"real","function":{"arguments":"}"}}]}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
        ],
    ));
    assert_eq!(completed(&ev)[0].id, "real");
    let mut collector = crate::stream::Collector::new();
    for e in &ev {
        collector.push(e);
    }
    assert!(collector.partial().incomplete_tool_calls.is_empty());
}

#[test]
fn hostile_tool_call_deltas_are_decode_errors() {
    for index in ["-1", "4294967296", "1.5", "\"0\""] {
        let mut p = ChunkParser::new(http(), "m");
        let chunk = format!(
            r#"{{"choices":[{{"delta":{{"tool_calls":[{{"index":{index},"function":{{"arguments":"x"}}}}]}}}}]}}"#
        );
        let out = p.on_event("message", &chunk);
        assert!(matches!(out.last(), Some(Err(e)) if e.kind == ErrorKind::Decode), "index {index}");
        assert!(p.is_finished());
    }

    // Too many parallel calls.
    let mut p = ChunkParser::new(http(), "m");
    let calls: Vec<Value> =
        (0..=MAX_TOOL_CALLS).map(|i| json!({ "index": i, "id": format!("c{i}") })).collect();
    let chunk = json!({ "choices": [{ "delta": { "tool_calls": calls } }] }).to_string();
    assert!(matches!(p.on_event("message", &chunk).last(), Some(Err(e)) if e.kind == ErrorKind::Decode));

    // Arguments past the buffer cap.
    let options = HttpOptions { max_body_bytes: 16, ..HttpOptions::default() };
    let mut p = ChunkParser::new(Http::new("p", options, None), "m");
    let frag =
        r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"0123456789"}}]}}]}"#;
    assert!(p.on_event("message", frag).iter().all(Result::is_ok));
    assert!(matches!(p.on_event("message", frag).last(), Some(Err(e)) if e.kind == ErrorKind::Decode));
}

#[test]
fn malformed_chunks_and_error_events() {
    for data in ["{not json", "42", "[1,2]", "\"text\""] {
        let mut p = ChunkParser::new(http(), "m");
        let out = p.on_event("message", data);
        assert!(matches!(out.as_slice(), [Err(e)] if e.kind == ErrorKind::Decode), "{data}");
    }
    let mut p = ChunkParser::new(http(), "m");
    let out = p.on_event("error", r#"{"error":{"message":"overloaded","type":"overloaded_error"}}"#);
    assert!(
        matches!(out.as_slice(), [Err(e)] if e.kind == ErrorKind::Transient && e.message.contains("overloaded"))
    );
    let mut p = ChunkParser::new(http(), "m");
    let out = p.on_event("error", "plain words");
    assert!(matches!(out.as_slice(), [Err(e)] if e.kind == ErrorKind::Transient));
    // Keep-alive empty data, `usage: null`, and other choices are ignored.
    let mut p = ChunkParser::new(http(), "m");
    assert!(p.on_event("message", "  ").is_empty());
    let out =
        ok(p.on_event("message", r#"{"usage":null,"choices":[{"index":1,"delta":{"content":"other"}}]}"#));
    assert!(out.is_empty());
}

#[test]
fn transport_error_after_finish_reason_completes_the_answer() {
    let mut p = ChunkParser::new(http(), "m");
    let _ = events(&mut p, &[r#"{"choices":[{"delta":{"content":"hi"},"finish_reason":"stop"}]}"#]);
    let out = ok(p.on_transport_error(http().error(ErrorKind::Transient, "m", "reset")));
    assert!(matches!(out.last(), Some(StreamEvent::Done { finish_reason: FinishReason::Stop, .. })));

    let mut p = ChunkParser::new(http(), "m");
    let _ = events(&mut p, &[r#"{"choices":[{"delta":{"content":"hi"}}]}"#]);
    let out = p.on_transport_error(http().error(ErrorKind::Transient, "m", "reset"));
    assert!(matches!(out.as_slice(), [Err(e)] if e.message == "reset"));
}

#[test]
fn garbage_never_panics() {
    // Mutations of real chunks and bodies: every outcome is an event or a classified error.
    let seeds = [
        r#"{"id":"x","model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"hé","tool_calls":[{"index":0,"id":"c","type":"function","function":{"name":"t","arguments":"{\"a\":1}"}}]},"finish_reason":null}],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#,
        r#"{"choices":[{"index":0,"message":{"content":"x","tool_calls":[{"id":"c","function":{"name":"t","arguments":"{}"}}]},"finish_reason":"stop"}],"usage":{"prompt_tokens_details":{"cached_tokens":1}}}"#,
        r#"{"error":{"code":500,"message":"m","type":"server_error"}}"#,
    ];
    let mut rng = fastrand::Rng::with_seed(7);
    let alphabet: &[u8] = br#"{}[]":,0123456789-.eEtrufalsn \\abcxyz"#;
    for _ in 0..3000 {
        let seed = seeds[rng.usize(..seeds.len())].as_bytes();
        let mut bytes = seed.to_vec();
        for _ in 0..rng.usize(1..6) {
            let at = rng.usize(..bytes.len());
            match rng.u8(..3) {
                0 => bytes[at] = alphabet[rng.usize(..alphabet.len())],
                1 => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, alphabet[rng.usize(..alphabet.len())]),
            }
            if bytes.is_empty() {
                break;
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        let mut p = ChunkParser::new(http(), "m");
        let _ = p.on_event("message", &text);
        let _ = p.on_event("message", &text);
        let _ = p.on_end();
        if let Ok(value) = serde_json::from_str::<Value>(&text) {
            let _ = parse_response(&http(), "m", &value);
        }
    }
}
