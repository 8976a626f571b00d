//! The failover chain matrix, over scripted models and a manual clock: no real sleeps (every
//! wait advances the manual clock, so waits are asserted exactly).

use std::sync::Arc;
use std::time::Duration;

use executus_llm::stream::collect;
use executus_llm::{
    Capabilities, Chain, ChainOptions, Error, ErrorKind, HealthConfig, HealthTracker, ManualClock, Model,
    Part, Request, ResponseSchema, StreamEvent, ToolSpec,
};
use futures::StreamExt;
use serde_json::json;

use crate::scripted::{Outcome, Recorder, Scripted, transient};

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

struct Rig {
    clock: ManualClock,
    health: HealthTracker,
    events: Arc<Recorder>,
    options: ChainOptions,
}

impl Rig {
    fn new() -> Self {
        Self::with_health(HealthConfig::default())
    }

    fn with_health(config: HealthConfig) -> Self {
        let clock = ManualClock::new();
        let health = HealthTracker::with_clock(config, Arc::new(clock.clone()));
        let options = ChainOptions::default().with_sleeper(Arc::new(clock.clone()));
        Self { clock, health, events: Arc::new(Recorder::default()), options }
    }

    fn chain(&self, targets: &[&Arc<Scripted>]) -> Chain {
        let models = targets.iter().map(|t| Arc::clone(*t) as Arc<dyn Model>);
        Chain::new("test-spec", models, self.health.clone())
            .with_options(self.options.clone())
            .with_observer(self.events.clone())
    }

    fn failures(&self, target: &str) -> u32 {
        self.health.snapshot().into_iter().find(|h| h.target == target).map_or(0, |h| h.consecutive_failures)
    }
}

fn hi() -> Request {
    Request::user("hi")
}

#[tokio::test]
async fn single_transient_is_recovered_by_retry_on_the_same_target() {
    let rig = Rig::new();
    let a = Scripted::new("a", "m");
    let b = Scripted::new("b", "m");
    a.push(Outcome::Fail(transient(&a)));
    let response = rig.chain(&[&a, &b]).generate(hi()).await.expect("answer");
    assert_eq!((response.provider.as_str(), response.model.as_str()), ("a", "m"));
    assert_eq!((a.calls(), b.calls()), (2, 0));
    let waited = rig.clock.elapsed();
    assert!((Duration::from_millis(125)..=Duration::from_millis(250)).contains(&waited), "{waited:?}");
    assert_eq!(rig.failures("a/m"), 0, "a recovered retry is no health failure");
    let events = rig.events.take();
    assert_eq!(events.len(), 4, "{events:?}");
    assert_eq!(events[0], "attempt a/m #1");
    assert!(events[1].starts_with("retry a/m #1 ") && events[1].ends_with(" transient"), "{events:?}");
    assert_eq!(events[2], "attempt a/m #2");
    assert_eq!(events[3], "success a/m 0ms");
}

#[tokio::test]
async fn repeated_transients_bench_the_target_and_advance() {
    let rig = Rig::new();
    let a = Scripted::new("a", "m");
    let b = Scripted::new("b", "m");
    a.always(Outcome::Fail(transient(&a)));
    let chain = rig.chain(&[&a, &b]);
    for round in 1..=3u32 {
        let response = chain.generate(hi()).await.expect("b answers");
        assert_eq!(response.provider, "b");
        assert_eq!(a.calls(), 3 * round as usize, "1 call + 2 retries per round");
        assert_eq!(rig.failures("a/m"), round, "one health failure per exhausted target");
    }
    assert_eq!(rig.health.is_benched("a/m"), Some(secs(10)));
    let events = rig.events.take();
    assert!(events.contains(&"bench a/m 10000ms".to_owned()), "{events:?}");
    // Benched: skipped without a call.
    chain.generate(hi()).await.expect("b answers");
    assert_eq!(a.calls(), 9);
    assert_eq!(rig.events.take(), ["skip a/m benched 10000ms", "attempt b/m #1", "success b/m 0ms"]);
}

fn refused(target: &Scripted) -> Error {
    transient(target).with_connection_refused()
}

