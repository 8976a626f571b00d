//! Structured output: the strict schema transform and `generate_typed` over the fake provider.

use std::sync::Arc;

use executus_llm::fake::{FakeProvider, Outcome};
use executus_llm::{
    ErrorKind, Model, ModelExt, Request, Role, Usage, generate_typed, schema_for, strict_schema,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, PartialEq, JsonSchema, Deserialize)]
struct Report {
    /// The headline.
    title: String,
    note: Option<String>,
    /// Who wrote it.
    author: Person,
    tags: Vec<String>,
    shape: Shape,
    count: u32,
}

#[derive(Debug, PartialEq, JsonSchema, Deserialize)]
struct Person {
    name: String,
    age: Option<u8>,
}

#[derive(Debug, PartialEq, JsonSchema, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Shape {
    Circle,
    Square,
    Rect { w: u32, h: u32 },
}

fn usage(input: u64, output: u64) -> Usage {
    Usage { input_tokens: input, output_tokens: output, ..Usage::default() }
}

#[test]
fn strict_schema_of_a_realistic_struct() {
    let schema = schema_for::<Report>();
    assert_eq!(schema.name, "Report");
    assert!(schema.strict);
    let person = json!({
        "type": "object",
        "properties": {
            "age": { "type": ["integer", "null"] },
            "name": { "type": "string" }
        },
        "required": ["age", "name"],
        "additionalProperties": false
    });
    let mut inlined_author = person.clone();
    inlined_author["description"] = json!("Who wrote it.");
    let expected = json!({
        "type": "object",
        "properties": {
            "author": inlined_author,
            "count": { "type": "integer" },
            "note": { "type": ["string", "null"] },
            "shape": { "$ref": "#/$defs/Shape" },
            "tags": { "type": "array", "items": { "type": "string" } },
            "title": { "type": "string", "description": "The headline." }
        },
        "required": ["author", "count", "note", "shape", "tags", "title"],
        "additionalProperties": false,
        "$defs": {
            "Person": person,
            "Shape": {
                "anyOf": [
                    { "type": "string", "enum": ["circle", "square"] },
                    {
                        "type": "object",
                        "properties": {
                            "rect": {
                                "type": "object",
                                "properties": { "h": { "type": "integer" }, "w": { "type": "integer" } },
                                "required": ["h", "w"],
                                "additionalProperties": false
                            }
                        },
                        "required": ["rect"],
                        "additionalProperties": false
                    }
                ]
            }
        }
    });
    assert_eq!(schema.schema, expected, "{:#}", schema.schema);
    let text = schema.schema.to_string();
    for absent in ["$schema", "uint32", "uint8", "format", "minimum", "oneOf"] {
        assert!(!text.contains(absent), "{absent} in {text}");
    }
    assert!(schema.schema.get("title").is_none(), "no root title keyword");
    // The transform is idempotent.
    assert_eq!(strict_schema(schema.schema.clone()), schema.schema);
}

const GOOD: &str = r#"{"title":"t","note":null,"author":{"name":"ann","age":41},"tags":["a"],"shape":{"rect":{"w":2,"h":3}},"count":7}"#;

fn expected() -> Report {
    Report {
        title: "t".into(),
        note: None,
        author: Person { name: "ann".into(), age: Some(41) },
        tags: vec!["a".into()],
        shape: Shape::Rect { w: 2, h: 3 },
        count: 7,
    }
}

#[tokio::test]
async fn generate_typed_sets_the_schema_and_decodes() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::text(GOOD).with_usage(usage(10, 5)));
    let model = fake.model("m");
    let typed = generate_typed::<Report>(model.as_ref(), Request::user("report")).await.unwrap();
    assert_eq!(typed.value, expected());
    assert_eq!(typed.usage, usage(10, 5));
    assert_eq!(typed.response.text(), GOOD);
    let sent = fake.requests_for("m");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].response_schema, Some(schema_for::<Report>()));
    assert_eq!(sent[0].messages, Request::user("report").messages);
}

