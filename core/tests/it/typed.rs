//! Typed output: agents with an output schema get a validated JSON value, with one
//! corrective retry.

use std::sync::Arc;

use executus::llm::fake::{FakeProvider, Outcome};
use executus::llm::{ResponseSchema, Role};
use executus::ports::Ports;
use executus::{RunEnd, RunnableAgent};
use serde_json::json;

use crate::common::runtime;

fn typed_agent() -> RunnableAgent {
    RunnableAgent::new("extractor", "Extract.", "fake/m").with_output_schema(ResponseSchema {
        name: "verdict".into(),
        schema: json!({
            "type": "object",
            "properties": { "ok": { "type": "boolean" }, "score": { "type": "number" } },
            "required": ["ok", "score"]
        }),
        strict: true,
    })
}

#[tokio::test]
async fn a_fenced_json_answer_becomes_the_typed_output() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::text("```json\n{\"ok\": true, \"score\": 0.9}\n```"));
    let rt = runtime(&fake, Arc::default(), Ports::default());
    let out = rt.run(typed_agent(), "judge").await.unwrap();
    assert_eq!(out.end, RunEnd::Completed);
    assert_eq!(out.typed, Some(json!({ "ok": true, "score": 0.9 })));
    assert_eq!(fake.calls_for("m"), 1);
    // The schema reached the model.
    let request = &fake.requests_for("m")[0];
    assert_eq!(request.response_schema.as_ref().map(|s| s.name.as_str()), Some("verdict"));
}

#[tokio::test]
async fn invalid_json_is_retried_once_with_a_correction() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::text("Sure! The verdict is positive."));
    fake.push("m", Outcome::text("{\"ok\": true, \"score\": 1}"));
    let rt = runtime(&fake, Arc::default(), Ports::default());
    let out = rt.run(typed_agent(), "judge").await.unwrap();
    assert_eq!(out.end, RunEnd::Completed);
    assert_eq!(out.typed, Some(json!({ "ok": true, "score": 1 })));
    assert_eq!(fake.calls_for("m"), 2);
    let retry = &fake.requests_for("m")[1];
    let last = retry.messages.last().unwrap();
    assert_eq!(last.role, Role::User);
    assert!(last.text().contains("not valid JSON") && last.text().contains("verdict"), "{}", last.text());
}

#[tokio::test]
async fn invalid_json_twice_fails_the_run() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::text("no"));
    fake.push("m", Outcome::text("still no"));
    fake.push("m", Outcome::text("{\"ok\": true, \"score\": 1}"));
    let rt = runtime(&fake, Arc::default(), Ports::default());
    let out = rt.run(typed_agent(), "judge").await.unwrap();
    let RunEnd::Failed { error } = &out.end else { panic!("expected failure: {out:?}") };
    assert!(error.contains("not valid JSON") && error.contains("verdict"), "{error}");
    assert_eq!(out.typed, None);
    assert_eq!(fake.calls_for("m"), 2, "one retry only");
    assert_eq!(out.output.as_deref(), Some("still no"), "the last answer is kept");
}
