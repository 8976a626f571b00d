//! Garbage arguments from a model straight into the built-in tools (the run loop's own
//! handling of them is proven in the core's `hostile` suite): any JSON value, broken JSON in
//! strings, deep nesting. Every call returns — a value or a typed error — and never panics.

use executus::tool::{Tool, ToolContext, ToolError};
use executus::{Identity, RunId};
use executus_tools::{Calc, Clock};
use proptest::prelude::*;
use serde_json::{Value, json};

fn json_value(depth: u32) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        prop_oneof![
            Just("{\"expression\": \"1+\"".to_owned()),
            Just("((((((((((1".to_owned()),
            Just("9".repeat(400)),
            Just("\u{0}\u{ffff}\\u".to_owned()),
            Just("Europe/Nowhere".to_owned()),
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(depth, 200, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("expression".to_owned()),
                    Just("operation".to_owned()),
                    Just("timezone".to_owned()),
                    Just("from".to_owned()),
                    Just("to".to_owned()),
                    Just("time".to_owned()),
                    "[a-z]{1,8}"
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

fn check(tool: &dyn Tool, args: Value) -> Result<(), TestCaseError> {
    let ctx = ToolContext::new(RunId::new(), Identity::default(), "fuzz", "c1");
    match block_on(tool.call(ctx, args)) {
        Ok(_) | Err(ToolError::InvalidArgs { .. } | ToolError::Failed { .. }) => Ok(()),
        Err(other) => Err(TestCaseError::fail(format!("{}: unexpected error {other:?}", tool.name()))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn calc_and_clock_answer_any_json_with_a_value_or_a_typed_error(args in json_value(4)) {
        check(&Calc::new(), args.clone())?;
        check(&Clock::system(), args)?;
    }
}
