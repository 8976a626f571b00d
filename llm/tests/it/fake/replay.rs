//! The recorder and the replay provider: transcripts written from (fake) live traffic and
//! answered from offline.

use std::sync::Arc;
use std::time::Duration;

use executus_llm::fake::{
    FakeProvider, Outcome, Recorder, ReplayOptions, ReplayProvider, StreamScript, TranscriptEntry,
    TranscriptError, TranscriptWriter,
};
use executus_llm::stream::collect;
use executus_llm::{ErrorKind, FinishReason, Message, Model, Request, Secret, Usage};
use serde_json::json;

use super::usage;

fn conversation(second: &str) -> Request {
    let mut r = Request::user("hello").with_system("be brief");
    r.messages.push(Message::assistant("hi"));
    r.messages.push(Message::user(second));
    r.temperature = Some(0.7);
    r
}

#[tokio::test]
async fn record_then_replay_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let fake = FakeProvider::new("openai");
    fake.push("gpt", Outcome::text("one").with_usage(usage(10, 2)))
        .push("gpt", Outcome::tool_call("search", json!({ "q": "x" })))
        .push("gpt", Outcome::stream(StreamScript::new().text("str").text("eamed").usage(usage(4, 4)).done()))
        .push("gpt", Outcome::rate_limited(Duration::from_millis(1500)));
    let writer = TranscriptWriter::create(&path).unwrap();
    let recorder: Arc<dyn Model> = writer.record(fake.model("gpt"));
    assert_eq!((recorder.provider(), recorder.model_id()), ("openai", "gpt"));

    let requests = [Request::user("a"), conversation("b"), Request::user("c"), Request::user("d")];
    let live0 = recorder.generate(requests[0].clone()).await.unwrap();
    let live1 = recorder.generate(requests[1].clone()).await.unwrap();
    let live2 = collect(recorder.stream(requests[2].clone()).await.unwrap()).await.unwrap();
    let live3 = recorder.generate(requests[3].clone()).await.unwrap_err();
    assert_eq!(writer.failed_writes(), 0);
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 4);

    let replay = ReplayProvider::open(&path).unwrap();
    assert_eq!(replay.len(), 4);
    let m = replay.model("gpt");
    assert_eq!(m.generate(requests[0].clone()).await.unwrap(), live0);
    // A recorded response also replays as a stream.
    assert_eq!(collect(m.stream(requests[1].clone()).await.unwrap()).await.unwrap(), live1);
    assert_eq!(m.generate(requests[2].clone()).await.unwrap(), live2);
    assert_eq!(live2.text(), "streamed");
    let err = m.generate(requests[3].clone()).await.unwrap_err();
    assert_eq!(
        (err.kind, err.status, err.retry_after, err.to_string()),
        (live3.kind, live3.status, live3.retry_after, live3.to_string())
    );
    assert_eq!(replay.remaining(), 0);
}

