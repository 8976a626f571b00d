use std::path::Path;
use std::time::Duration;

use serde_json::json;

use super::canon::{self, Canon};
use super::transcript::{self, RecordedError, TranscriptError};
use super::*;
use crate::error::{Attempt, Error, ErrorKind};
use crate::secret::Secret;
use crate::types::{Capabilities, Message, Request};

#[test]
fn canonical_key_ignores_object_key_order() {
    let a = json!({ "b": 1, "a": { "y": [1, { "q": 2, "p": 3 }], "x": "s" } });
    let b = json!({ "a": { "x": "s", "y": [1, { "p": 3, "q": 2 }] }, "b": 1 });
    assert_eq!(canon::key(&a), canon::key(&b));
    assert_ne!(canon::key(&a), canon::key(&json!({ "b": 2, "a": a["a"] })));
    assert_eq!(canon::key(&json!({ "k": "a\"b" })), r#"{"k":"a\"b"}"#);
}

#[test]
fn first_difference_names_the_path() {
    let recorded = json!({ "messages": [
        { "role": "user", "parts": [{ "type": "text", "text": "hi" }] },
        { "role": "assistant", "parts": [{ "type": "text", "text": "hello" }] }
    ]});
    let mut got = recorded.clone();
    got["messages"][1]["parts"][0]["text"] = json!("hallo");
    let d = canon::first_difference(&recorded, &got).unwrap();
    assert_eq!(d.path, "messages[1].parts[0].text");
    assert_eq!(d.describe(), r#"messages[1].parts[0].text: recorded "hello", got "hallo""#);

    let d = canon::first_difference(&json!({ "a": [1] }), &json!({ "a": [1, 2] })).unwrap();
    assert_eq!((d.path.as_str(), d.recorded, d.got.as_deref()), ("a[1]", None, Some("2")));
    let d = canon::first_difference(&json!({ "extra": { "x-y": 1 } }), &json!({ "extra": {} })).unwrap();
    assert_eq!(d.path, r#"extra["x-y"]"#);
    assert!(canon::first_difference(&recorded, &recorded).is_none());
}

#[test]
fn distance_counts_differing_leaves() {
    let base = json!({ "a": 1, "b": [1, 2], "c": "x" });
    assert_eq!(canon::distance(&base, &base), 0);
    assert_eq!(canon::distance(&base, &json!({ "a": 2, "b": [1, 2], "c": "x" })), 1);
    assert_eq!(canon::distance(&base, &json!({ "a": 2, "b": [1], "c": "y" })), 3);
}

#[test]
fn canon_scrubs_and_ignores_fields() {
    let canon = Canon { ignore: vec!["seed".into()], secrets: vec![Secret::new("sk-secret-99")] };
    let mut request = Request::user("key sk-secret-99 here");
    request.seed = Some(7);
    request.extra.insert("sk-secret-99".into(), json!(["sk-secret-99"]));
    let value = canon.value(&request);
    assert!(value.get("seed").is_none());
    let text = value.to_string();
    assert!(!text.contains("sk-secret-99"), "{text}");
    assert!(text.contains("key [redacted] here"));
    assert_eq!(value["extra"]["[redacted]"], json!(["[redacted]"]));
}

#[test]
fn transcript_parse_reports_path_and_line() {
    let path = Path::new("/tmp/t.jsonl");
    let good = serde_json::to_string(&TranscriptEntry {
        provider: "p".into(),
        model: "m".into(),
        request: Request::user("hi"),
        response: None,
        error: Some(RecordedError::from(&Error::transient("p", "m", "busy"))),
    })
    .unwrap();
    let parsed = transcript::parse(&format!("\n{good}\n\n{good}\n"), path).unwrap();
    assert_eq!(parsed.iter().map(|l| l.line).collect::<Vec<_>>(), vec![2, 4]);

    let cases = [
        (format!("{good}\n{{not json"), 2, "key must be a string"),
        (r#"{"provider":"p","model":"m","request":{"messages":[]}}"#.to_owned(), 1, "neither"),
        (
            good.replace(r#""error":"#, r#""response":{"message":{"role":"assistant","parts":[]},"usage":{"input_tokens":0,"output_tokens":0},"finish_reason":"stop","provider":"p","model":"m"},"error":"#),
            1,
            "both",
        ),
        (good.replace("transient", "sideways"), 1, "unknown error kind"),
    ];
    for (text, line, needle) in cases {
        let err = transcript::parse(&text, path).unwrap_err();
        let TranscriptError::Malformed { line: got, .. } = &err else { panic!("{err:?}") };
        assert_eq!(*got, line, "{err}");
        let shown = err.to_string();
        assert!(shown.contains("/tmp/t.jsonl") && shown.contains(&format!("line {line}")), "{shown}");
        assert!(shown.contains(needle), "{shown}");
    }
}

#[test]
fn recorded_errors_round_trip() {
    let mut error = Error::new(ErrorKind::Exhausted, "chain", "a, b", "all failed")
        .with_status(503)
        .with_retry_after(Some(Duration::from_millis(1500)));
    error.attempts.push(Attempt {
        provider: "p".into(),
        model: "a".into(),
        attempt: 2,
        kind: ErrorKind::Transient,
        status: Some(529),
        message: "overloaded".into(),
    });
    error.skipped.push("q/b (benched)".into());
    let recorded = RecordedError::from(&error);
    let json = serde_json::to_string(&recorded).unwrap();
    let back: RecordedError = serde_json::from_str(&json).unwrap();
    let rebuilt = back.to_error().unwrap();
    assert_eq!(rebuilt.to_string(), error.to_string());
    assert_eq!(rebuilt.retry_after, Some(Duration::from_millis(1500)));
    assert_eq!(rebuilt.attempts, error.attempts);
}

#[tokio::test]
async fn empty_queue_error_counts_served_requests() {
    let fake = FakeProvider::new("f1");
    fake.push_text("m", "one");
    let model = fake.model("m");
    model.generate(Request::user("a")).await.unwrap();
    let err = model.generate(Request::user("b")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permanent);
    assert_eq!((err.provider.as_str(), err.model.as_str()), ("f1", "m"));
    assert_eq!(err.message, "fake provider f1: no scripted outcome left for model m (1 requests served)");
    // The failed call is still recorded.
    assert_eq!(fake.calls_for("m"), 2);
    let err = model.stream(Request::user("c")).await.err().unwrap();
    assert!(err.message.contains("(1 requests served)"), "{err}");
}

#[tokio::test]
async fn model_fallback_wins_over_provider_fallback() {
    let fake = FakeProvider::new("f")
        .with_fallback(Outcome::text("global"))
        .with_outcomes("a", [Outcome::text("queued")]);
    fake.fallback_for("a", Outcome::text("for a"));
    let a = fake.model("a");
    let b = fake.model("b");
    assert_eq!(a.generate(Request::user("1")).await.unwrap().text(), "queued");
    assert_eq!(a.generate(Request::user("2")).await.unwrap().text(), "for a");
    assert_eq!(b.generate(Request::user("3")).await.unwrap().text(), "global");
    assert_eq!(fake.remaining("a"), 0);
}

#[tokio::test]
async fn a_dynamic_outcome_that_never_settles_is_an_error_not_a_spin() {
    fn forever() -> Outcome {
        Outcome::dynamic(|_| forever())
    }
    let fake = FakeProvider::new("f");
    fake.push("m", forever());
    let err = fake.model("m").generate(Request::user("x")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permanent);
    assert!(err.message.contains("dynamic outcomes"), "{err}");
}

#[tokio::test]
async fn truncated_script_is_transient_and_names_the_fake() {
    let fake = FakeProvider::new("f");
    fake.push("m", Outcome::stream(StreamScript::new().text("par")));
    let err = fake.model("m").generate(Request::user("x")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transient);
    assert_eq!((err.provider.as_str(), err.model.as_str()), ("f", "m"));
}

#[tokio::test]
async fn capabilities_and_outcome_helpers() {
    let caps = Capabilities { tools: Some(true), vision: Some(false), ..Capabilities::UNKNOWN };
    let fake = FakeProvider::new("f").with_capabilities("m", caps);
    assert_eq!(fake.model("m").capabilities(), caps);
    assert_eq!(fake.model("other").capabilities(), Capabilities::UNKNOWN);

    fake.push("m", Outcome::tool_call("search", json!({ "q": "rust" })));
    fake.push("m", Outcome::json(&json!({ "ok": true })).with_model("m-2024"));
    fake.push("m", Outcome::rate_limited(Duration::from_secs(3)));
    let model = fake.model("m");
    let r = model.generate(Request::user("x")).await.unwrap();
    assert_eq!(r.finish_reason, crate::FinishReason::ToolCalls);
    assert_eq!(r.tool_calls()[0].args, json!({ "q": "rust" }));
    let r = model.generate(Request::user("x")).await.unwrap();
    assert_eq!((r.text().as_str(), r.model.as_str(), r.provider.as_str()), (r#"{"ok":true}"#, "m-2024", "f"));
    let e = model.generate(Request::user("x")).await.unwrap_err();
    assert_eq!((e.status, e.retry_after), (Some(429), Some(Duration::from_secs(3))));
    assert!(format!("{:?}", Outcome::dynamic(|_| Outcome::hang())).contains("Dynamic"));
    assert_eq!(Message::user("x"), fake.last_request("m").unwrap().messages[0]);
}