#[tokio::test]
async fn a_refused_connection_advances_at_once_and_counts_against_health() {
    let rig = Rig::new();
    let a = Scripted::new("a", "m");
    let b = Scripted::new("b", "m");
    a.always(Outcome::Fail(refused(&a)));
    let chain = rig.chain(&[&a, &b]);
    for round in 1..=3u32 {
        let response = chain.generate(hi()).await.expect("b answers");
        assert_eq!(response.provider, "b");
        assert_eq!(a.calls(), round as usize, "no retry of a refused connection");
        assert_eq!(rig.failures("a/m"), round, "one health failure per refused request");
    }
    assert_eq!(rig.clock.elapsed(), Duration::ZERO, "no backoff was waited");
    assert_eq!(rig.health.is_benched("a/m"), Some(secs(10)), "three refusals bench it");
    let events = rig.events.take();
    assert!(!events.iter().any(|e| e.starts_with("retry")), "{events:?}");
    assert_eq!(
        &events[..4],
        ["attempt a/m #1", "failover a/m -> b/m transient", "attempt b/m #1", "success b/m 0ms"]
    );
}

#[tokio::test]
async fn a_refused_connection_is_retried_on_the_last_usable_target() {
    let rig = Rig::new();
    let a = Scripted::new("a", "m");
    a.push(Outcome::Fail(refused(&a)));
    let response = rig.chain(&[&a]).generate(hi()).await.expect("the retry answers");
    assert_eq!((response.provider.as_str(), a.calls()), ("a", 2), "nowhere else to go: retried");
    assert!(rig.clock.elapsed() > Duration::ZERO, "with the usual backoff");

    // A later target that is benched is nowhere to go either.
    let rig = Rig::new();
    let (a, b) = (Scripted::new("a", "m"), Scripted::new("b", "m"));
    for _ in 0..3 {
        rig.health.record_failure("b/m");
    }
    a.push(Outcome::Fail(refused(&a)));
    let response = rig.chain(&[&a, &b]).generate(hi()).await.expect("the retry answers");
    assert_eq!((response.provider.as_str(), a.calls(), b.calls()), ("a", 2, 0));
}

#[tokio::test]
async fn cooldown_expiry_readmits_the_target() {
    let rig = Rig::new();
    let a = Scripted::new("a", "m");
    let b = Scripted::new("b", "m");
    for _ in 0..3 {
        rig.health.record_failure("a/m");
    }
    let chain = rig.chain(&[&a, &b]);
    assert_eq!(chain.generate(hi()).await.expect("b").provider, "b");
    assert_eq!(a.calls(), 0);
    rig.clock.advance(secs(9));
    assert_eq!(chain.generate(hi()).await.expect("b").provider, "b", "still benched at 9 s");
    rig.clock.advance(secs(1));
    assert_eq!(chain.generate(hi()).await.expect("a").provider, "a", "re-admitted at 10 s");
    assert_eq!(a.calls(), 1);
    assert_eq!(rig.failures("a/m"), 0, "the success reset the count");
}

#[tokio::test]
async fn cooldown_doubles_on_each_rebench_and_caps_at_ten_minutes() {
    let mut rig = Rig::new();
    rig.options.retries = 0;
    let a = Scripted::new("a", "m");
    let b = Scripted::new("b", "m");
    a.always(Outcome::Fail(transient(&a)));
    let chain = rig.chain(&[&a, &b]);
    let mut cooldowns = Vec::new();
    for _ in 0..2 {
        chain.generate(hi()).await.expect("b");
    }
    for _ in 0..8 {
        chain.generate(hi()).await.expect("b");
        let cooldown = rig.health.is_benched("a/m").expect("benched");
        cooldowns.push(cooldown.as_secs());
        chain.generate(hi()).await.expect("b");
        rig.clock.advance(cooldown);
    }
    assert_eq!(cooldowns, [10, 20, 40, 80, 160, 320, 600, 600]);
    assert_eq!(a.calls(), 10, "never called while benched");
    let benches: Vec<String> = rig.events.take().into_iter().filter(|e| e.starts_with("bench")).collect();
    assert_eq!(benches.len(), 8);
    assert_eq!(benches[7], "bench a/m 600000ms");
}

