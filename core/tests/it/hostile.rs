//! Hostile input through the run loop (property tests; the parsers themselves are fuzzed in
//! `fuzz/`): garbage tool arguments from a model — any JSON value, broken JSON strings,
//! arrays, deep nesting, unknown tools — oversized tool output, and a tool that never
//! returns. Every case must end the run cleanly, with one result per call, in order.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use executus::llm::ToolCall;
use executus::llm::fake::{FakeProvider, Outcome};
use executus::ports::Ports;
use executus::tool::ToolError;
use executus::{Limits, RunEnd, RuntimeConfig};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::common::{agent, build, config, results, text_tool, tools};

/// Any JSON value, nested up to `depth` levels, with strings that look like broken JSON.
fn json_value(depth: u32) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        prop_oneof![
            Just("{\"text\": oops"),
            Just("{\"expression\": \"1+\""),
            Just("[1, 2"),
            Just("\u{0}\u{ffff}\\u"),
            Just(""),
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(depth, 200, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("text".to_owned()),
                    Just("expression".to_owned()),
                    Just("operation".to_owned()),
                    Just("timezone".to_owned()),
                    "[a-z]{1,8}"
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Arguments a model might send: mostly objects (so the tools' own decoding is reached),
/// sometimes anything at all.
fn arguments() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => prop::collection::btree_map(
            prop_oneof![Just("text".to_owned()), Just("expression".to_owned()), Just("operation".to_owned())],
            json_value(3),
            0..4
        )
        .prop_map(|m| Value::Object(m.into_iter().collect())),
        1 => json_value(4),
        1 => (1usize..60).prop_map(|depth| {
            (0..depth).fold(json!({"text": "deep"}), |v, i| if i % 2 == 0 { json!([v]) } else { json!({"text": v}) })
        }),
    ]
}

fn runtime_with(fake: &FakeProvider, config: RuntimeConfig) -> executus::Runtime {
    let registry = tools(Arc::new(AtomicUsize::new(0))).with(crate::common::product_tool());
    build(fake, registry, Ports::default(), config, None)
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

const NAMES: [&str; 5] = ["echo", "calc", "boom", "nope", "fail"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn garbage_tool_arguments_end_the_run_cleanly(
        calls in prop::collection::vec((0..NAMES.len(), arguments()), 1..6),
    ) {
        let calls: Vec<ToolCall> = calls
            .into_iter()
            .enumerate()
            .map(|(i, (name, args))| ToolCall { id: format!("c{i}"), name: NAMES[name].into(), args, signature: None })
            .collect();
        let fake = FakeProvider::new("fake");
        fake.push("m", Outcome::tool_calls(calls.clone()));
        fake.push("m", Outcome::text("done"));
        let rt = runtime_with(&fake, config());
        let limits = Limits { tool_error_limit: 100, ..Limits::default() };
        let agent = agent().with_tools(["echo", "calc", "boom", "fail"]).with_limits(limits);
        let out = block_on(rt.run(agent, "go")).unwrap();
        prop_assert_eq!(&out.end, &RunEnd::Completed, "{:?}", out);
        prop_assert_eq!(out.output.as_deref(), Some("done"));
        let request = &fake.requests_for("m")[1];
        // The tool message is the last one, unless loop protection appended its finalize
        // instruction (identical calls in one step count as a cycle).
        let tool_message = request.messages.iter().rev().find(|m| m.role == executus::llm::Role::Tool).unwrap();
        let got = results(tool_message);
        let ids: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
        let want: Vec<String> = calls.iter().map(|c| c.id.clone()).collect();
        prop_assert_eq!(ids, want.iter().map(String::as_str).collect::<Vec<_>>());
        for (call, result) in calls.iter().zip(&got) {
            prop_assert!(!result.content.is_empty());
            let refused = match &call.args {
                Value::String(_) => Some("not valid JSON"),
                Value::Object(_) | Value::Null => None,
                _ => Some("must be a JSON object"),
            };
            if call.name == "nope" {
                prop_assert!(result.is_error && result.content.contains("unknown tool"), "{:?}", result);
            } else if let Some(needle) = refused {
                prop_assert!(result.is_error && result.content.contains(needle), "{:?} -> {:?}", call, result);
            }
        }
    }

    #[test]
    fn oversized_tool_output_is_capped_on_a_char_boundary(
        output in "[a-zé€😀]{0,3000}",
        cap in 256usize..2048,
    ) {
        let fake = FakeProvider::new("fake");
        fake.push("m", Outcome::tool_calls([ToolCall {
            id: "big".into(),
            name: "big".into(),
            args: json!({"text": "x"}),
            signature: None,
        }]));
        fake.push("m", Outcome::text("done"));
        let text = output.clone();
        let registry = tools(Arc::new(AtomicUsize::new(0))).with(text_tool("big", move |_| {
            let text = text.clone();
            async move { Ok::<_, ToolError>(text) }
        }));
        let config = RuntimeConfig { max_tool_output_bytes: cap, ..config() };
        let rt = build(&fake, registry, Ports::default(), config, None);
        let out = block_on(rt.run(agent().with_tools(["big"]), "go")).unwrap();
        prop_assert_eq!(&out.end, &RunEnd::Completed);
        let request = &fake.requests_for("m")[1];
        let result = results(request.messages.last().unwrap()).remove(0);
        prop_assert!(!result.is_error);
        if output.len() <= cap {
            prop_assert_eq!(result.content, output);
        } else {
            let (kept, note) = result.content.split_once("\n[output truncated: ").unwrap();
            prop_assert!(kept.len() <= cap && kept.len() + 4 > cap, "kept {} of cap {}", kept.len(), cap);
            prop_assert!(output.starts_with(kept));
            let total = format!("{} bytes", output.len());
            prop_assert!(note.starts_with(&total), "{}", note);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_tool_that_never_returns_is_cut_at_its_timeout_and_the_run_goes_on() {
    let fake = FakeProvider::new("fake");
    fake.push(
        "m",
        Outcome::tool_calls([ToolCall {
            id: "late".into(),
            name: "slow".into(),
            args: json!({"text": "x"}),
            signature: None,
        }]),
    );
    fake.push("m", Outcome::text("done"));
    let rt = runtime_with(&fake, config());
    let limits = Limits { tool_timeout: Duration::from_secs(30), ..Limits::default() };
    let out = rt.run(agent().with_limits(limits), "go").await.unwrap();
    assert_eq!(out.end, RunEnd::Completed, "{out:?}");
    let result = results(fake.requests_for("m")[1].messages.last().unwrap()).remove(0);
    assert!(result.is_error && result.content.contains("timed out after 30s"), "{result:?}");
}
