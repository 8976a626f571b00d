//! The failover chain's tracing: one `gen_ai.call` span per attempt with OpenTelemetry GenAI
//! attribute names, and no request content in any span or event.
//!
//! A test binary of its own: `tracing` caches each callsite's interest process-wide, so a
//! thread-local capture subscriber can miss spans when other tests hit the same callsites
//! beside it (this test failed that way under load inside the `it` binary).

#[path = "it/scripted.rs"]
#[allow(dead_code)]
mod scripted;

use std::sync::Arc;

use executus_llm::{Chain, ChainOptions, HealthConfig, HealthTracker, ManualClock, Model, Request};

use scripted::{Outcome, Scripted, transient};

mod capture {
    use std::sync::{Arc, Mutex, PoisonError};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    pub type Fields = Vec<(String, String)>;

    #[derive(Default)]
    pub struct Captured {
        pub spans: Mutex<Vec<(String, Fields)>>,
        pub events: Mutex<Vec<Fields>>,
    }

    struct Visitor<'a>(&'a mut Fields);

    impl Visit for Visitor<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.push((field.name().to_owned(), format!("{value:?}")));
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.push((field.name().to_owned(), value.to_owned()));
        }
    }

    #[derive(Clone, Default)]
    pub struct Capture(pub Arc<Captured>);

    impl Subscriber for Capture {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, span: &Attributes<'_>) -> Id {
            let mut fields = Fields::new();
            span.record(&mut Visitor(&mut fields));
            let mut spans = self.0.spans.lock().unwrap_or_else(PoisonError::into_inner);
            spans.push((span.metadata().name().to_owned(), fields));
            Id::from_u64(spans.len() as u64)
        }
        fn record(&self, span: &Id, values: &Record<'_>) {
            let mut spans = self.0.spans.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((_, fields)) =
                usize::try_from(span.into_u64() - 1).ok().and_then(|i| spans.get_mut(i))
            {
                values.record(&mut Visitor(fields));
            }
        }
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut fields = Fields::new();
            event.record(&mut Visitor(&mut fields));
            self.0.events.lock().unwrap_or_else(PoisonError::into_inner).push(fields);
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }
}

#[tokio::test]
async fn attempts_are_traced_with_gen_ai_attributes_and_no_request_content() {
    let capture = capture::Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let clock = ManualClock::new();
    let health = HealthTracker::with_clock(HealthConfig::default(), Arc::new(clock.clone()));
    let options = ChainOptions::default().with_sleeper(Arc::new(clock));
    let a = Scripted::new("a", "m");
    a.push(Outcome::Fail(transient(&a)));
    let chain = Chain::new("test-spec", [a as Arc<dyn Model>], health).with_options(options);
    let request = Request::user("TOP-SECRET-PROMPT").with_system("SYSTEM-SECRET");
    chain.generate(request).await.expect("answer");

    let spans = capture.0.spans.lock().expect("lock").clone();
    let calls: Vec<&capture::Fields> =
        spans.iter().filter(|(name, _)| name == "gen_ai.call").map(|(_, f)| f).collect();
    assert_eq!(calls.len(), 2, "one span per attempt: {spans:?}");
    let get =
        |fields: &capture::Fields, key: &str| fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    for (i, fields) in calls.iter().enumerate() {
        assert_eq!(get(fields, "gen_ai.system").as_deref(), Some("a"));
        assert_eq!(get(fields, "gen_ai.request.model").as_deref(), Some("m"));
        assert_eq!(get(fields, "gen_ai.operation.name").as_deref(), Some("chat"));
        assert_eq!(get(fields, "attempt"), Some((i + 1).to_string()));
    }
    assert_eq!(get(calls[0], "error.type").as_deref(), Some("transient"));
    assert_eq!(get(calls[1], "gen_ai.usage.input_tokens").as_deref(), Some("3"));
    assert_eq!(get(calls[1], "gen_ai.response.model").as_deref(), Some("m"));
    let events = capture.0.events.lock().expect("lock").clone();
    assert!(!events.is_empty(), "the failed attempt logs an event");
    let everything = format!("{spans:?}{events:?}");
    assert!(!everything.contains("SECRET"), "request content leaked into tracing: {everything}");
}