#[tokio::test]
async fn a_success_resets_the_failure_count() {
    let mut rig = Rig::new();
    rig.options.retries = 0;
    let a = Scripted::new("a", "m");
    let b = Scripted::new("b", "m");
    let chain = rig.chain(&[&a, &b]);
    let fail = || Outcome::Fail(transient(&a));
    a.push(fail()).push(fail()).push(Outcome::Reply("ok".into())).push(fail()).push(fail());
    for _ in 0..5 {
        chain.generate(hi()).await.expect("someone answers");
    }
    assert_eq!(rig.failures("a/m"), 2);
    assert_eq!(rig.health.is_benched("a/m"), None, "2 + 2 failures around a success never bench");
}

#[tokio::test]
async fn permanent_fails_fast_without_advancing() {
    let rig = Rig::new();
    let a = Scripted::new("a", "m");
    let b = Scripted::new("b", "m");
    a.push(Outcome::Fail(Error::permanent("a", "m", "invalid api key").with_status(401)));
    let error = rig.chain(&[&a, &b]).generate(hi()).await.expect_err("fails fast");
    assert_eq!((error.kind, error.provider.as_str(), error.status), (ErrorKind::Permanent, "a", Some(401)));
    assert_eq!((a.calls(), b.calls()), (1, 0));
    assert_eq!(rig.clock.elapsed(), Duration::ZERO);
}

#[tokio::test]
async fn permanent_advances_under_advance_on_permanent() {
    let mut rig = Rig::new();
    rig.options.advance_on_permanent = true;
    let a = Scripted::new("a", "m");
    let b = Scripted::new("b", "m");
    a.push(Outcome::Fail(Error::permanent("a", "m", "bad request").with_status(400)));
    let response = rig.chain(&[&a, &b]).generate(hi()).await.expect("b answers");
    assert_eq!(response.provider, "b");
    assert_eq!((a.calls(), b.calls()), (1, 1), "no retry on a permanent error");
    assert_eq!(rig.failures("a/m"), 0, "no health penalty");
    assert_eq!(rig.events.take()[1], "failover a/m -> b/m permanent");
}

#[tokio::test]
async fn not_found_advances_without_retry_or_bench() {
    let rig = Rig::new();
    let a = Scripted::new("a", "m");
    let b = Scripted::new("b", "m");
    a.always(Outcome::Fail(Error::not_found("a", "m", "model not found")));
    let chain = rig.chain(&[&a, &b]);
    for _ in 0..4 {
        assert_eq!(chain.generate(hi()).await.expect("b").provider, "b");
    }
    assert_eq!(a.calls(), 4, "one call per request, never benched");
    assert_eq!(rig.health.is_benched("a/m"), None);
    assert_eq!(rig.failures("a/m"), 0);
}

#[tokio::test]
async fn decode_advances_at_once_and_counts_against_health() {
    let rig = Rig::new();
    let a = Scripted::new("a", "m");
    let b = Scripted::new("b", "m");
    a.always(Outcome::Fail(Error::decode("a", "m", "not JSON")));
    let chain = rig.chain(&[&a, &b]);
    for _ in 0..3 {
        assert_eq!(chain.generate(hi()).await.expect("b").provider, "b");
    }
    assert_eq!(a.calls(), 3, "no same-target retry on a decode error");
    assert_eq!(rig.clock.elapsed(), Duration::ZERO);
    assert_eq!(rig.health.is_benched("a/m"), Some(secs(10)));
}

#[tokio::test]
async fn cancelled_returns_at_once() {
    let rig = Rig::new();
    let a = Scripted::new("a", "m");
    let b = Scripted::new("b", "m");
    a.push(Outcome::Fail(Error::cancelled("a", "m")));
    let error = rig.chain(&[&a, &b]).generate(hi()).await.expect_err("cancelled");
    assert_eq!(error.kind, ErrorKind::Cancelled);
    assert_eq!((a.calls(), b.calls()), (1, 0));
}

