//! Wire-format helpers every JSON provider shares: numbers as written, `Request::extra`
//! merging, tool arguments as an object.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// An `f32` as the JSON number a person would write: `0.2`, not `0.20000000298023224` (which
/// is what widening the binary value to `f64` gives). Non-finite values become `null`.
pub(crate) fn decimal(x: f32) -> Value {
    // Display prints the shortest decimal that round-trips the f32; parsing that as f64
    // keeps it.
    x.to_string().parse::<f64>().map_or(Value::Null, Value::from)
}

/// Tool-call arguments as a JSON object (the providers that take objects reject anything
/// else): a JSON string holding an object is parsed, anything else is wrapped as
/// `{"_raw": <original>}`.
pub(crate) fn args_object(args: &Value) -> Value {
    match args {
        Value::Object(_) => args.clone(),
        Value::Null => Value::Object(Map::new()),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => v,
            _ => json!({ "_raw": s }),
        },
        other => json!({ "_raw": other }),
    }
}

/// Merges `extra` into `body`, last: objects key by key (recursively), other values replace,
/// `null` removes the key.
pub(crate) fn merge_extra(body: &mut Value, extra: &BTreeMap<String, Value>) {
    if let Value::Object(map) = body {
        merge_into(map, extra.iter());
    }
}

/// [`merge_extra`] on a body still being built as a map.
pub(crate) fn merge_extra_map(map: &mut Map<String, Value>, extra: &BTreeMap<String, Value>) {
    merge_into(map, extra.iter());
}

fn merge_into<'a>(map: &mut Map<String, Value>, entries: impl Iterator<Item = (&'a String, &'a Value)>) {
    for (key, value) in entries {
        match (map.get_mut(key), value) {
            (_, Value::Null) => {
                map.remove(key);
            }
            (Some(Value::Object(existing)), Value::Object(incoming)) => merge_into(existing, incoming.iter()),
            _ => {
                map.insert(key.clone(), value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_written_as_typed() {
        assert_eq!(decimal(0.2).to_string(), "0.2");
        assert_eq!(decimal(0.7).to_string(), "0.7");
        assert_eq!(decimal(f32::NAN), Value::Null);
    }

    #[test]
    fn extra_merges_objects_replaces_values_and_removes_nulls() {
        let mut body =
            json!({"options": {"num_ctx": 2048, "seed": 1}, "stream_options": {"x": 1}, "model": "m"});
        let mut extra = BTreeMap::new();
        extra.insert("options".to_owned(), json!({"num_ctx": 8192}));
        extra.insert("stream_options".to_owned(), Value::Null);
        extra.insert("logit_bias".to_owned(), json!({"90": 50}));
        merge_extra(&mut body, &extra);
        assert_eq!(
            body,
            json!({"options": {"num_ctx": 8192, "seed": 1}, "model": "m", "logit_bias": {"90": 50}})
        );
    }

    #[test]
    fn arguments_are_always_objects() {
        assert_eq!(args_object(&json!({"a": 1})), json!({"a": 1}));
        assert_eq!(args_object(&Value::Null), json!({}));
        assert_eq!(args_object(&json!("{\"a\":1}")), json!({"a": 1}));
        assert_eq!(args_object(&json!("not json")), json!({"_raw": "not json"}));
        assert_eq!(args_object(&json!([1])), json!({"_raw": [1]}));
    }
}
