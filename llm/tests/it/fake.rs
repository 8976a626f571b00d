//! The scriptable fake provider through the public API only; the recorder and the replay
//! provider are in `replay`.

mod replay;

use std::collections::HashSet;
use std::time::Duration;

use executus_llm::fake::{FakeProvider, Outcome, StreamScript};
use executus_llm::stream::collect;
use executus_llm::{ErrorKind, FinishReason, Message, Request, StreamEvent, ToolCall, Usage};
use futures::StreamExt;
use serde_json::json;

pub(crate) fn usage(input: u64, output: u64) -> Usage {
    Usage { input_tokens: input, output_tokens: output, ..Usage::default() }
}

// ---- FakeProvider --------------------------------------------------------------------------

#[tokio::test]
async fn outcome_queues_are_per_model() {
    let fake = FakeProvider::new("fake");
    fake.push_text("a", "a1").push_text("b", "b1").push_text("a", "a2");
    let (a, b) = (fake.model("a"), fake.model("b"));
    assert_eq!(b.generate(Request::user("x")).await.unwrap().text(), "b1");
    assert_eq!(a.generate(Request::user("x")).await.unwrap().text(), "a1");
    assert_eq!(a.generate(Request::user("x")).await.unwrap().text(), "a2");
    let exhausted = b.generate(Request::user("x")).await.unwrap_err();
    assert_eq!(exhausted.kind, ErrorKind::Permanent);
    assert!(exhausted.message.contains("no scripted outcome left for model b"), "{exhausted}");
    let r = a.generate(Request::user("x")).await;
    assert!(r.is_err(), "model a's queue is empty too");
}

#[tokio::test]
async fn fallback_repeats_once_the_queue_is_empty() {
    let fake = FakeProvider::new("fake").with_fallback(Outcome::text("again").with_usage(usage(1, 1)));
    fake.push_text("m", "first");
    let m = fake.model("m");
    let texts: Vec<String> = futures::future::join_all((0..4).map(|_| {
        let m = m.clone();
        async move { m.generate(Request::user("x")).await.unwrap().text() }
    }))
    .await;
    assert_eq!(texts.iter().filter(|t| *t == "first").count(), 1);
    assert_eq!(texts.iter().filter(|t| *t == "again").count(), 3);
    assert_eq!(fake.calls(), 4);
}

#[tokio::test]
async fn error_outcomes_are_classified_and_name_the_model() {
    let fake = FakeProvider::new("local");
    fake.push("m", Outcome::transient("503 upstream"))
        .push("m", Outcome::rate_limited(Duration::from_secs(2)))
        .push("m", Outcome::error(ErrorKind::NotFound, "no such model"));
    let m = fake.model("m");
    let e1 = m.generate(Request::user("x")).await.unwrap_err();
    assert_eq!((e1.kind, e1.provider.as_str(), e1.model.as_str()), (ErrorKind::Transient, "local", "m"));
    assert_eq!(e1.to_string(), "local/m: transient error: 503 upstream");
    // Through `stream`, an error outcome fails before the first event.
    let e2 = m.stream(Request::user("x")).await.err().unwrap();
    assert_eq!((e2.status, e2.retry_after), (Some(429), Some(Duration::from_secs(2))));
    let e3 = m.generate(Request::user("x")).await.unwrap_err();
    assert_eq!(e3.kind, ErrorKind::NotFound);
}

#[tokio::test]
async fn stream_script_mid_stream_error_keeps_partial_output() {
    let fake = FakeProvider::new("fake");
    let script = StreamScript::new()
        .text("Hel")
        .text("lo")
        .tool_call_delta(0, Some("c1"), Some("search"), "{\"q\":")
        .usage(usage(5, 2))
        .transient("overloaded_error");
    fake.push("m", Outcome::stream(script.clone())).push("m", Outcome::stream(script));

    let failure = collect(fake.model("m").stream(Request::user("x")).await.unwrap()).await.unwrap_err();
    assert_eq!(failure.error.kind, ErrorKind::Transient);
    assert_eq!((failure.error.provider.as_str(), failure.error.model.as_str()), ("fake", "m"));
    assert_eq!(failure.partial.text, "Hello");
    assert_eq!(failure.partial.usage, usage(5, 2));
    assert_eq!(
        failure.partial.incomplete_tool_calls,
        vec![("c1".to_owned(), "search".to_owned(), "{\"q\":".to_owned())]
    );
    // `generate` on the same script collects it and returns the error.
    let err = fake.model("m").generate(Request::user("x")).await.unwrap_err();
    assert_eq!(err.message, "overloaded_error");
}

#[tokio::test]
async fn generate_collects_scripts_and_stream_replays_responses() {
    let call = ToolCall { id: "c9".into(), name: "add".into(), args: json!({ "a": 1 }), signature: None };
    let fake = FakeProvider::new("fake");
    fake.push(
        "m",
        Outcome::stream(
            StreamScript::new()
                .text("4")
                .text("2")
                .tool_call(call.clone())
                .usage(usage(3, 1))
                .done_with(FinishReason::ToolCalls),
        ),
    );
    fake.push("m", Outcome::tool_calls([call.clone()]).with_usage(usage(7, 8)));

    let collected = fake.model("m").generate(Request::user("x")).await.unwrap();
    assert_eq!(collected.text(), "42");
    assert_eq!(collected.tool_calls(), vec![call.clone()]);
    assert_eq!((collected.provider.as_str(), collected.model.as_str()), ("fake", "m"));
    assert_eq!(collected.finish_reason, FinishReason::ToolCalls);

    let events: Vec<StreamEvent> =
        fake.model("m").stream(Request::user("x")).await.unwrap().map(|e| e.unwrap()).collect().await;
    assert_eq!(
        events,
        vec![
            StreamEvent::ToolCall { call },
            StreamEvent::Usage { usage: usage(7, 8) },
            StreamEvent::Done {
                finish_reason: FinishReason::ToolCalls,
                provider: "fake".into(),
                model: "m".into()
            },
        ]
    );
    let recorded = fake.requests();
    assert_eq!(recorded.iter().map(|r| r.streamed).collect::<Vec<_>>(), vec![false, true]);
}