#[tokio::test]
async fn retry_after_above_the_ceiling_advances_without_waiting() {
    let rig = Rig::new();
    let a = Scripted::new("a", "m");
    let b = Scripted::new("b", "m");
    a.push(Outcome::Fail(transient(&a).with_retry_after(Some(secs(31)))));
    let response = rig.chain(&[&a, &b]).generate(hi()).await.expect("b answers");
    assert_eq!(response.provider, "b");
    assert_eq!(rig.clock.elapsed(), Duration::ZERO, "no time passed");
    assert_eq!((a.calls(), b.calls()), (1, 1));
    assert_eq!(rig.failures("a/m"), 1, "still a health failure");
}

#[tokio::test]
async fn retry_after_at_or_below_the_ceiling_is_honoured() {
    let rig = Rig::new();
    let a = Scripted::new("a", "m");
    let b = Scripted::new("b", "m");
    a.push(Outcome::Fail(transient(&a).with_retry_after(Some(secs(7)))));
    a.push(Outcome::Fail(transient(&a).with_retry_after(Some(secs(30)))));
    let response = rig.chain(&[&a, &b]).generate(hi()).await.expect("a answers");
    assert_eq!(response.provider, "a");
    assert_eq!(rig.clock.elapsed(), secs(37), "waited exactly Retry-After, no backoff on top");
    let retries: Vec<String> = rig.events.take().into_iter().filter(|e| e.starts_with("retry")).collect();
    assert_eq!(retries, ["retry a/m #1 7000ms transient", "retry a/m #2 30000ms transient"]);
}

#[tokio::test]
async fn exhaustion_lists_every_attempt_and_every_skip() {
    let rig = Rig::new();
    let a = Scripted::new("a", "m");
    let b = Scripted::new("b", "m");
    let c = Scripted::new("c", "vision-less");
    let d = Scripted::new("d", "m");
    for _ in 0..3 {
        rig.health.record_failure("a/m");
    }
    rig.clock.advance(secs(4));
    b.always(Outcome::Fail(transient(&b)));
    c.set_caps(Capabilities { vision: Some(false), ..Capabilities::UNKNOWN });
    d.push(Outcome::Fail(Error::not_found("d", "m", "no such model").with_status(404)));

    let mut request = hi();
    request.messages[0].parts.push(Part::Image { mime: "image/png".into(), data: vec![0; 4] });
    let error = rig.chain(&[&a, &b, &c, &d]).generate(request).await.expect_err("exhausted");
    assert_eq!(error.kind, ErrorKind::Exhausted);
    assert_eq!((error.provider.as_str(), error.model.as_str()), ("chain", "test-spec"));
    let attempts: Vec<(String, u32, ErrorKind, Option<u16>)> = error
        .attempts
        .iter()
        .map(|a| (format!("{}/{}", a.provider, a.model), a.attempt, a.kind, a.status))
        .collect();
    let t = ErrorKind::Transient;
    assert_eq!(
        attempts,
        [
            ("b/m".to_owned(), 1, t, Some(503)),
            ("b/m".to_owned(), 2, t, Some(503)),
            ("b/m".to_owned(), 3, t, Some(503)),
            ("d/m".to_owned(), 1, ErrorKind::NotFound, Some(404)),
        ]
    );
    assert_eq!(error.skipped, ["a/m (benched, 6.0s of cooldown left)", "c/vision-less (no vision support)"]);
    assert_eq!(error.retry_after, Some(secs(6)), "when the first benched target returns");
    let text = error.to_string();
    assert!(text.contains("chain/test-spec: exhausted error"), "{text}");
    assert!(text.contains("attempt 3 on b/m: transient (HTTP 503)"), "{text}");
    assert!(text.contains("skipped a/m (benched"), "{text}");
    assert_eq!(rig.failures("c/vision-less"), 0);
}

