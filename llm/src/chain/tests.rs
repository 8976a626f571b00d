use std::time::Duration;

use serde_json::json;

use super::*;
use crate::fake::FakeProvider;
use crate::types::{Message, Part, ResponseSchema, ToolSpec};

fn caps(tools: Option<bool>, vision: Option<bool>, structured: Option<bool>) -> Capabilities {
    Capabilities { tools, vision, structured_output: structured, streaming: None }
}

fn image_request() -> Request {
    let mut request = Request::user("what is this?");
    request.messages[0].parts.push(Part::Image { mime: "image/png".into(), data: vec![1, 2, 3] });
    request
}

fn schema_request(system: Option<&str>) -> Request {
    let mut request = Request::user("give me a person");
    request.system = system.map(str::to_owned);
    request.response_schema = Some(ResponseSchema {
        name: "person".into(),
        schema: json!({"type": "object", "properties": {"name": {"type": "string"}}}),
        strict: true,
    });
    request
}

/// The request `normalise` let through unchanged, asserting it was not copied.
fn passed_as_is<'a>(out: std::result::Result<Cow<'a, Request>, &'static str>, input: &Request) -> bool {
    matches!(out, Ok(Cow::Borrowed(r)) if std::ptr::eq(r, input))
}

#[test]
fn vision_and_tools_skip_only_when_known_absent() {
    let images = image_request();
    assert_eq!(normalise(&images, caps(None, Some(false), None)), Err("vision"));
    assert!(passed_as_is(normalise(&images, caps(None, None, None)), &images), "unknown means try");
    assert!(passed_as_is(normalise(&images, caps(None, Some(true), None)), &images));

    let mut tools = Request::user("weather?");
    tools.tools.push(ToolSpec {
        name: "weather".into(),
        description: "forecast".into(),
        parameters: json!({"type": "object"}),
    });
    assert_eq!(normalise(&tools, caps(Some(false), None, None)), Err("tools"));
    assert!(passed_as_is(normalise(&tools, caps(None, None, None)), &tools));
    // A text-only request is fine on a text-only, tool-less target.
    let plain = Request { messages: vec![Message::user("hi")], ..Request::default() };
    assert!(passed_as_is(normalise(&plain, caps(Some(false), Some(false), Some(false))), &plain));
}

#[test]
fn schema_moves_into_the_system_prompt_without_structured_output() {
    let request = schema_request(Some("You are terse."));
    let out = normalise(&request, caps(None, None, Some(false))).expect("served").into_owned();
    assert!(out.response_schema.is_none());
    let system = out.system.expect("system prompt");
    assert!(system.starts_with("You are terse.\n\n"), "{system}");
    assert!(system.contains("JSON schema"), "{system}");
    assert!(system.contains("\"name\""), "the schema itself is in the prompt: {system}");

    let out = normalise(&schema_request(None), caps(None, None, Some(false))).expect("served").into_owned();
    assert!(out.system.expect("system").starts_with("Answer with a single JSON value"));

    let native = schema_request(None);
    assert!(
        passed_as_is(normalise(&native, caps(None, None, None)), &native),
        "unknown structured output keeps the native schema, without a copy"
    );
}

#[test]
fn backoff_doubles_with_jitter_and_caps() {
    let options = ChainOptions::default();
    for _ in 0..50 {
        let first = options.backoff(1);
        assert!((Duration::from_millis(125)..=Duration::from_millis(250)).contains(&first), "{first:?}");
        let second = options.backoff(2);
        assert!((Duration::from_millis(250)..=Duration::from_millis(500)).contains(&second), "{second:?}");
        let late = options.backoff(40);
        assert!((Duration::from_secs(5)..=Duration::from_secs(10)).contains(&late), "{late:?}");
    }
    let huge = ChainOptions { backoff_max: Duration::MAX, ..ChainOptions::default() };
    assert!(huge.backoff(200) > Duration::ZERO, "no overflow panic");
}

#[test]
fn retry_delay_honours_retry_after_up_to_the_ceiling() {
    let chain = Chain::new("x", Vec::new(), HealthTracker::default());
    let error = |after: Option<u64>| {
        Error::transient("p", "m", "busy").with_retry_after(after.map(Duration::from_secs))
    };
    assert_eq!(chain.retry_delay(&error(Some(30)), 1), Some(Duration::from_secs(30)));
    assert_eq!(chain.retry_delay(&error(Some(31)), 1), None);
    assert_eq!(chain.retry_delay(&error(Some(1)), 3), None, "retries spent");
    let backoff = chain.retry_delay(&error(None), 2).expect("backoff");
    assert!(backoff <= Duration::from_millis(500));
}

#[test]
fn without_drops_one_target_and_keeps_the_rest_in_order() {
    let (a, b, c) = (FakeProvider::new("a"), FakeProvider::new("b"), FakeProvider::new("c"));
    let chain = Chain::new("tier", [a.model("m"), b.model("m"), c.model("m")], HealthTracker::default());
    let rest = chain.without(&"b/m".parse().unwrap()).expect("two targets remain");
    assert_eq!(rest.targets().collect::<Vec<_>>(), ["a/m", "c/m"]);
    assert_eq!(rest.model_id(), "tier", "same spec");
    assert!(chain.without(&"x/m".parse().unwrap()).is_none(), "not a target");
    let single = Chain::new("one", [a.model("m")], HealthTracker::default());
    assert!(single.without(&"a/m".parse().unwrap()).is_none(), "nothing would remain");
}