#[tokio::test(start_paused = true)]
async fn delays_run_on_the_tokio_clock() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::text("late").after(Duration::from_secs(30)));
    fake.push(
        "m",
        Outcome::stream(StreamScript::new().text("a").delay(Duration::from_secs(5)).text("b").done()),
    );
    let m = fake.model("m");
    let start = tokio::time::Instant::now();
    let early = tokio::time::timeout(Duration::from_secs(10), m.generate(Request::user("x"))).await;
    assert!(early.is_err(), "a 30 s delay must outlast a 10 s timeout");
    assert_eq!(start.elapsed(), Duration::from_secs(10));
    // The timed-out call consumed the outcome; the stream script's own pause is 5 s.
    let mut stream = m.stream(Request::user("y")).await.unwrap();
    assert!(matches!(stream.next().await, Some(Ok(StreamEvent::TextDelta { .. }))));
    let before = tokio::time::Instant::now();
    assert!(matches!(stream.next().await, Some(Ok(StreamEvent::TextDelta { .. }))));
    assert_eq!(before.elapsed(), Duration::from_secs(5));

    fake.push("m", Outcome::text("slow").after(Duration::from_secs(30)));
    let r = m.generate(Request::user("z")).await.unwrap();
    assert_eq!(r.text(), "slow");
    assert_eq!(start.elapsed(), Duration::from_secs(45));
}

#[tokio::test(start_paused = true)]
async fn pending_marker_and_hang_let_timeouts_fire() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::stream(StreamScript::new().text("partial").pending()));
    fake.push("m", Outcome::hang());
    let m = fake.model("m");
    let mut stream = m.stream(Request::user("x")).await.unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap(), StreamEvent::TextDelta { text: "partial".into() });
    let idle = tokio::time::timeout(Duration::from_secs(60), stream.next()).await;
    assert!(idle.is_err(), "the pending marker never resolves");
    let hung = tokio::time::timeout(Duration::from_secs(600), m.generate(Request::user("x"))).await;
    assert!(hung.is_err(), "a hang never answers");
}

#[tokio::test]
async fn dynamic_outcomes_see_the_request() {
    let fake = FakeProvider::new("fake").with_fallback(Outcome::dynamic(|req: &Request| {
        let last = req.messages.last().map(Message::text).unwrap_or_default();
        if last.contains("fail") {
            Outcome::permanent("asked to fail")
        } else {
            Outcome::text(format!("echo: {last}"))
        }
    }));
    let m = fake.model("m");
    assert_eq!(m.generate(Request::user("ping")).await.unwrap().text(), "echo: ping");
    assert_eq!(m.generate(Request::user("please fail")).await.unwrap_err().kind, ErrorKind::Permanent);
}

#[tokio::test]
async fn requests_are_recorded_with_their_model() {
    let fake = FakeProvider::new("fake").with_fallback(Outcome::text("ok"));
    let req_a = Request::user("to a").with_system("sys");
    fake.model("a").generate(req_a.clone()).await.unwrap();
    let _unpolled = fake.model("b").stream(Request::user("to b")).await.unwrap();
    fake.model("a").generate(Request::user("again")).await.unwrap();

    let all = fake.requests();
    assert_eq!(all.iter().map(|r| r.model.as_str()).collect::<Vec<_>>(), vec!["a", "b", "a"]);
    assert_eq!(all[0].request, req_a);
    assert_eq!(fake.requests_for("a"), vec![req_a, Request::user("again")]);
    assert_eq!(fake.last_request("b"), Some(Request::user("to b")));
    assert_eq!((fake.calls(), fake.calls_for("a"), fake.calls_for("zzz")), (3, 2, 0));
    fake.clear_requests();
    assert_eq!(fake.calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_use_from_many_tasks() {
    let fake = FakeProvider::new("fake");
    for i in 0..100 {
        fake.push("queued", Outcome::text(format!("q{i}")));
    }
    fake.fallback_for("echo", Outcome::dynamic(|req: &Request| Outcome::text(req.messages[0].text())));
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let fake = fake.clone();
            tokio::spawn(async move {
                let queued = fake.model("queued").generate(Request::user("x")).await.unwrap().text();
                let echo = fake.model("echo").generate(Request::user(format!("e{i}"))).await.unwrap();
                (queued, i, echo.text())
            })
        })
        .collect();
    let mut queued = HashSet::new();
    for task in tasks {
        let (q, i, echo) = task.await.unwrap();
        assert_eq!(echo, format!("e{i}"));
        assert!(queued.insert(q), "each queued outcome is served exactly once");
    }
    assert_eq!(queued.len(), 100);
    assert_eq!((fake.calls(), fake.remaining("queued")), (200, 0));
}
