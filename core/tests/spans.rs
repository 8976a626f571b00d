//! Tracing: spans nest run > step > model_call / tool_call, with GenAI attribute names, and
//! no request content appears in them.
//!
//! A test binary of its own: `tracing` caches each callsite's interest process-wide, so a
//! thread-local capture subscriber can miss spans when other tests run beside it.

#![allow(clippy::unwrap_used)]

#[path = "it/common.rs"]
#[allow(dead_code)]
mod common;

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, PoisonError};

use executus::llm::fake::{FakeProvider, Outcome};
use executus::ports::Ports;
use executus::semconv;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

use common::{agent, call, runtime};

type Fields = Vec<(String, String)>;

#[derive(Default)]
struct Captured {
    /// (name, explicit parent index, fields)
    spans: Mutex<Vec<(String, Option<usize>, Fields)>>,
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
struct Capture(Arc<Captured>);

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = Fields::new();
        span.record(&mut Visitor(&mut fields));
        let parent = span.parent().map(|p| p.into_u64() as usize - 1);
        let mut spans = self.0.spans.lock().unwrap_or_else(PoisonError::into_inner);
        spans.push((span.metadata().name().to_owned(), parent, fields));
        Id::from_u64(spans.len() as u64)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut spans = self.0.spans.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, _, fields)) = spans.get_mut(span.into_u64() as usize - 1) {
            values.record(&mut Visitor(fields));
        }
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[tokio::test]
async fn spans_nest_run_step_model_and_tool_calls() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::tool_calls([call("c1", "echo", "SECRET-ARG")]));
    fake.push("m", Outcome::text("done"));
    let rt = runtime(&fake, Arc::new(AtomicUsize::new(0)), Ports::default());
    let out = rt.run(agent(), "TOP-SECRET-INPUT").await.unwrap();
    assert!(out.is_completed());

    let spans = capture.0.spans.lock().unwrap().clone();
    let find = |name: &str| -> Vec<usize> {
        spans.iter().enumerate().filter(|(_, (n, _, _))| n == name).map(|(i, _)| i).collect()
    };
    let runs = find("run");
    assert_eq!(runs.len(), 1, "{spans:?}");
    let steps = find("step");
    assert_eq!(steps.len(), 2);
    for s in &steps {
        assert_eq!(spans[*s].1, Some(runs[0]), "step under run");
    }
    let models = find("model_call");
    assert_eq!(models.len(), 2);
    for (m, s) in models.iter().zip(&steps) {
        assert_eq!(spans[*m].1, Some(*s), "model call under its step");
    }
    let tools = find("tool_call");
    assert_eq!(tools.len(), 1);
    assert_eq!(spans[tools[0]].1, Some(steps[0]), "tool call under the first step");
    let get = |i: usize, key: &str| spans[i].2.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    assert_eq!(get(runs[0], semconv::AGENT_NAME).as_deref(), Some("tester"));
    assert_eq!(get(models[0], semconv::REQUEST_MODEL).as_deref(), Some("fake/m"));
    assert_eq!(get(models[0], semconv::OPERATION_NAME).as_deref(), Some(semconv::operation::CHAT));
    assert!(get(models[1], semconv::USAGE_INPUT_TOKENS).is_some());
    assert_eq!(get(tools[0], semconv::TOOL_NAME).as_deref(), Some("echo"));
    // GenAI semantic conventions: the names an OpenTelemetry exporter shows, the operation,
    // the conversation (the run id unless the request names one), provider and finish.
    let run_id = out.run_id.to_string();
    assert_eq!(get(runs[0], semconv::OTEL_NAME).as_deref(), Some("invoke_agent tester"));
    assert_eq!(get(runs[0], semconv::OPERATION_NAME).as_deref(), Some(semconv::operation::INVOKE_AGENT));
    assert_eq!(get(runs[0], semconv::CONVERSATION_ID).as_deref(), Some(run_id.as_str()));
    assert_eq!(get(models[0], semconv::OTEL_NAME).as_deref(), Some("chat fake/m"));
    assert_eq!(get(models[0], semconv::OTEL_KIND).as_deref(), Some("client"));
    assert_eq!(get(models[0], semconv::CONVERSATION_ID).as_deref(), Some(run_id.as_str()));
    assert_eq!(get(models[0], semconv::PROVIDER_NAME).as_deref(), Some("fake"));
    assert_eq!(get(models[0], semconv::RESPONSE_FINISH_REASONS).as_deref(), Some(r#"["tool_calls"]"#));
    assert_eq!(get(models[1], semconv::RESPONSE_FINISH_REASONS).as_deref(), Some(r#"["stop"]"#));
    assert_eq!(get(tools[0], semconv::OTEL_NAME).as_deref(), Some("execute_tool echo"));
    let everything = format!("{spans:?}");
    assert!(!everything.contains("SECRET"), "content leaked into spans: {everything}");
}

#[tokio::test]
async fn a_request_s_conversation_id_is_reported_on_the_run_and_its_model_calls() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::text("done"));
    let rt = runtime(&fake, Arc::new(AtomicUsize::new(0)), Ports::default());
    let request = executus::RunRequest::new(agent(), "hi").conversation("session-42");
    let out = rt.spawn_with(request).await.unwrap().outcome().await;
    assert!(out.is_completed(), "{out:?}");
    let spans = capture.0.spans.lock().unwrap().clone();
    let conv: Vec<(&str, Option<&str>)> = spans
        .iter()
        .filter(|(n, _, _)| n == "run" || n == "model_call")
        .map(|(n, _, f)| {
            (n.as_str(), f.iter().find(|(k, _)| k == semconv::CONVERSATION_ID).map(|(_, v)| v.as_str()))
        })
        .collect();
    assert_eq!(conv, [("run", Some("session-42")), ("model_call", Some("session-42"))]);
}

/// The default audit sink only logs; it asks for records exactly when its debug events would
/// be seen, so runs without a listener skip building them.
#[test]
fn the_default_audit_sink_wants_records_only_when_they_would_be_seen() {
    use executus::ports::{AuditSink, NoAudit};
    assert!(!NoAudit.wants_records(), "no subscriber: nothing would see them");
    let _guard = tracing::subscriber::set_default(Capture::default());
    assert!(NoAudit.wants_records(), "a subscriber that enables everything sees them");
}