/// Records a swarm of 2 models x 3 prompts, one call per cell, in cell order.
async fn record_swarm(path: &std::path::Path) {
    let fake = FakeProvider::new("swarm").with_fallback(Outcome::dynamic(|req: &Request| {
        Outcome::text(format!("answer to {}", req.messages[0].text()))
    }));
    let writer = TranscriptWriter::create(path).unwrap();
    for model in ["m1", "m2"] {
        let rec = writer.record(fake.model(model));
        for prompt in ["p1", "p2", "p3"] {
            let r = rec.generate(Request::user(format!("{model}:{prompt}"))).await.unwrap();
            assert_eq!(r.model, model);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_out_of_order_replay_of_a_recorded_swarm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("swarm.jsonl");
    record_swarm(&path).await;
    let replay = ReplayProvider::open(&path).unwrap();
    // Reverse and interleave the recorded order, and run all cells at once.
    let cells = [("m2", "p3"), ("m1", "p2"), ("m2", "p1"), ("m1", "p3"), ("m2", "p2"), ("m1", "p1")];
    let tasks: Vec<_> = cells
        .iter()
        .map(|(model, prompt)| {
            let m = replay.model(model);
            let question = format!("{model}:{prompt}");
            tokio::spawn(async move {
                let r = m.generate(Request::user(question.clone())).await.unwrap();
                (question, r)
            })
        })
        .collect();
    for task in tasks {
        let (question, response) = task.await.unwrap();
        assert_eq!(response.text(), format!("answer to {question}"));
        assert_eq!(response.provider, "swarm");
    }
    assert_eq!(replay.remaining(), 0);
    let again = replay.model("m1").generate(Request::user("m1:p1")).await.unwrap_err();
    assert!(again.message.contains("already served"), "{again}");
}

#[tokio::test]
async fn identical_requests_are_served_in_recorded_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let fake = FakeProvider::new("p");
    fake.push_text("m", "first").push_text("m", "second").push_text("m", "third");
    let rec = Recorder::new(fake.model("m"), TranscriptWriter::create(&path).unwrap());
    for q in ["same", "other", "same"] {
        rec.generate(Request::user(q)).await.unwrap();
    }
    let replay = ReplayProvider::open(&path).unwrap();
    let m = replay.model("m");
    assert_eq!(m.generate(Request::user("same")).await.unwrap().text(), "first");
    assert_eq!(m.generate(Request::user("same")).await.unwrap().text(), "third");
    assert_eq!(m.generate(Request::user("other")).await.unwrap().text(), "second");
}

#[tokio::test]
async fn a_mismatch_names_the_closest_entry_and_the_differing_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let fake = FakeProvider::new("p").with_fallback(Outcome::text("ok"));
    let rec = Recorder::new(fake.model("m"), TranscriptWriter::create(&path).unwrap());
    rec.generate(Request::user("unrelated question entirely")).await.unwrap();
    rec.generate(conversation("what is 2+2?")).await.unwrap();

    let replay = ReplayProvider::open(&path).unwrap();
    let err = replay.model("m").generate(conversation("what is 2+3?")).await.unwrap_err();
    assert_eq!((err.kind, err.model.as_str()), (ErrorKind::Permanent, "m"));
    let msg = err.to_string();
    assert!(msg.contains("no recorded call for model m matches"), "{msg}");
    assert!(msg.contains("closest is entry #1 (line 2)"), "{msg}");
    assert!(
        msg.contains(r#"messages[2].parts[0].text: recorded "what is 2+2?", got "what is 2+3?""#),
        "{msg}"
    );
    assert!(msg.contains(&path.display().to_string()), "{msg}");

    let unknown = replay.model("nope").generate(Request::user("x")).await.unwrap_err();
    assert!(unknown.message.contains("no recorded call for model nope (recorded models: m)"), "{unknown}");
    // Ignoring a field makes requests that differ only there match.
    let mut hotter = Request::user("unrelated question entirely");
    hotter.temperature = Some(1.5);
    assert!(replay.model("m").generate(hotter.clone()).await.is_err());
    let lenient = ReplayProvider::open_with(&path, ReplayOptions::new().ignore_field("temperature")).unwrap();
    assert_eq!(lenient.model("m").generate(hotter).await.unwrap().text(), "ok");
}

#[tokio::test]
async fn strict_order_requires_the_recorded_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    record_swarm(&path).await;

    let strict = ReplayProvider::open_with(&path, ReplayOptions::new().strict_order(true)).unwrap();
    let err = strict.model("m1").generate(Request::user("m1:p2")).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("strict order") && msg.contains("entry #0 (line 1)"), "{msg}");
    assert!(msg.contains(r#"messages[0].parts[0].text: recorded "m1:p1", got "m1:p2""#), "{msg}");
    let err = strict.model("m2").generate(Request::user("m2:p1")).await.unwrap_err();
    assert!(err.message.contains("recorded for model m1, not m2"), "{err}");
    for (model, prompt) in
        [("m1", "p1"), ("m1", "p2"), ("m1", "p3"), ("m2", "p1"), ("m2", "p2"), ("m2", "p3")]
    {
        let r = strict.model(model).generate(Request::user(format!("{model}:{prompt}"))).await.unwrap();
        assert_eq!(r.text(), format!("answer to {model}:{prompt}"));
    }
    let done = strict.model("m1").generate(Request::user("m1:p1")).await.unwrap_err();
    assert!(done.message.contains("all 6 recorded calls were already served"), "{done}");

    // The same out-of-order call is fine by content.
    let relaxed = ReplayProvider::open(&path).unwrap();
    assert!(relaxed.model("m2").generate(Request::user("m2:p3")).await.is_ok());
}

#[test]
fn a_malformed_line_names_the_path_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.jsonl");
    let good = r#"{"provider":"p","model":"m","request":{"messages":[]},"error":{"kind":"transient","provider":"p","model":"m","message":"x"}}"#;
    std::fs::write(&path, format!("{good}\n{good}\n{{\"provider\": 3}}\n")).unwrap();
    let err = ReplayProvider::open(&path).unwrap_err();
    assert!(matches!(err, TranscriptError::Malformed { line: 3, .. }), "{err:?}");
    let shown = err.to_string();
    assert!(shown.starts_with(&format!("transcript {}, line 3:", path.display())), "{shown}");

    let missing = ReplayProvider::open(dir.path().join("absent.jsonl")).unwrap_err();
    assert!(matches!(missing, TranscriptError::Io { .. }), "{missing:?}");
    assert!(missing.to_string().contains("absent.jsonl"));
}

