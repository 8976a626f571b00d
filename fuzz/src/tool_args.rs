//! Target `tool_args`: tool-argument decoding as a model's garbage reaches it.
//!
//! Input: `[mode]` then a payload (`mode % 5`):
//! - 0: the payload (lossy UTF-8) as a `calc` expression, through `calc::evaluate`;
//! - 1: the payload as the JSON arguments of the `calc` tool (a string when it is not JSON);
//! - 2: the payload as the JSON arguments of the `clock` tool (fixed clock);
//! - 3: NUL-separated `operation \0 timezone \0 time \0 from \0 to` through `Clock::run`
//!   (reaches the time parsing and zone code without first getting JSON right);
//! - 4: the payload as the JSON arguments of a `typed` tool whose args struct has integers,
//!   floats, strings, a list, an optional enum and a nested struct.
//!
//! Properties: no panic, no stack overflow; a tool answers with output or an error naming
//! it (`InvalidArgs` or `Failed`, never a panic); arguments that are not a JSON object (or
//! `null`) are always `InvalidArgs`; `calc` results are finite, formatting them
//! gives a finite number, and wrapping an accepted expression in parentheses gives the same
//! value (or the nesting limit).

use chrono::{TimeZone, Utc};
use executus_tools::calc::{self, CalcError, MAX_LEN};
use executus_tools::clock::{ClockArgs, ClockOperation};
use executus_tools::{Calc, Clock};
use executus::tool::{Tool, ToolContext, ToolError, typed};
use executus::{Identity, RunId};
use serde::Deserialize;
use serde_json::Value;

use crate::{Reader, block_on};

fn ctx() -> ToolContext {
    ToolContext::new(RunId::new(), Identity::default(), "fuzzer", "call-1")
}

/// The payload as JSON, or as a JSON string when it is not JSON (a model's broken arguments
/// arrive as `Value::String`).
fn args(payload: &[u8]) -> Value {
    serde_json::from_slice(payload).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into()))
}

fn call(tool: &dyn Tool, args: Value) -> Result<String, ToolError> {
    let out = block_on(tool.call(ctx(), args.clone()));
    match &out {
        Ok(_) => {}
        Err(ToolError::InvalidArgs { tool: name, message })
        | Err(ToolError::Failed { tool: name, message }) => {
            assert_eq!(name, tool.name(), "error names another tool");
            assert!(!message.is_empty(), "empty error message");
        }
        Err(other) => panic!("{}: unexpected error kind {other:?} for {args}", tool.name()),
    }
    if !args.is_object() && !args.is_null() {
        assert!(
            matches!(&out, Err(ToolError::InvalidArgs { message, .. }) if message.contains("JSON object")),
            "{} accepted non-object arguments {args}: {out:?}",
            tool.name()
        );
    }
    out.map(|o| o.text)
}

/// A clock at a fixed instant (a DST change in Europe), so runs are reproducible.
fn fixed_clock() -> Clock {
    Clock::fixed(Utc.with_ymd_and_hms(2024, 3, 31, 1, 30, 0).single().unwrap_or_default())
}

fn check_calc(expr: &str) {
    let Ok(value) = calc::evaluate(expr) else { return };
    assert!(value.is_finite(), "{expr:?} gave {value}");
    let text = calc::format_number(value);
    let back: f64 = text.parse().unwrap_or_else(|e| panic!("format_number({value}) = {text:?}: {e}"));
    assert!(back.is_finite());
    if expr.chars().count() + 2 <= MAX_LEN {
        match calc::evaluate(&format!("({expr})")) {
            Ok(again) => assert_eq!(again.to_bits(), value.to_bits(), "({expr}) differs"),
            Err(CalcError::TooDeep { .. }) => {}
            Err(e) => panic!("({expr}) fails ({e}) where {expr:?} gave {value}"),
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
enum Mode {
    Fast,
    Careful { retries: u8 },
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct Inner {
    label: String,
    #[serde(default)]
    weights: Vec<f32>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Args {
    count: u16,
    offset: i64,
    ratio: f64,
    name: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    mode: Option<Mode>,
    #[serde(default)]
    inner: Option<Inner>,
}

/// The fuzz target.
pub fn check(data: &[u8]) {
    let mut r = Reader::new(data);
    let mode = r.u8() % 5;
    let payload = r.rest();
    match mode {
        0 => check_calc(&String::from_utf8_lossy(payload)),
        1 => {
            let args = args(payload);
            if let Ok(text) = call(&Calc::new(), args.clone()) {
                let expr = args.get("expression").and_then(Value::as_str).unwrap_or_default();
                assert_eq!(Ok(text), calc::evaluate(expr).map(calc::format_number));
            }
        }
        2 => {
            if let Ok(text) = call(&fixed_clock(), args(payload)) {
                let _: Value = serde_json::from_str(&text).expect("clock answers JSON");
            }
        }
        3 => {
            let fields: Vec<String> =
                payload.split(|&b| b == 0).map(|f| String::from_utf8_lossy(f).into_owned()).collect();
            let get = |i: usize| fields.get(i).cloned().filter(|s| !s.is_empty());
            let args = ClockArgs {
                operation: if get(0).is_some_and(|o| o.starts_with('c')) {
                    ClockOperation::Convert
                } else {
                    ClockOperation::Now
                },
                timezone: get(1),
                time: get(2),
                from: get(3),
                to: get(4),
            };
            match fixed_clock().run(&args) {
                Ok(out) => assert!(out.is_object(), "clock answered {out}"),
                Err(e) => assert!(matches!(e, ToolError::InvalidArgs { .. }), "{e:?}"),
            }
        }
        _ => {
            let tool = typed("typed_fuzz", "fuzz", |_ctx, a: Args| async move {
                // Every field is read, so the decoded values are used (not optimised away).
                let Args { count, offset, ratio, name, tags, mode, inner } = a;
                let mode = match mode {
                    Some(Mode::Fast) => 1,
                    Some(Mode::Careful { retries }) => u32::from(retries),
                    None => 0,
                };
                let inner = inner.map_or(0.0, |i| i.label.len() as f32 + i.weights.iter().sum::<f32>());
                Ok::<_, ToolError>(format!(
                    "{count} {offset} {ratio} {} {} {mode} {inner}",
                    name.len(),
                    tags.len()
                ))
            });
            let _ = call(&tool, args(payload));
        }
    }
}