#[tokio::test]
async fn an_incapable_target_is_skipped_penalty_free() {
    let rig = Rig::new();
    let text_only = Scripted::new("local", "text-only");
    let no_tools = Scripted::new("local", "no-tools");
    let b = Scripted::new("b", "m");
    text_only.set_caps(Capabilities { vision: Some(false), tools: Some(true), ..Capabilities::UNKNOWN });
    no_tools.set_caps(Capabilities { tools: Some(false), ..Capabilities::UNKNOWN });
    let chain = rig.chain(&[&text_only, &no_tools, &b]);

    let mut images = hi();
    images.messages[0].parts.push(Part::Image { mime: "image/png".into(), data: vec![9] });
    assert_eq!(chain.generate(images.clone()).await.expect("no-tools answers").model, "no-tools");
    let mut both = images;
    both.tools.push(ToolSpec {
        name: "lookup".into(),
        description: "look something up".into(),
        parameters: json!({"type": "object"}),
    });
    assert_eq!(chain.generate(both).await.expect("b answers").provider, "b");
    assert_eq!((text_only.calls(), no_tools.calls(), b.calls()), (0, 1, 1));
    assert!(rig.health.snapshot().iter().all(|h| h.consecutive_failures == 0), "no health penalty");
    let events = rig.events.take();
    assert_eq!(events[0], "skip local/text-only no vision");
    assert_eq!(events[3..5], ["skip local/text-only no vision", "skip local/no-tools no tools"]);
    assert!(!events.iter().any(|e| e.starts_with("failover")), "a skip is no failover: {events:?}");
}

#[tokio::test]
async fn structured_output_moves_into_the_system_prompt_for_a_target_without_it() {
    let rig = Rig::new();
    let a = Scripted::new("a", "m");
    a.set_caps(Capabilities { structured_output: Some(false), ..Capabilities::UNKNOWN });
    let mut request = hi().with_system("Be brief.");
    request.response_schema = Some(ResponseSchema {
        name: "answer".into(),
        schema: json!({"type": "object", "properties": {"verdict": {"type": "string"}}}),
        strict: true,
    });
    rig.chain(&[&a]).generate(request).await.expect("answer");
    let sent = &a.requests()[0];
    assert!(sent.response_schema.is_none());
    let system = sent.system.as_deref().unwrap_or_default();
    assert!(system.starts_with("Be brief.") && system.contains("\"verdict\""), "{system}");
}

#[tokio::test]
async fn a_stream_fails_over_before_its_first_event() {
    let mut rig = Rig::new();
    rig.options.retries = 0;
    let a = Scripted::new("a", "m");
    let b = Scripted::new("b", "m");
    let c = Scripted::new("c", "m");
    a.push(Outcome::Fail(transient(&a)));
    b.push(Outcome::FirstItemFails(transient(&b)));
    let stream = rig.chain(&[&a, &b, &c]).stream(hi()).await.expect("c streams");
    let response = collect(stream).await.expect("complete");
    assert_eq!((response.provider.as_str(), response.text().as_str()), ("c", "hello from c/m"));
    assert_eq!((a.calls(), b.calls(), c.calls()), (1, 1, 1));
    assert_eq!((rig.failures("a/m"), rig.failures("b/m")), (1, 1));
    let events = rig.events.take();
    assert!(events.contains(&"failover b/m -> c/m transient".to_owned()), "{events:?}");
}

#[tokio::test]
async fn a_stream_never_fails_over_after_its_first_event() {
    let rig = Rig::new();
    let a = Scripted::new("a", "m");
    let b = Scripted::new("b", "m");
    let cut = transient(&a).with_status(502);
    a.push(Outcome::FailsAfter("partial ".into(), cut));
    let mut stream = rig.chain(&[&a, &b]).stream(hi()).await.expect("a streams");
    let first = stream.next().await.expect("an item").expect("an event");
    assert_eq!(first, StreamEvent::TextDelta { text: "partial ".into() });
    let error = stream.next().await.expect("an item").expect_err("the mid-stream error");
    assert_eq!((error.kind, error.provider.as_str(), error.status), (ErrorKind::Transient, "a", Some(502)));
    assert!(stream.next().await.is_none());
    assert_eq!((a.calls(), b.calls()), (1, 0), "the next target is never called");
    assert_eq!(rig.events.take(), ["attempt a/m #1", "success a/m 0ms"]);
}

#[tokio::test]
async fn a_target_that_cannot_stream_is_served_by_generate() {
    let rig = Rig::new();
    let a = Scripted::new("a", "m");
    a.set_caps(Capabilities { streaming: Some(false), ..Capabilities::UNKNOWN });
    let response = collect(rig.chain(&[&a]).stream(hi()).await.expect("stream")).await.expect("done");
    assert_eq!(response.text(), "hello from a/m");
    assert_eq!(response.usage.input_tokens, 3);
}