#[tokio::test]
async fn fenced_output_decodes() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::text(format!("```json\n{GOOD}\n```")));
    fake.push("m", Outcome::text(format!("```\n{GOOD}\n```\n")));
    let model: Arc<dyn Model> = fake.model("m");
    for _ in 0..2 {
        let typed = model.generate_typed::<Report>(Request::user("r")).await.unwrap();
        assert_eq!(typed.value, expected());
    }
    assert_eq!(fake.calls(), 2, "no retry was needed");
}

#[tokio::test]
async fn a_bad_reply_is_retried_once_with_the_error_fed_back() {
    let fake = FakeProvider::new("fake");
    let bad = r#"{"title":"t","count":"seven"}"#;
    fake.push("m", Outcome::text(bad).with_usage(usage(100, 20)));
    fake.push("m", Outcome::text(GOOD).with_usage(usage(130, 25)));
    let typed = fake.model("m").generate_typed::<Report>(Request::user("report")).await.unwrap();
    assert_eq!(typed.value, expected());
    assert_eq!(typed.usage, usage(230, 45), "usage is summed over both attempts");
    assert_eq!(typed.response.usage, usage(130, 25));

    let sent = fake.requests_for("m");
    assert_eq!(sent.len(), 2);
    let retry = &sent[1];
    assert_eq!(retry.messages.len(), 3);
    assert_eq!(retry.messages[1].role, Role::Assistant);
    assert_eq!(retry.messages[1].text(), bad);
    assert_eq!(retry.messages[2].role, Role::User);
    let feedback = retry.messages[2].text();
    assert!(feedback.contains("invalid type: string \"seven\", expected u32"), "{feedback}");
    assert!(feedback.contains("only a JSON value that matches the schema"), "{feedback}");
    assert_eq!(retry.response_schema, Some(schema_for::<Report>()));
}

#[tokio::test]
async fn two_bad_replies_are_a_decode_error_showing_the_reply() {
    let fake = FakeProvider::new("local");
    let long_bad = format!("Sure! Here is the report: {}", "x".repeat(500));
    fake.push("judge", Outcome::text("not json").with_usage(usage(1, 1)));
    fake.push("judge", Outcome::text(long_bad.clone()).with_usage(usage(1, 1)));
    let err = fake.model("judge").generate_typed::<Report>(Request::user("r")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Decode);
    assert_eq!((err.provider.as_str(), err.model.as_str()), ("local", "judge"));
    let msg = err.to_string();
    assert!(msg.starts_with("local/judge: decode error: could not decode the reply as Report"), "{msg}");
    assert!(msg.contains("Sure! Here is the report: xxx"), "{msg}");
    assert!(msg.contains(&format!("{}...", &long_bad[..200])), "{msg}");
    assert!(!msg.contains(&long_bad[..201]), "only the start of the reply is shown: {msg}");
    assert_eq!(fake.calls(), 2);
}

#[tokio::test]
async fn model_errors_pass_through_unchanged() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::rate_limited(std::time::Duration::from_secs(4)));
    let err = fake.model("m").generate_typed::<Report>(Request::user("r")).await.unwrap_err();
    assert_eq!((err.kind, err.status), (ErrorKind::Transient, Some(429)));
    assert_eq!(err.retry_after, Some(std::time::Duration::from_secs(4)));
    assert_eq!(fake.calls(), 1, "a model error is not a decode failure: no retry");

    // An error on the retry passes through too.
    fake.push("m", Outcome::text("nope"));
    fake.push("m", Outcome::permanent("invalid schema"));
    let err = fake.model("m").generate_typed::<Report>(Request::user("r")).await.unwrap_err();
    assert_eq!((err.kind, err.message.as_str()), (ErrorKind::Permanent, "invalid schema"));
}
