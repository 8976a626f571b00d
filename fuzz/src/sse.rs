//! Target `sse`: arbitrary bytes as a streamed response body, through the HTTP line splitter
//! and SSE framing (`Http::sse`), alone or followed by the OpenAI, Anthropic (plain and
//! structured output) or Gemini chunk parser.
//!
//! Input: `[wire] [max_line u16] [max_body u16] [flags] [chunk seed u16] body...`
//! (`wire % 6`: 0 SSE framing only, 1 OpenAI, 2 Anthropic, 3 Anthropic with an object
//! response schema, 4 Anthropic with a wrapped (non-object) schema, 5 Gemini; limits are
//! `8 + value` bytes; flag bit 0 ends the body with a connection reset).
//!
//! Properties: no panic, no hang; nothing follows an error; a provider stream ends with
//! exactly one `Done` or with a classified error (never silently), and `Done` comes last;
//! no error shows the client's API key; and the outcome does not depend on where the
//! transport cut the body (the same bytes in one chunk give the same events and error kinds).

use executus_llm::fuzzing::{self, Body, Wire};
use executus_llm::{HttpOptions, Request, ResponseSchema, StreamEvent};
use serde_json::json;

use crate::{Reader, SECRET, assert_no_secret, block_on, cut};

/// Options and body decoded from a fuzz input.
#[derive(Debug)]
pub(crate) struct Setup {
    pub(crate) selector: u8,
    pub(crate) options: HttpOptions,
    pub(crate) body: Body,
}

/// Decodes the common header of the stream targets.
pub(crate) fn setup(data: &[u8]) -> Setup {
    let mut r = Reader::new(data);
    let selector = r.u8();
    let max_line = 8 + usize::from(r.u16());
    let max_body = 8 + usize::from(r.u16());
    let flags = r.u8();
    let seed = r.u16();
    let body = r.rest();
    let options =
        HttpOptions { max_line_bytes: max_line, max_body_bytes: max_body, ..HttpOptions::default() };
    Setup { selector, options, body: Body { chunks: cut(body, seed), reset: flags & 1 == 1 } }
}

/// One stream item in a form two runs can be compared by: events exactly, errors by kind
/// (messages may say where in a chunk a bad byte was).
pub(crate) fn normalize<T: std::fmt::Debug>(item: &executus_llm::Result<T>) -> String {
    match item {
        Ok(v) => format!("{v:?}"),
        Err(e) => format!("Err({:?})", e.kind),
    }
}

/// Nothing after an error; no error shows the key.
pub(crate) fn check_items<T: std::fmt::Debug>(items: &[executus_llm::Result<T>]) {
    for (i, item) in items.iter().enumerate() {
        if let Err(e) = item {
            assert_eq!(i + 1, items.len(), "items after an error: {items:?}");
            assert_no_secret("error", &e.to_string());
            assert_no_secret("error (Debug)", &format!("{e:?}"));
        }
    }
}

/// A provider stream ends with one `Done` or an error, and `Done` is last.
pub(crate) fn check_events(items: &[executus_llm::Result<StreamEvent>]) {
    check_items(items);
    let done = items.iter().filter(|i| matches!(i, Ok(StreamEvent::Done { .. }))).count();
    assert!(done <= 1, "more than one Done: {items:?}");
    match items.last() {
        Some(Ok(StreamEvent::Done { .. }) | Err(_)) => {}
        other => panic!("the stream ended without Done or an error (last: {other:?}): {items:?}"),
    }
}

/// Runs `run` on the chunked body and on the same bytes in one chunk; the outcomes must agree.
pub(crate) fn chunking_invariant<T: std::fmt::Debug>(
    body: &Body,
    run: impl Fn(Body) -> Vec<executus_llm::Result<T>>,
) -> Vec<executus_llm::Result<T>> {
    let chunked = run(body.clone());
    if body.chunks.len() > 1 {
        let whole = run(body.joined());
        let a: Vec<String> = chunked.iter().map(normalize).collect();
        let b: Vec<String> = whole.iter().map(normalize).collect();
        assert_eq!(a, b, "the outcome depends on chunk boundaries: {:?}", body.chunks);
    }
    chunked
}

fn structured(schema: serde_json::Value) -> Request {
    Request {
        response_schema: Some(ResponseSchema { name: "answer".into(), schema, strict: true }),
        ..Request::user("hi")
    }
}

/// The fuzz target.
pub fn check(data: &[u8]) {
    let Setup { selector, options, body } = setup(data);
    let wire = match selector % 6 {
        0 => {
            let items = chunking_invariant(&body, |b| block_on(fuzzing::sse(b, &options, Some(SECRET))));
            check_items(&items);
            for (event, data) in items.iter().flatten() {
                assert!(!event.contains(['\r', '\n']), "event name holds a line end: {event:?}");
                assert!(!data.contains('\r'), "data holds a CR: {data:?}");
            }
            return;
        }
        1 => Wire::OpenAi,
        2 => Wire::Anthropic(Box::new(Request::user("hi"))),
        3 => Wire::Anthropic(Box::new(structured(json!({"type": "object", "properties": {"a": {}}})))),
        4 => Wire::Anthropic(Box::new(structured(json!({"type": "array"})))),
        _ => Wire::Gemini,
    };
    let items = chunking_invariant(&body, |b| {
        // Synthesised call ids come from fastrand: the same seed makes both runs agree.
        fastrand::seed(7);
        block_on(fuzzing::events(wire.clone(), b, &options, Some(SECRET)))
    });
    check_events(&items);
}