#[tokio::test]
async fn the_observer_sees_every_event_in_order() {
    let config = HealthConfig { failure_threshold: 1, ..HealthConfig::default() };
    let rig = Rig::with_health(config);
    let a = Scripted::new("a", "m");
    let b = Scripted::new("b", "m");
    let c = Scripted::new("c", "m");
    a.always(Outcome::Fail(transient(&a).with_retry_after(Some(secs(1)))));
    rig.health.record_failure("b/m");
    c.push(Outcome::Fail(Error::not_found("c", "m", "gone")));
    let d = Scripted::new("d", "m");
    let chain = rig.chain(&[&a, &b, &c, &d]);
    let response = chain.generate(hi()).await.expect("d answers");
    assert_eq!(response.provider, "d");
    assert_eq!(
        rig.events.take(),
        [
            "attempt a/m #1",
            "retry a/m #1 1000ms transient",
            "attempt a/m #2",
            "retry a/m #2 1000ms transient",
            "attempt a/m #3",
            "bench a/m 10000ms",
            "skip b/m benched 8000ms",
            "failover a/m -> c/m transient",
            "attempt c/m #1",
            "failover c/m -> d/m not_found",
            "attempt d/m #1",
            "success d/m 0ms",
        ]
    );
}

#[tokio::test]
async fn the_chain_reports_itself_as_provider_chain() {
    let rig = Rig::new();
    let a = Scripted::new("a", "m");
    let chain = rig.chain(&[&a]);
    assert_eq!((chain.provider(), chain.model_id()), ("chain", "test-spec"));
    assert_eq!(chain.targets().collect::<Vec<_>>(), ["a/m"]);
    let empty = Chain::new("nothing", Vec::new(), rig.health.clone());
    let error = empty.generate(hi()).await.expect_err("no targets");
    assert_eq!(error.kind, ErrorKind::Exhausted);
    assert!(error.message.contains("no targets"), "{}", error.message);
}

/// A minimal `tracing` subscriber that keeps every span's and event's fields as text.
/// A target that answers through `generate_ref` and remembers the address it was lent.
#[derive(Debug, Default)]
struct Borrowing {
    lent: std::sync::Mutex<Vec<usize>>,
}

#[async_trait::async_trait]
impl Model for Borrowing {
    fn provider(&self) -> &str {
        "b"
    }

    fn model_id(&self) -> &str {
        "m"
    }

    async fn generate(&self, _request: Request) -> executus_llm::Result<executus_llm::Response> {
        Err(Error::permanent("b", "m", "the chain must lend the request, not hand over a copy"))
    }

    async fn stream(&self, _request: Request) -> executus_llm::Result<executus_llm::EventStream> {
        Err(Error::permanent("b", "m", "the chain must lend the request, not hand over a copy"))
    }

    async fn generate_ref(&self, request: &Request) -> executus_llm::Result<executus_llm::Response> {
        self.lent.lock().expect("lock").push(std::ptr::from_ref(request) as usize);
        Ok(executus_llm::Response {
            message: executus_llm::Message::assistant("lent"),
            usage: Default::default(),
            finish_reason: executus_llm::FinishReason::Stop,
            provider: "b".into(),
            model: "m".into(),
        })
    }
}

#[tokio::test]
async fn the_chain_lends_its_request_to_each_attempt_without_copying_it() {
    let rig = Rig::new();
    let a = Scripted::new("a", "m");
    a.push(Outcome::Fail(Error::not_found("a", "m", "gone")));
    let b = Arc::new(Borrowing::default());
    let models: Vec<Arc<dyn Model>> = vec![a.clone(), b.clone()];
    let chain = Chain::new("a, b", models, rig.health.clone()).with_options(rig.options.clone());
    let request = hi();
    let response = chain.generate_ref(&request).await.expect("b answers");
    assert_eq!(response.text(), "lent");
    assert_eq!(a.calls(), 1, "a target without generate_ref is served a copy (the default)");
    let lent = b.lent.lock().expect("lock").clone();
    assert_eq!(lent, [std::ptr::from_ref(&request) as usize], "b was lent the caller's request itself");
}