#[tokio::test]
async fn secrets_are_scrubbed_from_the_transcript() {
    const KEY: &str = "sk-proj-SECRET1234567890";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let fake = FakeProvider::new("openai");
    fake.push("m", Outcome::text(format!("your key {KEY} is safe with me")));
    fake.push("m", Outcome::stream(StreamScript::new().text("again ").text(KEY).done()));
    fake.push("m", Outcome::permanent(format!("bad key {KEY}")));
    let writer = TranscriptWriter::create(&path).unwrap().with_secrets([Secret::new(KEY)]);
    let rec = Recorder::new(fake.model("m"), writer);
    let mut request = Request::user(format!("here is my key: {KEY}"));
    request.extra.insert("api_key".into(), json!(KEY));
    let live = rec.generate(request.clone()).await.unwrap();
    assert!(live.text().contains(KEY), "the caller still sees the real response");
    collect(rec.stream(request.clone()).await.unwrap()).await.unwrap();
    rec.generate(request.clone()).await.unwrap_err();

    let written = std::fs::read_to_string(&path).unwrap();
    assert_eq!(written.lines().count(), 3);
    assert!(!written.contains(KEY), "{written}");
    assert!(!written.contains("SECRET1234"), "{written}");
    assert!(written.contains("here is my key: [redacted]"), "{written}");
    assert!(!written.to_lowercase().contains("authorization"), "{written}");

    // Replaying with the same secrets scrubs the live request the same way before matching.
    let replay = ReplayProvider::open_with(&path, ReplayOptions::new().secrets([Secret::new(KEY)])).unwrap();
    let r = replay.model("m").generate(request.clone()).await.unwrap();
    assert_eq!(r.text(), "your key [redacted] is safe with me");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_recording_writes_whole_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let fake = FakeProvider::new("p")
        .with_fallback(Outcome::dynamic(|req: &Request| Outcome::text(req.messages[0].text().repeat(200))));
    let writer = TranscriptWriter::append(&path).unwrap();
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let rec = writer.record(fake.model(if i % 2 == 0 { "even" } else { "odd" }));
            tokio::spawn(async move { rec.generate(Request::user(format!("q{i:02}"))).await.unwrap() })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let replay = ReplayProvider::open(&path).unwrap();
    assert_eq!(replay.len(), 40);
    for i in (0..40).rev() {
        let model = if i % 2 == 0 { "even" } else { "odd" };
        let q = format!("q{i:02}");
        let r = replay.model(model).generate(Request::user(q.clone())).await.unwrap();
        assert_eq!(r.text(), q.repeat(200));
    }
}

#[tokio::test]
async fn a_failed_stream_is_recorded_as_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let fake = FakeProvider::new("p");
    fake.push("m", Outcome::stream(StreamScript::new().text("part").transient("connection reset")));
    let rec = Recorder::new(fake.model("m"), TranscriptWriter::create(&path).unwrap());
    let failure = collect(rec.stream(Request::user("x")).await.unwrap()).await.unwrap_err();
    assert_eq!(failure.partial.text, "part");
    let replay = ReplayProvider::open(&path).unwrap();
    let err = replay.model("m").generate(Request::user("x")).await.unwrap_err();
    assert_eq!((err.kind, err.message.as_str()), (ErrorKind::Transient, "connection reset"));
}

#[tokio::test]
async fn match_provider_separates_providers_serving_the_same_model_id() {
    let entry = |provider: &str, answer: &str| TranscriptEntry {
        provider: provider.into(),
        model: "llama3".into(),
        request: Request::user("same question"),
        response: Some(executus_llm::Response {
            message: Message::assistant(answer),
            usage: Usage::default(),
            finish_reason: FinishReason::Stop,
            provider: provider.into(),
            model: "llama3".into(),
        }),
        error: None,
    };
    let entries = vec![entry("ollama", "from ollama"), entry("vllm", "from vllm")];
    let vllm =
        ReplayProvider::from_entries(entries.clone(), ReplayOptions::new().name("vllm").match_provider(true));
    assert_eq!(vllm.len(), 1);
    let r = vllm.model("llama3").generate(Request::user("same question")).await.unwrap();
    assert_eq!(r.text(), "from vllm");
    // Without the option, equal requests are served in recorded order whatever the provider.
    let any = ReplayProvider::from_entries(entries, ReplayOptions::new());
    let r = any.model("llama3").generate(Request::user("same question")).await.unwrap();
    assert_eq!(r.text(), "from ollama");
    let err = any.model("llama3").generate(Request::user("other")).await.unwrap_err();
    assert!(err.message.contains("(in-memory transcript)"), "{err}");
}
