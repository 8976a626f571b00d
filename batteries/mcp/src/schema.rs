//! A server's input schema as models see it, and the model's arguments as the server wants
//! them.
//!
//! [`for_model`] passes the schema through the strict-schema transform of `executus-llm`
//! (every property required, optional ones nullable, unsupported keywords removed), so every
//! provider gets a schema it accepts. A schema with a free-form map (`additionalProperties`
//! other than `false`) is passed on as the server wrote it, less `$schema`: strict mode cannot
//! express a map and would forbid its keys. [`server_args`] undoes what the transform asked
//! of the model: a `null` for a property the server did not require is dropped, so the
//! server sees the property absent, as its schema allows.

use serde_json::{Map, Value};

/// The schema to offer models for a tool whose input schema is `input`.
pub fn for_model(input: &Value) -> Value {
    let mut schema = input.clone();
    if let Value::Object(map) = &mut schema {
        map.remove("$schema");
        if !map.contains_key("type") {
            map.insert("type".into(), Value::String("object".into()));
        }
    }
    if has_map(&schema) { schema } else { executus::llm::strict_schema(schema) }
}

fn has_map(v: &Value) -> bool {
    match v {
        Value::Object(map) => {
            let open = matches!(map.get("additionalProperties"), Some(Value::Object(_) | Value::Bool(true)));
            open || map.values().any(has_map)
        }
        Value::Array(items) => items.iter().any(has_map),
        _ => false,
    }
}

/// `args` with every `null` member that `schema` does not require removed, at every level
/// the schema describes with `properties`.
pub fn server_args(args: Map<String, Value>, schema: &Value) -> Map<String, Value> {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let props = schema.get("properties").and_then(Value::as_object);
    args.into_iter()
        .filter(|(k, v)| !v.is_null() || required.contains(&k.as_str()))
        .map(|(k, v)| match (v, props.and_then(|p| p.get(&k))) {
            (Value::Object(inner), Some(sub)) => {
                let cleaned = server_args(inner, sub);
                (k, Value::Object(cleaned))
            }
            (v, _) => (k, v),
        })
        .collect()
}

#[cfg(test)]
mod tests;
